//! `validate` accepts exactly what `parse` accepts, failing with the same error at the same
//! offset, on mutations of realistic records.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;

const SEEDS: [&str; 4] = [
    r#"{"a":[1,-2.5e3,true,false,null,"x\"y\u00e9\ud83d\ude00"],"b":{"c":{}},"d":[]}"#,
    r#"{"operationName":"MICROSOFT.COMPUTE\/VIRTUALMACHINES","identity":{"claims":{"k.v":"\u0041"}}}"#,
    r#"[{"x":[[[]]]},"s",0,1e-7]"#,
    "  {\n \"records\": [ {\"a\": \"b\"} ]\n}\n",
];

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = br#"{}[]:,"\ u0123456789abcdefEe.+-tnlrsx"#.to_vec();
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
