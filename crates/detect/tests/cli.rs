//! The `vmext-detect` binary as a user runs it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::{Command, Stdio};

fn detect(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    // The command runs the component by default: build it from the current sources.
    let component = vmext_test_support::build_artefact(vmext_test_support::Artefact::Component);
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmext-detect"));
    command.args(args).env("VMEXT_COMPONENT", component);
    vmext_test_support::run_with_stdin(command, stdin)
}

#[test]
fn scanning_fixtures_prints_one_alert_per_line_and_exits_1() {
    let (code, out, err) = detect(
        &[
            "scan",
            "fixtures/raw/event-hub-envelope-mixed.json",
            "fixtures/ecs/outcome-failure.json",
        ],
        b"",
    );
    assert_eq!(code, 1, "{err}");
    let alerts: Vec<&str> = out.lines().collect();
    assert!(!alerts.is_empty());
    for alert in alerts {
        let doc = vmext_json::parse(alert.as_bytes()).unwrap();
        assert_eq!(
            doc.get("event")
                .and_then(|e| e.get("kind"))
                .and_then(|k| k.as_str()),
            Some("alert")
        );
    }
    assert!(err.contains("documents 2"), "{err}");
}

#[test]
fn stdin_with_bad_lines_reports_them_and_goes_on() {
    let input = b"{\"operationName\":\"x\"}\nnot json at all MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE User CUSTOMSCRIPTEXTENSION\n\n{\"a\":1}\n";
    let (code, out, err) = detect(&["scan"], input);
    assert_eq!(code, 4, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("<stdin>:2: invalid JSON"), "{err}");
    assert!(err.contains("documents 3"), "{err}");
}

#[test]
fn explain_says_why() {
    let (code, out, _) = detect(
        &["scan", "--explain", "fixtures/ecs/principal-group.json"],
        b"",
    );
    assert_eq!(code, 0);
    assert!(out.contains("no match"), "{out}");
    assert!(
        out.contains(
            "✗ azure.activitylogs.identity.authorization.evidence.principal_type:User   seen: Group"
        ),
        "{out}"
    );
}

#[test]
fn both_engines_print_the_same_alerts() {
    let files = [
        "fixtures/raw/event-hub-envelope-mixed.json",
        "fixtures/ecs/json-escapes.json",
    ];
    let mut component = vec!["scan"];
    component.extend(files);
    let mut native = vec!["scan", "--engine", "native"];
    native.extend(files);
    let (a, out_a, _) = detect(&component, b"");
    let (b, out_b, _) = detect(&native, b"");
    assert_eq!((a, b), (1, 1));
    assert_eq!(out_a, out_b);
}

#[test]
fn missing_component_is_a_clear_error() {
    let (code, _, err) = detect(&["scan", "--component", "no/such.wasm"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("no/such.wasm"), "{err}");
}

#[test]
fn bad_arguments_and_rules_exit_2() {
    assert_eq!(detect(&["scan", "--bogus"], b"").0, 2);
    assert_eq!(detect(&["scan", "--query", "a:(b"], b"").0, 2);
    // An input that cannot be opened is reported and the scan goes on: status bit 8.
    assert_eq!(detect(&["scan", "no-such-file.ndjson"], b"").0, 8);
    let (code, out, _) = detect(&["scan", "--query", "a:b"], b"{\"a\":\"b\"}\n");
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1);
}

/// `--profile hardened` catches what the faithful rule misses; `--exceptions` suppresses the
/// known-good alerts, counts them, and `--explain` names the item. Both engines agree.
#[test]
fn profiles_and_exceptions_from_the_command_line() {
    let missed = "fixtures/ecs/dsc-extension-name-at-end.json";
    let (code, out, _) = detect(&["scan", missed], b"");
    assert_eq!((code, out.as_str()), (0, ""));
    for engine in ["component", "native"] {
        let (code, out, err) = detect(
            &["scan", "--engine", engine, "--profile", "hardened", missed],
            b"",
        );
        assert_eq!(code, 1, "{err}");
        assert!(
            out.contains("\"vmext\":{\"extension_family\":\"DSC\""),
            "{out}"
        );
        assert!(
            out.contains("\"profile\":\"hardened\",\"faithful_match\":false"),
            "{out}"
        );

        let known_good = "fixtures/ecs/microsoft-monitoring-agent.json";
        let exceptions = "fixtures/exceptions/known-good-automation.json";
        let (code, out, err) = detect(
            &[
                "scan",
                "--engine",
                engine,
                "--exceptions",
                exceptions,
                known_good,
            ],
            b"",
        );
        assert_eq!((code, out.as_str()), (0, ""), "{err}");
        assert!(
            err.contains("alerts 0 (1 more suppressed by exceptions)"),
            "{err}"
        );
        let (_, out, _) = detect(
            &[
                "scan",
                "--engine",
                engine,
                "--exceptions",
                exceptions,
                "--explain",
                known_good,
            ],
            b"",
        );
        assert!(
            out.contains("matched, alert suppressed by exception item `ops-monitoring-rollout`"),
            "{out}"
        );
    }
    let (code, _, err) = detect(&["scan", "--profile", "strict"], b"");
    assert_eq!(code, 2);
    assert!(
        err.contains("'strict'") && err.contains("[possible values: faithful, hardened]"),
        "{err}"
    );
    let (code, _, err) = detect(&["scan", "--exceptions", "Cargo.toml"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("Cargo.toml: exceptions: not JSON"), "{err}");
}

/// Every subcommand takes only its own flags: `--help` lists them, and another subcommand's
/// flag is an error (status 2), never silently accepted.
#[test]
fn flags_belong_to_their_subcommand() {
    for (args, flag) in [
        (&["scan", "--port", "9"][..], "--port"),
        (&["rule", "--explain"][..], "--explain"),
        (&["rule", "--engine", "native"][..], "--engine"),
        (&["scan", "--records", "3"][..], "--records"),
    ] {
        let (code, out, err) = detect(args, b"");
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let (code, help, _) = detect(&["scan", "--help"], b"");
    assert_eq!(code, 0);
    for flag in [
        "--explain",
        "--engine",
        "--max-document-bytes",
        "--profile",
        "EXIT STATUS",
    ] {
        assert!(
            help.contains(flag),
            "{flag} missing from scan --help:\n{help}"
        );
    }
    let (code, help, _) = detect(&["rule", "--help"], b"");
    assert_eq!(code, 0);
    assert!(help.contains("--exceptions"), "{help}");
    for flag in ["--explain", "--engine", "--port", "--records", "--function"] {
        assert!(!help.contains(flag), "{flag} in rule --help:\n{help}");
    }
    let (code, out, _) = detect(&["--version"], b"");
    assert_eq!(code, 0);
    assert!(out.starts_with("vmext-detect "), "{out}");
}

/// A full or closed stdout ends every command with a message that names stdout and status 2,
/// never a panic.
#[test]
fn stdout_write_errors_are_reported_not_panics() {
    for args in [
        &["rule"][..],
        &["--help"][..],
        &["--version"][..],
        &["scan", "--help"][..],
        &[
            "scan",
            "--engine",
            "native",
            "fixtures/ecs/custom-script-extension.json",
        ][..],
        &[
            "scan",
            "--explain",
            "fixtures/ecs/custom-script-extension.json",
        ][..],
    ] {
        let full = std::fs::File::create("/dev/full").unwrap();
        let component = vmext_test_support::build_artefact(vmext_test_support::Artefact::Component);
        let out = Command::new(env!("CARGO_BIN_EXE_vmext-detect"))
            .args(args)
            .env("VMEXT_COMPONENT", component)
            .current_dir(vmext_test_support::repo_root())
            .stdin(Stdio::null())
            .stdout(full)
            .output()
            .unwrap();
        vmext_test_support::assert_stdout_failure_reported(&out, &format!("{args:?}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("custom-script-extension.json:"),
            "{args:?}: {err}"
        );
    }
}

/// Record content reaches a terminal escaped in every human-readable mode: an ESC sequence in a
/// field cannot clear the screen or retitle the window, and CR/LF cannot forge a report line.
/// Both engines.
#[test]
fn explain_output_shows_control_characters_escaped() {
    let fixture = std::fs::read_to_string(
        vmext_test_support::repo_root().join("fixtures/ecs/custom-script-extension.json"),
    )
    .unwrap();
    let hostile = fixture.replace(
        "\"outcome\":\"success\"",
        "\"outcome\":\"success\\u001b[2J\\u001b]0;pwned\\u0007\\r\\nFAKE LINE\\u009b31m\\u202e\"",
    );
    assert_ne!(hostile, fixture);
    for engine in ["component", "native"] {
        let (code, out, err) = detect(
            &["scan", "--explain", "--engine", engine],
            hostile.as_bytes(),
        );
        assert_eq!(code, 0, "{err}");
        for raw in ['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{202e}'] {
            assert!(!out.contains(raw), "{engine}: raw {raw:?} in\n{out}");
        }
        assert!(
            !out.lines().any(|l| l.starts_with("FAKE LINE")),
            "{engine}: {out}"
        );
        assert!(
            out.contains(
                "success\\u001b[2J\\u001b]0;pwned\\u0007\\u000d\\u000aFAKE LINE\\u009b31m\\u202e"
            ),
            "{engine}: {out}"
        );
    }
}

/// A corrupt compile cache is never trusted: code bytes overwritten under the same name, bits
/// flipped, or the file truncated, the scan recompiles and gives the same alerts (it used to
/// crash with SIGTRAP or exit 2 with no alerts).
#[test]
fn a_corrupt_compile_cache_is_recompiled_not_run() {
    let component = vmext_test_support::build_artefact(vmext_test_support::Artefact::Component);
    let cache = vmext_test_support::TempDir::new("cli-cache");
    let scan = || {
        let out = Command::new(env!("CARGO_BIN_EXE_vmext-detect"))
            .args(["scan", "fixtures/ecs/custom-script-extension.json"])
            .env("VMEXT_COMPONENT", &component)
            .env("VMEXT_CACHE_DIR", cache.path())
            .current_dir(vmext_test_support::repo_root())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, alerts, err) = scan();
    assert_eq!(code, Some(1), "{err}");
    let file = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("a cache file");
    let good = std::fs::read(&file).unwrap();
    let corruptions: Vec<Vec<u8>> = vec![
        // Code bytes overwritten in the middle, same length and name.
        {
            let mut bad = good.clone();
            let mid = bad.len() / 2;
            bad[mid..mid + 4096].fill(0xcc);
            bad
        },
        // One flipped bit near the end.
        {
            let mut bad = good.clone();
            let at = bad.len() - 100;
            bad[at] ^= 1;
            bad
        },
        good[..good.len() / 3].to_vec(),
        Vec::new(),
    ];
    for bad in corruptions {
        std::fs::write(&file, &bad).unwrap();
        let (code, out, err) = scan();
        assert_eq!((code, out.as_str()), (Some(1), alerts.as_str()), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), good, "the file is replaced");
    }
}

/// Scanning files on several threads gives exactly what one thread gives: the same alerts in
/// input order, the same per-document error lines, the same summary and exit status, with a
/// missing file and files with bad documents among them. Both engines.
#[test]
fn threads_change_nothing_but_speed() {
    let mut files: Vec<String> = vmext_test_support::fixture_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(files.len() > 20);
    files.insert(7, "no-such-file.ndjson".to_owned());
    let bad = vmext_test_support::TempDir::new("cli-threads");
    let bad_file = bad.path().join("bad.ndjson");
    // Enough invalid lines, and enough alerts, that a worker's held log and report outgrow
    // memory (1 MiB) and go through a temporary file.
    let mut bad_text = String::from("{\"a\":1}\nnot json\n{\"records\":[1,{}]}\n");
    bad_text.push_str(&"not json either\n".repeat(30_000));
    std::fs::write(&bad_file, bad_text).unwrap();
    files.insert(3, bad_file.display().to_string());
    let alerting = std::fs::read(
        vmext_test_support::repo_root().join("fixtures/ecs/custom-script-extension.json"),
    )
    .unwrap();
    let many_alerts = bad.path().join("many-alerts.json");
    std::fs::write(&many_alerts, alerting.repeat(2_000)).unwrap();
    files.insert(12, many_alerts.display().to_string());
    let summary = |err: &str| -> String {
        let line = err.lines().last().unwrap_or("");
        line.split(" in ").next().unwrap_or("").to_owned()
    };
    for engine in ["native", "component"] {
        let run = |threads: &str| {
            let mut args = vec!["scan", "--engine", engine, "--threads", threads];
            args.extend(files.iter().map(String::as_str));
            detect(&args, b"")
        };
        let (code1, out1, err1) = run("1");
        assert_eq!(code1, 1 | 4 | 8, "{err1}");
        assert!(out1.lines().count() > 10);
        for threads in ["2", "5"] {
            let (code, out, err) = run(threads);
            assert_eq!(code, code1, "{engine} -j{threads}: {err}");
            assert_eq!(out, out1, "{engine} -j{threads}: alerts differ");
            let lines = |e: &str| e.lines().rev().skip(1).collect::<Vec<_>>().join("\n");
            assert_eq!(
                lines(&err),
                lines(&err1),
                "{engine} -j{threads}: log differs"
            );
            assert_eq!(summary(&err), summary(&err1), "{engine} -j{threads}");
        }
    }
    let (code, _, err) = detect(&["scan", "--threads", "0"], b"");
    assert_eq!(code, 2, "{err}");
}

/// A full stdout stops a scan of many files on several threads too: status 2 and a message
/// naming stdout, and no worker left waiting for its turn to write (the scan ends).
#[test]
fn a_write_error_ends_a_scan_on_several_threads() {
    // The first input's alerts are more than stdout's buffer, so the write fails while the
    // other inputs are still being scanned.
    let dir = vmext_test_support::TempDir::new("cli-threads-full");
    let alerting = std::fs::read(
        vmext_test_support::repo_root().join("fixtures/ecs/custom-script-extension.json"),
    )
    .unwrap();
    let many_alerts = dir.path().join("many-alerts.json");
    std::fs::write(&many_alerts, alerting.repeat(200)).unwrap();
    let mut files = vec![many_alerts.display().to_string()];
    files.extend(
        vmext_test_support::fixture_files()
            .iter()
            .map(|p| p.display().to_string()),
    );
    assert!(
        files.len() > 20,
        "more inputs than the workers may run ahead"
    );
    let full = std::fs::File::create("/dev/full").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmext-detect"))
        .args(["scan", "--engine", "native", "--threads", "2"])
        .args(&files)
        .current_dir(vmext_test_support::repo_root())
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the scan did not end after a write error");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    vmext_test_support::assert_stdout_failure_reported(&out, "scan -j 2 of every fixture");
}
