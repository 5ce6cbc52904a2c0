//! The exception-list reader on arbitrary text: it never panics; a file it accepts has no
//! repeated key anywhere (as one document, or on any line of an export), and every item it
//! read decides any document without panicking, the same way each time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmext_engine::Exceptions;

/// A small event with the fields exception items commonly name.
const EVENT: &[u8] = br#"{"@timestamp":"2026-01-01T00:00:00Z","user":{"name":"svc"},"a":["1",2,null],"host":{"os":{"type":"windows"}},"claims":[{"name":"a","role":"admin"}],"source":{"ip":"10.0.0.1"}}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(exceptions) = Exceptions::from_json(text) else {
        return;
    };
    let repeated = |bytes: &[u8]| {
        vmext_json::parse(bytes)
            .ok()
            .and_then(|v| v.repeated_key())
            .is_some()
    };
    assert!(!repeated(text.as_bytes()), "accepted a repeated key: {text:?}");
    for line in text.lines() {
        assert!(!repeated(line.as_bytes()), "accepted a repeated key: {line:?}");
    }
    let event = vmext_json::parse(EVENT).unwrap_or(vmext_json::Value::Null);
    for at in [None, Some("2026-01-01T00:00:00.000Z")] {
        let first = exceptions.suppression(&event, at);
        assert_eq!(first, exceptions.suppression(&event, at));
    }
});
