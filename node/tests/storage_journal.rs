//! The journal on a real SQLite file: appends, automatic checkpoints,
//! verification, export, HLC restore, transactions and concurrent writers.

mod storage_fixture;

use caja_node::db::Db;
use caja_node::journal::{
    self, CheckpointReason, Journal, JournalError, OpRecord, CHECKPOINT_EVERY,
};
use caja_shared::chain::ChainHead;
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use storage_fixture::{key, Fixture, MAX_DRIFT_MS, T0_MS};

fn verify_all(conn: &rusqlite::Connection) -> Result<ChainHead, JournalError> {
    Journal::verify(conn, &key(), None, |_, _| {})
}

#[test]
fn appending_250_events_checkpoints_at_100_and_200_and_verifies() {
    let mut f = Fixture::new();
    let events = f.append(250);
    let head = Journal::head(f.db.conn()).expect("head");
    assert_eq!(head.seq, 250);
    assert_eq!(head.hash, events[249].hash());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq().get(), u64::try_from(i).expect("small") + 1);
        let prev = if i == 0 {
            Hash256::ZERO
        } else {
            events[i - 1].hash()
        };
        assert_eq!(e.envelope().prev, prev);
    }

    let cps: Vec<(u64, String, String)> =
        f.db.conn()
            .prepare("SELECT seq, key_id, reason FROM checkpoints ORDER BY seq")
            .expect("prepare")
            .query_map([], |r| {
                Ok((
                    u64::try_from(r.get::<_, i64>(0)?).expect("seq"),
                    r.get(1)?,
                    r.get(2)?,
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
    assert_eq!(
        cps,
        vec![
            (100, "k1".into(), "periodic".into()),
            (200, "k1".into(), "periodic".into())
        ]
    );
    let latest = Journal::latest_checkpoint(f.db.conn())
        .expect("read")
        .expect("one");
    assert_eq!(latest.checkpoint.seq.get(), 200);
    assert_eq!(latest.checkpoint.hash, events[199].hash());
    latest.checkpoint.verify(&key()).expect("MAC verifies");

    assert_eq!(verify_all(f.db.conn()).expect("verifies"), head);
    let from_cp = Journal::verify(f.db.conn(), &key(), Some(&latest.checkpoint), |_, _| {})
        .expect("verifies from checkpoint");
    assert_eq!(from_cp, head);
    let startup = Journal::startup_check(f.db.conn(), &key()).expect("startup");
    assert_eq!(startup.head, head);
    assert_eq!(startup.from_checkpoint, Some(200));
    assert_eq!(startup.rehashed, 50);
}

#[test]
fn verify_reports_progress_from_zero_to_total() {
    let mut f = Fixture::new();
    f.append(30);
    let mut calls = Vec::new();
    Journal::verify(f.db.conn(), &key(), None, |done, total| {
        calls.push((done, total))
    })
    .expect("verifies");
    assert_eq!(calls.first(), Some(&(0, 30)));
    assert_eq!(calls.last(), Some(&(30, 30)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn an_empty_journal_verifies_to_genesis() {
    let f = Fixture::new();
    assert_eq!(
        Journal::head(f.db.conn()).expect("head"),
        ChainHead::GENESIS
    );
    assert_eq!(verify_all(f.db.conn()).expect("ok"), ChainHead::GENESIS);
    assert_eq!(f.writer.journal.startup().head, ChainHead::GENESIS);
    assert_eq!(Journal::last_hlc(f.db.conn()).expect("read"), None);
    let mut out = Vec::new();
    assert_eq!(
        Journal::export_jsonl(f.db.conn(), &mut out).expect("export"),
        0
    );
    assert!(out.is_empty());
}

#[test]
fn export_writes_the_canonical_bytes_one_per_line() {
    let mut f = Fixture::new();
    let events = f.append(12);
    let mut out = Vec::new();
    let n = Journal::export_jsonl(f.db.conn(), &mut out).expect("export");
    assert_eq!(n, 12);
    let lines: Vec<&[u8]> = out.split(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), 13, "12 lines and a final newline");
    assert!(lines[12].is_empty());
    for (line, e) in lines.iter().zip(&events) {
        assert_eq!(*line, e.canonical_bytes());
        let back = Event::from_json(line).expect("parses");
        assert_eq!(back.hash(), e.hash());
    }
}

#[test]
fn reading_events_back_gives_the_same_hashes() {
    let mut f = Fixture::new();
    let events = f.append(15);
    let page = Journal::events_after(f.db.conn(), 10, 100).expect("read");
    assert_eq!(page.len(), 5);
    assert_eq!(page[0].hash(), events[10].hash());
    let capped = Journal::events_after(f.db.conn(), 0, usize::MAX).expect("read");
    assert_eq!(capped.len(), 15);
    let one = Journal::event(f.db.conn(), 7)
        .expect("read")
        .expect("exists");
    assert_eq!(one, events[6]);
    assert!(Journal::event(f.db.conn(), 16).expect("read").is_none());
}

#[test]
fn the_hlc_resumes_after_the_last_event_even_when_the_clock_went_back() {
    let mut f = Fixture::new();
    let events = f.append(5);
    let last = events[4].envelope().hlc;
    assert_eq!(Journal::last_hlc(f.db.conn()).expect("read"), Some(last));
    drop(f.writer);
    // Reopen with the wall clock an hour behind the journal.
    let mut journal = Journal::open(f.db.conn(), key(), MAX_DRIFT_MS).expect("reopen");
    assert_eq!(journal.hlc().last(), last);
    let tx = f.db.write_tx().expect("tx");
    let e = journal
        .append(
            &tx,
            storage_fixture::body(6),
            vec![],
            &mut SeededRandom::new(9),
            T0_MS - 3_600_000,
        )
        .expect("append");
    tx.commit().expect("commit");
    assert!(e.envelope().hlc > last);
    assert_eq!(e.envelope().hlc.ms(), last.ms());
}

#[test]
fn a_rolled_back_append_leaves_no_trace_and_the_seq_is_reused() {
    let mut f = Fixture::new();
    f.append(3);
    let before = storage_fixture::dump(f.db.conn(), "journal");
    {
        let tx = f.db.write_tx().expect("tx");
        let e = f.writer.append_in(&tx);
        assert_eq!(e.seq().get(), 4);
        // Dropped without commit.
    }
    assert_eq!(storage_fixture::dump(f.db.conn(), "journal"), before);
    let again = f.append(1);
    assert_eq!(again[0].seq().get(), 4);
    verify_all(f.db.conn()).expect("verifies");
}

#[test]
fn an_event_and_its_operation_record_commit_together() {
    let mut f = Fixture::new();
    let op_id = "019aaf70-dc00-7000-8000-0000000000a1"
        .parse()
        .expect("op id");
    let op = |seq| OpRecord {
        op_id,
        kind: "stock_receive".into(),
        request_hash: Hash256::of(b"request"),
        result: r#"{"seq":1}"#.into(),
        seq: Some(seq),
        at_ms: T0_MS,
    };
    {
        let tx = f.db.write_tx().expect("tx");
        let e = f.writer.append_in(&tx);
        journal::record_op(&tx, &op(e.seq().get())).expect("record");
        // Rolled back: neither the event nor the op id stays.
    }
    assert!(journal::find_op(f.db.conn(), &op_id)
        .expect("read")
        .is_none());
    assert_eq!(Journal::head(f.db.conn()).expect("head").seq, 0);

    let tx = f.db.write_tx().expect("tx");
    let e = f.writer.append_in(&tx);
    journal::record_op(&tx, &op(e.seq().get())).expect("record");
    tx.commit().expect("commit");
    assert_eq!(
        journal::find_op(f.db.conn(), &op_id).expect("read"),
        Some(op(1))
    );
    let tx = f.db.write_tx().expect("tx");
    let err = journal::record_op(&tx, &op(1)).expect_err("duplicate");
    assert!(
        matches!(err, JournalError::DuplicateOp(id) if id == op_id),
        "{err}"
    );
}

#[test]
fn checkpoints_at_shift_close_are_idempotent_per_head() {
    let mut f = Fixture::new();
    {
        let tx = f.db.write_tx().expect("tx");
        let err = f
            .writer
            .journal
            .write_checkpoint(&tx, CheckpointReason::ShiftClose, T0_MS)
            .expect_err("empty journal");
        assert!(matches!(err, JournalError::EmptyJournal), "{err}");
    }
    f.append(100);
    let tx = f.db.write_tx().expect("tx");
    // A periodic one already covers seq 100: it is returned, not duplicated.
    let cp = f
        .writer
        .journal
        .write_checkpoint(&tx, CheckpointReason::ShiftClose, T0_MS)
        .expect("checkpoint");
    assert_eq!(
        (cp.checkpoint.seq.get(), cp.reason),
        (100, CheckpointReason::Periodic)
    );
    tx.commit().expect("commit");
    f.append(7);
    let tx = f.db.write_tx().expect("tx");
    let cp = f
        .writer
        .journal
        .write_checkpoint(&tx, CheckpointReason::ShiftClose, T0_MS + 5)
        .expect("checkpoint");
    tx.commit().expect("commit");
    assert_eq!(
        (cp.checkpoint.seq.get(), cp.reason, cp.at_ms),
        (107, CheckpointReason::ShiftClose, T0_MS + 5)
    );
    assert_eq!(
        Journal::latest_checkpoint(f.db.conn()).expect("read"),
        Some(cp)
    );
    assert_eq!(
        Journal::startup_check(f.db.conn(), &key())
            .expect("ok")
            .from_checkpoint,
        Some(107)
    );
}

#[test]
fn the_acknowledged_seq_moves_forward_only_and_never_past_the_head() {
    let mut f = Fixture::new();
    f.append(10);
    assert_eq!(Journal::unsynced(f.db.conn()).expect("read"), 10);
    let tx = f.db.write_tx().expect("tx");
    Journal::set_acked_seq(&tx, 6, T0_MS).expect("ack");
    assert!(matches!(
        Journal::set_acked_seq(&tx, 5, T0_MS),
        Err(JournalError::BadAck { acked_seq: 5, .. })
    ));
    assert!(matches!(
        Journal::set_acked_seq(&tx, 11, T0_MS),
        Err(JournalError::BadAck { acked_seq: 11, .. })
    ));
    tx.commit().expect("commit");
    assert_eq!(Journal::acked_seq(f.db.conn()).expect("read"), 6);
    assert_eq!(Journal::unsynced(f.db.conn()).expect("read"), 4);
}

#[test]
fn the_device_row_is_written_once() {
    let mut f = Fixture::new();
    let d = journal::load_device(f.db.conn())
        .expect("read")
        .expect("row");
    assert_eq!(d, storage_fixture::device_record());
    let tx = f.db.write_tx().expect("tx");
    let err = journal::insert_device(&tx, &storage_fixture::device_record()).expect_err("twice");
    assert!(matches!(err, JournalError::AlreadyInitialized(_)), "{err}");
    journal::set_restored_from_backup(&tx, true).expect("mark");
    tx.commit().expect("commit");
    assert!(
        journal::load_device(f.db.conn())
            .expect("read")
            .expect("row")
            .restored_from_backup
    );
}

#[test]
fn a_database_without_a_device_row_cannot_open_a_journal() {
    let dir = tempfile::tempdir().expect("dir");
    let db = Db::open(dir.path().join("n.sqlite3")).expect("open");
    let err = Journal::open(db.conn(), key(), MAX_DRIFT_MS).expect_err("no device");
    assert!(matches!(err, JournalError::NotInitialized), "{err}");
}

#[test]
fn received_events_must_be_this_devices_next_link() {
    // Events made by one database, replayed into a fresh one (a restore
    // fetching its own events back from the hub).
    let mut source = Fixture::new();
    let events = source.append(CHECKPOINT_EVERY + 2);
    let mut target = Fixture::new();
    let tx = target.db.write_tx().expect("tx");
    let err = target
        .writer
        .journal
        .append_received(&tx, &events[1], T0_MS)
        .expect_err("seq 2 before seq 1");
    assert!(
        matches!(
            err,
            JournalError::OutOfOrder {
                expected_seq: 1,
                seq: 2,
                ..
            }
        ),
        "{err}"
    );
    for e in &events {
        target
            .writer
            .journal
            .append_received(&tx, e, T0_MS)
            .expect("appends");
    }
    tx.commit().expect("commit");
    assert_eq!(
        verify_all(target.db.conn()).expect("verifies"),
        Journal::head(source.db.conn()).expect("head")
    );
    assert_eq!(
        Journal::latest_checkpoint(target.db.conn())
            .expect("read")
            .map(|c| c.checkpoint.seq.get()),
        Some(CHECKPOINT_EVERY)
    );
    assert!(target.writer.journal.hlc().last() >= events[events.len() - 1].envelope().hlc);
}

#[test]
fn two_writers_on_one_file_keep_one_chain_and_an_increasing_clock() {
    let mut a = Fixture::new();
    a.append(3);
    let mut db_b = Db::open(&a.path).expect("second connection");
    let mut journal_b = Journal::open(db_b.conn(), key(), MAX_DRIFT_MS).expect("journal b");
    let mut rng_b = SeededRandom::new(77);
    for round in 0..5u64 {
        a.append(2);
        // b's clock is behind and b's in-memory HLC is stale: the stamp must
        // still follow the journal's last one.
        let tx = db_b.write_tx().expect("tx");
        journal_b
            .append(
                &tx,
                storage_fixture::body(round),
                vec![],
                &mut rng_b,
                T0_MS - 10_000,
            )
            .expect("append b");
        tx.commit().expect("commit");
    }
    let head = verify_all(a.db.conn()).expect("verifies");
    assert_eq!(head.seq, 18);
    let events = Journal::events_after(a.db.conn(), 0, 100).expect("read");
    assert!(events
        .windows(2)
        .all(|w| w[0].envelope().hlc < w[1].envelope().hlc));
}

#[test]
fn concurrent_writer_threads_wait_for_each_other_instead_of_failing() {
    let f = Fixture::new();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let path = f.path.clone();
            std::thread::spawn(move || {
                let mut db = Db::open(&path).expect("open");
                let mut journal = Journal::open(db.conn(), key(), MAX_DRIFT_MS).expect("journal");
                let mut rng = SeededRandom::new(t);
                for i in 0..30 {
                    let tx = db.write_tx().expect("tx");
                    journal
                        .append(&tx, storage_fixture::body(i), vec![], &mut rng, T0_MS + 1)
                        .expect("append");
                    tx.commit().expect("commit");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let head = verify_all(f.db.conn()).expect("verifies");
    assert_eq!(head.seq, 120);
    assert_eq!(
        Journal::latest_checkpoint(f.db.conn())
            .expect("read")
            .map(|c| c.checkpoint.seq.get()),
        Some(100)
    );
}
