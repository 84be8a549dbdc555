//! Key parsing and checksum: never panics; whatever passes as a generated key has its shape.
#![no_main]

use apikey_core::key::{KeyFormat, Shape, MAX_KEY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let format = KeyFormat::default();
    match format.check(text) {
        Ok(Shape::Generated) => {
            assert_eq!(text.len(), 3 + 44 + 6);
            assert!(text.starts_with("ak_"));
            assert!(text[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(format.stub(text), text[..7]);
        }
        Ok(Shape::FreeForm) => {
            assert!(!text.is_empty() && text.len() <= MAX_KEY_LEN);
            assert!(text.bytes().all(|b| b.is_ascii_graphic()));
            assert!(!text.starts_with("ak_"));
            assert_eq!(format.stub(text), "(custom)");
        }
        Err(_) => {}
    }
    if let Some(custom) = KeyFormat::new(text) {
        let g = custom.generate().unwrap();
        assert_eq!(custom.check(g.key.expose()), Ok(Shape::Generated));
    }
});
