//! The `vmext-detect` binary as a user runs it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::process::{Command, Stdio};

fn detect(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    // The command runs the component by default: build it from the current sources.
    let component = vmext_test_support::build_artefact(vmext_test_support::Artefact::Component);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmext-detect"))
        .args(args)
        .env("VMEXT_COMPONENT", component)
        .current_dir(vmext_test_support::repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
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
    assert!(err.contains("unknown profile `strict`"), "{err}");
    let (code, _, err) = detect(&["scan", "--exceptions", "Cargo.toml"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("Cargo.toml: exceptions: not JSON"), "{err}");
}

/// `fluent-bit` runs the Fluent Bit module on records as Fluent Bit's filter would, including an
/// exceptions file in a preopened directory.
#[test]
fn the_fluent_bit_module_from_the_command_line() {
    let module = vmext_test_support::build_artefact(vmext_test_support::Artefact::FluentBit);
    let module = module.to_str().unwrap();
    let files = [
        "fixtures/ecs/custom-script-extension.json",
        "fixtures/ecs/microsoft-monitoring-agent.json",
        "fixtures/ecs/outcome-failure.json",
    ];
    let mut args = vec![
        "fluent-bit",
        "--module",
        module,
        "--function",
        "vmext_annotate",
    ];
    args.extend(files);
    let (code, out, err) = detect(&args, b"");
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.lines().count(), 3, "annotate returns every record");
    assert!(
        err.starts_with("records 3: 3 returned, 2 with alerts, 0 dropped, 0 corrupt"),
        "{err}"
    );

    // The example list is named known-good-automation.json; the module reads
    // /etc/vmext/exceptions.json, which a preopen named `etc/vmext` (or `.`, Fluent Bit's
    // default) serves relative to the working directory, as in Fluent Bit.
    let staged = vmext_test_support::repo_root().join("target/test-output/cli-fluent-bit");
    std::fs::create_dir_all(staged.join("etc/vmext")).unwrap();
    std::fs::copy(
        vmext_test_support::repo_root().join("fixtures/exceptions/known-good-automation.json"),
        staged.join("etc/vmext/exceptions.json"),
    )
    .unwrap();
    let fixtures: Vec<_> = files
        .iter()
        .map(|f| vmext_test_support::repo_root().join(f))
        .collect();
    let alerts_in = |dir: &std::path::Path, accessible: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmext-detect"));
        cmd.args([
            "fluent-bit",
            "--module",
            module,
            "--function",
            "vmext_alerts",
        ]);
        if let Some(list) = accessible {
            cmd.args(["--accessible-path", list]);
        }
        let out = cmd.args(&fixtures).current_dir(dir).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    for accessible in [Some("etc/vmext"), Some("."), None] {
        let (code, out, err) = alerts_in(&staged, accessible);
        assert_eq!((code, out.as_str()), (0, ""), "{accessible:?}: {err}");
        assert!(err.starts_with("records 3: 0 returned"), "{err}");
    }
    // A directory whose name is not a prefix of /etc/vmext gives the module nothing: there is
    // no GUEST=HOST mapping in Fluent Bit.
    let (code, _, err) = alerts_in(&staged.join("etc"), Some("vmext"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("records 3: 2 returned, 2 with alerts"),
        "{err}"
    );
    // A missing directory stops the run, as it stops Fluent Bit at start-up.
    let (code, out, err) = alerts_in(&staged, Some("etc/vmext, etc/missing"));
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("error while pre-opening directory etc/missing: 2"),
        "{err}"
    );
    let (code, _, err) = detect(
        &["fluent-bit", "--module", module, "--function", "main"],
        b"",
    );
    assert_eq!(code, 2);
    assert!(err.contains("no filter function `main`"), "{err}");
}
