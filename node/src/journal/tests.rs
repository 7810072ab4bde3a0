//! Unit tests of the journal's pure parts: the next-link check, the envelope
//! scanners against the strict parser, checkpoint reason names and break
//! messages. The database paths are tested in `node/tests/`.

use caja_shared::canonical;
use caja_shared::chain::ChainHead;
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::{Event, EventDraft};
use caja_shared::hlc::Hlc;
use caja_shared::ids::Seq;
use caja_shared::kind::{EventBody, ShiftOpened};
use caja_shared::money::Money;

use super::chain::check_next;
use super::checkpoint::CheckpointReason;
use super::error::{broken, Break, BreakReason, JournalError};
use super::scan::{skim, tail, Fields};

fn event(seq: u64, prev: Hash256) -> Event {
    let draft = EventDraft {
        store: "01935f4e-8a00-7000-8000-000000000001".parse().expect("id"),
        device: "01935f4e-8a00-7000-8000-0000000000d1".parse().expect("id"),
        seq: Seq::new(seq).expect("seq"),
        prev,
        hlc: Hlc::new(1_763_880_000_000, 0).expect("hlc"),
        deps: vec![],
        body: EventBody::ShiftOpened(ShiftOpened {
            shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
            cashier: "ana".into(),
            opening_float: Money(0),
            staff_id: None,
        }),
    };
    Event::build(draft, &mut SeededRandom::new(1)).expect("event")
}

#[test]
fn check_next_accepts_only_the_next_link() {
    let first = event(1, Hash256::ZERO);
    assert!(check_next(ChainHead::GENESIS, &first).is_ok());
    let head = ChainHead {
        seq: 1,
        hash: first.hash(),
    };
    assert!(check_next(head, &event(2, first.hash())).is_ok());
    let err = check_next(head, &event(3, first.hash())).unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::OutOfOrder {
                expected_seq: 2,
                seq: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = check_next(head, &event(2, Hash256::of(b"other"))).unwrap_err();
    assert!(matches!(err, JournalError::OutOfOrder { .. }), "{err}");
}

/// The scan and the strict parser must read the same fields from every
/// canonical envelope, whatever its body holds.
fn assert_skim_agrees(e: &Event) {
    let bytes = e.canonical_bytes();
    let parsed = canonical::parse(bytes).expect("canonical");
    let full = Fields::of(&parsed);
    assert_eq!(full.seq, Some(e.seq().get()));
    assert_eq!(
        tail::envelope_fields(bytes).as_ref(),
        Some(&full),
        "tail: {}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(
        skim::envelope_fields(bytes),
        Some(full),
        "{}",
        String::from_utf8_lossy(bytes)
    );
}

#[test]
fn the_tail_gives_up_on_any_other_shape() {
    let e = event(1, Hash256::ZERO);
    let text = String::from_utf8(e.canonical_bytes().to_vec()).expect("utf8");
    assert!(tail::envelope_fields(text.as_bytes()).is_some());
    for bad in [
        format!("{text} "),
        text[..text.len() - 1].to_owned(),
        text.replacen("\"seq\":1", "\"seq\":01", 1),
        text.replacen("\"seq\":1", "\"seq\":1.0", 1),
        text.replacen("\"v\":1}", "\"v\":1,\"w\":2}", 1),
        text.replacen("\"hlc\":{\"ms\"", "\"hlc\":{\"n\":0,\"ms\"", 1),
        text.replacen("\"kind\":\"", "\"kind\":\"\\u0053", 1),
        text.replacen("\"prev\":\"0", "\"prev\":\"\\u0030", 1),
        "{}".to_owned(),
        String::new(),
    ] {
        assert_eq!(tail::envelope_fields(bad.as_bytes()), None, "{bad}");
    }
}

fn event_with(body: EventBody, seq: u64, hlc: Hlc) -> Event {
    let draft = EventDraft {
        store: "01935f4e-8a00-7000-8000-000000000001".parse().expect("id"),
        device: "01935f4e-8a00-7000-8000-0000000000d1".parse().expect("id"),
        seq: Seq::new(seq).expect("seq"),
        prev: if seq == 1 {
            Hash256::ZERO
        } else {
            Hash256::of(b"p")
        },
        hlc,
        deps: vec!["019aaf70-dc00-7000-8000-0000000000a1".parse().expect("id")],
        body,
    };
    Event::build(draft, &mut SeededRandom::new(seq)).expect("event")
}

#[test]
fn the_scan_reads_what_the_parser_reads() {
    for (i, text) in [
        "ana",
        "",
        "quote \" and backslash \\ and slash /",
        "braces { } [ ] , : inside",
        "\"seq\":99,\"prev\":\"x\"",
        "control \u{1} \n \t \u{1f}",
        "ñandú 🧾 \u{7f}",
    ]
    .iter()
    .enumerate()
    {
        let seq = u64::try_from(i).expect("small") + 1;
        let body = EventBody::ShiftOpened(ShiftOpened {
            shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
            cashier: (*text).to_owned(),
            opening_float: Money(-5),
            staff_id: None,
        });
        assert_skim_agrees(&event_with(body, seq, Hlc::new(0, 0).expect("hlc")));
        let body = EventBody::ShiftOpened(ShiftOpened {
            shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
            cashier: (*text).to_owned(),
            opening_float: Money(9_007_199_254_740_991),
            staff_id: None,
        });
        assert_skim_agrees(&event_with(
            body,
            9_007_199_254_740_991 - seq,
            Hlc::new((1 << 48) - 1, u32::MAX).expect("hlc"),
        ));
    }
}

#[test]
fn the_scan_gives_up_on_anything_not_canonical() {
    let e = event(1, Hash256::ZERO);
    let text = String::from_utf8(e.canonical_bytes().to_vec()).expect("utf8");
    assert!(skim::envelope_fields(text.as_bytes()).is_some());
    for bad in [
        text.replacen("{", "{ ", 1),
        text.replacen("\"seq\":1", "\"seq\":01", 1),
        text.replacen("\"seq\":1", "\"seq\":1.0", 1),
        text.replacen("\"seq\":1", "\"seq\":1,\"seq\":1", 1),
        text.replacen("\"body\"", "\"zbody\"", 1),
        text.replacen("\"prev\":\"0", "\"prev\":\"\\u0030", 1),
        text.replacen("\"hlc\":{\"ms\"", "\"hlc\":{\"n\":0,\"ms\"", 1),
        format!("{text} "),
        text[..text.len() - 1].to_owned(),
    ] {
        assert_eq!(skim::envelope_fields(bad.as_bytes()), None, "{bad}");
    }
}

proptest::proptest! {
    #[test]
    fn prop_the_scan_agrees_with_the_parser(
        cashier in "\\PC{0,40}",
        reference in proptest::option::of("[\\x00-\\x7f]{0,30}"),
        qty in 1i64..=9_007_199_254_740_991,
        seq in 1u64..=9_007_199_254_740_991,
        ms in 0i64..(1 << 48),
        n: u32,
    ) {
        let hlc = Hlc::new(ms, n).expect("hlc");
        let body = EventBody::ShiftOpened(ShiftOpened {
            shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
            cashier,
            opening_float: Money(qty),
            staff_id: None,
        });
        assert_skim_agrees(&event_with(body, seq, hlc));
        let body = EventBody::StockReceived(caja_shared::kind::StockReceived {
            product: "SKU-1".parse().expect("sku"),
            qty_milli: caja_shared::money::QtyMilli(-qty),
            reference,
        });
        assert_skim_agrees(&event_with(body, seq, hlc));
    }
}

#[test]
fn checkpoint_reasons_round_trip() {
    for r in [
        CheckpointReason::Periodic,
        CheckpointReason::ShiftClose,
        CheckpointReason::Push,
        CheckpointReason::KeyRotation,
    ] {
        assert_eq!(CheckpointReason::parse(r.as_str()), Some(r));
    }
    assert_eq!(CheckpointReason::parse("other"), None);
}

#[test]
fn break_messages_name_the_first_bad_seq_and_reason() {
    let b = Break {
        seq: 150,
        reason: BreakReason::SeqGap { found: Some(151) },
    };
    assert_eq!(
        b.to_string(),
        "journal broken at seq 150: seq_gap (found seq 151 where seq 150 belongs)"
    );
    let e = broken(42, BreakReason::HashMismatch);
    assert_eq!(e.first_bad_seq(), Some(42));
    assert!(e
        .to_string()
        .starts_with("journal broken at seq 42: hash_mismatch"));
    assert!(e.to_string().contains("refusing to sell"));
}
