//! Compile-time behaviour of `#[route]`: the error every misuse gets.

#[test]
fn ui() {
    // What must compile is tested by ordinary tests beside this one (`every_form.rs`,
    // `custom_guard.rs`): with no pass case, trybuild only checks, never builds.
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
}
