//! The transaction steps every SQL write shares: lock a key, read it back, audit, commit and
//! announce. Written once for both databases.

/// The transaction helpers of `$store` (a struct with a `pool` of database `$db`, a `changes`
/// feed and a `notify(tx, change)` method that tells other processes).
macro_rules! sql_tx {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Locks the key named `name` for the rest of the transaction and returns its id.
            /// A write comes first on purpose: on PostgreSQL it takes the row lock (so concurrent
            /// read-modify-writes of one key run one after the other, each seeing the last one's
            /// result), on SQLite the database's write lock (a read first would let two
            /// transactions read the same state).
            async fn lock_key(
                tx: &mut sqlx::Transaction<'static, $db>,
                name: &str,
            ) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>(
                    "UPDATE apikey_keys SET id = id WHERE name = $1 RETURNING id",
                )
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| StoreError::NotFound(name.to_owned()))
            }

            /// The key as this transaction sees it.
            async fn record_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                name: &str,
            ) -> StoreResult<KeyRecord> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.name = $1");
                let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(unavailable)?;
                row.ok_or_else(|| StoreError::NotFound(name.to_owned()))?
                    .into_record()
            }

            /// Sets one column of the key named `name`, atomically, records `action` and
            /// announces the change.
            async fn update_key<T>(
                &self,
                name: &str,
                sql: &'static str,
                value: T,
                (by, action): (&Actor, &'static str),
            ) -> StoreResult<KeyRecord>
            where
                T: for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Send + 'static,
            {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let done = sqlx::query(sql)
                    .bind(value)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(name.to_owned()));
                }
                self.finish(tx, name, by, |r| (action, summary::of(action, r))).await
            }

            /// Records a change of the key `name` in the audit trail (`what` names and sums it
            /// up from the key as the transaction left it), commits, and returns that key.
            async fn finish(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                name: &str,
                by: &Actor,
                what: impl FnOnce(&KeyRecord) -> (&'static str, String) + Send,
            ) -> StoreResult<KeyRecord> {
                let record = Self::record_in(&mut tx, name).await?;
                let (action, summary) = what(&record);
                Self::audit_in(&mut tx, by, action, name, &summary).await?;
                self.commit(tx, Change::Key(name.to_owned())).await?;
                Ok(record)
            }

            /// Writes one audit trail entry in the transaction.
            async fn audit_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                by: &Actor,
                action: &str,
                name: &str,
                summary: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO apikey_audit (at, actor, action, name, summary) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(now_secs())
                .bind(by.as_str())
                .bind(action)
                .bind(name)
                .bind(summary)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
                Ok(())
            }

            /// Announces the change to other processes (inside the transaction), commits, and
            /// announces it in this process. The commit and the announcement run in a task of
            /// their own, so a caller that stops waiting (a cancelled future) cannot leave a
            /// committed change unannounced here. The change is announced even when the commit
            /// reports an error: the commit may have landed all the same, and a needless
            /// invalidation costs only a lookup.
            async fn commit(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                change: Change,
            ) -> StoreResult<()> {
                self.notify(&mut tx, &change).await?;
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
            async fn insert_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                new: NewKey,
                active: bool,
            ) -> StoreResult<i64> {
                let tech_name = validate_new(&new)?;
                let groups = groups_json(&new.groups)?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO apikey_keys \
                     (name, tech_name, user_name, group_names, active, stub, expires_at, created_at, \
                     rate_limit, quota) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     RETURNING id",
                )
                .bind(&new.name)
                .bind(&tech_name)
                .bind(&new.user)
                .bind(&groups)
                .bind(active)
                .bind(&new.stub)
                .bind(new.expires_at.map(OffsetDateTime::unix_timestamp))
                .bind(now_secs())
                .bind(new.rate_limit.map(|l| l.to_string()))
                .bind(new.quota.map(|q| q.to_string()))
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| write_error(e, &new.name))?;
                Self::add_secret(tx, id, &new.digest, &new.name).await?;
                Ok(id)
            }

            /// Adds a secret to the key `id`.
            async fn add_secret(
                tx: &mut sqlx::Transaction<'static, $db>,
                id: i64,
                digest: &KeyDigest,
                name: &str,
            ) -> StoreResult<()> {
                sqlx::query("INSERT INTO apikey_secrets (digest, key_id) VALUES ($1, $2)")
                    .bind(digest.as_bytes().to_vec())
                    .bind(id)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| write_error(e, name))?;
                Ok(())
            }

            /// Makes the key `id` hold exactly `new`'s secret, user and groups, and `active`;
            /// `false` (nothing written) when it already did.
            async fn bring_in_line(
                tx: &mut sqlx::Transaction<'static, $db>,
                id: i64,
                new: &NewKey,
                active: bool,
            ) -> StoreResult<bool> {
                let (user, groups, was_active): (String, String, bool) = sqlx::query_as(
                    "SELECT user_name, group_names, active FROM apikey_keys WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&mut **tx)
                .await
                .map_err(unavailable)?;
                let secrets: Vec<(Vec<u8>, Option<i64>)> =
                    sqlx::query_as("SELECT digest, valid_until FROM apikey_secrets WHERE key_id = $1")
                        .bind(id)
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(unavailable)?;
                let same_secret = matches!(
                    secrets.as_slice(),
                    [(d, None)] if d.as_slice() == new.digest.as_bytes()
                );
                let new_groups = groups_json(&new.groups)?;
                let same = same_secret
                    && user == new.user
                    && groups == new_groups
                    && was_active == active;
                if same {
                    return Ok(false);
                }
                if !same_secret {
                    sqlx::query("DELETE FROM apikey_secrets WHERE key_id = $1")
                        .bind(id)
                        .execute(&mut **tx)
                        .await
                        .map_err(unavailable)?;
                    Self::add_secret(tx, id, &new.digest, &new.name).await?;
                    sqlx::query("UPDATE apikey_keys SET stub = $1 WHERE id = $2")
                        .bind(&new.stub)
                        .bind(id)
                        .execute(&mut **tx)
                        .await
                        .map_err(unavailable)?;
                }
                sqlx::query(
                    "UPDATE apikey_keys SET user_name = $1, group_names = $2, active = $3 \
                     WHERE id = $4",
                )
                .bind(&new.user)
                .bind(new_groups)
                .bind(active)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
                Ok(true)
            }
        }
    };
}

pub(in crate::store) use sql_tx;
