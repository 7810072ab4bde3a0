//! The body of `POST /v1/sync/push` (DESIGN "Wire shapes"):
//! `{"backlog","checkpoint","device","events"}`, written in canonical key order
//! with each event's canonical bytes copied as they are — an event is never
//! re-serialized, so the hub hashes exactly what the register hashed.

use crate::canonical::{CanonicalError, Value};
use crate::checkpoint::Checkpoint;
use crate::event::Event;
use crate::ids::DeviceId;

/// Builds a push body. The result is canonical JSON.
pub fn push_body(
    device: DeviceId,
    events: &[Event],
    checkpoint: &Checkpoint,
    backlog: u64,
) -> Result<Vec<u8>, CanonicalError> {
    let cp = Value::from_typed(checkpoint)?.to_canonical_bytes();
    let events_len: usize = events.iter().map(|e| e.canonical_bytes().len() + 1).sum();
    let mut out = Vec::with_capacity(events_len + cp.len() + 128);
    out.extend_from_slice(format!("{{\"backlog\":{backlog},\"checkpoint\":").as_bytes());
    out.extend_from_slice(&cp);
    out.extend_from_slice(format!(",\"device\":\"{device}\",\"events\":[").as_bytes());
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

    #[test]
    fn the_body_is_canonical_and_carries_the_events_bytes_unchanged() {
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
        let body = push_body(device, std::slice::from_ref(&e), &cp, 7).expect("body");
        assert_eq!(canonical::canonicalize(&body).expect("parses"), body);
        let v = canonical::parse(&body).expect("parses");
        let sent = Event::from_value(
            v.get("events").and_then(|l| l.as_array()).expect("events")[0].clone(),
        )
        .expect("event");
        assert_eq!(sent.hash(), e.hash());
        assert_eq!(v.get("backlog").and_then(Value::as_i64), Some(7));
    }
}
