//! Compile-time behaviour of `#[route]`: what compiles, and the error every misuse gets.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
