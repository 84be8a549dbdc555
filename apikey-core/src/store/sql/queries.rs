//! Every query of the SQL stores, written once for both databases (sqlx binds `$n` on both).

/// Implements [`KeyLookup`](crate::store::KeyLookup) and [`KeyStore`](crate::store::KeyStore)
/// for `$store`, a struct with a `pool` of database `$db`, a `changes` feed and a
/// `notify(tx, change)` method that tells other processes.
macro_rules! sql_store {
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
            ) -> Result<i64, StoreError> {
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
            ) -> Result<KeyRecord, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.name = $1");
                let row: Option<KeyRow> = sqlx::query_as(&sql)
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(unavailable)?;
                row.ok_or_else(|| StoreError::NotFound(name.to_owned()))?
                    .into_record()
            }

            /// Sets one column of the key named `name`, atomically, and announces the change.
            async fn update_key<T>(
                &self,
                name: &str,
                sql: &'static str,
                value: T,
            ) -> Result<KeyRecord, StoreError>
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
                self.finish(tx, name).await
            }

            /// Commits a change of the key `name` and returns the key as the transaction left it.
            async fn finish(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                name: &str,
            ) -> Result<KeyRecord, StoreError> {
                let record = Self::record_in(&mut tx, name).await?;
                self.commit(tx, Change::Key(name.to_owned())).await?;
                Ok(record)
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
            ) -> Result<(), StoreError> {
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
        }

        #[async_trait]
        impl KeyLookup for $store {
            async fn find_by_digest(&self, digest: &KeyDigest) -> Result<Option<Match>, StoreError> {
                let sql = format!(
                    "SELECT {KEY_COLUMNS}, s.digest, s.valid_until FROM apikey_secrets s \
                     JOIN apikey_keys k ON k.id = s.key_id \
                     LEFT JOIN apikey_users u ON u.name = k.user_name WHERE s.digest = $1"
                );
                let row: Option<MatchRow> = sqlx::query_as(&sql)
                    .bind(digest.as_bytes().to_vec())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                let Some(row) = row else { return Ok(None) };
                let digest = KeyDigest::from_slice(&row.digest)
                    .ok_or_else(|| StoreError::Unavailable("corrupt digest in the store".into()))?;
                Ok(Some(Match {
                    valid_until: opt_ts(row.valid_until)?,
                    record: row.key.into_record()?,
                    digest,
                }))
            }

            async fn get_by_tech_name(
                &self,
                tech_name: &str,
            ) -> Result<Option<KeyRecord>, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.tech_name = $1");
                let row: Option<KeyRow> = sqlx::query_as(&sql)
                    .bind(tech_name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                row.map(KeyRow::into_record).transpose()
            }

            async fn touch(&self, names: &[String], at: OffsetDateTime) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                for name in names {
                    sqlx::query(
                        "UPDATE apikey_keys SET last_used_at = $1 \
                         WHERE name = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                    )
                    .bind(at.unix_timestamp())
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
                // Not a change of what verification depends on: no notification.
                tx.commit().await.map_err(unavailable)
            }

            async fn user_active(&self, user: &str) -> Result<bool, StoreError> {
                let active: Option<bool> =
                    sqlx::query_scalar("SELECT active FROM apikey_users WHERE name = $1")
                        .bind(user)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(unavailable)?;
                Ok(active.unwrap_or(true))
            }

            fn changes(&self) -> &ChangeFeed {
                &self.changes
            }

            async fn all_digests(&self) -> Result<Option<Vec<KeyDigest>>, StoreError> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT digest FROM apikey_secrets")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                digests(rows).map(Some)
            }

            async fn digests_of(&self, name: &str) -> Result<Option<Vec<KeyDigest>>, StoreError> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT s.digest FROM apikey_secrets s JOIN apikey_keys k ON k.id = s.key_id \
                     WHERE k.name = $1",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                digests(rows).map(Some)
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn get(&self, name: &str) -> Result<Option<KeyRecord>, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.name = $1");
                let row: Option<KeyRow> = sqlx::query_as(&sql)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                row.map(KeyRow::into_record).transpose()
            }

            async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} ORDER BY k.name");
                let rows: Vec<KeyRow> = sqlx::query_as(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                rows.into_iter().map(KeyRow::into_record).collect()
            }

            async fn create(&self, new: NewKey) -> Result<KeyRecord, StoreError> {
                let tech_name = validate_new(&new)?;
                let groups = groups_json(&new.groups)?;
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO apikey_keys \
                     (name, tech_name, user_name, group_names, active, stub, expires_at, created_at, \
                     rate_limit) VALUES ($1, $2, $3, $4, TRUE, $5, $6, $7, $8) RETURNING id",
                )
                .bind(&new.name)
                .bind(&tech_name)
                .bind(&new.user)
                .bind(&groups)
                .bind(&new.stub)
                .bind(new.expires_at.map(OffsetDateTime::unix_timestamp))
                .bind(now_secs())
                .bind(new.rate_limit.map(|l| l.to_string()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| write_error(e, &new.name))?;
                sqlx::query("INSERT INTO apikey_secrets (digest, key_id) VALUES ($1, $2)")
                    .bind(new.digest.as_bytes().to_vec())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| write_error(e, &new.name))?;
                self.finish(tx, &new.name).await
            }

            async fn set_active(&self, name: &str, active: bool) -> Result<KeyRecord, StoreError> {
                self.update_key(name, "UPDATE apikey_keys SET active = $1 WHERE name = $2", active)
                    .await
            }

            async fn delete(&self, name: &str) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let id = Self::lock_key(&mut tx, name).await?;
                sqlx::query("DELETE FROM apikey_secrets WHERE key_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                sqlx::query("DELETE FROM apikey_keys WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                self.commit(tx, Change::Key(name.to_owned())).await
            }

            async fn rotate(&self, name: &str, secret: NewSecret) -> Result<KeyRecord, StoreError> {
                let NewSecret {
                    digest,
                    stub,
                    old_valid_until,
                } = secret;
                let now = now_secs();
                let until = old_valid_until
                    .map(OffsetDateTime::unix_timestamp)
                    .filter(|t| *t > now);
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let id = Self::lock_key(&mut tx, name).await?;
                match until {
                    // Secrets already in grace keep their own, earlier end.
                    Some(until) => sqlx::query(
                        "UPDATE apikey_secrets SET valid_until = $1 \
                         WHERE key_id = $2 AND (valid_until IS NULL OR valid_until > $1)",
                    )
                    .bind(until)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?,
                    None => sqlx::query("DELETE FROM apikey_secrets WHERE key_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?,
                };
                sqlx::query(
                    "DELETE FROM apikey_secrets WHERE key_id = $1 AND valid_until <= $2",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                sqlx::query("INSERT INTO apikey_secrets (digest, key_id) VALUES ($1, $2)")
                    .bind(digest.as_bytes().to_vec())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| write_error(e, name))?;
                sqlx::query("UPDATE apikey_keys SET stub = $1 WHERE id = $2")
                    .bind(&stub)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                self.finish(tx, name).await
            }

            async fn set_groups(
                &self,
                name: &str,
                groups: Groups,
            ) -> Result<KeyRecord, StoreError> {
                let groups = groups_json(&groups)?;
                self.update_key(
                    name,
                    "UPDATE apikey_keys SET group_names = $1 WHERE name = $2",
                    groups,
                )
                .await
            }

            async fn edit_groups(&self, name: &str, edit: &GroupEdit) -> Result<KeyRecord, StoreError> {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let id = Self::lock_key(&mut tx, name).await?;
                let current = Self::record_in(&mut tx, name).await?;
                let groups = edit.apply(&current.groups);
                sqlx::query("UPDATE apikey_keys SET group_names = $1 WHERE id = $2")
                    .bind(groups_json(&groups)?)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                self.commit(tx, Change::Key(name.to_owned())).await?;
                Ok(KeyRecord {
                    groups: groups.into_vec(),
                    ..current
                })
            }

            async fn set_rate_limit(
                &self,
                name: &str,
                rate_limit: Option<RateLimit>,
            ) -> Result<KeyRecord, StoreError> {
                self.update_key(
                    name,
                    "UPDATE apikey_keys SET rate_limit = $1 WHERE name = $2",
                    rate_limit.map(|l| l.to_string()),
                )
                .await
            }

            async fn set_user_active(&self, user: &str, active: bool) -> Result<u64, StoreError> {
                if user.trim().is_empty() {
                    return Err(StoreError::Invalid("a user name cannot be empty".into()));
                }
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                sqlx::query(
                    "INSERT INTO apikey_users (name, active) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET active = excluded.active",
                )
                .bind(user)
                .bind(active)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                let count: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM apikey_keys WHERE user_name = $1")
                        .bind(user)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                self.commit(tx, Change::User(user.to_owned())).await?;
                Ok(count.max(0) as u64)
            }
        }
    };
}

pub(in crate::store) use sql_store;
