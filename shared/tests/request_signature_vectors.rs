//! `vectors/request_signature.json`: every case, case by case.

use caja_shared::digest::Hash256;
use caja_shared::key::DeviceKey;
use caja_shared::request::{
    sign_request, string_to_sign, verify_request, RequestAuthError, RequestParts,
};

#[test]
fn every_case_signs_and_verifies_exactly() {
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/request_signature.json"))
        .expect("vector file parses");
    let key = DeviceKey::from_hex(v["device_key_hex"].as_str().expect("key")).expect("key hex");
    let cases = v["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 2);
    for case in cases {
        let method = case["method"].as_str().expect("method");
        let parts = RequestParts {
            method,
            path_and_query: case["path_and_query"].as_str().expect("path"),
            timestamp_ms: case["timestamp_ms"].as_i64().expect("ts"),
            nonce: case["nonce"].as_str().expect("nonce"),
            body: case["body"].as_str().expect("body").as_bytes(),
        };
        assert_eq!(
            Hash256::of(parts.body).to_hex(),
            case["body_sha256"].as_str().expect("body_sha256"),
            "{method} body hash"
        );
        assert_eq!(
            string_to_sign(&parts),
            case["string_to_sign"].as_str().expect("sts"),
            "{method} string to sign"
        );
        let sig = case["signature"].as_str().expect("signature");
        assert_eq!(
            sign_request(&key, &parts).to_hex(),
            sig,
            "{method} signature"
        );
        verify_request(&key, &parts, sig).expect("verifies");
        // One changed byte anywhere breaks it.
        let mut flipped = sig.to_owned().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            verify_request(&key, &parts, std::str::from_utf8(&flipped).expect("ascii")),
            Err(RequestAuthError::BadSignature),
            "{method} flipped signature"
        );
        let other_nonce = RequestParts {
            nonce: "ffffffffffffffffffffffffffffffff",
            ..parts
        };
        assert!(
            verify_request(&key, &other_nonce, sig).is_err(),
            "{method} other nonce"
        );
        assert!(
            verify_request(&DeviceKey::from_bytes([9; 32]), &parts, sig).is_err(),
            "{method} other key"
        );
    }
}
