//! The detection rule as WebAssembly.
//!
//! One engine ([`vmext_engine`]), one thin adapter per ABI, chosen by the build target:
//!
//! | target | artefact | adapter |
//! |---|---|---|
//! | `wasm32-wasip2` | a component exporting `vmext:detect/detector` (see `wit/`) | `component` |
//! | `wasm32-wasip1` (or another target with feature `fluent-bit`) | a core module for Fluent Bit's `wasm` filter | `fluent_bit` |
//! | `wasm32-unknown-unknown` with feature `web` | a wasm-bindgen module for the browser playground | `web` |
//!
//! The adapters only translate between their ABI and the engine's types; every decision is
//! the engine's. Built for the host (as the workspace's tests do) this crate is only the
//! shared helpers below.

#[cfg(all(target_arch = "wasm32", target_os = "wasi", target_env = "p2"))]
mod component;

/// Built for `wasm32-wasip1`, and wherever the `fluent-bit` feature asks for it (the
/// `wasm32-unknown-unknown` variant, and natively for the fuzz target of the entry points).
#[cfg(any(
    all(target_arch = "wasm32", target_os = "wasi", target_env = "p1"),
    feature = "fluent-bit"
))]
pub mod fluent_bit;

#[cfg(all(target_arch = "wasm32", target_os = "unknown", feature = "web"))]
pub mod web;

/// The browser API's fixed-shape objects (with their generated TypeScript declarations); built
/// with the browser adapter, and natively for its tests.
#[cfg(any(
    test,
    all(target_arch = "wasm32", target_os = "unknown", feature = "web")
))]
pub mod web_api;

/// Test-only behaviour injected into the adapters (feature `test-hooks`): lets the host's tests
/// prove that a trap or an endless loop inside the guest costs one record, not the scan. The
/// component's `prefilter` acts on the markers in the rule's query.
pub mod test_hooks {
    /// A record containing this marker makes the guest panic (a trap in WebAssembly).
    pub const TRAP_MARKER: &str = "__vmext_test_trap__";
    /// A record containing this marker makes the guest loop forever.
    pub const LOOP_MARKER: &str = "__vmext_test_loop__";

    /// Acts on the markers when the `test-hooks` feature is on; does nothing otherwise.
    #[cfg(feature = "test-hooks")]
    #[allow(clippy::panic)]
    pub fn apply(document: &[u8]) {
        let contains = |marker: &str| {
            document
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
        };
        if contains(TRAP_MARKER) {
            panic!("test hook: injected trap");
        }
        if contains(LOOP_MARKER) {
            loop {
                std::hint::black_box(());
            }
        }
    }

    /// Acts on the markers when the `test-hooks` feature is on; does nothing otherwise.
    #[cfg(not(feature = "test-hooks"))]
    #[inline(always)]
    pub fn apply(_document: &[u8]) {}
}
