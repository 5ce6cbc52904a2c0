//! The KQL parser on arbitrary text: it never panics, and every query it accepts prints back to
//! a query that parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(tree) = vmext_kql::parse(text) else {
        return;
    };
    let printed = tree.to_string();
    let again = vmext_kql::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
    assert_eq!(again.without_spans(), tree.without_spans(), "{text:?} printed as {printed:?}");
});
