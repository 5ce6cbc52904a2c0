//! `cargo xtask <task>`: everything the README asks a user to run, from a fresh machine.
//!
//! * `run`: build the WebAssembly component and the host, then scan the shipped fixtures
//!   through the component under wasmtime, printing alerts (NDJSON) and a summary.
//! * `test`: formatting, lints (host and wasm targets) and every test of the workspace.
//!
//! Each task installs what it needs first, so a clean clone on a new machine works.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <run|test|build>

  run    build the component and vmext-detect, then scan the shipped fixtures through the
         component (alerts to stdout, summary to stderr)
  test   check formatting and lints, then run every test
  build  build every WebAssembly artefact (component, Fluent Bit filter) and vmext-detect
  playground
         build the browser playground and serve it on http://127.0.0.1:8080/";

/// The wasm-bindgen CLI must be exactly the version of the `wasm-bindgen` crate the guest uses.
const WASM_BINDGEN_VERSION: &str = "0.2.130";

/// Where the playground's generated files go (git-ignored).
const PLAYGROUND_PKG: &str = "playground/pkg";

/// The WebAssembly targets the guest is built for. `rustup` does not install them on its own
/// here (`RUSTUP_AUTO_INSTALL=0`), so every task adds them first; this is quick when present.
const WASM_TARGETS: [&str; 3] = ["wasm32-wasip2", "wasm32-wasip1", "wasm32-unknown-unknown"];

/// Each WebAssembly artefact: what it is, its target, its features and where it lands.
const ARTEFACTS: [(&str, &str, Option<&str>, &str); 3] = [
    (
        "component",
        "wasm32-wasip2",
        None,
        "target/wasm32-wasip2/wasm-release/vmext_guest.wasm",
    ),
    (
        "Fluent Bit filter",
        "wasm32-wasip1",
        None,
        "target/wasm32-wasip1/wasm-release/vmext_guest.wasm",
    ),
    (
        "Fluent Bit filter (wasm32-unknown-unknown)",
        "wasm32-unknown-unknown",
        Some("fluent-bit"),
        "target/wasm32-unknown-unknown/wasm-release/vmext_guest.wasm",
    ),
];

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "run" => run(),
        "test" => test(),
        "build" => build(),
        "playground" => playground(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command in the repository root; fails unless it exits with one of `ok` codes.
fn step(what: &str, program: &str, args: &[&str], ok: &[i32]) -> Result<i32, String> {
    eprintln!("\n==> {what}\n    $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let code = status.code().unwrap_or(-1);
    if ok.contains(&code) {
        Ok(code)
    } else {
        Err(format!("{what} failed (exit status {code})"))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The shipped fixture files, in a stable order.
fn fixture_files() -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    for shape in ["ecs", "raw"] {
        let dir = root().join("fixtures").join(shape);
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(format!(
                    "fixtures/{shape}/{}",
                    path.file_name()
                        .map(|f| f.to_string_lossy())
                        .unwrap_or_default()
                ));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Installs the wasm targets for the pinned toolchain.
fn setup() -> Result<(), String> {
    let mut args = vec!["target", "add"];
    args.extend(WASM_TARGETS);
    step("install the WebAssembly targets", "rustup", &args, &[0]).map(|_| ())
}

/// `cargo build` arguments for one artefact (or `cargo clippy` with `command`).
fn guest_args<'a>(command: &'a str, target: &'a str, features: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        command,
        "--quiet",
        "-p",
        "vmext-guest",
        "--target",
        target,
        "--profile",
        "wasm-release",
    ];
    if let Some(f) = features {
        args.extend(["--features", f]);
    }
    args
}

/// Builds the component the host runs.
fn build_component() -> Result<(), String> {
    step(
        "build the WebAssembly component",
        &cargo(),
        &guest_args("build", "wasm32-wasip2", None),
        &[0],
    )
    .map(|_| ())
}

fn build() -> Result<(), String> {
    setup()?;
    for (what, target, features, path) in ARTEFACTS {
        step(
            &format!("build the {what}"),
            &cargo(),
            &guest_args("build", target, features),
            &[0],
        )?;
        eprintln!("    -> {path}");
    }
    step(
        "build vmext-detect",
        &cargo(),
        &["build", "--release", "--quiet", "-p", "vmext-host"],
        &[0],
    )?;
    eprintln!("    -> target/release/vmext-detect");
    Ok(())
}

/// A wasm-bindgen CLI of the pinned version: the one on PATH if it matches, else one installed
/// into `.tools/` (git-ignored) on first use.
fn wasm_bindgen() -> Result<String, String> {
    let wanted = format!("wasm-bindgen {WASM_BINDGEN_VERSION}");
    let local = root().join(".tools/bin/wasm-bindgen");
    for candidate in ["wasm-bindgen".to_owned(), local.display().to_string()] {
        let version = Command::new(&candidate).arg("--version").output();
        if version.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == wanted) {
            return Ok(candidate);
        }
    }
    step(
        &format!("install wasm-bindgen-cli {WASM_BINDGEN_VERSION} into .tools (once)"),
        &cargo(),
        &[
            "install",
            "--quiet",
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
            "--root",
            ".tools",
        ],
        &[0],
    )?;
    Ok(local.display().to_string())
}

#[derive(serde::Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    file: String,
    edge: String,
    expect: Vec<String>,
}

/// `playground/pkg/fixtures.json`: every shipped fixture with its description, expected
/// verdicts and text, for the page's picker and its tests.
fn write_fixture_index() -> Result<(), String> {
    let dir = root().join("fixtures");
    let text = std::fs::read_to_string(dir.join("cases.toml")).map_err(|e| e.to_string())?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| e.to_string())?;
    let mut out = String::from("[");
    for (i, case) in manifest.case.iter().enumerate() {
        let body = std::fs::read_to_string(dir.join(&case.file)).map_err(|e| e.to_string())?;
        if i > 0 {
            out.push(',');
        }
        let expect: Vec<String> = case.expect.iter().map(|e| json_string(e)).collect();
        out.push_str(&format!(
            "\n{{\"file\":{},\"edge\":{},\"expect\":[{}],\"text\":{}}}",
            json_string(&case.file),
            json_string(&case.edge),
            expect.join(","),
            json_string(&body)
        ));
    }
    out.push_str("\n]\n");
    std::fs::write(root().join(PLAYGROUND_PKG).join("fixtures.json"), out)
        .map_err(|e| e.to_string())
}

fn json_string(s: &str) -> String {
    let mut out = String::new();
    vmext_json::write_escaped_str(&mut out, s);
    out
}

/// Builds the browser module with wasm-bindgen into `playground/pkg`.
fn build_playground() -> Result<(), String> {
    let bindgen = wasm_bindgen()?;
    let mut args = guest_args("build", "wasm32-unknown-unknown", Some("web"));
    // Its own target folder: the Fluent Bit build for the same target has other features.
    args.extend(["--target-dir", "target/web"]);
    step("build the browser module", &cargo(), &args, &[0])?;
    step(
        "generate the JavaScript bindings",
        &bindgen,
        &[
            "--target",
            "web",
            "--out-dir",
            PLAYGROUND_PKG,
            "target/web/wasm32-unknown-unknown/wasm-release/vmext_guest.wasm",
        ],
        &[0],
    )?;
    write_fixture_index()
}

fn playground() -> Result<(), String> {
    setup()?;
    build_playground()?;
    step(
        "build vmext-detect",
        &cargo(),
        &["build", "--release", "--quiet", "-p", "vmext-host"],
        &[0],
    )?;
    step(
        "serve the playground (Ctrl-C stops it)",
        "target/release/vmext-detect",
        &["serve", "--port", "8080", "playground"],
        &[0],
    )
    .map(|_| ())
}

/// Chromium for the browser tests, from Debian's packages, when it is not there yet.
fn ensure_chromium() -> Result<(), String> {
    if Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    step(
        "refresh Debian's package lists",
        "apt-get",
        &["update", "-qq"],
        &[0],
    )?;
    step(
        "install Chromium for the browser tests",
        "apt-get",
        &["install", "-y", "-qq", "chromium"],
        &[0],
    )
    .map(|_| ())
}

/// The browser tests: the playground in headless Chromium, driven by playwright-core.
fn browser_tests() -> Result<(), String> {
    build_playground()?;
    ensure_chromium()?;
    step(
        "install the browser tests' npm packages",
        "npm",
        &[
            "ci",
            "--prefix",
            "playground",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
        &[0],
    )?;
    step(
        "browser tests",
        "node",
        &["--test", "playground/tests/playground.test.mjs"],
        &[0],
    )
    .map(|_| ())
}

fn run() -> Result<(), String> {
    let cargo = cargo();
    setup()?;
    build_component()?;
    step(
        "build vmext-detect",
        &cargo,
        &["build", "--release", "--quiet", "-p", "vmext-host"],
        &[0],
    )?;
    let files = fixture_files()?;
    let component = "target/wasm32-wasip2/wasm-release/vmext_guest.wasm";
    let mut args = vec!["scan", "--no-progress", "--component", component];
    args.extend(files.iter().map(String::as_str));
    // Exit status 1 means "alerts were raised", which is the point of the fixtures.
    step(
        "scan the shipped fixtures through the component",
        "target/release/vmext-detect",
        &args,
        &[0, 1],
    )?;
    Ok(())
}

fn test() -> Result<(), String> {
    let cargo = cargo();
    setup()?;
    step(
        "formatting",
        &cargo,
        &["fmt", "--all", "--", "--check"],
        &[0],
    )?;
    step(
        "lints",
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ],
        &[0],
    )?;
    // The adapters are compiled only for their wasm targets: lint them there too.
    for (what, target, features, _) in ARTEFACTS {
        let mut args = guest_args("clippy", target, features);
        args.extend(["--", "-D", "warnings"]);
        step(&format!("lints of the {what}"), &cargo, &args, &[0])?;
    }
    let mut args = guest_args("clippy", "wasm32-unknown-unknown", Some("web"));
    args.extend(["--target-dir", "target/web", "--", "-D", "warnings"]);
    step("lints of the browser module", &cargo, &args, &[0])?;
    // The tests build the guest artefacts they need from the current sources.
    step("tests", &cargo, &["test", "--workspace"], &[0])?;
    browser_tests()
}
