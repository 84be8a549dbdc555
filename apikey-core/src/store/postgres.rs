//! Keys in PostgreSQL, for many service instances sharing one key store. Other processes
//! learn of changes by `LISTEN`/`NOTIFY`.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Executor, PgPool};

use super::sql::prelude::*;

/// A transaction on this store's database.
type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Keys in PostgreSQL, for many service instances sharing one key store. Tables live in a
/// schema of their own (`apikey` by default).
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    changes: Arc<ChangeFeed>,
    /// The `NOTIFY` channel of this schema.
    notify_as: String,
    _listener: Background,
}

/// Whether `schema` is a plain identifier we can put in SQL unquoted.
fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 48
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit()
}

impl PostgresStore {
    /// Connects, creates the `apikey` schema if needed, migrates it and starts listening
    /// for other processes' changes.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_in_schema(url, "apikey").await
    }

    /// Like [`connect`](Self::connect), with the tables in `schema` (lowercase letters,
    /// digits and `_`).
    pub async fn connect_in_schema(url: &str, schema: &str) -> StoreResult<Self> {
        if !valid_schema(schema) {
            return Err(StoreError::Invalid(format!(
                "schema name {schema:?} must be lowercase letters, digits and _"
            )));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL database_url: {e}")))?
            .options([("search_path", schema)]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        pool.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
            .await
            .map_err(unavailable)?;
        migrated(MIGRATOR.run(&pool).await, &MIGRATOR)?;
        let channel = format!("apikey_changes_{schema}");
        let changes = Arc::new(ChangeFeed::default());
        let mut listener = PgListener::connect_with(&pool).await.map_err(unavailable)?;
        listener.listen(&channel).await.map_err(unavailable)?;
        let listener = Background(tokio::spawn(listen(
            listener,
            pool.clone(),
            channel.clone(),
            Arc::clone(&changes),
        )));
        Ok(PostgresStore {
            pool,
            changes,
            notify_as: channel,
            _listener: listener,
        })
    }

    async fn notify(&self, tx: &mut Tx, change: &Change) -> StoreResult<()> {
        let (kind, name) = encode_change(change);
        // Delivered at commit to every listener, ours included (a repeated
        // invalidation is harmless).
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.notify_as)
            .bind(format!("{kind}:{name}"))
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Forwards notifications. When the connection is lost, caches keep what they hold (the
/// TTL bounds it) and a new listener is tried every second; once it listens again,
/// [`Change::All`] is announced, since changes may have been missed meanwhile.
async fn listen(mut listener: PgListener, pool: PgPool, channel: String, changes: Arc<ChangeFeed>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                let (kind, name) = n.payload().split_once(':').unwrap_or(("*", ""));
                changes.announce(decode_change(kind, name));
                continue;
            }
            Ok(None) => {
                log::warn!("apikey: lost the PostgreSQL notification connection");
            }
            Err(e) => log::warn!("apikey: PostgreSQL notifications failed: {e}"),
        }
        // Cached verifications live on to their TTL; what needs every change (the digest
        // filter) stops trusting the feed until it is back.
        changes.set_live(false);
        listener = loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let attempt = async {
                let mut l = PgListener::connect_with(&pool).await?;
                l.listen(&channel).await?;
                Ok::<_, sqlx::Error>(l)
            };
            match attempt.await {
                Ok(l) => break l,
                Err(e) => log::debug!("apikey: PostgreSQL notifications still down: {e}"),
            }
        };
        log::info!("apikey: PostgreSQL notifications restored");
        changes.set_live(true);
    }
}

sql_store!(PostgresStore, sqlx::Postgres);
