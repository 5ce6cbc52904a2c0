//! `validate` accepts exactly what `parse` accepts, failing with the same error at the same
//! offset, on mutations of realistic records.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;

const SEEDS: [&str; 5] = [
    r#"{"a":[1,-2.5e3,true,false,null,"x\"y\u00e9\ud83d\ude00"],"b":{"c":{}},"d":[]}"#,
    r#"{"operationName":"MICROSOFT.COMPUTE\/VIRTUALMACHINES","identity":{"claims":{"k.v":"\u0041"}}}"#,
    r#"[{"x":[[[]]]},"s",0,1e-7]"#,
    "  {\n \"records\": [ {\"a\": \"b\"} ]\n}\n",
    "{\"user\":\"Zo\u{eb} \u{1F600} \u{20AC} \u{4E2D}\",\"k\":\"\\u00e9\"}",
];

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let mut alphabet: Vec<u8> = br#"{}[]:,"\ u0123456789abcdefEe.+-tnlrsx"#.to_vec();
    // Bytes that start, continue or break UTF-8 sequences, and control characters.
    alphabet.extend([
        0x01, 0x1f, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef,
        0xf0, 0xf4, 0xf5, 0xff,
    ]);
    (
        proptest::sample::select(SEEDS.to_vec()),
        proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                proptest::sample::select(alphabet),
                0u8..3,
            ),
            0..4,
        ),
    )
        .prop_map(|(seed, edits)| {
            let mut bytes = seed.as_bytes().to_vec();
            for (at, byte, op) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, byte),
                    1 if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ if i < bytes.len() => bytes[i] = byte,
                    _ => bytes.push(byte),
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn validate_agrees_with_parse(text in mutated()) {
        let parsed = vmext_json::parse(&text).err();
        let validated = vmext_json::validate(&text).err();
        prop_assert_eq!(parsed, validated, "{}", String::from_utf8_lossy(&text));
    }
}

#[test]
fn validate_agrees_on_limits_and_encodings() {
    for text in [
        "[".repeat(600).into_bytes(),
        format!("{}{}", "[".repeat(512), "]".repeat(512)).into_bytes(),
        format!("{}{}", "{\"a\":".repeat(513), "}".repeat(513)).into_bytes(),
        b"{\"a\":\"\xff\"}".to_vec(),
        b"\"\\udc00\"".to_vec(),
        b"{\"a\":1}{\"b\":2}".to_vec(),
        Vec::new(),
    ] {
        assert_eq!(
            vmext_json::parse(&text).err(),
            vmext_json::validate(&text).err()
        );
    }
}

/// Every UTF-8 sequence of one and two bytes, and the boundaries of the longer ones, inside a
/// string and, for contrast, outside one: the validator's own UTF-8 check against the
/// standard library's, through the parser.
#[test]
fn validate_agrees_on_utf8_sequences() {
    let edges = [
        0x00, 0x1f, 0x20, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff,
    ];
    let mut sequences: Vec<Vec<u8>> = Vec::new();
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            sequences.push(vec![a, b]);
        }
    }
    for a in 0xe0..=0xffu8 {
        for b in 0..=255u8 {
            for c in edges {
                sequences.push(vec![a, b, c]);
                for d in [0x7f, 0x80, 0xbf, 0xc0] {
                    sequences.push(vec![a, b, c, d]);
                }
            }
        }
    }
    for seq in sequences {
        for (before, after) in [
            (&b"{\"k\":\""[..], &b"\"}"[..]),
            (b"[\"0123456789abc", b"\"]"),
            (b"[", b"]"),
        ] {
            let text = [before, &seq, after].concat();
            assert_eq!(
                vmext_json::parse(&text).err(),
                vmext_json::validate(&text).err(),
                "{text:?}"
            );
        }
    }
}
