//! The request path's queries, written once for both databases.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    count, now_secs, opt_ts, unavailable, usable_digests, Dialect, KeyRow, MatchRow, Sql, SqlStore,
    KEY_COLUMNS, KEY_FROM,
};
use crate::key::KeyDigest;
use crate::model::{KeyRecord, Match, UsageCount};
use crate::store::{ChangeFeed, KeyLookup, KeyMetering, StoreError, StoreResult, UsableDigest};

#[async_trait]
impl<D: Dialect> KeyLookup for SqlStore<D> {
    async fn find_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<Match>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, s.digest, s.valid_until FROM apikey_secrets s \
             JOIN apikey_keys k ON k.id = s.key_id \
             LEFT JOIN apikey_users u ON u.name = k.user_name WHERE s.digest = $1"
        );
        let row: Option<MatchRow> = Sql::<D>::composed(sql)
            .bind(digest.as_bytes().as_slice())
            .optional(self.db())
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
        let row: Option<KeyRow> = Sql::<D>::composed(sql)
            .bind(tech_name)
            .optional(self.db())
            .await
            .map_err(unavailable)?;
        row.map(KeyRow::into_record).transpose()
    }

    async fn user_active(&self, user: &str) -> StoreResult<bool> {
        let active: Option<bool> = Sql::<D>::new("SELECT active FROM apikey_users WHERE name = $1")
            .bind(user)
            .optional(self.db())
            .await
            .map_err(unavailable)?;
        Ok(active.unwrap_or(true))
    }

    fn changes(&self) -> &ChangeFeed {
        &self.changes
    }

    async fn all_digests(&self) -> StoreResult<Option<Vec<UsableDigest>>> {
        let rows = Sql::<D>::new(USABLE_DIGESTS)
            .bind(now_secs())
            .all(self.db())
            .await
            .map_err(unavailable)?;
        usable_digests(rows).map(Some)
    }

    async fn digests_of(&self, name: &str) -> StoreResult<Option<Vec<UsableDigest>>> {
        let rows = Sql::<D>::new(USABLE_DIGESTS_OF)
            .bind(now_secs())
            .bind(name)
            .all(self.db())
            .await
            .map_err(unavailable)?;
        usable_digests(rows).map(Some)
    }
}

/// The digests that verify at `$1` (their key active and unexpired, the secret current or in
/// its grace), each with its key's stub when it is the key's current secret.
macro_rules! usable_digests_sql {
    () => {
        "SELECT s.digest, CASE WHEN s.valid_until IS NULL THEN k.stub END \
         FROM apikey_secrets s JOIN apikey_keys k ON k.id = s.key_id \
         WHERE k.active AND (k.expires_at IS NULL OR k.expires_at > $1) \
         AND (s.valid_until IS NULL OR s.valid_until > $1)"
    };
}
const USABLE_DIGESTS: &str = usable_digests_sql!();
/// The same for the key named `$2`.
const USABLE_DIGESTS_OF: &str = concat!(usable_digests_sql!(), " AND k.name = $2");

#[async_trait]
impl<D: Dialect> KeyMetering for SqlStore<D> {
    async fn touch(&self, names: &[String], at: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for name in names {
            Sql::<D>::new(
                "UPDATE apikey_keys SET last_used_at = $1 \
                 WHERE name = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(at.unix_timestamp())
            .bind(name.as_str())
            .execute(D::tx(&mut tx))
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
        let (granted, _) = self
            .take_quota_counted(tech_name, window, limit, want)
            .await?;
        Ok(granted)
    }

    async fn take_quota_counted(
        &self,
        tech_name: &str,
        window: i64,
        limit: u64,
        want: u64,
    ) -> StoreResult<(u64, Option<u64>)> {
        let mut tx = self.begin().await?;
        // A write first: it locks the row (PostgreSQL) or the database (SQLite) until
        // the commit, so concurrent takers line up.
        let used: i64 = Sql::<D>::new(
            "INSERT INTO apikey_quota (tech_name, window_index, used) VALUES ($1, $2, 0) \
             ON CONFLICT (tech_name, window_index) \
             DO UPDATE SET used = apikey_quota.used RETURNING used",
        )
        .bind(tech_name)
        .bind(window)
        .one(D::tx(&mut tx))
        .await
        .map_err(unavailable)?;
        let used = u64::try_from(used).unwrap_or(0);
        let granted = want.min(limit.saturating_sub(used));
        if granted > 0 {
            Sql::<D>::new(
                "UPDATE apikey_quota SET used = used + $1 \
                 WHERE tech_name = $2 AND window_index = $3",
            )
            .bind(count(granted))
            .bind(tech_name)
            .bind(window)
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        }
        Sql::<D>::new("DELETE FROM apikey_quota WHERE tech_name = $1 AND window_index < $2")
            .bind(tech_name)
            .bind(window)
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok((granted, Some(used + granted)))
    }

    async fn return_quota(&self, tech_name: &str, window: i64, n: u64) -> StoreResult<()> {
        Sql::<D>::new(
            "UPDATE apikey_quota SET used = CASE WHEN used > $1 THEN used - $1 ELSE 0 END \
             WHERE tech_name = $2 AND window_index = $3",
        )
        .bind(count(n))
        .bind(tech_name)
        .bind(window)
        .execute(self.db())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn add_usage(&self, counts: &[UsageCount]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for c in counts {
            Sql::<D>::new(
                "INSERT INTO apikey_usage (tech_name, day, accepted, forbidden, limited) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tech_name, day) DO UPDATE SET \
                 accepted = apikey_usage.accepted + excluded.accepted, \
                 forbidden = apikey_usage.forbidden + excluded.forbidden, \
                 limited = apikey_usage.limited + excluded.limited",
            )
            .bind(c.tech_name.as_str())
            .bind(c.counts.day)
            .bind(count(c.counts.accepted))
            .bind(count(c.counts.forbidden))
            .bind(count(c.counts.limited))
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        }
        // Not a change of what verification depends on: no notification.
        tx.commit().await.map_err(unavailable)
    }
}
