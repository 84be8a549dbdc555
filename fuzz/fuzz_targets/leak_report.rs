//! The leak-report endpoint's input (the signature header, the key identifier header and the
//! body): never panics; an unsigned or wrongly signed report is refused before anything is
//! looked up; a report signed by the configured key is a list of labels, one per token, that
//! never carry a token, or `BadReport`.
#![no_main]

use std::sync::{Arc, OnceLock};

use apikey_core::admin::{LeakError, LeakReports};
use apikey_core::{ApiKeyConfig, MemoryStore, SharedStore};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};

#[derive(serde::Deserialize)]
struct Token {
    token: String,
}

struct World {
    rt: tokio::runtime::Runtime,
    reports: LeakReports,
    key: p256::ecdsa::SigningKey,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let key = p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let path = std::env::temp_dir().join(format!("apikey-fuzz-{}.pem", std::process::id()));
        std::fs::write(&path, format!("key_identifier: fuzz\n{pem}")).unwrap();
        let mut config = ApiKeyConfig::default();
        config.settings.secret_scanning_keys = Some(path);
        let store: SharedStore = Arc::new(MemoryStore::new());
        let reports = LeakReports::new(store, &config).unwrap();
        World { rt, reports, key }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // flags, then up to three parts split on 0xff: signature header, key id, body.
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == 0xff);
    let signature = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let key_id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let signed = flags & 1 == 1;
    let signature = if signed {
        let sig: p256::ecdsa::Signature = w.key.sign(body);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    } else {
        signature
    };
    let key_id = (flags & 2 == 2).then_some(key_id.as_str());
    // Every report comes from its own address: the per-address limit is not what is fuzzed.
    let client = Some(std::net::IpAddr::from([10, flags, body.len() as u8, 1]));
    let outcome = w.rt.block_on(async {
        let admitted = w.reports.admit(Some(&signature), key_id, client)?;
        w.reports.report(admitted, body).await
    });
    match outcome {
        Ok(labels) => {
            assert!(signed, "an unsigned report was taken");
            // Read as the endpoint reads it (fields other than `token` ignored unread).
            let tokens: Vec<Token> = serde_json::from_slice(body).unwrap();
            assert_eq!(labels.len(), tokens.len());
            for (label, token) in labels.iter().zip(&tokens) {
                // The answer names a token by its SHA-256 only.
                let token = token.token.as_str();
                let hash: String = Sha256::digest(token.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(label.token_hash, hash);
                assert!(matches!(label.label, "true_positive" | "false_positive"));
            }
        }
        // The signer's key is tried whatever identifier is sent (an unknown one: all keys).
        Err(LeakError::BadSignature) => assert!(!signed),
        Err(LeakError::Throttled { .. }) => {}
        Err(LeakError::BadReport) => assert!(signed),
        Err(e) => panic!("unexpected {e:?}"),
    }
});
