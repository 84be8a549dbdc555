//! The request path: a header value in, an [`Identity`] or an [`AuthError`] out.
//!
//! In order: the format check, the cache of verified keys, the digest filter, the cache of
//! unknown keys, then one shared store lookup per digest (`resolve.rs`); every accepted key is
//! then counted against its rate limit and quota ([`crate::limits`]) and its use noted
//! (`usage.rs`).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::clock::{Clock, Reading, SharedClock, SystemClock};
use crate::config::{ApiKeyConfig, ConfigError};
use crate::key::{KeyDigest, KeyFormat, KeyHasher, Malformed};
use crate::limits::{Budget, Limits, LimitsStats, Outcome, Pending};
use crate::model::{ClientIp, Identity};
use crate::store::{ChangeListener, SharedLookup, StoreError};
use cache::{Caches, Valid};
use credentials::Credentials;
use filter::DigestFilter;
use resolve::Sections;
use usage::UsageLog;

mod cache;
mod credentials;
mod error;
mod filter;
mod memo;
mod meters;
mod outcome;
mod request;
mod resolve;
mod usage;

pub use crate::model::{AuthError, InvalidKey};
pub use cache::{NEGATIVE_CAPACITY, POSITIVE_CAPACITY};
pub use error::SetupError;
pub use filter::{FilterStats, FILTER_MISS_BUDGET, NOT_LIVE_MISS_BUDGET};
use meters::Meters;
pub use outcome::RequestOutcome;
pub use request::{Header, KeyRequest, RequestFacts};

/// A key that passed: who it speaks for, and when it stops working if that is soon (a key
/// expiring within `expiry_warning`, a rotated-out secret in its grace): services announce it
/// with a `Sunset` header (RFC 8594).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who the key speaks for.
    pub identity: Identity,
    /// The digest of the secret the request presented (what a route acting on that very
    /// secret needs: a key's rotation of itself).
    pub secret: KeyDigest,
    /// When the key stops working, when that is soon.
    pub sunset: Option<OffsetDateTime>,
    /// The key's rate limit and quota and what is left of them, for the `RateLimit-Policy`
    /// and `RateLimit` fields (empty for a key without limits, or with `ratelimit_headers =
    /// false`).
    pub limits: Budget,
}

/// What [`Verifier::verify_request_now`] found.
#[derive(Debug)]
pub enum Checked {
    /// Decided without waiting, counted in the metrics.
    Done(Result<Verified, AuthError>),
    /// To finish with [`Verifier::verify_request_later`].
    Later(Later),
}

/// Where a verification that has to wait stands (nothing done in it is done again).
#[derive(Debug)]
pub struct Later(At);

#[derive(Debug)]
enum At {
    /// From the start (the `tracing` feature's span is the async path's).
    Start,
    /// The digest of a well-formed key: the caches could not answer.
    Digest(KeyDigest),
    /// A cached valid key whose limits wait for a lease (its use this minute already noted).
    Accept(Box<Accept>),
}

#[derive(Debug)]
struct Accept {
    digest: KeyDigest,
    valid: Valid,
    now: i64,
    noted: Noted,
    /// What the request holds of its limits so far.
    pending: Pending,
}

/// Where a request of a valid key is noted: its use (for last-used times) and its count for
/// the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Noted {
    /// On its cache entry, use and count (a key without limits).
    Counted,
    /// On its cache entry, its use; the limits count it.
    Used,
    /// Not cached: the usage log notes its use, the limits count it.
    Uncached,
}

impl Noted {
    fn cached(counted: bool) -> Self {
        if counted {
            Noted::Counted
        } else {
            Noted::Used
        }
    }
}

/// How long a request waits for the store's change check (see `changed_elsewhere`).
const CHECK_NOW_WITHIN: std::time::Duration = std::time::Duration::from_millis(50);

/// Whether an instance can serve: what an orchestrator's readiness probe asks
/// ([`Verifier::ready`]). Names what is missing, never anything of keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// The store answers, the change feed is live and the digest filter is loaded.
    pub ready: bool,
    /// What is not: `store`, `feed`, `filter` (left out when nothing is missing).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<&'static str>,
}

/// How long the readiness probe waits for the store.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// A key to identify: as presented (format-checked and digested here), or by the digest of
/// its secret (a session bound to it).
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A key as a person typed it (SP/HTAB around it trimmed).
    Key(&'a str),
    /// The digest of a secret.
    Digest(&'a KeyDigest),
}

/// One store lookup in flight, shared by every request that misses on the same digest in the
/// same cache generation.
type Lookup = OnceCell<Result<Valid, AuthError>>;

/// What verification has done, for metrics.
#[derive(Default)]
struct Counters {
    /// Store queries (cache misses).
    store_queries: AtomicU64,
    /// Unknown keys the digest filter refused without a store query.
    filtered: AtomicU64,
    /// Of those, the ones refused by their length alone, before any hash.
    unhashed: AtomicU64,
}

/// Verifies keys against config sections and a store's [`KeyLookup`](crate::store::KeyLookup)
/// side, with caches in front of the store. It holds no way to change keys.
///
/// Precedence follows Odoo's `server_environment`: a `[api_key_<tech_name>]` section replaces
/// the stored secret of the key with that tech name (the stored one stops working); a section
/// with no stored key is a key on its own and names its `user`.
///
/// Valid keys are cached for `cache_ttl`, unknown ones (apart, bounded) for
/// `negative_cache_ttl`. Every change the store announces — made here, by the CLI or by another
/// instance — drops exactly the entries it affects; expiry is re-checked on every hit.
pub struct Verifier {
    store: SharedLookup,
    credentials: Credentials,
    /// Keys expiring within this many seconds get a `Sunset` warning.
    expiry_warning: i64,
    /// Whether responses tell clients their limits (`ratelimit_headers`).
    ratelimit_headers: bool,
    /// How a request's client address is established (`trusted_proxies`, `client_ip_header`).
    client_ip: ClientIp,
    format: KeyFormat,
    hasher: KeyHasher,
    /// The digests of keys presented lately, by a keyed tag of the key.
    memo: memo::DigestMemo,
    /// Where the time is read (key expiry, grace, the caches' time to live, admin sessions).
    clock: SharedClock,
    sections: Sections,
    caches: Arc<Caches>,
    /// Lookups in flight, with the cache generation they started in: a request that arrives
    /// after a change (a newer generation) never joins a lookup from before it.
    inflight: Mutex<HashMap<KeyDigest, (u64, Arc<Lookup>)>>,
    filter: DigestFilter,
    limits: Limits,
    usage: UsageLog,
    counters: Counters,
    meters: Arc<Meters>,
    /// Keeps the metrics' gauges current (feature `metrics`).
    #[cfg(feature = "metrics")]
    _gauges: crate::task::Background,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("store", &self.store)
            .field("header", &self.credentials.header)
            .field("sections", &self.sections.len())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: StoreError) -> AuthError {
    crate::obs::error!("API key lookup failed: {e}");
    AuthError::Unavailable
}

impl Verifier {
    /// Builds a verifier over the lookup side of a store. Every section without `user` must
    /// match a stored key's tech name.
    pub async fn new(config: ApiKeyConfig, store: SharedLookup) -> Result<Self, SetupError> {
        Self::with_clock(config, store, Arc::new(SystemClock)).await
    }

    /// [`new`](Self::new), reading the time from `clock`: key expiry, rotation grace, the
    /// caches' time to live and the admin page's sessions follow it (a
    /// [`ManualClock`](crate::clock::ManualClock) in tests, moved by hand instead of waiting).
    /// Rate limits, quotas and usage days keep the system's clock.
    pub async fn with_clock(
        config: ApiKeyConfig,
        store: SharedLookup,
        clock: SharedClock,
    ) -> Result<Self, SetupError> {
        let settings = config.settings;
        let format = KeyFormat::new(&settings.key_prefix).unwrap_or_default();
        let hasher = KeyHasher::new(settings.pepper.as_ref());
        let sections = Sections::new(
            config.sections,
            &hasher,
            &store,
            settings.disable_keys_of_inactive_users,
        )
        .await?;
        let caches = Arc::new(Caches::new(
            settings.cache_ttl,
            settings.negative_cache_ttl,
            &clock,
        ));
        let limits = Limits::start(&settings, store.clone())
            .await
            .map_err(|e| ConfigError {
                section: "apikey".into(),
                source_name: "settings".into(),
                message: e.to_string(),
            })?;
        limits.count_from(caches.clone());
        // Registered before the first lookup, so no change can slip between.
        let listener: Arc<dyn ChangeListener> = caches.clone();
        store.changes().listen(Arc::downgrade(&listener));
        let meters = Arc::new(Meters::new());
        #[cfg(feature = "metrics")]
        let gauges = {
            let (meters, caches, store) = (meters.clone(), caches.clone(), store.clone());
            let fallback = limits.fallback_probe();
            crate::task::Background(tokio::spawn(async move {
                let mut ticker = tokio::time::interval(meters::GAUGE_PERIOD);
                loop {
                    ticker.tick().await;
                    meters.state(caches.len(), store.changes().is_live(), fallback());
                }
            }))
        };
        Ok(Verifier {
            filter: DigestFilter::start(store.clone(), settings.cache_ttl),
            usage: UsageLog::start(store.clone(), caches.clone()),
            store,
            credentials: Credentials {
                header: settings.header,
                bearer: settings.accept_bearer,
            },
            expiry_warning: i64::try_from(settings.expiry_warning.as_secs()).unwrap_or(i64::MAX),
            ratelimit_headers: settings.ratelimit_headers,
            client_ip: ClientIp::new(settings.trusted_proxies, settings.client_ip_header),
            format,
            hasher,
            memo: memo::DigestMemo::new(),
            clock,
            sections,
            caches,
            inflight: Mutex::new(HashMap::new()),
            limits,
            counters: Counters::default(),
            meters,
            #[cfg(feature = "metrics")]
            _gauges: gauges,
        })
    }

    /// The clock this verifier reads the time from (key expiry, grace, the caches' time to
    /// live, and the admin page's sessions).
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The header that carries keys.
    pub fn header(&self) -> &str {
        &self.credentials.header
    }

    /// Whether `Authorization: Bearer <key>` is accepted too (`accept_bearer`).
    pub fn accepts_bearer(&self) -> bool {
        self.credentials.bearer
    }

    /// How many store queries verification has made so far (cache misses).
    pub fn store_queries(&self) -> u64 {
        self.counters.store_queries.load(Ordering::Relaxed)
    }

    /// How many unknown keys the digest filter refused without a store query.
    pub fn filtered(&self) -> u64 {
        self.counters.filtered.load(Ordering::Relaxed)
    }

    /// How many of the [`filtered`](Self::filtered) keys were refused by their length alone,
    /// before any hash: no stored key has their length, and a spray had spent the miss budget.
    pub fn refused_unhashed(&self) -> u64 {
        self.counters.unhashed.load(Ordering::Relaxed)
    }

    /// The state of the digest filter.
    pub fn filter_stats(&self) -> FilterStats {
        self.filter.stats()
    }

    /// Counts a request refused before its key was looked at (none, several, unreadable).
    fn refused_early(&self, e: AuthError) -> AuthError {
        self.meters.request(RequestOutcome::of(&e));
        e
    }

    /// Verifies a request: the one way in. The key is the key header's one value (SP/HTAB
    /// around it trimmed), or with `accept_bearer` a Bearer credential of `Authorization` (both
    /// at once: [`AuthError::Invalid`]); no value is [`AuthError::Missing`], several or one
    /// that is not UTF-8 are [`AuthError::Invalid`]. The client's address
    /// ([`client_of`](Self::client_of)) is asked only of a valid key bound to networks,
    /// which is refused with [`AuthError::AddressNotAllowed`] from outside them or from an
    /// unknown address, before its limits (a refused request spends none of its rate limit or
    /// quota).
    pub async fn verify_request(
        &self,
        req: &(impl RequestFacts + Sync),
    ) -> Result<Verified, AuthError> {
        #[cfg(feature = "tracing")]
        {
            use tracing::Instrument;
            // One span per verification: its outcome and, for a valid key, the key's name
            // (never the key).
            let span = tracing::info_span!(
                "apikey.verify",
                outcome = tracing::field::Empty,
                key = tracing::field::Empty
            );
            let result = self.verify_untraced(req).instrument(span.clone()).await;
            let outcome = match &result {
                Ok(verified) => {
                    span.record("key", verified.identity.key_name());
                    RequestOutcome::Valid
                }
                Err(e) => RequestOutcome::of(e),
            };
            span.record("outcome", outcome.label());
            result
        }
        #[cfg(not(feature = "tracing"))]
        self.verify_untraced(req).await
    }

    async fn verify_untraced(
        &self,
        req: &(impl RequestFacts + Sync),
    ) -> Result<Verified, AuthError> {
        match self.decide_now(req) {
            Checked::Done(result) => result,
            // What waits runs boxed, so the future of a verification decided at once (and of
            // every guard or extractor that awaits one) stays small.
            Checked::Later(later) => Box::pin(self.finish(later, req)).await,
        }
    }

    /// [`verify_request`](Self::verify_request) as far as it goes without waiting: a malformed
    /// or missing key, a cached valid key (its limits too, unless its pool of leased tokens is
    /// empty), a spray's value of a length no stored key has, an unknown digest the filter or
    /// the cache of unknown digests refuses are decided at once ([`Checked::Done`]); a store
    /// lookup, the store's change check or a lease of limit tokens wait
    /// ([`Checked::Later`], finished by [`verify_request_later`](Self::verify_request_later),
    /// nothing done twice). For adapters that can answer without an `await` when nothing has
    /// to wait. With feature `tracing` it is always `Later` (the span is the async path's).
    pub fn verify_request_now(&self, req: &impl RequestFacts) -> Checked {
        if cfg!(feature = "tracing") {
            return Checked::Later(Later(At::Start));
        }
        self.decide_now(req)
    }

    /// Finishes a verification [`verify_request_now`](Self::verify_request_now) left for later,
    /// on the same request.
    pub async fn verify_request_later(
        &self,
        later: Later,
        req: &(impl RequestFacts + Sync),
    ) -> Result<Verified, AuthError> {
        match later.0 {
            At::Start => self.verify_request(req).await,
            _ => self.finish(later, req).await,
        }
    }

    async fn finish(
        &self,
        later: Later,
        req: &(impl RequestFacts + Sync),
    ) -> Result<Verified, AuthError> {
        let client = || self.client_of(req);
        let result = match later.0 {
            At::Start => Box::pin(self.verify_untraced(req)).await,
            At::Digest(digest) => self.decide_digest(digest, &client).await,
            At::Accept(accept) => {
                let Accept {
                    digest,
                    valid,
                    now,
                    noted,
                    pending,
                } = *accept;
                self.accept_later(&digest, &valid, now, noted, pending)
                    .await
            }
        };
        self.metered(result)
    }

    fn decide_now(&self, req: &impl RequestFacts) -> Checked {
        let authorization = self
            .credentials
            .bearer
            .then(|| req.header(Header::Authorization))
            .into_iter()
            .flatten();
        let key = match self.credentials.select(
            req.header(Header::Key(&self.credentials.header)),
            authorization,
        ) {
            Ok(key) => key,
            Err(e) => return Checked::Done(Err(self.refused_early(e))),
        };
        if let Err(e) = self.checksum_passes(key) {
            return Checked::Done(self.metered(Err(e)));
        }
        // The clock, read once for the request.
        let at = self.clock.now();
        let now = at.unix_secs;
        if self.length_refuses(key.len(), now) {
            self.counters.unhashed.fetch_add(1, Ordering::Relaxed);
            return Checked::Done(self.metered(Err(self.refused_by_filter())));
        }
        let (digest, fresh) = match self.digest_of(key) {
            Ok(found) => found,
            Err(e) => return Checked::Done(self.metered(Err(e))),
        };
        // While the feed is not live, the store answers (see `decide_digest`).
        if !self.store.changes().is_live() {
            return Checked::Later(Later(At::Digest(digest)));
        }
        if let Some((valid, counted)) = self.caches.get(&digest, at, true) {
            self.remember(fresh, digest);
            let client = || self.client_of(req);
            let noted = Noted::cached(counted);
            return match self.accept_now(&digest, &valid, now, noted, &client) {
                Ok(result) => Checked::Done(self.metered(result)),
                Err(pending) => Checked::Later(Later(At::Accept(Box::new(Accept {
                    digest,
                    valid,
                    now,
                    noted,
                    pending,
                })))),
            };
        }
        // Misses answered from memory, as `look_up` answers them; the rest waits.
        if self.filter.excludes(&digest) && !self.sections.holds(&digest) {
            // With the miss budget used up (a spray), the filter's word is final at once,
            // unless the store polls for changes and could be asked to check now (SQLite). A
            // key of a spray is not remembered: it takes no slot from the keys in use.
            if self.filter.miss_budget_spent(now) && !self.store.changes().polls() {
                return Checked::Done(self.metered(Err(self.refused_by_filter())));
            }
            if self.caches.is_known_unknown(&digest, at.monotonic) {
                // Seen before and unknown: a wrong key sent again is worth remembering.
                self.remember(fresh, digest);
                return Checked::Done(self.metered(Err(self.refused_by_filter())));
            }
        } else {
            self.remember(fresh, digest);
            if self.caches.is_known_unknown(&digest, at.monotonic) {
                return Checked::Done(self.metered(Err(AuthError::Invalid(InvalidKey::Unknown))));
            }
        }
        Checked::Later(Later(At::Digest(digest)))
    }

    /// Counts a decided verification in the metrics.
    fn metered(&self, result: Result<Verified, AuthError>) -> Result<Verified, AuthError> {
        match &result {
            Ok(_) => self.meters.request(RequestOutcome::Valid),
            Err(refusal) => self.meters.request(RequestOutcome::of(refusal)),
        }
        result
    }

    /// The client's address of a request: what the application set itself, else the TCP
    /// peer's, or, when the peer is inside `trusted_proxies`, what its `client_ip_header`
    /// reports ([`ClientIp`]). What every address apikey looks at comes from (allowlists,
    /// the admin page's login limits, refused leak reports).
    pub fn client_of(&self, req: &impl RequestFacts) -> Option<IpAddr> {
        req.client_override().or_else(|| {
            let header = Header::Forwarding(self.client_ip.header());
            self.client_ip
                .resolve(req.peer(), req.header(header).flatten())
        })
    }

    /// The format check, then the digest: malformed values never reach a cache or the store.
    /// A generated key's checksum comes first, before any hash; a key presented lately then
    /// skips the rest of the check and the digest (its digest is in the memo); for one that is
    /// not, the tag to remember its digest by comes along ([`remember`](Self::remember)).
    fn checked_digest(&self, key: &str) -> Result<(KeyDigest, Option<u128>), AuthError> {
        self.checksum_passes(key)?;
        self.digest_of(key)
    }

    /// A generated key's checksum refuses a mistyped or made-up one before any hash.
    fn checksum_passes(&self, key: &str) -> Result<(), AuthError> {
        if self.format.checksum_fails(key) {
            crate::obs::info!("API key refused before lookup: {}", Malformed::BadChecksum);
            return Err(AuthError::Invalid(InvalidKey::Malformed));
        }
        Ok(())
    }

    /// Whether a value of `len` bytes is refused before it is hashed: no stored key and no
    /// config section's key has that length (as far as the filter knows: a free-form key's
    /// length is unknown, so any store holding one never refuses here), and a spray has spent
    /// the miss budget of second `now` (until it does, such a value is hashed and may still
    /// ask the store, as a key created elsewhere a moment ago needs). Not while the store
    /// polls for changes: it is asked to check now instead ([`look_up`](Self::look_up)).
    fn length_refuses(&self, len: usize, now: i64) -> bool {
        // The cheapest test first: without a spray, the budget is not spent.
        self.filter.miss_budget_spent(now)
            && !self.store.changes().polls()
            && self.filter.excludes_length(len)
            && !self.sections.may_have_length(len)
    }

    /// [`checked_digest`](Self::checked_digest) once the checksum passed.
    fn digest_of(&self, key: &str) -> Result<(KeyDigest, Option<u128>), AuthError> {
        let tag = self.memo.tag(key);
        if let Some(digest) = self.memo.get(tag) {
            return Ok((digest, None));
        }
        // The checksum was checked above: the rest of the format is.
        match self.format.check_form(key) {
            Ok(_) => Ok((self.hasher.digest(key), Some(tag))),
            Err(why) => {
                crate::obs::info!("API key refused before lookup: {why}");
                Err(AuthError::Invalid(InvalidKey::Malformed))
            }
        }
    }

    /// Remembers the digest of a key not in the memo (`fresh`: its tag). Called for keys seen
    /// before (cached, valid or unknown) or that a stored key may have, never for a key of a
    /// spray: those never take a slot from the keys in use.
    fn remember(&self, fresh: Option<u128>, digest: KeyDigest) {
        if let Some(tag) = fresh {
            self.memo.put(tag, digest);
        }
    }

    /// Who a key (or the secret of a digest) speaks for right now, by the same format check,
    /// caches, config sections and store checks as a request, without counting a request
    /// against its limits or usage: for administration (the admin page's login, then its
    /// sessions, bound to the digest returned). A key bound to networks is
    /// [`AuthError::AddressNotAllowed`] unless `client` is inside them.
    pub async fn identify(
        &self,
        credential: Credential<'_>,
        client: Option<IpAddr>,
    ) -> Result<(Identity, KeyDigest), AuthError> {
        let digest = match credential {
            Credential::Key(key) => &self.checked_digest(key.trim_matches([' ', '\t']))?.0,
            Credential::Digest(digest) => digest,
        };
        let at = self.clock.now();
        let now = at.unix_secs;
        // Not a request: nothing is noted on the cache entry.
        let live = self.store.changes().is_live();
        let cached = live.then(|| self.caches.get(digest, at, false)).flatten();
        let valid = match cached {
            Some((valid, _)) => valid,
            None => self.look_up(digest, at, false, live).await?.0,
        };
        if valid.not_after() <= now {
            return Err(AuthError::INVALID);
        }
        if let Some(allow) = valid.allow() {
            if !client.is_some_and(|ip| allow.allows(ip)) {
                return Err(AuthError::AddressNotAllowed);
            }
        }
        Ok((valid.identity, *digest))
    }

    async fn decide_digest(
        &self,
        digest: KeyDigest,
        client: &(dyn Fn() -> Option<IpAddr> + Sync),
    ) -> Result<Verified, AuthError> {
        let at = self.clock.now();
        let now = at.unix_secs;
        // While the feed may be missing changes made elsewhere, nothing derived from it (the
        // caches, the filter) is trusted: the store answers, or the request gets 503.
        let live = self.store.changes().is_live();
        if live {
            if let Some((valid, counted)) = self.caches.get(&digest, at, true) {
                return self
                    .accept(&digest, &valid, now, Noted::cached(counted), client)
                    .await;
            }
        }
        let (valid, noted) = self.look_up(&digest, at, true, live).await?;
        self.accept(&digest, &valid, now, noted, client).await
    }

    /// The valid key of a digest that is not in the cache of verified keys (or whose caches
    /// may not be trusted: `live` is false), and where a request (`request`: else an
    /// administrative look) is noted.
    async fn look_up(
        &self,
        digest: &KeyDigest,
        at: Reading,
        request: bool,
        live: bool,
    ) -> Result<(Valid, Noted), AuthError> {
        let digest = *digest;
        let now = at.unix_secs;
        if live {
            // A digest the store never held (a spray of random keys) costs no store query,
            // beyond a small budget for keys created elsewhere a moment ago.
            if self.filter.excludes(&digest) && !self.sections.holds(&digest) {
                if self.caches.is_known_unknown(&digest, at.monotonic)
                    || (!self.filter.may_ask_anyway(now) && !self.changed_elsewhere(&digest).await)
                {
                    return Err(self.refused_by_filter());
                }
            } else if self.caches.is_known_unknown(&digest, at.monotonic) {
                return Err(AuthError::Invalid(InvalidKey::Unknown));
            }
        } else if !self.sections.holds(&digest) && self.filter.refuses_while_not_live(&digest, now)
        {
            // Not live: changes made elsewhere may be missing, so digests the last complete
            // filter excludes still reach the store, but only a bounded number a second.
            return Err(self.refused_by_filter());
        }
        let generation = self.caches.generation();
        // Concurrent misses for one digest in one generation share a single store query.
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&digest) {
                Some((g, cell)) if *g == generation => Arc::clone(cell),
                _ => {
                    let cell = Arc::new(Lookup::new());
                    inflight.insert(digest, (generation, Arc::clone(&cell)));
                    cell
                }
            }
        };
        let mut leader = false;
        let outcome = cell
            .get_or_init(|| {
                leader = true;
                self.resolve(&digest)
            })
            .await
            .clone();
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if inflight
                .get(&digest)
                .is_some_and(|(_, c)| Arc::ptr_eq(c, &cell))
            {
                inflight.remove(&digest);
            }
        }
        // What is learnt while the feed is not live is not cached: changes may be missing.
        let remember = leader && live && self.store.changes().is_live();
        match outcome {
            Ok(valid) => {
                // A freshly cached entry notes the request as a hit would.
                let cached = remember
                    .then(|| {
                        self.caches
                            .remember(digest, valid.clone(), generation, at, request)
                    })
                    .flatten();
                Ok((valid, cached.map_or(Noted::Uncached, Noted::cached)))
            }
            Err(
                refusal @ AuthError::Invalid(
                    InvalidKey::Unknown | InvalidKey::Revoked | InvalidKey::Expired,
                ),
            ) => {
                if remember {
                    self.caches.remember_unknown(digest, generation);
                }
                Err(refusal)
            }
            Err(e) => Err(e),
        }
    }

    /// A refusal by the digest filter, counted.
    fn refused_by_filter(&self) -> AuthError {
        self.counters.filtered.fetch_add(1, Ordering::Relaxed);
        self.meters.filter_refusal();
        AuthError::Invalid(InvalidKey::Unknown)
    }

    /// For a digest the filter excludes once the miss budget is spent: whether the store
    /// changed meanwhile in a way the filter had not heard of yet (a key created by another
    /// process a moment ago), asked of the store's change check at once (SQLite's
    /// `data_version`, no page read; coalesced across requests) rather than waiting for its
    /// next poll. A new key's first request then never depends on what strangers send.
    async fn changed_elsewhere(&self, digest: &KeyDigest) -> bool {
        self.store.changes().check_now(CHECK_NOW_WITHIN).await && !self.filter.excludes(digest)
    }

    /// Re-checks expiry on every hit, then counts the request against the key's rate limit
    /// and notes its use, unless its cache entry did (`noted`): [`accept_now`](Self::accept_now),
    /// then the lease it left waiting, if any.
    async fn accept(
        &self,
        digest: &KeyDigest,
        valid: &Valid,
        now: i64,
        noted: Noted,
        client: &(dyn Fn() -> Option<IpAddr> + Sync),
    ) -> Result<Verified, AuthError> {
        match self.accept_now(digest, valid, now, noted, client) {
            Ok(result) => result,
            Err(pending) => self.accept_later(digest, valid, now, noted, pending).await,
        }
    }

    /// The rest of [`accept_now`](Self::accept_now) once its key's limits wait for a lease.
    async fn accept_later(
        &self,
        digest: &KeyDigest,
        valid: &Valid,
        now: i64,
        noted: Noted,
        pending: Pending,
    ) -> Result<Verified, AuthError> {
        let tech = valid.identity.tech_name();
        let admitted = self
            .limits
            .admit_from(valid.meter(), tech, now, pending)
            .await;
        self.admitted(digest, valid, now, noted, admitted)
    }

    /// [`accept`](Self::accept) as far as it goes without a wait: all the way unless the key's
    /// limits need a lease (`Err`: what the request holds of them so far).
    fn accept_now(
        &self,
        digest: &KeyDigest,
        valid: &Valid,
        now: i64,
        noted: Noted,
        client: &dyn Fn() -> Option<IpAddr>,
    ) -> Result<Result<Verified, AuthError>, Pending> {
        if let Err(refused) = self.admissible(digest, valid, now, noted, client) {
            return Ok(Err(refused));
        }
        let admitted = if noted == Noted::Counted {
            Ok(Budget::default())
        } else {
            let tech = valid.identity.tech_name();
            self.limits.admit_now(valid.meter(), tech, now)?
        };
        Ok(self.admitted(digest, valid, now, noted, admitted))
    }

    /// Whether a valid key may be used now, from this client (expiry re-checked, networks).
    fn admissible(
        &self,
        digest: &KeyDigest,
        valid: &Valid,
        now: i64,
        noted: Noted,
        client: &dyn Fn() -> Option<IpAddr>,
    ) -> Result<(), AuthError> {
        let not_after = valid.not_after();
        if not_after <= now {
            crate::obs::info!("API key {:?} refused: expired", valid.identity.key_name());
            self.caches.forget(digest);
            return Err(AuthError::Invalid(InvalidKey::Expired));
        }
        if let Some(allow) = valid.allow() {
            let client = client();
            if !client.is_some_and(|ip| allow.allows(ip)) {
                let from = client.map_or_else(|| "an unknown address".into(), |ip| ip.to_string());
                crate::obs::info!(
                    "API key {:?} refused: used from {from}, outside its allowlist",
                    valid.identity.key_name()
                );
                // Counted accepted on its entry: taken back there; if it is no longer there to
                // take back (written, or the entry dropped, meanwhile), the 403 takes it back
                // as a route's 403 does.
                let counted = noted == Noted::Counted && !self.caches.uncount(digest, now);
                let outcome = if counted {
                    Outcome::Forbidden
                } else {
                    Outcome::Barred
                };
                self.limits.note(valid.identity.tech_name(), outcome);
                return Err(AuthError::AddressNotAllowed);
            }
        }
        Ok(())
    }

    /// A valid key's request once its limits answered: refused (429), or its use noted and
    /// what the response announces.
    fn admitted(
        &self,
        digest: &KeyDigest,
        valid: &Valid,
        now: i64,
        noted: Noted,
        admitted: Result<Budget, AuthError>,
    ) -> Result<Verified, AuthError> {
        let not_after = valid.not_after();
        let budget = match admitted {
            Ok(budget) => budget,
            Err(refused) => {
                crate::obs::info!("API key {:?} refused: {refused}", valid.identity.key_name());
                return Err(refused);
            }
        };
        if noted == Noted::Uncached {
            self.usage.note(&valid.identity, now);
        }
        // Warn of the end: a rotated-out secret always, a key expiring within the window.
        let warn =
            not_after != i64::MAX && (valid.in_grace() || not_after - now <= self.expiry_warning);
        Ok(Verified {
            identity: valid.identity.clone(),
            secret: *digest,
            sunset: warn
                .then(|| OffsetDateTime::from_unix_timestamp(not_after).ok())
                .flatten(),
            limits: if self.ratelimit_headers {
                budget
            } else {
                Budget::default()
            },
        })
    }

    /// Whether a valid key may use a route that allows `groups` (any of them; none: every
    /// key) and needs `scopes` (all of them): [`AuthError::Forbidden`] outside the groups,
    /// [`AuthError::MissingScope`] without a scope. A refusal is logged and counted as the
    /// key's 403 ([`note_forbidden`](Self::note_forbidden)). What both adapters ask of every
    /// route.
    pub fn authorize<G: AsRef<str> + fmt::Debug, S: AsRef<str> + fmt::Debug>(
        &self,
        identity: &Identity,
        groups: &[G],
        scopes: &[S],
    ) -> Result<(), AuthError> {
        let refusal = if !identity.in_any(groups) {
            crate::obs::info!(
                "API key {:?} refused: not in the route's groups {:?}",
                identity.key_name(),
                groups
            );
            AuthError::Forbidden
        } else if !identity.has_scopes(scopes) {
            crate::obs::info!(
                "API key {:?} refused: missing a scope of the route's {:?}",
                identity.key_name(),
                scopes
            );
            AuthError::MissingScope
        } else {
            return Ok(());
        };
        self.note_forbidden(identity);
        Err(refusal)
    }

    /// Counts a request of a valid key that the route refused with 403 (not in its groups,
    /// or missing a scope), for the key's usage per day.
    pub fn note_forbidden(&self, identity: &Identity) {
        self.meters.request(RequestOutcome::Forbidden);
        self.limits.note(identity.tech_name(), Outcome::Forbidden);
    }

    /// Whether the key of this tech name is set in a config section (its value lives in the
    /// configuration, not in the store).
    pub fn is_configured(&self, tech_name: &str) -> bool {
        self.sections.configures(tech_name)
    }

    /// Where rate limits and quotas are kept, and whether they fall back to per instance.
    pub fn limits_stats(&self) -> LimitsStats {
        self.limits.stats()
    }

    /// Writes the pending last-used times and request counts now (they are written in the
    /// background otherwise: last-used times every minute, counts every 10 seconds).
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
        let used = self.usage.flush().await;
        let counted = self.limits.flush().await;
        used.and(counted)
    }

    /// Before the service stops: gives back the rate-limit and quota tokens this instance
    /// leased and did not spend, and writes the pending last-used times and request counts.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.limits.give_back().await;
        self.flush_usage().await
    }

    /// Whether the store's change feed is live right now: while it is not, caches and the
    /// digest filter are bypassed and every request asks the store.
    pub fn feed_live(&self) -> bool {
        self.store.changes().is_live()
    }

    /// Whether this instance can serve: its store answers (one indexed query, at most 2 s), its
    /// change feed is live, its digest filter loaded. For a readiness probe (`GET /ready`).
    pub async fn ready(&self) -> Readiness {
        let mut missing = Vec::new();
        let probe = self.store.get_by_tech_name("-");
        if !matches!(tokio::time::timeout(READY_WITHIN, probe).await, Ok(Ok(_))) {
            missing.push("store");
        }
        if !self.store.changes().is_live() {
            missing.push("feed");
        }
        if !self.filter.loaded() {
            missing.push("filter");
        }
        Readiness {
            ready: missing.is_empty(),
            missing,
        }
    }

    /// How many valid keys are cached right now.
    pub fn cached_keys(&self) -> usize {
        self.caches.len()
    }
}
