//! The parser against Kibana's grammar: the rule corpus, invalid queries, and grammar details.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use vmext_kql::ast::{LiteralKind, Node, Piece, ValueList};
use vmext_kql::parse;

/// Every kuery query of Elastic's detection-rules repository parses (Kibana accepts all 792).
#[test]
fn parses_all_792_detection_rule_queries() {
    let Some(path) = vmext_test_support::shared_path("data/detection-rules-kuery/queries.jsonl")
    else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let mut count = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let record = vmext_json::parse(line.as_bytes()).unwrap();
        let query = record.get("query").and_then(|q| q.as_str()).unwrap();
        let rule = record.get("path").and_then(|q| q.as_str()).unwrap();
        count += 1;
        match parse(query) {
            Ok(tree) => {
                // And each prints back to a query with the same tree.
                let printed = tree.to_string();
                let reparsed = parse(&printed)
                    .unwrap_or_else(|e| panic!("{rule}: printed form {printed:?} fails: {e}"));
                assert_eq!(
                    reparsed.without_spans(),
                    tree.without_spans(),
                    "{rule}: round trip via {printed:?}"
                );
            }
            Err(e) => failures.push(format!("{rule}: {e}")),
        }
    }
    assert_eq!(count, 792, "the corpus has 792 queries");
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Invalid queries fail at the right place with a message a person can act on.
#[test]
fn rejects_invalid_queries_with_located_messages() {
    let cases: &[(&str, usize, &str)] = &[
        ("event.outcome:", 14, "expected a value after `:`"),
        ("a:b and ", 8, "expected"),
        ("a:(b or c", 9, "expected `)`"),
        ("a:{ b:c", 7, "expected `}`"),
        ("a:\"unterminated", 2, "unterminated quoted string"),
        ("a:<5", 2, "expected a value after `:`"),
        ("a < ", 4, "expected a value after the range operator"),
        ("not not a:b", 4, "expected"),
        ("a:b\\x", 3, "invalid escape"),
        ("(a:b", 4, "expected `)`"),
        ("a:b)", 3, "expected"),
        ("a:x not y", 4, "expected"),
        ("a:b and )", 8, "expected"),
    ];
    for (query, offset, message) in cases {
        let err = parse(query).expect_err(query);
        assert!(
            err.message.contains(message),
            "{query:?}: message {:?} should contain {message:?}",
            err.message
        );
        assert_eq!(err.offset, *offset, "{query:?}: {err}");
    }
    let e = parse("process.name:cmd.exe and process.args:").unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected a value after `:`, found end of input at 38"
    );
}

/// Queries the fuzzer found that once printed to something that parsed differently.
#[test]
fn printing_round_trips_fuzzer_findings() {
    for query in [
        // A field name ending in ` or`, followed by a range operator.
        "a.b\n    *X* or>    *Y* or\n    */DSC/* or\n    *Z",
        "x or>1",
        "f:a and",
        "f:(b not)",
        // A field name of a character JavaScript's trim removes: empty, but unquoted.
        "\u{b}:datre.d\nDat",
        "\u{b}:\u{b}",
        // Typed words as field names, and match-all in every position.
        "true:x and null:y and false < 3",
        "not *",
        "a:b and (*)",
        "*",
        "",
    ] {
        let tree = parse(query).unwrap();
        let printed = tree.to_string();
        let again = parse(&printed).unwrap_or_else(|e| panic!("{query:?} -> {printed:?}: {e}"));
        assert_eq!(
            again.without_spans(),
            tree.without_spans(),
            "{query:?} -> {printed:?}"
        );
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}a:b{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = parse(&deep).unwrap_err();
    assert!(err.message.contains("deeper than"), "{err}");
    let ok = format!("{}a:b{}", "(".repeat(100), ")".repeat(100));
    assert!(parse(&ok).is_ok());
}

fn text(kind: &LiteralKind) -> &str {
    match kind {
        LiteralKind::Text(t) => t,
        other => panic!("not text: {other:?}"),
    }
}

fn one(node: &Node) -> (&str, &LiteralKind) {
    match node {
        Node::Match(m) => match &m.values {
            ValueList::One(l) => (m.field.name.as_str(), &l.kind),
            other => panic!("not one value: {other:?}"),
        },
        other => panic!("not a match: {other:?}"),
    }
}

#[test]
fn precedence_or_and_not() {
    let tree = parse("a:1 or b:2 and not c:3").unwrap();
    let Node::Or(items) = tree else { panic!() };
    assert_eq!(items.len(), 2);
    let Node::And(inner) = &items[1] else {
        panic!()
    };
    assert!(matches!(inner[1], Node::Not(_)));
    // Keywords are case-insensitive.
    assert!(matches!(parse("a:x OR n:1").unwrap(), Node::Or(_)));
    assert!(matches!(parse("NOT a:z").unwrap(), Node::Not(_)));
    assert!(matches!(parse("a:x AnD b:y").unwrap(), Node::And(_)));
    // Whitespace includes tabs, newlines and U+00A0.
    assert!(matches!(parse("a:x\u{a0}or\tb:y").unwrap(), Node::Or(_)));
}

#[test]
fn unquoted_values_follow_kibana() {
    let tree = parse("sp:hello world").unwrap();
    assert_eq!(text(one(&tree).1), "hello world");
    // `a:x or y`: `y` is free text, not a value of `a`.
    let Node::Or(items) = parse("a:x or y").unwrap() else {
        panic!()
    };
    assert!(matches!(&items[1], Node::FreeText(_)));
    // Escapes.
    let tree = parse(r"a:\(x\)\:\<\>\*\{\}\\\u0057\t\or").unwrap();
    assert_eq!(text(one(&tree).1), "(x):<>*{}\\W\tor");
    // `?` and other punctuation are plain.
    let tree = parse("a:/-=?!',[]|&+~@#$%.").unwrap();
    assert_eq!(text(one(&tree).1), "/-=?!',[]|&+~@#$%.");
    // Typed literals; numbers stay text.
    assert_eq!(one(&parse("b:true").unwrap()).1, &LiteralKind::Bool(true));
    assert_eq!(one(&parse("b:null").unwrap()).1, &LiteralKind::Null);
    assert_eq!(text(one(&parse("k:01").unwrap()).1), "01");
    // Trimmed.
    assert_eq!(text(one(&parse("(a: x  )").unwrap()).1), "x");
    // A value ends before ` or `, ` and ` and `not `.
    assert!(matches!(parse("a:x and b:y").unwrap(), Node::And(_)));
    assert_eq!(text(one(&parse("a:notebook").unwrap()).1), "notebook");
}

#[test]
fn quoted_values_follow_kibana() {
    let tree = parse(r#"a:"x \"y\" \\ \t \u0041 \q *""#).unwrap();
    assert_eq!(text(one(&tree).1), "x \"y\" \\ \t A \\q *");
    // A star in quotes is literal; `a:"*"` is a term, not exists.
    let tree = parse(r#"a:"*""#).unwrap();
    assert_eq!(text(one(&tree).1), "*");
}

#[test]
fn wildcards_exists_ranges_nested_fields() {
    let tree = parse(r"a:*VM\*X*").unwrap();
    let (_, kind) = one(&tree);
    assert_eq!(
        kind,
        &LiteralKind::Wildcard(vec![Piece::Star, Piece::Text("VM*X".into()), Piece::Star])
    );
    let tree = parse("a:*").unwrap();
    let Node::Match(m) = &tree else { panic!() };
    assert!(matches!(&m.values, ValueList::One(l) if l.is_match_any()));
    assert!(matches!(parse("a >= 5").unwrap(), Node::Range(_)));
    assert!(matches!(parse("a<5").unwrap(), Node::Range(_)));
    let Node::Nested(n) = parse("items:{ name:x and price > 3 }").unwrap() else {
        panic!()
    };
    assert_eq!(n.field.name, "items");
    let Node::Match(m) = parse("a.*:x").unwrap() else {
        panic!()
    };
    assert!(m.field.pattern.is_some());
    let Node::Match(m) = parse(r#""a b":c"#).unwrap() else {
        panic!()
    };
    assert_eq!(m.field.name, "a b");
    assert!(matches!(parse("").unwrap(), Node::MatchAll));
    assert!(matches!(parse("  *  ").unwrap(), Node::MatchAll));
    let Node::Match(m) = parse("f:(a and (b or not c))").unwrap() else {
        panic!()
    };
    assert!(matches!(m.values, ValueList::And(_)));
}
