//! The SQL of the delivery of E31 documents to electronic buyers
//! (`ecf_deliveries`): the registers' signed E31 not yet queued
//! ([`candidates`]), queued once per e-NCF with the buyer the caller read
//! from the bytes ([`enqueue`]); claimed under a lease, marked in doubt
//! before a send and settled by an answer, as `acecf_delivery` does; the
//! buyer's ARECF kept with its `Estado` and reason code.
//!
//! Invariant: the bytes sent are the register's (`signed_documents`), never
//! rebuilt; a worker whose lease was taken over writes nothing.

use serde::Serialize;

use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::error::StorageError;
use crate::storage::writer::Env;
use crate::storage::Storage;

/// A claimed E31 delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcfDelivery {
    /// The e-NCF.
    pub encf: String,
    /// The buyer.
    pub buyer_rnc: String,
    /// Attempts before this one.
    pub attempts: i64,
    /// The signed e-CF.
    pub xml: Vec<u8>,
}

/// How an E31 delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcfSettled {
    /// The buyer answered an ARECF (bytes, `Estado`, reason code).
    Acknowledged(Vec<u8>, i64, Option<i64>),
    /// DGII's directory does not list the buyer.
    NotElectronic,
    /// Refused for good (alert).
    Failed(String),
    /// Try again at a time (UTC ms).
    Retry(String, i64),
}

/// An E31 delivery as head office sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EcfDeliveryInfo {
    /// The e-NCF.
    pub encf: String,
    /// The buyer.
    pub buyer_rnc: String,
    /// `pending`, `delivered`, `not_electronic` or `failed`.
    pub state: String,
    /// The ARECF's `Estado` (0 received, 1 not received).
    pub arecf_estado: Option<i64>,
    /// Its `CodigoMotivoNoRecibido`.
    pub arecf_code: Option<i64>,
    /// Attempts so far.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
}

fn candidates(conn: &Conn, limit: i64) -> Result<Vec<(String, String, Vec<u8>)>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT sd.encf, sd.sha256, sd.xml FROM signed_documents sd
             WHERE sd.kind = 'ecf' AND sd.encf LIKE 'E31%'
               AND NOT EXISTS (SELECT 1 FROM ecf_deliveries d WHERE d.encf = sd.encf)
             ORDER BY sd.received_ms, sd.encf LIMIT $1",
        )?
        .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?)
}

fn enqueue(
    conn: &Conn,
    env: &mut Env,
    encf: &str,
    sha256: &str,
    buyer: Option<&str>,
) -> Result<(), StorageError> {
    let now = env.now_ms();
    let (state, buyer, error) = match buyer {
        Some(b) => ("pending", b, None),
        None => ("failed", "", Some("the E31 names no buyer RNC")),
    };
    conn.prepare_cached(
        "INSERT INTO ecf_deliveries (encf, sha256, buyer_rnc, state, next_attempt_ms, last_error)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )?
    .execute(params![encf, sha256, buyer, state, now, error])?;
    Ok(())
}

fn claim(
    conn: &Conn,
    env: &mut Env,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<EcfDelivery>, StorageError> {
    let now = env.now_ms();
    let row: Option<(String, String, String, i64)> = conn
        .prepare_cached(
            "UPDATE ecf_deliveries SET lease_owner = $1, lease_until_ms = CAST($2 AS BIGINT) + CAST($3 AS BIGINT),
                    in_doubt = 1, attempts = attempts + 1
             WHERE encf IN (SELECT encf FROM ecf_deliveries
                            WHERE state = 'pending' AND next_attempt_ms <= $2
                              AND (lease_until_ms IS NULL OR lease_until_ms <= $2)
                            ORDER BY next_attempt_ms, encf LIMIT 1)
             RETURNING encf, sha256, buyer_rnc, attempts",
        )?
        .query_map(params![owner, now, lease_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .next()
        .transpose()?;
    let Some((encf, sha, buyer_rnc, attempts)) = row else {
        return Ok(None);
    };
    let xml: Option<Vec<u8>> = conn
        .prepare_cached("SELECT xml FROM signed_documents WHERE sha256 = $1")?
        .query_row([sha.as_str()], |r| r.get(0))
        .optional()?;
    let xml = xml.ok_or_else(|| crate::storage::codec::corrupt(format!("{encf}: no bytes")))?;
    Ok(Some(EcfDelivery {
        encf,
        buyer_rnc,
        attempts: attempts - 1,
        xml,
    }))
}

fn settle(
    conn: &Conn,
    env: &mut Env,
    encf: &str,
    owner: &str,
    how: &EcfSettled,
) -> Result<bool, StorageError> {
    let now = env.now_ms();
    type Cols<'a> = (
        &'a str,
        i64,
        Option<&'a str>,
        Option<Vec<u8>>,
        Option<i64>,
        Option<i64>,
        i64,
    );
    let (state, next, error, arecf, estado, code, doubt): Cols<'_> = match how {
        EcfSettled::Acknowledged(b, e, c) => {
            ("delivered", now, None, Some(b.clone()), Some(*e), *c, 0)
        }
        EcfSettled::NotElectronic => ("not_electronic", now, None, None, None, None, 0),
        EcfSettled::Failed(e) => ("failed", now, Some(e), None, None, None, 0),
        EcfSettled::Retry(e, at) => ("pending", *at, Some(e), None, None, None, 1),
    };
    let n = conn
        .prepare_cached(
            "UPDATE ecf_deliveries SET state = $3, next_attempt_ms = $4, last_error = $5, arecf = $6,
                    arecf_estado = $7, arecf_code = $8, in_doubt = $9, lease_owner = NULL, lease_until_ms = NULL,
                    delivered_ms = CASE WHEN $3 = 'delivered' THEN CAST($4 AS BIGINT) ELSE NULL END
             WHERE encf = $1 AND lease_owner = $2",
        )?
        .execute(params![encf, owner, state, next, error, arecf, estado, code, doubt])?;
    if n == 1 {
        if let EcfSettled::Failed(e) = how {
            crate::storage::alerts::raise_alert(
                conn,
                "ecf_delivery_failed",
                None,
                None,
                now,
                &format!("{encf} could not be delivered to its buyer: {e}"),
            )?;
        }
    }
    Ok(n == 1)
}

fn list(conn: &Conn) -> Result<Vec<EcfDeliveryInfo>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT encf, buyer_rnc, state, arecf_estado, arecf_code, attempts, last_error
             FROM ecf_deliveries ORDER BY encf",
        )?
        .query_map([], |r| {
            Ok(EcfDeliveryInfo {
                encf: r.get(0)?,
                buyer_rnc: r.get(1)?,
                state: r.get(2)?,
                arecf_estado: r.get(3)?,
                arecf_code: r.get(4)?,
                attempts: r.get(5)?,
                last_error: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

impl Storage {
    /// Registers' E31 not yet queued for their buyers: (e-NCF, SHA-256, bytes).
    pub async fn ecf_delivery_candidates(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StorageError> {
        self.read(move |conn| candidates(conn, limit)).await
    }

    /// Queues an E31 for its buyer (once per e-NCF; no buyer: failed).
    pub async fn ecf_delivery_enqueue(
        &self,
        encf: String,
        sha256: String,
        buyer: Option<String>,
    ) -> Result<(), StorageError> {
        self.write(move |conn, env| enqueue(conn, env, &encf, &sha256, buyer.as_deref()))
            .await
    }

    /// Claims one due E31 delivery (marked in doubt, attempts + 1).
    pub async fn ecf_delivery_claim(
        &self,
        owner: String,
        lease_ms: i64,
    ) -> Result<Option<EcfDelivery>, StorageError> {
        self.write(move |conn, env| claim(conn, env, &owner, lease_ms))
            .await
    }

    /// Records how an E31 delivery ended; `false` when the lease was lost.
    pub async fn ecf_delivery_settle(
        &self,
        encf: String,
        owner: String,
        how: EcfSettled,
    ) -> Result<bool, StorageError> {
        self.write(move |conn, env| settle(conn, env, &encf, &owner, &how))
            .await
    }

    /// Every E31 delivery.
    pub async fn ecf_deliveries(&self) -> Result<Vec<EcfDeliveryInfo>, StorageError> {
        self.read(list).await
    }
}
