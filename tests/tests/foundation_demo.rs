//! The foundation demo runs the real core end to end and catches the tampering it
//! stages; the same seed replays the same bytes.

use caja_shared::chain::ChainFault;

#[test]
fn demo_verifies_chains_logs_events_and_catches_an_edited_sale() {
    let mut out = Vec::new();
    let summary = caja_tests::demo::run(7, &mut out).expect("demo runs");
    assert_eq!(summary.events_per_register, vec![4, 3]);
    assert_eq!(summary.audit_entries, 7);
    assert_eq!(summary.tamper_found.position, 2);
    assert_eq!(summary.tamper_found.seq, Some(2));
    assert_eq!(summary.tamper_found.fault, ChainFault::HashMismatch);
    let text = String::from_utf8(out).expect("utf8");
    assert!(
        text.contains("not built yet"),
        "the demo must say what is not built:\n{text}"
    );
    assert!(text.contains("hash_mismatch"), "{text}");
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let ra = caja_tests::demo::run(42, &mut a).expect("run a");
    let rb = caja_tests::demo::run(42, &mut b).expect("run b");
    let rc = caja_tests::demo::run(43, &mut c).expect("run c");
    assert_eq!(a, b);
    assert_eq!(ra, rb);
    assert_ne!(ra.audit_root, rc.audit_root);
}
