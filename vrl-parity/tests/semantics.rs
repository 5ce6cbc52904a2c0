//! Each construct the translator supports, and the timestamp normalisation, against the engine
//! on generated input, in the VRL runtime.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use vmext_vrl::Translator;
use vmext_vrl::code::Code;
use vmext_vrl_parity::{Vrl, to_json, vector_event};
use vrl::value::Value;

/// SplitMix64, for reproducible inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: [&str; 8] = ["a", "b", "c", "a.b", "b.c", "a.b.c", "n", "ip"];

/// A random JSON value around the queried fields: nested objects, dotted keys, arrays (also of
/// objects), numbers, booleans, nulls, long and astral strings.
fn value(rng: &mut Rng, depth: usize) -> String {
    let long = "x".repeat(1030);
    let astral = format!("x{}", "😀".repeat(600));
    let at_limit = "x".repeat(1024);
    match rng.below(if depth > 2 { 9 } else { 12 }) {
        0 => "\"x\"".to_owned(),
        1 => "\"y\"".to_owned(),
        2 => format!(
            "\"{}\"",
            rng.pick(&[
                "X", "xy", "x*y", "xAyBz", "", "xx", "yx", "10", "9", "m", "1.5", "true", "null",
                "5"
            ])
        ),
        3 => rng.pick(&["5", "1.5", "-0", "10", "1e3", "0"]).to_owned(),
        4 => rng.pick(&["true", "false", "null"]).to_owned(),
        5 => format!("\"{}\"", rng.pick(&[&long, &astral, &at_limit])),
        6 => rng
            .pick(&["\"10.0.0.1\"", "\"::ffff:10.0.0.1\"", "\"192.0.2.7\""])
            .to_owned(),
        7 => "[]".to_owned(),
        8 => "\"\"".to_owned(),
        9 | 10 => object(rng, depth + 1),
        _ => {
            let n = rng.below(3) + 1;
            let items: Vec<String> = (0..n).map(|_| value(rng, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
    }
}

fn object(rng: &mut Rng, depth: usize) -> String {
    let n = rng.below(4) + if depth == 0 { 1 } else { 0 };
    let mut keys: Vec<&str> = (0..n).map(|_| rng.pick(&KEYS)).collect();
    keys.sort_unstable();
    keys.dedup();
    let members: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{k}\":{}", value(rng, depth)))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// Every construct the translator supports, on the fields of the generated documents.
const QUERIES: [&str; 40] = [
    "a:x",
    "a:X",
    "a.b:x",
    "a.b.c:x",
    "b.c:y",
    "a:*",
    "a.b:*",
    "a.b.c:*",
    "c:*",
    "a:x*",
    "a:*x",
    "a:*x*",
    "a:x*y",
    "a:x*y*z",
    "a:*x*y*",
    "a:x*A*B*z",
    "a.b:*y",
    r#"a:"x*y""#,
    r"a:x\*y",
    "a:(x or y)",
    "a:(x and y)",
    "a:(not x)",
    "a:(x or (y and not X))",
    "not a:x",
    "a:x and b:y",
    "a:x or b.c:y",
    "not (a:x or b:*)",
    "a:true",
    "a:5",
    "a:1.5",
    "a:null",
    "a:\"\"",
    "n > 5",
    "n >= 10",
    "n < m",
    "a <= x",
    "a:{ b:x }",
    "a:{ b:x and c:* }",
    "ip:10.*",
    "*",
];

/// The VRL for a query alone, deciding on the whole event into `.matched`.
fn query_program(query: &str) -> Vrl {
    let root = vmext_kql::parse(query).unwrap();
    let mut code = Code::new();
    code.line("_doc = get([.], [0]) ?? {}");
    let verdict = Translator::new(&mut code).node(&root, "_doc").unwrap();
    code.line(&format!(".matched = {verdict}"));
    let source = code.finish();
    Vrl::compile(&source).unwrap_or_else(|e| panic!("{query}: {e}\n{source}"))
}

#[test]
fn every_construct_decides_as_the_engine_does() {
    let mut rng = Rng(42);
    let mut docs: Vec<String> = (0..1500).map(|_| object(&mut rng, 0)).collect();
    // Shapes random documents rarely have.
    docs.extend(
        [
            r#"{"a":{"b":"x","c":1}}"#,
            r#"{"a":[{"b":"x"},{"c":"y"}]}"#,
            r#"{"a":[{"b":"x","c":"y"}]}"#,
            r#"{"a":["x","y"]}"#,
            r#"{"a":"xyz"}"#,
            r#"{"a":"xAyBz"}"#,
            r#"{"a":"xBA"}"#,
            r#"{"a":{"b.c":"y"},"a.b":{"c":"x"}}"#,
            r#"{"a.b.c":5}"#,
            r#"{"n":"10.5"}"#,
            r#"{"n":" 7 "}"#,
            r#"{"n":"inf"}"#,
            r#"{"n":"NaN"}"#,
        ]
        .map(str::to_owned),
    );
    let mut matched = 0;
    for query in QUERIES {
        let program = query_program(query);
        let parsed = vmext_kql::Query::parse(query).unwrap();
        let mut holds = 0;
        for doc in &docs {
            let event = vector_event(doc.as_bytes()).unwrap();
            let decoded = to_json(&event);
            let expected = parsed.matches(&vmext_json::parse(decoded.as_bytes()).unwrap());
            let out = program.run(event).unwrap();
            let Value::Object(members) = out else {
                panic!()
            };
            let got = members.get("matched") == Some(&Value::Boolean(true));
            assert_eq!(got, expected, "{query} on {decoded}");
            holds += usize::from(got);
        }
        // Every query is decided both ways on the generated documents, so each construct's
        // translation is exercised on matches and on misses.
        assert!(holds > 0, "{query} never matched");
        assert!(holds < docs.len() || query == "*", "{query} always matched");
        matched += holds;
    }
    eprintln!(
        "semantics: {} queries × {} documents, {matched} matches",
        QUERIES.len(),
        docs.len()
    );
}

/// Time texts around the two accepted forms, valid and not.
fn time_text(rng: &mut Rng) -> String {
    let n = |rng: &mut Rng, max: usize| rng.below(max);
    let mut t = if rng.below(2) == 0 {
        format!(
            "{:04}-{:02}-{:02}{}{}:{:02}{}{}{}",
            rng.pick(&["0", "1", "1969", "2000", "2024", "9999", "1900"])
                .parse::<u32>()
                .unwrap(),
            n(rng, 14),
            n(rng, 33),
            rng.pick(&["T", "t", " ", "_"]),
            rng.pick(&["0", "9", "09", "23", "24", "123"]),
            n(rng, 61),
            rng.pick(&["", ":00", ":59", ":60", ":5"]),
            rng.pick(&["", ".1", ".1234567", ",55", ".", ".9999"]),
            rng.pick(&[
                "", "Z", "z", "+01:00", "-05:30", "+0530", "+05", "+05:", "-99:99", "+1", "+05:3"
            ])
        )
    } else {
        format!(
            "{}/{}/{} {}:{:02}:{:02}{}",
            n(rng, 14),
            n(rng, 32),
            rng.pick(&["2007", "2020", "0000", "9999", "99"]),
            rng.pick(&["0", "1", "9", "12", "13", "23", "09"]),
            n(rng, 61),
            n(rng, 61),
            rng.pick(&[
                "",
                " AM",
                " PM",
                " am",
                " pM",
                " XM",
                " AM +01:00",
                " PM -12:30",
                " AM Z",
                " AM+01:00",
                " A"
            ])
        )
    };
    if rng.below(8) == 0 {
        t = format!(
            "{}{t}{}",
            rng.pick(&["", " ", "\t"]),
            rng.pick(&["", " ", "\n"])
        );
    }
    if rng.below(10) == 0 && !t.is_empty() {
        let at = rng.below(t.len());
        if t.is_char_boundary(at) {
            t.remove(at);
        }
    }
    t
}

#[test]
fn timestamps_normalise_as_the_engine_does() {
    let mut code = Code::new();
    code.line("_x = string(get(., [\"t\"]) ?? null) ?? \"\"");
    code.line(&vmext_vrl::timestamp_program("_x", "_out"));
    code.line(".out = _out");
    let program = Vrl::compile(&code.finish()).unwrap();
    let mut rng = Rng(7);
    let mut valid = 0;
    // An offset can carry the first and last days of the years 0 and 9999 into the years -1
    // and 10000, which the engine writes as `-001` and `10000`.
    let edges = [
        "0000-01-01T00:30:00+01:00",
        "0000-01-01T00:00:00.999+00:01",
        "0000-01-01T00:00:00Z",
        "1/1/0000 12:00:00 AM +99:59",
        "9999-12-31T23:00:00-05:00",
        "9999-12-31T23:59:59.999Z",
        "12/31/9999 11:59:59 PM -00:01",
        "1969-12-31T23:59:59.5-00:00",
    ];
    let random = std::iter::repeat_with(|| time_text(&mut rng)).take(4000);
    for t in edges.iter().map(|e| (*e).to_owned()).chain(random) {
        let expected = vmext_engine::timestamp::normalise(&t);
        let event =
            vector_event(format!("{{\"t\":{}}}", serde_json::to_string(&t).unwrap()).as_bytes())
                .unwrap();
        let Value::Object(out) = program.run(event).unwrap() else {
            panic!()
        };
        let got = match out.get("out") {
            Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        assert_eq!(got, expected, "{t:?}");
        valid += usize::from(expected.is_some());
    }
    assert!(valid > 500, "{valid} valid timestamps");
}
