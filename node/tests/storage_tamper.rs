//! History changed behind the node's back. First the triggers must refuse plain
//! UPDATE and DELETE; then, with the triggers dropped (as with the sqlite3
//! shell), `verify` and the start-up check must name the first bad seq and why.
//!
//! The journal has 250 events with checkpoints at 100 and 200. The start-up
//! check re-hashes only what follows the last checkpoint (plus a gap scan of
//! the whole journal); `verify` re-hashes everything.

mod storage_fixture;

use caja_node::journal::{Break, BreakReason, Journal, JournalError};
use caja_shared::digest::Hash256;
use rusqlite::{params, Connection};
use storage_fixture::{drop_triggers, dump, key, Fixture, MAX_DRIFT_MS};

fn fixture_250() -> Fixture {
    let mut f = Fixture::new();
    f.append(250);
    f
}

fn verify_break(f: &Fixture) -> Break {
    match Journal::verify(f.db.conn(), &key(), None, |_, _| {}) {
        Err(JournalError::Broken(b)) => b,
        other => panic!("verify should report a break, got {other:?}"),
    }
}

fn startup_break(f: &Fixture) -> Break {
    match Journal::startup_check(f.db.conn(), &key()) {
        Err(JournalError::Broken(b)) => b,
        other => panic!("startup_check should report a break, got {other:?}"),
    }
}

fn assert_open_refuses(f: &Fixture, seq: u64) {
    let err = Journal::open(f.db.conn(), key(), MAX_DRIFT_MS).expect_err("must refuse");
    assert_eq!(err.first_bad_seq(), Some(seq), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("journal broken at seq {seq}")),
        "{message}"
    );
    assert!(message.contains("refusing to sell"), "{message}");
}

fn bytes_at(conn: &Connection, seq: u64) -> Vec<u8> {
    conn.query_row(
        "SELECT bytes FROM journal WHERE seq = ?1",
        [i64::try_from(seq).expect("seq")],
        |r| r.get(0),
    )
    .expect("row")
}

/// Changes the event's body (a quantity or the cashier), keeping the stored
/// hash.
fn edit_bytes(conn: &Connection, seq: u64) -> Vec<u8> {
    let old = String::from_utf8(bytes_at(conn, seq)).expect("utf8");
    let new = old
        .replacen("\"qty_milli\":", "\"qty_milli\":9", 1)
        .replacen("\"cashier\":\"ana\"", "\"cashier\":\"eve\"", 1);
    assert_ne!(old, new, "the event has a field to edit");
    let n = conn
        .execute(
            "UPDATE journal SET bytes = ?1 WHERE seq = ?2",
            params![new.as_bytes(), i64::try_from(seq).expect("seq")],
        )
        .expect("edit");
    assert_eq!(n, 1);
    new.into_bytes()
}

fn delete(conn: &Connection, seq: u64) {
    let n = conn
        .execute(
            "DELETE FROM journal WHERE seq = ?1",
            [i64::try_from(seq).expect("seq")],
        )
        .expect("delete");
    assert_eq!(n, 1);
}

fn swap(conn: &Connection, a: u64, b: u64) {
    let (a, b) = (
        i64::try_from(a).expect("seq"),
        i64::try_from(b).expect("seq"),
    );
    conn.execute_batch(&format!(
        "UPDATE journal SET seq = 1000000 WHERE seq = {a};
         UPDATE journal SET seq = {a} WHERE seq = {b};
         UPDATE journal SET seq = {b} WHERE seq = 1000000;"
    ))
    .expect("swap");
}

fn expect(b: &Break, seq: u64, reason: BreakReason) {
    assert_eq!((b.seq, &b.reason), (seq, &reason), "{b}");
}

// ---- The triggers -------------------------------------------------------

#[test]
fn triggers_reject_update_and_delete_of_journal_rows() {
    let f = fixture_250();
    let raw = f.raw();
    let before = dump(&raw, "journal");
    for sql in [
        "UPDATE journal SET bytes = x'00' WHERE seq = 5",
        "UPDATE journal SET seq = 999 WHERE seq = 250",
        "UPDATE journal SET hash = prev WHERE seq = 7",
        "DELETE FROM journal WHERE seq = 250",
        "DELETE FROM journal",
    ] {
        let err = raw.execute(sql, []).expect_err(sql);
        assert!(
            err.to_string().contains("journal is append-only"),
            "{sql}: {err}"
        );
    }
    assert_eq!(dump(&raw, "journal"), before, "no row changed");
    Journal::verify(f.db.conn(), &key(), None, |_, _| {}).expect("still verifies");
}

#[test]
fn triggers_reject_replacing_or_out_of_order_inserts() {
    let f = fixture_250();
    let raw = f.raw();
    let before = dump(&raw, "journal");
    let zeros = Hash256::ZERO.to_hex();
    let cases = [
        // INSERT OR REPLACE would delete seq 10 without firing DELETE triggers.
        "INSERT OR REPLACE INTO journal (seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes)
         SELECT seq, event_id, hash, prev, kind, hlc_ms, hlc_n, x'7b7d' FROM journal WHERE seq = 10"
            .to_owned(),
        // A gap.
        format!(
            "INSERT INTO journal (seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes)
             VALUES (252, '019aaf70-dc00-7000-8000-0000000000f1', '{zeros}', '{zeros}', 'x', 1, 0, x'00')"
        ),
        // The right seq but a prev that is not the last hash.
        format!(
            "INSERT INTO journal (seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes)
             VALUES (251, '019aaf70-dc00-7000-8000-0000000000f1', '{zeros}', '{zeros}', 'x', 1, 0, x'00')"
        ),
    ];
    for sql in &cases {
        let err = raw.execute(sql, []).expect_err(sql);
        assert!(
            err.to_string().contains("journal is append-only"),
            "{sql}: {err}"
        );
    }
    assert_eq!(dump(&raw, "journal"), before);
}

#[test]
fn triggers_reject_update_and_delete_of_checkpoints() {
    let f = fixture_250();
    let raw = f.raw();
    let before = dump(&raw, "checkpoints");
    for sql in [
        "UPDATE checkpoints SET mac = hash WHERE seq = 100",
        "DELETE FROM checkpoints WHERE seq = 200",
        "INSERT OR REPLACE INTO checkpoints (seq, hash, key_id, mac, at_ms, reason)
         SELECT seq, hash, key_id, hash, at_ms, reason FROM checkpoints WHERE seq = 100",
    ] {
        let err = raw.execute(sql, []).expect_err(sql);
        assert!(
            err.to_string().contains("checkpoints are append-only"),
            "{sql}: {err}"
        );
    }
    assert_eq!(dump(&raw, "checkpoints"), before);
}

// ---- (a) an edited event ----------------------------------------------------

#[test]
fn an_edited_event_after_the_last_checkpoint_is_a_hash_mismatch_at_its_seq() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    edit_bytes(&raw, 230);
    expect(&verify_break(&f), 230, BreakReason::HashMismatch);
    expect(&startup_break(&f), 230, BreakReason::HashMismatch);
    assert_open_refuses(&f, 230);
}

#[test]
fn an_edited_event_before_the_last_checkpoint_is_found_by_full_verify() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    edit_bytes(&raw, 150);
    let b = verify_break(&f);
    expect(&b, 150, BreakReason::HashMismatch);
    assert!(
        b.to_string()
            .starts_with("journal broken at seq 150: hash_mismatch"),
        "{b}"
    );
    // Documented limit: start-up re-hashes only after checkpoint 200 (whose
    // MAC and hash still hold), so this edit waits for `verify` (and the hub).
    let report = Journal::startup_check(f.db.conn(), &key()).expect("tail is intact");
    assert_eq!(report.from_checkpoint, Some(200));
}

#[test]
fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    let new = edit_bytes(&raw, 240);
    raw.execute(
        "UPDATE journal SET hash = ?1 WHERE seq = 240",
        [Hash256::of(&new).to_hex()],
    )
    .expect("rehash");
    expect(&verify_break(&f), 241, BreakReason::PrevMismatch);
    expect(&startup_break(&f), 241, BreakReason::PrevMismatch);
}

#[test]
fn an_edit_of_the_checkpointed_event_fails_the_checkpoint() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    edit_bytes(&raw, 200);
    expect(&verify_break(&f), 200, BreakReason::HashMismatch);
    expect(&startup_break(&f), 200, BreakReason::CheckpointMismatch);
    assert_open_refuses(&f, 200);
}

#[test]
fn the_last_event_edited_is_found_too() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    edit_bytes(&raw, 250);
    expect(&verify_break(&f), 250, BreakReason::HashMismatch);
    expect(&startup_break(&f), 250, BreakReason::HashMismatch);
}

// ---- (b) a deleted event ----------------------------------------------------

#[test]
fn a_deleted_event_is_a_seq_gap_at_its_seq_for_verify_and_startup() {
    for seq in [1, 150, 200, 230] {
        let f = fixture_250();
        let raw = f.raw();
        drop_triggers(&raw);
        delete(&raw, seq);
        let gap = BreakReason::SeqGap {
            found: Some(seq + 1),
        };
        expect(&verify_break(&f), seq, gap.clone());
        // The gap scan finds it anywhere, even before the last checkpoint.
        expect(&startup_break(&f), seq, gap);
        assert_open_refuses(&f, seq);
    }
}

#[test]
fn a_cut_off_tail_is_found_once_the_hub_acknowledged_it() {
    let mut f = fixture_250();
    {
        let tx = f.db.write_tx().expect("tx");
        Journal::set_acked_seq(&tx, 250, 0).expect("ack");
        tx.commit().expect("commit");
    }
    let raw = f.raw();
    drop_triggers(&raw);
    delete(&raw, 250);
    delete(&raw, 249);
    let truncated = BreakReason::Truncated { acked_seq: 250 };
    expect(&verify_break(&f), 249, truncated.clone());
    expect(&startup_break(&f), 249, truncated);
}

// ---- (c) two events swapped ---------------------------------------------------

#[test]
fn swapped_events_are_a_seq_gap_at_the_first_of_them() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    swap(&raw, 230, 231);
    let gap = BreakReason::SeqGap { found: Some(231) };
    expect(&verify_break(&f), 230, gap.clone());
    expect(&startup_break(&f), 230, gap);
    assert_open_refuses(&f, 230);
}

#[test]
fn events_swapped_before_the_last_checkpoint_are_found_by_full_verify() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    swap(&raw, 150, 160);
    expect(
        &verify_break(&f),
        150,
        BreakReason::SeqGap { found: Some(160) },
    );
}

// ---- Checkpoints and index columns -----------------------------------------

#[test]
fn a_forged_checkpoint_mac_is_refused() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    raw.execute(
        "UPDATE checkpoints SET mac = ?1 WHERE seq = 200",
        [Hash256::of(b"forged").to_hex()],
    )
    .expect("forge");
    expect(&verify_break(&f), 200, BreakReason::BadCheckpoint);
    expect(&startup_break(&f), 200, BreakReason::BadCheckpoint);
}

#[test]
fn a_checkpoint_moved_to_another_hash_is_refused() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    raw.execute(
        "UPDATE checkpoints SET hash = (SELECT hash FROM journal WHERE seq = 199) WHERE seq = 200",
        [],
    )
    .expect("edit");
    expect(&verify_break(&f), 200, BreakReason::BadCheckpoint);
    expect(&startup_break(&f), 200, BreakReason::BadCheckpoint);
}

#[test]
fn a_checkpoint_under_another_key_is_refused() {
    let f = fixture_250();
    let other = caja_shared::key::DeviceKey::from_bytes([8; 32]);
    let err = Journal::startup_check(f.db.conn(), &other).expect_err("wrong key");
    assert_eq!(err.first_bad_seq(), Some(200), "{err}");
    assert!(err.to_string().contains("bad_checkpoint"), "{err}");
}

#[test]
fn verify_from_a_checkpoint_checks_it_and_what_follows() {
    let f = fixture_250();
    let cp = Journal::latest_checkpoint(f.db.conn())
        .expect("read")
        .expect("exists")
        .checkpoint;
    let raw = f.raw();
    drop_triggers(&raw);
    edit_bytes(&raw, 220);
    let err = Journal::verify(f.db.conn(), &key(), Some(&cp), |_, _| {}).expect_err("broken");
    assert_eq!(err.first_bad_seq(), Some(220), "{err}");
    let mut forged = cp.clone();
    forged.hash = Hash256::of(b"x");
    let err = Journal::verify(f.db.conn(), &key(), Some(&forged), |_, _| {}).expect_err("forged");
    assert_eq!(err.first_bad_seq(), Some(200), "{err}");
    assert!(err.to_string().contains("bad_checkpoint"), "{err}");
}

#[test]
fn an_index_column_that_disagrees_with_the_bytes_is_reported() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    raw.execute(
        "UPDATE journal SET event_id = '019aaf70-dc00-7000-8000-0000000000f1' WHERE seq = 245",
        [],
    )
    .expect("edit column");
    let b = verify_break(&f);
    expect(&b, 245, BreakReason::ColumnMismatch { column: "event_id" });
    expect(
        &startup_break(&f),
        245,
        BreakReason::ColumnMismatch { column: "event_id" },
    );
}

#[test]
fn bytes_that_are_not_json_are_a_bad_field() {
    let f = fixture_250();
    let raw = f.raw();
    drop_triggers(&raw);
    raw.execute("UPDATE journal SET bytes = x'00ff' WHERE seq = 210", [])
        .expect("garble");
    expect(
        &verify_break(&f),
        210,
        BreakReason::BadField { field: "json" },
    );
}

/// A journal long enough for `verify` to check on a second thread (from
/// 4,096 events): the same head as the one-thread path, and the same first
/// bad seq once an event is edited and a later one deleted.
#[test]
fn a_long_journal_verified_on_two_threads_names_the_same_first_bad_seq() {
    let mut f = Fixture::new();
    let tx = f.db.write_tx().expect("tx");
    let events: Vec<_> = (0..5_000).map(|_| f.writer.append_in(&tx)).collect();
    tx.commit().expect("commit");
    let head = Journal::verify(f.db.conn(), &key(), None, |_, _| {}).expect("verifies");
    assert_eq!(head.seq, 5_000);
    assert_eq!(head.hash, events[4_999].hash());
    assert_eq!(
        Journal::verify_on_one_thread(f.db.conn(), &key(), None, |_, _| {}).expect("verifies"),
        head
    );
    let raw = f.raw();
    drop_triggers(&raw);
    edit_bytes(&raw, 4_550);
    delete(&raw, 4_800);
    expect(&verify_break(&f), 4_550, BreakReason::HashMismatch);
    match Journal::verify_on_one_thread(f.db.conn(), &key(), None, |_, _| {}) {
        Err(JournalError::Broken(b)) => expect(&b, 4_550, BreakReason::HashMismatch),
        other => panic!("a break, got {other:?}"),
    }
}
