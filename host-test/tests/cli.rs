//! The harness's `host-test` binary as the benchmarks and the playground run it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::Command;

fn harness(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(args)
        .current_dir(vmext_test_support::repo_root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
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
    let (code, out, err) = harness(&args);
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-test"));
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
    // An input that cannot be opened stops the run, named.
    let (code, out, err) = harness(&[
        "fluent-bit",
        "--module",
        module,
        "fixtures/ecs/custom-script-extension.json",
        "fixtures/missing.json",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out.lines().count(), 1, "the records before it are written");
    assert!(
        err.starts_with("host-test: fixtures/missing.json: No such file or directory"),
        "{err}"
    );
    let (code, _, err) = harness(&["fluent-bit", "--module", module, "--function", "main"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "--function main: not one of the filter functions this project's module exports \
             (vmext_annotate, vmext_alerts, vmext_annotate_hardened, vmext_alerts_hardened)"
        ),
        "{err}"
    );
}

/// Every subcommand takes only its own flags, and an unknown one is an error (status 2).
#[test]
fn flags_belong_to_their_subcommand() {
    let (code, _, err) = harness(&["generate", "--port", "9"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--port"), "{err}");
    let (code, out, err) = harness(&["generate", "--records", "3", "--seed", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3);
    let (code, _, err) = harness(&["generate", "--true-positives", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("between 0 and 1"), "{err}");
}

/// A full stdout ends the harness's commands with status 2 and a message naming stdout, never
/// a panic (as the shipped command).
#[test]
fn harness_stdout_write_errors_are_reported_not_panics() {
    let module = vmext_test_support::build_artefact(vmext_test_support::Artefact::FluentBit);
    let module = module.to_str().unwrap();
    let fluent_bit = [
        "fluent-bit",
        "--module",
        module,
        "--function",
        "vmext_annotate",
        "fixtures/ecs/custom-script-extension.json",
    ];
    for args in [
        &["efficacy", "--records", "2"][..],
        &["generate", "--records", "50"][..],
        &["--help"][..],
        &fluent_bit[..],
    ] {
        let full = std::fs::File::create("/dev/full").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
            .args(args)
            .current_dir(vmext_test_support::repo_root())
            .stdout(full)
            .output()
            .unwrap();
        vmext_test_support::assert_stdout_failure_reported(&out, &format!("{args:?}"));
    }
    // The records' writer names stdout itself, so its error is never taken for an input's.
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(fluent_bit)
        .current_dir(vmext_test_support::repo_root())
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("host-test: cannot write to stdout: No space left on device"),
        "{err}"
    );
}
