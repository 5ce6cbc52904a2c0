//! The Fluent Bit filter module under an exact emulation of Fluent Bit's calling convention.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use host_test::fluent_bit::{FluentBitInstance, FluentBitModule, Mode, Reply};
use host_test::wasi_files::WasiFiles;
use vmext_engine::{Detector, Exceptions, Outcome, ProfileName, Verdict};
use vmext_test_support::{Artefact, build_artefact, fixture_files, repo_root};

fn instance(artefact: Artefact) -> FluentBitInstance {
    FluentBitModule::load(&build_artefact(artefact), false)
        .unwrap()
        .instantiate()
        .unwrap()
}

fn profile_of(mode: Mode) -> ProfileName {
    match mode {
        Mode::Annotate | Mode::Alerts => ProfileName::Faithful,
        Mode::AnnotateHardened | Mode::AlertsHardened => ProfileName::Hardened,
    }
}

/// The engine's alerts for a document, natively.
fn engine_alerts(text: &[u8]) -> Vec<String> {
    detector_alerts(&Detector::seed(), text)
}

fn detector_alerts(detector: &Detector, text: &[u8]) -> Vec<String> {
    match detector.evaluate(text).unwrap() {
        Outcome::Rejected => Vec::new(),
        Outcome::Evaluated(list) => list
            .into_iter()
            .filter_map(|e| match e.verdict {
                Verdict::Alert(a) => Some(a.json),
                _ => None,
            })
            .collect(),
    }
}

/// What annotate mode must return: the record unchanged, or with the alerts spliced in before
/// its closing brace, byte for byte.
fn expected_annotation(record: &str, alerts: &[String]) -> String {
    if alerts.is_empty() {
        return record.to_owned();
    }
    let end = record.rfind('}').unwrap();
    format!(
        "{},\"vmext_alerts\":[{}]}}",
        &record[..end],
        alerts.join(",")
    )
}

#[test]
fn module_exports_exactly_the_documented_functions() {
    let documented = [
        "_initialize",
        "free",
        "malloc",
        "memory",
        "vmext_alerts",
        "vmext_alerts_hardened",
        "vmext_annotate",
        "vmext_annotate_hardened",
    ];
    let module = FluentBitModule::load(&build_artefact(Artefact::FluentBit), false).unwrap();
    let mut exports = module.exports();
    exports.sort();
    assert_eq!(exports, documented);
    // For `wasm32-unknown-unknown`, rustc's linker also exports two data-layout globals
    // (`__data_end`, `__heap_base`); they are not functions and Fluent Bit ignores them. That
    // build imports no WASI function, so it needs no reactor entry point (`_initialize`).
    let module = FluentBitModule::load(&build_artefact(Artefact::FluentBitUnknown), false).unwrap();
    let mut exports = module.exports();
    exports.sort();
    let mut expected: Vec<&str> = documented[1..].to_vec();
    expected.extend(["__data_end", "__heap_base"]);
    expected.sort_unstable();
    assert_eq!(exports, expected);
}

/// Fluent Bit's WAMR (2.4) refuses SIMD and several newer proposals. The modules must validate
/// with only the features it supports.
#[test]
fn module_uses_only_features_wamr_accepts() {
    use wasmparser::{Validator, WasmFeatures};
    let features = WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::FLOATS;
    for artefact in [Artefact::FluentBit, Artefact::FluentBitUnknown] {
        let bytes = std::fs::read(build_artefact(artefact)).unwrap();
        Validator::new_with_features(features)
            .validate_all(&bytes)
            .unwrap_or_else(|e| panic!("{artefact:?} uses a feature WAMR refuses: {e}"));
        // And, explicitly, no SIMD instruction anywhere.
        assert!(
            Validator::new_with_features(features | WasmFeatures::SIMD)
                .validate_all(&bytes)
                .is_ok()
        );
    }
}

/// What the module must reply in `mode` for a record, given the engine's alerts.
fn expected_reply(mode: Mode, record: &str, alerts: &[String]) -> Reply {
    if mode.annotates() {
        return Reply::Record(expected_annotation(record, alerts));
    }
    match alerts {
        [] => Reply::Dropped,
        [one] => Reply::Record(one.clone()),
        many => Reply::Record(format!("{{\"vmext_alerts\":[{}]}}", many.join(","))),
    }
}

#[test]
fn every_fixture_through_every_mode_and_both_targets() {
    let faithful = Detector::seed_in(ProfileName::Faithful);
    let hardened = Detector::seed_in(ProfileName::Hardened);
    let mut hardened_only = 0;
    for artefact in [Artefact::FluentBit, Artefact::FluentBitUnknown] {
        let mut fb = instance(artefact);
        for path in fixture_files() {
            let text = std::fs::read_to_string(&path).unwrap();
            let record = text.trim();
            for mode in Mode::ALL {
                let detector = match profile_of(mode) {
                    ProfileName::Faithful => &faithful,
                    ProfileName::Hardened => &hardened,
                };
                let alerts = detector_alerts(detector, record.as_bytes());
                let reply = fb.call(mode, "azure.activity", record.as_bytes()).unwrap();
                assert_eq!(
                    reply,
                    expected_reply(mode, record, &alerts),
                    "{artefact:?} {mode:?} {}",
                    path.display()
                );
            }
            if detector_alerts(&hardened, record.as_bytes()).len()
                > detector_alerts(&faithful, record.as_bytes()).len()
            {
                hardened_only += 1;
            }
        }
    }
    assert!(
        hardened_only >= 2 * 15,
        "the hardened modes differ ({hardened_only})"
    );
}

/// Exceptions reach the module as a file in a directory Fluent Bit preopens
/// (`accessible_paths`; here `etc/vmext`, relative to Fluent Bit's working directory, which the
/// module's `/etc/vmext/exceptions.json` resolves to): suppressed alerts disappear in every
/// mode, byte for byte as the engine with the same exceptions decides.
#[test]
fn exceptions_file_through_a_preopened_directory() {
    let work = repo_root().join("target/test-output/fluent-bit-exceptions");
    let dir = work.join("etc/vmext");
    std::fs::create_dir_all(&dir).unwrap();
    let text =
        std::fs::read_to_string(repo_root().join("fixtures/exceptions/known-good-automation.json"))
            .unwrap();
    std::fs::write(dir.join("exceptions.json"), &text).unwrap();
    let exceptions = Exceptions::from_json(&text).unwrap();
    let module = FluentBitModule::load(&build_artefact(Artefact::FluentBit), false).unwrap();
    // Fluent Bit's default, `.`, finds the file too; a missing directory is Fluent Bit's error.
    for list in ["etc/vmext", ".", "missing, etc/vmext"] {
        let files = WasiFiles::accessible_paths(list, &work);
        if list.starts_with("missing") {
            assert_eq!(
                files.unwrap_err(),
                "error while pre-opening directory missing: 2"
            );
        } else {
            assert!(files.is_ok(), "{list}");
        }
    }
    let mut fb = module
        .instantiate_with(WasiFiles::accessible_paths("etc/vmext", &work).unwrap())
        .unwrap();
    let mut suppressed = 0;
    for path in fixture_files() {
        let record = std::fs::read_to_string(&path).unwrap();
        let record = record.trim();
        for mode in Mode::ALL {
            let plain = Detector::seed_in(profile_of(mode));
            let with = plain.clone().with_exceptions(exceptions.clone());
            let alerts = detector_alerts(&with, record.as_bytes());
            if mode == Mode::Annotate {
                suppressed += detector_alerts(&plain, record.as_bytes()).len() - alerts.len();
            }
            let reply = fb.call(mode, "t", record.as_bytes()).unwrap();
            assert_eq!(
                reply,
                expected_reply(mode, record, &alerts),
                "{mode:?} {}",
                path.display()
            );
        }
    }
    assert!(
        suppressed >= 3,
        "the exceptions suppress fixtures ({suppressed})"
    );

    // Without the preopen (or without the file) nothing is suppressed.
    let mut bare = module.instantiate().unwrap();
    let alerting = repo_root().join("fixtures/ecs/custom-script-extension.json");
    let record = std::fs::read_to_string(alerting).unwrap();
    let alerts = engine_alerts(record.trim().as_bytes());
    assert_eq!(
        bare.call(Mode::Alerts, "t", record.trim().as_bytes())
            .unwrap(),
        expected_reply(Mode::Alerts, record.trim(), &alerts)
    );

    // An invalid file leaves alerts unsuppressed and says why on every reply with an alert.
    let broken = repo_root().join("target/test-output/fluent-bit-exceptions-broken");
    std::fs::create_dir_all(broken.join("etc/vmext")).unwrap();
    std::fs::write(broken.join("etc/vmext/exceptions.json"), r#"{"entries":[{"field":"a","type":"list","operator":"included","list":{"id":"x","type":"keyword"}}]}"#).unwrap();
    let mut fb = module
        .instantiate_with(WasiFiles::accessible_paths("etc/vmext", &broken).unwrap())
        .unwrap();
    for mode in Mode::ALL {
        let Reply::Record(reply) = fb.call(mode, "t", record.trim().as_bytes()).unwrap() else {
            panic!("{mode:?}: the alert is kept");
        };
        let value = vmext_json::parse(reply.as_bytes()).unwrap();
        let error = value
            .get("vmext_config_error")
            .and_then(|v| v.as_str())
            .unwrap();
        assert!(
            error.starts_with(
                "/etc/vmext/exceptions.json: exception item 1: entry 1: `a` uses a value list"
            ),
            "{error}"
        );
        assert!(reply.contains("\"event\":{\"kind\":\"alert\""), "{mode:?}");
    }
    // A record without an alert is untouched.
    let quiet = br#"{"x":1}"#;
    assert_eq!(
        fb.call(Mode::Annotate, "t", quiet).unwrap(),
        Reply::Record("{\"x\":1}".to_owned())
    );
}

/// Hostile and broken input never yields a reply that corrupts Fluent Bit, and annotate mode
/// never loses the record's content.
#[test]
fn bad_inputs_never_produce_invalid_json() {
    let mut fb = instance(Artefact::FluentBit);
    let alert =
        std::fs::read_to_string(repo_root().join("fixtures/ecs/custom-script-extension.json"))
            .unwrap();
    let alert = alert.trim();
    let mut megabyte_match = alert[..alert.len() - 1].to_owned();
    megabyte_match.push_str(",\"pad\":\"");
    megabyte_match.push_str(&"x".repeat(1 << 20));
    megabyte_match.push_str("\"}");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", alert.as_bytes()[..alert.len() / 2].to_vec()),
        ("not JSON", b"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE User CUSTOMSCRIPTEXTENSION".to_vec()),
        ("array", br#"["MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE"]"#.to_vec()),
        ("array rejected", b"[1,2]".to_vec()),
        ("two objects", b"{\"a\":1}{\"b\":2}".to_vec()),
        ("empty", Vec::new()),
        ("invalid UTF-8", b"{\"a\":\"\xff\xfe\"}".to_vec()),
        ("deep nesting", "[".repeat(100_000).into_bytes()),
        ("deep valid", format!("{}{}", "{\"a\":".repeat(400), "1".to_owned() + &"}".repeat(400)).into_bytes()),
        ("1 MB non-matching", format!("{{\"pad\":\"{}\"}}", "y".repeat(1 << 20)).into_bytes()),
        ("1 MB matching", megabyte_match.into_bytes()),
        ("duplicate keys", br#"{"a":1,"a":2,"operationName":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","x":"User CUSTOMSCRIPTEXTENSION"}"#.to_vec()),
        ("NUL escape", b"{\"a\":\"\\u0000\"}".to_vec()),
    ];
    for (name, bytes) in &cases {
        for mode in Mode::ALL {
            let reply = fb.call(mode, "t", bytes).unwrap();
            assert!(
                !matches!(reply, Reply::Corrupt(_)),
                "{name} {mode:?}: {reply:?}"
            );
            if mode.annotates() {
                // Nothing is dropped in annotate mode.
                assert!(matches!(reply, Reply::Record(_)), "{name}: {reply:?}");
            }
        }
    }
    // Unreadable text comes back wrapped, with the original kept as a string.
    let Reply::Record(wrapped) = fb.call(Mode::Annotate, "t", &cases[0].1).unwrap() else {
        panic!()
    };
    let doc = vmext_json::parse(wrapped.as_bytes()).unwrap();
    let inner = doc.get("vmext_invalid_record").unwrap();
    assert!(
        inner
            .get("error")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
    assert_eq!(
        inner.get("record").unwrap().as_str().unwrap().as_bytes(),
        &cases[0].1[..]
    );
    // A 1 MB matching record is annotated.
    let Reply::Record(big) = fb.call(Mode::Annotate, "t", &cases[10].1).unwrap() else {
        panic!()
    };
    assert!(big.ends_with("]}") && big.contains("\"vmext_alerts\":[{"));
    // record == 0: the host could not copy it.
    let reply = fb.call_raw(Mode::Annotate, "t", None, 70_000).unwrap();
    let Reply::Record(text) = reply else {
        panic!("{reply:?}")
    };
    assert!(
        text.contains("could not copy this 70000-byte record"),
        "{text}"
    );
    assert_eq!(
        fb.call_raw(Mode::Alerts, "t", None, 70_000).unwrap(),
        Reply::Dropped
    );
}

/// A trap costs the record it happened on; the instance lives on, as in Fluent Bit, and no
/// state is left locked.
#[test]
fn a_trap_does_not_poison_the_instance() {
    let mut fb = instance(Artefact::FluentBitWithTestHooks);
    let alert =
        std::fs::read(repo_root().join("fixtures/ecs/custom-script-extension.json")).unwrap();
    let alert = alert.trim_ascii();
    assert!(matches!(
        fb.call(Mode::Annotate, "t", alert).unwrap(),
        Reply::Record(_)
    ));
    assert!(
        fb.call(Mode::Annotate, "t", br#"{"x":"__vmext_test_trap__"}"#)
            .is_err()
    );
    for _ in 0..3 {
        let Reply::Record(text) = fb.call(Mode::Annotate, "t", alert).unwrap() else {
            panic!()
        };
        assert!(text.contains("vmext_alerts"));
    }
}

fn corpus(shape: host_test::generate::CorpusShape, records: u64, tp: f64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let spec = host_test::generate::CorpusSpec {
        records,
        shape,
        true_positive_rate: tp,
        near_miss_rate: 0.05,
        seed: 3,
    };
    host_test::generate::generate(&spec, &mut out).unwrap();
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn memory_stays_flat(calls: usize) {
    use host_test::generate::CorpusShape;
    let mut fb = instance(Artefact::FluentBit);
    let mut records = corpus(CorpusShape::Ecs, 500, 0.02);
    records.extend(corpus(CorpusShape::Raw, 500, 0.02));
    // Warm up: let the heap reach its working size.
    for r in records.iter().cycle().take(5_000) {
        fb.call(Mode::Annotate, "t", r).unwrap();
    }
    let before = fb.memory_size();
    for (i, r) in records.iter().cycle().take(calls).enumerate() {
        let mode = if i % 2 == 0 {
            Mode::Annotate
        } else {
            Mode::Alerts
        };
        fb.call(mode, "t", r).unwrap();
    }
    assert_eq!(
        fb.memory_size(),
        before,
        "linear memory grew over {calls} calls"
    );
}

#[test]
fn linear_memory_is_flat_over_100k_calls() {
    memory_stays_flat(100_000);
}

/// The full million (slow in a debug build): `cargo test --release -p vmext-host --test
/// fluent_bit -- --ignored one_million`.
#[test]
#[ignore = "slow; run explicitly (see BENCHMARKS.md)"]
fn linear_memory_is_flat_over_one_million_calls() {
    memory_stays_flat(1_000_000);
}

/// Instructions (wasmtime fuel) per record of each exported function, against a plain byte
/// scan of the same record: `cargo test -p host-test --test fluent_bit -- --ignored
/// --nocapture cost`.
#[test]
#[ignore = "a measurement, not a check; run explicitly (see BENCHMARKS.md)"]
fn cost_per_record_in_fuel() {
    use host_test::generate::CorpusShape;
    // The shipped module for the annotate path; the test-hooks build only for the yardsticks
    // (its marker checks would inflate the annotate figure).
    let mut fb = FluentBitModule::load(&build_artefact(Artefact::FluentBit), true)
        .unwrap()
        .instantiate()
        .unwrap();
    let mut hooks = FluentBitModule::load(&build_artefact(Artefact::FluentBitWithTestHooks), true)
        .unwrap()
        .instantiate()
        .unwrap();
    for shape in [CorpusShape::Ecs, CorpusShape::Raw] {
        let records = corpus(shape, 20_000, 0.001);
        let detector = Detector::seed();
        // Per class: fuel of each mode (in `Mode::ALL`'s order), byte scan, bytes, records,
        // prefilter alone, validating scan alone.
        let mut classes = [([0u64; 4], 0u64, 0u64, 0usize, 0u64, 0u64); 3];
        // Warm the instance (detectors are built on the first call of each profile).
        for mode in Mode::ALL {
            fb.call(mode, "t", &records[0]).unwrap();
        }
        for r in &records {
            let class = match detector.evaluate(r).unwrap() {
                Outcome::Rejected => 0,
                Outcome::Evaluated(list) if list.iter().any(|e| e.alert().is_some()) => 2,
                Outcome::Evaluated(_) => 1,
            };
            let mut modes = [0u64; 4];
            for (slot, mode) in modes.iter_mut().zip(Mode::ALL) {
                let start = fb.fuel().unwrap();
                fb.call(mode, "t", r).unwrap();
                *slot = start - fb.fuel().unwrap();
            }
            let mut part = |export: &str| {
                let start = hooks.fuel().unwrap();
                hooks.call_scan(export, r).unwrap();
                start - hooks.fuel().unwrap()
            };
            let scan = part("vmext_test_byte_scan");
            let prefilter = part("vmext_test_prefilter");
            let validate = part("vmext_test_validate");
            let c = &mut classes[class];
            for (total, one) in c.0.iter_mut().zip(modes) {
                *total += one;
            }
            c.1 += scan;
            c.2 += r.len() as u64;
            c.3 += 1;
            c.4 += prefilter;
            c.5 += validate;
        }
        for (name, (modes, scan, bytes, n, prefilter, validate)) in
            ["rejected by the prefilter", "parsed, no match", "alert"]
                .iter()
                .zip(classes)
        {
            if n == 0 {
                continue;
            }
            let n64 = n as u64;
            let per_mode: Vec<String> = Mode::ALL
                .iter()
                .zip(modes)
                .map(|(mode, fuel)| format!("{} {}", mode.function_name(), fuel / n64))
                .collect();
            println!(
                "{shape:?} {name} (by the faithful rule): {n} records, mean {} bytes; fuel per \
                 record: {}, byte scan {} (all including the host's malloc/copy/free); \
                 alone: prefilter {}, validating scan {}",
                bytes / n64,
                per_mode.join(", "),
                scan / n64,
                prefilter / n64,
                validate / n64,
            );
        }
    }
}

/// Instructions (wasmtime fuel) of the validating scan alone, by the shape of an object's
/// members: what one more member costs, for short and long strings and other values, and what
/// one generated ECS record costs. `cargo test -p host-test --test fluent_bit -- --ignored
/// --nocapture validation_cost`.
#[test]
#[ignore = "a measurement, not a check; run explicitly (see BENCHMARKS.md)"]
fn validation_cost_by_member_shape() {
    let mut hooks = FluentBitModule::load(&build_artefact(Artefact::FluentBitWithTestHooks), true)
        .unwrap()
        .instantiate()
        .unwrap();
    let mut cost = |text: &[u8]| {
        let start = hooks.fuel().unwrap();
        assert_eq!(hooks.call_scan("vmext_test_validate", text).unwrap(), 1);
        start - hooks.fuel().unwrap()
    };
    // Warm the instance: the first call grows the heap for the host's copy.
    cost(b"{}");
    let key = "abcdefghijkl";
    for (name, member) in [
        ("short key, short string", r#""ab":"cd""#.to_owned()),
        ("12-byte key and string", format!(r#""{key}":"{key}""#)),
        (
            "12-byte key, 36-byte string",
            format!(r#""{key}":"{}""#, "x".repeat(36)),
        ),
        (
            "12-byte key, 100-byte string",
            format!(r#""{key}":"{}""#, "x".repeat(100)),
        ),
        ("12-byte key, number", format!(r#""{key}":12345"#)),
        ("12-byte key, object", format!(r#""{key}":{{"ab":"cd"}}"#)),
    ] {
        let one = cost(format!("{{{member}}}").as_bytes());
        let hundred = cost(format!("{{{}}}", vec![member; 100].join(",")).as_bytes());
        println!("{name}: {:.0} per member", (hundred - one) as f64 / 99.0);
    }
    let record = corpus(host_test::generate::CorpusShape::Ecs, 1, 0.0).remove(0);
    println!(
        "a generated ECS record of {} bytes: {}",
        record.len(),
        cost(&record)
    );
}

/// A preopened directory is a capability for that directory alone: a symbolic link to a
/// directory outside it, met at any component of the path (here `etc`, on the way to
/// `etc/vmext/exceptions.json`), does not reach the file there, while a link that stays inside
/// the preopen is followed, as in WASI runtimes.
#[test]
fn symlinked_directories_do_not_leave_a_preopen() {
    let base = vmext_test_support::TempDir::new("fb-preopen-symlinks");
    let outside = base.path().join("outside");
    std::fs::create_dir_all(outside.join("etc/vmext")).unwrap();
    std::fs::copy(
        repo_root().join("fixtures/exceptions/known-good-automation.json"),
        outside.join("etc/vmext/exceptions.json"),
    )
    .unwrap();
    // Escaping: work/etc -> ../outside/etc.
    let escaping = base.path().join("escaping");
    std::fs::create_dir_all(&escaping).unwrap();
    std::os::unix::fs::symlink(outside.join("etc"), escaping.join("etc")).unwrap();
    // Staying inside: work/etc -> real-etc, a folder of the preopen.
    let inside = base.path().join("inside");
    std::fs::create_dir_all(inside.join("real-etc/vmext")).unwrap();
    std::fs::copy(
        outside.join("etc/vmext/exceptions.json"),
        inside.join("real-etc/vmext/exceptions.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink("real-etc", inside.join("etc")).unwrap();

    let known_good =
        std::fs::read_to_string(repo_root().join("fixtures/ecs/microsoft-monitoring-agent.json"))
            .unwrap();
    let record = known_good.trim().as_bytes();
    let alerts = engine_alerts(record);
    assert_eq!(alerts.len(), 1, "the fixture alerts without exceptions");
    let module = FluentBitModule::load(&build_artefact(Artefact::FluentBit), false).unwrap();
    let reply_in = |work: &std::path::Path| {
        let mut fb = module
            .instantiate_with(WasiFiles::accessible_paths(".", work).unwrap())
            .unwrap();
        fb.call(Mode::Alerts, "t", record).unwrap()
    };
    // Through the escaping link the file is not read: the alert stays.
    match reply_in(&escaping) {
        Reply::Record(reply) => assert!(reply.contains("\"kind\":\"alert\""), "{reply}"),
        other => panic!("the escaping link suppressed the alert: {other:?}"),
    }
    // Through the link inside, the exceptions apply: the alert is suppressed (dropped).
    assert_eq!(reply_in(&inside), Reply::Dropped);
}

/// Only regular files are read through a preopen, and only up to the shim's bound: a FIFO
/// where the exception list should be (opening it would wait for a writer forever) and a file
/// over the bound are refused at once, as if absent, so the alert stays.
#[test]
fn fifos_and_oversized_files_are_refused_without_waiting() {
    let base = vmext_test_support::TempDir::new("fb-preopen-special");
    let fifo_work = base.path().join("fifo");
    std::fs::create_dir_all(fifo_work.join("etc/vmext")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(fifo_work.join("etc/vmext/exceptions.json"))
        .status()
        .unwrap();
    assert!(made.success());
    let big_work = base.path().join("big");
    std::fs::create_dir_all(big_work.join("etc/vmext")).unwrap();
    let big = std::fs::File::create(big_work.join("etc/vmext/exceptions.json")).unwrap();
    big.set_len(host_test::wasi_files::MAX_FILE_BYTES + 1)
        .unwrap();

    let record =
        std::fs::read_to_string(repo_root().join("fixtures/ecs/microsoft-monitoring-agent.json"))
            .unwrap();
    for work in [fifo_work, big_work] {
        let record = record.trim().as_bytes().to_vec();
        let (send, receive) = std::sync::mpsc::channel();
        let shown = work.display().to_string();
        std::thread::spawn(move || {
            let module =
                FluentBitModule::load(&build_artefact(Artefact::FluentBit), false).unwrap();
            let mut fb = module
                .instantiate_with(WasiFiles::accessible_paths(".", &work).unwrap())
                .unwrap();
            let _ = send.send(fb.call(Mode::Alerts, "t", &record).unwrap());
        });
        match receive.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(Reply::Record(reply)) => {
                assert!(reply.contains("\"kind\":\"alert\""), "{shown}: {reply}")
            }
            Ok(other) => panic!("{shown}: the alert was lost: {other:?}"),
            Err(e) => panic!("{shown}: no reply within a minute ({e}): the shim waited"),
        }
    }
}
