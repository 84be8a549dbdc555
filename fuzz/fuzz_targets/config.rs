//! Config sections: any TOML text is either a valid config or an error naming a section;
//! never a panic.
#![no_main]

use apikey_core::ApiKeyConfig;
use figment::providers::{Format, Toml};
use figment::Figment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ApiKeyConfig::from_figment(&Figment::from(Toml::string(text))) {
        Ok(config) => {
            for s in &config.sections {
                assert!(!s.key.is_empty());
                assert_eq!(apikey_core::key::slugify(&s.tech_name), s.tech_name);
            }
        }
        Err(e) => assert!(!e.section.is_empty()),
    }
});
