//! Where each WebAssembly artefact of the guest crate is built.
//!
//! `cargo xtask` builds the artefacts, the tests build them again from the current sources,
//! and `vmext-detect` looks for the component next to itself or in its target folder. All
//! three read the target, features, profile and output path from [`Artefact`], so a change
//! of layout is one edit here. [`fixtures`] is the schema of the fixtures' manifest, for the
//! same readers.

#![forbid(unsafe_code)]

pub mod fixtures;

use std::path::PathBuf;

/// The guest crate every artefact is built from.
pub const GUEST_PACKAGE: &str = "vmext-guest";

/// The cargo profile of every WebAssembly artefact (small, fully optimised; see the
/// workspace's `Cargo.toml`).
pub const WASM_PROFILE: &str = "wasm-release";

/// The file name cargo gives every guest artefact.
pub const GUEST_FILE: &str = "vmext_guest.wasm";

/// A WebAssembly artefact of the guest crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Artefact {
    /// The component (`wasm32-wasip2`, world `vmext:detect/filter`).
    Component,
    /// The component with the `test-hooks` feature (injected traps and endless loops).
    ComponentWithTestHooks,
    /// The Fluent Bit filter module (`wasm32-wasip1`).
    FluentBit,
    /// The Fluent Bit filter module with the `test-hooks` feature.
    FluentBitWithTestHooks,
    /// The Fluent Bit filter built for `wasm32-unknown-unknown` (feature `fluent-bit`).
    FluentBitUnknown,
    /// The browser playground's module (`wasm32-unknown-unknown`, feature `web`), before
    /// `wasm-bindgen` processes it. It has a target folder of its own, so its features do not
    /// rebuild the Fluent Bit module's dependencies.
    Web,
}

impl Artefact {
    /// Every artefact a release ships, with what it is (`cargo xtask build` builds these).
    pub const SHIPPED: [(Artefact, &'static str); 3] = [
        (Artefact::Component, "component"),
        (Artefact::FluentBit, "Fluent Bit filter"),
        (
            Artefact::FluentBitUnknown,
            "Fluent Bit filter (wasm32-unknown-unknown)",
        ),
    ];

    /// The Rust target it is built for.
    pub fn target(self) -> &'static str {
        match self {
            Artefact::Component | Artefact::ComponentWithTestHooks => "wasm32-wasip2",
            Artefact::FluentBit | Artefact::FluentBitWithTestHooks => "wasm32-wasip1",
            Artefact::FluentBitUnknown | Artefact::Web => "wasm32-unknown-unknown",
        }
    }

    /// The guest features it is built with, if any.
    pub fn features(self) -> Option<&'static str> {
        match self {
            Artefact::Component | Artefact::FluentBit => None,
            Artefact::ComponentWithTestHooks | Artefact::FluentBitWithTestHooks => {
                Some("test-hooks")
            }
            Artefact::FluentBitUnknown => Some("fluent-bit"),
            Artefact::Web => Some("web"),
        }
    }

    /// The cargo target folder it is built in, relative to the repository root.
    pub fn target_dir(self) -> &'static str {
        match self {
            Artefact::ComponentWithTestHooks | Artefact::FluentBitWithTestHooks => {
                "target/test-hooks"
            }
            Artefact::Web => "target/web",
            _ => "target",
        }
    }

    /// The built file, relative to the repository root.
    pub fn path(self) -> PathBuf {
        [self.target_dir(), self.target(), WASM_PROFILE, GUEST_FILE]
            .iter()
            .collect()
    }

    /// The built file relative to a host binary in `target/<profile>/` of the same target
    /// folder (how `vmext-detect` finds the component in a checkout).
    pub fn path_from_host_binary(self) -> PathBuf {
        ["..", self.target(), WASM_PROFILE, GUEST_FILE]
            .iter()
            .collect()
    }

    /// The arguments of `cargo <command>` (`build` or `clippy`) for this artefact, with an
    /// explicit `--target-dir` unless it is the default folder.
    pub fn cargo_args(self, command: &'static str) -> Vec<&'static str> {
        let mut args = vec![
            command,
            "--quiet",
            "-p",
            GUEST_PACKAGE,
            "--target",
            self.target(),
            "--profile",
            WASM_PROFILE,
        ];
        if let Some(features) = self.features() {
            args.extend(["--features", features]);
        }
        if self.target_dir() != "target" {
            args.extend(["--target-dir", self.target_dir()]);
        }
        args
    }
}

/// The Fluent Bit release the AOT files are compiled for.
pub const AOT_FLUENT_BIT_VERSION: &str = "5.1.1";

/// The WAMR release that Fluent Bit [`AOT_FLUENT_BIT_VERSION`] vendors: an AOT file loads only
/// in a runtime of the same WAMR version (its header carries an AOT format version that WAMR
/// checks), so `wamrc` is built from exactly these sources.
pub const AOT_WAMR_VERSION: &str = "2.4.1";

/// The folder the AOT files are written to, relative to the repository root.
pub const AOT_DIR: &str = "target/aot";

/// The Fluent Bit module compiled ahead of time by `wamrc` for `arch` (`x86_64` or `aarch64`,
/// `wamrc --target` names, which are also Rust's `std::env::consts::ARCH`), relative to the
/// repository root.
pub fn aot_path(arch: &str) -> PathBuf {
    PathBuf::from(AOT_DIR).join(format!("vmext_guest.{arch}.aot"))
}

/// The copy of the Fluent Bit module that [`aot_path`]`(arch)` was compiled from, one per
/// architecture (an AOT file may be compiled for one architecture alone), relative to the
/// repository root: a reader compares it with the module built from the current sources to tell
/// a stale AOT file.
pub fn aot_source_path(arch: &str) -> PathBuf {
    PathBuf::from(AOT_DIR).join(format!("vmext_guest.{arch}.source.wasm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_cargo_layout() {
        assert_eq!(
            Artefact::Component.path(),
            PathBuf::from("target/wasm32-wasip2/wasm-release/vmext_guest.wasm")
        );
        assert_eq!(
            Artefact::FluentBitWithTestHooks.path(),
            PathBuf::from("target/test-hooks/wasm32-wasip1/wasm-release/vmext_guest.wasm")
        );
        assert_eq!(
            Artefact::Web.cargo_args("build")[8..],
            ["--features", "web", "--target-dir", "target/web"]
        );
        assert_eq!(
            aot_path("x86_64"),
            PathBuf::from("target/aot/vmext_guest.x86_64.aot")
        );
        assert_ne!(aot_source_path("x86_64"), aot_source_path("aarch64"));
        assert_eq!(
            aot_source_path("aarch64"),
            PathBuf::from("target/aot/vmext_guest.aarch64.source.wasm")
        );
    }
}
