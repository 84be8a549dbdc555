//! Every store passes the same conformance suite.

use apikey_tests::{memory, postgres, sqlite_file, sqlite_memory};

apikey_core::store_conformance!(memory_store, memory());
apikey_core::store_conformance!(sqlite_file_store, sqlite_file());
apikey_core::store_conformance!(sqlite_memory_store, sqlite_memory());
apikey_core::store_conformance!(postgres_store, postgres());
