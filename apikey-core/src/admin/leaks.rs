//! Leaked keys reported by the secret scanner that found them, in the format of GitHub's secret
//! scanning partner program: a signed JSON list of tokens found in public places. Each report is
//! verified (ECDSA P-256 over the body, by a public key this service is configured with), each
//! token is checked against our key format first, and each key of ours found is revoked (or, by
//! setting, only flagged) and audited with where it was found. What adapters mount at
//! `POST /apikey/secret-scanning` (opt-in).

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::KeyManager;
use crate::config::{ApiKeyConfig, LeakAction};
use crate::key::KeyDigest;
use crate::model::{escape_unsafe, Actor};
use crate::store::{SharedStore, StoreError};

/// The actor leak reports act as in the audit trail.
pub const LEAK_ACTOR: &str = "secret-scanning";
/// The audit action of a reported leak.
pub const LEAK_ACTION: &str = "leak-reported";
/// The largest report read (bytes).
pub const MAX_REPORT_BYTES: usize = 1 << 20;

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
        }
    }
}

/// Where leaked keys are reported: mount it (Rocket: managed state and
/// `apikey_rocket::leaks::routes()`; axum: `apikey_axum::leaks::route`).
#[derive(Clone)]
pub struct LeakReports {
    manager: KeyManager,
    keys: Vec<VerifyingKey>,
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

/// The public keys of a PEM text (one or more `PUBLIC KEY` blocks).
fn verifying_keys(pem: &str) -> Result<Vec<VerifyingKey>, String> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    let blocks: Vec<&str> = pem.split(BEGIN).skip(1).collect();
    if blocks.is_empty() {
        return Err("it holds no PEM `PUBLIC KEY` block".into());
    }
    blocks
        .iter()
        .map(|b| {
            VerifyingKey::from_public_key_pem(&format!("{BEGIN}{b}"))
                .map_err(|e| format!("a key is not an ECDSA P-256 public key: {e}"))
        })
        .collect()
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
            action: settings.secret_scanning_action,
            configured,
        })
    }

    /// Takes one report: `body` as received, `signature` the base64 DER ECDSA signature of it
    /// (GitHub's `Github-Public-Key-Signature`). Returns a label per token, in order.
    pub async fn report(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Vec<Label>, LeakError> {
        if self.keys.is_empty() {
            return Err(LeakError::NotSetUp);
        }
        if !self.signed(body, signature) {
            log::warn!(
                "apikey: a secret scanning report with a missing or bad signature was refused"
            );
            return Err(LeakError::BadSignature);
        }
        let found: Vec<Found> = serde_json::from_slice(body).map_err(|_| LeakError::BadReport)?;
        let mut labels = Vec::with_capacity(found.len());
        for f in &found {
            let ours = self.take(f).await?;
            labels.push(Label {
                token_hash: hex(&Sha256::digest(f.token.as_bytes())),
                token_type: f.kind.clone(),
                label: if ours {
                    "true_positive"
                } else {
                    "false_positive"
                },
            });
        }
        Ok(labels)
    }

    /// Whether a configured key made `signature` over `body`.
    fn signed(&self, body: &[u8], signature: Option<&str>) -> bool {
        let Some(der) = signature.and_then(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
        }) else {
            return false;
        };
        let Ok(signature) = Signature::from_der(&der) else {
            return false;
        };
        self.keys.iter().any(|k| k.verify(body, &signature).is_ok())
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
            log::warn!("apikey: the key of config section [api_key_{tech}] was reported leaked");
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
        log::warn!("apikey: key {:?} was reported leaked", record.name);
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

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
