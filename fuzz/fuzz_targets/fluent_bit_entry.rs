//! The Fluent Bit entry points on arbitrary records, called the way Fluent Bit calls them (a
//! NUL-terminated copy): the reply is always `""` or one JSON object, never anything that makes
//! Fluent Bit lose data. The same code is the `wasm32-wasip1` module; here it runs natively so
//! the sanitizers and coverage see it. The validating scan that guards annotate mode's
//! pass-through is also held to the parser: the same verdict and the same error on every input.
#![no_main]

use std::ffi::CStr;

use libfuzzer_sys::fuzz_target;
use vmext_guest::fluent_bit::{
    vmext_alerts, vmext_alerts_hardened, vmext_annotate, vmext_annotate_hardened,
};

type Entry = unsafe extern "C" fn(*const u8, u32, u32, u32, *const u8, u32) -> *const u8;

fn check(entry: Entry, record: &[u8]) {
    let mut copy = record.to_vec();
    copy.push(0);
    let tag = b"fuzz\0";
    let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
    // SAFETY: both buffers are NUL-terminated and live for the call, as Fluent Bit guarantees.
    let reply = unsafe { entry(tag.as_ptr(), 4, 0, 0, copy.as_ptr(), len) };
    assert!(!reply.is_null());
    // SAFETY: the entry points return a NUL-terminated string that lives until the next call.
    let reply = unsafe { CStr::from_ptr(reply.cast()) }.to_bytes();
    if reply.is_empty() {
        return;
    }
    match vmext_json::parse(reply) {
        Ok(vmext_json::Value::Object(_)) => {}
        other => panic!("reply is not a JSON object: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        vmext_json::parse(data).err(),
        vmext_json::validate(data).err()
    );
    check(vmext_annotate, data);
    check(vmext_alerts, data);
    check(vmext_annotate_hardened, data);
    check(vmext_alerts_hardened, data);
});
