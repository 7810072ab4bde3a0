//! The SQL of head office's correction of a rejected summary (RFCE): the
//! one case where an e-NCF is sent with a second content (DESIGN invariant
//! 10). The hub rebuilds the summary from the e-CF it holds
//! (`taxgw::dgii_signed::summary_of_invoice`), signs it with its own
//! certificate, and [`correct_summary`] then, in one transaction: keeps the
//! new bytes in `signed_documents` (the register's e-CF and RFCE stay as they
//! are), puts them in the outbox row in place of the rejected ones — which
//! goes back to `pending`, its verdict, tracking id and doubt cleared, so the
//! workers submit it as a new attempt of the same number — audits the
//! decision (`fiscal_summary_corrected`, naming the old and the new SHA-256)
//! and resolves the rejection's `manual` conflict (a `ConflictResolved` hub
//! event). Anything but a rejected RFCE is refused and nothing changes;
//! migration 0013's trigger refuses any other change of submitted bytes.

use caja_shared::canonical::Value;
use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, StoreId};
use serde::Serialize;

use crate::audit::{self, AuditKind};
use crate::conflict::{ConflictReason, ResolveRequest};
use crate::outbox::{self, DocState};
use crate::projection::Conflict;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, parse};
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::error::{Answer, StorageError};
use crate::storage::writer::Env;
use crate::wire::ApiError;

/// A rejected summary and the e-CF it summarizes, read before the hub
/// rebuilds and signs the correction (outside the write transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectionSource {
    /// The e-NCF.
    pub document: String,
    /// The rejected summary's SHA-256 (checked again when the correction is
    /// written).
    pub rejected_hash: Hash256,
    /// The signed e-CF the summary is rebuilt from (the archive).
    pub ecf: Vec<u8>,
    /// The security code (the e-CF's; the correction keeps it).
    pub security_code: Option<String>,
}

/// What a correction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Corrected {
    /// The e-NCF.
    pub document: String,
    /// SHA-256 of the rejected summary.
    pub old_body_hash: String,
    /// SHA-256 of the corrected one (now in `signed_documents`).
    pub new_body_hash: String,
    /// Corrections of this number so far.
    pub corrections: i64,
    /// The outbox state after (`pending`).
    pub state: &'static str,
    /// The rejection's conflict, resolved by the correction (when open).
    pub resolved_conflict: Option<String>,
}

struct Row {
    doc_type: String,
    state: String,
    channel: Option<String>,
    body_hash: Option<String>,
    archive: Option<Vec<u8>>,
    security_code: Option<String>,
    store: String,
    device: String,
    corrections: i64,
}

fn read(conn: &Conn, document: &str) -> Result<Option<Row>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT doc_type, state, channel, body_hash, archive, security_code, store_id, device_id, corrections
             FROM tax_outbox WHERE doc_key = $1",
        )?
        .query_row([document], |r| {
            Ok(Row {
                doc_type: r.get(0)?,
                state: r.get(1)?,
                channel: r.get(2)?,
                body_hash: r.get(3)?,
                archive: r.get(4)?,
                security_code: r.get(5)?,
                store: r.get(6)?,
                device: r.get(7)?,
                corrections: r.get(8)?,
            })
        })
        .optional()?)
}

/// The refusal of anything but a rejected summary with its e-CF kept.
fn check(document: &str, row: Option<Row>) -> Answer<Row> {
    let Some(row) = row else {
        return Err(ApiError::not_found(format!(
            "no fiscal document {document} in the outbox"
        )));
    };
    if row.channel.as_deref() != Some(crate::taxgw::dgii::CHANNEL_SUMMARY)
        || row.doc_type != "invoice"
    {
        return Err(ApiError::new(
            409,
            "not_a_summary",
            format!("{document} was not submitted as a summary (RFCE): only a rejected RFCE is corrected"),
        ));
    }
    if DocState::parse(&row.state) != Some(DocState::Rejected) {
        return Err(ApiError::new(
            409,
            "not_rejected",
            format!(
                "{document} is {}: only a summary the tax authority rejected is corrected",
                row.state
            ),
        ));
    }
    if row.archive.is_none() || row.body_hash.is_none() {
        return Err(ApiError::new(
            409,
            "no_archive",
            format!("the hub holds no signed e-CF for {document}"),
        ));
    }
    Ok(row)
}

/// Reads a rejected summary and its e-CF (read connection).
pub(crate) fn source(
    conn: &Conn,
    document: &str,
) -> Result<Answer<CorrectionSource>, StorageError> {
    let row = match check(document, read(conn, document)?) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(CorrectionSource {
        document: document.to_owned(),
        rejected_hash: parse(row.body_hash.as_deref().unwrap_or_default())?,
        ecf: row.archive.unwrap_or_default(),
        security_code: row.security_code,
    }))
}

/// Writes a correction (see the module doc). `rejected_hash` is the summary
/// the correction was built against: if the row changed meanwhile (another
/// correction), nothing is written (409 `changed`). A correction whose
/// bytes are the rejected ones is refused (409 `unchanged`).
pub(crate) fn correct_summary(
    conn: &Conn,
    env: &mut Env,
    document: &str,
    rejected_hash: Hash256,
    signed: &[u8],
    by: &str,
    note: &str,
) -> Result<Answer<Corrected>, StorageError> {
    let (by, note) = (by.trim(), note.trim());
    if by.is_empty() {
        return Ok(Err(ApiError::invalid("by", "who decides is required")));
    }
    if note.is_empty() {
        return Ok(Err(ApiError::invalid("note", "why is required")));
    }
    let row = match check(document, read(conn, document)?) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let old = row.body_hash.clone().unwrap_or_default();
    if old != rejected_hash.to_hex() {
        return Ok(Err(ApiError::new(
            409,
            "changed",
            format!("{document}'s summary changed while the correction was built; try again"),
        )));
    }
    let new = Hash256::of(signed);
    if new == rejected_hash {
        return Ok(Err(ApiError::new(
            409,
            "unchanged",
            format!("the summary rebuilt from {document}'s e-CF is the rejected one: nothing to correct"),
        )));
    }
    let now = env.now_ms();
    let store: StoreId = parse(&row.store)?;
    let device: DeviceId = parse(&row.device)?;
    conn.prepare_cached(
        "INSERT INTO signed_documents (sha256, encf, kind, doc_type, store_id, device_id, seq, event_id, security_code, signed_at_ms, xml, received_ms)
         VALUES ($1, $2, 'rfce', 'invoice', $3, $4, NULL, NULL, $5, $6, $7, $6) ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        new.to_hex(),
        document,
        row.store,
        row.device,
        row.security_code,
        now,
        signed.to_vec()
    ])?;
    let corrections = row.corrections + 1;
    let changed = conn
        .prepare_cached(
            "UPDATE tax_outbox SET body = $2, body_hash = $3, corrections = $4, state = 'pending', track_id = NULL,
                    in_doubt = 0, attempts = 0, next_attempt_ms = $5, last_error = NULL, messages = NULL,
                    decided_ms = NULL, lease_owner = NULL, lease_until_ms = NULL
             WHERE doc_key = $1 AND state = 'rejected' AND body_hash = $6",
        )?
        .execute(params![
            document,
            signed.to_vec(),
            new.to_hex(),
            corrections,
            now,
            old
        ])?;
    if changed != 1 {
        return Err(corrupt(format!(
            "tax_outbox {document}: the rejected row vanished inside the transaction"
        )));
    }
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::FiscalSummaryCorrected,
        now,
        Some(store),
        audit::data([
            ("document", audit::s(document)),
            ("device", audit::s(device)),
            ("old_body_hash", audit::s(&old)),
            ("new_body_hash", audit::s(new)),
            (
                "security_code",
                row.security_code.as_deref().map_or(Value::Null, audit::s),
            ),
            (
                "corrections",
                audit::n(crate::storage::codec::u(corrections)),
            ),
            ("by", audit::s(by)),
            ("note", audit::s(note)),
        ]),
    )?;
    let id = Conflict::id_of(
        ConflictReason::FiscalDocumentRejected,
        &outbox::rejected_subject(document),
    );
    let req = ResolveRequest {
        winner: None,
        note: format!("corrected summary {} submitted: {note}", new.to_hex()),
        by: by.to_owned(),
    };
    let resolved = match crate::storage::conflicts::resolve(conn, env, id, &req)? {
        Ok(c) => Some(c.conflict_id.to_string()),
        // Already resolved by an operator, or never opened (a rebuild):
        // the correction stands on its own audit entry.
        Err(_) => None,
    };
    tracing::warn!(document, old = %old, new = %new, by, "rejected summary corrected by head office: a second content for this e-NCF");
    Ok(Ok(Corrected {
        document: document.to_owned(),
        old_body_hash: old,
        new_body_hash: new.to_hex(),
        corrections,
        state: DocState::Pending.as_str(),
        resolved_conflict: resolved,
    }))
}
