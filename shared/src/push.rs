//! The body of `POST /v1/sync/push` (DESIGN "Wire shapes"):
//! `{"backlog","checkpoint","device","documents"?,"events"}`, written in
//! canonical key order with each event's canonical bytes copied as they are —
//! an event is never re-serialized, so the hub hashes exactly what the register
//! hashed. `documents` carries the signed e-CF/RFCE bytes named by the batch's
//! `FiscalDocumentIssued` events, each `{"sha256","xml"}` with `xml` in
//! standard base64 (with padding); it is omitted when empty, so a body without
//! documents is byte for byte what it was before documents existed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::canonical::{CanonicalError, Value};
use crate::checkpoint::Checkpoint;
use crate::digest::Hash256;
use crate::event::Event;
use crate::ids::DeviceId;

/// A signed document sent beside the events that name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushDocument {
    /// SHA-256 of `xml`, as named by the `FiscalDocumentIssued` event.
    pub sha256: Hash256,
    /// The signed XML bytes, unchanged.
    pub xml: Vec<u8>,
}

/// Bytes the `documents` member adds beyond its entries' [`PushDocument::wire_len`]
/// (`,"documents":[` and `]`, less the last entry's comma).
pub const DOCUMENTS_MEMBER_LEN: usize = 14;

/// Why a pushed `documents` entry does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DocumentError {
    /// JSON path, e.g. `documents[2].xml`.
    pub path: String,
    /// What is wrong, for a person.
    pub reason: String,
}

impl PushDocument {
    /// How many bytes this document adds to a push body (its object and a
    /// separating comma), for byte-bounded batches.
    pub fn wire_len(&self) -> usize {
        // {"sha256":"<64 hex>","xml":"<base64>"} and a comma.
        "{\"sha256\":\"\",\"xml\":\"\"},".len()
            + 64
            + base64::encoded_len(self.xml.len(), true).unwrap_or(usize::MAX)
    }

    /// Decodes the body's `documents` member (absent → empty), strictly: each
    /// entry has exactly `sha256` and `xml`, `xml` is standard base64 and
    /// hashes to `sha256`.
    pub fn decode_all(body: &Value) -> Result<Vec<PushDocument>, DocumentError> {
        let Some(list) = body.get("documents") else {
            return Ok(Vec::new());
        };
        let err = |path: String, reason: &str| DocumentError {
            path,
            reason: reason.to_owned(),
        };
        let list = list
            .as_array()
            .ok_or_else(|| err("documents".into(), "must be an array"))?;
        let mut out = Vec::with_capacity(list.len());
        for (i, d) in list.iter().enumerate() {
            let at = format!("documents[{i}]");
            let obj = d
                .as_object()
                .ok_or_else(|| err(at.clone(), "must be an object"))?;
            if let Some((k, _)) = obj.iter().find(|(k, _)| *k != "sha256" && *k != "xml") {
                return Err(err(format!("{at}.{k}"), "unknown field"));
            }
            let sha256: Hash256 = d
                .get("sha256")
                .and_then(Value::as_str)
                .ok_or_else(|| err(format!("{at}.sha256"), "missing or not a string"))?
                .parse()
                .map_err(|_| err(format!("{at}.sha256"), "not a SHA-256 in hex"))?;
            let xml = d
                .get("xml")
                .and_then(Value::as_str)
                .ok_or_else(|| err(format!("{at}.xml"), "missing or not a string"))?;
            let xml = BASE64
                .decode(xml)
                .map_err(|_| err(format!("{at}.xml"), "not standard base64"))?;
            if Hash256::of(&xml) != sha256 {
                return Err(err(
                    format!("{at}.sha256"),
                    "does not match the SHA-256 of xml",
                ));
            }
            out.push(PushDocument { sha256, xml });
        }
        Ok(out)
    }
}

/// Builds a push body. The result is canonical JSON. `documents` should be
/// in ascending `sha256` order (canonical JSON does not sort arrays; a stable
/// order keeps retried bodies identical).
pub fn push_body(
    device: DeviceId,
    events: &[Event],
    documents: &[PushDocument],
    checkpoint: &Checkpoint,
    backlog: u64,
) -> Result<Vec<u8>, CanonicalError> {
    let cp = Value::from_typed(checkpoint)?.to_canonical_bytes();
    let events_len: usize = events.iter().map(|e| e.canonical_bytes().len() + 1).sum();
    let docs_len: usize = documents.iter().map(PushDocument::wire_len).sum();
    let mut out = Vec::with_capacity(events_len + docs_len + cp.len() + 128);
    out.extend_from_slice(format!("{{\"backlog\":{backlog},\"checkpoint\":").as_bytes());
    out.extend_from_slice(&cp);
    out.extend_from_slice(format!(",\"device\":\"{device}\"").as_bytes());
    if !documents.is_empty() {
        out.extend_from_slice(b",\"documents\":[");
        for (i, d) in documents.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"sha256\":\"");
            out.extend_from_slice(d.sha256.to_hex().as_bytes());
            out.extend_from_slice(b"\",\"xml\":\"");
            out.extend_from_slice(BASE64.encode(&d.xml).as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e.canonical_bytes());
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical;
    use crate::digest::Hash256;
    use crate::entropy::SeededRandom;
    use crate::event::EventDraft;
    use crate::hlc::Hlc;
    use crate::ids::Seq;
    use crate::key::DeviceKey;
    use crate::kind::ShiftOpened;
    use crate::money::Money;

    fn one_event() -> (DeviceId, Event, Checkpoint) {
        let device: DeviceId = "01935f4e-8a00-7000-8000-0000000000d1".parse().expect("id");
        let e = Event::build(
            EventDraft {
                store: "01935f4e-8a00-7000-8000-000000000001".parse().expect("id"),
                device,
                seq: Seq::FIRST,
                prev: Hash256::ZERO,
                hlc: Hlc::new(1_763_880_000_000, 0).expect("hlc"),
                deps: vec![],
                body: ShiftOpened {
                    shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
                    cashier: "ana".into(),
                    opening_float: Money(500_000),
                    staff_id: None,
                }
                .into(),
            },
            &mut SeededRandom::new(1),
        )
        .expect("event");
        let key = DeviceKey::from_bytes([1; 32]);
        let cp = Checkpoint::sign(
            &key,
            "k1".parse().expect("key id"),
            device,
            e.seq(),
            e.hash(),
        );
        (device, e, cp)
    }

    #[test]
    fn the_body_is_canonical_and_carries_the_events_bytes_unchanged() {
        let (device, e, cp) = one_event();
        let body = push_body(device, std::slice::from_ref(&e), &[], &cp, 7).expect("body");
        assert_eq!(canonical::canonicalize(&body).expect("parses"), body);
        let v = canonical::parse(&body).expect("parses");
        let sent = Event::from_value(
            v.get("events").and_then(|l| l.as_array()).expect("events")[0].clone(),
        )
        .expect("event");
        assert_eq!(sent.hash(), e.hash());
        assert_eq!(v.get("backlog").and_then(Value::as_i64), Some(7));
        // Without documents the body has no `documents` member at all: the
        // bytes are what they were before documents existed.
        assert!(v.get("documents").is_none());
        let mut expected = format!(
            "{{\"backlog\":7,\"checkpoint\":{},\"device\":\"{device}\",\"events\":[",
            Value::from_typed(&cp).expect("cp").to_canonical_string()
        )
        .into_bytes();
        expected.extend_from_slice(e.canonical_bytes());
        expected.extend_from_slice(b"]}");
        assert_eq!(body, expected);
        assert_eq!(PushDocument::decode_all(&v), Ok(vec![]));
    }

    #[test]
    fn documents_travel_as_canonical_base64_and_decode_to_the_same_bytes() {
        let (device, e, cp) = one_event();
        // Bytes whose base64 has `+` and `/` (and padding).
        let xmls: [&[u8]; 2] = [b"<E>\xfb\xef\xbe\xff\xff\xff</E>\n", b"<RFCE/>"];
        let docs: Vec<PushDocument> = xmls
            .iter()
            .map(|x| PushDocument {
                sha256: Hash256::of(x),
                xml: x.to_vec(),
            })
            .collect();
        let body = push_body(device, std::slice::from_ref(&e), &docs, &cp, 0).expect("body");
        assert_eq!(canonical::canonicalize(&body).expect("parses"), body);
        let text = String::from_utf8(body.clone()).expect("utf8");
        assert!(text.contains("++++////"), "{text}");
        let v = canonical::parse(&body).expect("parses");
        assert_eq!(PushDocument::decode_all(&v), Ok(docs.clone()));
        let without = push_body(device, std::slice::from_ref(&e), &[], &cp, 0).expect("body");
        assert_eq!(
            body.len() - without.len(),
            docs.iter().map(PushDocument::wire_len).sum::<usize>() + DOCUMENTS_MEMBER_LEN,
            "wire_len is exact"
        );
    }

    #[test]
    fn bad_documents_are_named_by_path() {
        let cases = [
            (r#"{"documents":{}}"#, "documents"),
            (r#"{"documents":[1]}"#, "documents[0]"),
            (
                r#"{"documents":[{"sha256":"00","xml":"","size":1}]}"#,
                "documents[0].size",
            ),
            (r#"{"documents":[{"xml":""}]}"#, "documents[0].sha256"),
            (
                r#"{"documents":[{"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","xml":"*"}]}"#,
                "documents[0].xml",
            ),
            (
                r#"{"documents":[{"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","xml":"QQ=="}]}"#,
                "documents[0].sha256",
            ),
        ];
        for (json, path) in cases {
            let v = canonical::parse(json.as_bytes()).expect("json");
            assert_eq!(
                PushDocument::decode_all(&v).map_err(|e| e.path),
                Err(path.to_owned()),
                "{json}"
            );
        }
        let empty = r#"{"documents":[{"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","xml":""}]}"#;
        let v = canonical::parse(empty.as_bytes()).expect("json");
        assert_eq!(PushDocument::decode_all(&v).map(|d| d.len()), Ok(1));
    }
}
