//! `cargo xtask <task>`: everything the README asks a user to run, from a fresh machine.
//!
//! * `run`: build the WebAssembly component and the host, then scan the shipped fixtures
//!   through the component under wasmtime, printing alerts (NDJSON) and a summary.
//! * `test`: formatting, lints (host and wasm targets), the dependency policy (`cargo deny`:
//!   licenses, duplicate versions, sources) and every test of the workspace, then
//!   the VRL parity crate (its own workspace), the browser tests, the component under jco
//!   (Node), and short fuzzing runs. The workspace's tests include the Vector
//!   artefacts in the real Vector (`crates/vrl-gen/tests/real_vector.rs`): it finds `vector`
//!   through `$VECTOR`, `PATH` or `../shared/bin/`, skips with a notice without one, and fails
//!   without one under `CI=true`. Before them it compiles the Fluent Bit module ahead of time
//!   for this machine (`aot`), which the AOT test in the real Fluent Bit loads.
//! * `aot`: builds `wamrc` (WAMR's AOT compiler) from the WAMR sources the targeted Fluent Bit
//!   vendors, read from `../shared/vendor/` (or `$VMEXT_SHARED/vendor/`), against Debian's
//!   LLVM 14, once per WAMR version into `target/wamrc/`; then compiles the Fluent Bit module
//!   into `target/aot/` for x86_64 and aarch64. cmake, make and `llvm-14-dev` are installed
//!   with apt-get when missing.
//!
//! Each task installs what it needs first, so a clean clone on a new machine works:
//! the wasm targets, the nightly toolchain for fuzzing, and the pinned wasm-bindgen CLI,
//! cargo-fuzz and cargo-deny (into the git-ignored `.tools/`). `VMEXT_FRESH_TOOLS=1` ignores every tool already
//! installed and installs them again into an emptied `target/fresh-tools/`, as on a new machine.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use vmext_artefacts::Artefact;

const USAGE: &str = "usage: cargo xtask <run|test|build|aot|playground|fuzz|vrl>

  run    build the component and vmext-detect, then scan the shipped fixtures through the
         component (alerts to stdout, summary to stderr)
  test   check formatting and lints, then run every test
  build  build every WebAssembly artefact (component, Fluent Bit filter) and vmext-detect
  aot    build wamrc (WAMR's AOT compiler, from the sources Fluent Bit vendors) and compile
         the Fluent Bit filter ahead of time into target/aot/ (x86_64, aarch64)
  playground
         build the browser playground and serve it on http://127.0.0.1:8080/
  fuzz [SECONDS]
         run every fuzz target for SECONDS each (default 600) with cargo-fuzz on nightly
  vrl    regenerate the Vector artefacts (vector/: the rule as VRL, vector.yaml with its tests)";

/// The fuzz targets (`fuzz/fuzz_targets/*.rs`).
const FUZZ_TARGETS: [&str; 6] = [
    "kql_parser",
    "evaluator",
    "prefilter",
    "fluent_bit_entry",
    "exceptions",
    "rule_file",
];

/// How long `cargo xtask test` runs each fuzz target: a bounded smoke run in CI; the README's
/// `cargo xtask fuzz` runs them for longer.
const FUZZ_SECONDS_IN_TESTS: u64 = 15;

/// The shipped command as `cargo xtask build` writes it (the `dist` profile).
const DETECT_BINARY: &str = "target/dist/vmext-detect";

/// Where the playground's generated files go (git-ignored).
const PLAYGROUND_PKG: &str = "playground/pkg";

/// The WebAssembly targets the guest is built for. `rustup` does not install them on its own
/// here (`RUSTUP_AUTO_INSTALL=0`), so every task adds them first; this is quick when present.
const WASM_TARGETS: [&str; 3] = ["wasm32-wasip2", "wasm32-wasip1", "wasm32-unknown-unknown"];

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "run" => run(),
        "test" => test(),
        "build" => build(),
        "aot" => aot(),
        "playground" => playground(),
        "vrl" => vrl(),
        "fuzz" => {
            let seconds = std::env::args()
                .nth(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(600);
            fuzz(seconds)
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e:#}");
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
fn step(what: &str, program: &str, args: &[&str], ok: &[i32]) -> Result<i32> {
    eprintln!("\n==> {what}\n    $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    let code = status.code().unwrap_or(-1);
    if ok.contains(&code) {
        Ok(code)
    } else {
        bail!("{what} failed (exit status {code})")
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The shipped fixture files, in a stable order.
fn fixture_files() -> Result<Vec<String>> {
    let mut files = Vec::new();
    for shape in ["ecs", "raw"] {
        let dir = root().join("fixtures").join(shape);
        let entries = std::fs::read_dir(&dir).with_context(|| dir.display().to_string())?;
        for entry in entries {
            let path = entry?.path();
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
fn setup() -> Result<()> {
    let mut args = vec!["target", "add"];
    args.extend(WASM_TARGETS);
    step("install the WebAssembly targets", "rustup", &args, &[0]).map(|_| ())
}

/// Builds the component the host runs.
fn build_component() -> Result<()> {
    step(
        "build the WebAssembly component",
        &cargo(),
        &Artefact::Component.cargo_args("build"),
        &[0],
    )
    .map(|_| ())
}

fn build() -> Result<()> {
    setup()?;
    for (artefact, what) in Artefact::SHIPPED {
        step(
            &format!("build the {what}"),
            &cargo(),
            &artefact.cargo_args("build"),
            &[0],
        )?;
        eprintln!("    -> {}", artefact.path().display());
    }
    step(
        "build vmext-detect",
        &cargo(),
        &[
            "build",
            "--profile",
            "dist",
            "--quiet",
            "-p",
            "vmext-detect",
        ],
        &[0],
    )?;
    eprintln!("    -> {DETECT_BINARY}");
    Ok(())
}

/// Set to `1` to act as on a new machine: every tool found already installed (on `PATH` or in
/// `.tools/`) is ignored, and the task installs its own into an emptied `target/fresh-tools/`.
/// This is how the install steps are proven on a machine that already has the tools.
const FRESH_TOOLS_VAR: &str = "VMEXT_FRESH_TOOLS";

/// The cargo-fuzz release the fuzz runs use (any 0.13 release runs these targets). Tools are
/// installed without `--locked`: their lockfiles can name versions the registry no longer
/// serves (wasm-bindgen-cli 0.2.130's names a `webpki-roots` that is not there).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The cargo-deny release `deny.toml` is written for: its configuration format changes
/// between releases, so the check runs with exactly this one.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// The toolchain the fuzz targets build with: libFuzzer's sanitizer flags need nightly.
const FUZZ_TOOLCHAIN: &str = "nightly";

/// Where tools that the machine lacks are installed, and whether the ones it has are ignored.
struct Tools {
    /// The `--root` of `cargo install`: binaries land in `bin/` below it.
    root: PathBuf,
    /// `VMEXT_FRESH_TOOLS=1`: never use a tool found on `PATH` or in `.tools/`.
    fresh: bool,
}

impl Tools {
    /// Reads the switch; in fresh mode, empties the fresh folder first (once per run).
    fn get() -> Result<&'static Tools> {
        static TOOLS: std::sync::OnceLock<Result<Tools, String>> = std::sync::OnceLock::new();
        TOOLS
            .get_or_init(|| {
                let fresh = std::env::var(FRESH_TOOLS_VAR).is_ok_and(|v| v == "1");
                if !fresh {
                    return Ok(Tools {
                        root: root().join(".tools"),
                        fresh,
                    });
                }
                let dir = root().join("target/fresh-tools");
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| format!("cannot empty {}: {e}", dir.display()))?;
                }
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                eprintln!(
                    "{FRESH_TOOLS_VAR}=1: ignoring installed tools, installing into {}",
                    dir.display()
                );
                Ok(Tools { root: dir, fresh })
            })
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }

    /// The path of an installed binary of this tool folder.
    fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }

    /// The first candidate whose check passes: `name` on `PATH` (unless fresh), then this
    /// folder's copy; `None` when neither is usable.
    fn find(&self, name: &str, usable: impl Fn(&str) -> bool) -> Option<String> {
        let local = self.bin(name).display().to_string();
        let mut candidates = Vec::new();
        if !self.fresh {
            candidates.push(name.to_owned());
        }
        candidates.push(local);
        candidates.into_iter().find(|c| usable(c))
    }

    /// `cargo install` of one crate at an exact version into this folder, with the pinned
    /// toolchain's cargo (from `$CARGO`), which needs no `+toolchain` and no rustup proxy.
    fn install(&self, krate: &str, version: &str) -> Result<()> {
        let root = self.root.display().to_string();
        step(
            &format!("install {krate} {version} into {root}"),
            &cargo(),
            &[
                "install",
                "--quiet",
                krate,
                "--version",
                version,
                "--root",
                &root,
            ],
            &[0],
        )
        .map(|_| ())
    }
}

/// A wasm-bindgen CLI of the pinned version: the one on PATH if it matches, else one installed
/// into the tools folder on first use.
fn wasm_bindgen() -> Result<String> {
    let tools = Tools::get()?;
    let version = wasm_bindgen_version()?;
    let wanted = format!("wasm-bindgen {version}");
    let usable = |candidate: &str| reports_version(candidate, &wanted);
    if let Some(found) = tools.find("wasm-bindgen", usable) {
        return Ok(found);
    }
    tools.install("wasm-bindgen-cli", &version)?;
    Ok(tools.bin("wasm-bindgen").display().to_string())
}

/// The version of the `wasm-bindgen` crate the guest builds with, read from `Cargo.lock`: the
/// CLI that post-processes the module must be exactly that version, and the guest's
/// `Cargo.toml` pin is the one place it is written.
fn wasm_bindgen_version() -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Lock {
        package: Vec<Package>,
    }
    #[derive(serde::Deserialize)]
    struct Package {
        name: String,
        version: String,
    }
    let text = std::fs::read_to_string(root().join("Cargo.lock")).context("Cargo.lock")?;
    let lock: Lock = toml::from_str(&text).context("Cargo.lock")?;
    lock.package
        .into_iter()
        .find(|p| p.name == "wasm-bindgen")
        .map(|p| p.version)
        .context("Cargo.lock names no wasm-bindgen")
}

/// `playground/pkg/fixtures.json`: every shipped fixture with its description, expected
/// verdicts and text, for the page's picker and its tests.
fn write_fixture_index() -> Result<()> {
    /// One entry of the index, as the page reads it.
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        file: &'a str,
        edge: &'a str,
        expect: &'a [String],
        text: String,
    }
    let dir = root().join("fixtures");
    let manifest = vmext_artefacts::fixtures::Manifest::read(&root())?;
    let mut entries = Vec::new();
    for case in &manifest.case {
        let body = std::fs::read_to_string(dir.join(&case.file))
            .with_context(|| format!("fixtures/{}", case.file))?;
        entries.push(Entry {
            file: &case.file,
            edge: &case.edge,
            expect: &case.expect,
            text: body,
        });
    }
    let json = serde_json::to_string_pretty(&entries)?;
    std::fs::write(
        root().join(PLAYGROUND_PKG).join("fixtures.json"),
        json + "\n",
    )
    .context("playground/pkg/fixtures.json")
}

/// Builds the browser module with wasm-bindgen into `playground/pkg`.
fn build_playground() -> Result<()> {
    let bindgen = wasm_bindgen()?;
    step(
        "build the browser module",
        &cargo(),
        &Artefact::Web.cargo_args("build"),
        &[0],
    )?;
    let module = Artefact::Web.path().display().to_string();
    step(
        "generate the JavaScript bindings",
        &bindgen,
        &["--target", "web", "--out-dir", PLAYGROUND_PKG, &module],
        &[0],
    )?;
    write_fixture_index()
}

fn playground() -> Result<()> {
    setup()?;
    build_playground()?;
    step(
        "serve the playground (Ctrl-C stops it)",
        &cargo(),
        &[
            "run",
            "--release",
            "--quiet",
            "-p",
            "host-test",
            "--",
            "serve",
            "--port",
            "8080",
            "playground",
        ],
        &[0],
    )
    .map(|_| ())
}

/// Chromium for the browser tests, from Debian's packages, when it is not there yet.
fn ensure_chromium() -> Result<()> {
    ensure_debian_package(
        Path::new("/usr/bin/chromium").exists(),
        "chromium",
        "for the browser tests",
    )
}

/// Installs the npm packages a folder's lockfile names (`npm ci`), quietly.
fn npm_ci(what: &str, folder: &str) -> Result<()> {
    step(
        &format!("install {what} (npm)"),
        "npm",
        &[
            "ci",
            "--prefix",
            folder,
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
        &[0],
    )
    .map(|_| ())
}

/// The browser tests: the playground in headless Chromium, driven by playwright-core.
fn browser_tests() -> Result<()> {
    build_playground()?;
    ensure_chromium()?;
    npm_ci("the browser tests' npm packages", "playground")?;
    step(
        "browser tests",
        "node",
        &["--test", "playground/tests/playground.test.mjs"],
        &[0],
    )
    .map(|_| ())
}

/// The component in a second component host: jco transpiles it for Node (with WASI from
/// `@bytecodealliance/preview2-shim`), and `jco/component.test.mjs` holds it to the native
/// engine on every fixture. Needs the component and `target/debug/vmext-detect` built.
fn jco_tests() -> Result<()> {
    build_component()?;
    let component = Artefact::Component.path().display().to_string();
    npm_ci("jco and its WASI shim", "jco")?;
    step(
        "transpile the component with jco",
        "npm",
        &[
            "exec",
            "--prefix",
            "jco",
            "--",
            "jco",
            "transpile",
            &component,
            "-o",
            "jco/out",
            "--name",
            "vmext",
            "--quiet",
        ],
        &[0],
    )?;
    step(
        "the component under jco (Node)",
        "node",
        &["--test", "jco/component.test.mjs"],
        &[0],
    )
    .map(|_| ())
}

/// cargo-fuzz: the one on PATH, or one installed into the tools folder on first use. The
/// nightly toolchain it builds the targets with is installed first when the machine lacks it.
fn cargo_fuzz() -> Result<String> {
    ensure_toolchain(FUZZ_TOOLCHAIN)?;
    let tools = Tools::get()?;
    let usable = |candidate: &str| {
        Command::new(candidate)
            .args(["fuzz", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Some(found) = tools.find("cargo-fuzz", usable) {
        return Ok(found);
    }
    tools.install("cargo-fuzz", CARGO_FUZZ_VERSION)?;
    Ok(tools.bin("cargo-fuzz").display().to_string())
}

/// Each file of a folder: its name and its bytes.
fn files_in(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((name, bytes));
    }
    Ok(files)
}

/// Whether `program --version` prints exactly `wanted`: a tool of the pinned version.
fn reports_version(program: &str, wanted: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == wanted)
}

/// A cargo-deny of the pinned version (or any on PATH that answers): the one on PATH, else one
/// installed into the tools folder on first use.
fn cargo_deny() -> Result<String> {
    let tools = Tools::get()?;
    let wanted = format!("cargo-deny {CARGO_DENY_VERSION}");
    let usable = |candidate: &str| reports_version(candidate, &wanted);
    if let Some(found) = tools.find("cargo-deny", usable) {
        return Ok(found);
    }
    tools.install("cargo-deny", CARGO_DENY_VERSION)?;
    Ok(tools.bin("cargo-deny").display().to_string())
}

/// The dependency policy (`deny.toml`): licenses, duplicate versions, sources. The advisory
/// check needs the RustSec database from the network, which the project's machines cannot
/// reach; the README says how to run it.
fn deny() -> Result<()> {
    let deny = cargo_deny()?;
    step(
        "dependency policy (cargo deny: licenses, bans, sources)",
        &deny,
        &[
            "--log-level",
            "error",
            "check",
            "licenses",
            "bans",
            "sources",
        ],
        &[0],
    )
    .map(|_| ())
}

/// Installs a rustup toolchain (minimal profile) unless `rustup run` can already use it.
fn ensure_toolchain(toolchain: &str) -> Result<()> {
    let present = Command::new("rustup")
        .args(["run", toolchain, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    step(
        &format!("install the {toolchain} toolchain for the fuzz targets"),
        "rustup",
        &["toolchain", "install", toolchain, "--profile", "minimal"],
        &[0],
    )
    .map(|_| ())
}

/// Seeds each target's corpus (git-ignored) from the fixtures and the rule's query, and from
/// the detection-rules query corpus in `../shared` when it is there (read, never committed).
fn seed_fuzz_corpora() -> Result<()> {
    let write = |target: &str, name: &str, bytes: &[u8]| -> Result<()> {
        let dir = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        Ok(std::fs::write(dir.join(name), bytes)?)
    };
    let rule =
        std::fs::read_to_string(root().join("rules/azure_vm_extension_deployment_by_user.toml"))
            .context("the rule file")?;
    let fence = "'''";
    let query = rule
        .split(&format!("query = {fence}"))
        .nth(1)
        .and_then(|q| q.split(fence).next())
        .unwrap_or_default();
    write("kql_parser", "seed-rule", query.as_bytes())?;
    let shared = root().join("../shared/data/detection-rules-kuery/queries.jsonl");
    if let Ok(lines) = std::fs::read_to_string(shared) {
        for (i, line) in lines.lines().enumerate() {
            // Whole JSON lines: the parser's own tests read the corpus properly; as seeds,
            // lines that contain a query are as good.
            write("kql_parser", &format!("corpus-{i}"), line.as_bytes())?;
        }
    }
    // The tuning and rule files the readers are fuzzed from: the shipped ones.
    for (target, folder) in [
        ("exceptions", "fixtures/exceptions"),
        ("rule_file", "rules"),
    ] {
        for (file, bytes) in files_in(&root().join(folder))? {
            write(target, &file, &bytes)?;
        }
    }
    for shape in ["ecs", "raw"] {
        for (file, bytes) in files_in(&root().join("fixtures").join(shape))? {
            let name = format!("{shape}-{file}");
            for target in ["evaluator", "prefilter", "fluent_bit_entry"] {
                write(target, &name, &bytes)?;
            }
            // The query-plus-document form: the seed query on the first line.
            let with_query = [query.replace('\n', " ").as_bytes(), b"\n", &bytes].concat();
            write("evaluator", &format!("q-{name}"), &with_query)?;
            write("prefilter", &format!("q-{name}"), &with_query)?;
        }
    }
    Ok(())
}

/// Runs every fuzz target for `seconds`; a finding fails the task.
fn fuzz(seconds: u64) -> Result<()> {
    let cargo_fuzz = cargo_fuzz()?;
    seed_fuzz_corpora()?;
    let time = format!("-max_total_time={seconds}");
    for target in FUZZ_TARGETS {
        let corpus = format!("fuzz/corpus/{target}");
        eprintln!(
            "\n==> fuzz {target} for {seconds} s\n    $ {cargo_fuzz} fuzz run {target} {corpus} -- {time}"
        );
        let status = Command::new(&cargo_fuzz)
            .args([
                "fuzz",
                "run",
                target,
                &corpus,
                "--",
                &time,
                "-rss_limit_mb=4096",
            ])
            .env("RUSTUP_TOOLCHAIN", FUZZ_TOOLCHAIN)
            .current_dir(root())
            .status()
            .context("cannot start cargo-fuzz")?;
        if !status.success() {
            bail!("fuzz target {target} found a failure (see fuzz/artifacts/{target})");
        }
    }
    Ok(())
}

/// The VRL parity crate (`vrl-parity/`, its own workspace so that only it compiles `vrl`):
/// formatting, lints and its tests, built into `target/vrl-parity` so CI caches one folder.
fn vrl_parity(cargo: &str) -> Result<()> {
    let manifest = "vrl-parity/Cargo.toml";
    let target = root().join("target/vrl-parity");
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "formatting of vrl-parity",
            vec!["fmt", "--manifest-path", manifest, "--", "--check"],
        ),
        (
            "lints of vrl-parity",
            vec![
                "clippy",
                "--manifest-path",
                manifest,
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ],
        ),
        (
            "VRL parity tests (the generated program against the engine)",
            vec!["test", "--manifest-path", manifest],
        ),
    ];
    for (what, args) in runs {
        eprintln!("\n==> {what}\n    $ {cargo} {}", args.join(" "));
        let status = Command::new(cargo)
            .args(&args)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(root())
            .status()
            .with_context(|| format!("cannot start {cargo}"))?;
        if !status.success() {
            bail!("{what} failed ({status})");
        }
    }
    Ok(())
}

/// Writes the Vector artefacts from the rule and the fixtures (`vector/`).
fn vrl() -> Result<()> {
    let written = vmext_vrl::artefacts::write(&root())?;
    for path in written {
        eprintln!("    -> {path}");
    }
    Ok(())
}

fn run() -> Result<()> {
    let cargo = cargo();
    setup()?;
    build_component()?;
    step(
        "build vmext-detect",
        &cargo,
        &[
            "build",
            "--profile",
            "dist",
            "--quiet",
            "-p",
            "vmext-detect",
        ],
        &[0],
    )?;
    let files = fixture_files()?;
    let component = Artefact::Component.path().display().to_string();
    let mut args = vec!["scan", "--no-progress", "--component", &component];
    args.extend(files.iter().map(String::as_str));
    // Exit status 1 means "alerts were raised", which is the point of the fixtures.
    step(
        "scan the shipped fixtures through the component",
        DETECT_BINARY,
        &args,
        &[0, 1],
    )?;
    Ok(())
}

fn test() -> Result<()> {
    let cargo = cargo();
    setup()?;
    // Every tool the later steps need, first: a missing install step fails in minutes, not
    // after the long test steps.
    wasm_bindgen()?;
    cargo_fuzz()?;
    cargo_deny()?;
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
    deny()?;
    // The adapters are compiled only for their wasm targets: lint them there too.
    let linted = Artefact::SHIPPED
        .into_iter()
        .chain([(Artefact::Web, "browser module")]);
    for (artefact, what) in linted {
        let mut args = artefact.cargo_args("clippy");
        args.extend(["--", "-D", "warnings"]);
        step(&format!("lints of the {what}"), &cargo, &args, &[0])?;
    }
    // The AOT test in the real Fluent Bit loads an AOT file that `cargo test` cannot build
    // cheaply (it needs wamrc, built from C sources): compile it first.
    aot_for_tests()?;
    // The tests build the guest artefacts they need from the current sources.
    step("tests", &cargo, &["test", "--workspace"], &[0])?;
    vrl_parity(&cargo)?;
    browser_tests()?;
    jco_tests()?;
    fuzz(FUZZ_SECONDS_IN_TESTS)
}

/// Where Debian's LLVM 14 (`llvm-14-dev`) puts its CMake package: `wamrc` links against it.
const LLVM_CMAKE_DIR: &str = "/usr/lib/llvm-14/lib/cmake/llvm";

/// The architectures `cargo xtask aot` compiles the Fluent Bit module for (`wamrc --target`).
const AOT_ARCHES: [&str; 2] = ["x86_64", "aarch64"];

/// The shared reference directory beside the checkout (`../shared`), or `$VMEXT_SHARED`.
fn shared_dir() -> PathBuf {
    std::env::var_os("VMEXT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"))
}

/// Installs a Debian package with apt-get unless `present` says the machine has it.
fn ensure_debian_package(present: bool, package: &str, why: &str) -> Result<()> {
    if present {
        return Ok(());
    }
    step(
        "refresh Debian's package lists",
        "apt-get",
        &["update", "-qq"],
        &[0],
    )?;
    step(
        &format!("install {package} {why}"),
        "apt-get",
        &["install", "-y", "-qq", package],
        &[0],
    )
    .map(|_| ())
}

/// Whether `program --version` runs.
fn answers(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The WAMR sources Fluent Bit vendors, as a tarball in the shared directory's `vendor/`.
fn wamr_tarball() -> PathBuf {
    let version = vmext_artefacts::AOT_WAMR_VERSION;
    shared_dir()
        .join("vendor")
        .join(format!("wasm-micro-runtime-WAMR-{version}.tar.gz"))
}

/// WAMR's AOT compiler, built from the WAMR sources Fluent Bit vendors (read from
/// `../shared/vendor/`, never copied into the repository) against Debian's LLVM 14, into
/// `target/wamrc/WAMR-<version>/`. A `wamrc` already built there for the same WAMR version is
/// reused.
fn wamrc() -> Result<PathBuf> {
    let version = vmext_artefacts::AOT_WAMR_VERSION;
    let dir = root().join(format!("target/wamrc/WAMR-{version}"));
    let bin = dir.join("build/wamrc");
    if bin.is_file() && answers(&bin.display().to_string()) {
        return Ok(bin);
    }
    let name = format!("wasm-micro-runtime-WAMR-{version}");
    let tarball = wamr_tarball();
    if !tarball.is_file() {
        bail!(
            "the WAMR {version} sources ({name}.tar.gz, as Fluent Bit {} vendors them) are not in {} \
             (set VMEXT_SHARED to the shared directory)",
            vmext_artefacts::AOT_FLUENT_BIT_VERSION,
            tarball.parent().unwrap_or(&tarball).display()
        );
    }
    ensure_debian_package(answers("cmake"), "cmake", "to build wamrc")?;
    ensure_debian_package(answers("make"), "make", "to build wamrc")?;
    ensure_debian_package(
        Path::new(LLVM_CMAKE_DIR).join("LLVMConfig.cmake").is_file(),
        "llvm-14-dev",
        "(Debian's LLVM 14) to build wamrc",
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir_arg = dir.display().to_string();
    let tarball_arg = tarball.display().to_string();
    step(
        &format!("unpack the WAMR {version} sources"),
        "tar",
        &["-xzf", &tarball_arg, "-C", &dir_arg],
        &[0],
    )?;
    let source = dir.join(&name).join("wamr-compiler").display().to_string();
    let build = dir.join("build").display().to_string();
    let llvm = format!("-DLLVM_DIR={LLVM_CMAKE_DIR}");
    step(
        &format!("configure wamrc (WAMR {version}, LLVM 14)"),
        "cmake",
        &[
            "-S",
            &source,
            "-B",
            &build,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DWAMR_BUILD_WITH_CUSTOM_LLVM=1",
            &llvm,
        ],
        &[0],
    )?;
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .to_string();
    step(
        "build wamrc (once per WAMR version)",
        "make",
        &["-C", &build, "-j", &jobs],
        &[0],
    )?;
    if !answers(&bin.display().to_string()) {
        bail!("the wamrc just built ({}) does not run", bin.display());
    }
    Ok(bin)
}

/// Compiles the Fluent Bit module ahead of time with `wamrc` for each of `arches` into
/// [`vmext_artefacts::AOT_DIR`], after building the module from the current sources. Each
/// architecture's AOT file has its own copy of the module it was compiled from
/// ([`vmext_artefacts::aot_source_path`]): a file whose copy holds the same module bytes is
/// kept, and only the others are compiled again, so compiling for one architecture never makes
/// another's stale file look up to date.
fn compile_aot(arches: &[&str]) -> Result<Vec<PathBuf>> {
    step(
        "build the Fluent Bit filter",
        &cargo(),
        &Artefact::FluentBit.cargo_args("build"),
        &[0],
    )?;
    let module = root().join(Artefact::FluentBit.path());
    let bytes = std::fs::read(&module).with_context(|| module.display().to_string())?;
    let mut stale = Vec::new();
    let mut compiled = Vec::new();
    for arch in arches {
        let path = root().join(vmext_artefacts::aot_path(arch));
        let source = root().join(vmext_artefacts::aot_source_path(arch));
        if path.is_file() && std::fs::read(&source).is_ok_and(|old| old == bytes) {
            eprintln!("    up to date: {}", path.display());
        } else {
            stale.push((*arch, source, path.clone()));
        }
        compiled.push(path);
    }
    if stale.is_empty() {
        return Ok(compiled);
    }
    let wamrc = wamrc()?.display().to_string();
    let dir = root().join(vmext_artefacts::AOT_DIR);
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let module_arg = module.display().to_string();
    for (arch, source, path) in stale {
        // The source copy is removed first and written last, so that an interrupted run is
        // never taken as up to date.
        match std::fs::remove_file(&source) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", source.display()));
            }
        }
        let target = format!("--target={arch}");
        let out = path.display().to_string();
        step(
            &format!("compile the Fluent Bit filter ahead of time for {arch}"),
            &wamrc,
            &[&target, "-o", &out, &module_arg],
            &[0],
        )?;
        std::fs::write(&source, &bytes).with_context(|| source.display().to_string())?;
        eprintln!("    -> {out}");
    }
    Ok(compiled)
}

/// The AOT file the real-Fluent-Bit test loads (this machine's architecture), for `cargo xtask
/// test`. Without the WAMR sources (a clone without the shared directory) it says so and the
/// test skips; under `CI=true` the missing sources fail the task.
fn aot_for_tests() -> Result<()> {
    let arch = std::env::consts::ARCH;
    if !AOT_ARCHES.contains(&arch) {
        eprintln!("\nnotice: no AOT file for {arch}: the AOT test skips");
        return Ok(());
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !ci && !wamr_tarball().is_file() {
        eprintln!(
            "\nnotice: {} not found (set VMEXT_SHARED): no AOT file, the AOT test skips",
            wamr_tarball().display()
        );
        return Ok(());
    }
    compile_aot(&[arch]).map(|_| ())
}

/// `cargo xtask aot`: the Fluent Bit module compiled ahead of time for every architecture of
/// [`AOT_ARCHES`].
fn aot() -> Result<()> {
    setup()?;
    compile_aot(&AOT_ARCHES)?;
    Ok(())
}
