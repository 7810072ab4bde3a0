//! `vectors/event_chain.json`: the chain, its checkpoint, the hub checkpoint and
//! every tampered copy, case by case; plus tamper-detection properties.

use caja_shared::canonical::Value;
use caja_shared::chain::{verify_chain, ChainFault, ChainHead, ChainVerifier};
use caja_shared::checkpoint::{checkpoint_message, Checkpoint, HubCheckpoint};
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::{Event, EventDraft};
use caja_shared::hlc::Hlc;
use caja_shared::ids::Seq;
use caja_shared::key::{DeviceKey, HubPublicKey, HubSigningKey};
use caja_shared::kind::{EventBody, EventKind, SaleVoided};
use proptest::prelude::*;

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("vectors/event_chain.json")).expect("vector file parses")
}

fn value(v: &serde_json::Value) -> Value {
    Value::from_serde(v.clone()).expect("integer-only JSON")
}

#[test]
fn every_event_hashes_to_the_vector_and_decodes_strictly() {
    let v = vectors();
    let events = v["events"].as_array().expect("events");
    assert_eq!(events.len(), 3);
    let mut prev = Hash256::ZERO;
    for (i, e) in events.iter().enumerate() {
        let event = Event::from_value(value(&e["envelope"])).expect("envelope valid");
        assert_eq!(
            std::str::from_utf8(event.canonical_bytes()).expect("utf8"),
            e["canonical"].as_str().expect("canonical"),
            "event {i} canonical bytes"
        );
        assert_eq!(
            event.hash().to_hex(),
            e["hash"].as_str().expect("hash"),
            "event {i} hash"
        );
        assert_eq!(event.envelope().prev, prev, "event {i} prev");
        assert_eq!(
            event.envelope().event_id.time_ms(),
            event.envelope().hlc.ms()
        );
        // The typed body decodes and re-encodes to the very same value.
        let body = event
            .body()
            .unwrap_or_else(|err| panic!("event {i} body: {err}"));
        assert_eq!(
            &body.to_value().expect("encodes"),
            event.body_value(),
            "event {i} body round trip"
        );
        prev = event.hash();
    }
    let kinds: Vec<EventKind> = events
        .iter()
        .map(|e| {
            Event::from_value(value(&e["envelope"]))
                .expect("valid")
                .envelope()
                .kind
        })
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::ShiftOpened,
            EventKind::SaleCreated,
            EventKind::SaleVoided
        ]
    );
}

#[test]
fn the_chain_verifies_from_genesis_and_from_its_bytes() {
    let v = vectors();
    let envs: Vec<(Value, Hash256)> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                value(&e["envelope"]),
                e["hash"].as_str().expect("hash").parse().expect("hex"),
            )
        })
        .collect();
    let head =
        verify_chain(ChainHead::GENESIS, envs.iter().map(|(e, h)| (e, h))).expect("verifies");
    assert_eq!(head.seq, 3);
    assert_eq!(head.hash, envs[2].1);
    let mut by_bytes = ChainVerifier::new(ChainHead::GENESIS);
    for e in v["events"].as_array().expect("events") {
        let stored: Hash256 = e["hash"].as_str().expect("hash").parse().expect("hex");
        by_bytes
            .check_bytes(
                e["canonical"].as_str().expect("canonical").as_bytes(),
                &stored,
            )
            .expect("bytes verify");
    }
    assert_eq!(by_bytes.head(), head);
}

#[test]
fn the_checkpoint_mac_matches_and_any_change_fails() {
    let v = vectors();
    let c = &v["checkpoint"];
    let key = DeviceKey::from_hex(c["device_key_hex"].as_str().expect("key")).expect("key hex");
    let device = c["device"]
        .as_str()
        .expect("device")
        .parse()
        .expect("device id");
    let seq = Seq::new(c["seq"].as_u64().expect("seq")).expect("seq");
    let hash: Hash256 = c["hash"].as_str().expect("hash").parse().expect("hash hex");
    assert_eq!(
        checkpoint_message(&device, seq, &hash),
        c["message"].as_str().expect("message")
    );
    let cp = Checkpoint::sign(&key, "k1".parse().expect("key id"), device, seq, hash);
    assert_eq!(cp.mac.to_hex(), c["mac"].as_str().expect("mac"));
    cp.verify(&key).expect("verifies");
    let mut other = cp.clone();
    other.seq = Seq::new(4).expect("seq");
    assert!(other.verify(&key).is_err(), "another seq must not verify");
    let mut other = cp.clone();
    other.mac.0[0] ^= 1;
    assert!(other.verify(&key).is_err(), "a flipped MAC must not verify");
    assert!(
        cp.verify(&DeviceKey::from_bytes([0; 32])).is_err(),
        "another key must not verify"
    );
    // The wire form round-trips and rejects unknown fields.
    let json = serde_json::to_string(&cp).expect("serializes");
    assert_eq!(
        serde_json::from_str::<Checkpoint>(&json).expect("parses"),
        cp
    );
    assert!(serde_json::from_str::<Checkpoint>(&json.replace("}", ",\"x\":1}")).is_err());
}

#[test]
fn the_hub_checkpoint_signature_matches_the_vector() {
    let v = vectors();
    let c = &v["hub_checkpoint"];
    let key = HubSigningKey::from_hex(c["hub_private_key_seed_hex"].as_str().expect("seed"))
        .expect("seed hex");
    let public = HubPublicKey::from_hex(c["hub_key"].as_str().expect("hub_key")).expect("pub hex");
    assert_eq!(key.public_key(), public);
    let device = c["device"]
        .as_str()
        .expect("device")
        .parse()
        .expect("device id");
    let seq = Seq::new(c["seq"].as_u64().expect("seq")).expect("seq");
    let hash: Hash256 = c["hash"].as_str().expect("hash").parse().expect("hash hex");
    assert_eq!(
        checkpoint_message(&device, seq, &hash),
        c["message"].as_str().expect("message")
    );
    let cp = HubCheckpoint::sign(
        &key,
        "hub-2026-1".parse().expect("key id"),
        device,
        seq,
        hash,
    );
    assert_eq!(cp.sig.to_hex(), c["sig"].as_str().expect("sig"));
    cp.verify(&public).expect("verifies");
    let mut other = cp.clone();
    other.hash = Hash256::ZERO;
    assert!(other.verify(&public).is_err());
    let mut other = cp.clone();
    other.sig.0[63] ^= 0x80;
    assert!(other.verify(&public).is_err());
}

#[test]
fn every_tampered_copy_is_reported_at_its_first_bad_position() {
    let v = vectors();
    let cases = v["tampered"].as_array().expect("tampered");
    assert_eq!(cases.len(), 4);
    for case in cases {
        let why = case["why"].as_str().expect("why");
        let envs: Vec<(Value, Hash256)> = case["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| {
                (
                    value(&e["envelope"]),
                    e["stored_hash"]
                        .as_str()
                        .expect("stored_hash")
                        .parse()
                        .expect("hex"),
                )
            })
            .collect();
        let err =
            verify_chain(ChainHead::GENESIS, envs.iter().map(|(e, h)| (e, h))).expect_err(why);
        assert_eq!(
            err.position,
            case["first_bad_position"].as_u64().expect("pos"),
            "{why}: position"
        );
        assert_eq!(err.seq, case["seq_at_position"].as_u64(), "{why}: seq");
        assert_eq!(
            err.fault.code(),
            case["reason"].as_str().expect("reason"),
            "{why}: reason"
        );
    }
}

/// A valid chain of `n` events made with the real builder.
fn build_chain(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = SeededRandom::new(seed);
    let mut out: Vec<Event> = Vec::with_capacity(n);
    for i in 0..n {
        let prev = out.last().map_or(Hash256::ZERO, Event::hash);
        let body = EventBody::SaleVoided(SaleVoided {
            sale_id: "019aaf70-dbf4-7000-8000-00000000a001".parse().expect("id"),
            reason: format!("motivo {i} ñ"),
            approval: None,
            approved_by: None,
        });
        let draft = EventDraft {
            store: "01935f4e-8a00-7000-8000-000000000001".parse().expect("id"),
            device: "01935f4e-8a00-7000-8000-0000000000d1".parse().expect("id"),
            seq: Seq::new(i as u64 + 1).expect("seq"),
            prev,
            hlc: Hlc::new(1_763_880_000_000 + i as i64, 0).expect("hlc"),
            deps: out.last().map(|e| vec![e.id()]).unwrap_or_default(),
            body,
        };
        out.push(Event::build(draft, &mut rng).expect("builds"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Flipping any byte of any event's stored bytes is reported at that event's
    /// position, never earlier and never missed.
    #[test]
    fn flipping_any_byte_is_reported_at_its_position(
        n in 1usize..12,
        pick in any::<prop::sample::Index>(),
        byte in any::<prop::sample::Index>(),
        mask in 1u8..=255,
        seed in any::<u64>(),
    ) {
        let chain = build_chain(n, seed);
        let target = pick.index(n);
        let mut bytes = chain[target].canonical_bytes().to_vec();
        let at = byte.index(bytes.len());
        bytes[at] ^= mask;
        let mut verifier = ChainVerifier::new(ChainHead::GENESIS);
        let mut result = Ok(());
        for (i, e) in chain.iter().enumerate() {
            let b = if i == target { &bytes[..] } else { e.canonical_bytes() };
            result = verifier.check_bytes(b, &e.hash());
            if result.is_err() { break; }
        }
        let err = result.expect_err("tampering must be detected");
        prop_assert_eq!(err.position, target as u64 + 1);
    }

    /// Deleting or swapping events is reported as a seq gap at the first moved position.
    #[test]
    fn deleting_an_event_is_a_seq_gap(n in 2usize..12, pick in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let mut chain = build_chain(n, seed);
        let target = pick.index(n - 1); // never the last: deleting the tail is not detectable without a checkpoint
        chain.remove(target);
        let items: Vec<(Value, Hash256)> = chain.iter().map(|e| (e.value().clone(), e.hash())).collect();
        let err = verify_chain(ChainHead::GENESIS, items.iter().map(|(e, h)| (e, h))).expect_err("gap");
        prop_assert_eq!(err.position, target as u64 + 1);
        prop_assert_eq!(err.fault, ChainFault::SeqGap { expected: target as u64 + 1 });
    }
}
