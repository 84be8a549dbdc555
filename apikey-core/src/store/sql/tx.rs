//! The transaction steps every SQL write shares: lock a key, read it back, audit, commit and
//! announce. Written once for both databases.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{
    groups_json, now_secs, scopes_json, unavailable, write_error, Dialect, KeyRow, Sql, SqlStore,
    Tx, KEY_COLUMNS, KEY_FROM,
};
use crate::key::KeyDigest;
use crate::model::{Actor, KeyRecord, NewKey};
use crate::store::{validate_new, Change, StoreError, StoreResult, CHANGED_ORIGIN, IMPORT_ORIGIN};

impl<D: Dialect> SqlStore<D> {
    /// The pool, to run a statement outside a transaction.
    pub(super) fn db(&self) -> impl sqlx::Executor<'_, Database = D> {
        D::pool(&self.pool)
    }

    /// A new transaction.
    pub(super) async fn begin(&self) -> StoreResult<Tx<D>> {
        self.pool.begin().await.map_err(unavailable)
    }

    /// Locks the key named `name` for the rest of the transaction and returns its id. A
    /// write comes first on purpose: on PostgreSQL it takes the row lock (so concurrent
    /// read-modify-writes of one key run one after the other, each seeing the last one's
    /// result), on SQLite the database's write lock (a read first would let two transactions
    /// read the same state).
    pub(super) async fn lock_key(tx: &mut Tx<D>, name: &str) -> StoreResult<i64> {
        Sql::<D>::new("UPDATE apikey_keys SET id = id WHERE name = $1 RETURNING id")
            .bind(name)
            .optional(D::tx(tx))
            .await
            .map_err(unavailable)?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))
    }

    /// The key as this transaction sees it.
    pub(super) async fn record_in(tx: &mut Tx<D>, name: &str) -> StoreResult<KeyRecord> {
        let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.name = $1");
        let row: Option<KeyRow> = Sql::<D>::composed(sql)
            .bind(name)
            .optional(D::tx(tx))
            .await
            .map_err(unavailable)?;
        row.ok_or_else(|| StoreError::NotFound(name.to_owned()))?
            .into_record()
    }

    /// Records a change of the key `name` in the audit trail (`what` names and sums it up
    /// from the key as the transaction left it), commits, and returns that key.
    pub(super) async fn finish(
        &self,
        mut tx: Tx<D>,
        name: &str,
        by: &Actor,
        what: impl FnOnce(&KeyRecord) -> (&'static str, String) + Send,
    ) -> StoreResult<KeyRecord> {
        let record = Self::record_in(&mut tx, name).await?;
        let (action, summary) = what(&record);
        if !matches!(action, "import" | "create") {
            Self::changed_here(&mut tx, "name", name).await?;
        }
        Self::audit_in(&mut tx, by, action, name, &summary).await?;
        self.commit(tx, Change::Key(name.to_owned())).await?;
        Ok(record)
    }

    /// Marks the imported keys whose `column` (`name` or `user_name`) is `value` as changed
    /// here: a later import leaves them as they are.
    pub(super) async fn changed_here(
        tx: &mut Tx<D>,
        column: &'static str,
        value: &str,
    ) -> StoreResult<()> {
        let sql = format!(
            "UPDATE apikey_keys SET origin = '{CHANGED_ORIGIN}' \
             WHERE {column} = $1 AND origin = '{IMPORT_ORIGIN}'"
        );
        Sql::<D>::composed(sql)
            .bind(value)
            .execute(D::tx(tx))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Writes one audit trail entry in the transaction.
    pub(super) async fn audit_in(
        tx: &mut Tx<D>,
        by: &Actor,
        action: &str,
        name: &str,
        summary: &str,
    ) -> StoreResult<()> {
        Sql::<D>::new(
            "INSERT INTO apikey_audit (at, actor, action, name, summary) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now_secs())
        .bind(by.as_str())
        .bind(action)
        .bind(name)
        .bind(summary)
        .execute(D::tx(tx))
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Announces the change to other processes (inside the transaction), commits, and
    /// announces it in this process. The commit and the announcement run in a task of their
    /// own, so a caller that stops waiting (a cancelled future) cannot leave a committed
    /// change unannounced here. The change is announced even when the commit reports an
    /// error: the commit may have landed all the same, and a needless invalidation costs only
    /// a lookup.
    pub(super) async fn commit(&self, mut tx: Tx<D>, change: Change) -> StoreResult<()> {
        D::notify(&self.feed, &mut tx, &change).await?;
        let changes = Arc::clone(&self.changes);
        tokio::spawn(async move {
            let done = tx.commit().await.map_err(unavailable);
            changes.announce(change);
            done
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("committing failed: {e}")))?
    }

    /// Inserts a new key and its secret; returns the key's id.
    pub(super) async fn insert_in(tx: &mut Tx<D>, new: NewKey, active: bool) -> StoreResult<i64> {
        let tech_name = validate_new(&new)?;
        let groups = groups_json(&new.groups)?;
        let id: i64 = Sql::<D>::new(
            "INSERT INTO apikey_keys \
             (name, tech_name, user_name, group_names, active, stub, expires_at, created_at, \
             rate_limit, quota, allow_ip, scopes, description, meta) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(new.name.as_str())
        .bind(tech_name)
        .bind(new.user.as_str())
        .bind(groups)
        .bind(active)
        .bind(new.stub.as_str())
        .bind(new.expires_at.map(OffsetDateTime::unix_timestamp))
        .bind(now_secs())
        .bind(new.rate_limit.map(|l| l.to_string()))
        .bind(new.quota.map(|q| q.to_string()))
        .bind(new.allow_ip.to_stored())
        .bind(scopes_json(&new.scopes))
        .bind(new.description.clone().filter(|d| !d.is_empty()))
        .bind(new.meta.to_stored())
        .one(D::tx(tx))
        .await
        .map_err(|e| write_error(e, &new.name))?;
        Self::add_secret(tx, id, &new.digest, &new.name).await?;
        Ok(id)
    }

    /// Adds a secret to the key `id`.
    pub(super) async fn add_secret(
        tx: &mut Tx<D>,
        id: i64,
        digest: &KeyDigest,
        name: &str,
    ) -> StoreResult<()> {
        Sql::<D>::new("INSERT INTO apikey_secrets (digest, key_id) VALUES ($1, $2)")
            .bind(digest.as_bytes().as_slice())
            .bind(id)
            .execute(D::tx(tx))
            .await
            .map_err(|e| write_error(e, name))?;
        Ok(())
    }

    /// Makes the key `id` hold exactly `new`'s secret, user and groups, and `active`; `false`
    /// (nothing written) when it already did.
    pub(super) async fn bring_in_line(
        tx: &mut Tx<D>,
        id: i64,
        new: &NewKey,
        active: bool,
    ) -> StoreResult<bool> {
        let (user, groups, was_active): (String, String, bool) =
            Sql::<D>::new("SELECT user_name, group_names, active FROM apikey_keys WHERE id = $1")
                .bind(id)
                .one(D::tx(tx))
                .await
                .map_err(unavailable)?;
        let secrets: Vec<(Vec<u8>, Option<i64>)> =
            Sql::<D>::new("SELECT digest, valid_until FROM apikey_secrets WHERE key_id = $1")
                .bind(id)
                .all(D::tx(tx))
                .await
                .map_err(unavailable)?;
        let same_secret = matches!(
            secrets.as_slice(),
            [(d, None)] if d.as_slice() == new.digest.as_bytes()
        );
        let new_groups = groups_json(&new.groups)?;
        let same = same_secret && user == new.user && groups == new_groups && was_active == active;
        if same {
            return Ok(false);
        }
        if !same_secret {
            Sql::<D>::new("DELETE FROM apikey_secrets WHERE key_id = $1")
                .bind(id)
                .execute(D::tx(tx))
                .await
                .map_err(unavailable)?;
            Self::add_secret(tx, id, &new.digest, &new.name).await?;
            Sql::<D>::new("UPDATE apikey_keys SET stub = $1 WHERE id = $2")
                .bind(new.stub.as_str())
                .bind(id)
                .execute(D::tx(tx))
                .await
                .map_err(unavailable)?;
        }
        Sql::<D>::new(
            "UPDATE apikey_keys SET user_name = $1, group_names = $2, active = $3 WHERE id = $4",
        )
        .bind(new.user.as_str())
        .bind(new_groups)
        .bind(active)
        .bind(id)
        .execute(D::tx(tx))
        .await
        .map_err(unavailable)?;
        Ok(true)
    }
}
