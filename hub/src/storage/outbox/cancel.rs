//! The SQL of head office's cancellation of a document refused before
//! sending (the outbox's `fiscal_document_invalid` conflict: the register's
//! signed bytes failed the checks, so they are never sent, yet its receipt
//! was printed with that e-NCF). [`cancel_refused`], in one transaction:
//! queues the cancellation of that single number (an `ANECF:<n>:<n>` row,
//! built and signed by the hub with its own certificate when a worker takes
//! it, as a written-off register's numbers are), closes the refused row
//! (`cancelled_ms`: it leaves the backlog and is never sent), audits the
//! decision (`fiscal_document_cancelled`) and resolves the conflict with a
//! `ConflictResolved` hub event. Anything but a refused, uncancelled
//! document is refused and nothing changes. The new e-CF for the same sale
//! (from the hub's own series) is not built here.

use caja_shared::ids::StoreId;
use serde::Serialize;

use crate::audit::{self, AuditKind};
use crate::conflict::{ConflictReason, ResolveRequest};
use crate::outbox;
use crate::projection::Conflict;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::parse;
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::error::{Answer, StorageError};
use crate::storage::writer::Env;
use crate::wire::ApiError;

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancelled {
    /// The refused document's e-NCF.
    pub document: String,
    /// The queued cancellation's outbox key (`ANECF:<n>:<n>`).
    pub cancellation: String,
    /// The `fiscal_document_invalid` conflict, resolved by it (when open).
    pub resolved_conflict: Option<String>,
}

/// Cancels a refused document's number (see the module doc).
pub(crate) fn cancel_refused(
    conn: &Conn,
    env: &mut Env,
    document: &str,
    by: &str,
    note: &str,
) -> Result<Answer<Cancelled>, StorageError> {
    let (by, note) = (by.trim(), note.trim());
    if by.is_empty() {
        return Ok(Err(ApiError::invalid("by", "who decides is required")));
    }
    if note.is_empty() {
        return Ok(Err(ApiError::invalid("note", "why is required")));
    }
    type Row = (
        String,
        String,
        String,
        String,
        Option<Vec<u8>>,
        i64,
        Option<i64>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT doc_type, series, store_id, device_id, body, next_attempt_ms, cancelled_ms
             FROM tax_outbox WHERE doc_key = $1",
        )?
        .query_row([document], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .optional()?;
    let Some((doc_type, series, store, device, body, next, cancelled)) = row else {
        return Ok(Err(ApiError::not_found(format!(
            "no fiscal document {document} in the outbox"
        ))));
    };
    if cancelled.is_some() {
        return Ok(Err(ApiError::new(
            409,
            "already_cancelled",
            format!("{document}'s number is already cancelled"),
        )));
    }
    if doc_type == "cancellation" || body.is_some() || next != outbox::NEVER_MS {
        return Ok(Err(ApiError::new(
            409,
            "not_refused",
            format!("{document} was not refused before sending: only such a document's number is cancelled here"),
        )));
    }
    let n = document
        .get(3..)
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| crate::storage::codec::corrupt(format!("e-NCF {document:?}")))?;
    let key = outbox::cancellation_key(document, document);
    let now = env.now_ms();
    let queued = conn
        .prepare_cached(
            "INSERT INTO tax_outbox (doc_key, doc_type, series, store_id, device_id, event_id, first_number, last_number, created_ms, state, next_attempt_ms)
             VALUES ($1, 'cancellation', $2, $3, $4, NULL, $5, $5, $6, 'pending', $6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            key,
            series,
            store,
            device,
            crate::storage::codec::i(n),
            now
        ])?;
    if queued != 1 {
        return Ok(Err(ApiError::new(
            409,
            "already_cancelled",
            format!("a cancellation of {document} is already queued"),
        )));
    }
    conn.prepare_cached(
        "UPDATE tax_outbox SET cancelled_ms = $2, last_error = $3 WHERE doc_key = $1",
    )?
    .execute(params![
        document,
        now,
        format!("never sent; its number is cancelled ({key})")
    ])?;
    let store_id: StoreId = parse(&store)?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::FiscalDocumentCancelled,
        now,
        Some(store_id),
        audit::data([
            ("document", audit::s(document)),
            ("device", audit::s(&device)),
            ("cancellation", audit::s(&key)),
            ("by", audit::s(by)),
            ("note", audit::s(note)),
        ]),
    )?;
    let id = Conflict::id_of(
        ConflictReason::FiscalDocumentInvalid,
        &outbox::rejected_subject(document),
    );
    let req = ResolveRequest {
        winner: None,
        note: format!("number cancelled at the tax authority ({key}): {note}"),
        by: by.to_owned(),
    };
    let resolved = match crate::storage::conflicts::resolve(conn, env, id, &req)? {
        Ok(c) => Some(c.conflict_id.to_string()),
        Err(_) => None,
    };
    tracing::warn!(document, cancellation = %key, by, "head office cancelled a document refused before sending");
    Ok(Ok(Cancelled {
        document: document.to_owned(),
        cancellation: key,
        resolved_conflict: resolved,
    }))
}
