//! The rule as a WebAssembly component, driven by wasmtime: its contract, its equality with the
//! native engine on every fixture, snapshots of its output, and its behaviour under traps,
//! endless loops and memory exhaustion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use vmext_engine::{Detector, ProfileName};
use vmext_host::component::{
    ComponentEvaluator, ComponentRuntime, DetectorOptions, Limits, RuleSource,
};
use vmext_host::evaluator::{Chunk, DocumentResult, Evaluator, NativeEvaluator};
use vmext_test_support::{Artefact, build_artefact, fixture_files, repo_root};

/// One compiled runtime per artefact, shared by the tests of this binary.
fn runtime(artefact: Artefact) -> Arc<ComponentRuntime> {
    static PLAIN: OnceLock<Arc<ComponentRuntime>> = OnceLock::new();
    static HOOKS: OnceLock<Arc<ComponentRuntime>> = OnceLock::new();
    let cell = match artefact {
        Artefact::Component => &PLAIN,
        Artefact::ComponentWithTestHooks => &HOOKS,
        other => panic!("{other:?} is not a component"),
    };
    cell.get_or_init(|| Arc::new(ComponentRuntime::load(&build_artefact(artefact)).unwrap()))
        .clone()
}

fn component(rule: RuleSource, limits: Limits) -> Result<ComponentEvaluator, String> {
    ComponentEvaluator::new(runtime(Artefact::Component), rule, limits).map_err(|e| e.to_string())
}

fn seed_component() -> ComponentEvaluator {
    component(RuleSource::Seed, Limits::default()).unwrap()
}

fn name_of(path: &std::path::Path) -> String {
    let shape = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy();
    let stem = path.file_stem().unwrap().to_string_lossy();
    format!("{shape}__{stem}")
}

/// The component needs nothing from its host. Rust's standard library for `wasm32-wasip2`
/// declares its runtime's WASI interfaces (environment and exit, the standard streams and
/// their terminal queries, which panic messages would use); the host defines every one of them
/// as a trap, so even these are unreachable. Anything beyond this list (files, sockets,
/// clocks, random) fails the test.
#[test]
fn component_imports_only_what_std_declares() {
    let rt = runtime(Artefact::Component);
    let allowed = [
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/stderr",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
        "wasi:io/error",
        "wasi:io/poll",
        "wasi:io/streams",
    ];
    let imports = rt.imports();
    for import in &imports {
        let interface = import.split('@').next().unwrap();
        assert!(
            allowed.contains(&interface),
            "unexpected import {import}; the component must not reach files, network or clocks"
        );
    }
    for forbidden in ["filesystem", "sockets", "clocks", "random", "http"] {
        assert!(
            !imports.iter().any(|i| i.contains(forbidden)),
            "{imports:?}"
        );
    }
    assert_eq!(rt.exports(), vec!["vmext:detect/detector@0.5.0".to_owned()]);
}

#[test]
fn component_reports_the_seed_rule() {
    let mut c = seed_component();
    let info = c.rule_info().unwrap();
    let rule = Detector::seed().rule().clone();
    assert_eq!(info.rule_id, rule.rule_id);
    assert_eq!(info.name, rule.name);
    assert_eq!(info.risk_score, 47);
    assert_eq!(info.severity_number, 47);
    assert_eq!(info.threat.len(), 3);
    assert_eq!(info.investigation_fields, rule.investigation_fields);
    assert_eq!(info.query, rule.query.source());
}

/// The component and the native engine give byte-identical results on every fixture, with the
/// prefilter (plain scan) and without it (explanations).
#[test]
fn component_equals_native_on_every_fixture() {
    let mut component = seed_component();
    let mut native = NativeEvaluator::new(Detector::seed());
    let mut compared = 0;
    for path in fixture_files() {
        let text = std::fs::read(&path).unwrap();
        for explain in [false, true] {
            let a = component.evaluate(&text, explain);
            let b = native.evaluate(&text, explain);
            assert_eq!(a, b, "{} (explain {explain})", path.display());
            compared += 1;
        }
    }
    assert_eq!(compared, 2 * fixture_files().len());
    // A batch call gives the same results as one call per document.
    let texts: Vec<Vec<u8>> = fixture_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let refs: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
    let batch = component.evaluate_batch(&Chunk::of(refs.iter().copied()), false);
    let single: Vec<DocumentResult> = refs.iter().map(|t| native.evaluate(t, false)).collect();
    assert_eq!(batch, single);
}

/// Reviewed snapshots of what the component says about every fixture: the verdicts, the
/// alerts and the clause-by-clause explanations.
#[test]
fn component_output_snapshots() {
    let mut component = seed_component();
    for path in fixture_files() {
        let text = std::fs::read(&path).unwrap();
        let DocumentResult::Records(records) = component.evaluate(&text, true) else {
            panic!("{}: not evaluated", path.display());
        };
        let mut report = String::new();
        for record in records {
            report.push_str(&pretty(&record.json));
            report.push('\n');
            if let Some(outline) = record.outline {
                report.push_str(&outline);
            }
        }
        insta::assert_snapshot!(name_of(&path), report);
    }
}

/// Indents compact JSON two spaces per level, for readable snapshots.
fn pretty(json: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                depth += 1;
                out.push(c);
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
                out.push(c);
            }
            ',' => {
                out.push(',');
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
            }
            ':' => out.push_str(": "),
            c => out.push(c),
        }
    }
    out
}

fn verdicts(result: &DocumentResult) -> String {
    match result {
        DocumentResult::Rejected => "rejected".to_owned(),
        DocumentResult::Failed(m) => format!("failed: {m}"),
        DocumentResult::Records(r) => r
            .iter()
            .map(|r| match (&r.alert_json, &r.error) {
                (Some(_), _) => "alert",
                (_, Some(_)) => "invalid",
                _ => "none",
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// A trap and an endless loop each cost one document; the scan goes on in a fresh instance.
#[test]
fn trap_and_endless_loop_cost_one_document_each() {
    let limits = Limits {
        memory_bytes: 64 << 20,
        deadline: Duration::from_millis(300),
    };
    let mut c = ComponentEvaluator::new(
        runtime(Artefact::ComponentWithTestHooks),
        RuleSource::Seed,
        limits,
    )
    .unwrap();
    let alert =
        std::fs::read(repo_root().join("fixtures/ecs/custom-script-extension.json")).unwrap();
    let trap = br#"{"note":"__vmext_test_trap__"}"#;
    let endless = br#"{"note":"__vmext_test_loop__"}"#;
    let results: Vec<String> = [&alert[..], trap, &alert, endless, &alert]
        .iter()
        .map(|d| verdicts(&c.evaluate(d, false)))
        .collect();
    assert_eq!(results[0], "alert");
    assert!(
        results[1].starts_with("failed: the guest failed"),
        "{}",
        results[1]
    );
    assert_eq!(results[2], "alert");
    assert!(results[3].contains("deadline exceeded"), "{}", results[3]);
    assert_eq!(results[4], "alert");
    assert_eq!(c.restarts(), 2);
    // In a batch, the bad document fails alone.
    let batch = c.evaluate_batch(&Chunk::of([&alert[..], trap, &alert]), false);
    let batch: Vec<String> = batch.iter().map(verdicts).collect();
    assert_eq!(batch[0], "alert");
    assert!(batch[1].starts_with("failed"));
    assert_eq!(batch[2], "alert");
}

/// A guest whose `prefilter` traps or never returns costs no document: the host starts a fresh
/// instance, leaves the prefilter to the guest, and every fixture gets the native verdict.
#[test]
fn a_prefilter_that_traps_or_hangs_is_left_to_the_guest() {
    let limits = Limits {
        memory_bytes: 64 << 20,
        deadline: Duration::from_millis(300),
    };
    for marker in ["__vmext_test_trap__", "__vmext_test_loop__"] {
        let query = format!(
            r#"event.action: "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE" or message: "{marker}""#
        );
        let mut c = ComponentEvaluator::new(
            runtime(Artefact::ComponentWithTestHooks),
            RuleSource::Query(query.clone()),
            limits,
        )
        .unwrap();
        assert!(c.prefilter().is_none(), "{marker}");
        let mut native = NativeEvaluator::new(Detector::new(
            vmext_engine::Rule::from_query(&query).unwrap(),
        ));
        let mut rejected = 0;
        for path in fixture_files() {
            let text = std::fs::read(&path).unwrap();
            assert!(!c.rejects(&text));
            let verdict = c.evaluate(&text, false);
            assert_eq!(verdict, native.evaluate(&text, false), "{}", path.display());
            rejected += usize::from(verdict == DocumentResult::Rejected);
        }
        // The guest applied the prefilter itself, and no call needed a fresh instance.
        assert!(rejected > 10, "{rejected}");
        assert_eq!(c.restarts(), 0);
    }
}

/// A document too large for the memory cap fails alone; smaller documents go on.
#[test]
fn memory_cap_costs_one_document() {
    let limits = Limits {
        memory_bytes: 8 << 20,
        deadline: Duration::from_secs(5),
    };
    let mut c = component(RuleSource::Seed, limits).unwrap();
    let alert =
        std::fs::read(repo_root().join("fixtures/ecs/custom-script-extension.json")).unwrap();
    let mut huge = b"{\"pad\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 16 << 20));
    huge.extend(b"\"}");
    assert_eq!(verdicts(&c.evaluate(&alert, false)), "alert");
    let failed = verdicts(&c.evaluate(&huge, true));
    assert!(failed.starts_with("failed"), "{failed}");
    assert_eq!(verdicts(&c.evaluate(&alert, false)), "alert");
}

/// Rules reach the component as TOML text or KQL, and its errors come back as values.
#[test]
fn rules_and_rule_errors_through_the_component() {
    let limits = Limits::default();
    let Err(e) = component(RuleSource::Query("a:(b".to_owned()), limits) else {
        panic!("a bad query was accepted")
    };
    assert!(e.contains("query syntax error"), "{e}");
    let eql = vmext_engine::SEED_RULE_TOML.replace("type = \"query\"", "type = \"eql\"");
    let Err(e) = component(RuleSource::Toml(eql), limits) else {
        panic!("an EQL rule was accepted")
    };
    assert!(e.contains("unsupported rule type"), "{e}");
    let mut q = component(RuleSource::Query("a:b".to_owned()), limits).unwrap();
    assert_eq!(verdicts(&q.evaluate(br#"{"a":"b"}"#, false)), "alert");
    assert_eq!(
        verdicts(&q.evaluate(b"{\"a\":\"b\"", false)),
        "failed: invalid JSON: unexpected end of input at byte 8"
    );
    assert_eq!(
        verdicts(&q.evaluate(b"{\"a\":\"b\xff\"}", false)),
        "failed: invalid JSON: invalid UTF-8 at byte 7"
    );
}

/// Queries up to the size bound: of the shapes that cost most per byte (half a million stars,
/// distinct wildcard pieces, factorable alternatives), each builds in the component under the
/// default limits as natively, and both engines give the same verdicts. One byte over the
/// bound, both refuse with the same message. (A query of 524,287 stars once ran the component
/// out of memory while the native engine accepted it.) The worst of these needs between 64 and
/// 128 MiB and about a second in the component: the default 256 MiB and 5 s leave a margin.
#[test]
fn both_engines_accept_queries_up_to_the_size_bound_and_refuse_beyond() {
    let bound = vmext_engine::MAX_QUERY_BYTES;
    let fill = |head: &str, mut term: Box<dyn FnMut(usize) -> String>| {
        let mut q = head.to_owned();
        for i in 0.. {
            let t = term(i);
            if q.len() + t.len() > bound {
                break;
            }
            q.push_str(&t);
        }
        q
    };
    let queries = [
        fill("a:", Box::new(|_| "*x".to_owned())),
        fill("a:x", Box::new(|i| format!("*{i:x}"))),
        fill("b:z", Box::new(|i| format!(" or (a:x and b:y{i})"))),
    ];
    let docs: [&[u8]; 3] = [
        br#"{"a":"xx"}"#,
        br#"{"a":"x0*1*2"}"#,
        br#"{"a":"x","b":"y7"}"#,
    ];
    for query in &queries {
        assert!(query.len() <= bound && query.len() > bound - 64);
        let native = Detector::new(vmext_engine::Rule::from_query(query).unwrap());
        let mut c = component(RuleSource::Query(query.clone()), Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", &query[..40]));
        for doc in docs {
            let mut n = NativeEvaluator::new(native.clone());
            assert_eq!(
                verdicts(&c.evaluate(doc, false)),
                verdicts(&n.evaluate(doc, false)),
                "{}",
                &query[..40]
            );
        }
    }
    // Under a lower cap than the default, building says which limit stopped it.
    let tight = Limits {
        memory_bytes: 32 << 20,
        deadline: Duration::from_secs(60),
    };
    let Err(e) = component(RuleSource::Query(queries[1].clone()), tight) else {
        panic!("built under a 32 MiB cap")
    };
    assert_eq!(
        e,
        "the component could not build the detector: memory cap of 32 MiB reached"
    );
    let over = format!("a:x{}", " ".repeat(bound + 1 - 3));
    assert_eq!(over.len(), bound + 1);
    let native = vmext_engine::Rule::from_query(&over)
        .unwrap_err()
        .to_string();
    let Err(through_component) = component(RuleSource::Query(over), Limits::default()) else {
        panic!("the component accepted a query over the bound")
    };
    assert_eq!(
        native,
        format!(
            "query syntax error: the query is {} bytes long; queries are limited to {bound} bytes (1 MiB) at {bound}",
            bound + 1
        )
    );
    assert!(through_component.ends_with(&native), "{through_component}");
}

/// The `configure` constructor: the hardened profile and exception items give, through the
/// component, byte for byte what the native engine gives, on every fixture.
#[test]
fn profiles_and_exceptions_through_the_component_equal_native() {
    let exceptions =
        std::fs::read_to_string(repo_root().join("fixtures/exceptions/known-good-automation.json"))
            .unwrap();
    let runtime = runtime(Artefact::Component);
    let mut suppressed = 0;
    let mut hardened_alerts = 0;
    for (profile, exceptions) in [
        (ProfileName::Hardened, None),
        (ProfileName::Faithful, Some(exceptions.clone())),
        (ProfileName::Hardened, Some(exceptions.clone())),
    ] {
        let options = DetectorOptions {
            profile,
            exceptions: exceptions.clone(),
        };
        let mut component = ComponentEvaluator::configured(
            runtime.clone(),
            RuleSource::Seed,
            options,
            Limits::default(),
        )
        .unwrap();
        let info = component.rule_info().unwrap();
        assert_eq!(
            info.exception_items,
            if exceptions.is_some() { 4 } else { 0 }
        );
        let detector = Detector::build(
            vmext_engine::RuleSource::Seed,
            profile,
            exceptions.as_deref(),
        )
        .unwrap();
        assert_eq!(info.query, detector.query().source());
        let mut native = NativeEvaluator::new(detector);
        for path in fixture_files() {
            let text = std::fs::read(&path).unwrap();
            for explain in [false, true] {
                let a = component.evaluate(&text, explain);
                assert_eq!(
                    a,
                    native.evaluate(&text, explain),
                    "{profile:?} {}",
                    path.display()
                );
                if let DocumentResult::Records(records) = &a
                    && !explain
                {
                    suppressed += records.iter().filter(|r| r.suppressed_by.is_some()).count();
                    if profile == ProfileName::Hardened && exceptions.is_none() {
                        hardened_alerts +=
                            records.iter().filter(|r| r.alert_json.is_some()).count();
                    }
                }
            }
        }
    }
    assert!(suppressed >= 9 + 9, "{suppressed}");
    assert!(hardened_alerts > 27, "{hardened_alerts}");
}

/// The guest's prefilter crosses the boundary whole (`prefilter`, WIT 0.5.0): for the seed rule
/// in each profile, with exceptions, and for rules of the user's own, the requirement the host
/// rebuilds from the component's terms is the engine's, and the host rejects exactly the
/// documents the guest itself answers `rejected` for: every fixture, and generated corpora of
/// both shapes with matches and near misses.
#[test]
fn the_guests_prefilter_runs_in_the_host_as_in_the_guest() {
    use host_test::generate::{CorpusShape, CorpusSpec, generate};
    let exceptions =
        std::fs::read_to_string(repo_root().join("fixtures/exceptions/known-good-automation.json"))
            .unwrap();
    let mut documents: Vec<Vec<u8>> = fixture_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for shape in [CorpusShape::Ecs, CorpusShape::Raw] {
        let spec = CorpusSpec {
            records: 400,
            shape,
            true_positive_rate: 0.1,
            near_miss_rate: 0.3,
            seed: 5,
        };
        let mut out = Vec::new();
        generate(&spec, &mut out).unwrap();
        documents.extend(out.split(|b| *b == b'\n').map(<[u8]>::to_vec));
    }
    let rules = [
        (RuleSource::Seed, ProfileName::Faithful, None),
        (RuleSource::Seed, ProfileName::Hardened, None),
        (RuleSource::Seed, ProfileName::Hardened, Some(exceptions)),
        (
            RuleSource::Query(r#"azure.activitylogs.identity.claims_initiated_by_user.name: *admin* or event.action: "MICROSOFT.COMPUTE/DISKS/BEGINGETACCESS/ACTION""#.into()),
            ProfileName::Faithful,
            None,
        ),
        (RuleSource::Query("not event.outcome: failure".into()), ProfileName::Faithful, None),
    ];
    let (mut rejected, mut admitted) = (0, 0);
    for (rule, profile, exceptions) in rules {
        let detector = Detector::build(rule.for_engine(), profile, exceptions.as_deref()).unwrap();
        let options = DetectorOptions {
            profile,
            exceptions,
        };
        let mut component = ComponentEvaluator::configured(
            runtime(Artefact::Component),
            rule,
            options,
            Limits::default(),
        )
        .unwrap();
        assert_eq!(
            component.prefilter(),
            Some(detector.prefilter()),
            "{profile:?}"
        );
        for text in &documents {
            let in_guest = component.evaluate(text, false) == DocumentResult::Rejected;
            assert_eq!(
                component.rejects(text),
                in_guest,
                "{profile:?}: {}",
                String::from_utf8_lossy(text)
            );
            if in_guest {
                rejected += 1;
            } else {
                admitted += 1;
            }
        }
    }
    // Both answers were exercised, many times each.
    assert!(
        rejected > 1000 && admitted > 500,
        "{rejected} rejected, {admitted} admitted"
    );
}

/// A profile or an exception list the engine refuses is an error value from `configure`.
#[test]
fn configure_errors_are_values() {
    let runtime = runtime(Artefact::Component);
    let configure = |rule: RuleSource, profile, exceptions: Option<&str>| {
        ComponentEvaluator::configured(
            runtime.clone(),
            rule,
            DetectorOptions {
                profile,
                exceptions: exceptions.map(str::to_owned),
            },
            Limits::default(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let other_rule = vmext_engine::SEED_RULE_TOML.replace(
        "e842d39d-ead1-48c6-97f1-6b055476c2f3",
        "00000000-0000-0000-0000-000000000000",
    );
    assert_eq!(
        configure(RuleSource::Toml(other_rule), ProfileName::Hardened, None).unwrap_err(),
        "the component refused the rule: the hardened profile is defined for rule \
         e842d39d-ead1-48c6-97f1-6b055476c2f3, not for rule 00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(
        configure(
            RuleSource::Seed,
            ProfileName::Faithful,
            Some("[{\"entries\":[]}]")
        )
        .unwrap_err(),
        "the component refused the rule: exceptions: exception item 1: `entries` is empty"
    );
    // A bare query in the hardened profile runs with its case-insensitive fields.
    let mut q = ComponentEvaluator::configured(
        runtime.clone(),
        RuleSource::Query("event.outcome:success".to_owned()),
        DetectorOptions {
            profile: ProfileName::Hardened,
            exceptions: None,
        },
        Limits::default(),
    )
    .unwrap();
    assert_eq!(
        verdicts(&q.evaluate(br#"{"event":{"outcome":"SUCCESS"}}"#, false)),
        "alert"
    );
}
