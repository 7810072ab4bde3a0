//! Push validation and causal ordering: the decisions of `POST /v1/sync/push`,
//! with no SQL and no HTTP.
//!
//! DESIGN.md fixes the checks and their order; each stops the request with
//! nothing stored:
//! 1. authentication (401) — [`crate::auth`], before anything here;
//! 2. body and event schemas, `v`, known kinds (400 naming `events[i].<field>`) —
//!    [`parse_push`], then [`check_scope`] (an event of another store is 403
//!    `wrong_store`, of another device 400 `events[i].device`);
//! 3. position against what the hub holds — [`check_position`]: a gap is 409
//!    `seq_gap`; a stored seq with another hash is 409 `chain_mismatch` (the
//!    caller quarantines the device and raises an alert);
//! 4. continuity inside the batch (400 `events[i].seq` / `events[i].prev`) —
//!    [`check_continuity`], then [`check_new_ids`] (an event id already used by
//!    another event is 400 `events[i].event_id`);
//! 5. the checkpoint (401 `bad_checkpoint`; 400 when it covers another event) —
//!    [`check_checkpoint`].
//!
//! Then every new event is stored and offered to the causal gate ([`admit`]): an
//! event is applied only when all its `deps` and the device's previous event are
//! applied; otherwise it is held with the list of what it misses. Applying an
//! event releases, transitively, the held events that waited only for it.
//!
//! Architecture invariant: pure decisions over values the caller passes in; the
//! store implements [`CausalIndex`] over SQLite, tests over a `HashMap`.

use std::collections::{BTreeMap, HashSet};

use caja_shared::canonical::{self, Value};
use caja_shared::checkpoint::Checkpoint;
use caja_shared::digest::Hash256;
use caja_shared::event::{EnvelopeError, Event};
use caja_shared::ids::{DeviceId, EventId, KeyId, StoreId};
use caja_shared::key::DeviceKey;
use caja_shared::kind::{EventBody, FiscalDocType};
use caja_shared::push::PushDocument;

use crate::wire::ApiError;

/// Fields of a push body.
const PUSH_FIELDS: [&str; 5] = ["device", "events", "checkpoint", "backlog", "documents"];

/// A pushed event: the envelope as received and its decoded body.
#[derive(Debug, Clone)]
pub struct PushedEvent {
    /// The event (its hash is of the canonical form of what was received).
    pub event: Event,
    /// The strictly decoded body.
    pub body: EventBody,
}

impl PushedEvent {
    /// The event's seq as a number.
    pub fn seq(&self) -> u64 {
        self.event.seq().get()
    }
}

/// A schema-valid push body.
#[derive(Debug, Clone)]
pub struct PushBatch {
    /// The pushing device, as the body names it.
    pub device: DeviceId,
    /// Its events, in the order sent (at least one).
    pub events: Vec<PushedEvent>,
    /// The checkpoint of the last event.
    pub checkpoint: Checkpoint,
    /// Events still unsynced on the node.
    pub backlog: u64,
    /// The signed documents sent beside the events (each already checked to
    /// hash to its `sha256`).
    pub documents: Vec<PushDocument>,
}

impl PushBatch {
    /// The last event (a batch is never empty).
    pub fn last(&self) -> &PushedEvent {
        // parse_push guarantees at least one event.
        &self.events[self.events.len() - 1]
    }
}

fn envelope_error(i: usize, e: EnvelopeError) -> ApiError {
    let field = if e.field.is_empty() {
        format!("events[{i}]")
    } else {
        format!("events[{i}].{}", e.field)
    };
    ApiError::bad_request(e.code(), field, e.to_string())
}

/// Parses and validates a push body: strict canonical-JSON rules, known fields
/// only, 1..=`max_events` events each valid per the envelope v1 and its kind's
/// body, a checkpoint of the right shape naming the body's device.
pub fn parse_push(bytes: &[u8], max_events: usize) -> Result<PushBatch, ApiError> {
    let value = canonical::parse(bytes).map_err(|e| ApiError::invalid("$", e.to_string()))?;
    let documents = match &value {
        Value::Object(_) => {
            PushDocument::decode_all(&value).map_err(|e| ApiError::invalid(e.path, e.reason))?
        }
        _ => Vec::new(),
    };
    let Value::Object(obj) = value else {
        return Err(ApiError::invalid("$", "the body must be a JSON object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !PUSH_FIELDS.contains(k)) {
        return Err(ApiError::invalid(unknown, "unknown field"));
    }
    let get = |name: &'static str| {
        obj.get(name)
            .ok_or_else(|| ApiError::invalid(name, "missing"))
    };
    let device: DeviceId = get("device")?
        .as_str()
        .ok_or_else(|| ApiError::invalid("device", "must be a string"))?
        .parse()
        .map_err(|e| ApiError::invalid("device", format!("{e}")))?;
    let list = get("events")?
        .as_array()
        .ok_or_else(|| ApiError::invalid("events", "must be an array"))?;
    if list.is_empty() {
        return Err(ApiError::invalid("events", "must hold at least one event"));
    }
    if list.len() > max_events {
        return Err(ApiError::invalid(
            "events",
            format!("at most {max_events} events per push"),
        ));
    }
    let mut events = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let (event, body) =
            Event::from_value_strict(v.clone()).map_err(|e| envelope_error(i, e))?;
        events.push(PushedEvent { event, body });
    }
    let cp = get("checkpoint")?;
    if cp.as_object().is_none() {
        return Err(ApiError::invalid("checkpoint", "must be an object"));
    }
    let checkpoint: Checkpoint = serde_path_to_error::deserialize(cp.to_serde()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "checkpoint".to_owned()
        } else {
            format!("checkpoint.{path}")
        };
        ApiError::invalid(field, e.inner().to_string())
    })?;
    if checkpoint.device != device {
        return Err(ApiError::invalid(
            "checkpoint.device",
            "must be the pushing device",
        ));
    }
    let backlog = get("backlog")?
        .as_i64()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| ApiError::invalid("backlog", "must be a non-negative integer"))?;
    Ok(PushBatch {
        device,
        events,
        checkpoint,
        backlog,
        documents,
    })
}

/// A device may push only its own chain, in its own store: the body's device
/// and every event's device must be the authenticated device (400), every
/// event's store the device's store (403 `wrong_store`).
pub fn check_scope(batch: &PushBatch, device: DeviceId, store: StoreId) -> Result<(), ApiError> {
    if batch.device != device {
        return Err(ApiError::invalid(
            "device",
            "must be the device that signed the request",
        ));
    }
    for (i, e) in batch.events.iter().enumerate() {
        let env = e.event.envelope();
        if env.device != device {
            return Err(ApiError::invalid(
                format!("events[{i}].device"),
                "a device pushes only its own events",
            ));
        }
        if env.store != store {
            return Err(ApiError {
                field: Some(format!("events[{i}].store")),
                ..ApiError::forbidden(
                    "wrong_store",
                    "the event names another store than the device's",
                )
            });
        }
    }
    Ok(())
}

/// What the hub holds of a device's chain, as far as one batch needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainView {
    /// Highest contiguous seq stored (held events included); 0 when none.
    pub acked_seq: u64,
    /// Hash of the event at `acked_seq` (zeros when none).
    pub head_hash: Hash256,
    /// Stored hashes for the batch's seqs that are ≤ `acked_seq`.
    pub stored: BTreeMap<u64, Hash256>,
}

/// The seqs of a batch whose stored hashes [`check_position`] needs.
pub fn overlap(batch: &PushBatch, acked_seq: u64) -> Vec<u64> {
    let mut seqs: Vec<u64> = batch
        .events
        .iter()
        .map(PushedEvent::seq)
        .filter(|s| *s <= acked_seq)
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    seqs
}

/// Why a batch does not fit what the hub holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionReject {
    /// The batch starts after `acked_seq + 1` (409 `seq_gap`).
    SeqGap {
        /// `acked_seq + 1`.
        expected_seq: u64,
    },
    /// The device's chain contradicts what the hub holds (409 `chain_mismatch`).
    ChainMismatch {
        /// The first stored seq the batch contradicts.
        seq: u64,
        /// The hub's `acked_seq`.
        acked_seq: u64,
        /// What the hub holds at `seq`.
        stored_hash: Hash256,
        /// What the batch says is at `seq` (the pushed event's hash, or the
        /// `prev` of the event right after it).
        pushed_hash: Hash256,
    },
}

impl PositionReject {
    /// The wire answer.
    pub fn to_api(&self) -> ApiError {
        match self {
            PositionReject::SeqGap { expected_seq } => ApiError::seq_gap(*expected_seq),
            PositionReject::ChainMismatch { seq, acked_seq, .. } => {
                ApiError::chain_mismatch(*seq, *acked_seq)
            }
        }
    }
}

/// How a batch that fits splits into duplicates and new events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Events the hub already holds with the same hash.
    pub duplicates: usize,
    /// Events beyond `acked_seq`.
    pub new: usize,
}

/// Checks a batch against what the hub holds. A stored seq pushed with another
/// hash, or a first new event whose `prev` is not the stored head, contradicts
/// history the hub has seen: `chain_mismatch`. A batch starting beyond
/// `acked_seq + 1` is a `seq_gap`.
pub fn check_position(view: &ChainView, batch: &PushBatch) -> Result<Position, PositionReject> {
    let acked = view.acked_seq;
    let first = batch.events[0].seq();
    if first > acked.saturating_add(1) {
        return Err(PositionReject::SeqGap {
            expected_seq: acked + 1,
        });
    }
    let mut duplicates = 0;
    let mut new = 0;
    for (i, e) in batch.events.iter().enumerate() {
        let seq = e.seq();
        if seq <= acked {
            let stored = view.stored.get(&seq).copied().unwrap_or(Hash256::ZERO);
            if stored != e.event.hash() {
                return Err(PositionReject::ChainMismatch {
                    seq,
                    acked_seq: acked,
                    stored_hash: stored,
                    pushed_hash: e.event.hash(),
                });
            }
            duplicates += 1;
        } else {
            if i == 0 && seq == acked + 1 && e.event.envelope().prev != view.head_hash {
                return Err(PositionReject::ChainMismatch {
                    seq: acked,
                    acked_seq: acked,
                    stored_hash: view.head_hash,
                    pushed_hash: e.event.envelope().prev,
                });
            }
            new += 1;
        }
    }
    Ok(Position { duplicates, new })
}

/// Continuity inside the batch: each event follows the previous one in `seq`
/// and names its hash in `prev`.
pub fn check_continuity(batch: &PushBatch) -> Result<(), ApiError> {
    for (i, pair) in batch.events.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        let i = i + 1;
        if b.seq() != a.seq().saturating_add(1) {
            return Err(ApiError::invalid(
                format!("events[{i}].seq"),
                format!(
                    "must be {} (events are contiguous, in seq order)",
                    a.seq() + 1
                ),
            ));
        }
        if b.event.envelope().prev != a.event.hash() {
            return Err(ApiError::invalid(
                format!("events[{i}].prev"),
                format!("must be the hash of events[{}]", i - 1),
            ));
        }
    }
    Ok(())
}

/// New events must have event ids no other stored event has (`existing` holds
/// those of their ids the hub already knows) and that are unique in the batch.
pub fn check_new_ids(
    batch: &PushBatch,
    acked_seq: u64,
    existing: &HashSet<EventId>,
) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for (i, e) in batch.events.iter().enumerate() {
        if e.seq() <= acked_seq {
            continue;
        }
        let id = e.event.id();
        if existing.contains(&id) || !seen.insert(id) {
            return Err(ApiError::invalid(
                format!("events[{i}].event_id"),
                "another event already has this id",
            ));
        }
    }
    Ok(())
}

/// The checkpoint must cover the batch's last event and its MAC must verify
/// under one of the device's valid keys (`key` looks a key id up).
pub fn check_checkpoint<'k>(
    batch: &PushBatch,
    key: impl Fn(&KeyId) -> Option<&'k DeviceKey>,
    now_ms: i64,
) -> Result<(), ApiError> {
    let cp = &batch.checkpoint;
    let last = batch.last();
    if cp.seq != last.event.seq() {
        return Err(ApiError::invalid(
            "checkpoint.seq",
            "must be the seq of the last event pushed",
        ));
    }
    if cp.hash != last.event.hash() {
        return Err(ApiError::invalid(
            "checkpoint.hash",
            "must be the hash of the last event pushed",
        ));
    }
    let bad = || {
        ApiError::unauthorized(
            "bad_checkpoint",
            "the checkpoint MAC does not verify",
            now_ms,
        )
    };
    let key = key(&cp.key_id).ok_or_else(bad)?;
    cp.verify(key).map_err(|_| bad())
}

/// The causal state the gate reads and changes. The store implements it over
/// SQLite inside the push transaction.
pub trait CausalIndex {
    /// Storage error.
    type Error;
    /// Whether the event is applied.
    fn is_applied(&mut self, id: &EventId) -> Result<bool, Self::Error>;
    /// Applies a stored event whose dependencies are all applied.
    fn apply(&mut self, id: &EventId) -> Result<(), Self::Error>;
    /// Holds a stored event until every id in `missing` is applied.
    fn hold(&mut self, id: &EventId, missing: &[EventId]) -> Result<(), Self::Error>;
    /// Records that `applied` is applied for every held event waiting for it, and
    /// returns those that now miss nothing, in a deterministic order.
    fn unblock(&mut self, applied: &EventId) -> Result<Vec<EventId>, Self::Error>;
}

/// An event offered to the gate.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its id.
    pub id: EventId,
    /// Its declared dependencies.
    pub deps: &'a [EventId],
    /// The device's previous event (an implicit dependency), none for seq 1.
    pub previous: Option<EventId>,
}

/// What the gate did with a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Applied, and these held events were released by it (in apply order).
    Applied {
        /// Released events, transitively.
        released: Vec<EventId>,
    },
    /// Held until these are applied.
    Held {
        /// Dependencies not yet applied (the previous event first, if missing).
        missing: Vec<EventId>,
    },
}

/// Offers a stored event to the gate: applies it if nothing it depends on is
/// missing (then releases what waited for it), else holds it.
pub fn admit<I: CausalIndex>(index: &mut I, c: &Candidate<'_>) -> Result<Admission, I::Error> {
    let mut missing = Vec::new();
    for id in c.previous.iter().chain(c.deps.iter()) {
        if !missing.contains(id) && !index.is_applied(id)? {
            missing.push(*id);
        }
    }
    if !missing.is_empty() {
        index.hold(&c.id, &missing)?;
        return Ok(Admission::Held { missing });
    }
    index.apply(&c.id)?;
    let released = cascade(index, c.id)?;
    Ok(Admission::Applied { released })
}

/// Applies, transitively, the held events released by `applied`. Each held
/// event is applied at most once (it leaves the index when applied), so the loop
/// runs at most once per held event.
pub fn cascade<I: CausalIndex>(index: &mut I, applied: EventId) -> Result<Vec<EventId>, I::Error> {
    let mut released = Vec::new();
    let mut work = vec![applied];
    while let Some(x) = work.pop() {
        for w in index.unblock(&x)? {
            index.apply(&w)?;
            released.push(w);
            work.push(w);
        }
    }
    Ok(released)
}

/// An in-memory [`CausalIndex`], for tests and the simulation.
#[derive(Debug, Default, Clone)]
pub struct MemoryIndex {
    /// Applied events, in apply order.
    pub order: Vec<EventId>,
    applied: HashSet<EventId>,
    missing: BTreeMap<EventId, Vec<EventId>>,
}

impl MemoryIndex {
    /// Held events and what each still misses.
    pub fn held(&self) -> &BTreeMap<EventId, Vec<EventId>> {
        &self.missing
    }
}

impl CausalIndex for MemoryIndex {
    type Error = std::convert::Infallible;

    fn is_applied(&mut self, id: &EventId) -> Result<bool, Self::Error> {
        Ok(self.applied.contains(id))
    }

    fn apply(&mut self, id: &EventId) -> Result<(), Self::Error> {
        assert!(self.applied.insert(*id), "event {id} applied twice");
        self.missing.remove(id);
        self.order.push(*id);
        Ok(())
    }

    fn hold(&mut self, id: &EventId, missing: &[EventId]) -> Result<(), Self::Error> {
        self.missing.insert(*id, missing.to_vec());
        Ok(())
    }

    fn unblock(&mut self, applied: &EventId) -> Result<Vec<EventId>, Self::Error> {
        let mut ready = Vec::new();
        for (id, m) in self.missing.iter_mut() {
            m.retain(|x| x != applied);
            if m.is_empty() {
                ready.push(*id);
            }
        }
        Ok(ready)
    }
}

/// A signed document a push stores: its bytes (from the push) and what its
/// `FiscalDocumentIssued` event says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedDocument<'a> {
    /// SHA-256 of the bytes.
    pub sha256: Hash256,
    /// The e-NCF.
    pub encf: &'a str,
    /// `ecf` or `rfce`.
    pub kind: &'a str,
    /// Invoice or credit note.
    pub doc_type: FiscalDocType,
    /// The naming event's seq and id.
    pub seq: u64,
    /// The naming event.
    pub event_id: EventId,
    /// The e-CF's security code.
    pub security_code: &'a str,
    /// When it was signed (UTC ms).
    pub signed_at_ms: i64,
    /// The signed bytes.
    pub xml: &'a [u8],
}

/// The document kinds a register signs.
pub const REGISTER_DOCUMENT_KINDS: [&str; 2] = ["ecf", "rfce"];

/// Checks a batch's `documents` against its `FiscalDocumentIssued` events
/// (DESIGN "Electronic fiscal documents"): every pushed document must be
/// named by an event of the batch, or already be held (`held`, the pushed
/// and named hashes the hub stores); every document a **new** event (seq
/// above `acked_seq`) names must be pushed or held, else the push is refused
/// whole (400 `invalid`, field `documents`). Returns the documents to store:
/// those new events name and the push carries, not yet held.
pub fn check_documents<'a>(
    batch: &'a PushBatch,
    acked_seq: u64,
    held: &HashSet<Hash256>,
) -> Result<Vec<NamedDocument<'a>>, ApiError> {
    let pushed: BTreeMap<Hash256, &PushDocument> =
        batch.documents.iter().map(|d| (d.sha256, d)).collect();
    let mut named: HashSet<Hash256> = HashSet::new();
    let mut out = Vec::new();
    for (i, e) in batch.events.iter().enumerate() {
        let EventBody::FiscalDocumentIssued(b) = &e.body else {
            continue;
        };
        for (j, d) in b.documents.iter().enumerate() {
            if !REGISTER_DOCUMENT_KINDS.contains(&d.kind.as_str()) {
                return Err(ApiError::invalid(
                    format!("events[{i}].body.documents[{j}].kind"),
                    "must be ecf or rfce",
                ));
            }
            if !named.insert(d.sha256) || e.seq() <= acked_seq {
                continue;
            }
            match pushed.get(&d.sha256) {
                _ if held.contains(&d.sha256) => {}
                Some(p) => out.push(NamedDocument {
                    sha256: d.sha256,
                    encf: &b.encf,
                    kind: &d.kind,
                    doc_type: b.doc_type,
                    seq: e.seq(),
                    event_id: e.event.id(),
                    security_code: &b.security_code,
                    signed_at_ms: b.signed_at_ms,
                    xml: &p.xml,
                }),
                None => {
                    return Err(ApiError::invalid(
                        "documents",
                        format!(
                            "events[{i}] (seq {}) names the {} document {} of {}, which this push does not carry and the hub does not hold",
                            e.seq(),
                            d.kind,
                            d.sha256,
                            b.encf
                        ),
                    ))
                }
            }
        }
    }
    for (i, d) in batch.documents.iter().enumerate() {
        if !named.contains(&d.sha256) && !held.contains(&d.sha256) {
            return Err(ApiError::invalid(
                format!("documents[{i}].sha256"),
                "no FiscalDocumentIssued event of this push names this document",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::entropy::SeededRandom;
    use caja_shared::event::EventDraft;
    use caja_shared::hlc::Hlc;
    use caja_shared::ids::Seq;
    use caja_shared::kind::{ShiftOpened, StockReceived};
    use caja_shared::money::{Money, QtyMilli};
    use proptest::prelude::*;

    const STORE: &str = "01935f4e-8a00-7000-8000-0000000000a1";
    const DEVICE: &str = "01935f4e-8a00-7000-8000-0000000000d1";

    fn chain(n: u64, seed: u64) -> Vec<Event> {
        let mut rng = SeededRandom::new(seed);
        let mut prev = Hash256::ZERO;
        (1..=n)
            .map(|seq| {
                let body = if seq == 1 {
                    EventBody::ShiftOpened(ShiftOpened {
                        shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().unwrap(),
                        cashier: "ana".into(),
                        opening_float: Money(100),
                        staff_id: None,
                    })
                } else {
                    EventBody::StockReceived(StockReceived {
                        product: "rice".parse().unwrap(),
                        qty_milli: QtyMilli(i64::try_from(seq).unwrap() * 1000),
                        reference: None,
                    })
                };
                let e = Event::build(
                    EventDraft {
                        store: STORE.parse().unwrap(),
                        device: DEVICE.parse().unwrap(),
                        seq: Seq::new(seq).unwrap(),
                        prev,
                        hlc: Hlc::new(1_763_880_000_000 + i64::try_from(seq).unwrap(), 0).unwrap(),
                        deps: vec![],
                        body,
                    },
                    &mut rng,
                )
                .unwrap();
                prev = e.hash();
                e
            })
            .collect()
    }

    fn body_of(events: &[Event], key: &DeviceKey) -> Vec<u8> {
        let last = &events[events.len() - 1];
        let cp = Checkpoint::sign(
            key,
            "k1".parse().unwrap(),
            DEVICE.parse().unwrap(),
            last.seq(),
            last.hash(),
        );
        let list: Vec<String> = events
            .iter()
            .map(|e| String::from_utf8(e.canonical_bytes().to_vec()).unwrap())
            .collect();
        format!(
            r#"{{"device":"{DEVICE}","events":[{}],"checkpoint":{},"backlog":0}}"#,
            list.join(","),
            serde_json::to_string(&cp).unwrap()
        )
        .into_bytes()
    }

    fn batch(events: &[Event]) -> PushBatch {
        parse_push(&body_of(events, &DeviceKey::from_bytes([1; 32])), 1000).unwrap()
    }

    fn view(events: &[Event], acked: u64, b: &PushBatch) -> ChainView {
        let mut v = ChainView {
            acked_seq: acked,
            head_hash: if acked == 0 {
                Hash256::ZERO
            } else {
                events[usize::try_from(acked).unwrap() - 1].hash()
            },
            stored: BTreeMap::new(),
        };
        for s in overlap(b, acked) {
            v.stored
                .insert(s, events[usize::try_from(s).unwrap() - 1].hash());
        }
        v
    }

    #[test]
    fn schema_errors_name_the_field() {
        let ev = chain(3, 1);
        let good = String::from_utf8(body_of(&ev, &DeviceKey::from_bytes([1; 32]))).unwrap();
        let cases: Vec<(String, &str, &str)> = vec![
            ("{".into(), "invalid", "$"),
            ("[]".into(), "invalid", "$"),
            (
                good.replace(r#""backlog":0"#, r#""backlog":1.5"#),
                "invalid",
                "$",
            ),
            (
                good.replace(r#""backlog":0"#, r#""backlog":-1"#),
                "invalid",
                "backlog",
            ),
            (
                good.replace(r#""backlog":0"#, r#""backlog":0,"x":1"#),
                "invalid",
                "x",
            ),
            (
                good.replace(r#""v":1"#, r#""v":2"#),
                "unsupported_version",
                "events[0].v",
            ),
            (
                good.replacen(r#""kind":"StockReceived""#, r#""kind":"StockStolen""#, 1),
                "unknown_kind",
                "events[1].kind",
            ),
            (
                good.replacen(r#""qty_milli":2000"#, r#""qty_milli":"2000""#, 1),
                "invalid",
                "events[1].body.qty_milli",
            ),
            (
                good.replace(r#""mac":""#, r#""mac":"zz"#),
                "invalid",
                "checkpoint.mac",
            ),
        ];
        for (body, code, field) in cases {
            let err = parse_push(body.as_bytes(), 1000).unwrap_err();
            assert_eq!(
                (err.error, err.field.as_deref()),
                (code, Some(field)),
                "{err}"
            );
        }
        let err = parse_push(good.as_bytes(), 2).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("events"));
    }

    #[test]
    fn position_decisions() {
        let ev = chain(6, 2);
        // Nothing held: 1..=3 is new.
        let b = batch(&ev[0..3]);
        assert_eq!(
            check_position(&view(&ev, 0, &b), &b),
            Ok(Position {
                duplicates: 0,
                new: 3
            })
        );
        // Holding 3: 1..=3 again is all duplicates; 2..=5 is 2 duplicates and 2 new.
        assert_eq!(
            check_position(&view(&ev, 3, &b), &b),
            Ok(Position {
                duplicates: 3,
                new: 0
            })
        );
        let b = batch(&ev[1..5]);
        assert_eq!(
            check_position(&view(&ev, 3, &b), &b),
            Ok(Position {
                duplicates: 2,
                new: 2
            })
        );
        // Gap: hub holds 1, batch starts at 4.
        let b = batch(&ev[3..5]);
        assert_eq!(
            check_position(&view(&ev, 1, &b), &b),
            Err(PositionReject::SeqGap { expected_seq: 2 })
        );
        // Fork: another chain with the same seqs.
        let other = chain(6, 99);
        let b = batch(&other[0..4]);
        let err = check_position(&view(&ev, 3, &b), &b).unwrap_err();
        assert!(
            matches!(
                err,
                PositionReject::ChainMismatch {
                    seq: 1,
                    acked_seq: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        // A first new event that does not chain from the stored head.
        let b = batch(&other[3..5]);
        let err = check_position(&view(&ev, 3, &b), &b).unwrap_err();
        assert!(matches!(
            err,
            PositionReject::ChainMismatch {
                seq: 3,
                acked_seq: 3,
                ..
            }
        ));
    }

    #[test]
    fn continuity_checkpoint_and_ids() {
        let ev = chain(4, 3);
        let key = DeviceKey::from_bytes([1; 32]);
        let b = batch(&ev);
        check_continuity(&b).unwrap();
        let k1: KeyId = "k1".parse().unwrap();
        let lookup = |id: &KeyId| (id == &k1).then_some(&key);
        check_checkpoint(&b, lookup, 0).unwrap();
        let wrong = DeviceKey::from_bytes([2; 32]);
        let err = check_checkpoint(&b, |_| Some(&wrong), 0).unwrap_err();
        assert_eq!((err.status, err.error), (401, "bad_checkpoint"));
        let mut skip = ev.clone();
        skip.remove(2);
        let err = check_continuity(&batch(&skip)).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("events[2].seq"));
        let other = chain(4, 4);
        let mixed = vec![ev[0].clone(), other[1].clone()];
        let err = check_continuity(&batch(&mixed)).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("events[1].prev"));
        let existing: HashSet<EventId> = [ev[2].id()].into_iter().collect();
        let err = check_new_ids(&b, 1, &existing).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("events[2].event_id"));
        check_new_ids(&b, 3, &existing).unwrap();
        let mut other_cp = batch(&ev);
        other_cp.checkpoint.seq = Seq::new(3).unwrap();
        assert_eq!(
            check_checkpoint(&other_cp, lookup, 0)
                .unwrap_err()
                .field
                .as_deref(),
            Some("checkpoint.seq")
        );
    }

    #[test]
    fn scope_rejects_other_stores_and_devices() {
        let ev = chain(2, 5);
        let b = batch(&ev);
        let me: DeviceId = DEVICE.parse().unwrap();
        let store: StoreId = STORE.parse().unwrap();
        check_scope(&b, me, store).unwrap();
        let other_store: StoreId = "01935f4e-8a00-7000-8000-0000000000a2".parse().unwrap();
        let err = check_scope(&b, me, other_store).unwrap_err();
        assert_eq!((err.status, err.error), (403, "wrong_store"));
        let other: DeviceId = "01935f4e-8a00-7000-8000-0000000000d2".parse().unwrap();
        assert_eq!(
            check_scope(&b, other, store).unwrap_err().field.as_deref(),
            Some("device")
        );
    }

    fn id(n: u64) -> EventId {
        let mut rng = SeededRandom::new(n);
        EventId::new_v7(i64::try_from(n).unwrap(), &mut rng).unwrap()
    }

    #[test]
    fn held_events_cascade_when_their_dependency_arrives() {
        let mut idx = MemoryIndex::default();
        // b depends on a (other device); c is b's successor; a arrives last.
        let (a, b, c) = (id(1), id(2), id(3));
        let got = admit(
            &mut idx,
            &Candidate {
                id: b,
                deps: &[a],
                previous: None,
            },
        )
        .unwrap();
        assert_eq!(got, Admission::Held { missing: vec![a] });
        let got = admit(
            &mut idx,
            &Candidate {
                id: c,
                deps: &[],
                previous: Some(b),
            },
        )
        .unwrap();
        assert_eq!(got, Admission::Held { missing: vec![b] });
        let got = admit(
            &mut idx,
            &Candidate {
                id: a,
                deps: &[],
                previous: None,
            },
        )
        .unwrap();
        assert_eq!(
            got,
            Admission::Applied {
                released: vec![b, c]
            }
        );
        assert_eq!(idx.order, vec![a, b, c]);
        assert!(idx.held().is_empty());
    }

    /// A random causal history: `n` events over `devices` devices; event i's
    /// device order is implicit, and it may depend on any earlier event.
    fn history() -> impl Strategy<Value = (Vec<(usize, Vec<usize>)>, Vec<usize>)> {
        (2usize..40, 1usize..5).prop_flat_map(|(n, devices)| {
            let events = proptest::collection::vec(
                (
                    0..devices,
                    proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
                ),
                n,
            );
            (events, Just(n)).prop_flat_map(|(events, n)| {
                let resolved: Vec<(usize, Vec<usize>)> = events
                    .into_iter()
                    .enumerate()
                    .map(|(i, (d, deps))| {
                        let mut ds: Vec<usize> = if i == 0 {
                            vec![]
                        } else {
                            deps.iter().map(|x| x.index(i)).collect()
                        };
                        ds.sort_unstable();
                        ds.dedup();
                        (d, ds)
                    })
                    .collect();
                (
                    Just(resolved),
                    Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                )
            })
        })
    }

    proptest! {
        /// Whatever the arrival order (each device's events arrive in their own
        /// order, devices interleave arbitrarily), every event is applied exactly
        /// once and only after everything it depends on.
        #[test]
        fn any_arrival_order_applies_everything_causally((events, shuffle) in history()) {
            let ids: Vec<EventId> = (0..events.len()).map(|i| id(1000 + i as u64)).collect();
            let mut previous = vec![None; events.len()];
            let mut last_of: BTreeMap<usize, usize> = BTreeMap::new();
            for (i, (d, _)) in events.iter().enumerate() {
                previous[i] = last_of.insert(*d, i);
            }
            // Arrival: a shuffle of devices' turns, each device in its own order.
            let mut queues: BTreeMap<usize, std::collections::VecDeque<usize>> = BTreeMap::new();
            for (i, (d, _)) in events.iter().enumerate() {
                queues.entry(*d).or_default().push_back(i);
            }
            let mut arrival = Vec::new();
            for s in shuffle {
                let d = events[s].0;
                if let Some(i) = queues.get_mut(&d).and_then(|q| q.pop_front()) {
                    arrival.push(i);
                }
            }
            for q in queues.values_mut() {
                arrival.extend(q.drain(..));
            }
            let mut idx = MemoryIndex::default();
            for i in arrival {
                let deps: Vec<EventId> = events[i].1.iter().map(|j| ids[*j]).collect();
                admit(&mut idx, &Candidate { id: ids[i], deps: &deps, previous: previous[i].map(|p| ids[p]) }).unwrap();
            }
            prop_assert_eq!(idx.order.len(), events.len());
            let pos: BTreeMap<EventId, usize> = idx.order.iter().enumerate().map(|(p, id)| (*id, p)).collect();
            for (i, (_, deps)) in events.iter().enumerate() {
                for j in deps.iter().chain(previous[i].iter()) {
                    prop_assert!(pos[&ids[*j]] < pos[&ids[i]]);
                }
            }
        }
    }
}
