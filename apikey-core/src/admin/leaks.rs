//! Leaked keys reported by the secret scanner that found them, in the format of GitHub's secret
//! scanning partner program: a signed JSON list of tokens found in public places. Each report is
//! verified (ECDSA P-256 over the body, by a public key this service is configured with), each
//! token is checked against our key format first, and each key of ours found is revoked (or, by
//! setting, only flagged) and audited with where it was found. What adapters mount at
//! `POST /apikey/secret-scanning` (opt-in).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};

use crate::key::hex;
use sha2::{Digest, Sha256};

use super::{Failures, KeyManager};
use crate::config::{ApiKeyConfig, LeakAction};
use crate::key::KeyDigest;
use crate::model::{escape_unsafe, Actor, ClientIp};
use crate::store::{SharedStore, StoreError};

/// The actor leak reports act as in the audit trail.
pub const LEAK_ACTOR: &str = "secret-scanning";
/// The audit action of a reported leak.
pub const LEAK_ACTION: &str = "leak-reported";
/// The largest report read (bytes).
pub const MAX_REPORT_BYTES: usize = 1 << 20;
/// Refused reports (no or a bad signature) allowed per client address in
/// [`REFUSED_WINDOW`]; past it, the address gets 429 before its body is read.
pub const REFUSED_PER_CLIENT: u32 = 10;
/// The window refused reports are counted in.
pub const REFUSED_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long a processed report is remembered: a replay within it changes nothing.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One token of a report, as the scanner sends it.
#[derive(Debug, Deserialize)]
struct Found {
    token: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
}

/// The answer about one token: never the token itself, its SHA-256 in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    /// SHA-256 of the token, lowercase hex.
    pub token_hash: String,
    /// The type the scanner gave.
    pub token_type: String,
    /// `true_positive`: a key of ours, working when reported (now revoked or flagged);
    /// `false_positive`: anything else (not our format, unknown, already revoked).
    pub label: &'static str,
}

/// Why a report is not taken.
#[derive(Debug, thiserror::Error)]
pub enum LeakError {
    /// No verifying key is configured: the endpoint refuses every report.
    #[error("secret scanning reports are not accepted here: no verifying key is configured")]
    NotSetUp,
    /// No signature, or one no configured key made. Says nothing about the tokens.
    #[error("the report's signature is missing or not valid")]
    BadSignature,
    /// Too many refused reports came from this address lately.
    #[error("too many refused reports from this address; retry after the Retry-After delay")]
    Throttled {
        /// Seconds until the address may report again.
        retry_after_secs: u32,
    },
    /// Signed, but not a list of found tokens.
    #[error("the report is not a JSON list of found tokens")]
    BadReport,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LeakError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            LeakError::NotSetUp | LeakError::Store(_) => 503,
            LeakError::BadSignature => 401,
            LeakError::BadReport => 400,
            LeakError::Throttled { .. } => 429,
        }
    }
}

/// Where leaked keys are reported: mount it (Rocket: managed state and
/// `apikey_rocket::leaks::routes()`; axum: `apikey_axum::leaks::route`).
#[derive(Clone)]
pub struct LeakReports {
    manager: KeyManager,
    keys: Vec<Signer>,
    /// Refused reports per client address.
    refused: Arc<Failures>,
    action: LeakAction,
    /// Config-section keys by digest (their tech name): real keys whose value lives in a file.
    configured: HashMap<KeyDigest, String>,
}

impl fmt::Debug for LeakReports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeakReports")
            .field("verifying_keys", &self.keys.len())
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// A verifying key and the identifiers a scanner may name it by
/// (`Github-Public-Key-Identifier`): the SHA-256 of its DER form in hex, and any
/// `key_identifier: …` line written just before its PEM block.
#[derive(Clone)]
struct Signer {
    key: VerifyingKey,
    ids: Vec<String>,
}

/// The public keys of a PEM text (one or more `PUBLIC KEY` blocks, each perhaps preceded by a
/// `key_identifier: <id>` line).
fn verifying_keys(pem: &str) -> Result<Vec<Signer>, String> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let mut parts = pem.split(BEGIN);
    let mut before = parts.next().unwrap_or_default();
    let mut out = Vec::new();
    for block in parts {
        let (body, rest) = block.split_once(END).unwrap_or((block, ""));
        let key = VerifyingKey::from_public_key_pem(&format!("{BEGIN}{body}{END}"))
            .map_err(|e| format!("a key is not an ECDSA P-256 public key: {e}"))?;
        let mut ids: Vec<String> = before.lines().filter_map(named_identifier).collect();
        let der: String = body.split_whitespace().collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(der) {
            ids.push(hex(&Sha256::digest(&der)));
        }
        out.push(Signer { key, ids });
        before = rest;
    }
    if out.is_empty() {
        return Err("it holds no PEM `PUBLIC KEY` block".into());
    }
    Ok(out)
}

/// The identifier a `key_identifier: <id>` line (or `# key_identifier = <id>`) names.
fn named_identifier(line: &str) -> Option<String> {
    let line = line.trim().trim_start_matches('#').trim();
    let (name, value) = line.split_once([':', '='])?;
    let name = name.trim().to_ascii_lowercase().replace('-', "_");
    let value = value.trim();
    (name == "key_identifier" && !value.is_empty()).then(|| value.to_ascii_lowercase())
}

/// A report allowed past the checks made before its body is read: a well-formed signature,
/// and the verifying key it names, if the file knows it.
#[derive(Debug)]
pub struct Admitted {
    signature: Signature,
    key: Option<usize>,
    client: Option<String>,
}

impl LeakReports {
    /// Reports on `store`, verified with the PEM public keys of `secret_scanning_keys` (none
    /// configured: every report is refused), acting as `secret_scanning_action` says. An
    /// unreadable or bad key file is an error naming the setting, never a silent "no keys".
    pub fn new(store: SharedStore, config: &ApiKeyConfig) -> Result<Self, String> {
        let settings = &config.settings;
        let keys = match &settings.secret_scanning_keys {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    format!("secret_scanning_keys: cannot read {}: {e}", path.display())
                })?;
                verifying_keys(&pem)
                    .map_err(|e| format!("secret_scanning_keys: {}: {e}", path.display()))?
            }
        };
        let actor = Actor::new(LEAK_ACTOR).map_err(|e| e.to_string())?;
        let manager = KeyManager::new(store, config).with_actor(actor);
        let configured = config
            .sections
            .iter()
            .map(|s| (manager.digest_of(s.key.expose()), s.tech_name.clone()))
            .collect();
        Ok(LeakReports {
            manager,
            keys,
            refused: Arc::new(Failures::new(REFUSED_PER_CLIENT, REFUSED_WINDOW, 10_000)),
            action: settings.secret_scanning_action,
            configured,
        })
    }

    /// The checks made before a report's body is read, so that a stranger costs neither a
    /// read of up to [`MAX_REPORT_BYTES`] nor a signature verification: no verifying key
    /// configured ([`LeakError::NotSetUp`]), an address past its refused reports
    /// ([`LeakError::Throttled`]), a signature header (`Github-Public-Key-Signature`) absent or
    /// not base64 DER ([`LeakError::BadSignature`], counted against the address). `key_id` is
    /// `Github-Public-Key-Identifier`: when the key file names it, only that key is tried.
    pub fn admit(
        &self,
        signature: Option<&str>,
        key_id: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Admitted, LeakError> {
        if self.keys.is_empty() {
            return Err(LeakError::NotSetUp);
        }
        let client = client.map(|ip| ClientIp::counted_as(ip).to_string());
        let name = client.as_deref().unwrap_or("unknown");
        if let Some(wait) = self.refused.blocked(name) {
            return Err(LeakError::Throttled {
                retry_after_secs: u32::try_from(wait).unwrap_or(u32::MAX),
            });
        }
        let signature = signature
            .and_then(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .ok()
            })
            .and_then(|der| Signature::from_der(&der).ok());
        let Some(signature) = signature else {
            crate::obs::warning!(
                "apikey: a secret scanning report without a well-formed signature was refused"
            );
            self.refused.failed(name);
            return Err(LeakError::BadSignature);
        };
        let key_id = key_id.map(|k| k.trim().to_ascii_lowercase());
        let key = key_id.and_then(|id| self.keys.iter().position(|k| k.ids.contains(&id)));
        Ok(Admitted {
            signature,
            key,
            client,
        })
    }

    /// Takes one report admitted by [`admit`](Self::admit): `body` as received. Returns a label
    /// per token, in order. A report processed in the last [`REPLAY_WINDOW`] (the same body,
    /// on any instance sharing the store) changes nothing: its labels are answered from what
    /// the store holds (no audit entry, no revocation of a key activated since), and the
    /// replay is logged.
    pub async fn report(&self, admitted: Admitted, body: &[u8]) -> Result<Vec<Label>, LeakError> {
        if !self.signed(body, &admitted) {
            crate::obs::warning!(
                "apikey: a secret scanning report with a bad signature was refused"
            );
            self.refused
                .failed(admitted.client.as_deref().unwrap_or("unknown"));
            return Err(LeakError::BadSignature);
        }
        let found: Vec<Found> = serde_json::from_slice(body).map_err(|_| LeakError::BadReport)?;
        let digest: [u8; 32] = Sha256::digest(body).into();
        let now = time::OffsetDateTime::now_utc();
        let first = self
            .manager
            .store
            .claim_report(&digest, now, REPLAY_WINDOW)
            .await?;
        if !first {
            crate::obs::warning!(
                "apikey: a secret scanning report already processed was sent again"
            );
            let mut labels = Vec::with_capacity(found.len());
            for f in &found {
                labels.push(label(f, self.known(f).await?));
            }
            return Ok(labels);
        }
        let mut labels = Vec::with_capacity(found.len());
        for f in &found {
            match self.take(f).await {
                Ok(ours) => labels.push(label(f, ours)),
                Err(e) => {
                    // Half done: a retry of the same report must be taken, not called a replay.
                    let _ = self.manager.store.release_report(&digest).await;
                    return Err(e.into());
                }
            }
        }
        Ok(labels)
    }

    /// Whether a configured key made the admitted signature over `body` (only the key the
    /// report names, when the key file knows it).
    fn signed(&self, body: &[u8], admitted: &Admitted) -> bool {
        let verify = |s: &Signer| s.key.verify(body, &admitted.signature).is_ok();
        match admitted.key {
            Some(i) => self.keys.get(i).is_some_and(verify),
            None => self.keys.iter().any(verify),
        }
    }

    /// For a replayed report: whether a token is a key of ours (in any state), without acting.
    async fn known(&self, f: &Found) -> Result<bool, StoreError> {
        let Some(digest) = self.manager.checked_digest(&f.token) else {
            return Ok(false);
        };
        if self.configured.contains_key(&digest) {
            return Ok(true);
        }
        Ok(self.manager.find(&digest).await?.is_some())
    }

    /// Acts on one found token; whether it is a working key of ours.
    async fn take(&self, f: &Found) -> Result<bool, StoreError> {
        // Not our format (a bad checksum, another vendor's token): no lookup at all.
        let Some(digest) = self.manager.checked_digest(&f.token) else {
            return Ok(false);
        };
        let place = format!(
            "found at {} ({})",
            escape_unsafe(&f.url),
            escape_unsafe(&f.source)
        );
        if let Some(tech) = self.configured.get(&digest) {
            crate::obs::warning!(
                "apikey: the key of config section [api_key_{tech}] was reported leaked"
            );
            let summary = format!("{place}; set in the configuration: change it there");
            self.manager.note(LEAK_ACTION, tech, &summary).await?;
            return Ok(true);
        }
        let Some(found) = self.manager.find(&digest).await? else {
            return Ok(false);
        };
        let record = found.record;
        let now = time::OffsetDateTime::now_utc();
        let in_grace_over = found.valid_until.is_some_and(|t| t <= now);
        if !record.active || record.is_expired(now) || in_grace_over {
            return Ok(false);
        }
        crate::obs::warning!("apikey: key {:?} was reported leaked", record.name);
        let summary = match self.action {
            LeakAction::Revoke => {
                self.manager.revoke(&record.name).await?;
                format!("{place}; revoked")
            }
            LeakAction::Flag => format!("{place}; flagged only (secret_scanning_action = flag)"),
        };
        self.manager
            .note(LEAK_ACTION, &record.name, &summary)
            .await?;
        Ok(true)
    }
}

fn label(f: &Found, ours: bool) -> Label {
    Label {
        token_hash: hex(&Sha256::digest(f.token.as_bytes())),
        token_type: f.kind.clone(),
        label: if ours {
            "true_positive"
        } else {
            "false_positive"
        },
    }
}
