//! The `#[route]` argument parser and code generation (`apikey-codegen`), on `proc_macro2`
//! tokens: any tokens give code or a spanned error, never a panic.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "<attribute args>\n<item>"; without a newline, a plain handler is the item.
    let (attr, item) = text.split_once('\n').unwrap_or((text, "fn handler() {}"));
    let (Ok(attr), Ok(item)) = (
        proc_macro2::TokenStream::from_str(attr),
        proc_macro2::TokenStream::from_str(item),
    ) else {
        return;
    };
    match apikey_codegen::try_route(attr.clone(), item.clone()) {
        Ok(tokens) => assert!(!tokens.is_empty()),
        Err(e) => {
            let _ = e.to_compile_error();
        }
    }
    // The expansion the compiler sees, errors included, never panics either.
    assert!(!apikey_codegen::route(attr, item).is_empty());
});
