//! The SQL of the delivery of head office's ACECF (`acecf_deliveries`):
//! queued in the decision's transaction ([`enqueue`]), one row per
//! destination (the supplier's URL Aprobación Comercial, DGII); claimed one
//! at a time under a lease ([`claim`], the outbox's claim protocol: one
//! conditional `UPDATE … RETURNING` in the writer's transaction, so two
//! workers or instances never hold one row); marked in doubt before each
//! send and settled by an answer ([`settle`]), every later write
//! conditional on the lease still being the worker's.
//!
//! Invariant: the bytes sent are `received_ecf.acecf`, set once (trigger),
//! so every attempt to every destination carries the same content.

use serde::Serialize;

use crate::storage::alerts::raise_alert;
use crate::storage::db::{params, Conn};
use crate::storage::error::StorageError;
use crate::storage::writer::Env;
use crate::storage::Storage;

/// A claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The supplier.
    pub issuer_rnc: String,
    /// The supplier's e-NCF.
    pub encf: String,
    /// `issuer` or `dgii`.
    pub destination: String,
    /// Attempts before this one.
    pub attempts: i64,
    /// Whether an earlier send may have arrived.
    pub in_doubt: bool,
    /// The signed ACECF.
    pub acecf: Vec<u8>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The destination took it (answer kept).
    Delivered(String),
    /// The destination refused it for good (alert raised).
    Refused(String),
    /// Try again at the given time (UTC ms).
    Retry {
        /// Why.
        error: String,
        /// When.
        at_ms: i64,
    },
}

/// A delivery as head office sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryInfo {
    /// The supplier.
    pub issuer_rnc: String,
    /// The e-NCF.
    pub encf: String,
    /// `issuer` or `dgii`.
    pub destination: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Queues both deliveries of a decided supplier e-CF.
pub(crate) fn enqueue(conn: &Conn, issuer: &str, encf: &str, now: i64) -> Result<(), StorageError> {
    for destination in ["issuer", "dgii"] {
        conn.prepare_cached(
            "INSERT INTO acecf_deliveries (issuer_rnc, encf, destination, state, next_attempt_ms)
             VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT DO NOTHING",
        )?
        .execute(params![issuer, encf, destination, now])?;
    }
    Ok(())
}

fn claim(
    conn: &Conn,
    env: &mut Env,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<Delivery>, StorageError> {
    let now = env.now_ms();
    let row: Option<(String, String, String, i64, i64)> = conn
        .prepare_cached(
            "UPDATE acecf_deliveries SET lease_owner = $1, lease_until_ms = CAST($2 AS BIGINT) + CAST($3 AS BIGINT)
             WHERE (issuer_rnc, encf, destination) IN (
                 SELECT issuer_rnc, encf, destination FROM acecf_deliveries
                 WHERE state = 'pending' AND next_attempt_ms <= $2
                   AND (lease_until_ms IS NULL OR lease_until_ms <= $2)
                 ORDER BY next_attempt_ms, issuer_rnc, encf, destination LIMIT 1)
             RETURNING issuer_rnc, encf, destination, attempts, in_doubt",
        )?
        .query_map(params![owner, now, lease_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .next()
        .transpose()?;
    let Some((issuer_rnc, encf, destination, attempts, in_doubt)) = row else {
        return Ok(None);
    };
    let acecf: Option<Vec<u8>> = conn
        .prepare_cached("SELECT acecf FROM received_ecf WHERE issuer_rnc = $1 AND encf = $2")?
        .query_row(params![issuer_rnc, encf], |r| r.get(0))?;
    let acecf = acecf.ok_or_else(|| {
        crate::storage::codec::corrupt(format!("delivery of {encf} without an ACECF"))
    })?;
    Ok(Some(Delivery {
        issuer_rnc,
        encf,
        destination,
        attempts,
        in_doubt: in_doubt == 1,
        acecf,
    }))
}

fn mark_in_doubt(conn: &Conn, d: &Delivery, owner: &str) -> Result<bool, StorageError> {
    let n = conn
        .prepare_cached(
            "UPDATE acecf_deliveries SET in_doubt = 1, attempts = attempts + 1
             WHERE issuer_rnc = $1 AND encf = $2 AND destination = $3 AND lease_owner = $4",
        )?
        .execute(params![d.issuer_rnc, d.encf, d.destination, owner])?;
    Ok(n == 1)
}

fn settle(
    conn: &Conn,
    env: &mut Env,
    d: &Delivery,
    owner: &str,
    how: &Settled,
) -> Result<bool, StorageError> {
    let now = env.now_ms();
    let (state, next, error, answer, delivered, doubt): (
        &str,
        i64,
        Option<&str>,
        Option<&str>,
        Option<i64>,
        i64,
    ) = match how {
        Settled::Delivered(a) => ("delivered", now, None, Some(a), Some(now), 0),
        Settled::Refused(e) => ("failed", now, Some(e), None, None, 0),
        Settled::Retry { error, at_ms } => ("pending", *at_ms, Some(error), None, None, 1),
    };
    let n = conn
        .prepare_cached(
            "UPDATE acecf_deliveries SET state = $5, next_attempt_ms = $6, last_error = $7, answer = $8,
                    delivered_ms = $9, in_doubt = $10, lease_owner = NULL, lease_until_ms = NULL
             WHERE issuer_rnc = $1 AND encf = $2 AND destination = $3 AND lease_owner = $4",
        )?
        .execute(params![
            d.issuer_rnc,
            d.encf,
            d.destination,
            owner,
            state,
            next,
            error,
            answer,
            delivered,
            doubt
        ])?;
    if n == 1 {
        if let Settled::Refused(e) = how {
            raise_alert(
                conn,
                "acecf_refused",
                None,
                None,
                now,
                &format!(
                    "the ACECF of {} ({}) was refused by {}: {e}",
                    d.encf, d.issuer_rnc, d.destination
                ),
            )?;
        }
    }
    Ok(n == 1)
}

fn list(conn: &Conn) -> Result<Vec<DeliveryInfo>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT issuer_rnc, encf, destination, state, attempts, last_error FROM acecf_deliveries
             ORDER BY issuer_rnc, encf, destination",
        )?
        .query_map([], |r| {
            Ok(DeliveryInfo {
                issuer_rnc: r.get(0)?,
                encf: r.get(1)?,
                destination: r.get(2)?,
                state: r.get(3)?,
                attempts: r.get(4)?,
                last_error: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

impl Storage {
    /// Claims one due ACECF delivery under a lease of `lease_ms`.
    pub async fn acecf_claim(
        &self,
        owner: String,
        lease_ms: i64,
    ) -> Result<Option<Delivery>, StorageError> {
        self.write(move |conn, env| claim(conn, env, &owner, lease_ms))
            .await
    }

    /// Marks a claimed delivery in doubt before it is sent; `false` when the
    /// lease was lost (do not send).
    pub async fn acecf_mark_in_doubt(
        &self,
        d: Delivery,
        owner: String,
    ) -> Result<bool, StorageError> {
        self.write(move |conn, _| mark_in_doubt(conn, &d, &owner))
            .await
    }

    /// Records how an attempt ended; `false` when the lease was lost.
    pub async fn acecf_settle(
        &self,
        d: Delivery,
        owner: String,
        how: Settled,
    ) -> Result<bool, StorageError> {
        self.write(move |conn, env| settle(conn, env, &d, &owner, &how))
            .await
    }

    /// Every ACECF delivery.
    pub async fn acecf_deliveries(&self) -> Result<Vec<DeliveryInfo>, StorageError> {
        self.read(list).await
    }
}
