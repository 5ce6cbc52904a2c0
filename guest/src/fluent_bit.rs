//! The Fluent Bit filter: a core module for Fluent Bit's `wasm` filter (C ABI, JSON mode).
//!
//! Fluent Bit calls an exported function once per record with the tag and the record's JSON
//! text, each copied into module memory with a terminating NUL:
//!
//! ```c
//! char *f(char *tag, int tag_len, uint32_t sec, uint32_t nsec, char *record, int record_len);
//! ```
//!
//! It then copies the NUL-terminated string the function returns, and frees its own copies. A
//! JSON object replaces the record; `""` drops it. Anything else loses data (an invalid reply
//! can abort Fluent Bit with a double free), so every path here returns either a valid JSON
//! object or `""`, and nothing on the way can trap:
//!
//! * `vmext_annotate` returns every record. One that cannot match is returned as the very
//!   pointer it came in (no copy); a matching one comes back with its alerts added under the
//!   top-level key [`ANNOTATION_KEY`]. A record that is not valid JSON comes back wrapped as a
//!   string under [`INVALID_KEY`], so it is neither lost nor passed on malformed.
//! * `vmext_alerts` returns the alert for a matching record and drops everything else, for a
//!   route that carries only alerts.
//! * `vmext_annotate_hardened` and `vmext_alerts_hardened` do the same with the rule's opt-in
//!   hardened profile.
//!
//! Exceptions: on `wasm32-wasip1`, the module reads Elastic exception items from
//! [`EXCEPTIONS_PATH`] once, at its first call, through the directories Fluent Bit preopens
//! (`accessible_paths`). A file that cannot be opened means no exceptions (so a misconfigured
//! path never hides an alert); a file that opens but is not a valid exception list leaves the
//! alerts unsuppressed and adds [`CONFIG_ERROR_KEY`] to every reply that carries one.
//!
//! One output buffer is reused across calls; it is taken out of its cell while in use, so no
//! borrow is ever held across code that could trap.

use std::cell::Cell;
use std::sync::OnceLock;

use vmext_engine::{Detector, Exceptions, Outcome, ProfileName, RecordError, Verdict};

/// The top-level key under which `vmext_annotate` adds alerts (one definition, the engine's).
pub use vmext_engine::alert::ANNOTATION_KEY;

/// The top-level key of the object `vmext_annotate` returns for a record it cannot read; it
/// holds `{"error": …, "record": <the original text as a string>}`.
pub const INVALID_KEY: &str = "vmext_invalid_record";

/// Where the module reads exception items (an Elastic exception list: one item, an array of
/// items, or a Kibana NDJSON export). Give Fluent Bit `accessible_paths /etc/vmext`.
pub const EXCEPTIONS_PATH: &str = "/etc/vmext/exceptions.json";

/// The key added to replies that carry alerts when [`EXCEPTIONS_PATH`] is not a valid
/// exception list: the alerts were not filtered, and this says why.
pub const CONFIG_ERROR_KEY: &str = "vmext_config_error";

thread_local! {
    /// The reply buffer, reused across calls. Taken (left empty) while a call builds a reply.
    static REPLY: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The empty string: Fluent Bit drops the record.
static DROP: [u8; 1] = [0];

/// The exceptions file, read at the first call, and each profile's detector, built at the
/// first call that uses it (a filter runs one function, so one profile, as a rule).
struct Setup {
    exceptions: Exceptions,
    /// Why the exceptions file was not applied, when it exists but is invalid.
    config_error: Option<String>,
    faithful: OnceLock<Detector>,
    hardened: OnceLock<Detector>,
}

impl Setup {
    fn detector(&self, profile: ProfileName) -> &Detector {
        let cell = match profile {
            ProfileName::Faithful => &self.faithful,
            ProfileName::Hardened => &self.hardened,
        };
        cell.get_or_init(|| Detector::seed_in(profile).with_exceptions(self.exceptions.clone()))
    }
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let (exceptions, config_error) = match read_exceptions_file() {
            None => (Exceptions::none(), None),
            Some(text) => match Exceptions::from_json(&text) {
                Ok(exceptions) => (exceptions, None),
                Err(e) => (Exceptions::none(), Some(format!("{EXCEPTIONS_PATH}: {e}"))),
            },
        };
        Setup {
            exceptions,
            config_error,
            faithful: OnceLock::new(),
            hardened: OnceLock::new(),
        }
    })
}

/// The exceptions file's text, if the module can open it. Only WASI has files.
fn read_exceptions_file() -> Option<String> {
    if cfg!(all(target_arch = "wasm32", target_os = "wasi")) {
        let bytes = std::fs::read(EXCEPTIONS_PATH).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        None
    }
}

/// The record as a slice, or `None` when Fluent Bit could not copy it (`record == 0`).
///
/// # Safety
/// `record` is null or points to `len` readable bytes, as Fluent Bit's ABI guarantees.
unsafe fn record_slice<'a>(record: *const u8, len: u32) -> Option<&'a [u8]> {
    if record.is_null() {
        return None;
    }
    // SAFETY: non-null, and Fluent Bit copied `len` bytes (plus a NUL) there for this call.
    Some(unsafe { std::slice::from_raw_parts(record, len as usize) })
}

/// Writes a reply into the reused buffer, NUL-terminates it and returns its address.
fn reply(build: impl FnOnce(&mut Vec<u8>)) -> *const u8 {
    let mut buf = REPLY.take();
    buf.clear();
    build(&mut buf);
    buf.push(0);
    let ptr = buf.as_ptr();
    // The pointer stays valid: the buffer is moved back, not reallocated, and is not touched
    // again until the next call, after Fluent Bit has copied the reply.
    REPLY.set(buf);
    ptr
}

/// `,"vmext_config_error":"…"` when the exceptions file is invalid; nothing otherwise.
fn push_config_error(buf: &mut Vec<u8>) {
    if let Some(error) = &setup().config_error {
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(CONFIG_ERROR_KEY.as_bytes());
        buf.extend_from_slice(b"\":");
        push_json_str(buf, error);
    }
}

/// `"vmext_alerts":[<alert>,…]`: the member both modes add.
fn push_alerts_member(buf: &mut Vec<u8>, alerts: &[String]) {
    buf.push(b'"');
    buf.extend_from_slice(ANNOTATION_KEY.as_bytes());
    buf.extend_from_slice(b"\":[");
    for (i, alert) in alerts.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(alert.as_bytes());
    }
    buf.push(b']');
}

fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    let mut out = String::with_capacity(s.len() + 2);
    vmext_json::write_escaped_str(&mut out, s);
    buf.extend_from_slice(out.as_bytes());
}

/// `{"vmext_invalid_record":{"error":"…","record":"<original>"}}`: keeps the data, valid JSON.
fn invalid_reply(error: &str, record: &[u8]) -> *const u8 {
    reply(|buf| {
        buf.extend_from_slice(b"{\"");
        buf.extend_from_slice(INVALID_KEY.as_bytes());
        buf.extend_from_slice(b"\":{\"error\":");
        push_json_str(buf, error);
        buf.extend_from_slice(b",\"record\":");
        push_json_str(buf, &String::from_utf8_lossy(record));
        buf.extend_from_slice(b"}}");
    })
}

/// What the engine made of a record's text.
enum Checked {
    /// The prefilter rejected it unparsed: no alert, and no more known of its validity than
    /// the caller found before.
    Rejected,
    /// It was parsed (so it is a valid JSON object); these are its alerts.
    Parsed(Vec<String>),
}

/// The engine's verdict on a record; with `escapes`, what validation found of a record it
/// found valid ([`Detector::evaluate_validated`]).
fn check(
    profile: ProfileName,
    record: &[u8],
    escapes: Option<vmext_json::Escapes>,
) -> Result<Checked, RecordError> {
    crate::test_hooks::apply(record);
    let detector = setup().detector(profile);
    let outcome = match escapes {
        Some(escapes) => detector.evaluate_validated(record, escapes)?,
        None => detector.evaluate(record)?,
    };
    Ok(match outcome {
        Outcome::Rejected => Checked::Rejected,
        Outcome::Evaluated(list) => Checked::Parsed(
            list.into_iter()
                .filter_map(|e| match e.verdict {
                    Verdict::Alert(alert) => Some(alert.json),
                    _ => None,
                })
                .collect(),
        ),
    })
}

/// Defines one exported filter function: Fluent Bit's six-argument C signature over one mode
/// and one profile.
macro_rules! filter_function {
    ($(#[$doc:meta])* $name:ident => $mode:ident($profile:expr)) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by Fluent Bit with `record` null or pointing to `record_len` bytes followed by
        /// a NUL.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            _tag: *const u8,
            _tag_len: u32,
            _time_sec: u32,
            _time_nsec: u32,
            record: *const u8,
            record_len: u32,
        ) -> *const u8 {
            // SAFETY: forwarded from Fluent Bit's guarantee.
            unsafe { $mode($profile, record, record_len) }
        }
    };
}

filter_function!(
    /// The annotate mode, faithful profile; see the module documentation.
    vmext_annotate => annotate(ProfileName::Faithful)
);
filter_function!(
    /// The annotate mode, hardened profile; see the module documentation.
    vmext_annotate_hardened => annotate(ProfileName::Hardened)
);
filter_function!(
    /// The alerts-only mode, faithful profile; see the module documentation.
    vmext_alerts => alerts(ProfileName::Faithful)
);
filter_function!(
    /// The alerts-only mode, hardened profile; see the module documentation.
    vmext_alerts_hardened => alerts(ProfileName::Hardened)
);

/// Every record back; alerts added to the matching ones.
///
/// # Safety
/// `record` is null or points to `record_len` bytes followed by a NUL.
unsafe fn annotate(profile: ProfileName, record: *const u8, record_len: u32) -> *const u8 {
    // SAFETY: forwarded from the caller's guarantee.
    let Some(text) = (unsafe { record_slice(record, record_len) }) else {
        return invalid_reply(
            &format!(
                "Fluent Bit could not copy this {record_len}-byte record into the filter's \
                 memory; raise wasm_heap_size"
            ),
            b"",
        );
    };
    // A record the rule cannot match goes back as it came, but only if it is a valid JSON
    // object: a validating scan, no tree, run first because it also tells the prefilter
    // whether the text holds escapes, which spares the prefilter a search of its own.
    let validity = vmext_json::validate_escapes(text);
    match check(profile, text, validity.as_ref().ok().copied()) {
        Ok(Checked::Rejected) => match validity {
            Ok(_) if first_non_space(text) == Some(b'{') => record,
            Ok(_) => invalid_reply(&RecordError::NotAnObject.to_string(), text),
            Err(e) => invalid_reply(&RecordError::InvalidJson(e).to_string(), text),
        },
        Ok(Checked::Parsed(alerts)) if alerts.is_empty() => record,
        Ok(Checked::Parsed(alerts)) => reply(|buf| {
            // The record is a valid object (it was parsed): insert the key before its `}`.
            let end = text.iter().rposition(|b| *b == b'}').unwrap_or(0);
            let body = text.get(..end).unwrap_or_default();
            buf.extend_from_slice(body);
            let empty = body.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if !empty {
                buf.push(b',');
            }
            push_alerts_member(buf, &alerts);
            push_config_error(buf);
            buf.push(b'}');
        }),
        // A valid object that Elasticsearch would reject still goes on as Fluent Bit sent it.
        Err(RecordError::DuplicateKey(_)) => record,
        Err(e) => invalid_reply(&e.to_string(), text),
    }
}

/// Only alerts. A document with several alerts (an envelope of records) gives
/// `{"vmext_alerts":[…]}`, since one record in can give at most one record out.
///
/// # Safety
/// `record` is null or points to `record_len` bytes followed by a NUL.
unsafe fn alerts(profile: ProfileName, record: *const u8, record_len: u32) -> *const u8 {
    // SAFETY: forwarded from the caller's guarantee.
    let Some(text) = (unsafe { record_slice(record, record_len) }) else {
        return DROP.as_ptr();
    };
    let alerts = match check(profile, text, None) {
        Ok(Checked::Parsed(alerts)) => alerts,
        Ok(Checked::Rejected) | Err(_) => return DROP.as_ptr(),
    };
    match alerts.as_slice() {
        [] => DROP.as_ptr(),
        [alert] => reply(|buf| {
            // An alert is a non-empty compact object: the member goes before its `}`.
            let body = alert.strip_suffix('}').unwrap_or(alert);
            buf.extend_from_slice(body.as_bytes());
            push_config_error(buf);
            buf.push(b'}');
        }),
        alerts => reply(|buf| {
            buf.push(b'{');
            push_alerts_member(buf, alerts);
            push_config_error(buf);
            buf.push(b'}');
        }),
    }
}

/// Test-only (feature `test-hooks`): a plain byte scan of `len` bytes at `ptr` (counts `"`),
/// the yardstick the filter's cost on a record that cannot match is measured against.
///
/// # Safety
/// `ptr` points to `len` readable bytes.
#[cfg(feature = "test-hooks")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmext_test_byte_scan(ptr: *const u8, len: u32) -> u32 {
    // SAFETY: per the contract above.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len as usize) };
    let mut quotes = 0u32;
    for b in bytes {
        quotes += u32::from(*b == b'"');
    }
    quotes
}

/// Test-only (feature `test-hooks`): the literal prefilter alone on `len` bytes at `ptr`
/// (1 = may match), for the cost breakdown in BENCHMARKS.md.
///
/// # Safety
/// `ptr` points to `len` readable bytes.
#[cfg(feature = "test-hooks")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmext_test_prefilter(ptr: *const u8, len: u32) -> u32 {
    // SAFETY: per the contract above.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len as usize) };
    u32::from(setup().detector(ProfileName::Faithful).may_match(bytes))
}

/// Test-only (feature `test-hooks`): a filter function that returns every record as it came,
/// the yardstick for the host's own cost per call (`bench/fluent-bit-cpu.sh`).
///
/// # Safety
/// Called by Fluent Bit with `record` null or pointing to a NUL-terminated record.
#[cfg(feature = "test-hooks")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmext_test_pass_through(
    _tag: *const u8,
    _tag_len: u32,
    _time_sec: u32,
    _time_nsec: u32,
    record: *const u8,
    _record_len: u32,
) -> *const u8 {
    if record.is_null() {
        DROP.as_ptr()
    } else {
        record
    }
}

/// Test-only (feature `test-hooks`): the validating scan alone (1 = valid JSON).
///
/// # Safety
/// `ptr` points to `len` readable bytes.
#[cfg(feature = "test-hooks")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmext_test_validate(ptr: *const u8, len: u32) -> u32 {
    // SAFETY: per the contract above.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len as usize) };
    u32::from(vmext_json::validate(bytes).is_ok())
}

/// The WASI reactor entry point, which makes the module a reactor rather than a library.
///
/// WAMR, Fluent Bit's runtime, calls `_initialize` once after instantiating a module that
/// exports it; a module that imports WASI functions and exports neither `_start` nor
/// `_initialize` makes it print "a module with WASI apis should be either a command or a
/// reactor" on Fluent Bit's stdout, among the records. This runs the C library's static
/// constructors, as the C library's own reactor start file does; a second call does nothing.
#[cfg(all(target_arch = "wasm32", target_os = "wasi", target_env = "p1"))]
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    unsafe extern "C" {
        /// Generated by the linker: runs every static constructor of the module.
        fn __wasm_call_ctors();
    }
    if !DONE.swap(true, Ordering::Relaxed) {
        // SAFETY: the linker defines it for every module; it is run once, before any other
        // export is called.
        unsafe { __wasm_call_ctors() }
    }
}

fn first_non_space(text: &[u8]) -> Option<u8> {
    text.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// `malloc` and `free` for the host's copies of tag and record, on targets without a C
/// library (`wasm32-unknown-unknown`). On `wasm32-wasip1` the C library's own are exported
/// instead (see `build.rs`). Each block records its size in a header so `free` needs only the
/// pointer.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod allocator {
    use std::alloc::{Layout, alloc, dealloc};

    const HEADER: usize = 8;

    /// Allocates `size` bytes aligned to 8; returns null when memory cannot grow.
    #[unsafe(no_mangle)]
    pub extern "C" fn malloc(size: usize) -> *mut u8 {
        let Some(total) = size.checked_add(HEADER) else {
            return std::ptr::null_mut();
        };
        let Ok(layout) = Layout::from_size_align(total, HEADER) else {
            return std::ptr::null_mut();
        };
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc(layout) };
        if base.is_null() {
            return base;
        }
        // SAFETY: `base` has room for the header, aligned to 8.
        unsafe {
            base.cast::<usize>().write(total);
            base.add(HEADER)
        }
    }

    /// Frees a block from [`malloc`]; null is ignored.
    ///
    /// # Safety
    /// `ptr` is null or was returned by [`malloc`] and not yet freed.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn free(ptr: *mut u8) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: `ptr` came from `malloc`, so the header precedes it.
        unsafe {
            let base = ptr.sub(HEADER);
            let total = base.cast::<usize>().read();
            dealloc(base, Layout::from_size_align_unchecked(total, HEADER));
        }
    }
}
