//! The WASI preview 1 calls a Fluent Bit module makes to read a file from a directory that
//! Fluent Bit preopens for it (`accessible_paths`), and nothing more.
//!
//! WAMR, Fluent Bit's runtime, gives a module each directory listed in `accessible_paths` (a
//! comma-separated list, default `.`) as a WASI preopen named by the path exactly as written:
//! there is no mapping to another name, a relative path is relative to Fluent Bit's working
//! directory, and a directory that cannot be opened stops Fluent Bit at start-up ("error while
//! pre-opening directory DIR: ERRNO"). The module's C library then resolves a path such as
//! `/etc/vmext/exceptions.json` against those names with their leading `/` and `./` removed: a
//! preopen `/etc/vmext` serves it, and so do `etc/vmext` and `.` (relative to the working
//! directory).
//!
//! The Fluent Bit module reads its exceptions file through them, so the calling convention
//! emulation needs the same calls: discovering preopens (`fd_prestat_get`,
//! `fd_prestat_dir_name`), opening a file read-only under one (`path_open`, after
//! `fd_fdstat_get` on the directory), reading it (`fd_filestat_get`, `fd_read`) and closing it
//! (`fd_close`). The environment is empty. Everything is read from the host directory at open
//! time; nothing can be written.
//!
//! Each preopen is held as a `cap_std::fs::Dir`, a capability for that directory alone, and
//! every open goes through it, as in wasmtime's own WASI: no path can leave the directory,
//! whether by `..`, an absolute path, a symbolic link to a file outside, or a symbolic link to
//! a directory outside met at any component of the path. Symbolic links that stay inside are
//! followed.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path};
use std::sync::Arc;

use cap_std::fs::Dir;

use wasmtime::{Caller, Extern, Linker};

/// WASI errno values used here.
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const FBIG: i32 = 22;
    pub const INVAL: i32 = 28;
    pub const ISDIR: i32 = 31;
    pub const NOENT: i32 = 44;
    pub const NODEV: i32 = 43;
    pub const NOTCAPABLE: i32 = 76;
}

/// The largest file the shim reads (an exception list is kilobytes): a larger one is refused
/// with `FBIG` rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The first descriptor after stdin, stdout and stderr: where preopens start.
const FIRST_PREOPEN: i32 = 3;
const FILETYPE_DIRECTORY: u8 = 3;
const FILETYPE_REGULAR_FILE: u8 = 4;

/// Per-instance state: the preopened directories (at descriptors 3, 4, …) and the files open
/// under them.
#[derive(Debug, Default)]
pub struct WasiFiles {
    /// (name the module sees, the directory's capability), in descriptor order.
    preopens: Vec<(String, Arc<Dir>)>,
    open: HashMap<i32, (Vec<u8>, usize)>,
    next_fd: i32,
}

impl WasiFiles {
    /// No preopened directory: every open fails. (Not Fluent Bit's default, which is `.`.)
    pub fn none() -> WasiFiles {
        WasiFiles::default()
    }

    /// The directories of Fluent Bit's `accessible_paths` value `list` (comma-separated), each
    /// preopened under its own name, with relative paths taken from `working_dir` (Fluent
    /// Bit's working directory).
    ///
    /// # Errors
    /// Fluent Bit's own message, `error while pre-opening directory DIR: ERRNO`, for the first
    /// directory that cannot be opened: Fluent Bit then refuses to start.
    pub fn accessible_paths(list: &str, working_dir: &Path) -> Result<WasiFiles, String> {
        let mut preopens = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let host = working_dir.join(name);
            let dir = Dir::open_ambient_dir(&host, cap_std::ambient_authority()).map_err(|e| {
                format!(
                    "error while pre-opening directory {name}: {}",
                    e.raw_os_error().unwrap_or(0)
                )
            })?;
            preopens.push((name.to_owned(), Arc::new(dir)));
        }
        let next_fd = FIRST_PREOPEN + i32::try_from(preopens.len()).unwrap_or(0);
        Ok(WasiFiles {
            preopens,
            open: HashMap::new(),
            next_fd,
        })
    }

    fn preopen(&self, fd: i32) -> Option<&(String, Arc<Dir>)> {
        let index = usize::try_from(fd.checked_sub(FIRST_PREOPEN)?).ok()?;
        self.preopens.get(index)
    }

    fn open(&mut self, dirfd: i32, relative: &str) -> Result<i32, i32> {
        let Some((_, dir)) = self.preopen(dirfd) else {
            return Err(errno::BADF);
        };
        // Absolute paths and `..` are refused before the capability is asked (it would refuse
        // them too); every other check is the capability's.
        if Path::new(relative)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(errno::NOTCAPABLE);
        }
        let refused = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => errno::NOENT,
            std::io::ErrorKind::IsADirectory => errno::ISDIR,
            _ => errno::NOTCAPABLE,
        };
        // Only regular files: opening a FIFO would wait for a writer, and a device may never
        // end. Checked before opening (through the capability, links resolved inside it) and
        // again on the open file.
        let kind = |m: &cap_std::fs::Metadata| {
            if m.is_dir() {
                Err(errno::ISDIR)
            } else if !m.is_file() {
                Err(errno::NODEV)
            } else if m.len() > MAX_FILE_BYTES {
                Err(errno::FBIG)
            } else {
                Ok(())
            }
        };
        kind(&dir.metadata(relative).map_err(refused)?)?;
        let file = dir.open(relative).map_err(refused)?;
        kind(&file.metadata().map_err(refused)?)?;
        let mut bytes = Vec::new();
        // The file may grow after the check: read no more than the bound, plus one byte to
        // tell.
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(refused)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(errno::FBIG);
        }
        let fd = self.next_fd;
        self.next_fd += 1;
        self.open.insert(fd, (bytes, 0));
        Ok(fd)
    }
}

/// Something that holds [`WasiFiles`] in a store.
pub trait HasWasiFiles {
    /// The state.
    fn wasi_files(&mut self) -> &mut WasiFiles;
}

fn memory<T>(caller: &mut Caller<'_, T>) -> Option<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

fn write<T>(caller: &mut Caller<'_, T>, at: i32, bytes: &[u8]) -> i32 {
    let (Some(mem), Ok(at)) = (memory(caller), usize::try_from(at)) else {
        return errno::FAULT;
    };
    match mem.write(caller, at, bytes) {
        Ok(()) => errno::SUCCESS,
        Err(_) => errno::FAULT,
    }
}

fn read<T>(caller: &mut Caller<'_, T>, at: i32, len: usize) -> Option<Vec<u8>> {
    let mem = memory(caller)?;
    let mut out = vec![0; len];
    mem.read(caller, usize::try_from(at).ok()?, &mut out).ok()?;
    Some(out)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_le_bytes(word)
}

/// Defines the calls in `linker` (before the remaining imports are defined as traps).
pub fn define<T: HasWasiFiles + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    const M: &str = "wasi_snapshot_preview1";
    linker.func_wrap(
        M,
        "environ_sizes_get",
        |mut c: Caller<'_, T>, count: i32, size: i32| {
            let e = write(&mut c, count, &0u32.to_le_bytes());
            if e != errno::SUCCESS {
                return e;
            }
            write(&mut c, size, &0u32.to_le_bytes())
        },
    )?;
    linker.func_wrap(M, "environ_get", |_: Caller<'_, T>, _: i32, _: i32| {
        errno::SUCCESS
    })?;
    linker.func_wrap(
        M,
        "fd_prestat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| {
            let name_len = match c.data_mut().wasi_files().preopen(fd) {
                Some((name, _)) => name.len(),
                None => return errno::BADF,
            };
            let mut prestat = [0u8; 8];
            prestat[4..8].copy_from_slice(&u32::try_from(name_len).unwrap_or(0).to_le_bytes());
            write(&mut c, out, &prestat)
        },
    )?;
    linker.func_wrap(
        M,
        "fd_prestat_dir_name",
        |mut c: Caller<'_, T>, fd: i32, out: i32, len: i32| {
            let name = match c.data_mut().wasi_files().preopen(fd) {
                Some((name, _)) => name.clone(),
                None => return errno::BADF,
            };
            if usize::try_from(len).ok() != Some(name.len()) {
                return errno::INVAL;
            }
            write(&mut c, out, name.as_bytes())
        },
    )?;
    linker.func_wrap(
        M,
        "fd_fdstat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| {
            let files = c.data_mut().wasi_files();
            let filetype = if files.preopen(fd).is_some() {
                FILETYPE_DIRECTORY
            } else if files.open.contains_key(&fd) {
                FILETYPE_REGULAR_FILE
            } else {
                return errno::BADF;
            };
            let mut stat = [0u8; 24];
            stat[0] = filetype;
            // Every right: the preopen's own rights limit nothing here; opening is read-only.
            stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
            stat[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
            write(&mut c, out, &stat)
        },
    )?;
    linker.func_wrap(
        M,
        "path_open",
        |mut c: Caller<'_, T>,
         dirfd: i32,
         _dirflags: i32,
         path: i32,
         path_len: i32,
         oflags: i32,
         _rights_base: i64,
         _rights_inheriting: i64,
         _fdflags: i32,
         out: i32| {
            // O_CREAT, O_DIRECTORY, O_EXCL, O_TRUNC: nothing but opening an existing file.
            if oflags != 0 {
                return errno::NOTCAPABLE;
            }
            let Some(bytes) = usize::try_from(path_len)
                .ok()
                .and_then(|len| read(&mut c, path, len))
            else {
                return errno::FAULT;
            };
            let Ok(relative) = String::from_utf8(bytes) else {
                return errno::INVAL;
            };
            match c.data_mut().wasi_files().open(dirfd, &relative) {
                Ok(fd) => write(&mut c, out, &fd.to_le_bytes()),
                Err(e) => e,
            }
        },
    )?;
    linker.func_wrap(
        M,
        "fd_filestat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| {
            let Some((bytes, _)) = c.data_mut().wasi_files().open.get(&fd) else {
                return errno::BADF;
            };
            let size = bytes.len() as u64;
            let mut stat = [0u8; 64];
            stat[16] = FILETYPE_REGULAR_FILE;
            stat[24..32].copy_from_slice(&1u64.to_le_bytes());
            stat[32..40].copy_from_slice(&size.to_le_bytes());
            write(&mut c, out, &stat)
        },
    )?;
    linker.func_wrap(
        M,
        "fd_read",
        |mut c: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nread: i32| {
            let Some(list) = usize::try_from(iovs_len)
                .ok()
                .and_then(|n| read(&mut c, iovs, n.saturating_mul(8)))
            else {
                return errno::FAULT;
            };
            let mut total = 0u32;
            for iov in list.chunks_exact(8) {
                let (buf, len) = (u32_at(iov, 0), u32_at(iov, 4) as usize);
                let chunk = {
                    let Some((bytes, pos)) = c.data_mut().wasi_files().open.get_mut(&fd) else {
                        return errno::BADF;
                    };
                    let end = (*pos + len).min(bytes.len());
                    let chunk = bytes.get(*pos..end).unwrap_or_default().to_vec();
                    *pos = end;
                    chunk
                };
                let Ok(at) = i32::try_from(buf) else {
                    return errno::FAULT;
                };
                let e = write(&mut c, at, &chunk);
                if e != errno::SUCCESS {
                    return e;
                }
                total += u32::try_from(chunk.len()).unwrap_or(0);
                if chunk.len() < len {
                    break;
                }
            }
            write(&mut c, nread, &total.to_le_bytes())
        },
    )?;
    linker.func_wrap(M, "fd_close", |mut c: Caller<'_, T>, fd: i32| {
        match c.data_mut().wasi_files().open.remove(&fd) {
            Some(_) => errno::SUCCESS,
            None => errno::BADF,
        }
    })?;
    Ok(())
}
