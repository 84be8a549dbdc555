//! With feature `tracing`, apikey's events and a span per verification go to `tracing`
//! subscribers: the span carries the outcome and, for a valid key, the key's name; no event,
//! span or field ever carries the key. (Without the feature, the same events go through `log`:
//! the `no_leaks` suite reads them.) Run with `cargo test -p apikey-core --features tracing
//! --test tracing_events`.
#![cfg(feature = "tracing")]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use apikey_core::verify::KeyRequest;
use apikey_core::{ApiKeyConfig, CreateKey, KeyManager, MemoryStore, SharedStore, Verifier};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every span (name and fields as recorded) and event (level and fields) seen, as text.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<(String, String)>>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = String::new();
        span.record(&mut Text(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push((span.metadata().name().to_owned(), fields));
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let index = usize::try_from(span.into_u64()).unwrap() - 1;
        values.record(&mut Text(&mut spans[index].1));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = format!("{}", event.metadata().level());
        event.record(&mut Text(&mut text));
        self.events.lock().unwrap().push(text);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[test]
fn verifications_are_spans_and_no_key_is_ever_traced() {
    let capture = Capture::default();
    let secrets = tracing::subscriber::with_default(capture.clone(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store: SharedStore = Arc::new(MemoryStore::new());
            let config = ApiKeyConfig::default();
            let keys = KeyManager::new(store.clone(), &config);
            let spec = |name: &str| CreateKey {
                name: name.into(),
                user: "ops".into(),
                ..CreateKey::default()
            };
            let (_, robot) = keys.create(spec("robot")).await.unwrap();
            let (_, gone) = keys.create(spec("gone")).await.unwrap();
            keys.revoke("gone").await.unwrap();
            let verifier = Verifier::new(config, store).await.unwrap();
            let valid = verifier
                .verify_request(&KeyRequest::new(robot.expose()))
                .await;
            assert!(valid.is_ok());
            let revoked = verifier
                .verify_request(&KeyRequest::new(gone.expose()))
                .await;
            assert!(revoked.is_err());
            let junk = "ak_notavalidkeyatallnotavalidkeyatall0";
            assert!(verifier
                .verify_request(&KeyRequest::new(junk))
                .await
                .is_err());
            verifier.shutdown().await.unwrap();
            vec![robot.expose().to_owned(), gone.expose().to_owned()]
        })
    });
    let spans = capture.spans.lock().unwrap().clone();
    let verifications: Vec<&String> = spans
        .iter()
        .filter(|(name, _)| name == "apikey.verify")
        .map(|(_, fields)| fields)
        .collect();
    assert_eq!(verifications.len(), 3, "{spans:?}");
    assert!(
        verifications[0].contains("key=robot") && verifications[0].contains("outcome=valid"),
        "{}",
        verifications[0]
    );
    assert!(
        !verifications[1].contains("outcome=valid") && !verifications[1].contains("key="),
        "a refused key's span names no key: {}",
        verifications[1]
    );
    let events = capture.events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| e.contains("refused")),
        "the refusals are events: {events:?}"
    );
    let everything = format!("{spans:?}{events:?}");
    for secret in &secrets {
        assert!(!everything.contains(secret.as_str()), "a key was traced");
        assert!(
            !everything.contains(&secret[3..15]),
            "part of a key was traced"
        );
    }
}
