//! The SQL of the DGII receiver services (`receiver_seeds`, `received_ecf`,
//! `commercial_approvals`, migration `dgii_receiver`): a seed's one use, a
//! supplier's e-CF stored once per issuer RNC and e-NCF with the ARECF that
//! answered it, a buyer's ACECF of an e-CF we issued stored once per e-NCF
//! and buyer (a rejection raises an alert), head office's decision on a
//! supplier's e-CF, and the lists head office reads.
//!
//! Invariant: every write is one insert that does nothing on conflict (or an
//! update conditional on no decision yet), so a repeated call changes
//! nothing and says so; each new row gets its audit entry in the same
//! transaction. Storage decides nothing: the checks are `crate::receiver`.

use caja_shared::digest::Hash256;
use serde::Serialize;

use crate::audit::{self, AuditKind};
use crate::receiver::documents::{Approval, ReceivedEcf};
use crate::storage::alerts::raise_alert;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::parse;
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::error::{Answer, StorageError};
use crate::storage::Storage;
use crate::wire::ApiError;

/// A supplier's e-CF as head office sees it (`caja-hub admin purchases`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Purchase {
    /// The supplier's RNC.
    pub issuer_rnc: String,
    /// The supplier's name.
    pub issuer_name: String,
    /// The e-NCF.
    pub encf: String,
    /// The e-CF type (31, 33, …).
    pub ecf_type: i64,
    /// `FechaEmision` (`dd-MM-yyyy`).
    pub issued_date: String,
    /// `MontoTotal` in minor units.
    pub total: i64,
    /// Security code.
    pub security_code: String,
    /// SHA-256 of the bytes received.
    pub sha256: String,
    /// When it was received (UTC ms).
    pub received_ms: i64,
    /// `approved`, `rejected` or none yet.
    pub decision: Option<String>,
    /// Why (a rejection's reason).
    pub decision_note: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
}

/// A buyer's approval of an e-CF we issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommercialApproval {
    /// Our e-NCF.
    pub encf: String,
    /// The buyer.
    pub buyer_rnc: String,
    /// `approved` or `rejected`.
    pub state: String,
    /// The rejection's reason.
    pub reason: Option<String>,
    /// `FechaHoraAprobacionComercial` as the buyer wrote it.
    pub decided_at: String,
    /// When it was received (UTC ms).
    pub received_ms: i64,
}

/// What storing a received ACECF did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStored {
    /// Stored now.
    New,
    /// The same bytes were already stored: nothing changed.
    Duplicate,
}

/// What head office's decision on a supplier's e-CF needs to sign its
/// ACECF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToDecide {
    /// `FechaEmision`.
    pub issued_date: String,
    /// `MontoTotal` in minor units.
    pub total: i64,
    /// Our RNC as the document's buyer.
    pub buyer_rnc: String,
}

fn use_seed(conn: &Conn, seed: &str, now: i64) -> Result<bool, StorageError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO receiver_seeds (seed, used_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![seed, now])?;
    Ok(n == 1)
}

fn insert_received(
    conn: &Conn,
    env: &mut crate::storage::writer::Env,
    doc: &ReceivedEcf,
    xml: &[u8],
    arecf: &[u8],
) -> Result<bool, StorageError> {
    let now = env.now_ms();
    let sha = Hash256::of(xml).to_hex();
    let n = conn
        .prepare_cached(
            "INSERT INTO received_ecf (issuer_rnc, encf, buyer_rnc, ecf_type, issuer_name, issued_date, total_minor, security_code, sha256, xml, arecf, received_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            doc.issuer_rnc,
            doc.encf,
            doc.buyer_rnc.clone().unwrap_or_default(),
            i64::from(doc.ecf_type),
            doc.issuer_name,
            doc.issued_date,
            doc.total_minor,
            doc.security_code,
            sha.clone(),
            xml.to_vec(),
            arecf.to_vec(),
            now
        ])?;
    if n != 1 {
        return Ok(false);
    }
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::SupplierInvoiceReceived,
        now,
        None,
        audit::data([
            ("issuer_rnc", audit::s(&doc.issuer_rnc)),
            ("encf", audit::s(&doc.encf)),
            ("sha256", audit::s(&sha)),
            ("arecf_sha256", audit::s(Hash256::of(arecf).to_hex())),
        ]),
    )?;
    Ok(true)
}

fn insert_approval(
    conn: &Conn,
    env: &mut crate::storage::writer::Env,
    a: &Approval,
    xml: &[u8],
) -> Result<Answer<ApprovalStored>, StorageError> {
    let now = env.now_ms();
    let store: Option<String> = conn
        .prepare_cached(
            "SELECT store_id FROM signed_documents WHERE encf = $1 AND kind = 'ecf' ORDER BY received_ms LIMIT 1",
        )?
        .query_row([a.encf.as_str()], |r| r.get(0))
        .optional()?;
    let Some(store) = store else {
        return Ok(Err(ApiError::not_found(format!(
            "{} is not an e-CF this taxpayer issued",
            a.encf
        ))));
    };
    let sha = Hash256::of(xml).to_hex();
    let existing: Option<String> = conn
        .prepare_cached(
            "SELECT sha256 FROM commercial_approvals WHERE encf = $1 AND buyer_rnc = $2",
        )?
        .query_row(params![a.encf, a.buyer_rnc], |r| r.get(0))
        .optional()?;
    if let Some(old) = existing {
        return Ok(if old == sha {
            Ok(ApprovalStored::Duplicate)
        } else {
            Err(ApiError::new(
                409,
                "already_decided",
                format!(
                    "{} already has a commercial approval from {}; it does not change",
                    a.encf, a.buyer_rnc
                ),
            ))
        });
    }
    conn.prepare_cached(
        "INSERT INTO commercial_approvals (encf, buyer_rnc, estado, reason, decided_at, sha256, xml, received_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )?
    .execute(params![
        a.encf,
        a.buyer_rnc,
        if a.accepted { 1_i64 } else { 2_i64 },
        a.reason,
        a.decided_at,
        sha.clone(),
        xml.to_vec(),
        now
    ])?;
    let store_id: caja_shared::ids::StoreId = parse(&store)?;
    let state = if a.accepted { "approved" } else { "rejected" };
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::CommercialApprovalReceived,
        now,
        Some(store_id),
        audit::data([
            ("encf", audit::s(&a.encf)),
            ("buyer_rnc", audit::s(&a.buyer_rnc)),
            ("state", audit::s(state)),
            ("sha256", audit::s(&sha)),
        ]),
    )?;
    if !a.accepted {
        raise_alert(
            conn,
            "commercial_rejection",
            Some(store_id),
            None,
            now,
            &format!(
                "buyer {} rejected {} commercially: {}",
                a.buyer_rnc,
                a.encf,
                a.reason.as_deref().unwrap_or("(no reason given)")
            ),
        )?;
    }
    Ok(Ok(ApprovalStored::New))
}

const PURCHASE_COLUMNS: &str = "issuer_rnc, issuer_name, encf, ecf_type, issued_date, total_minor, security_code, sha256, received_ms, decision, decision_note, decided_by";

fn purchase_row(r: &crate::storage::db::Row) -> Result<Purchase, crate::storage::db::DbError> {
    Ok(Purchase {
        issuer_rnc: r.get(0)?,
        issuer_name: r.get(1)?,
        encf: r.get(2)?,
        ecf_type: r.get(3)?,
        issued_date: r.get(4)?,
        total: r.get(5)?,
        security_code: r.get(6)?,
        sha256: r.get(7)?,
        received_ms: r.get(8)?,
        decision: r.get(9)?,
        decision_note: r.get(10)?,
        decided_by: r.get(11)?,
    })
}

fn purchases(conn: &Conn, limit: usize) -> Result<Vec<Purchase>, StorageError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PURCHASE_COLUMNS} FROM received_ecf ORDER BY received_ms DESC, issuer_rnc, encf LIMIT $1"
        ))?
        .query_map([limit], purchase_row)?
        .collect::<Result<_, _>>()?)
}

fn approvals(conn: &Conn, limit: usize) -> Result<Vec<CommercialApproval>, StorageError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(conn
        .prepare_cached(
            "SELECT encf, buyer_rnc, estado, reason, decided_at, received_ms FROM commercial_approvals
             ORDER BY received_ms DESC, encf LIMIT $1",
        )?
        .query_map([limit], |r| {
            let estado: i64 = r.get(2)?;
            Ok(CommercialApproval {
                encf: r.get(0)?,
                buyer_rnc: r.get(1)?,
                state: if estado == 1 { "approved" } else { "rejected" }.to_owned(),
                reason: r.get(3)?,
                decided_at: r.get(4)?,
                received_ms: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

fn to_decide(conn: &Conn, issuer: &str, encf: &str) -> Result<Answer<ToDecide>, StorageError> {
    let row: Option<(String, i64, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT issued_date, total_minor, buyer_rnc, decision FROM received_ecf WHERE issuer_rnc = $1 AND encf = $2",
        )?
        .query_row(params![issuer, encf], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    Ok(match row {
        None => Err(ApiError::not_found(format!(
            "no e-CF {encf} received from {issuer}"
        ))),
        Some((_, _, _, Some(d))) => Err(ApiError::new(
            409,
            "already_decided",
            format!("{encf} of {issuer} is already {d}"),
        )),
        Some((issued_date, total, buyer_rnc, None)) => Ok(ToDecide {
            issued_date,
            total,
            buyer_rnc,
        }),
    })
}

#[allow(clippy::too_many_arguments)]
fn decide(
    conn: &Conn,
    env: &mut crate::storage::writer::Env,
    issuer: &str,
    encf: &str,
    accepted: bool,
    by: &str,
    note: &str,
    acecf: &[u8],
) -> Result<Answer<()>, StorageError> {
    let now = env.now_ms();
    let decision = if accepted { "approved" } else { "rejected" };
    let n = conn
        .prepare_cached(
            "UPDATE received_ecf SET decision = $3, decision_note = $4, decided_by = $5, decided_ms = $6, acecf = $7
             WHERE issuer_rnc = $1 AND encf = $2 AND decision IS NULL",
        )?
        .execute(params![issuer, encf, decision, note, by, now, acecf.to_vec()])?;
    if n != 1 {
        return Ok(Err(ApiError::new(
            409,
            "already_decided",
            format!("{encf} of {issuer} was decided meanwhile"),
        )));
    }
    crate::storage::acecf_delivery::enqueue(conn, issuer, encf, now)?;
    append_audit(
        conn,
        &mut env.tx,
        AuditKind::SupplierInvoiceDecided,
        now,
        None,
        audit::data([
            ("issuer_rnc", audit::s(issuer)),
            ("encf", audit::s(encf)),
            ("decision", audit::s(decision)),
            ("by", audit::s(by)),
            ("note", audit::s(note)),
            ("acecf_sha256", audit::s(Hash256::of(acecf).to_hex())),
        ]),
    )?;
    Ok(Ok(()))
}

fn signed_ecf(conn: &Conn, encf: &str) -> Result<Option<Vec<u8>>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT xml FROM signed_documents WHERE encf = $1 AND kind = 'ecf' ORDER BY received_ms LIMIT 1",
        )?
        .query_row([encf], |r| r.get(0))
        .optional()?)
}

impl Storage {
    /// The signed e-CF a register issued under `encf` (its exact bytes).
    pub async fn signed_ecf(&self, encf: String) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(move |conn| signed_ecf(conn, &encf)).await
    }

    /// Records the one use of a receiver seed; `false` when it was used.
    pub async fn receiver_use_seed(&self, seed: String) -> Result<bool, StorageError> {
        self.write(move |conn, env| {
            let now = env.now_ms();
            use_seed(conn, &seed, now)
        })
        .await
    }

    /// Stores a checked supplier e-CF with the ARECF that answers it, once
    /// per issuer and e-NCF; `false` (nothing changed) when already held.
    pub async fn receive_ecf(
        &self,
        doc: ReceivedEcf,
        xml: Vec<u8>,
        arecf: Vec<u8>,
    ) -> Result<bool, StorageError> {
        self.write(move |conn, env| insert_received(conn, env, &doc, &xml, &arecf))
            .await
    }

    /// Stores a checked ACECF of an e-CF we issued (404 when we did not
    /// issue it, 409 when another approval is held; a rejection alerts).
    pub async fn receive_approval(
        &self,
        approval: Approval,
        xml: Vec<u8>,
    ) -> Result<Answer<ApprovalStored>, StorageError> {
        self.write(move |conn, env| insert_approval(conn, env, &approval, &xml))
            .await
    }

    /// Supplier e-CF, newest first.
    pub async fn purchases(&self, limit: usize) -> Result<Vec<Purchase>, StorageError> {
        self.read(move |conn| purchases(conn, limit)).await
    }

    /// Buyers' approvals of e-CF we issued, newest first.
    pub async fn commercial_approvals(
        &self,
        limit: usize,
    ) -> Result<Vec<CommercialApproval>, StorageError> {
        self.read(move |conn| approvals(conn, limit)).await
    }

    /// What head office's decision on a supplier's e-CF signs (404 unknown,
    /// 409 decided).
    pub async fn purchase_to_decide(
        &self,
        issuer: String,
        encf: String,
    ) -> Result<Answer<ToDecide>, StorageError> {
        self.read(move |conn| to_decide(conn, &issuer, &encf)).await
    }

    /// Records head office's decision and its signed ACECF, once.
    pub async fn decide_purchase(
        &self,
        issuer: String,
        encf: String,
        accepted: bool,
        by: String,
        note: String,
        acecf: Vec<u8>,
    ) -> Result<Answer<()>, StorageError> {
        self.write(move |conn, env| decide(conn, env, &issuer, &encf, accepted, &by, &note, &acecf))
            .await
    }
}
