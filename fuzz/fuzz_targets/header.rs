//! Header values through the verifier: never panics, and only the one known key (or its
//! HTTP-whitespace-padded form) is ever accepted.
#![no_main]

use std::sync::{Arc, OnceLock};

use apikey_core::verify::{Header, RequestFacts};
use apikey_core::{ApiKeyConfig, AuthError, CreateKey, KeyManager, MemoryStore, Secret, Verifier};
use libfuzzer_sys::fuzz_target;

struct World {
    rt: tokio::runtime::Runtime,
    verifier: Verifier,
    key: Secret,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (verifier, key) = rt.block_on(async {
            let store = Arc::new(MemoryStore::new());
            let (_, key) = KeyManager::new(store.clone(), &ApiKeyConfig::default())
                .create(CreateKey {
                    name: "known".into(),
                    user: "u".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            (Verifier::new(ApiKeyConfig::default(), store).await.unwrap(), key)
        });
        World { rt, verifier, key }
    })
}

/// A request whose key header has these values (bytes as received).
struct Values<'a>(&'a [&'a [u8]]);

impl RequestFacts for Values<'_> {
    fn header(&self, header: Header<'_>) -> impl Iterator<Item = Option<&str>> {
        let values: &[&[u8]] = if matches!(header, Header::Key(_)) { self.0 } else { &[] };
        values.iter().map(|v| std::str::from_utf8(v).ok())
    }

    fn peer(&self) -> Option<std::net::IpAddr> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // Up to three header values, split on a 0xff byte; a value that is not UTF-8 stays so.
    let raw: Vec<&[u8]> = data.split(|b| *b == 0xff).take(3).collect();
    let values: Vec<String> = raw
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let result = w.rt.block_on(w.verifier.verify_request(&Values(&raw)));
    match result {
        Ok(caller) => {
            assert_eq!(values.len(), 1);
            assert!(std::str::from_utf8(raw[0]).is_ok());
            assert_eq!(values[0].trim_matches([' ', '\t']), w.key.expose());
            assert_eq!(caller.identity.user(), "u");
        }
        Err(AuthError::Missing) => {
            assert!(values.len() == 1 && values[0].trim_matches([' ', '\t']).is_empty());
        }
        Err(AuthError::Invalid(_)) => {}
        // Values that are not UTF-8 are refused as invalid, never as missing or let in.
        Err(other) => panic!("unexpected {other:?}"),
    }
});
