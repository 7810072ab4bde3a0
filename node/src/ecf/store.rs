//! The register's e-CF tables: `signed_documents` (the exact signed bytes and
//! their SHA-256, in issue order: keyed by the seq of the event that names
//! them and their kind, so a sale's documents are appended at the end of
//! one b-tree) and `issued_ecf` (what
//! the original receipt prints and what a credit note needs of the document
//! it modifies).
//!
//! Invariant: loads and stores only, always inside the caller's transaction;
//! a row is never changed once written.

use caja_shared::digest::Hash256;
use caja_shared::ids::{ReturnId, SaleId};
use caja_shared::kind::FiscalDocType;
use caja_shared::push::PushDocument;
use rusqlite::{params, Connection, OptionalExtension};

use super::IssuedEcf;

/// What the register keeps of one issued e-CF besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRow {
    /// The e-NCF.
    pub encf: String,
    /// Invoice or credit note.
    pub doc_type: FiscalDocType,
    /// Security code.
    pub security_code: String,
    /// Signing time, UTC ms.
    pub signed_at_ms: i64,
    /// `FechaEmision`, `yyyy-mm-dd`.
    pub issued_date: String,
    /// The QR code's data.
    pub qr_url: String,
    /// The buyer's RNC or cédula, when named.
    pub buyer_tax_id: Option<String>,
    /// The buyer's name, when named.
    pub buyer_name: Option<String>,
    /// `MontoTotal`.
    pub total: caja_shared::money::Money,
}

/// Where an issued e-CF belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A sale's invoice.
    Sale(SaleId),
    /// A return's credit note.
    Return(ReturnId),
}

/// Stores one issued e-CF and its signed documents, named by the
/// `FiscalDocumentIssued` event at `seq`.
pub fn insert(
    conn: &Connection,
    issued: &IssuedEcf,
    owner: Owner,
    issued_date: &str,
    buyer: (Option<&str>, Option<&str>),
    seq: i64,
) -> rusqlite::Result<()> {
    let (doc_type, sale_id, return_id) = match owner {
        Owner::Sale(s) => (FiscalDocType::Invoice, Some(s.to_string()), None),
        Owner::Return(r) => (FiscalDocType::CreditNote, None, Some(r.to_string())),
    };
    conn.prepare_cached(
        "INSERT INTO issued_ecf (encf, doc_type, sale_id, return_id, security_code, signed_at_ms,
             issued_date, qr_url, buyer_tax_id, buyer_name, total, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        issued.encf,
        doc_type.as_str(),
        sale_id,
        return_id,
        issued.security_code,
        issued.signed_at_ms,
        issued_date,
        issued.qr_url,
        buyer.0,
        buyer.1,
        issued.total.0,
        seq
    ])?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO signed_documents (sha256, encf, kind, xml, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for d in &issued.documents {
        stmt.execute(params![d.sha256.to_hex(), issued.encf, d.kind, d.xml, seq])?;
    }
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IssuedRow> {
    let doc_type: String = r.get(1)?;
    Ok(IssuedRow {
        encf: r.get(0)?,
        doc_type: FiscalDocType::parse(&doc_type).unwrap_or(FiscalDocType::Invoice),
        security_code: r.get(2)?,
        signed_at_ms: r.get(3)?,
        issued_date: r.get(4)?,
        qr_url: r.get(5)?,
        buyer_tax_id: r.get(6)?,
        buyer_name: r.get(7)?,
        total: caja_shared::money::Money(r.get(8)?),
    })
}

const ROW: &str = "SELECT encf, doc_type, security_code, signed_at_ms, issued_date, qr_url,
     buyer_tax_id, buyer_name, total FROM issued_ecf";

/// The e-CF a sale of this register was issued as.
pub fn of_sale(conn: &Connection, sale: SaleId) -> rusqlite::Result<Option<IssuedRow>> {
    conn.prepare_cached(&format!("{ROW} WHERE sale_id = ?1"))?
        .query_row([sale.to_string()], row)
        .optional()
}

/// An e-CF this register issued, by its e-NCF.
pub fn by_encf(conn: &Connection, encf: &str) -> rusqlite::Result<Option<IssuedRow>> {
    conn.prepare_cached(&format!("{ROW} WHERE encf = ?1"))?
        .query_row([encf], row)
        .optional()
}

/// `(seq, bytes on the wire)` of every signed document named by an event in
/// `(after, upto]`, for byte-bounded push batches.
pub fn wire_sizes(conn: &Connection, after: u64, upto: u64) -> rusqlite::Result<Vec<(u64, usize)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, length(xml) FROM signed_documents WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(
        params![
            i64::try_from(after).unwrap_or(i64::MAX),
            i64::try_from(upto).unwrap_or(i64::MAX)
        ],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )?;
    let mut out = Vec::new();
    for r in rows {
        let (seq, len) = r?;
        let doc = PushDocument {
            sha256: Hash256::ZERO,
            xml: Vec::new(),
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let b64 = len.div_ceil(3).saturating_mul(4);
        out.push((seq.unsigned_abs(), doc.wire_len().saturating_add(b64)));
    }
    Ok(out)
}

/// The signed documents named by events in `(after, upto]`, in ascending
/// SHA-256 order (the push body's order).
pub fn for_push(conn: &Connection, after: u64, upto: u64) -> rusqlite::Result<Vec<PushDocument>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256, xml FROM signed_documents WHERE seq > ?1 AND seq <= ?2 ORDER BY sha256",
    )?;
    let rows = stmt.query_map(
        params![
            i64::try_from(after).unwrap_or(i64::MAX),
            i64::try_from(upto).unwrap_or(i64::MAX)
        ],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)),
    )?;
    let mut out = Vec::new();
    for r in rows {
        let (sha, xml) = r?;
        let sha256: Hash256 = sha.parse().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("signed_documents.sha256 {sha} is not a hash").into(),
            )
        })?;
        out.push(PushDocument { sha256, xml });
    }
    Ok(out)
}

/// One stored signed document: SHA-256 (hex), e-NCF, kind, bytes.
pub type StoredDoc = (String, String, String, Vec<u8>);

/// Every signed document, oldest first: for status, tests and an auditor.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<StoredDoc>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256, encf, kind, xml FROM signed_documents ORDER BY seq, kind",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    rows.collect()
}
