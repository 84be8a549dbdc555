//! The SQL stores' schema migrations, embedded in the binary: the files under `migrations/`,
//! read at compile time and checksummed as sqlx checksums a migration folder, so that a
//! database migrated by any earlier build is taken as it is. Built at run time rather than by
//! sqlx's `migrate!` macro, which would compile a second copy of sqlx and its drivers (and
//! SQLite's C source) to run at compile time, for every build of apikey.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

/// One migration file: its name (`<version>_<description>.sql`) and its text.
pub(crate) type File = (&'static str, &'static str);

/// The migration files of both dialects: the same names (one schema version is one file in
/// each folder, `migrations/sqlite/` and `migrations/postgres/`), in order. A test checks that
/// each folder holds exactly these.
macro_rules! migrations {
    ($($name:literal),* $(,)?) => {
        #[cfg(feature = "sqlite")]
        pub(crate) const SQLITE: &[File] =
            &[$(($name, include_str!(concat!("../../../migrations/sqlite/", $name)))),*];
        #[cfg(feature = "postgres")]
        pub(crate) const POSTGRES: &[File] =
            &[$(($name, include_str!(concat!("../../../migrations/postgres/", $name)))),*];
    };
}

migrations!(
    "0001_keys.sql",
    "0002_rate_limit.sql",
    "0003_audit.sql",
    "0004_quota_usage.sql",
    "0005_origin.sql",
    "0006_allow_ip.sql",
    "0007_local_changes.sql",
    "0008_reports.sql",
    "0009_scopes_meta.sql",
);

/// The migrator of `files`, as sqlx builds one from their folder: version and description
/// from each name (`0003_audit.sql`: 3, "audit"; underscores read as spaces), the SHA-384 of
/// the text as its checksum, outside a transaction when the text starts with
/// `-- no-transaction`. A name without a version is skipped, as sqlx skips it.
pub(crate) fn migrator(files: &[File]) -> Migrator {
    let migrations = files
        .iter()
        .filter_map(|&(name, sql)| {
            let (version, rest) = name.split_once('_')?;
            let version: i64 = version.parse().ok()?;
            let kind = MigrationType::from_filename(rest);
            let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
            let no_tx = sql.starts_with("-- no-transaction");
            Some(Migration::new(
                version,
                description.into(),
                kind,
                sql.into_sql_str(),
                no_tx,
            ))
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(folder: &str, files: &[File]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(folder);
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            on_disk, listed,
            "migrations/{folder} and the list must agree"
        );
        let migrator = migrator(files);
        assert_eq!(migrator.iter().count(), files.len(), "every name parses");
        for (m, (name, sql)) in migrator.iter().zip(files) {
            assert_eq!(sql, &std::fs::read_to_string(dir.join(name)).unwrap());
            let sha384 = <sha2::Sha384 as sha2::Digest>::digest(sql.as_bytes());
            assert_eq!(m.checksum.as_ref(), sha384.as_slice());
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn the_sqlite_list_is_the_folder() {
        check("sqlite", SQLITE);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_postgres_list_is_the_folder() {
        check("postgres", POSTGRES);
    }

    /// What the earlier builds (sqlx's `migrate!`) recorded in `_sqlx_migrations`: version,
    /// description and the checksum's first bytes. A database they migrated must be taken as
    /// it is.
    #[cfg(feature = "sqlite")]
    #[test]
    fn checksums_are_those_the_macro_recorded() {
        let first = migrator(SQLITE);
        let first = first.iter().next().unwrap();
        assert_eq!((first.version, first.description.as_ref()), (1, "keys"));
        assert!(!first.no_tx);
        let hex: String = first.checksum[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "62e7709f6ecae751");
    }
}
