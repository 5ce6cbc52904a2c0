//! A cache of compiled WebAssembly, so that a scan does not spend its first half-second
//! compiling the same component again.
//!
//! Compiling the component with Cranelift takes longer than scanning 100 MB natively (figures
//! in BENCHMARKS.md). The compiled code is written once to the user's cache
//! directory (`$VMEXT_CACHE_DIR`, else `$XDG_CACHE_HOME/vmext`, else `~/.cache/vmext`), keyed
//! by a 128-bit hash of the WebAssembly bytes and wasmtime's own hash of everything that makes
//! compiled code compatible (wasmtime version, target, configuration). Later runs load it
//! directly. `VMEXT_NO_COMPILE_CACHE=1` turns the cache off. Any problem with the cache (no
//! directory, a stale or corrupt file) falls back to compiling; it is never an error.
//!
//! # Trust model
//!
//! Loading precompiled code runs it without validation, so a cache file is used only when
//! its integrity is proven, and only from a directory that is the user's own:
//!
//! * **Integrity**: each file is exactly the code wasmtime serialised, and its name ends with
//!   the BLAKE3 digest of its contents (`component-KEY-DIGEST.cwasm`). The whole file is
//!   mapped and its digest checked before wasmtime sees a byte; any difference (a flipped bit,
//!   a truncated or overwritten file, a file from another program) means the file is removed,
//!   the module compiled again and a new file stored. wasmtime then maps the file itself
//!   (no copy) and checks its own header (version, target, configuration).
//! * **Authenticity comes from the directory**, not the digest (whoever can write a file can
//!   write its digest): the directory is created private (mode 0700), and a cache directory
//!   that is a symbolic link, belongs to another user, or that others can write to (group-
//!   or world-writable) is not used at all. The check is made on the path: the directories
//!   above it are trusted as the user's own. Whoever can
//!   write to the user's own `~/.cache` can already change `~/.bashrc`; the cache adds no new
//!   way in.
//! * Files are written to a temporary name and renamed, so a reader never sees half a file,
//!   and never rewritten in place. Because a name says what its file holds, a file that
//!   replaces another by rename under the same name holds the same bytes, so what wasmtime
//!   maps after the check is what was checked, and a mapping in use keeps its bytes. Another
//!   process of the user's that truncated or rewrote a file in place could crash the reader
//!   or change its code after the check; that takes write access to the private directory.
//! * **Eviction**: a file used is touched; after each store, files unused for
//!   [`MAX_AGE`] are removed, then the least recently used until the cache holds at most
//!   [`MAX_TOTAL_BYTES`].

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::Engine;
use wasmtime::Module;
use wasmtime::component::Component;

/// How a cache file's name ends.
const EXTENSION: &str = "cwasm";

/// Cache files unused for this long are removed.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The most the cache directory holds; the least recently used files go first.
pub const MAX_TOTAL_BYTES: u64 = 512 << 20;

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

/// Creates the directory private if it is missing; `false` when it cannot be used: not a
/// directory (a symbolic link included), owned by another user, or writable by others than
/// its owner.
fn usable_dir(dir: &Path) -> bool {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    if builder.create(dir).is_err() {
        return false;
    }
    // The directory itself, not a link to one: a link could lead to a directory chosen by
    // whoever could write the link.
    match std::fs::symlink_metadata(dir) {
        #[cfg(unix)]
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            m.is_dir() && m.mode() & 0o022 == 0 && m.uid() == rustix::process::geteuid().as_raw()
        }
        #[cfg(not(unix))]
        Ok(m) => m.is_dir(),
        Err(_) => false,
    }
}

/// Feeds what `Hash` writes into a BLAKE3 hasher, for wasmtime's compatibility hash, which is
/// only offered as a `Hash` value.
struct Blake3Writer(blake3::Hasher);

impl Hasher for Blake3Writer {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0.finalize().as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
}

/// The start of the names of the files that may hold `bytes` compiled by `engine`: the kind
/// and 128 bits of a BLAKE3 hash of the kind, wasmtime's hash of everything that makes compiled
/// code compatible, and the bytes, enough that two different modules never share a name by
/// accident. (A name, not a proof: the digest in the rest of the name is checked.)
fn key(engine: &Engine, kind: &str, bytes: &[u8]) -> String {
    let mut h = Blake3Writer(blake3::Hasher::new());
    kind.hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(bytes);
    let hex = h.0.finalize().to_hex();
    format!("{kind}-{}-", &hex[..32])
}

/// The name of the file that holds `compiled` under `key`.
fn file_name(key: &str, compiled: &[u8]) -> String {
    format!("{key}{}.{EXTENSION}", blake3::hash(compiled).to_hex())
}

/// The digest a cache file's name gives for its contents, if it is one of `key`'s.
fn named_digest<'a>(name: &'a str, key: &str) -> Option<&'a str> {
    let digest = name
        .strip_prefix(key)?
        .strip_suffix(EXTENSION)?
        .strip_suffix('.')?;
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digest)
}

/// A cache file, mapped read-only to check its digest rather than read: copying megabytes of
/// compiled code into fresh memory (a page fault for every page) was over a quarter of a
/// cached start (BENCHMARKS.md, "The component's start").
fn map(path: &Path) -> std::io::Result<memmap2::Mmap> {
    let file = std::fs::File::open(path)?;
    // SAFETY: a mapping must not see its file change. Cache files are never changed in place:
    // `write_whole` writes a temporary file and renames it over the name, `evict` and
    // `find_verified` unlink, and touching a file sets its time only; none of these alters a
    // mapped file's bytes. The directory is the user's own and nobody else can write to it
    // (module documentation).
    unsafe { memmap2::MmapOptions::new().populate().map(&file) }
}

/// Whether `contents` are what a file named with `digest` (lower-case hex) must hold.
fn verified(contents: &[u8], digest: &str) -> bool {
    blake3::hash(contents).to_hex().as_str() == digest
}

/// A file of `key`'s in `dir` whose contents match the digest in its name. Files of the key
/// that do not match (corrupt, truncated, overwritten) are removed on the way.
fn find_verified(dir: &Path, key: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(digest) = name.to_str().and_then(|n| named_digest(n, key)) else {
            continue;
        };
        let path = entry.path();
        if map(&path).is_ok_and(|contents| verified(&contents, digest)) {
            return Some(path);
        }
        let _ = std::fs::remove_file(&path);
    }
    None
}

/// Stores `compiled` in `dir` under `key`'s name for it: written to a temporary name and
/// renamed into place.
fn store(dir: &Path, key: &str, compiled: &[u8]) {
    write_whole(&dir.join(file_name(key, compiled)), compiled);
}

/// Writes `contents` to a temporary file and renames it to `path`, so that a reader only ever
/// sees a complete file, and a file already at `path` is replaced, never rewritten.
fn write_whole(path: &Path, contents: &[u8]) {
    // A name no other writer uses (threads of this process included).
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    if std::fs::write(&temporary, contents).is_err() || std::fs::rename(&temporary, path).is_err() {
        // A full disk or a failed rename leaves no half-written file behind.
        let _ = std::fs::remove_file(&temporary);
    }
}

/// Temporary files older than this are left over from a process that stopped while writing
/// (killed, or its machine shut down): [`evict`] removes them.
const LEFT_OVER_AFTER: Duration = Duration::from_secs(3600);

/// Whether `path` is named like one of [`store`]'s temporary files.
fn is_temporary(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.starts_with("tmp"))
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("component-") || n.starts_with("module-"))
}

/// Removes cache files unused for [`MAX_AGE`], then the least recently used until the rest
/// fit in `max_total` bytes, and temporary files left over for [`LEFT_OVER_AFTER`]. Other
/// files in the directory are left alone.
fn evict(dir: &Path, max_total: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let old = |m: &std::fs::Metadata, age: Duration| {
        now.duration_since(m.modified().unwrap_or(UNIX_EPOCH))
            .is_ok_and(|a| a > age)
    };
    let paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    for path in paths.iter().filter(|p| is_temporary(p)) {
        if std::fs::symlink_metadata(path).is_ok_and(|m| old(&m, LEFT_OVER_AFTER)) {
            let _ = std::fs::remove_file(path);
        }
    }
    let mut files: Vec<(SystemTime, u64, PathBuf)> = paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == EXTENSION))
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(&p).ok()?;
            Some((m.modified().unwrap_or(UNIX_EPOCH), m.len(), p))
        })
        .collect();
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    for (used, len, path) in files {
        let stale = now.duration_since(used).is_ok_and(|age| age > MAX_AGE);
        if (stale || total > max_total) && std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
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
/// `deserialize` is only ever given a file whose BLAKE3 digest matches the one in its name,
/// from wasmtime's own serialisation of this exact module in a directory only its owner can
/// write to (see the module documentation); wasmtime then checks its own header and refuses
/// code compiled for another version, target or configuration.
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
    let Some(dir) = dir.filter(|d| usable_dir(d)) else {
        return compile(engine, &bytes);
    };
    let key = key(engine, kind, &bytes);
    if let Some(file) = find_verified(&dir, &key)
        && let Ok(loaded) = deserialize(engine, &file)
    {
        // Used now: eviction goes by last use.
        if let Ok(f) = std::fs::File::options().append(true).open(&file) {
            let _ = f.set_modified(SystemTime::now());
        }
        return Ok(loaded);
    }
    let compiled = compile(engine, &bytes)?;
    if let Ok(serialised) = serialize(&compiled) {
        store(&dir, &key, &serialised);
        evict(&dir, MAX_TOTAL_BYTES);
    }
    Ok(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_removes_the_least_recently_used_and_the_stale() {
        let dir = std::env::temp_dir().join(format!("vmext-evict-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let now = SystemTime::now();
        for (i, age_days) in [(0, 40u64), (1, 3), (2, 2), (3, 1)] {
            let path = dir.join(format!("module-{i}.cwasm"));
            std::fs::write(&path, vec![0u8; 1000]).unwrap();
            let f = std::fs::File::options().append(true).open(&path).unwrap();
            f.set_modified(now - Duration::from_secs(age_days * 24 * 3600))
                .unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "kept").unwrap();
        // Temporary files: one left over by a process that died while writing, one being
        // written now.
        for (name, age) in [("module-9.tmp77-0", 7200), ("module-8.tmp78-0", 5)] {
            let path = dir.join(name);
            std::fs::write(&path, b"half a file").unwrap();
            let f = std::fs::File::options().append(true).open(&path).unwrap();
            f.set_modified(now - Duration::from_secs(age)).unwrap();
        }
        evict(&dir, 2000);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // module-0 is stale; module-1 is the least recently used of the three within 2000 bytes.
        assert_eq!(
            left,
            [
                "module-2.cwasm",
                "module-3.cwasm",
                "module-8.tmp78-0",
                "notes.txt"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vmext-open-cache-{}", std::process::id()));
        assert!(usable_dir(&dir));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "created private: {mode:o}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!usable_dir(&dir));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(usable_dir(&dir));
        // A link to a private directory is not used: whoever wrote the link chose the target.
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(!usable_dir(&link));
        let _ = std::fs::remove_file(&link);
        // Nor a private directory of another user (only root can make one to test with).
        if rustix::process::geteuid().is_root() {
            let theirs = dir.join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
            assert!(!usable_dir(&theirs));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

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
        // A file's name is the key and its contents' digest, and only such a name is the key's.
        let name = file_name(&a, b"code");
        let digest = named_digest(&name, &a).unwrap();
        assert!(verified(b"code", digest));
        assert!(!verified(b"codd", digest));
        assert_eq!(named_digest(&name, &key(&fuel, "module", b"")), None);
        assert_eq!(named_digest(&format!("{a}00.cwasm"), &a), None);
        assert_eq!(named_digest(&name.replace(".cwasm", ".tmp1-0"), &a), None);
        let upper = format!("{a}{}.cwasm", digest.to_ascii_uppercase());
        assert!(!verified(b"code", named_digest(&upper, &a).unwrap()));
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
        let cache = dir.join("cache");
        let engine = Engine::default();
        let call = |m: &Module| {
            let mut store = wasmtime::Store::new(&engine, ());
            let instance = wasmtime::Instance::new(&mut store, m, &[]).unwrap();
            let f = instance.get_typed_func::<(), i32>(&mut store, "f").unwrap();
            f.call(&mut store, ()).unwrap()
        };
        let load = || call(&module_in(&engine, &wasm, Some(cache.clone())).unwrap());
        let files = || -> Vec<PathBuf> {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&cache)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files
        };
        assert_eq!(load(), 7);
        let key = key(&engine, "module", bytes);
        let cached = find_verified(&cache, &key).expect("stored");
        assert_eq!(files(), std::slice::from_ref(&cached));
        let good = std::fs::read(&cached).unwrap();
        assert_eq!(load(), 7);
        // Every single flipped bit of a valid file, anywhere in it, and every truncation (an
        // empty file included: mapped as no bytes at all) is caught before wasmtime sees the
        // code: the file is removed, the module compiled again, stored again, and it runs.
        let mut corruptions: Vec<Vec<u8>> = (0..good.len())
            .step_by(good.len() / 97 + 1)
            .map(|at| {
                let mut bad = good.clone();
                bad[at] ^= 0x10;
                bad
            })
            .collect();
        corruptions.extend([0, 1, good.len() / 2, good.len() - 1].map(|n| good[..n].to_vec()));
        corruptions.push(b"not compiled code".to_vec());
        for bad in corruptions {
            std::fs::write(&cached, &bad).unwrap();
            assert_eq!(find_verified(&cache, &key), None, "corruption not caught");
            assert_eq!(files(), [] as [PathBuf; 0], "the corrupt file is removed");
            std::fs::write(&cached, &bad).unwrap();
            assert_eq!(load(), 7);
            assert_eq!(files(), std::slice::from_ref(&cached));
            assert_eq!(
                std::fs::read(&cached).unwrap(),
                good,
                "replaced by a good file"
            );
        }
        // Files of other keys and of the format before names held digests are left alone.
        let old = cache.join(format!("{}.cwasm", key.trim_end_matches('-')));
        let other = cache.join(file_name("module-0123456789abcdef0123456789abcdef-", b"x"));
        std::fs::write(&old, &good).unwrap();
        std::fs::write(&other, b"y").unwrap();
        assert_eq!(load(), 7);
        assert_eq!(files().len(), 3);
        // A mapped file keeps its bytes when a new file is written under its name (what makes
        // the mapping sound: files are replaced, never rewritten).
        let mapped = map(&cached).unwrap();
        write_whole(&cached, b"another compilation");
        assert_eq!(&mapped[..], &good[..]);
        assert_eq!(std::fs::read(&cached).unwrap(), b"another compilation");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
