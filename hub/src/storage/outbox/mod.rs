//! The SQL of the tax-authority outbox (see `crate::outbox` for the
//! decisions and `migrations/hub/0010_tax_outbox.sql` for the table).
//!
//! **Enqueue.** A fiscal document enters the outbox in the transaction that
//! applies its event (`storage::ingest::decisions::project` →
//! [`enqueue::enqueue`]) or writes its register off
//! ([`enqueue::enqueue_write_off`], in [`enqueue`]): it is never accepted without being
//! queued, and `INSERT … ON CONFLICT DO NOTHING` on the unique `doc_key`
//! makes a replay (or `caja-hub rebuild`) a no-op.
//!
//! **Claim protocol** (the same SQL on both backends): one conditional
//! `UPDATE … RETURNING` takes up to `limit` due documents whose lease is
//! free or expired and writes this worker's lease (owner, expiry) on them:
//!
//! ```sql
//! UPDATE tax_outbox SET lease_owner = $1, lease_until_ms = CAST($2 AS BIGINT) + CAST($3 AS BIGINT)
//! WHERE doc_id IN (SELECT doc_id FROM tax_outbox
//!                  WHERE state IN ('pending', 'submitted')
//!                    AND (next_attempt_ms <= $2
//!                         OR (next_attempt_ms > $5 AND next_attempt_ms < $6))
//!                    AND (lease_until_ms IS NULL OR lease_until_ms <= $2)
//!                  ORDER BY next_attempt_ms, doc_id LIMIT $4)
//! RETURNING …
//! ```
//!
//! Due times are on the hub's clock. No document is ever scheduled more
//! than the retry policy's horizon (its longest backoff or poll) ahead, so
//! a due time beyond it was written before the hub's clock stepped back,
//! and the document is due now (`$5` is now plus the horizon): a step back
//! does not hold a verdict back by the step (found by the simulation's
//! seed 43). `$6` is `NEVER` (a document refused before sending), which
//! stays never due. Leases are not treated so: a lease beyond its length is
//! still honoured, so a clock skewed between instances never takes a
//! document from a live worker.
//!
//! It runs as a job of the store's writer, inside its write transaction. On
//! SQLite that is `BEGIN IMMEDIATE`, so two hub processes on one file are
//! serialized by SQLite's write lock. On PostgreSQL every write transaction
//! of every instance first takes the writers' advisory lock
//! (`pg_advisory_xact_lock`, see `storage::db`), so claims of several
//! instances are serialized too, and each (`READ COMMITTED`, lock taken
//! before its first read) sees every lease committed before it: two
//! instances never claim the same row. `FOR UPDATE SKIP LOCKED` was the
//! alternative; it would only matter if claims ran outside the writers'
//! lock, and it would not lift the lock's cost (the claim is one short
//! statement in a batch; the HTTP call runs outside any transaction, kept
//! off other workers by the lease). Tested with two worker pools (two
//! stores, as two instances have) racing over 1,000 documents on each
//! backend (`hub/tests/outbox.rs`). Every later write of the worker is
//! conditional on `lease_owner` still being its own, so a worker whose
//! lease expired and was taken over changes nothing (its answer is
//! dropped; the new owner asks the authority before sending).
//! Lease times are the hub clock of the instance that writes them: instances
//! are assumed to agree within a small fraction of the lease (NTP).

pub(crate) mod cancel;
pub(crate) mod correct;
pub(crate) mod enqueue;

use std::collections::BTreeMap;

use crate::storage::db::{params, Conn, DbError, OptionalExtension, Row};
use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use caja_shared::ids::{EventId, StoreId};
use caja_shared::kind::{
    AuthorityMessage, EventBody, FiscalDocType, FiscalDocumentAccepted, FiscalDocumentRejected,
};
use serde::Serialize;

use crate::audit::{self, AuditKind};
use crate::conflict::ConflictReason;
use crate::outbox::{self, Claimed, DocState, Outcome, Prepared, RetryPolicy};
use crate::projection::Conflict;
use crate::storage::alerts::raise_alert;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, parse};
use crate::storage::error::StorageError;
use crate::storage::ingest::documents;
use crate::storage::ingest::hub_chain::append_to_hub_chain_with_deps;
use crate::storage::writer::Env;
use crate::taxgw::{DocumentSource, SignedSource, SourceBody};

const CLAIM_COLUMNS: &str = "doc_id, doc_key, doc_type, series, store_id, device_id, event_id, first_number, last_number, created_ms, state, channel, body, body_hash, archive, security_code, verify_url, track_id, in_doubt, attempts, corrections";

fn read_claimed(r: &Row) -> Result<RawClaimed, DbError> {
    Ok(RawClaimed {
        doc_id: r.get(0)?,
        doc_key: r.get(1)?,
        doc_type: r.get(2)?,
        series: r.get(3)?,
        store: r.get(4)?,
        device: r.get(5)?,
        event_id: r.get(6)?,
        first: r.get(7)?,
        last: r.get(8)?,
        created_ms: r.get(9)?,
        state: r.get(10)?,
        channel: r.get(11)?,
        body: r.get(12)?,
        body_hash: r.get(13)?,
        archive: r.get(14)?,
        security_code: r.get(15)?,
        verify_url: r.get(16)?,
        track_id: r.get(17)?,
        in_doubt: r.get(18)?,
        attempts: r.get(19)?,
        corrections: r.get(20)?,
    })
}

struct RawClaimed {
    doc_id: i64,
    doc_key: String,
    doc_type: String,
    series: String,
    store: String,
    device: String,
    event_id: Option<String>,
    first: Option<i64>,
    last: Option<i64>,
    created_ms: i64,
    state: String,
    channel: Option<String>,
    body: Option<Vec<u8>>,
    body_hash: Option<String>,
    archive: Option<Vec<u8>>,
    security_code: Option<String>,
    verify_url: Option<String>,
    track_id: Option<String>,
    in_doubt: i64,
    attempts: i64,
    corrections: i64,
}

impl RawClaimed {
    fn decode(self) -> Result<Claimed, StorageError> {
        let prepared = match (self.channel, self.body, self.body_hash) {
            (Some(channel), Some(body), Some(hash)) => {
                let body_hash: Hash256 = parse(&hash)?;
                if Hash256::of(&body) != body_hash {
                    return Err(corrupt(format!(
                        "tax_outbox {}: the stored body does not match its hash",
                        self.doc_key
                    )));
                }
                Some(Prepared {
                    channel,
                    body,
                    body_hash,
                    archive: self.archive,
                    security_code: self.security_code,
                    verify_url: self.verify_url,
                })
            }
            (None, None, None) => None,
            _ => {
                return Err(corrupt(format!(
                    "tax_outbox {}: half-prepared row",
                    self.doc_key
                )))
            }
        };
        Ok(Claimed {
            doc_id: self.doc_id,
            doc_type: FiscalDocType::parse(&self.doc_type)
                .ok_or_else(|| corrupt(format!("doc_type {:?}", self.doc_type)))?,
            series: self.series,
            store: parse(&self.store)?,
            device: parse(&self.device)?,
            event_id: self.event_id.as_deref().map(parse).transpose()?,
            range: match (self.first, self.last) {
                (Some(a), Some(b)) => {
                    Some((crate::storage::codec::u(a), crate::storage::codec::u(b)))
                }
                _ => None,
            },
            created_ms: self.created_ms,
            state: DocState::parse(&self.state)
                .ok_or_else(|| corrupt(format!("state {:?}", self.state)))?,
            prepared,
            track_id: self.track_id,
            in_doubt: self.in_doubt != 0,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            corrections: u32::try_from(self.corrections).unwrap_or(u32::MAX),
            doc_key: self.doc_key,
        })
    }
}

/// Claims up to `limit` due documents for `owner` for `lease_ms` (the
/// portable claim: one conditional UPDATE, see the module doc).
pub(crate) fn claim(
    conn: &Conn,
    env: &mut Env,
    owner: &str,
    lease_ms: i64,
    horizon_ms: i64,
    limit: usize,
) -> Result<Vec<Claimed>, StorageError> {
    let now = env.now_ms();
    let stepped_back_after = now.saturating_add(horizon_ms.max(0));
    // On PostgreSQL instances claim at once: rows another claim has locked
    // are skipped (and the lease is re-checked on the locked row), so no
    // document is claimed twice and no claim waits for another.
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE tax_outbox SET lease_owner = $1, lease_until_ms = CAST($2 AS BIGINT) + CAST($3 AS BIGINT)
         WHERE doc_id IN (SELECT doc_id FROM tax_outbox
                          WHERE state IN ('pending', 'submitted')
                            AND (next_attempt_ms <= $2
                                 OR (next_attempt_ms > CAST($5 AS BIGINT) AND next_attempt_ms < CAST($6 AS BIGINT)))
                            AND (lease_until_ms IS NULL OR lease_until_ms <= $2)
                          ORDER BY next_attempt_ms, doc_id LIMIT $4{})
           AND (lease_until_ms IS NULL OR lease_until_ms <= $2)
         RETURNING {CLAIM_COLUMNS}",
        conn.pick("", " FOR UPDATE SKIP LOCKED")
    ))?;
    let raws: Vec<RawClaimed> = stmt
        .query_map(
            params![
                owner,
                now,
                lease_ms,
                crate::storage::codec::i(limit as u64),
                stepped_back_after,
                outbox::NEVER_MS
            ],
            read_claimed,
        )?
        .collect::<Result<_, _>>()?;
    if !raws.is_empty() {
        crate::crashpoint::hit("hub:outbox_claimed");
    }
    raws.into_iter().map(RawClaimed::decode).collect()
}

/// What the gateway needs to build a claimed document (read connection).
pub(crate) fn source(
    conn: &Conn,
    doc: &Claimed,
    built_ms: i64,
) -> Result<DocumentSource, StorageError> {
    let offset = super::fiscal::store_offset(conn, doc.store)?;
    let mut modified = None;
    let (body, issued_ms, modified_issued_ms) = match doc.doc_type {
        FiscalDocType::Cancellation => {
            let (first, last) = doc
                .range
                .ok_or_else(|| corrupt(format!("cancellation {} without a range", doc.doc_key)))?;
            let mut parts = doc.doc_key.splitn(3, ':');
            let (Some("ANECF"), Some(a), Some(b)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt(format!("cancellation key {:?}", doc.doc_key)));
            };
            (
                SourceBody::Cancellation {
                    first: a.to_owned(),
                    last: b.to_owned(),
                    count: last.saturating_sub(first) + 1,
                },
                doc.created_ms,
                None,
            )
        }
        FiscalDocType::Invoice | FiscalDocType::CreditNote => {
            // The register's signed bytes, submitted as they are.
            let stored = documents::for_number(conn, &doc.doc_key, doc.device)?;
            let issued_ms = stored
                .iter()
                .map(|d| d.signed_at_ms)
                .min()
                .unwrap_or(doc.created_ms);
            let signed: Vec<SignedSource> = stored
                .into_iter()
                .map(|d| SignedSource {
                    kind: d.kind,
                    xml: d.xml,
                    security_code: d.security_code,
                })
                .collect();
            if doc.doc_type == FiscalDocType::CreditNote {
                if let Some(n) = signed
                    .iter()
                    .find(|d| d.kind == "ecf")
                    .and_then(|d| crate::taxgw::dgii_signed::modified_number(&d.xml))
                {
                    let state: Option<String> = conn
                        .prepare_cached("SELECT state FROM tax_outbox WHERE doc_key = $1")?
                        .query_row([n.as_str()], |r| r.get(0))
                        .optional()?;
                    modified = Some((n, state.as_deref().and_then(DocState::parse)));
                }
            }
            (SourceBody::Signed(signed), issued_ms, None)
        }
    };
    Ok(DocumentSource {
        doc_key: doc.doc_key.clone(),
        doc_type: doc.doc_type,
        series: doc.series.clone(),
        body,
        issued_ms,
        offset,
        modified_issued_ms,
        built_ms,
        modified,
    })
}

/// Stores a document's bytes (once) and marks it in doubt, just before its
/// first submission; audited. `false`: the lease is no longer `owner`'s (or
/// the bytes were stored already), nothing changed.
pub(crate) fn prepare(
    conn: &Conn,
    env: &mut Env,
    doc: &Claimed,
    owner: &str,
    p: &Prepared,
) -> Result<bool, StorageError> {
    debug_assert_eq!(Hash256::of(&p.body), p.body_hash);
    let now = env.now_ms();
    let changed = conn
        .prepare_cached(
            "UPDATE tax_outbox SET channel = $3, body = $4, body_hash = $5, archive = $6, security_code = $7,
                    verify_url = $8, in_doubt = 1
             WHERE doc_id = $1 AND lease_owner = $2 AND body IS NULL",
        )?
        .execute(params![
            doc.doc_id,
            owner,
            p.channel,
            p.body,
            p.body_hash.to_hex(),
            p.archive,
            p.security_code,
            p.verify_url
        ])?;
    if changed == 0 {
        return Ok(false);
    }
    if doc.doc_type == FiscalDocType::Cancellation {
        // The hub signed it: kept with the register-signed documents.
        documents::insert_hub_signed(
            conn,
            &doc_label(doc),
            &p.channel,
            doc.doc_type.as_str(),
            doc.store,
            doc.device,
            &p.body,
            now,
        )?;
    }
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::FiscalDocumentPrepared,
        now,
        Some(doc.store),
        audit::data([
            ("document", audit::s(&doc.doc_key)),
            ("doc_type", audit::s(doc.doc_type.as_str())),
            ("device", audit::s(doc.device)),
            ("channel", audit::s(&p.channel)),
            ("body_hash", audit::s(p.body_hash)),
            (
                "security_code",
                p.security_code.as_deref().map_or(Value::Null, audit::s),
            ),
        ]),
    )?;
    Ok(true)
}

/// Keeps a document that failed the checks before its first submission from
/// ever being sent: it stays `pending`, never due again, with the reason;
/// a `manual` conflict (`fiscal_document_invalid`, candidates: the
/// register's event) and an alert, in one transaction. `false`: the lease
/// is no longer `owner`'s, nothing changed.
pub(crate) fn refuse(
    conn: &Conn,
    env: &mut Env,
    doc: &Claimed,
    owner: &str,
    reason: &str,
) -> Result<bool, StorageError> {
    let now = env.now_ms();
    let changed = conn
        .prepare_cached(
            "UPDATE tax_outbox SET next_attempt_ms = $3, last_error = $4, lease_owner = NULL, lease_until_ms = NULL
             WHERE doc_id = $1 AND lease_owner = $2 AND body IS NULL",
        )?
        .execute(params![doc.doc_id, owner, outbox::NEVER_MS, reason])?;
    if changed == 0 {
        return Ok(false);
    }
    let conflict = Conflict::new(
        ConflictReason::FiscalDocumentInvalid,
        outbox::rejected_subject(&doc.doc_key),
        doc.store,
        doc.event_id.into_iter().collect(),
    );
    super::conflicts::upsert(conn, Some(&mut env.tx), &conflict, false, now)?;
    raise_alert(
        conn,
        ConflictReason::FiscalDocumentInvalid.as_str(),
        Some(doc.store),
        Some(doc.device),
        now,
        &format!(
            "{} {} is never sent: {reason}",
            doc.doc_type.as_str(),
            doc.doc_key
        ),
    )?;
    tracing::error!(document = %doc.doc_key, reason, "signed fiscal document refused before sending: a person must act");
    Ok(true)
}

/// Marks a prepared document in doubt before it is (re)sent. `false`: the
/// lease is lost.
pub(crate) fn mark_in_doubt(conn: &Conn, doc_id: i64, owner: &str) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached(
            "UPDATE tax_outbox SET in_doubt = 1 WHERE doc_id = $1 AND lease_owner = $2",
        )?
        .execute(params![doc_id, owner])?
        == 1)
}

/// What recording an outcome did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The lease was lost: nothing changed.
    pub lease_lost: bool,
    /// The document's state after.
    pub state: DocState,
    /// The result hub event, when the verdict came in.
    pub event: Option<EventId>,
}

/// Records a gateway outcome for a claimed document and releases the lease;
/// on a verdict, appends its hub event (deps: the register's event), audits
/// it, and for a rejection opens a `manual` conflict and raises an alert —
/// all in this one transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    conn: &Conn,
    env: &mut Env,
    doc: &Claimed,
    owner: &str,
    outcome: &Outcome,
    policy: &RetryPolicy,
    jitter: u64,
    authority: &str,
) -> Result<Recorded, StorageError> {
    let now = env.now_ms();
    let holder: Option<Option<String>> = conn
        .prepare_cached("SELECT lease_owner FROM tax_outbox WHERE doc_id = $1")?
        .query_row([doc.doc_id], |r| r.get(0))
        .optional()?;
    let Some(holder) = holder else {
        return Err(corrupt(format!("tax_outbox row {} vanished", doc.doc_id)));
    };
    if holder.as_deref() != Some(owner) {
        tracing::warn!(document = %doc.doc_key, owner, holder = ?holder, "lease lost before recording; the answer is dropped");
        return Ok(Recorded {
            lease_lost: true,
            state: doc.state,
            event: None,
        });
    }
    let t = outbox::transition(doc, outcome, now, policy, jitter);
    let (messages, result_event) = match &t.verdict {
        Some(v) => {
            let messages = serde_json::to_string(&v.messages).map_err(corrupt)?;
            (
                Some(messages),
                Some(verdict_event(
                    conn,
                    env,
                    doc,
                    v,
                    authority,
                    &t.track_id,
                    now,
                )?),
            )
        }
        None => (None, None),
    };
    conn.prepare_cached(
        "UPDATE tax_outbox SET state = $3, track_id = $4, in_doubt = $5, attempts = $6, next_attempt_ms = $7,
                last_error = $8, lease_owner = NULL, lease_until_ms = NULL,
                messages = coalesce(CAST($9 AS TEXT), messages), decided_ms = CASE WHEN CAST($9 AS TEXT) IS NULL THEN decided_ms ELSE $10 END,
                result_event_id = coalesce($11, result_event_id)
         WHERE doc_id = $1 AND lease_owner = $2",
    )?
    .execute(params![
        doc.doc_id,
        owner,
        t.state.as_str(),
        t.track_id,
        i64::from(t.in_doubt),
        i64::from(t.attempts),
        t.next_attempt_ms,
        t.last_error,
        messages,
        now,
        result_event.map(|e| e.to_string())
    ])?;
    crate::crashpoint::hit("hub:outbox_recorded");
    if let Some(e) = &t.last_error {
        tracing::info!(document = %doc.doc_key, attempts = t.attempts, in_doubt = t.in_doubt, error = %e, "tax authority call failed; retried later");
    }
    Ok(Recorded {
        lease_lost: false,
        state: t.state,
        event: result_event,
    })
}

/// The verdict's hub event, audit entry, and for a rejection the conflict
/// and the alert. Returns the hub event's id.
fn verdict_event(
    conn: &Conn,
    env: &mut Env,
    doc: &Claimed,
    v: &outbox::Verdict,
    authority: &str,
    track_id: &Option<String>,
    now: i64,
) -> Result<EventId, StorageError> {
    let prepared = doc.prepared.as_ref();
    let body = match v.status {
        outbox::FinalStatus::Accepted | outbox::FinalStatus::AcceptedConditional => {
            EventBody::FiscalDocumentAccepted(FiscalDocumentAccepted {
                document: doc_label(doc),
                doc_type: doc.doc_type,
                series: doc.series.clone(),
                device: doc.device,
                event_id: doc.event_id,
                authority: authority.to_owned(),
                conditional: v.status == outbox::FinalStatus::AcceptedConditional,
                track_id: track_id.clone(),
                security_code: prepared.and_then(|p| p.security_code.clone()),
                verify_url: prepared.and_then(|p| p.verify_url.clone()),
                messages: v.messages.clone(),
            })
        }
        outbox::FinalStatus::Rejected => {
            EventBody::FiscalDocumentRejected(FiscalDocumentRejected {
                document: doc_label(doc),
                doc_type: doc.doc_type,
                series: doc.series.clone(),
                device: doc.device,
                event_id: doc.event_id,
                authority: authority.to_owned(),
                track_id: track_id.clone(),
                messages: v.messages.clone(),
            })
        }
    };
    let deps: Vec<EventId> = doc.event_id.into_iter().collect();
    let events = append_to_hub_chain_with_deps(conn, env, doc.store, &[(body, deps)])?;
    let event = events
        .first()
        .map(Event::id)
        .ok_or_else(|| corrupt("no hub event appended"))?;
    let status = v.status.state().as_str();
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::FiscalDocumentDecided,
        now,
        Some(doc.store),
        audit::data([
            ("document", audit::s(&doc.doc_key)),
            ("doc_type", audit::s(doc.doc_type.as_str())),
            ("device", audit::s(doc.device)),
            ("authority", audit::s(authority)),
            ("status", audit::s(status)),
            (
                "track_id",
                track_id.as_deref().map_or(Value::Null, audit::s),
            ),
            (
                "body_hash",
                prepared.map_or(Value::Null, |p| audit::s(p.body_hash)),
            ),
            ("messages", messages_value(&v.messages)),
            ("event_id", audit::s(event)),
        ]),
    )?;
    if v.status == outbox::FinalStatus::Rejected {
        let candidates: Vec<EventId> = doc.event_id.into_iter().chain([event]).collect();
        open_rejection_conflict(
            conn,
            Some(&mut *env),
            doc.store,
            &doc.doc_key,
            &candidates,
            now,
        )?;
        let why: Vec<String> = v
            .messages
            .iter()
            .map(|m| format!("{} {}", m.code, m.text).trim().to_owned())
            .collect();
        raise_alert(
            conn,
            outbox::REJECTED_REASON,
            Some(doc.store),
            Some(doc.device),
            now,
            &format!(
                "{authority} rejected {} {}: {}",
                doc.doc_type.as_str(),
                doc.doc_key,
                if why.is_empty() {
                    "no reason given".to_owned()
                } else {
                    why.join("; ")
                }
            ),
        )?;
        tracing::warn!(document = %doc.doc_key, authority, "fiscal document rejected: a person must act");
    } else {
        tracing::info!(document = %doc.doc_key, authority, status, "fiscal document accepted");
    }
    Ok(event)
}

fn messages_value(m: &[AuthorityMessage]) -> Value {
    Value::Array(
        m.iter()
            .map(|m| audit::data([("code", audit::s(&m.code)), ("text", audit::s(&m.text))]))
            .collect(),
    )
}

/// The document as registers see it: its number, or a cancellation's range.
fn doc_label(doc: &Claimed) -> String {
    match doc.doc_key.strip_prefix("ANECF:") {
        Some(range) => range.replacen(':', "..", 1),
        None => doc.doc_key.clone(),
    }
}

/// The `manual` conflict of a rejected document (once), audited when `env`
/// is given (not in a rebuild).
fn open_rejection_conflict(
    conn: &Conn,
    env: Option<&mut Env>,
    store: StoreId,
    doc_key: &str,
    candidates: &[EventId],
    now: i64,
) -> Result<bool, StorageError> {
    let conflict = Conflict::new(
        ConflictReason::FiscalDocumentRejected,
        outbox::rejected_subject(doc_key),
        store,
        candidates.iter().copied().collect(),
    );
    let new = super::conflicts::upsert(conn, env.map(|e| &mut e.tx), &conflict, false, now)?;
    Ok(new)
}

/// After `caja-hub rebuild` (which recomputes `conflicts` from events): the
/// rejected documents' conflicts, found again (not audited again).
pub(crate) fn restore_conflicts(conn: &Conn) -> Result<u64, StorageError> {
    /// doc_key, store, source event, result event, when.
    type Rejected = (String, String, Option<String>, Option<String>, i64);
    let rows: Vec<Rejected> = conn
        .prepare(
            "SELECT doc_key, store_id, event_id, result_event_id, coalesce(decided_ms, created_ms)
             FROM tax_outbox WHERE state = 'rejected' ORDER BY doc_id",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut restored = 0;
    let invalid: Vec<(String, String, Option<String>, i64)> = conn
        .prepare(
            "SELECT doc_key, store_id, event_id, created_ms FROM tax_outbox
             WHERE state = 'pending' AND next_attempt_ms = $1 ORDER BY doc_id",
        )?
        .query_map([outbox::NEVER_MS], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (key, store, event, at) in invalid {
        let conflict = Conflict::new(
            ConflictReason::FiscalDocumentInvalid,
            outbox::rejected_subject(&key),
            parse(&store)?,
            event.iter().map(|s| parse(s)).collect::<Result<_, _>>()?,
        );
        if super::conflicts::upsert(conn, None, &conflict, false, at)? {
            restored += 1;
        }
    }
    for (key, store, event, result, at) in rows {
        let candidates: Vec<EventId> = event
            .iter()
            .chain(result.iter())
            .map(|s| parse(s))
            .collect::<Result<_, _>>()?;
        if open_rejection_conflict(conn, None, parse(&store)?, &key, &candidates, at)? {
            restored += 1;
        }
    }
    Ok(restored)
}

/// The outbox in the health report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxHealth {
    /// Documents per state.
    pub by_state: BTreeMap<String, u64>,
    /// Documents not yet decided (pending + submitted).
    pub backlog: u64,
    /// When the oldest undecided document entered the outbox.
    pub oldest_pending_since_ms: Option<i64>,
    /// Rejected documents.
    pub rejected: u64,
    /// Undecided documents whose last attempt failed.
    pub failing: u64,
}

/// Counts for health and metrics (a refused document whose number head
/// office cancelled is counted no more: it is closed, never sent).
pub(crate) fn health(conn: &Conn) -> Result<OutboxHealth, StorageError> {
    let mut h = OutboxHealth::default();
    for s in DocState::ALL {
        h.by_state.insert(s.as_str().to_owned(), 0);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT state, COUNT(*) FROM tax_outbox WHERE cancelled_ms IS NULL GROUP BY state",
    )?;
    let rows: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (s, n) in rows {
        h.by_state.insert(s, crate::storage::codec::u(n));
    }
    h.backlog = h.by_state["pending"] + h.by_state["submitted"];
    h.rejected = h.by_state["rejected"];
    h.oldest_pending_since_ms = conn
        .prepare_cached(
            "SELECT MIN(created_ms) FROM tax_outbox WHERE state IN ('pending', 'submitted') AND cancelled_ms IS NULL",
        )?
        .query_row([], |r| r.get(0))?;
    h.failing = crate::storage::codec::u(
        conn.prepare_cached(
            "SELECT COUNT(*) FROM tax_outbox WHERE state IN ('pending', 'submitted') AND last_error IS NOT NULL AND cancelled_ms IS NULL",
        )?
        .query_row([], |r| r.get(0))?,
    );
    Ok(h)
}

/// One document, for head office (`GET /v1/admin/outbox`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocInfo {
    /// Number or cancellation key.
    pub document: String,
    /// `invoice`, `credit_note`, `cancellation`.
    pub doc_type: String,
    /// Series.
    pub series: String,
    /// Store.
    pub store: String,
    /// Register.
    pub device: String,
    /// The register event.
    pub event_id: Option<String>,
    /// State.
    pub state: String,
    /// Channel, once built.
    pub channel: Option<String>,
    /// SHA-256 of the submitted bytes, once built.
    pub body_hash: Option<String>,
    /// Security code.
    pub security_code: Option<String>,
    /// Tracking id.
    pub track_id: Option<String>,
    /// In doubt.
    pub in_doubt: bool,
    /// Failed attempts in a row.
    pub attempts: i64,
    /// Last failure.
    pub last_error: Option<String>,
    /// The authority's messages (JSON array), once decided.
    pub messages: Option<serde_json::Value>,
    /// Queued at.
    pub created_ms: i64,
    /// Decided at.
    pub decided_ms: Option<i64>,
    /// Due at.
    pub next_attempt_ms: i64,
    /// Leased by.
    pub lease_owner: Option<String>,
}

/// Documents in a state (all when `None`), newest first, at most `limit`.
pub(crate) fn list(
    conn: &Conn,
    state: Option<DocState>,
    limit: usize,
) -> Result<Vec<DocInfo>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT doc_key, doc_type, series, store_id, device_id, event_id, state, channel, body_hash, security_code,
                track_id, in_doubt, attempts, last_error, messages, created_ms, decided_ms, next_attempt_ms, lease_owner
         FROM tax_outbox WHERE CAST($1 AS TEXT) IS NULL OR state = $1 ORDER BY doc_id DESC LIMIT $2",
    )?;
    let rows = stmt.query_map(
        params![
            state.map(DocState::as_str),
            crate::storage::codec::i(limit as u64)
        ],
        |r| {
            let messages: Option<String> = r.get(14)?;
            Ok(DocInfo {
                document: r.get(0)?,
                doc_type: r.get(1)?,
                series: r.get(2)?,
                store: r.get(3)?,
                device: r.get(4)?,
                event_id: r.get(5)?,
                state: r.get(6)?,
                channel: r.get(7)?,
                body_hash: r.get(8)?,
                security_code: r.get(9)?,
                track_id: r.get(10)?,
                in_doubt: r.get::<_, i64>(11)? != 0,
                attempts: r.get(12)?,
                last_error: r.get(13)?,
                messages: messages.and_then(|m| serde_json::from_str(&m).ok()),
                created_ms: r.get(15)?,
                decided_ms: r.get(16)?,
                next_attempt_ms: r.get(17)?,
                lease_owner: r.get(18)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}
