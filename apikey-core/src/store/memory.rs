//! An in-process store: for tests, demos and keys that come only from config.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{validate_new, Change, ChangeFeed, KeyLookup, KeyStore, StoreError};
use crate::key::KeyDigest;
use crate::model::{GroupEdit, Groups, KeyRecord, Match, NewKey, NewSecret, RateLimit};

#[derive(Debug, Clone)]
struct Credential {
    digest: KeyDigest,
    valid_until: Option<OffsetDateTime>,
}

#[derive(Debug)]
struct Entry {
    record: KeyRecord,
    credentials: Vec<Credential>,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, Entry>,
    by_digest: HashMap<KeyDigest, String>,
    /// tech name → name.
    by_tech: HashMap<String, String>,
    inactive_users: std::collections::HashSet<String>,
}

impl State {
    fn entry_mut(&mut self, name: &str) -> Result<&mut Entry, StoreError> {
        self.keys
            .get_mut(name)
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))
    }

    fn record(&self, entry: &Entry) -> KeyRecord {
        let mut record = entry.record.clone();
        record.user_active = !self.inactive_users.contains(&record.user);
        record
    }
}

/// Keys held in memory: fast, shared by clones of one process only, gone on exit.
#[derive(Debug)]
pub struct MemoryStore {
    state: RwLock<State>,
    changes: ChangeFeed,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            state: RwLock::new(State::default()),
            changes: ChangeFeed::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-written (every write
        // validates first, then mutates), so a poisoned lock is still consistent.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes one key's record under the write lock, then announces it.
    fn edit(
        &self,
        name: &str,
        change: impl FnOnce(&mut KeyRecord),
    ) -> Result<KeyRecord, StoreError> {
        let record = {
            let mut state = self.write();
            change(&mut state.entry_mut(name)?.record);
            let entry = &state.keys[name];
            state.record(entry)
        };
        self.announce(Change::Key(name.to_owned()));
        Ok(record)
    }

    fn announce(&self, change: Change) {
        self.changes.announce(change);
    }
}

#[async_trait]
impl KeyLookup for MemoryStore {
    async fn find_by_digest(&self, digest: &KeyDigest) -> Result<Option<Match>, StoreError> {
        let state = self.read();
        let Some(name) = state.by_digest.get(digest) else {
            return Ok(None);
        };
        let Some(entry) = state.keys.get(name) else {
            return Ok(None);
        };
        Ok(entry
            .credentials
            .iter()
            .find(|c| c.digest == *digest)
            .map(|c| Match {
                record: state.record(entry),
                digest: c.digest,
                valid_until: c.valid_until,
            }))
    }

    async fn get_by_tech_name(&self, tech_name: &str) -> Result<Option<KeyRecord>, StoreError> {
        let state = self.read();
        Ok(state
            .by_tech
            .get(tech_name)
            .and_then(|name| state.keys.get(name))
            .map(|e| state.record(e)))
    }

    async fn touch(&self, names: &[String], at: OffsetDateTime) -> Result<(), StoreError> {
        let mut state = self.write();
        for name in names {
            if let Some(entry) = state.keys.get_mut(name) {
                entry.record.last_used_at = Some(at);
            }
        }
        Ok(())
    }

    async fn user_active(&self, user: &str) -> Result<bool, StoreError> {
        Ok(!self.read().inactive_users.contains(user))
    }

    fn changes(&self) -> &ChangeFeed {
        &self.changes
    }

    async fn all_digests(&self) -> Result<Option<Vec<KeyDigest>>, StoreError> {
        Ok(Some(self.read().by_digest.keys().copied().collect()))
    }

    async fn digests_of(&self, name: &str) -> Result<Option<Vec<KeyDigest>>, StoreError> {
        let state = self.read();
        Ok(Some(state.keys.get(name).map_or_else(Vec::new, |e| {
            e.credentials.iter().map(|c| c.digest).collect()
        })))
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn get(&self, name: &str) -> Result<Option<KeyRecord>, StoreError> {
        let state = self.read();
        Ok(state.keys.get(name).map(|e| state.record(e)))
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let state = self.read();
        let mut all: Vec<KeyRecord> = state.keys.values().map(|e| state.record(e)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn create(&self, new: NewKey) -> Result<KeyRecord, StoreError> {
        let tech_name = validate_new(&new)?;
        let record = {
            let mut state = self.write();
            if state.keys.contains_key(&new.name) || state.by_tech.contains_key(&tech_name) {
                return Err(StoreError::Duplicate(new.name));
            }
            if state.by_digest.contains_key(&new.digest) {
                return Err(StoreError::Invalid(
                    "that secret is already used by another key".into(),
                ));
            }
            let record = KeyRecord {
                name: new.name.clone(),
                tech_name,
                user: new.user,
                groups: new.groups.into_vec(),
                active: true,
                user_active: true,
                stub: new.stub,
                expires_at: new.expires_at,
                created_at: OffsetDateTime::now_utc(),
                last_used_at: None,
                rate_limit: new.rate_limit,
            };
            state.by_digest.insert(new.digest, new.name.clone());
            state
                .by_tech
                .insert(record.tech_name.clone(), new.name.clone());
            let entry = Entry {
                record,
                credentials: vec![Credential {
                    digest: new.digest,
                    valid_until: None,
                }],
            };
            let record = state.record(&entry);
            state.keys.insert(new.name.clone(), entry);
            record
        };
        self.announce(Change::Key(record.name.clone()));
        Ok(record)
    }

    async fn set_active(&self, name: &str, active: bool) -> Result<KeyRecord, StoreError> {
        self.edit(name, |r| r.active = active)
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
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
        }
        self.announce(Change::Key(name.to_owned()));
        Ok(())
    }

    async fn rotate(&self, name: &str, secret: NewSecret) -> Result<KeyRecord, StoreError> {
        let digest = secret.digest;
        let now = OffsetDateTime::now_utc();
        let old_valid_until = secret.old_valid_until.filter(|t| *t > now);
        let record = {
            let mut state = self.write();
            state.entry_mut(name)?;
            if state.by_digest.contains_key(&digest) {
                return Err(StoreError::Invalid(
                    "that secret is already used by a key".into(),
                ));
            }
            let entry = state.entry_mut(name)?;
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
            state.record(entry)
        };
        self.announce(Change::Key(name.to_owned()));
        Ok(record)
    }

    async fn set_groups(&self, name: &str, groups: Groups) -> Result<KeyRecord, StoreError> {
        self.edit(name, |r| r.groups = groups.into_vec())
    }

    async fn edit_groups(&self, name: &str, edit: &GroupEdit) -> Result<KeyRecord, StoreError> {
        self.edit(name, |r| r.groups = edit.apply(&r.groups).into_vec())
    }

    async fn set_rate_limit(
        &self,
        name: &str,
        rate_limit: Option<RateLimit>,
    ) -> Result<KeyRecord, StoreError> {
        self.edit(name, |r| r.rate_limit = rate_limit)
    }

    async fn set_user_active(&self, user: &str, active: bool) -> Result<u64, StoreError> {
        if user.trim().is_empty() {
            return Err(StoreError::Invalid("a user name cannot be empty".into()));
        }
        let count = {
            let mut state = self.write();
            if active {
                state.inactive_users.remove(user);
            } else {
                state.inactive_users.insert(user.to_owned());
            }
            state
                .keys
                .values()
                .filter(|e| e.record.user == user)
                .count() as u64
        };
        self.announce(Change::User(user.to_owned()));
        Ok(count)
    }
}
