//! The request path's queries, written once for both databases (sqlx binds `$n` on both).

/// Implements [`KeyLookup`](crate::store::KeyLookup) for `$store`.
macro_rules! sql_lookup {
    ($store:ident) => {
        #[async_trait]
        impl KeyLookup for $store {
            async fn find_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<Match>> {
                let sql = format!(
                    "SELECT {KEY_COLUMNS}, s.digest, s.valid_until FROM apikey_secrets s \
                     JOIN apikey_keys k ON k.id = s.key_id \
                     LEFT JOIN apikey_users u ON u.name = k.user_name WHERE s.digest = $1"
                );
                let row: Option<MatchRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
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

            async fn get_by_tech_name(&self, tech_name: &str) -> StoreResult<Option<KeyRecord>> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.tech_name = $1");
                let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tech_name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                row.map(KeyRow::into_record).transpose()
            }

            async fn user_active(&self, user: &str) -> StoreResult<bool> {
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

            async fn all_digests(&self) -> StoreResult<Option<Vec<KeyDigest>>> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT s.digest FROM apikey_secrets s JOIN apikey_keys k ON k.id = s.key_id \
                     WHERE k.active AND (k.expires_at IS NULL OR k.expires_at > $1) \
                     AND (s.valid_until IS NULL OR s.valid_until > $1)",
                )
                .bind(now_secs())
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                digests(rows).map(Some)
            }

            async fn digests_of(&self, name: &str) -> StoreResult<Option<Vec<KeyDigest>>> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT s.digest FROM apikey_secrets s JOIN apikey_keys k ON k.id = s.key_id \
                     WHERE k.name = $1 AND k.active \
                     AND (k.expires_at IS NULL OR k.expires_at > $2) \
                     AND (s.valid_until IS NULL OR s.valid_until > $2)",
                )
                .bind(name)
                .bind(now_secs())
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                digests(rows).map(Some)
            }
        }

        #[async_trait]
        impl KeyMetering for $store {
            async fn touch(&self, names: &[String], at: OffsetDateTime) -> StoreResult<()> {
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

            async fn take_quota(
                &self,
                tech_name: &str,
                window: i64,
                limit: u64,
                want: u64,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                // A write first: it locks the row (PostgreSQL) or the database (SQLite) until
                // the commit, so concurrent takers line up.
                let used: i64 = sqlx::query_scalar(
                    "INSERT INTO apikey_quota (tech_name, window_index, used) VALUES ($1, $2, 0) \
                     ON CONFLICT (tech_name, window_index) \
                     DO UPDATE SET used = apikey_quota.used RETURNING used",
                )
                .bind(tech_name)
                .bind(window)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
                let used = u64::try_from(used).unwrap_or(0);
                let granted = want.min(limit.saturating_sub(used));
                if granted > 0 {
                    sqlx::query(
                        "UPDATE apikey_quota SET used = used + $1 \
                         WHERE tech_name = $2 AND window_index = $3",
                    )
                    .bind(count(granted))
                    .bind(tech_name)
                    .bind(window)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
                sqlx::query("DELETE FROM apikey_quota WHERE tech_name = $1 AND window_index < $2")
                    .bind(tech_name)
                    .bind(window)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(granted)
            }

            async fn return_quota(&self, tech_name: &str, window: i64, n: u64) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE apikey_quota SET used = CASE WHEN used > $1 THEN used - $1 ELSE 0 END \
                     WHERE tech_name = $2 AND window_index = $3",
                )
                .bind(count(n))
                .bind(tech_name)
                .bind(window)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
                Ok(())
            }

            async fn add_usage(&self, counts: &[UsageCount]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                for c in counts {
                    sqlx::query(
                        "INSERT INTO apikey_usage (tech_name, day, accepted, forbidden, limited) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tech_name, day) DO UPDATE SET \
                         accepted = apikey_usage.accepted + excluded.accepted, \
                         forbidden = apikey_usage.forbidden + excluded.forbidden, \
                         limited = apikey_usage.limited + excluded.limited",
                    )
                    .bind(&c.tech_name)
                    .bind(c.counts.day)
                    .bind(count(c.counts.accepted))
                    .bind(count(c.counts.forbidden))
                    .bind(count(c.counts.limited))
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
                // Not a change of what verification depends on: no notification.
                tx.commit().await.map_err(unavailable)
            }
        }
    };
}

pub(in crate::store) use sql_lookup;
