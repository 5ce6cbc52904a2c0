//! Export the C library's `malloc` and `free` from the Fluent Bit module on `wasm32-wasip1`.
//!
//! Fluent Bit's runtime (WAMR) copies each record into module memory with the module's own
//! `malloc` when it exports one, instead of its small internal heap that fails on records of a
//! few tens of kilobytes. On WASI the C library provides them and Rust's allocator uses the
//! same heap; they only need exporting. (`wasm32-unknown-unknown` has no C library: the crate
//! defines them there.)

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "wasm32-wasip1" {
        println!("cargo:rustc-link-arg-cdylib=--export=malloc");
        println!("cargo:rustc-link-arg-cdylib=--export=free");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
