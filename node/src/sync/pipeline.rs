//! Pipelined pushes: while one push is at the hub, the next batch is read
//! from the journal and its checkpoint and request signed; it is sent as
//! soon as the window allows, and the acknowledgement of a push is
//! committed locally while the next is in flight. At most
//! `push_window` pushes are at the hub at once (default 1:
//! the hub runs requests concurrently, so two pushes of one register may
//! reach its writer out of order — see below — and on a busy two-core hub
//! the second one mostly arrives first and is sent again).
//!
//! Invariant: order and exactly-once are the hub's position check's, as
//! with one push at a time. Every batch starts where the batch before it
//! ends, so a batch that reaches the hub before its predecessor is stored —
//! because that one failed, timed out or is still queued — finds a gap and
//! is refused whole (409 `seq_gap`, nothing stored); a batch after a failed
//! one is therefore never applied before it. Answers are taken in the order
//! the batches were sent; an acknowledgement is recorded only when it moves
//! forward and stays within the journal, so a late answer cannot move
//! `acked_seq` back. A push that overtook its predecessor on the way (the
//! hub runs requests concurrently; answered `seq_gap`, nothing stored) is
//! sent again once the predecessor is acknowledged, with the pushes behind
//! it. Anything else but a plain acknowledgement ends the
//! pipeline: the answers still in flight are collected (their
//! acknowledgements kept), and the engine's one-at-a-time loop takes over
//! from the recorded `acked_seq`, handling gaps, mismatches and quarantine
//! as before.
//!
//! Only over HTTP: the simulation's transport stays one request at a time,
//! so its runs replay exactly.

use std::collections::VecDeque;
use std::thread::JoinHandle;

use caja_shared::canonical::Value;
use caja_shared::checkpoint::Checkpoint;
use caja_shared::entropy::RandomSource;
use caja_shared::request::SignedHeaders;

use super::client::{Credentials, HubClient, HubError};
use crate::db::{Db, DbError};
use crate::error::OpError;
use crate::journal::{self, Journal, JournalError};

/// Why a pipelined run stopped (the engine turns it into its own error).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    /// The journal.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// SQLite.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Reading a batch.
    #[error(transparent)]
    Op(#[from] OpError),
    /// Anything else (a body that cannot be built, no thread).
    #[error("{0}")]
    Other(String),
}

/// The limits a run works with (from the engine's settings).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Pushes at the hub at once (at least 1 here).
    pub window: usize,
    /// Events per push.
    pub batch: usize,
    /// Bytes per push body.
    pub bytes: usize,
}

/// What a run pushed, for the round's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// New events the hub accepted.
    pub accepted: u64,
    /// Events it already held.
    pub duplicates: u64,
    /// Events held for their dependencies.
    pub held: u64,
}

/// Most times one run sends again after a push overtook its predecessor
/// at the hub (see [`push`]); then the one-at-a-time loop takes over.
const MAX_RESTARTS: u32 = 64;

/// The path of a push.
const PUSH_PATH: &str = "/v1/sync/push";

/// What the pipeline needs of the engine, borrowed for one run.
pub(crate) struct Parts<'a, R> {
    /// The engine's database.
    pub db: &'a mut Db,
    /// The journal writer (for the push checkpoint).
    pub journal: &'a Journal,
    /// Who signs.
    pub creds: &'a Credentials,
    /// The hub.
    pub client: &'a HubClient,
    /// Nonces.
    pub rng: &'a mut R,
    /// Limits.
    pub limits: Limits,
    /// The hub's time now as the register estimates it (signing stamps).
    pub hub_now: &'a dyn Fn() -> i64,
    /// The local clock now (acknowledgement rows).
    pub local_now: &'a dyn Fn() -> i64,
}

/// How a pipelined run ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Everything unsynced was acknowledged.
    Done,
    /// An answer other than a plain acknowledgement (or none): the engine's
    /// one-at-a-time loop goes on from the recorded `acked_seq`.
    HandOver,
}

/// A push read, signed and ready to send.
struct Ready {
    first_seq: u64,
    last_seq: u64,
    head_seq: u64,
    body: Vec<u8>,
    headers: SignedHeaders,
}

/// One push in flight.
struct InFlight {
    first_seq: u64,
    last_seq: u64,
    head_seq: u64,
    answer: JoinHandle<Result<Value, HubError>>,
}

/// Whether pushes are pipelined with this window over this client.
pub(crate) fn enabled(window: usize, client: &HubClient) -> bool {
    window > 0 && client.is_http()
}

/// Reads, checkpoints and signs the batch after `after`; `None` when
/// nothing is left.
fn prepare<R: RandomSource>(
    p: &mut Parts<'_, R>,
    after: u64,
) -> Result<Option<Ready>, PipelineError> {
    let conn = p.db.conn();
    let (events, documents) =
        super::batch::next_batch(conn, after, p.limits.batch, p.limits.bytes)?;
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(None);
    };
    let head = Journal::head(conn)?;
    let cp = Checkpoint::sign(
        &p.creds.key,
        p.creds.key_id.clone(),
        p.creds.device,
        last.seq(),
        last.hash(),
    );
    let last_seq = last.seq().get();
    let body = caja_shared::push::push_body(
        p.creds.device,
        &events,
        &documents,
        &cp,
        head.seq - last_seq,
    )
    .map_err(|e| PipelineError::Other(e.to_string()))?;
    let headers = SignedHeaders::sign(
        &p.creds.key,
        p.creds.device,
        p.creds.key_id.clone(),
        "POST",
        PUSH_PATH,
        &body,
        (p.hub_now)(),
        &mut *p.rng,
    );
    Ok(Some(Ready {
        first_seq: first.seq().get(),
        last_seq,
        head_seq: head.seq,
        body,
        headers,
    }))
}

/// Sends a ready push from its own thread.
fn send(client: &HubClient, r: Ready) -> Result<InFlight, PipelineError> {
    let client = client.clone();
    let (body, headers) = (r.body, r.headers);
    let answer = std::thread::Builder::new()
        .name("caja-push".into())
        .spawn(move || client.send_signed("POST", PUSH_PATH, body, &headers))
        .map_err(|e| PipelineError::Other(format!("cannot start a push thread: {e}")))?;
    Ok(InFlight {
        first_seq: r.first_seq,
        last_seq: r.last_seq,
        head_seq: r.head_seq,
        answer,
    })
}

fn count(v: &Value, k: &str) -> u64 {
    v.get(k)
        .and_then(Value::as_i64)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// Pushes everything unsynced with up to `push_window` pushes at the hub
/// and the next one read and signed ahead.
pub(crate) fn push<R: RandomSource>(
    p: &mut Parts<'_, R>,
    report: &mut Pushed,
) -> Result<Ended, PipelineError> {
    let window = p.limits.window.max(1);
    let mut acked = Journal::acked_seq(p.db.conn())?;
    let mut prepared_upto = acked;
    let mut ready: VecDeque<Ready> = VecDeque::new();
    let mut flight: VecDeque<InFlight> = VecDeque::new();
    let mut ended = Ended::Done;
    let mut restarts = 0;
    loop {
        // Send what the window allows, then read and sign ahead: the next
        // batch is ready while the ones sent are at the hub.
        while ended == Ended::Done && flight.len() < window {
            let Some(r) = ready.pop_front() else { break };
            flight.push_back(send(p.client, r)?);
        }
        while ended == Ended::Done && ready.len() < window {
            let Some(r) = prepare(p, prepared_upto)? else {
                break;
            };
            prepared_upto = r.last_seq;
            ready.push_back(r);
            if flight.len() < window {
                let r = ready.pop_front().expect("just pushed");
                flight.push_back(send(p.client, r)?);
            }
        }
        let Some(f) = flight.pop_front() else {
            return Ok(ended);
        };
        let answer = f
            .answer
            .join()
            .unwrap_or_else(|_| Err(HubError::BadAnswer("push thread panicked".into())));
        let v = match answer {
            Ok(v) => v,
            Err(HubError::Api {
                ref code,
                expected_seq: Some(expected),
                ..
            }) if code == "seq_gap"
                && ended == Ended::Done
                && acked + 1 == f.first_seq
                && expected <= f.first_seq
                && restarts < MAX_RESTARTS =>
            {
                // It overtook its predecessor, which is now acknowledged:
                // nothing of it was stored. The batches behind it met the
                // same gap; send again from the acknowledged seq.
                for later in flight.drain(..) {
                    let _ = later.answer.join();
                }
                ready.clear();
                restarts += 1;
                prepared_upto = acked;
                continue;
            }
            Err(e) => {
                if ended == Ended::Done {
                    tracing::debug!(error = %e, first_seq = f.first_seq, "pipelined push not acknowledged; one at a time from here");
                }
                ended = Ended::HandOver;
                continue;
            }
        };
        let new_acked = count(&v, "acked_seq");
        let head = Journal::head(p.db.conn())?.seq;
        if new_acked <= acked || new_acked > head {
            // Not a step forward (a late answer, or a hub answering oddly):
            // the one-at-a-time loop looks again.
            ended = Ended::HandOver;
            continue;
        }
        report.accepted += count(&v, "accepted");
        report.duplicates += count(&v, "duplicates");
        report.held += v
            .get("held")
            .and_then(Value::as_array)
            .map_or(0, |h| h.len() as u64);
        // The next push goes out before this acknowledgement is committed.
        if ended == Ended::Done && new_acked == f.last_seq && flight.len() < window {
            if let Some(r) = ready.pop_front() {
                flight.push_back(send(p.client, r)?);
            }
        }
        let now = (p.local_now)();
        let tx = p.db.write_tx()?;
        Journal::set_acked_seq(&tx, new_acked, now)?;
        // DESIGN: a checkpoint with every push (of the head, when the push
        // reached it).
        if f.last_seq == f.head_seq && new_acked == f.last_seq {
            p.journal
                .write_checkpoint(&tx, journal::CheckpointReason::Push, now)?;
        }
        tx.commit()?;
        crate::crashpoint::hit("sync:push_acked");
        acked = new_acked;
        if acked != f.last_seq {
            // The hub stored less (or more) than this batch: the batches in
            // flight start at the wrong place.
            ended = Ended::HandOver;
        }
    }
}
