//! The `#[route]` argument parser and code generation, on `proc_macro2` tokens: any tokens give
//! code or a spanned error, never a panic. The macro's own modules are compiled in directly.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;

#[path = "../../apikey-macros/src/args.rs"]
mod args;
#[path = "../../apikey-macros/src/expand.rs"]
mod expand;
#[path = "../../apikey-macros/src/exports.rs"]
mod exports;
#[path = "../../apikey-macros/src/validate.rs"]
mod validate;

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
    match expand::route(attr, item) {
        Ok(tokens) => assert!(!tokens.is_empty()),
        Err(e) => {
            let _ = e.to_compile_error();
        }
    }
});
