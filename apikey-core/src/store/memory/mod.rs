//! An in-process store: for tests, demos and keys that come only from config.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    summary, Change, ChangeFeed, KeyLookup, KeyMetering, StoreError, StoreResult, UsableDigest,
};
use crate::key::KeyDigest;
use crate::model::{Actor, AuditRecord, KeyOrigin, KeyRecord, Match, UsageCount, UsageDay};

mod admin;

#[derive(Debug, Clone)]
struct Credential {
    digest: KeyDigest,
    valid_until: Option<OffsetDateTime>,
}

#[derive(Debug)]
struct Entry {
    record: KeyRecord,
    credentials: Vec<Credential>,
    /// Made here, or by an import (the only keys an import may change) and whether it was
    /// changed here since.
    origin: KeyOrigin,
    /// When it last got a new secret (unix seconds).
    rotated_at: Option<i64>,
}

impl Entry {
    /// Notes a change made here (not by an import).
    fn changed_here(&mut self) {
        if self.origin == KeyOrigin::Imported {
            self.origin = KeyOrigin::ChangedSinceImport;
        }
    }
}

impl Entry {
    /// The digests of the secrets that verify at `now` (the key active and unexpired, the
    /// secret current or in its grace).
    /// Only the current secret (no end of validity) has the key's stub to tell its length.
    fn usable_digests(&self, now: OffsetDateTime) -> impl Iterator<Item = UsableDigest> + '_ {
        let usable = self.record.active && !self.record.is_expired(now);
        self.credentials
            .iter()
            .filter(move |c| usable && c.valid_until.is_none_or(|t| t > now))
            .map(|c| {
                let stub = c.valid_until.is_none().then_some(self.record.stub.as_str());
                UsableDigest::of(c.digest, stub)
            })
    }
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, Entry>,
    by_digest: HashMap<KeyDigest, String>,
    /// tech name → name.
    by_tech: HashMap<String, String>,
    inactive_users: std::collections::HashSet<String>,
    /// The audit trail, oldest first.
    audit: Vec<AuditRecord>,
    /// (tech name, quota window) → uses taken.
    quota_used: HashMap<(String, i64), u64>,
    /// Secret scanning reports processed (SHA-256 of the body) → when.
    reports: HashMap<[u8; 32], OffsetDateTime>,
    /// (tech name, day) → requests that day.
    usage: HashMap<(String, i64), UsageDay>,
}

impl State {
    fn entry_mut(&mut self, name: &str) -> StoreResult<&mut Entry> {
        self.keys
            .get_mut(name)
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))
    }

    fn audit(&mut self, by: &Actor, action: &str, name: &str, summary: String) {
        self.audit.push(AuditRecord {
            at: OffsetDateTime::now_utc(),
            actor: by.as_str().to_owned(),
            action: action.to_owned(),
            name: name.to_owned(),
            summary,
        });
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
            changes: ChangeFeed::live(),
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

    /// Changes one key's record under the write lock, records `action` in the audit trail,
    /// then announces the change.
    fn edit(
        &self,
        name: &str,
        by: &Actor,
        action: &str,
        change: impl FnOnce(&mut KeyRecord) -> Result<(), String>,
    ) -> StoreResult<KeyRecord> {
        let record = {
            let mut state = self.write();
            let entry = state.entry_mut(name)?;
            let before = entry.record.clone();
            let mut after = before.clone();
            change(&mut after).map_err(StoreError::Invalid)?;
            entry.record = after;
            entry.changed_here();
            let entry = &state.keys[name];
            let record = state.record(entry);
            let before = KeyRecord {
                user_active: record.user_active,
                ..before
            };
            state.audit(
                by,
                action,
                name,
                summary::of_change(action, &before, &record),
            );
            record
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
    async fn find_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<Match>> {
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

    async fn get_by_tech_name(&self, tech_name: &str) -> StoreResult<Option<KeyRecord>> {
        let state = self.read();
        Ok(state
            .by_tech
            .get(tech_name)
            .and_then(|name| state.keys.get(name))
            .map(|e| state.record(e)))
    }

    async fn user_active(&self, user: &str) -> StoreResult<bool> {
        Ok(!self.read().inactive_users.contains(user))
    }

    fn changes(&self) -> &ChangeFeed {
        &self.changes
    }

    async fn all_digests(&self) -> StoreResult<Option<Vec<UsableDigest>>> {
        let now = OffsetDateTime::now_utc();
        let state = self.read();
        Ok(Some(
            state
                .keys
                .values()
                .flat_map(|e| e.usable_digests(now))
                .collect(),
        ))
    }

    async fn digests_of(&self, name: &str) -> StoreResult<Option<Vec<UsableDigest>>> {
        let now = OffsetDateTime::now_utc();
        let state = self.read();
        Ok(Some(state.keys.get(name).map_or_else(Vec::new, |e| {
            e.usable_digests(now).collect()
        })))
    }
}

#[async_trait]
impl KeyMetering for MemoryStore {
    async fn touch(&self, names: &[String], at: OffsetDateTime) -> StoreResult<()> {
        let mut state = self.write();
        for name in names {
            if let Some(entry) = state.keys.get_mut(name) {
                entry.record.last_used_at = Some(at);
            }
        }
        Ok(())
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
        let mut state = self.write();
        state
            .quota_used
            .retain(|(t, w), _| t != tech_name || *w >= window);
        let used = state
            .quota_used
            .entry((tech_name.to_owned(), window))
            .or_insert(0);
        let granted = want.min(limit.saturating_sub(*used));
        *used += granted;
        Ok((granted, Some(*used)))
    }

    async fn return_quota(&self, tech_name: &str, window: i64, n: u64) -> StoreResult<()> {
        if let Some(used) = self
            .write()
            .quota_used
            .get_mut(&(tech_name.to_owned(), window))
        {
            *used = used.saturating_sub(n);
        }
        Ok(())
    }

    async fn add_usage(&self, counts: &[UsageCount]) -> StoreResult<()> {
        let mut state = self.write();
        for c in counts {
            let day = state
                .usage
                .entry((c.tech_name.clone(), c.counts.day))
                .or_insert(UsageDay {
                    day: c.counts.day,
                    accepted: 0,
                    forbidden: 0,
                    limited: 0,
                });
            day.accepted += c.counts.accepted;
            day.forbidden += c.counts.forbidden;
            day.limited += c.counts.limited;
        }
        Ok(())
    }
}
