//! A cache of compiled WebAssembly, so that a scan does not spend its first half-second
//! compiling the same component again.
//!
//! Compiling the component with Cranelift takes about 0.6 s on the project's machine: longer
//! than scanning 100 MB natively. The compiled code is written once to the user's cache
//! directory (`$VMEXT_CACHE_DIR`, else `$XDG_CACHE_HOME/vmext`, else `~/.cache/vmext`), keyed
//! by a 128-bit hash of the WebAssembly bytes and wasmtime's own hash of everything that makes
//! compiled code compatible (wasmtime version, target, configuration). Later runs load it
//! directly. `VMEXT_NO_COMPILE_CACHE=1` turns the cache off. Any problem with the cache (no
//! directory, a stale or corrupt file) falls back to compiling; it is never an error.
//!
//! Trust: loading precompiled code runs it without validation, so the cache must be as private
//! as the user's other configuration. Whoever can write to `~/.cache` can already change
//! `~/.bashrc`; the cache adds no new way in. Files are written to a temporary name and renamed,
//! so a reader never sees half a file.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::Module;
use wasmtime::component::Component;

/// The cache directory, unless the cache is turned off or no directory can be named.
fn cache_dir() -> Option<PathBuf> {
    if std::env::var_os("VMEXT_NO_COMPILE_CACHE").is_some_and(|v| !v.is_empty() && v != "0") {
        return None;
    }
    if let Some(dir) = std::env::var_os("VMEXT_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("vmext"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/vmext"))
}

/// Two SipHash passes with different prefixes: 128 bits, enough that two different modules
/// never share a file by accident.
fn key(engine: &Engine, kind: &str, bytes: &[u8]) -> String {
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        i.hash(&mut h);
        kind.hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        bytes.hash(&mut h);
        *part = h.finish();
    }
    format!("{kind}-{:016x}{:016x}.cwasm", parts[0], parts[1])
}

fn store(path: &Path, compiled: &[u8]) {
    let Some(dir) = path.parent() else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    // A name no other writer uses (threads of this process included), so a reader only ever
    // sees a complete file, renamed into place in one step.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    if std::fs::write(&temporary, compiled).is_ok() && std::fs::rename(&temporary, path).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

/// The component at `path`, from the cache when it holds it, else compiled (and cached).
pub fn component(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    cached(
        engine,
        path,
        cache_dir(),
        "component",
        |engine, bytes| Component::new(engine, bytes),
        // SAFETY: see `cached`.
        |engine, file| unsafe { Component::deserialize_file(engine, file) },
        Component::serialize,
    )
}

/// The core module at `path`, from the cache when it holds it, else compiled (and cached).
pub fn module(engine: &Engine, path: &Path) -> wasmtime::Result<Module> {
    module_in(engine, path, cache_dir())
}

fn module_in(engine: &Engine, path: &Path, dir: Option<PathBuf>) -> wasmtime::Result<Module> {
    cached(
        engine,
        path,
        dir,
        "module",
        |engine, bytes| Module::new(engine, bytes),
        // SAFETY: see `cached`.
        |engine, file| unsafe { Module::deserialize_file(engine, file) },
        Module::serialize,
    )
}

/// Loads compiled code from `dir` when it holds this module's, else compiles and stores it.
///
/// `deserialize` is only ever given a file that `store` wrote from wasmtime's own
/// serialisation of this exact module: its name is a hash of the module's bytes and of the
/// engine's compatibility, wasmtime checks the header and refuses an incompatible file, and
/// the directory is the user's own (see the module documentation).
fn cached<T>(
    engine: &Engine,
    path: &Path,
    dir: Option<PathBuf>,
    kind: &str,
    compile: impl Fn(&Engine, &[u8]) -> wasmtime::Result<T>,
    deserialize: impl Fn(&Engine, &Path) -> wasmtime::Result<T>,
    serialize: impl Fn(&T) -> wasmtime::Result<Vec<u8>>,
) -> wasmtime::Result<T> {
    let bytes = std::fs::read(path)?;
    let Some(file) = dir.map(|dir| dir.join(key(engine, kind, &bytes))) else {
        return compile(engine, &bytes);
    };
    if file.is_file()
        && let Ok(loaded) = deserialize(engine, &file)
    {
        return Ok(loaded);
    }
    let compiled = compile(engine, &bytes)?;
    if let Ok(serialised) = serialize(&compiled) {
        store(&file, &serialised);
    }
    Ok(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_bytes_kind_and_engine() {
        let plain = Engine::default();
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let fuel = Engine::new(&config).unwrap();
        let a = key(&plain, "module", b"\0asm\x01\0\0\0");
        assert_eq!(a, key(&plain, "module", b"\0asm\x01\0\0\0"));
        assert_ne!(a, key(&plain, "module", b"\0asm\x01\0\0\x01"));
        assert_ne!(a, key(&plain, "component", b"\0asm\x01\0\0\0"));
        assert_ne!(a, key(&fuel, "module", b"\0asm\x01\0\0\0"));
    }

    #[test]
    fn a_cached_module_loads_and_a_corrupt_one_is_recompiled() {
        let dir = std::env::temp_dir().join(format!("vmext-cache-test-{}", std::process::id()));
        let wasm = dir.join("m.wasm");
        std::fs::create_dir_all(&dir).unwrap();
        // (module (func (export "f") (result i32) i32.const 7))
        let bytes: &[u8] = &[
            0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 127, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0,
            10, 6, 1, 4, 0, 65, 7, 11,
        ];
        std::fs::write(&wasm, bytes).unwrap();
        let cache = Some(dir.join("cache"));
        let engine = Engine::default();
        let call = |m: &Module| {
            let mut store = wasmtime::Store::new(&engine, ());
            let instance = wasmtime::Instance::new(&mut store, m, &[]).unwrap();
            let f = instance.get_typed_func::<(), i32>(&mut store, "f").unwrap();
            f.call(&mut store, ()).unwrap()
        };
        assert_eq!(call(&module_in(&engine, &wasm, cache.clone()).unwrap()), 7);
        let cached = dir.join("cache").join(key(&engine, "module", bytes));
        assert!(cached.is_file());
        assert_eq!(call(&module_in(&engine, &wasm, cache.clone()).unwrap()), 7);
        std::fs::write(&cached, b"not compiled code").unwrap();
        assert_eq!(call(&module_in(&engine, &wasm, cache.clone()).unwrap()), 7);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
