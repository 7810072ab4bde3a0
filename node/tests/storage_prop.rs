//! Property: whatever the number of events and however they are grouped into
//! transactions, a fresh journal verifies, its head is its last event, and it
//! has one periodic checkpoint per CHECKPOINT_EVERY events.

mod storage_fixture;

use caja_node::journal::{Journal, CHECKPOINT_EVERY};
use proptest::prelude::*;
use storage_fixture::{key, Fixture};

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_fresh_journal_always_verifies_and_its_head_matches(
        batches in prop::collection::vec(1u64..60, 0..8)
    ) {
        let mut f = Fixture::new();
        let mut last = None;
        for n in &batches {
            let tx = f.db.write_tx().expect("tx");
            for _ in 0..*n {
                last = Some(f.writer.append_in(&tx));
            }
            tx.commit().expect("commit");
        }
        let total: u64 = batches.iter().sum();
        let head = Journal::verify(f.db.conn(), &key(), None, |_, _| {}).expect("verifies");
        prop_assert_eq!(head, Journal::head(f.db.conn()).expect("head"));
        prop_assert_eq!(head.seq, total);
        if let Some(e) = last {
            prop_assert_eq!(head.hash, e.hash());
        }
        let startup = Journal::startup_check(f.db.conn(), &key()).expect("startup");
        prop_assert_eq!(startup.head, head);
        let checkpoints: u64 = f
            .db
            .conn()
            .query_row("SELECT count(*) FROM checkpoints", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).expect("count"))
            .expect("count");
        prop_assert_eq!(checkpoints, total / CHECKPOINT_EVERY);
        prop_assert_eq!(startup.rehashed, total % CHECKPOINT_EVERY);
    }
}
