//! How many events one push carries: at most the engine's event count and,
//! with the signed documents named by its `FiscalDocumentIssued` events, at
//! most a byte budget well under the hub's body limit (8 MiB by default).
//!
//! Invariant: a batch is a non-empty prefix of the events after the hub's
//! acknowledged seq, so the hub still receives them in order; a single event
//! whose documents alone exceed the budget still goes alone (the budget is
//! half the hub's limit, and a sale is bounded in lines, so it fits).

use caja_shared::event::Event;
use caja_shared::push::{PushDocument, DOCUMENTS_MEMBER_LEN};
use rusqlite::Connection;

use crate::error::OpError;
use crate::journal::Journal;

/// The node's default byte budget of one push body: half the hub's default
/// 8 MiB body limit, leaving room for the checkpoint, JSON framing and a hub
/// configured lower.
pub const DEFAULT_PUSH_BYTES: usize = 4 * 1024 * 1024;

/// Bytes of a push body besides its events and documents (the checkpoint,
/// device, backlog and framing are a few hundred bytes).
const BODY_OVERHEAD: usize = 1024;

/// How many of `events` fit one push of at most `budget` bytes, counting
/// each event's canonical bytes and the wire size of the documents named at
/// its seq (`doc_sizes`: `(seq, wire bytes)`, any order). Never 0 when
/// `events` is not empty.
pub fn bounded_prefix(events: &[Event], doc_sizes: &[(u64, usize)], budget: usize) -> usize {
    let mut used = BODY_OVERHEAD + DOCUMENTS_MEMBER_LEN;
    for (i, e) in events.iter().enumerate() {
        let seq = e.seq().get();
        let docs: usize = doc_sizes
            .iter()
            .filter(|(s, _)| *s == seq)
            .map(|(_, n)| *n)
            .sum();
        used = used
            .saturating_add(e.canonical_bytes().len() + 1)
            .saturating_add(docs);
        if used > budget {
            return i.max(1);
        }
    }
    events.len()
}

/// The next push: the events after `acked` (at most `max_events`, cut to
/// `max_bytes` by [`bounded_prefix`]) and the signed documents their
/// `FiscalDocumentIssued` events name, in ascending SHA-256 order.
pub fn next_batch(
    conn: &Connection,
    acked: u64,
    max_events: usize,
    max_bytes: usize,
) -> Result<(Vec<Event>, Vec<PushDocument>), OpError> {
    let mut events = Journal::events_after(conn, acked, max_events)?;
    let Some(last) = events.last() else {
        return Ok((events, Vec::new()));
    };
    let sizes = crate::ecf::store::wire_sizes(conn, acked, last.seq().get())?;
    events.truncate(bounded_prefix(&events, &sizes, max_bytes));
    let documents = match events.last() {
        Some(last) => crate::ecf::store::for_push(conn, acked, last.seq().get())?,
        None => Vec::new(),
    };
    Ok((events, documents))
}
