//! A writer batch that fails on a disk fault, against the real router over
//! loopback HTTP: several pushes queue behind SQLite's write lock, so the
//! writer takes them as one transaction; the disk is full, the last push
//! needs new pages and fails, the transaction is rolled back for all of
//! them, and every push of the batch answers `503 storage_unavailable` with
//! `Retry-After` (the disk's fault is the batch's, not a bug: 500 would say
//! otherwise). Nothing is kept, and each push goes through once the disk has
//! room again.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::router::{events, registers, router_hub};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_push_of_a_batch_that_hits_a_full_disk_answers_503_with_retry_after() {
    let (hub, state) = router_hub(test_config()).await;
    let mut w = registers(&hub, 41, 4).await;
    // Each register's first events, at the hub before the disk fills: what
    // registers 1–3 send again below are duplicates (little to write).
    let first: Vec<_> = (0..4).map(|r| events(&mut w, r, 3)).collect();
    for (r, batch) in first.iter().enumerate() {
        let a = hub.push(&w.registers[r], batch).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    // Register 0's next 300 events need new pages of every table.
    let big = events(&mut w, 0, 300);
    let before = hub.business_state();
    state.store.testkit_disk_full(true).await.unwrap();

    // Another connection holds the write lock: the writer takes the first
    // push and waits in `BEGIN`; the others queue behind it and make the
    // next batch, in the order sent (each waits for the one before to be
    // queued).
    let lock = rusqlite::Connection::open(hub.data_dir().join(caja_hub::datadir::DB_FILE)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let hub = Arc::new(hub);
    let mut sent = Vec::new();
    let order: Vec<(usize, Vec<caja_shared::event::Event>)> = vec![
        (1, first[1].clone()),
        (2, first[2].clone()),
        (3, first[3].clone()),
        (1, first[1].clone()),
        (0, big.clone()),
    ];
    for (i, (r, batch)) in order.iter().enumerate() {
        let (h, reg, batch) = (hub.clone(), w.registers[*r].clone(), batch.clone());
        sent.push(tokio::spawn(async move { h.push(&reg, &batch).await }));
        let start = Instant::now();
        while state.store.queue_depth() < i + 1 {
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "push {i} never queued"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let jobs_before = state.store.writer_jobs();
    lock.execute_batch("ROLLBACK").unwrap();
    let mut answers = Vec::new();
    for s in sent {
        answers.push(s.await.unwrap());
    }
    assert_eq!(
        state.store.writer_jobs() - jobs_before,
        5,
        "five writer jobs"
    );
    for (i, a) in answers.iter().enumerate() {
        assert!(
            a.status == 200
                || (a.status, a.body["error"].as_str(), a.retry_after.as_deref())
                    == (503, Some("storage_unavailable"), Some("10")),
            "push {i} of the batch: {} {:?}",
            a.status,
            a.body
        );
    }
    // The big push failed for the disk; the ones batched before it that had
    // room were rolled back with it and answered the same.
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses[4], 503, "the push that needed pages: {statuses:?}");
    let rolled_back = statuses[1..4].iter().filter(|s| **s == 503).count();
    assert!(
        rolled_back > 0,
        "no push shared the failing push's batch: {statuses:?}"
    );
    assert_eq!(hub.business_state(), before, "nothing kept");

    // Room again: every push goes through, once.
    state.store.testkit_disk_full(false).await.unwrap();
    let a = hub.push(&w.registers[0], &big).await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (200, Some(300)),
        "{:?}",
        a.body
    );
    for (r, batch) in first.iter().enumerate().skip(1) {
        let a = hub.push(&w.registers[r], batch).await;
        assert_eq!(
            (a.status, a.body["duplicates"].as_u64()),
            (200, Some(3)),
            "{:?}",
            a.body
        );
    }
}
