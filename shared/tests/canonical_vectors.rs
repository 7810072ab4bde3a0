//! `vectors/canonical_json.json`: every case, case by case.

use caja_shared::canonical::{self, CanonicalError, Value};
use caja_shared::digest::Hash256;
use proptest::prelude::*;

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("vectors/canonical_json.json")).expect("vector file parses")
}

#[test]
fn every_case_canonicalizes_to_the_exact_bytes_and_hash() {
    let v = vectors();
    let cases = v["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 7);
    for (i, case) in cases.iter().enumerate() {
        let expected = case["canonical"].as_str().expect("canonical");
        // From the document as a value (serde_json keeps no order we rely on) ...
        let value = Value::from_serde(case["input"].clone()).expect("input converts");
        assert_eq!(value.to_canonical_string(), expected, "case {i}");
        // ... and from text, with whitespace and another key order.
        let pretty = serde_json::to_string_pretty(&case["input"]).expect("pretty");
        let parsed = canonical::parse(pretty.as_bytes()).expect("pretty parses");
        assert_eq!(parsed.to_canonical_string(), expected, "case {i} from text");
        // The canonical form is a fixed point.
        assert_eq!(
            canonical::canonicalize(expected.as_bytes()).expect("canonical parses"),
            expected.as_bytes(),
            "case {i} fixed point"
        );
        assert_eq!(
            Hash256::of(expected.as_bytes()).to_hex(),
            case["sha256"].as_str().expect("sha256"),
            "case {i} sha256"
        );
    }
}

#[test]
fn every_must_reject_text_is_rejected_for_its_reason() {
    let v = vectors();
    let cases = v["must_reject"].as_array().expect("must_reject");
    assert_eq!(cases.len(), 7);
    for case in cases {
        let why = case["why"].as_str().expect("why");
        let text = case["json_text"].as_str().expect("json_text");
        let err = canonical::parse(text.as_bytes()).expect_err(why);
        let right_reason = match why {
            w if w.contains("float") || w.contains("exponent") => {
                matches!(err, CanonicalError::Float { .. })
            }
            w if w.contains("integer") => matches!(err, CanonicalError::IntegerOutOfRange { .. }),
            w if w.contains("duplicate") => matches!(err, CanonicalError::DuplicateKey { .. }),
            w if w.contains("surrogate") => matches!(err, CanonicalError::LoneSurrogate { .. }),
            _ => false,
        };
        assert!(
            right_reason,
            "{why}: rejected for the wrong reason: {err:?}"
        );
    }
}

#[test]
fn every_must_reject_byte_string_is_rejected() {
    let v = vectors();
    let cases = v["must_reject_bytes"]
        .as_array()
        .expect("must_reject_bytes");
    assert_eq!(cases.len(), 1);
    for case in cases {
        let why = case["why"].as_str().expect("why");
        let bytes = hex::decode(case["bytes_hex"].as_str().expect("bytes_hex")).expect("hex");
        let err = canonical::parse(&bytes).expect_err(why);
        assert!(
            matches!(err, CanonicalError::InvalidUtf8 { offset: 9 }),
            "{why}: {err:?}"
        );
    }
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-canonical::MAX_SAFE_INTEGER..=canonical::MAX_SAFE_INTEGER).prop_map(Value::Int),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x20\"\\\\/\u{7f}é😀]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6).prop_map(|m| {
                Value::Object(canonical::Object::from_pairs(m).expect("btree keys are unique"))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// parse(canonical(x)) == x, and canonical output is a fixed point.
    #[test]
    fn canonical_round_trips_and_is_a_fixed_point(v in arb_value()) {
        let bytes = v.to_canonical_bytes();
        let back = canonical::parse(&bytes).expect("canonical output parses");
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(back.to_canonical_bytes(), bytes);
    }

    /// serde_json reads our canonical output as the same document (it is valid JSON).
    #[test]
    fn canonical_output_is_json_that_serde_agrees_with(v in arb_value()) {
        let text = v.to_canonical_string();
        let theirs: serde_json::Value = serde_json::from_str(&text).expect("serde parses");
        prop_assert_eq!(Value::from_serde(theirs).expect("integers only"), v);
    }

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = canonical::parse(&bytes);
    }

    /// Object keys come out in UTF-16 order whatever order they went in.
    #[test]
    fn keys_come_out_in_utf16_order(keys in prop::collection::hash_set(any::<String>(), 0..8)) {
        let obj = canonical::Object::from_pairs(keys.iter().map(|k| (k.clone(), Value::Null))).expect("unique");
        let out: Vec<&str> = obj.keys().collect();
        let mut sorted = out.clone();
        sorted.sort_by(|a, b| canonical::cmp_utf16(a, b));
        prop_assert_eq!(out, sorted);
    }
}
