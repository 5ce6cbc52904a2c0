//! The evaluator against Elastic's semantics, one rule per test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use vmext_kql::Query;

fn holds(query: &str, doc: &str) -> bool {
    let q = Query::parse(query).unwrap();
    let d = vmext_json::parse(doc.as_bytes()).unwrap();
    q.matches(&d)
}

#[test]
fn keyword_equality_is_exact_and_case_sensitive() {
    assert!(holds("a:Success", r#"{"a":"Success"}"#));
    assert!(!holds("a:Success", r#"{"a":"success"}"#));
    assert!(!holds("a:Success", r#"{"a":"Success "}"#));
    assert!(!holds("a:Succ", r#"{"a":"Success"}"#));
    assert!(holds(r#"a:"two words""#, r#"{"a":"two words"}"#));
    assert!(holds("a:two words", r#"{"a":"two words"}"#));
}

#[test]
fn wildcards_are_anchored_and_case_sensitive() {
    assert!(holds("a:*EXT*", r#"{"a":"/X/EXT/Y"}"#));
    assert!(!holds("a:*EXT*", r#"{"a":"/x/ext/y"}"#));
    assert!(holds("a:pre*", r#"{"a":"prefix"}"#));
    assert!(!holds("a:pre*", r#"{"a":"a prefix"}"#));
    assert!(holds(r"a:x\*y", r#"{"a":"x*y"}"#));
    assert!(!holds(r"a:x\*y", r#"{"a":"xzy"}"#));
    assert!(!holds("a:x?y", r#"{"a":"xzy"}"#));
    assert!(holds("a:x?y", r#"{"a":"x?y"}"#));
    assert!(holds(r#"a:"*""#, r#"{"a":"*"}"#));
    assert!(!holds(r#"a:"*""#, r#"{"a":"x"}"#));
    // `\n` in an unquoted value is a newline, and `*` spans newlines.
    assert!(holds("a:*\\n*", "{\"a\":\"x\\ny\"}"));
    assert!(holds("a:x*y", "{\"a\":\"x\\n/y\"}"));
}

#[test]
fn arrays_match_on_any_element_and_flatten_objects() {
    assert!(holds("a:x", r#"{"a":["y","x"]}"#));
    assert!(holds("a.b:x", r#"{"a":[{"b":"y"},{"b":"x"}]}"#));
    assert!(holds("a.b:x", r#"{"a":[[{"b":[["x"]]}]]}"#));
    assert!(holds("a:(x and y)", r#"{"a":["y","x"]}"#));
    assert!(!holds("a:(x and y)", r#"{"a":["x"]}"#));
    assert!(holds("a.b:x and a.c:y", r#"{"a":[{"b":"x"},{"c":"y"}]}"#));
}

#[test]
fn missing_null_and_empty_values() {
    for doc in [r#"{}"#, r#"{"a":null}"#, r#"{"a":[]}"#, r#"{"a":[null]}"#] {
        assert!(!holds("a:x", doc), "{doc}");
        assert!(!holds("a:*", doc), "{doc}");
        assert!(holds("not a:x", doc), "{doc}");
        assert!(holds("not a:*", doc), "{doc}");
    }
    assert!(holds("a:*", r#"{"a":""}"#));
    assert!(holds("a:*", r#"{"a":[null,"x"]}"#));
    assert!(holds(r#"a:"""#, r#"{"a":""}"#));
    // An object at the path exists when it holds a value, also when spelled with dotted keys.
    assert!(holds("a:*", r#"{"a":{"b":1}}"#));
    assert!(holds("a:*", r#"{"a.b":1}"#));
    assert!(holds("a.b:*", r#"{"a":{"b.c":[1]}}"#));
    assert!(!holds("a:*", r#"{"ab.c":1}"#));
    assert!(!holds("a:*", r#"{"a.b":null}"#));
    assert!(!holds("a:*", r#"{"a":{"b":null}}"#));
}

#[test]
fn dotted_keys_and_nested_objects_are_one_field() {
    for doc in [
        r#"{"a":{"b":{"c":"x"}}}"#,
        r#"{"a.b.c":"x"}"#,
        r#"{"a.b":{"c":"x"}}"#,
        r#"{"a":{"b.c":"x"}}"#,
    ] {
        assert!(holds("a.b.c:x", doc), "{doc}");
    }
    assert!(holds("a.b:(x and y)", r#"{"a.b":"x","a":{"b":"y"}}"#));
    assert!(!holds("a.b:x", r#"{"ab":"x"}"#));
}

#[test]
fn numbers_and_booleans_compare_as_their_text() {
    assert!(holds("k:01", r#"{"k":"01"}"#));
    assert!(holds("k:5", r#"{"k":5}"#));
    assert!(!holds("k:5", r#"{"k":5.0}"#));
    assert!(holds("k:1e2", r#"{"k":1e2}"#));
    assert!(holds("b:true", r#"{"b":true}"#));
    assert!(holds("b:true", r#"{"b":"true"}"#));
    assert!(holds(r#"b:"true""#, r#"{"b":true}"#));
    assert!(!holds("b:true", r#"{"b":"True"}"#));
}

#[test]
fn values_over_ignore_above_are_not_indexed() {
    let exact = "x".repeat(1024);
    let long = "x".repeat(1025);
    assert!(holds("a:x*", &format!(r#"{{"a":"{exact}"}}"#)));
    assert!(!holds("a:x*", &format!(r#"{{"a":"{long}"}}"#)));
    assert!(!holds("a:*", &format!(r#"{{"a":"{long}"}}"#)));
    // Counted in UTF-16 units: 600 astral characters are 1200 units.
    let astral = "\u{1F600}".repeat(600);
    assert!(!holds("a:*", &format!(r#"{{"a":"{astral}"}}"#)));
}

#[test]
fn ip_fields_compare_addresses_and_cidr() {
    assert!(holds(
        "source.ip:10.0.0.0/8",
        r#"{"source":{"ip":"10.1.2.3"}}"#
    ));
    assert!(!holds(
        "source.ip:10.0.0.0/8",
        r#"{"source":{"ip":"11.1.2.3"}}"#
    ));
    assert!(holds(
        r#"destination.ip:"::1""#,
        r#"{"destination.ip":"0:0:0:0:0:0:0:1"}"#
    ));
    assert!(holds(
        r#"destination.ip:"FE80::/10""#,
        r#"{"destination.ip":"fe80::1"}"#
    ));
    assert!(holds("ip:192.0.2.1", r#"{"ip":"::ffff:192.0.2.1"}"#));
    assert!(!holds(
        "source.ip:10.0.0.0/8",
        r#"{"source":{"ip":"not an ip"}}"#
    ));
    let q = Query::parse("source.ip:nonsense").unwrap();
    assert_eq!(q.warnings().len(), 1);
}

#[test]
fn ranges_compare_numbers_or_text() {
    assert!(holds("n >= 10", r#"{"n":10}"#));
    assert!(holds("n > 9", r#"{"n":"10"}"#));
    assert!(!holds("n < 9", r#"{"n":10}"#));
    assert!(holds("s < b", r#"{"s":"a"}"#));
    assert!(holds(
        r#"t >= "2026-01-01""#,
        r#"{"t":"2026-02-01T00:00:00Z"}"#
    ));
    assert!(!holds("n > 1", r#"{}"#));
}

#[test]
fn nested_queries_hold_within_one_object() {
    let doc = r#"{"items":[{"name":"a","n":1},{"name":"b","n":5}]}"#;
    assert!(holds("items:{ name:b and n > 2 }", doc));
    assert!(!holds("items:{ name:a and n > 2 }", doc));
    // Without the nested scope the same clauses mix objects.
    assert!(holds("items.name:a and items.n > 2", doc));
}

#[test]
fn field_name_patterns_and_free_text() {
    assert!(holds("a.*:x", r#"{"a":{"b":"y","c":"x"}}"#));
    assert!(!holds("a.*:x", r#"{"ab":"x"}"#));
    assert!(holds("*:x", r#"{"q":{"r":["x"]}}"#));
    assert!(holds("x", r#"{"q":"x"}"#));
    assert!(!holds("x", r#"{"q":"xy"}"#));
    assert!(holds("*", r#"{}"#));
    assert!(holds("", r#"{}"#));
    let q = Query::parse("free text and a:b").unwrap();
    assert_eq!(q.warnings().len(), 1);
}

#[test]
fn boolean_structure() {
    let doc = r#"{"a":"1","b":"2"}"#;
    assert!(holds("a:1 and b:2", doc));
    assert!(holds("a:0 or b:2", doc));
    assert!(!holds("a:1 and not b:2", doc));
    assert!(holds("a:(0 or 1) and b:(not 3)", doc));
    assert!(holds("a:1 or b:0 and c:0", doc));
    assert!(!holds("(a:1 or b:0) and c:0", doc));
}

#[test]
fn explanations_report_values_and_clauses() {
    let q = Query::parse("a:x and b:(y or z)").unwrap();
    let d = vmext_json::parse(br#"{"a":"x","b":["q","z"]}"#).unwrap();
    let e = q.explain(&d);
    assert!(e.held);
    assert_eq!(e.children.len(), 2);
    assert_eq!(e.children[0].clause, "a:x");
    assert_eq!(e.children[1].seen, vec!["q", "z"]);
    assert_eq!(e.children[1].children.len(), 2);
    assert!(!e.children[1].children[0].held);
    assert!(e.children[1].children[1].held);
    let outline = e.to_outline();
    assert!(outline.contains("✓ b:(y or z)   seen: q, z"), "{outline}");
}
