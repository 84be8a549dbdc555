//! Administration of the memory store: every write under the one write lock, audited there.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Credential, Entry, MemoryStore, State};
use crate::key::KeyDigest;
use crate::model::{
    Actor, AuditFilter, AuditRecord, Imported, ImportedKey, KeyChange, KeyFilter, KeyOrigin,
    KeyRecord, NewKey, NewSecret, UsageDay,
};
use crate::store::{
    not_imported, summary, validate_new, validate_user, Change, KeyStore, StoreError, StoreResult,
};

fn reused() -> StoreError {
    StoreError::Invalid("that secret is already used by another key".into())
}

impl State {
    /// Inserts a new key (checked for a taken name, tech name or secret).
    fn insert(&mut self, new: NewKey, active: bool) -> StoreResult<KeyRecord> {
        let tech_name = validate_new(&new)?;
        if self.keys.contains_key(&new.name) || self.by_tech.contains_key(&tech_name) {
            return Err(StoreError::Duplicate(new.name));
        }
        if self.by_digest.contains_key(&new.digest) {
            return Err(reused());
        }
        let record = KeyRecord {
            name: new.name.clone(),
            tech_name,
            user: new.user,
            groups: new.groups.into_vec(),
            active,
            user_active: true,
            stub: new.stub,
            expires_at: new.expires_at,
            created_at: OffsetDateTime::now_utc(),
            last_used_at: None,
            rate_limit: new.rate_limit,
            quota: new.quota,
            allow_ip: new.allow_ip,
            scopes: new.scopes.into_vec(),
            description: new.description.filter(|d| !d.is_empty()),
            meta: new.meta,
        };
        self.by_digest.insert(new.digest, new.name.clone());
        self.by_tech
            .insert(record.tech_name.clone(), new.name.clone());
        let entry = Entry {
            record,
            credentials: vec![Credential {
                digest: new.digest,
                valid_until: None,
            }],
            origin: KeyOrigin::Here,
            rotated_at: None,
        };
        let record = self.record(&entry);
        self.keys.insert(new.name, entry);
        Ok(record)
    }

    /// Replaces every secret of a key by `digest`.
    fn replace_secrets(&mut self, name: &str, digest: KeyDigest) -> StoreResult<()> {
        if self
            .by_digest
            .get(&digest)
            .is_some_and(|owner| owner != name)
        {
            return Err(reused());
        }
        let entry = self.entry_mut(name)?;
        let old: Vec<KeyDigest> = entry.credentials.drain(..).map(|c| c.digest).collect();
        entry.credentials.push(Credential {
            digest,
            valid_until: None,
        });
        for d in old {
            self.by_digest.remove(&d);
        }
        self.by_digest.insert(digest, name.to_owned());
        Ok(())
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn get(&self, name: &str) -> StoreResult<Option<KeyRecord>> {
        let state = self.read();
        Ok(state.keys.get(name).map(|e| state.record(e)))
    }

    async fn list(&self, filter: &KeyFilter) -> StoreResult<Vec<KeyRecord>> {
        let state = self.read();
        let now = OffsetDateTime::now_utc();
        let mut all: Vec<KeyRecord> = state
            .keys
            .values()
            .map(|e| state.record(e))
            .filter(|r| filter.matches(r, now))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn create(&self, new: NewKey, by: &Actor) -> StoreResult<KeyRecord> {
        let record = {
            let mut state = self.write();
            let record = state.insert(new, true)?;
            state.audit(by, "create", &record.name, summary::of("create", &record));
            record
        };
        self.announce(Change::Key(record.name.clone()));
        Ok(record)
    }

    async fn change(&self, name: &str, change: KeyChange, by: &Actor) -> StoreResult<KeyRecord> {
        self.edit(name, by, change.action(), |r| change.apply(r))
    }

    async fn delete(&self, name: &str, by: &Actor) -> StoreResult<()> {
        {
            let mut state = self.write();
            let entry = state
                .keys
                .remove(name)
                .ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
            for c in entry.credentials {
                state.by_digest.remove(&c.digest);
            }
            state.by_tech.remove(&entry.record.tech_name);
            state.audit(by, "delete", name, "deleted".into());
        }
        self.announce(Change::Key(name.to_owned()));
        Ok(())
    }

    async fn rotate(&self, name: &str, secret: NewSecret, by: &Actor) -> StoreResult<KeyRecord> {
        let digest = secret.digest;
        let now = OffsetDateTime::now_utc();
        let old_valid_until = secret.old_valid_until.filter(|t| *t > now);
        let record = {
            let mut state = self.write();
            let entry = state.entry_mut(name)?;
            if let Some(rule) = secret.own {
                let current = entry
                    .credentials
                    .iter()
                    .any(|c| c.digest == rule.presented && c.valid_until.is_none());
                rule.check(current, entry.rotated_at, now.unix_timestamp())?;
            }
            if state.by_digest.contains_key(&digest) {
                return Err(reused());
            }
            let entry = state.entry_mut(name)?;
            entry.rotated_at = Some(now.unix_timestamp());
            entry.changed_here();
            let mut dropped = Vec::new();
            entry.credentials.retain_mut(|c| {
                // Secrets already in grace keep their own, earlier end.
                let until = match (c.valid_until, old_valid_until) {
                    (_, None) => None,
                    (Some(t), Some(u)) => Some(t.min(u)),
                    (None, Some(u)) => Some(u),
                };
                c.valid_until = until;
                let keep = until.is_some_and(|t| t > now);
                if !keep {
                    dropped.push(c.digest);
                }
                keep
            });
            entry.credentials.push(Credential {
                digest,
                valid_until: None,
            });
            entry.record.stub = secret.stub;
            for d in dropped {
                state.by_digest.remove(&d);
            }
            state.by_digest.insert(digest, name.to_owned());
            let entry = &state.keys[name];
            let record = state.record(entry);
            state.audit(
                by,
                "rotate",
                name,
                summary::rotated(&record, old_valid_until),
            );
            record
        };
        self.announce(Change::Key(name.to_owned()));
        Ok(record)
    }

    async fn usage(&self, tech_name: &str, since_day: i64) -> StoreResult<Vec<UsageDay>> {
        let state = self.read();
        let mut days: Vec<UsageDay> = state
            .usage
            .iter()
            .filter(|((t, day), _)| t == tech_name && *day >= since_day)
            .map(|(_, u)| *u)
            .collect();
        days.sort_by_key(|u| u.day);
        Ok(days)
    }

    async fn usage_totals(&self, since_day: i64) -> StoreResult<HashMap<String, u64>> {
        let state = self.read();
        let mut totals: HashMap<String, u64> = HashMap::new();
        for ((tech, day), u) in &state.usage {
            if *day >= since_day {
                *totals.entry(tech.clone()).or_default() += u.accepted + u.forbidden + u.limited;
            }
        }
        totals.retain(|_, n| *n > 0);
        Ok(totals)
    }

    async fn quota_used(&self, tech_name: &str, window: i64) -> StoreResult<u64> {
        let state = self.read();
        Ok(state
            .quota_used
            .get(&(tech_name.to_owned(), window))
            .copied()
            .unwrap_or(0))
    }

    async fn set_user_active(&self, user: &str, active: bool, by: &Actor) -> StoreResult<u64> {
        validate_user(user)?;
        let count = {
            let mut state = self.write();
            if active {
                state.inactive_users.remove(user);
                // An import only ever disables users: enabling one here is what it could undo.
                for entry in state.keys.values_mut() {
                    if entry.record.user == user {
                        entry.changed_here();
                    }
                }
            } else {
                state.inactive_users.insert(user.to_owned());
            }
            let count = state
                .keys
                .values()
                .filter(|e| e.record.user == user)
                .count() as u64;
            let action = summary::user_action(active);
            state.audit(by, action, user, format!("{action}: {count} key(s)"));
            count
        };
        self.announce(Change::User(user.to_owned()));
        Ok(count)
    }

    async fn import(&self, key: ImportedKey, by: &Actor) -> StoreResult<Imported> {
        let ImportedKey { key: new, active } = key;
        validate_new(&new)?;
        let name = new.name.clone();
        let outcome = {
            let mut state = self.write();
            let outcome = match state.keys.get(&name) {
                None => {
                    state.insert(new, active)?;
                    state.entry_mut(&name)?.origin = KeyOrigin::Imported;
                    Imported::Created
                }
                Some(entry) if entry.origin == KeyOrigin::Here => return Err(not_imported(&name)),
                Some(entry) if entry.origin == KeyOrigin::ChangedSinceImport => {
                    return Ok(Imported::Conflict)
                }
                Some(entry) => {
                    let same_secret = matches!(
                        entry.credentials.as_slice(),
                        [only] if only.digest == new.digest && only.valid_until.is_none()
                    );
                    let r = &entry.record;
                    if same_secret
                        && r.user == new.user
                        && r.groups == new.groups.as_slice()
                        && r.active == active
                    {
                        return Ok(Imported::Unchanged);
                    }
                    if !same_secret {
                        state.replace_secrets(&name, new.digest)?;
                    }
                    let record = &mut state.entry_mut(&name)?.record;
                    record.user = new.user;
                    record.groups = new.groups.into_vec();
                    record.active = active;
                    if !same_secret {
                        record.stub = new.stub;
                    }
                    Imported::Updated
                }
            };
            let record = state.record(&state.keys[&name]);
            state.audit(by, "import", &name, summary::of("import", &record));
            outcome
        };
        self.announce(Change::Key(name));
        Ok(outcome)
    }

    async fn origin(&self, name: &str) -> StoreResult<Option<KeyOrigin>> {
        Ok(self.read().keys.get(name).map(|e| e.origin))
    }

    async fn deactivate_all(&self, by: &Actor) -> StoreResult<u64> {
        let count = {
            let mut state = self.write();
            let mut count = 0;
            for entry in state.keys.values_mut() {
                count += u64::from(entry.record.active);
                entry.record.active = false;
                entry.changed_here();
            }
            state.audit(
                by,
                "neutralize",
                "*",
                format!("{count} active key(s) deactivated"),
            );
            count
        };
        self.announce(Change::All);
        Ok(count)
    }

    async fn claim_report(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> StoreResult<bool> {
        let cutoff =
            now.checked_sub(time::Duration::try_from(window).unwrap_or(time::Duration::MAX));
        let mut state = self.write();
        state.reports.retain(|_, at| cutoff.is_none_or(|c| *at > c));
        Ok(match state.reports.entry(*digest) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(now);
                true
            }
        })
    }

    async fn release_report(&self, digest: &[u8; 32]) -> StoreResult<()> {
        self.write().reports.remove(digest);
        Ok(())
    }

    async fn note(&self, action: &str, name: &str, summary: &str, by: &Actor) -> StoreResult<()> {
        self.write().audit(by, action, name, summary.to_owned());
        Ok(())
    }

    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let state = self.read();
        Ok(state
            .audit
            .iter()
            .filter(|a| filter.name.as_ref().is_none_or(|n| a.name == *n))
            .filter(|a| filter.since.is_none_or(|t| a.at >= t))
            .cloned()
            .collect())
    }
}
