//! Administration queries, written once for both databases. Every write runs in one
//! transaction that also writes its audit entry.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    groups_json, now_secs, scopes_json, unavailable, AuditRow, Dialect, KeyRow, Sql, SqlStore,
    UsageRow, KEY_COLUMNS, KEY_FROM,
};
use crate::model::{
    Actor, AuditFilter, AuditRecord, Groups, Imported, ImportedKey, KeyChange, KeyFilter,
    KeyOrigin, KeyRecord, NewKey, NewSecret, UsageDay,
};
use crate::store::{
    not_imported, summary, validate_new, validate_user, Change, KeyStore, StoreError, StoreResult,
    CHANGED_ORIGIN, IMPORT_ORIGIN,
};

#[async_trait]
impl<D: Dialect> KeyStore for SqlStore<D> {
    async fn get(&self, name: &str) -> StoreResult<Option<KeyRecord>> {
        let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.name = $1");
        let row: Option<KeyRow> = Sql::<D>::composed(sql)
            .bind(name)
            .optional(self.db())
            .await
            .map_err(unavailable)?;
        row.map(KeyRow::into_record).transpose()
    }

    async fn list(&self, filter: &KeyFilter) -> StoreResult<Vec<KeyRecord>> {
        // One query: each condition the filter holds adds a clause and its values.
        let mut clauses: Vec<String> = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if filter.user.is_some() {
            clauses.push(format!("k.user_name = ${}", next()));
        }
        let group = filter.group.as_ref().map(|g| {
            // Groups are stored as a JSON array: the group as a JSON string is in it exactly
            // when the key is in the group.
            serde_json::to_string(g).unwrap_or_default()
        });
        if group.is_some() {
            clauses.push(format!("{}(k.group_names, ${}) > 0", D::FIND, next()));
        }
        if filter.revoked.is_some() {
            clauses.push(format!("k.active = ${}", next()));
        }
        let now = OffsetDateTime::now_utc();
        let until = filter.expiring_until(now);
        if until.is_some() {
            let (a, b) = (next(), next());
            clauses.push(format!(
                "k.expires_at IS NOT NULL AND k.expires_at > ${a} AND k.expires_at <= ${b}"
            ));
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} {filter_sql} ORDER BY k.name");
        let mut query = Sql::<D>::composed(sql);
        if let Some(user) = &filter.user {
            query = query.bind(user.clone());
        }
        if let Some(group) = group {
            query = query.bind(group);
        }
        if let Some(revoked) = filter.revoked {
            query = query.bind(!revoked);
        }
        if let Some(until) = until {
            query = query
                .bind(now.unix_timestamp())
                .bind(until.unix_timestamp());
        }
        let rows: Vec<KeyRow> = query.all(self.db()).await.map_err(unavailable)?;
        rows.into_iter().map(KeyRow::into_record).collect()
    }

    async fn create(&self, new: NewKey, by: &Actor) -> StoreResult<KeyRecord> {
        let mut tx = self.begin().await?;
        let name = new.name.clone();
        Self::insert_in(&mut tx, new, true).await?;
        self.finish(tx, &name, by, |r| ("create", summary::of("create", r)))
            .await
    }

    async fn change(&self, name: &str, change: KeyChange, by: &Actor) -> StoreResult<KeyRecord> {
        let mut tx = self.begin().await?;
        let id = Self::lock_key(&mut tx, name).await?;
        let before = Self::record_in(&mut tx, name).await?;
        let mut record = before.clone();
        change.apply(&mut record).map_err(StoreError::Invalid)?;
        let groups = Groups::new(&record.groups).map_err(StoreError::Invalid)?;
        Sql::<D>::new(
            "UPDATE apikey_keys SET active = $1, group_names = $2, rate_limit = $3, quota = $4, \
             allow_ip = $5, expires_at = $6, scopes = $7, description = $8, meta = $9, \
             user_name = $10 WHERE id = $11",
        )
        .bind(record.active)
        .bind(groups_json(&groups)?)
        .bind(record.rate_limit.map(|l| l.to_string()))
        .bind(record.quota.map(|q| q.to_string()))
        .bind(record.allow_ip.to_stored())
        .bind(record.expires_at.map(OffsetDateTime::unix_timestamp))
        .bind(scopes_json(&record.scopes))
        .bind(record.description.clone())
        .bind(record.meta.to_stored())
        .bind(record.user.as_str())
        .bind(id)
        .execute(D::tx(&mut tx))
        .await
        .map_err(unavailable)?;
        let action = change.action();
        self.finish(tx, name, by, |r| {
            (action, summary::of_change(action, &before, r))
        })
        .await
    }

    async fn delete(&self, name: &str, by: &Actor) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let id = Self::lock_key(&mut tx, name).await?;
        Sql::<D>::new("DELETE FROM apikey_secrets WHERE key_id = $1")
            .bind(id)
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        Sql::<D>::new("DELETE FROM apikey_keys WHERE id = $1")
            .bind(id)
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        Self::audit_in(&mut tx, by, "delete", name, "deleted").await?;
        self.commit(tx, Change::Key(name.to_owned())).await
    }

    async fn rotate(&self, name: &str, secret: NewSecret, by: &Actor) -> StoreResult<KeyRecord> {
        let NewSecret {
            digest,
            stub,
            old_valid_until,
            own,
        } = secret;
        let now = now_secs();
        let until = old_valid_until
            .map(OffsetDateTime::unix_timestamp)
            .filter(|t| *t > now);
        let mut tx = self.begin().await?;
        let id = Self::lock_key(&mut tx, name).await?;
        if let Some(rule) = own {
            // Under the key's lock: concurrent rotations are decided one after the other.
            let presented: Option<Option<i64>> = Sql::<D>::new(
                "SELECT valid_until FROM apikey_secrets WHERE key_id = $1 AND digest = $2",
            )
            .bind(id)
            .bind(rule.presented.as_bytes().as_slice())
            .optional(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
            let last: Option<i64> =
                Sql::<D>::new("SELECT rotated_at FROM apikey_keys WHERE id = $1")
                    .bind(id)
                    .one(D::tx(&mut tx))
                    .await
                    .map_err(unavailable)?;
            rule.check(matches!(presented, Some(None)), last, now)?;
        }
        match until {
            // Secrets already in grace keep their own, earlier end.
            Some(until) => Sql::<D>::new(
                "UPDATE apikey_secrets SET valid_until = $1 \
                 WHERE key_id = $2 AND (valid_until IS NULL OR valid_until > $1)",
            )
            .bind(until)
            .bind(id)
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?,
            None => Sql::<D>::new("DELETE FROM apikey_secrets WHERE key_id = $1")
                .bind(id)
                .execute(D::tx(&mut tx))
                .await
                .map_err(unavailable)?,
        };
        Sql::<D>::new("DELETE FROM apikey_secrets WHERE key_id = $1 AND valid_until <= $2")
            .bind(id)
            .bind(now)
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        Self::add_secret(&mut tx, id, &digest, name).await?;
        Sql::<D>::new("UPDATE apikey_keys SET stub = $1, rotated_at = $2 WHERE id = $3")
            .bind(stub.as_str())
            .bind(now)
            .bind(id)
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        let grace = until.and(old_valid_until);
        self.finish(tx, name, by, |r| ("rotate", summary::rotated(r, grace)))
            .await
    }

    async fn usage(&self, tech_name: &str, since_day: i64) -> StoreResult<Vec<UsageDay>> {
        let rows: Vec<UsageRow> = Sql::<D>::new(
            "SELECT day, accepted, forbidden, limited FROM apikey_usage \
             WHERE tech_name = $1 AND day >= $2 ORDER BY day",
        )
        .bind(tech_name)
        .bind(since_day)
        .all(self.db())
        .await
        .map_err(unavailable)?;
        Ok(rows.into_iter().map(UsageDay::from).collect())
    }

    async fn usage_totals(&self, since_day: i64) -> StoreResult<HashMap<String, u64>> {
        let rows: Vec<(String, i64)> = Sql::<D>::new(
            "SELECT tech_name, CAST(SUM(accepted + forbidden + limited) AS BIGINT) \
             FROM apikey_usage WHERE day >= $1 GROUP BY tech_name",
        )
        .bind(since_day)
        .all(self.db())
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(tech, n)| (tech, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn quota_used(&self, tech_name: &str, window: i64) -> StoreResult<u64> {
        let used: Option<i64> = Sql::<D>::new(
            "SELECT used FROM apikey_quota WHERE tech_name = $1 AND window_index = $2",
        )
        .bind(tech_name)
        .bind(window)
        .optional(self.db())
        .await
        .map_err(unavailable)?;
        Ok(used.map_or(0, |u| u64::try_from(u).unwrap_or(0)))
    }

    async fn set_user_active(&self, user: &str, active: bool, by: &Actor) -> StoreResult<u64> {
        validate_user(user)?;
        let mut tx = self.begin().await?;
        Sql::<D>::new(
            "INSERT INTO apikey_users (name, active) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET active = excluded.active",
        )
        .bind(user)
        .bind(active)
        .execute(D::tx(&mut tx))
        .await
        .map_err(unavailable)?;
        let count: i64 = Sql::<D>::new("SELECT COUNT(*) FROM apikey_keys WHERE user_name = $1")
            .bind(user)
            .one(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        let count = count.max(0) as u64;
        if active {
            // An import only ever disables users: enabling one here is what it could undo.
            Self::changed_here(&mut tx, "user_name", user).await?;
        }
        let action = summary::user_action(active);
        let summary = format!("{action}: {count} key(s)");
        Self::audit_in(&mut tx, by, action, user, &summary).await?;
        self.commit(tx, Change::User(user.to_owned())).await?;
        Ok(count)
    }

    async fn import(&self, key: ImportedKey, by: &Actor) -> StoreResult<Imported> {
        let ImportedKey { key: new, active } = key;
        validate_new(&new)?;
        let name = new.name.clone();
        let mut tx = self.begin().await?;
        let outcome = match Self::lock_key(&mut tx, &name).await {
            Err(StoreError::NotFound(_)) => {
                Self::insert_in(&mut tx, new, active).await?;
                Sql::<D>::new("UPDATE apikey_keys SET origin = $1 WHERE name = $2")
                    .bind(IMPORT_ORIGIN)
                    .bind(name.as_str())
                    .execute(D::tx(&mut tx))
                    .await
                    .map_err(unavailable)?;
                Imported::Created
            }
            Err(e) => return Err(e),
            Ok(id) => {
                let origin: Option<String> =
                    Sql::<D>::new("SELECT origin FROM apikey_keys WHERE id = $1")
                        .bind(id)
                        .one(D::tx(&mut tx))
                        .await
                        .map_err(unavailable)?;
                match origin.as_deref() {
                    Some(IMPORT_ORIGIN) => {}
                    Some(CHANGED_ORIGIN) => return Ok(Imported::Conflict),
                    _ => return Err(not_imported(&name)),
                }
                match Self::bring_in_line(&mut tx, id, &new, active).await? {
                    false => return Ok(Imported::Unchanged),
                    true => Imported::Updated,
                }
            }
        };
        self.finish(tx, &name, by, |r| ("import", summary::of("import", r)))
            .await?;
        Ok(outcome)
    }

    async fn origin(&self, name: &str) -> StoreResult<Option<KeyOrigin>> {
        let origin: Option<Option<String>> =
            Sql::<D>::new("SELECT origin FROM apikey_keys WHERE name = $1")
                .bind(name)
                .optional(self.db())
                .await
                .map_err(unavailable)?;
        Ok(origin.map(|o| match o.as_deref() {
            Some(IMPORT_ORIGIN) => KeyOrigin::Imported,
            Some(CHANGED_ORIGIN) => KeyOrigin::ChangedSinceImport,
            _ => KeyOrigin::Here,
        }))
    }

    async fn deactivate_all(&self, by: &Actor) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let count = Sql::<D>::new("UPDATE apikey_keys SET active = FALSE WHERE active")
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        // A later import must not re-activate what was deactivated here.
        Sql::<D>::composed(format!(
            "UPDATE apikey_keys SET origin = '{CHANGED_ORIGIN}' WHERE origin = '{IMPORT_ORIGIN}'"
        ))
        .execute(D::tx(&mut tx))
        .await
        .map_err(unavailable)?;
        let summary = format!("{count} active key(s) deactivated");
        Self::audit_in(&mut tx, by, "neutralize", "*", &summary).await?;
        self.commit(tx, Change::All).await?;
        Ok(count)
    }

    async fn claim_report(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> StoreResult<bool> {
        let now = now.unix_timestamp();
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(window);
        let mut tx = self.begin().await?;
        Sql::<D>::new("DELETE FROM apikey_reports WHERE at <= $1")
            .bind(cutoff)
            .execute(D::tx(&mut tx))
            .await
            .map_err(unavailable)?;
        let claimed = Sql::<D>::new(
            "INSERT INTO apikey_reports (digest, at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest.as_slice())
        .bind(now)
        .execute(D::tx(&mut tx))
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(claimed == 1)
    }

    async fn release_report(&self, digest: &[u8; 32]) -> StoreResult<()> {
        Sql::<D>::new("DELETE FROM apikey_reports WHERE digest = $1")
            .bind(digest.as_slice())
            .execute(self.db())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn note(&self, action: &str, name: &str, summary: &str, by: &Actor) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::audit_in(&mut tx, by, action, name, summary).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let since = filter
            .since
            .map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let rows: Vec<AuditRow> = match &filter.name {
            Some(name) => {
                Sql::<D>::new(
                    "SELECT at, actor, action, name, summary FROM apikey_audit \
                 WHERE name = $1 AND at >= $2 ORDER BY id",
                )
                .bind(name.as_str())
                .bind(since)
                .all(self.db())
                .await
            }
            None => {
                Sql::<D>::new(
                    "SELECT at, actor, action, name, summary FROM apikey_audit \
                 WHERE at >= $1 ORDER BY id",
                )
                .bind(since)
                .all(self.db())
                .await
            }
        }
        .map_err(unavailable)?;
        rows.into_iter().map(AuditRow::into_record).collect()
    }
}
