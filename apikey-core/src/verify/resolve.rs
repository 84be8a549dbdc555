//! Cache misses: what the config sections and the store say of a digest.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use time::OffsetDateTime;

use super::cache::Valid;
use super::filter::Lengths;
use super::{unavailable, SetupError, Verifier};
use crate::config::{ConfigError, KeySection};
use crate::key::{KeyDigest, KeyHasher};
use crate::model::{AllowIp, AuthError, Identity, InvalidKey, KeyRecord, Match, Meta};
use crate::store::SharedLookup;

/// The config sections by the digest of their key, and what the store's answers must be
/// held against.
pub(super) struct Sections {
    by_digest: HashMap<KeyDigest, KeySection>,
    /// Tech names whose stored secret is replaced by a config section.
    overridden: HashSet<String>,
    /// The lengths of the sections' keys.
    lengths: Lengths,
    /// Refuse the keys of disabled users.
    refuse_inactive_users: bool,
}

impl Sections {
    /// Indexes the sections. Every section without `user` must match a stored key's tech name.
    pub(super) async fn new(
        sections: Vec<KeySection>,
        hasher: &KeyHasher,
        store: &SharedLookup,
        refuse_inactive_users: bool,
    ) -> Result<Self, SetupError> {
        let mut out = Sections {
            by_digest: HashMap::new(),
            overridden: HashSet::new(),
            lengths: Lengths::new(),
            refuse_inactive_users,
        };
        for section in sections {
            if section.user.is_none() && store.get_by_tech_name(&section.tech_name).await?.is_none()
            {
                return Err(ConfigError {
                    section: section.section_name(),
                    source_name: section.source_name.clone(),
                    message: format!(
                        "no stored key has the tech name {:?}, so this section is a key on its \
                         own and needs `user = \"…\"`",
                        section.tech_name
                    ),
                }
                .into());
            }
            out.overridden.insert(section.tech_name.clone());
            out.lengths.add(Some(section.key.expose().len()));
            out.by_digest
                .insert(hasher.digest(section.key.expose()), section);
        }
        Ok(out)
    }

    /// How many sections there are.
    pub(super) fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether a section sets the key of this tech name.
    pub(super) fn configures(&self, tech_name: &str) -> bool {
        self.overridden.contains(tech_name)
    }

    /// Whether a section's key may have `len` bytes.
    pub(super) fn may_have_length(&self, len: usize) -> bool {
        self.lengths.may_contain(len)
    }

    /// Whether a section has a key of this digest.
    pub(super) fn holds(&self, digest: &KeyDigest) -> bool {
        self.by_digest.contains_key(digest)
    }
}

impl Verifier {
    /// What the store (and the config sections) say of a digest.
    pub(super) async fn resolve(&self, digest: &KeyDigest) -> Result<Valid, AuthError> {
        let now = OffsetDateTime::from_unix_timestamp(self.clock.unix_secs())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if let Some((stored, section)) = self.sections.by_digest.get_key_value(digest) {
            if !stored.ct_eq(digest) {
                return Err(AuthError::Invalid(InvalidKey::Unknown));
            }
            return self.resolve_section(section, now).await;
        }
        let started = Instant::now();
        self.counters.store_queries.fetch_add(1, Ordering::Relaxed);
        let found = self.store.find_by_digest(digest).await;
        self.meters.store_query(started.elapsed());
        match found.map_err(unavailable)? {
            Some(m) if m.digest.ct_eq(digest) => self.check_match(m, now),
            _ => {
                crate::obs::info!("API key refused: unknown key");
                Err(AuthError::Invalid(InvalidKey::Unknown))
            }
        }
    }

    fn check_match(&self, m: Match, now: OffsetDateTime) -> Result<Valid, AuthError> {
        let r = &m.record;
        let refused = if self.sections.overridden.contains(&r.tech_name) {
            Some((
                "its secret is replaced by a config section",
                AuthError::Invalid(InvalidKey::Unknown),
            ))
        } else if !r.active {
            Some(("revoked", AuthError::Invalid(InvalidKey::Revoked)))
        } else if r.is_expired(now) {
            Some(("expired", AuthError::Invalid(InvalidKey::Expired)))
        } else if m.valid_until.is_some_and(|t| t <= now) {
            Some((
                "a rotated-out secret whose grace period ended",
                AuthError::Invalid(InvalidKey::Expired),
            ))
        } else if self.sections.refuse_inactive_users && !r.user_active {
            Some((
                "its user is disabled",
                AuthError::Invalid(InvalidKey::Revoked),
            ))
        } else {
            None
        };
        if let Some((why, refusal)) = refused {
            crate::obs::info!("API key {:?} refused: {why}", r.name);
            return Err(refusal);
        }
        let meter = self.limits.configure(&r.tech_name, r.rate_limit, r.quota);
        let not_after = [r.expires_at, m.valid_until].into_iter().flatten().min();
        // The grace of a rotated-out secret, unless the key itself expires first.
        let grace = m.valid_until.is_some() && not_after == m.valid_until;
        Ok(Valid::new(
            Identity::with_grants(
                &r.user,
                &r.name,
                &r.tech_name,
                &r.groups,
                &r.scopes,
                &r.meta,
            ),
            not_after.map(OffsetDateTime::unix_timestamp),
            grace,
        )
        .with_limits(meter, &r.allow_ip))
    }

    async fn resolve_section(
        &self,
        section: &KeySection,
        now: OffsetDateTime,
    ) -> Result<Valid, AuthError> {
        let started = Instant::now();
        self.counters.store_queries.fetch_add(1, Ordering::Relaxed);
        let stored = self.store.get_by_tech_name(&section.tech_name).await;
        self.meters.store_query(started.elapsed());
        let stored: Option<KeyRecord> = stored.map_err(unavailable)?;
        let refuse = |why: &str, refusal: AuthError| {
            crate::obs::info!(
                "API key of section [{}] refused: {why}",
                section.section_name()
            );
            Err(refusal)
        };
        let (user, name, groups, user_active, expires_at) = match &stored {
            Some(r) => {
                if !r.active {
                    return refuse(
                        "the stored key is revoked",
                        AuthError::Invalid(InvalidKey::Revoked),
                    );
                }
                if r.is_expired(now) {
                    return refuse(
                        "the stored key is expired",
                        AuthError::Invalid(InvalidKey::Expired),
                    );
                }
                let user = section.user.as_deref().unwrap_or(&r.user);
                let user_active = if user == r.user {
                    r.user_active
                } else {
                    self.user_active(user).await?
                };
                let groups = section.groups.as_deref().unwrap_or(&r.groups);
                (user, r.name.as_str(), groups, user_active, r.expires_at)
            }
            None => {
                let Some(user) = section.user.as_deref() else {
                    return refuse(
                        "no stored key of that tech name and no `user`",
                        AuthError::Invalid(InvalidKey::Unknown),
                    );
                };
                let user_active = self.user_active(user).await?;
                let groups: &[String] = section.groups.as_deref().unwrap_or_default();
                (user, section.tech_name.as_str(), groups, user_active, None)
            }
        };
        if self.sections.refuse_inactive_users && !user_active {
            return refuse(
                "its user is disabled",
                AuthError::Invalid(InvalidKey::Revoked),
            );
        }
        let allow = match (&section.allow_ip, &stored) {
            (Some(own), _) => own,
            (None, Some(r)) => &r.allow_ip,
            (None, None) => &AllowIp::ANYWHERE,
        };
        let stored_limit = stored.as_ref().and_then(|r| r.rate_limit);
        let stored_quota = stored.as_ref().and_then(|r| r.quota);
        let meter = self.limits.configure(
            &section.tech_name,
            section.rate_limit.or(stored_limit),
            section.quota.or(stored_quota),
        );
        let scopes: &[String] = match (&section.scopes, &stored) {
            (Some(own), _) => own,
            (None, Some(r)) => &r.scopes,
            (None, None) => &[],
        };
        let no_meta = Meta::default();
        let meta = match (&section.meta, &stored) {
            (Some(own), _) => own,
            (None, Some(r)) => &r.meta,
            (None, None) => &no_meta,
        };
        Ok(Valid::new(
            Identity::with_grants(user, name, &section.tech_name, groups, scopes, meta),
            expires_at.map(OffsetDateTime::unix_timestamp),
            false,
        )
        .with_limits(meter, allow))
    }

    async fn user_active(&self, user: &str) -> Result<bool, AuthError> {
        let started = Instant::now();
        self.counters.store_queries.fetch_add(1, Ordering::Relaxed);
        let active = self.store.user_active(user).await;
        self.meters.store_query(started.elapsed());
        active.map_err(unavailable)
    }
}
