//! Keys in PostgreSQL, for many service instances sharing one key store. Other processes
//! learn of changes by `LISTEN`/`NOTIFY`.

use std::str::FromStr;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgSslMode};
use sqlx::{Executor, PgPool, Postgres, Row};

use super::sql::migrations;
use super::sql::{
    decode_change, encode_change, migrated, unavailable, Column, Dialect, Param, Sql, SqlStore, Tx,
};
use super::{Change, ChangeFeed, SchemaStatus, StoreError, StoreOptions, StoreResult};
use crate::task::Background;

static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrations::migrator(migrations::POSTGRES));

/// Keys in PostgreSQL, for many service instances sharing one key store. Tables live in a
/// schema of their own (`apikey` by default).
pub type PostgresStore = SqlStore<Postgres>;

/// PostgreSQL's part: the `NOTIFY` channel, and the tasks that follow it and send heartbeats.
#[derive(Debug)]
pub struct PgFeed {
    /// The `NOTIFY` channel of this schema.
    notify_as: String,
    /// Follows notifications; sends heartbeats.
    _tasks: [Background; 2],
}

impl Dialect for Postgres {
    const FIND: &'static str = "strpos";

    type Feed = PgFeed;

    fn add<P: Param>(args: &mut Self::Arguments, value: P) -> Result<(), sqlx::Error> {
        sqlx::Arguments::add(args, value).map_err(sqlx::Error::Encode)
    }

    fn get<C: Column>(row: &Self::Row, i: usize) -> Result<C, sqlx::Error> {
        row.try_get(i)
    }

    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }

    fn pool(pool: &sqlx::Pool<Self>) -> impl Executor<'_, Database = Self> {
        pool
    }

    fn tx(tx: &mut Tx<Self>) -> impl Executor<'_, Database = Self> {
        &mut **tx
    }

    /// Sends the change on the schema's channel; delivered at commit to every listener, ours
    /// included (a repeated invalidation is harmless).
    async fn notify(feed: &PgFeed, tx: &mut Tx<Self>, change: &Change) -> StoreResult<()> {
        let (kind, name) = encode_change(change);
        Sql::<Postgres>::new("SELECT pg_notify($1, $2)")
            .bind(feed.notify_as.as_str())
            .bind(format!("{kind}:{name}"))
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
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

impl SqlStore<Postgres> {
    /// Connects, creates the `apikey` schema if needed, migrates it and starts listening
    /// for other processes' changes.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, "apikey", &StoreOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with the tables in `schema` (lowercase letters,
    /// digits and `_`).
    pub async fn connect_in_schema(url: &str, schema: &str) -> StoreResult<Self> {
        Self::connect_with(url, schema, &StoreOptions::default()).await
    }

    /// Like [`connect_in_schema`](Self::connect_in_schema), with the change feed's heartbeat
    /// and its own connection for `LISTEN` as `feed` says.
    pub async fn connect_with(url: &str, schema: &str, feed: &StoreOptions) -> StoreResult<Self> {
        if !valid_schema(schema) {
            return Err(StoreError::Invalid(format!(
                "schema name {schema:?} must be lowercase letters, digits and _"
            )));
        }
        let options = connect_options(url, "database_url")?.options([("search_path", schema)]);
        let listen_on = match &feed.listen_url {
            Some(u) => connect_options(u, "feed_url")?,
            None => options.clone(),
        };
        let pool = PgPoolOptions::new()
            .max_connections(feed.pool_size.max(1))
            .acquire_timeout(feed.pool_timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| connect_failed(&options, &e))?;
        // A current store runs no DDL at all: a role with data rights only suffices.
        if schema_status(&pool)
            .await?
            .must_migrate(feed.auto_migrate)?
        {
            migrate(&pool, schema).await?;
        }
        Self::start(pool, schema, listen_on, feed).await
    }

    /// A store on an application's own PostgreSQL pool (its size, timeouts and TLS are the
    /// application's), migrated. Its connections must have `schema` as their current schema
    /// (first on `search_path`: `?options=-c%20search_path%3Dapikey` in the pool's URL, or an
    /// `after_connect` hook); the schema must exist. The change feed listens on a connection of
    /// its own, made with the pool's options unless `feed.listen_url` names another.
    pub async fn from_pool(pool: PgPool, schema: &str, feed: &StoreOptions) -> StoreResult<Self> {
        if !valid_schema(schema) {
            return Err(StoreError::Invalid(format!(
                "schema name {schema:?} must be lowercase letters, digits and _"
            )));
        }
        let current: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&pool)
            .await
            .map_err(unavailable)?;
        if current.as_deref() != Some(schema) {
            return Err(StoreError::Invalid(format!(
                "the pool's connections must have the schema {schema:?} first on their \
                 search_path (they have {current:?}): add `options=-c search_path={schema}` to \
                 the pool's URL, or set it in an after_connect hook"
            )));
        }
        if schema_status(&pool)
            .await?
            .must_migrate(feed.auto_migrate)?
        {
            migrated(MIGRATOR.run(&pool).await, &MIGRATOR)?;
        }
        let listen_on = match &feed.listen_url {
            Some(u) => connect_options(u, "feed_url")?,
            None => (*pool.connect_options()).clone(),
        };
        Self::start(pool, schema, listen_on, feed).await
    }

    /// Starts the change feed of a migrated store.
    async fn start(
        pool: PgPool,
        schema: &str,
        listen_on: PgConnectOptions,
        feed: &StoreOptions,
    ) -> StoreResult<Self> {
        let channel = format!("apikey_changes_{schema}");
        let changes = Arc::new(ChangeFeed::default());
        let feed = Arc::new(Feed {
            pool: pool.clone(),
            listen_on,
            channel: channel.clone(),
            changes: Arc::clone(&changes),
            heartbeat: feed.heartbeat,
        });
        let listener = feed
            .listener()
            .await
            .map_err(|e| connect_failed(&feed.listen_on, &e))?;
        // Live once a notification (our own heartbeat) arrives on this listener: behind a
        // pooler that never delivers one, the feed stays not live and every lookup asks the
        // store.
        // A command-line tool opening the store should not wait long behind a pooler that
        // never delivers: at most a second here; the feed goes live later when it can.
        let wait = (feed.heartbeat * 2).min(Duration::from_secs(1));
        let listener = feed.prove(listener, wait).await;
        if !changes.is_live() {
            crate::obs::warning!(
                "apikey: PostgreSQL notifications do not arrive (a pooler in transaction mode? \
                 set `feed_url` to a direct connection); every request asks the store until they do"
            );
        }
        let beats = Background(tokio::spawn(Arc::clone(&feed).beat_forever()));
        let follows = Background(tokio::spawn(feed.run(listener)));
        let feed = PgFeed {
            notify_as: channel,
            _tasks: [follows, beats],
        };
        Ok(SqlStore::new(pool, changes, feed))
    }
}

/// Where the schema behind `pool` (its connections' `search_path`) stands: plain reads, no DDL
/// (a schema that does not exist yet is a new store).
pub(crate) async fn schema_status(pool: &PgPool) -> StoreResult<SchemaStatus> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(unavailable)?
    } else {
        Vec::new()
    };
    SchemaStatus::of(&applied, &MIGRATOR)
}

/// Creates `schema` if needed and applies the migrations it lacks; returns where it stood.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> StoreResult<SchemaStatus> {
    let before = schema_status(pool).await?;
    pool.execute(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}"
    )))
    .await
    .map_err(unavailable)?;
    migrated(MIGRATOR.run(pool).await, &MIGRATOR)?;
    Ok(before)
}

/// Parses a PostgreSQL URL with sqlx's own rules (`sslmode`, `sslrootcert`, …). The message
/// never repeats the URL (it may hold a password).
pub(crate) fn connect_options(url: &str, setting: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL {setting}: {e}")))
}

/// A failed connection as the store reports it.
fn connect_failed(options: &PgConnectOptions, e: &sqlx::Error) -> StoreError {
    StoreError::Unavailable(describe_connect_failure(options, e))
}

/// A failed connection, named by server and TLS mode, and what failed; never the password.
pub(crate) fn describe_connect_failure(options: &PgConnectOptions, e: &sqlx::Error) -> String {
    let mode = match options.get_ssl_mode() {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    };
    let what = match e {
        sqlx::Error::Tls(source) => format!("the TLS handshake failed: {source}"),
        // rustls refusing the server's certificate surfaces as an I/O error.
        sqlx::Error::Io(io) if io.to_string().contains("certificate") => {
            format!("the TLS handshake failed: {io}")
        }
        sqlx::Error::PoolTimedOut => "no connection within the timeout".to_owned(),
        other => other.to_string(),
    };
    let server = match options.get_socket() {
        Some(dir) => format!("the socket in {}", dir.display()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!("cannot connect to PostgreSQL at {server} (sslmode={mode}): {what}")
}

/// The payload of a heartbeat (a change payload is `<kind>:<name>`, never this).
const HEARTBEAT: &str = "~";

/// The change feed of one store: notifications in, changes out, and the proof that the
/// connection still delivers.
struct Feed {
    /// Where heartbeats are sent from (the store's pool, so they travel as changes do).
    pool: PgPool,
    /// Where `LISTEN` connects (`feed_url`, or the store's own database).
    listen_on: PgConnectOptions,
    channel: String,
    changes: Arc<ChangeFeed>,
    heartbeat: Duration,
}

impl Feed {
    /// A new connection that listens on the channel. Each listener has a pool of its own, so
    /// that a connection given up as dead never goes back to the store's pool.
    async fn listener(&self) -> Result<PgListener, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.heartbeat * 2)
            .connect_lazy_with(self.listen_on.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(&self.channel).await?;
        Ok(listener)
    }

    /// Sends one heartbeat; gives up after a period.
    async fn beat(&self) {
        let send = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(HEARTBEAT)
            .execute(&self.pool);
        match tokio::time::timeout(self.heartbeat, send).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => crate::obs::debug!("apikey: sending the feed heartbeat failed: {e}"),
            Err(_) => crate::obs::debug!("apikey: sending the feed heartbeat timed out"),
        }
    }

    async fn beat_forever(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.beat().await;
        }
    }

    /// Sends a heartbeat and waits (`wait` at most) for the first notification on a new
    /// listener: the feed is live from then on. Returns the listener, proven or not.
    async fn prove(&self, mut listener: PgListener, wait: Duration) -> PgListener {
        self.beat().await;
        if let Ok(Ok(Some(n))) = tokio::time::timeout(wait, listener.try_recv()).await {
            // Going live announces `Change::All` when the feed was live before: changes may
            // have been missed meanwhile.
            self.changes.set_live(true);
            self.forward(n.payload());
        }
        listener
    }

    fn forward(&self, payload: &str) {
        if payload == HEARTBEAT {
            return;
        }
        let (kind, name) = payload.split_once(':').unwrap_or(("*", ""));
        self.changes.announce(decode_change(kind, name));
    }

    /// Forwards notifications while the connection delivers them: any notification (ours or
    /// another instance's heartbeat, a change) proves it does. Returns why it stopped.
    async fn follow(&self, listener: &mut PgListener) -> String {
        loop {
            match tokio::time::timeout(self.heartbeat * 2, listener.try_recv()).await {
                Ok(Ok(Some(n))) => {
                    self.changes.set_live(true);
                    self.forward(n.payload());
                }
                Ok(Ok(None)) => return "the connection was lost".into(),
                Ok(Err(e)) => return format!("notifications failed: {e}"),
                Err(_) => {
                    return format!(
                        "no notification for {:?} (two heartbeats)",
                        self.heartbeat * 2
                    )
                }
            }
        }
    }

    /// Follows the listener; when it stops delivering, the feed is not live (caches and the
    /// digest filter are bypassed meanwhile) and a new listener is tried until one delivers.
    async fn run(self: Arc<Self>, mut listener: PgListener) {
        loop {
            let why = self.follow(&mut listener).await;
            if self.changes.is_live() {
                crate::obs::warning!(
                    "apikey: the PostgreSQL change feed is not live ({why}); every request \
                     asks the store until it is back"
                );
            }
            self.changes.set_live(false);
            // A dead connection is dropped, never reused.
            drop(listener);
            listener = loop {
                tokio::time::sleep(self.heartbeat.min(Duration::from_secs(1))).await;
                match tokio::time::timeout(self.heartbeat * 2, self.listener()).await {
                    Ok(Ok(l)) => break l,
                    Ok(Err(e)) => {
                        crate::obs::debug!("apikey: PostgreSQL notifications still down: {e}")
                    }
                    Err(_) => {
                        crate::obs::debug!("apikey: PostgreSQL notifications still down: timeout")
                    }
                }
            };
            listener = self.prove(listener, self.heartbeat * 2).await;
            if self.changes.is_live() {
                crate::obs::info!("apikey: the PostgreSQL change feed is live again");
            }
        }
    }
}
