//! The checks `verify` makes on each journal row, over rows copied out of
//! SQLite in batches, so that they can run on a second core while the first
//! reads the next rows: the row's fields from its canonical bytes, seq and
//! `prev` against the chain so far, SHA-256 of the bytes against the stored
//! hash, and the index columns against the bytes.
//!
//! Invariant: pure (no SQL, no I/O); the rows are checked in seq order by
//! one [`Checker`], with the same checks in the same order as one row at a
//! time on one thread, so the first failure reported is the same `Break`,
//! naming the same first bad seq, with everything before it verified.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};

use caja_shared::canonical::{self, Value};
use caja_shared::chain::ChainHead;
use caja_shared::digest::Hash256;

use super::error::{broken, BreakReason, JournalError};
use super::scan::{hex64, is_lower_hex64, parse_hash, skim, tail, Fields};

/// Rows per batch handed to the checker (progress is reported per batch:
/// the verify progress interval is this number).
pub(super) const BATCH_ROWS: usize = 1_024;

/// Below this many rows to verify, the checks run on the reading thread (a
/// start-up check re-hashes at most the events after the last checkpoint).
pub(super) const PARALLEL_FROM: u64 = 4 * BATCH_ROWS as u64;

/// Batches in flight between the reader and the checker.
const IN_FLIGHT: usize = 4;

/// One journal row as read: each column's value, `None` where SQLite holds
/// another type; text and blobs as ranges of the batch's buffer.
#[derive(Debug, Clone)]
pub(super) struct RowCopy {
    seq: Option<i64>,
    event_id: Option<Range<usize>>,
    hash: Option<Range<usize>>,
    prev: Option<Range<usize>>,
    kind: Option<Range<usize>>,
    hlc_ms: Option<i64>,
    hlc_n: Option<i64>,
    /// `None`: the column is not a blob.
    bytes: Option<Range<usize>>,
}

/// A run of consecutive rows and the buffer their text and bytes live in.
#[derive(Debug, Default)]
pub(super) struct Batch {
    buf: Vec<u8>,
    rows: Vec<RowCopy>,
}

impl Batch {
    fn with_capacity() -> Batch {
        Batch {
            buf: Vec::with_capacity(BATCH_ROWS * 512),
            rows: Vec::with_capacity(BATCH_ROWS),
        }
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.rows.clear();
    }

    /// Whether the batch holds [`BATCH_ROWS`] rows.
    pub(super) fn is_full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS
    }

    fn put(&mut self, v: Option<&[u8]>) -> Option<Range<usize>> {
        let v = v?;
        let start = self.buf.len();
        self.buf.extend_from_slice(v);
        Some(start..self.buf.len())
    }

    /// Appends a row: the columns `seq, event_id, hash, prev, kind, hlc_ms,
    /// hlc_n` and the event's bytes (`None`: not a blob).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &mut self,
        seq: Option<i64>,
        event_id: Option<&[u8]>,
        hash: Option<&[u8]>,
        prev: Option<&[u8]>,
        kind: Option<&[u8]>,
        hlc_ms: Option<i64>,
        hlc_n: Option<i64>,
        bytes: Option<&[u8]>,
    ) {
        let row = RowCopy {
            seq,
            event_id: self.put(event_id),
            hash: self.put(hash),
            prev: self.put(prev),
            kind: self.put(kind),
            hlc_ms,
            hlc_n,
            bytes: self.put(bytes),
        };
        self.rows.push(row);
    }

    fn get(&self, r: &Option<Range<usize>>) -> Option<&[u8]> {
        r.as_ref().and_then(|r| self.buf.get(r.clone()))
    }
}

/// The chain verified so far, and the checks of the next rows.
#[derive(Debug)]
pub(super) struct Checker {
    head_seq: u64,
    head_hex: [u8; 64],
    done: u64,
}

impl Checker {
    /// Verification continuing after `start`.
    pub(super) fn new(start: ChainHead) -> Checker {
        Checker {
            head_seq: start.seq,
            head_hex: hex64(&start.hash),
            done: 0,
        }
    }

    /// Rows verified.
    pub(super) fn done(&self) -> u64 {
        self.done
    }

    /// The verified head.
    pub(super) fn head(&self) -> Result<ChainHead, JournalError> {
        let hash = std::str::from_utf8(&self.head_hex)
            .ok()
            .and_then(parse_hash)
            .ok_or_else(|| {
                broken(
                    self.head_seq,
                    BreakReason::ColumnMismatch { column: "hash" },
                )
            })?;
        Ok(ChainHead {
            seq: self.head_seq,
            hash,
        })
    }

    /// Checks a batch's rows in order; stops at the first failure.
    pub(super) fn check(&mut self, batch: &Batch) -> Result<(), JournalError> {
        for row in &batch.rows {
            self.check_row(batch, row)?;
        }
        Ok(())
    }

    fn check_row(&mut self, batch: &Batch, row: &RowCopy) -> Result<(), JournalError> {
        let here = self.head_seq + 1;
        let column = |column| broken(here, BreakReason::ColumnMismatch { column });
        let bad_field = |field| broken(here, BreakReason::BadField { field });
        let bytes = batch.get(&row.bytes).ok_or_else(|| bad_field("bytes"))?;
        let stored = batch.get(&row.hash).ok_or_else(|| column("hash"))?;
        // The chain fields and the values the index columns are checked
        // against: read from the fixed-shape tail of canonical bytes, else by a
        // scan of the top level, else by the strict parser.
        let parsed: Value;
        let fields = match tail::envelope_fields(bytes).or_else(|| skim::envelope_fields(bytes)) {
            Some(fields) => fields,
            None => {
                parsed = canonical::parse(bytes).map_err(|_| bad_field("json"))?;
                Fields::of(&parsed)
            }
        };
        let seq = fields.seq.ok_or_else(|| bad_field("seq"))?;
        let prev = fields
            .prev_hex
            .map(str::as_bytes)
            .ok_or_else(|| bad_field("prev"))?;
        if seq != here {
            return Err(broken(here, BreakReason::SeqGap { found: Some(seq) }));
        }
        // Equal to the (valid) previous hash, or else classified: the hex
        // checks run only on the failure path.
        if prev != self.head_hex {
            return Err(if is_lower_hex64(prev) {
                broken(here, BreakReason::PrevMismatch)
            } else {
                bad_field("prev")
            });
        }
        if hex64(&Hash256::of(bytes)) != stored {
            return Err(if is_lower_hex64(stored) {
                broken(here, BreakReason::HashMismatch)
            } else {
                column("hash")
            });
        }
        check_columns(batch, row, &fields, seq).map_err(column)?;
        self.head_hex.copy_from_slice(stored);
        self.head_seq = seq;
        self.done += 1;
        Ok(())
    }
}

/// The index columns of a verified row must say what its bytes say.
fn check_columns(
    batch: &Batch,
    row: &RowCopy,
    fields: &Fields<'_>,
    seq: u64,
) -> Result<(), &'static str> {
    if row.seq.and_then(|s| u64::try_from(s).ok()) != Some(seq) {
        return Err("seq");
    }
    let prev = batch.get(&row.prev);
    if prev.is_none() || prev != fields.prev_hex.map(str::as_bytes) {
        return Err("prev");
    }
    let event_id = batch.get(&row.event_id);
    if event_id.is_none() || event_id != fields.event_id.map(str::as_bytes) {
        return Err("event_id");
    }
    let kind = batch.get(&row.kind);
    if kind.is_none() || kind != fields.kind.map(str::as_bytes) {
        return Err("kind");
    }
    if row.hlc_ms.is_none() || row.hlc_ms != fields.hlc_ms {
        return Err("hlc_ms");
    }
    if row.hlc_n.is_none() || row.hlc_n != fields.hlc_n {
        return Err("hlc_n");
    }
    Ok(())
}

/// Where the reader hands its batches: checked on the reading thread, or
/// sent to a checker thread.
pub(super) enum Sink<'s> {
    /// Checked where read.
    Here(Checker),
    /// Sent to the checker thread; emptied batches come back for reuse.
    Thread {
        to: SyncSender<Batch>,
        back: Receiver<Batch>,
        verified: &'s AtomicU64,
    },
}

impl Sink<'_> {
    /// Rows verified so far.
    pub(super) fn verified(&self) -> u64 {
        match self {
            Sink::Here(c) => c.done(),
            Sink::Thread { verified, .. } => verified.load(Ordering::Relaxed),
        }
    }

    /// Hands over a full (or last) batch; returns an empty one to fill next.
    /// `Err(())`: the checker thread has stopped (it found a break), so
    /// reading on is useless.
    pub(super) fn hand(&mut self, mut batch: Batch) -> Result<Batch, HandError> {
        match self {
            Sink::Here(checker) => {
                checker.check(&batch).map_err(HandError::Break)?;
                batch.clear();
                Ok(batch)
            }
            Sink::Thread { to, back, .. } => {
                to.send(batch).map_err(|_| HandError::CheckerStopped)?;
                let mut next = back.try_recv().unwrap_or_else(|_| Batch::with_capacity());
                next.clear();
                Ok(next)
            }
        }
    }
}

/// Why a batch could not be handed over.
#[derive(Debug)]
pub(super) enum HandError {
    /// The checks on this thread found a break.
    Break(JournalError),
    /// The checker thread stopped; its result says why.
    CheckerStopped,
}

/// Runs `read` with a [`Sink`]: the checks on this thread, or (`threaded`)
/// on a second one. A break the checks found comes before a failure of the
/// reading (it is at an earlier row: the reader had read past it).
pub(super) fn run(
    start: ChainHead,
    threaded: bool,
    read: impl FnOnce(&mut Sink<'_>, Batch) -> Result<(), JournalError>,
) -> Result<Checker, JournalError> {
    if !threaded {
        let mut sink = Sink::Here(Checker::new(start));
        read(&mut sink, Batch::with_capacity())?;
        return match sink {
            Sink::Here(c) => Ok(c),
            Sink::Thread { .. } => unreachable!("made above as Here"),
        };
    }
    let verified = AtomicU64::new(0);
    std::thread::scope(|s| {
        let (to, from_reader) = mpsc::sync_channel::<Batch>(IN_FLIGHT);
        let (to_reader, back) = mpsc::channel::<Batch>();
        let verified_ref = &verified;
        let checker = std::thread::Builder::new()
            .name("journal-verify".into())
            .spawn_scoped(s, move || {
                let mut checker = Checker::new(start);
                for mut batch in from_reader {
                    checker.check(&batch)?;
                    verified_ref.store(checker.done(), Ordering::Relaxed);
                    batch.clear();
                    // The reader may have finished: the batch is then dropped.
                    let _ = to_reader.send(batch);
                }
                Ok::<Checker, JournalError>(checker)
            })
            .map_err(JournalError::Io)?;
        let mut sink = Sink::Thread {
            to,
            back,
            verified: &verified,
        };
        let read_result = read(&mut sink, Batch::with_capacity());
        // Closing the channel ends the checker's loop once it has checked
        // everything sent.
        drop(sink);
        let checked = match checker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match (checked, read_result) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(c), Ok(())) => Ok(c),
        }
    })
}

/// Reads a row's columns into `batch` (shared by the reading loop and the
/// tests): `seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes`.
pub(super) fn push_row(batch: &mut Batch, row: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
    let text = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_bytes().ok());
    let int = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_i64().ok());
    let bytes = row.get_ref(7)?.as_blob().ok();
    let hash = row.get_ref(2)?.as_bytes().ok();
    batch.push(
        int(0),
        text(1),
        hash,
        text(3),
        text(4),
        int(5),
        int(6),
        bytes,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use caja_shared::entropy::SeededRandom;
    use caja_shared::event::{Event, EventDraft};
    use caja_shared::hlc::Hlc;
    use caja_shared::ids::Seq;
    use caja_shared::kind::{EventBody, ShiftOpened};
    use caja_shared::money::Money;

    use super::*;

    /// A chain of `n` events, as journal rows (the index columns as the
    /// strict parser reads them from the bytes).
    fn chain(n: u64) -> Vec<Event> {
        let mut rng = SeededRandom::new(3);
        let mut prev = Hash256::ZERO;
        (1..=n)
            .map(|seq| {
                let e = Event::build(
                    EventDraft {
                        store: "01935f4e-8a00-7000-8000-000000000001".parse().expect("id"),
                        device: "01935f4e-8a00-7000-8000-0000000000d1".parse().expect("id"),
                        seq: Seq::new(seq).expect("seq"),
                        prev,
                        hlc: Hlc::new(1_763_880_000_000 + i64::try_from(seq).expect("seq"), 0)
                            .expect("hlc"),
                        deps: vec![],
                        body: EventBody::ShiftOpened(ShiftOpened {
                            shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"),
                            cashier: "ana".into(),
                            opening_float: Money(0),
                            staff_id: None,
                        }),
                    },
                    &mut rng,
                )
                .expect("event");
                prev = e.hash();
                e
            })
            .collect()
    }

    /// One row: (seq, event_id, hash, prev, kind, hlc_ms, hlc_n, bytes).
    type Row = (i64, String, String, String, String, i64, i64, Vec<u8>);

    fn rows(events: &[Event]) -> Vec<Row> {
        events
            .iter()
            .map(|e| {
                let v = canonical::parse(e.canonical_bytes()).expect("canonical");
                let f = Fields::of(&v);
                (
                    i64::try_from(e.seq().get()).expect("seq"),
                    f.event_id.expect("id").to_owned(),
                    e.hash().to_hex(),
                    f.prev_hex.expect("prev").to_owned(),
                    f.kind.expect("kind").to_owned(),
                    f.hlc_ms.expect("hlc"),
                    f.hlc_n.expect("hlc"),
                    e.canonical_bytes().to_vec(),
                )
            })
            .collect()
    }

    /// Verifies `rows` through [`run`] as the journal's reading loop hands
    /// them over; `then` fails the reading after the last row.
    fn verify(
        rows: &[Row],
        threaded: bool,
        then: Option<JournalError>,
    ) -> Result<(ChainHead, u64), JournalError> {
        let checker = run(ChainHead::GENESIS, threaded, |sink, mut batch| {
            for r in rows {
                batch.push(
                    Some(r.0),
                    Some(r.1.as_bytes()),
                    Some(r.2.as_bytes()),
                    Some(r.3.as_bytes()),
                    Some(r.4.as_bytes()),
                    Some(r.5),
                    Some(r.6),
                    Some(&r.7),
                );
                if batch.is_full() {
                    batch = match sink.hand(batch) {
                        Ok(next) => next,
                        Err(HandError::Break(e)) => return Err(e),
                        Err(HandError::CheckerStopped) => return Ok(()),
                    };
                }
            }
            match sink.hand(batch) {
                Ok(_) | Err(HandError::CheckerStopped) => {}
                Err(HandError::Break(e)) => return Err(e),
            }
            then.map_or(Ok(()), Err)
        })?;
        Ok((checker.head()?, checker.done()))
    }

    fn first_break(r: Result<(ChainHead, u64), JournalError>) -> (u64, BreakReason) {
        match r {
            Err(JournalError::Broken(b)) => (b.seq, b.reason),
            other => panic!("expected a break, got {other:?}"),
        }
    }

    const N: u64 = 3 * BATCH_ROWS as u64 + 17;

    #[test]
    fn both_paths_verify_a_whole_chain_to_its_head() {
        let events = chain(N);
        let rows = rows(&events);
        let head = ChainHead {
            seq: N,
            hash: events.last().expect("events").hash(),
        };
        for threaded in [false, true] {
            assert_eq!(verify(&rows, threaded, None).expect("verifies"), (head, N));
        }
    }

    /// Several things wrong at once: both paths name the first, with the
    /// checks of one row in the one-thread order (prev, hash, columns).
    #[test]
    fn both_paths_name_the_same_first_break() {
        let events = chain(N);
        let good = rows(&events);
        let edit = |f: &dyn Fn(&mut Vec<Row>)| {
            let mut r = good.clone();
            f(&mut r);
            r
        };
        let cases: Vec<(Vec<Row>, u64, BreakReason)> = vec![
            (
                edit(&|r| {
                    r[1500].7[20] ^= 1;
                    r[2500].4 = "SaleCreated".into();
                }),
                1501,
                BreakReason::HashMismatch,
            ),
            (
                edit(&|r| {
                    r[1100].4 = "SaleCreated".into();
                    r[1800].7[20] ^= 1;
                }),
                1101,
                BreakReason::ColumnMismatch { column: "kind" },
            ),
            (
                edit(&|r| {
                    // A recomputed hash and a wrong column: the column is
                    // named at this seq, before the next link breaks.
                    r[2047].7[20] ^= 1;
                    r[2047].2 = Hash256::of(&r[2047].7).to_hex();
                    r[2047].5 += 1;
                }),
                2048,
                BreakReason::ColumnMismatch { column: "hlc_ms" },
            ),
            (
                edit(&|r| r.swap(5, 6)),
                6,
                BreakReason::SeqGap { found: Some(7) },
            ),
            (
                edit(&|r| r.last_mut().expect("rows").3 = "x".repeat(64)),
                N,
                BreakReason::ColumnMismatch { column: "prev" },
            ),
        ];
        for (i, (rows, seq, reason)) in cases.into_iter().enumerate() {
            for threaded in [false, true] {
                assert_eq!(
                    first_break(verify(&rows, threaded, None)),
                    (seq, reason.clone()),
                    "case {i}, threaded {threaded}"
                );
            }
        }
    }

    #[test]
    fn a_break_found_comes_before_a_failure_of_the_reading_after_it() {
        let events = chain(N);
        let good = rows(&events);
        let mut bad = good.clone();
        bad[700].7[20] ^= 1;
        let late = || Some(JournalError::EmptyJournal);
        for threaded in [false, true] {
            assert_eq!(
                first_break(verify(&bad, threaded, late())),
                (701, BreakReason::HashMismatch)
            );
        }
        for threaded in [false, true] {
            assert!(matches!(
                verify(&good, threaded, late()),
                Err(JournalError::EmptyJournal)
            ));
        }
    }
}
