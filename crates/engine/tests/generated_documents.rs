//! Properties over generated documents.
//!
//! Documents are generated around the rule's fields (right and wrong values, case variants,
//! arrays, `null`, dotted keys, both record shapes), then written as JSON with every character
//! of every string randomly spelled plainly, as `\uXXXX` (either hex case), or `\/` for `/`.
//!
//! * The literal prefilter never rejects a record the rule matches.
//! * The engine agrees with a deliberately naive reference evaluator of the seed rule, written
//!   here from the semantics notes with none of the engine's code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use vmext_engine::{Detector, Outcome, Verdict};
use vmext_test_support::SplitMix64;

/// A JSON tree for generation.
#[derive(Debug, Clone)]
enum T {
    S(String),
    N(i64),
    Null,
    A(Vec<T>),
    O(Vec<(String, T)>),
}

/// Writes `t` with random spellings.
struct Writer {
    rng: SplitMix64,
    out: String,
}

impl Writer {
    fn next(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let roll = self.next() % 4;
            match c {
                '"' | '\\' if roll < 2 => {
                    self.out.push('\\');
                    self.out.push(c);
                }
                '/' if roll == 0 => self.out.push_str("\\/"),
                c if (c as u32) < 0x20 || roll == 3 || c == '"' || c == '\\' => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        if self.next().is_multiple_of(2) {
                            self.out.push_str(&format!("\\u{:04x}", u));
                        } else {
                            self.out.push_str(&format!("\\u{:04X}", u));
                        }
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn write(&mut self, t: &T) {
        match t {
            T::S(s) => self.string(s),
            T::N(n) => self.out.push_str(&n.to_string()),
            T::Null => self.out.push_str("null"),
            T::A(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.write(item);
                }
                self.out.push(']');
            }
            T::O(members) => {
                self.out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.string(k);
                    self.out.push(':');
                    self.write(v);
                }
                self.out.push('}');
            }
        }
    }
}

fn spelled(t: &T, seed: u64) -> String {
    let mut w = Writer {
        rng: SplitMix64(seed),
        out: String::new(),
    };
    w.write(t);
    w.out
}

const OPERATION: &str = "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE";

fn value(options: Vec<&'static str>) -> impl Strategy<Value = T> {
    let strings: Vec<T> = options.into_iter().map(|s| T::S(s.to_owned())).collect();
    prop_oneof![
        6 => proptest::sample::select(strings.clone()),
        1 => Just(T::Null),
        1 => proptest::collection::vec(proptest::sample::select(strings), 0..3).prop_map(T::A),
    ]
}

fn operation() -> impl Strategy<Value = T> {
    value(vec![
        OPERATION,
        OPERATION,
        "microsoft.compute/virtualmachines/extensions/write",
        "Microsoft.Compute/virtualMachineScaleSets/extensions/write",
        "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/DELETE",
        "Microsoft.Compute/virtualMachines/runCommand/action",
        "MICROSOFT.HYBRIDCOMPUTE/MACHINES/EXTENSIONS/WRITE",
        "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/VIRTUALMACHINES/RUNCOMMANDS/WRITE",
    ])
}

/// A request body naming an extension handler (publisher and type), as an object or as a
/// JSON string, or none.
fn request_body() -> impl Strategy<Value = Option<T>> {
    let pairs = vec![
        ("Microsoft.Azure.Extensions", "CustomScript"),
        ("microsoft.cplat.core", "runcommandhandlerlinux"),
        ("Microsoft.Azure.Monitor", "AzureMonitorLinuxAgent"),
        ("Contoso", "CustomScript"),
    ];
    (proptest::sample::select(pairs), 0u8..3).prop_map(|((publisher, kind), how)| {
        let properties = T::O(vec![
            ("publisher".to_owned(), T::S(publisher.to_owned())),
            ("type".to_owned(), T::S(kind.to_owned())),
        ]);
        match how {
            0 => None,
            1 => Some(T::O(vec![("properties".to_owned(), properties)])),
            _ => Some(T::S(format!(
                r#"{{"properties":{{"publisher":"{publisher}","type":"{kind}"}}}}"#
            ))),
        }
    })
}

fn principal() -> impl Strategy<Value = T> {
    value(vec!["User", "User", "user", "Group", "ServicePrincipal"])
}

fn resource_id() -> impl Strategy<Value = T> {
    let prefix = "/SUBSCRIPTIONS/00000000-0000-4000-8000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM1/EXTENSIONS/";
    value(vec![
        "CUSTOMSCRIPTEXTENSION",
        "VMACCESSAGENT",
        "RUNCOMMANDLINUX",
        "DSC/X",
        "dsc",
        "customscriptextension",
        "AZUREMONITORAGENT",
        "RÉSUMÉ/\"Q\"\\",
        "enablevmaccess",
        "BOOTSTRAP",
    ])
    .prop_map(move |t| match t {
        T::S(s) => T::S(format!("{prefix}{s}")),
        T::A(items) => T::A(
            items
                .into_iter()
                .map(|i| match i {
                    T::S(s) => T::S(format!("{prefix}{s}")),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    })
}

/// An ECS document, with each rule field nested, dotted, or missing.
fn ecs_doc() -> impl Strategy<Value = T> {
    (
        operation(),
        principal(),
        value(vec!["success", "Success", "SUCCESS", "failure"]),
        resource_id(),
        value(vec!["azure.activitylogs", "azure.platformlogs"]),
        proptest::bits::u8::ANY,
        request_body(),
    )
        .prop_map(|(op, principal, outcome, id, dataset, layout, body)| {
            let mut members = Vec::new();
            if let Some(body) = body {
                let key = if layout & (1 << 4) != 0 {
                    "azure.activitylogs.properties.requestBody"
                } else {
                    "azure.activitylogs.properties.requestbody"
                };
                members.push((key.to_owned(), body));
            }
            let dotted = |bit: u8| layout & (1 << bit) != 0;
            if dotted(0) {
                members.push(("azure.activitylogs.operation_name".to_owned(), op));
            } else {
                members.push((
                    "azure".to_owned(),
                    T::O(vec![(
                        "activitylogs".to_owned(),
                        T::O(vec![("operation_name".to_owned(), op)]),
                    )]),
                ));
            }
            if dotted(1) {
                members.push((
                    "azure.activitylogs.identity.authorization.evidence.principal_type".to_owned(),
                    principal,
                ));
            } else {
                members.push((
                    "azure.activitylogs.identity".to_owned(),
                    T::O(vec![(
                        "authorization".to_owned(),
                        T::A(vec![T::O(vec![(
                            "evidence".to_owned(),
                            T::O(vec![("principal_type".to_owned(), principal)]),
                        )])]),
                    )]),
                ));
            }
            if !dotted(2) {
                members.push((
                    "event".to_owned(),
                    T::O(vec![("outcome".to_owned(), outcome)]),
                ));
            } else {
                members.push(("event.outcome".to_owned(), outcome));
            }
            members.push(("azure.resource.id".to_owned(), id));
            if dotted(3) {
                members.push((
                    "data_stream".to_owned(),
                    T::O(vec![("dataset".to_owned(), dataset)]),
                ));
            }
            members.push(("event.duration".to_owned(), T::N(i64::from(layout))));
            T::O(members)
        })
}

/// A raw export record, alone or in an envelope.
fn raw_doc() -> impl Strategy<Value = T> {
    (
        operation(),
        principal(),
        value(vec!["Success", "success", "SUCCESS", "Start", "Failure"]),
        resource_id(),
        value(vec!["Administrative", "administrative", "AuditEvent"]),
        any::<bool>(),
        request_body(),
    )
        .prop_map(|(op, principal, result, id, category, envelope, body)| {
            let mut record = vec![
                ("time".to_owned(), T::S("2026-01-01T00:00:00Z".to_owned())),
                ("operationName".to_owned(), op),
                ("resultType".to_owned(), result),
                ("resourceId".to_owned(), id),
                ("category".to_owned(), category),
                (
                    "identity".to_owned(),
                    T::O(vec![(
                        "authorization".to_owned(),
                        T::O(vec![(
                            "evidence".to_owned(),
                            T::O(vec![("principalType".to_owned(), principal)]),
                        )]),
                    )]),
                ),
            ];
            if let Some(body) = body {
                record.push((
                    "properties".to_owned(),
                    T::O(vec![("requestbody".to_owned(), body)]),
                ));
            }
            let record = T::O(record);
            if envelope {
                T::O(vec![(
                    "records".to_owned(),
                    T::A(vec![T::O(vec![]), record]),
                )])
            } else {
                record
            }
        })
}

fn alerts(detector: &Detector, text: &[u8]) -> usize {
    match detector.explain(text) {
        Ok(results) => results
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Alert(_)))
            .count(),
        Err(_) => 0,
    }
}

/// The prefilter rebuilt from its terms, as a component's host rebuilds it, answers as the
/// detector's own.
fn rebuilt_prefilter_answers_alike(detector: &Detector, text: &str) -> Result<(), TestCaseError> {
    let rebuilt = vmext_engine::Requirement::from_terms(&detector.prefilter().terms());
    prop_assert_eq!(
        rebuilt.map(|r| r.admits(text.as_bytes())),
        Ok(detector.may_match(text.as_bytes())),
        "{}",
        detector.query().source()
    );
    Ok(())
}

/// The prefilter never rejects a record the detector alerts on, and the fast path (prefilter,
/// then evaluation) gives the same alerts as the explained path. The prefilter rebuilt from its
/// terms answers as the detector's own.
fn prefilter_is_sound(detector: &Detector, text: &str) -> Result<(), TestCaseError> {
    rebuilt_prefilter_answers_alike(detector, text)?;
    let alerted = alerts(detector, text.as_bytes());
    if alerted > 0 {
        prop_assert!(
            detector.may_match(text.as_bytes()),
            "rejected a match: {text}"
        );
    }
    let fast = match detector.evaluate(text.as_bytes()) {
        Ok(Outcome::Evaluated(r)) => r
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Alert(_)))
            .count(),
        _ => 0,
    };
    prop_assert_eq!(fast, alerted);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn seed_rule_prefilter_admits_every_matching_record(
        doc in prop_oneof![ecs_doc(), raw_doc()],
        seed in any::<u64>(),
    ) {
        prefilter_is_sound(&Detector::seed(), &spelled(&doc, seed))?;
    }

    /// The hardened profile's prefilter folds ASCII case: it must still admit every record the
    /// profile alerts on, in any case and any escaped spelling.
    #[test]
    fn hardened_prefilter_admits_every_matching_record(
        doc in prop_oneof![ecs_doc(), raw_doc()],
        seed in any::<u64>(),
    ) {
        let detector = Detector::seed_in(vmext_engine::ProfileName::Hardened);
        prefilter_is_sound(&detector, &spelled(&doc, seed))?;
    }
}

// ---------------------------------------------------------------------------------------------
// The naive reference: every (dotted path, text) leaf by plain recursion, then the seed rule's
// clauses as the notes state them.

/// Every indexed leaf as (dotted path, text): arrays flattened, nulls skipped, strings longer
/// than 1024 UTF-16 units left out.
fn leaves(t: &T, path: &str, out: &mut Vec<(String, String)>) {
    match t {
        T::S(s) if s.encode_utf16().count() <= 1024 => out.push((path.to_owned(), s.clone())),
        T::S(_) | T::Null => {}
        T::N(n) => out.push((path.to_owned(), n.to_string())),
        T::A(items) => items.iter().for_each(|i| leaves(i, path, out)),
        T::O(members) => {
            for (k, v) in members {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(v, &p, out);
            }
        }
    }
}

fn reference_ecs(doc: &T) -> bool {
    let mut all = Vec::new();
    leaves(doc, "", &mut all);
    let values = |field: &str| -> Vec<&str> {
        all.iter()
            .filter(|(p, _)| p == field)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let datasets = values("data_stream.dataset");
    let dataset = if datasets.is_empty() {
        all.iter()
            .any(|(p, _)| p.starts_with("azure.activitylogs."))
    } else {
        datasets.contains(&"azure.activitylogs")
    };
    let families = [
        "VMACCESSAGENT",
        "CUSTOMSCRIPTEXTENSION",
        "RUNCOMMANDWINDOWS",
        "RUNCOMMANDLINUX",
        "/DSC/",
        "MICROSOFTMONITORINGAGENT",
    ];
    dataset
        && values("azure.activitylogs.operation_name").contains(&OPERATION)
        && values("azure.activitylogs.identity.authorization.evidence.principal_type")
            .contains(&"User")
        && values("event.outcome")
            .iter()
            .any(|v| *v == "success" || *v == "Success")
        && values("azure.resource.id")
            .iter()
            .any(|v| families.iter().any(|f| v.contains(f)))
}

/// A raw record as Elastic's pipeline maps the rule's fields.
fn reference_raw(doc: &T) -> bool {
    let T::O(members) = doc else { return false };
    let get = |k: &str| members.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let category = matches!(get("category"), Some(T::S(c)) if [
        "Administrative", "Security", "ServiceHealth", "Alert", "Recommendation", "Policy", "Autoscale", "ResourceHealth",
    ].contains(&c.as_str()));
    let outcome = matches!(get("resultType"), Some(T::S(r)) if r.to_lowercase() == "success");
    let mut ecs = vec![(
        "event.outcome".to_owned(),
        T::S(if outcome { "success" } else { "" }.to_owned()),
    )];
    if category {
        ecs.push((
            "data_stream.dataset".to_owned(),
            T::S("azure.activitylogs".to_owned()),
        ));
    }
    if let Some(op) = get("operationName") {
        ecs.push(("azure.activitylogs.operation_name".to_owned(), op.clone()));
    }
    if let Some(id) = get("resourceId") {
        ecs.push(("azure.resource.id".to_owned(), id.clone()));
    }
    if let Some(T::O(identity)) = get("identity")
        && let Some((_, T::O(auth))) = identity.iter().find(|(k, _)| k == "authorization")
        && let Some((_, T::O(evidence))) = auth.iter().find(|(k, _)| k == "evidence")
        && let Some((_, principal)) = evidence.iter().find(|(k, _)| k == "principalType")
    {
        ecs.push((
            "azure.activitylogs.identity.authorization.evidence.principal_type".to_owned(),
            principal.clone(),
        ));
    }
    category && reference_ecs(&T::O(ecs))
}

fn reference(doc: &T) -> Vec<bool> {
    match doc {
        T::O(members) if members.len() == 1 && members[0].0 == "records" => match &members[0].1 {
            T::A(items) => items.iter().map(reference_record).collect(),
            _ => vec![false],
        },
        other => vec![reference_record(other)],
    }
}

fn reference_record(doc: &T) -> bool {
    let T::O(members) = doc else { return false };
    let raw_keys = [
        "operationName",
        "resourceId",
        "resultType",
        "category",
        "callerIpAddress",
        "correlationId",
    ];
    let ecs_key = |k: &str| {
        ["azure", "@timestamp", "data_stream", "event"]
            .iter()
            .any(|m| k == *m || k.starts_with(&format!("{m}.")))
    };
    let raw = !members.iter().any(|(k, _)| ecs_key(k))
        && members.iter().any(|(k, _)| raw_keys.contains(&k.as_str()));
    if raw {
        reference_raw(doc)
    } else {
        reference_ecs(doc)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn engine_agrees_with_the_naive_reference(
        doc in prop_oneof![ecs_doc(), raw_doc()],
        seed in any::<u64>(),
    ) {
        let text = spelled(&doc, seed);
        let engine: Vec<bool> = Detector::seed()
            .explain(text.as_bytes())
            .unwrap()
            .iter()
            .map(|e| matches!(e.verdict, Verdict::Alert(_)))
            .collect();
        prop_assert_eq!(engine, reference(&doc), "{}", text);
    }
}

/// Random queries over a small vocabulary, and random documents from the same vocabulary, so
/// that matches are frequent.
fn small_query() -> impl Strategy<Value = String> {
    let field = proptest::sample::select(vec!["a", "b", "a.c", "d"]);
    let value = proptest::sample::select(vec![
        "x",
        "X/y",
        "\"q\\\\z\"",
        "*x*",
        "x*",
        "*/y",
        "\"é\"",
        "1",
        "true",
        "*",
    ]);
    let leaf = (field, value).prop_map(|(f, v)| format!("{f}:{v}"));
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn small_doc() -> impl Strategy<Value = T> {
    let scalar = prop_oneof![
        proptest::sample::select(vec!["x", "X/y", "q\\z", "xx", "é", "a/y", "true"])
            .prop_map(|s| T::S(s.to_owned())),
        Just(T::N(1)),
        Just(T::Null),
    ];
    let value = prop_oneof![
        3 => scalar.clone(),
        1 => proptest::collection::vec(scalar, 0..3).prop_map(T::A),
    ];
    proptest::collection::vec(
        (
            proptest::sample::select(vec!["a", "b", "a.c", "d", "e"]),
            value,
        ),
        0..5,
    )
    .prop_map(|members| {
        T::O(
            members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_query_prefilter_admits_every_matching_record(
        query in small_query(),
        doc in small_doc(),
        seed in any::<u64>(),
    ) {
        let detector = Detector::new(vmext_engine::Rule::from_query(&query).unwrap());
        let text = spelled(&doc, seed);
        if alerts(&detector, text.as_bytes()) > 0 {
            prop_assert!(detector.may_match(text.as_bytes()), "{query} rejected {text}");
        }
        rebuilt_prefilter_answers_alike(&detector, &text)?;
    }
}
