//! The `signed_documents` table: the exact bytes of every signed fiscal
//! document the hub holds, keyed by SHA-256 — the e-CF and RFCE a register
//! pushed beside the `FiscalDocumentIssued` event that names them
//! ([`insert_pushed`], in the push's transaction), and the documents the hub
//! signs itself (an ANECF). The outbox submits them
//! ([`for_number`]), `caja-hub fiscal documents` exports them ([`list`]).
//!
//! Invariant: rows are inserted once (`ON CONFLICT DO NOTHING` on the hash)
//! and never changed or deleted (triggers, `migrations/hub/0012`).

use std::collections::HashSet;

use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, StoreId};
use serde::Serialize;

use crate::ingest::NamedDocument;
use crate::storage::codec::{corrupt, i, parse};
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;

/// Which of `hashes` the hub holds.
pub(crate) fn held(conn: &Conn, hashes: &[Hash256]) -> Result<HashSet<Hash256>, StorageError> {
    let mut out = HashSet::new();
    if hashes.is_empty() {
        return Ok(out);
    }
    let list = serde_json::to_string(&hashes.iter().map(Hash256::to_hex).collect::<Vec<_>>())
        .map_err(corrupt)?;
    let mut stmt = conn.prepare_cached(conn.pick(
        "SELECT sha256 FROM signed_documents WHERE sha256 IN (SELECT value FROM json_each($1))",
        "SELECT sha256 FROM signed_documents WHERE sha256 IN (SELECT json_array_elements_text($1::json))",
    ))?;
    let mut rs = stmt.query([list])?;
    while let Some(r) = rs.next()? {
        out.insert(parse(&r.get::<_, String>(0)?)?);
    }
    Ok(out)
}

/// Stores the documents a push carries for its new `FiscalDocumentIssued`
/// events (checked by [`crate::ingest::check_documents`]).
pub(crate) fn insert_pushed(
    conn: &Conn,
    store: StoreId,
    device: DeviceId,
    docs: &[NamedDocument<'_>],
    now: i64,
) -> Result<(), StorageError> {
    for d in docs {
        conn.prepare_cached(
            "INSERT INTO signed_documents (sha256, encf, kind, doc_type, store_id, device_id, seq, event_id, security_code, signed_at_ms, xml, received_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            d.sha256.to_hex(),
            d.encf,
            d.kind,
            d.doc_type.as_str(),
            store.to_string(),
            device.to_string(),
            i(d.seq),
            d.event_id.to_string(),
            d.security_code,
            d.signed_at_ms,
            d.xml.to_vec(),
            now
        ])?;
    }
    Ok(())
}

/// Stores a document the hub signed itself (an ANECF: `encf` is
/// `first..last`), with no event.
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_hub_signed(
    conn: &Conn,
    encf: &str,
    kind: &str,
    doc_type: &str,
    store: StoreId,
    device: DeviceId,
    xml: &[u8],
    now: i64,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO signed_documents (sha256, encf, kind, doc_type, store_id, device_id, seq, event_id, security_code, signed_at_ms, xml, received_ms)
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL, $7, $8, $7) ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        Hash256::of(xml).to_hex(),
        encf,
        kind,
        doc_type,
        store.to_string(),
        device.to_string(),
        now,
        xml.to_vec()
    ])?;
    Ok(())
}

/// A stored document, bytes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// SHA-256 of `xml`.
    pub sha256: Hash256,
    /// e-NCF (or an ANECF's `first..last`).
    pub encf: String,
    /// `ecf`, `rfce`, `anecf`.
    pub kind: String,
    /// `invoice`, `credit_note`, `cancellation`.
    pub doc_type: String,
    /// The signer's security code (e-CF and RFCE).
    pub security_code: Option<String>,
    /// When it was signed (UTC ms).
    pub signed_at_ms: i64,
    /// The exact bytes.
    pub xml: Vec<u8>,
}

const COLUMNS: &str = "sha256, encf, kind, doc_type, security_code, signed_at_ms, xml";

fn read(
    r: &crate::storage::db::Row,
) -> Result<(String, StoredDocument), crate::storage::db::DbError> {
    let hash: String = r.get(0)?;
    Ok((
        hash,
        StoredDocument {
            sha256: Hash256::ZERO,
            encf: r.get(1)?,
            kind: r.get(2)?,
            doc_type: r.get(3)?,
            security_code: r.get(4)?,
            signed_at_ms: r.get(5)?,
            xml: r.get(6)?,
        },
    ))
}

fn checked(rows: Vec<(String, StoredDocument)>) -> Result<Vec<StoredDocument>, StorageError> {
    rows.into_iter()
        .map(|(hash, mut d)| {
            d.sha256 = parse(&hash)?;
            if Hash256::of(&d.xml) != d.sha256 {
                return Err(corrupt(format!(
                    "signed document {} ({}): the stored bytes do not match their hash",
                    d.encf, d.kind
                )));
            }
            Ok(d)
        })
        .collect()
}

/// The documents a register signed for one number (`ecf` first).
pub(crate) fn for_number(
    conn: &Conn,
    encf: &str,
    device: DeviceId,
) -> Result<Vec<StoredDocument>, StorageError> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM signed_documents WHERE encf = $1 AND device_id = $2 ORDER BY kind, sha256"
        ))?
        .query_map(params![encf, device.to_string()], read)?
        .collect::<Result<Vec<_>, _>>()?;
    checked(rows)
}

/// One document for an export: the stored row and the outbox's view of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRow {
    /// e-NCF (or an ANECF's `first..last`).
    pub encf: String,
    /// `ecf`, `rfce`, `anecf`.
    pub kind: String,
    /// `invoice`, `credit_note`, `cancellation`.
    pub doc_type: String,
    /// The e-CF type (`32`), from the number.
    pub ecf_type: String,
    /// Security code.
    pub security_code: Option<String>,
    /// When it was signed (UTC ms).
    pub signed_at_ms: i64,
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// The outbox state (`pending`, `accepted`, …), if queued.
    pub state: Option<String>,
    /// The authority's tracking id, if any.
    pub track_id: Option<String>,
    /// The bytes, standard base64.
    pub xml_base64: String,
}

/// Every stored document signed in `[from_ms, to_ms)`, oldest first, with
/// its outbox state.
pub(crate) fn list(
    conn: &Conn,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Vec<ExportRow>, StorageError> {
    use base64::Engine as _;
    let rows = conn
        .prepare_cached(
            "SELECT d.sha256, d.encf, d.kind, d.doc_type, d.security_code, d.signed_at_ms, d.xml, o.state, o.track_id
             FROM signed_documents d
             LEFT JOIN tax_outbox o ON o.doc_key = CASE WHEN d.kind = 'anecf' THEN 'ANECF:' || replace(d.encf, '..', ':') ELSE d.encf END
             WHERE (CAST($1 AS BIGINT) IS NULL OR d.signed_at_ms >= $1)
               AND (CAST($2 AS BIGINT) IS NULL OR d.signed_at_ms < $2)
             ORDER BY d.signed_at_ms, d.encf, d.kind",
        )?
        .query_map(params![from_ms, to_ms], |r| {
            let (hash, d) = read(r)?;
            let state: Option<String> = r.get(7)?;
            let track: Option<String> = r.get(8)?;
            Ok((hash, d, state, track))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (hash, d, state, track_id) in rows {
        let d = checked(vec![(hash, d)])?.remove(0);
        out.push(ExportRow {
            ecf_type: d.encf.get(1..3).unwrap_or("").to_owned(),
            sha256: d.sha256.to_hex(),
            xml_base64: base64::engine::general_purpose::STANDARD.encode(&d.xml),
            encf: d.encf,
            kind: d.kind,
            doc_type: d.doc_type,
            security_code: d.security_code,
            signed_at_ms: d.signed_at_ms,
            state,
            track_id,
        });
    }
    Ok(out)
}
