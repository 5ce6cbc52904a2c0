//! An exact emulation of how Fluent Bit's `wasm` filter calls a module (JSON mode).
//!
//! Following Fluent Bit's `flb_wasm_call_function_format_json` and `filter_wasm`, per record:
//!
//! 1. copy the tag, then the record, into module memory with a terminating NUL, using the
//!    module's exported `malloc` (as WAMR does when the module exports `malloc` and `free`); if
//!    the record cannot be copied, the function is called with `record == 0` and the real length;
//! 2. call the function by name with `(tag, tag_len, time_sec, time_nsec, record, record_len)`;
//! 3. validate the returned address (inside memory, NUL-terminated before its end), copy the
//!    string, then free the copies of tag and record with the module's `free`;
//! 4. interpret the reply: `""` or an invalid address drops the record; one JSON object
//!    replaces it; anything else is what corrupts or silently loses data in a real Fluent Bit
//!    ([`Reply::Corrupt`]).
//!
//! The module gets only the WASI calls it needs to read a file from a preopened directory, as
//! Fluent Bit's `accessible_paths` provides (see [`crate::wasi_files`]); every other import is
//! defined as a trap.

use std::path::Path;

use wasmtime::{Config, Engine, Instance, Linker, Memory, Module, Store, TypedFunc};

use crate::wasi_files::{HasWasiFiles, WasiFiles};

impl HasWasiFiles for WasiFiles {
    fn wasi_files(&mut self) -> &mut WasiFiles {
        self
    }
}

/// Which exported function to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `vmext_annotate`: every record back, alerts added to matching ones.
    Annotate,
    /// `vmext_alerts`: only alerts.
    Alerts,
    /// `vmext_annotate_hardened`: the annotate mode with the hardened profile.
    AnnotateHardened,
    /// `vmext_alerts_hardened`: the alerts mode with the hardened profile.
    AlertsHardened,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 4] = [
        Mode::Annotate,
        Mode::Alerts,
        Mode::AnnotateHardened,
        Mode::AlertsHardened,
    ];

    /// The exported function's name (Fluent Bit's `function_name`).
    pub fn function_name(self) -> &'static str {
        match self {
            Mode::Annotate => "vmext_annotate",
            Mode::Alerts => "vmext_alerts",
            Mode::AnnotateHardened => "vmext_annotate_hardened",
            Mode::AlertsHardened => "vmext_alerts_hardened",
        }
    }

    /// Whether every record comes back (annotate) rather than only alerts.
    pub fn annotates(self) -> bool {
        matches!(self, Mode::Annotate | Mode::AnnotateHardened)
    }
}

/// What Fluent Bit makes of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The record is dropped (`""`, NULL, or an address Fluent Bit rejects).
    Dropped,
    /// The record is replaced by this JSON object.
    Record(String),
    /// A reply Fluent Bit mishandles (invalid JSON, an array, several objects): data loss or a
    /// crash in a real Fluent Bit. The module must never produce one.
    Corrupt(String),
}

/// A compiled Fluent Bit module.
pub struct FluentBitModule {
    engine: Engine,
    module: Module,
    linker: Linker<WasiFiles>,
    fuel: bool,
}

impl FluentBitModule {
    /// Loads and compiles a core module. `fuel` turns on instruction counting (for cost
    /// measurements; it slows execution).
    pub fn load(path: &Path, fuel: bool) -> wasmtime::Result<FluentBitModule> {
        let mut config = Config::new();
        config.consume_fuel(fuel);
        Self::with_config(path, config, fuel)
    }

    /// Loads a module whose calls may use at most `max_stack` bytes of native stack, to show
    /// that its code does not recurse on input.
    pub fn load_with_stack(path: &Path, max_stack: usize) -> wasmtime::Result<FluentBitModule> {
        let mut config = Config::new();
        config.max_wasm_stack(max_stack);
        Self::with_config(path, config, false)
    }

    fn with_config(path: &Path, config: Config, fuel: bool) -> wasmtime::Result<FluentBitModule> {
        let engine = Engine::new(&config)?;
        let module = vmext_host::compile_cache::module(&engine, path)?;
        let mut linker = Linker::new(&engine);
        crate::wasi_files::define(&mut linker)?;
        linker.define_unknown_imports_as_traps(&module)?;
        Ok(FluentBitModule {
            engine,
            module,
            linker,
            fuel,
        })
    }

    /// The module's export names.
    pub fn exports(&self) -> Vec<String> {
        self.module.exports().map(|e| e.name().to_owned()).collect()
    }

    /// A fresh instance, as Fluent Bit keeps one per filter, with no preopened directory.
    pub fn instantiate(&self) -> wasmtime::Result<FluentBitInstance> {
        self.instantiate_with(WasiFiles::none())
    }

    /// A fresh instance that sees `files` (a directory preopened as `accessible_paths` would).
    pub fn instantiate_with(&self, files: WasiFiles) -> wasmtime::Result<FluentBitInstance> {
        let mut store = Store::new(&self.engine, files);
        if self.fuel {
            store.set_fuel(u64::MAX)?;
        }
        let instance = self.linker.instantiate(&mut store, &self.module)?;
        // Fluent Bit runs a reactor's `_initialize` once, when the module exports it.
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            init.call(&mut store, ())?;
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| wasmtime::Error::msg("the module exports no memory"))?;
        Ok(FluentBitInstance {
            malloc: instance.get_typed_func(&mut store, "malloc")?,
            free: instance.get_typed_func(&mut store, "free")?,
            store,
            instance,
            memory,
        })
    }
}

type FilterFn = TypedFunc<(i32, i32, i32, i32, i32, i32), i32>;

/// One instance, called the way Fluent Bit calls it.
pub struct FluentBitInstance {
    store: Store<WasiFiles>,
    instance: Instance,
    memory: Memory,
    malloc: TypedFunc<i32, i32>,
    free: TypedFunc<i32, ()>,
}

impl FluentBitInstance {
    /// Copies `bytes` plus a NUL into module memory with the module's `malloc`; `None` if it
    /// returns NULL (the host's copy failed).
    fn dup(&mut self, bytes: &[u8]) -> wasmtime::Result<Option<i32>> {
        let len = i32::try_from(bytes.len() + 1)?;
        let ptr = self.malloc.call(&mut self.store, len)?;
        if ptr == 0 {
            return Ok(None);
        }
        let at = usize::try_from(ptr)?;
        self.memory.write(&mut self.store, at, bytes)?;
        self.memory.write(&mut self.store, at + bytes.len(), &[0])?;
        Ok(Some(ptr))
    }

    /// Calls `mode` on one record, as Fluent Bit does; a trap is an error (Fluent Bit drops the
    /// record and keeps the instance).
    pub fn call(&mut self, mode: Mode, tag: &str, record: &[u8]) -> wasmtime::Result<Reply> {
        self.call_raw(mode, tag, Some(record), record.len())
    }

    /// Like [`FluentBitInstance::call`], but `record: None` emulates a failed copy: the
    /// function sees `record == 0` with the real length.
    pub fn call_raw(
        &mut self,
        mode: Mode,
        tag: &str,
        record: Option<&[u8]>,
        record_len: usize,
    ) -> wasmtime::Result<Reply> {
        let func: FilterFn = self
            .instance
            .get_typed_func(&mut self.store, mode.function_name())?;
        let tag_ptr = self.dup(tag.as_bytes())?.unwrap_or(0);
        let record_ptr = match record {
            Some(r) => self.dup(r)?.unwrap_or(0),
            None => 0,
        };
        let args = (
            tag_ptr,
            i32::try_from(tag.len())?,
            1_767_225_600,
            0,
            record_ptr,
            i32::try_from(record_len)?,
        );
        let result = func.call(&mut self.store, args);
        // The reply is copied before the host frees its copies.
        let reply = match result {
            Ok(ptr) => self.read_reply(ptr),
            Err(trap) => {
                self.free_copies(tag_ptr, record_ptr)?;
                return Err(trap);
            }
        };
        self.free_copies(tag_ptr, record_ptr)?;
        Ok(reply)
    }

    fn free_copies(&mut self, tag_ptr: i32, record_ptr: i32) -> wasmtime::Result<()> {
        for ptr in [tag_ptr, record_ptr] {
            if ptr != 0 {
                self.free.call(&mut self.store, ptr)?;
            }
        }
        Ok(())
    }

    /// Validates the returned address and string as WAMR does, copies it and classifies it as
    /// Fluent Bit's JSON-to-msgpack step would.
    fn read_reply(&mut self, ptr: i32) -> Reply {
        let data = self.memory.data(&self.store);
        let Ok(start) = usize::try_from(ptr) else {
            return Reply::Dropped;
        };
        if ptr == 0 || start >= data.len() {
            return Reply::Dropped;
        }
        let Some(rest) = data.get(start..) else {
            return Reply::Dropped;
        };
        let Some(end) = rest.iter().position(|b| *b == 0) else {
            return Reply::Dropped; // no NUL before the end of memory: rejected
        };
        let bytes = rest.get(..end).unwrap_or_default();
        if bytes.is_empty() {
            return Reply::Dropped;
        }
        match vmext_json::parse(bytes) {
            Ok(vmext_json::Value::Object(_)) => match std::str::from_utf8(bytes) {
                Ok(text) => Reply::Record(text.to_owned()),
                Err(_) => Reply::Corrupt("not UTF-8".to_owned()),
            },
            Ok(_) => Reply::Corrupt("valid JSON but not an object".to_owned()),
            Err(e) => Reply::Corrupt(format!("invalid JSON: {e}")),
        }
    }

    /// The size of the module's linear memory in bytes.
    pub fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// Fuel (roughly, WebAssembly instructions) left, if the module was loaded with fuel.
    pub fn fuel(&self) -> Option<u64> {
        self.store.get_fuel().ok()
    }

    /// Calls a test-only export `(ptr, len) -> i32` on `bytes` copied into memory (used to
    /// measure a plain byte scan of the same record for comparison).
    pub fn call_scan(&mut self, export: &str, bytes: &[u8]) -> wasmtime::Result<i32> {
        let func: TypedFunc<(i32, i32), i32> =
            self.instance.get_typed_func(&mut self.store, export)?;
        let ptr = self.dup(bytes)?.unwrap_or(0);
        let out = func.call(&mut self.store, (ptr, i32::try_from(bytes.len())?));
        if ptr != 0 {
            self.free.call(&mut self.store, ptr)?;
        }
        out
    }
}

/// Finds the Fluent Bit module: `explicit` if given, else `$VMEXT_FLUENT_BIT_MODULE`, else where
/// `cargo xtask build` writes it relative to the running executable's target folder.
pub fn find_module(explicit: Option<&Path>) -> Result<std::path::PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("VMEXT_FLUENT_BIT_MODULE") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidate = dir.join(vmext_artefacts::Artefact::FluentBit.path_from_host_binary());
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(
            "the Fluent Bit module was not found in the executable's target folder; build it \
             with `cargo xtask build` or pass --module PATH"
                .to_owned(),
        )
    }
}

/// What [`run_records`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records passed to the module.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// Records the module returned (the rest were dropped).
    pub returned: u64,
    /// Returned records that carry alerts (`vmext_alerts`, or an alert document).
    pub with_alerts: u64,
    /// Replies a real Fluent Bit would mishandle. Always 0 for a correct module.
    pub corrupt: u64,
    /// Calls that trapped (Fluent Bit drops the record and goes on).
    pub traps: u64,
}

/// A source of records: calls its argument once per record, in order.
pub type RecordSource<'s> =
    dyn FnMut(&mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> + 's;

/// Calls `mode` on every record, as Fluent Bit's `wasm` filter would, writing each returned
/// record as one NDJSON line.
pub fn run_records(
    instance: &mut FluentBitInstance,
    mode: Mode,
    tag: &str,
    records: &mut RecordSource<'_>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<RunSummary> {
    let mut summary = RunSummary::default();
    records(&mut |record| {
        summary.records += 1;
        summary.bytes += record.len() as u64 + 1;
        match instance.call(mode, tag, record) {
            Ok(Reply::Record(text)) => {
                summary.returned += 1;
                if carries_alerts(&text) {
                    summary.with_alerts += 1;
                }
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")?;
            }
            Ok(Reply::Dropped) => {}
            Ok(Reply::Corrupt(_)) => summary.corrupt += 1,
            Err(_) => summary.traps += 1,
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(summary)
}

/// Whether a returned record carries alerts: a top-level `vmext_alerts`, or an alert document
/// (`event.kind: alert`). Parsed only when the text could say so.
fn carries_alerts(text: &str) -> bool {
    if !text.contains("vmext_alerts") && !text.contains("alert") {
        return false;
    }
    let Ok(doc) = vmext_json::parse(text.as_bytes()) else {
        return false;
    };
    doc.get("vmext_alerts").is_some()
        || doc
            .get("event")
            .and_then(|e| e.get("kind"))
            .and_then(|k| k.as_str())
            == Some("alert")
}
