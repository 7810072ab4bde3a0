//! Taking in what the hub sends: pages of the store's hub chain (verified
//! against the hub's Ed25519 checkpoint before anything is applied) and the
//! store's other registers' events. Each function works inside the caller's
//! transaction, so a page is taken in whole or not at all.

use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{OpError, Refusal};
use crate::journal::DeviceRecord;
use crate::projection;

/// Verifies and applies a page of the store's hub chain: the checkpoint must
/// verify with the hub key received at enrollment and cover the page's last
/// event; the events must continue the hub chain held (events already held must
/// be identical). Returns how many events were new.
pub fn hub_page(
    tx: &Transaction<'_>,
    device: &DeviceRecord,
    events: &[Event],
    checkpoint: &HubCheckpoint,
) -> Result<u64, OpError> {
    let hub_key = device.hub_public_key.ok_or_else(|| {
        OpError::Refused(Refusal::HubEvents(
            "this register has no hub public key (enroll first)".into(),
        ))
    })?;
    checkpoint
        .verify(&hub_key)
        .map_err(|e| OpError::Refused(Refusal::HubEvents(e.to_string())))?;
    let last = events
        .last()
        .ok_or_else(|| OpError::Refused(Refusal::HubEvents("no events".into())))?;
    if last.seq() != checkpoint.seq
        || last.hash() != checkpoint.hash
        || last.envelope().device != checkpoint.device
    {
        return Err(OpError::Refused(Refusal::HubEvents(
            "the checkpoint does not cover the last event of the page".into(),
        )));
    }
    let (mut seq, mut prev): (i64, String) = tx.query_row(
        "SELECT coalesce(max(seq), 0),
                coalesce((SELECT hash FROM hub_events ORDER BY seq DESC LIMIT 1), ?1)
         FROM hub_events",
        [Hash256::ZERO.to_hex()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (mut ord, after_own_seq) = projection::import_position(tx)?;
    let mut imported = 0;
    for (i, e) in events.iter().enumerate() {
        let env = e.envelope();
        let at = |what: &str| OpError::Refused(Refusal::HubEvents(format!("events[{i}]: {what}")));
        if env.store != device.store || env.device != checkpoint.device {
            return Err(at("belongs to another store or chain"));
        }
        let n = i64::try_from(env.seq.get()).map_err(|_| at("seq out of range"))?;
        if n <= seq {
            // Already held: must be the same event.
            let held: Option<String> = tx
                .query_row("SELECT hash FROM hub_events WHERE seq = ?1", [n], |r| {
                    r.get(0)
                })
                .optional()?;
            if held.as_deref() != Some(e.hash().to_hex().as_str()) {
                return Err(at("differs from the hub event already held at its seq"));
            }
            continue;
        }
        if n != seq + 1 || env.prev.to_hex() != prev {
            return Err(at(
                "does not follow the hub chain held (gap or prev mismatch)",
            ));
        }
        let (applied, body) = match e.body() {
            Ok(b) => (true, Some(b)),
            Err(err) if err.is_unknown() => (false, None),
            Err(err) => return Err(at(&err.to_string())),
        };
        tx.execute(
            "INSERT INTO hub_events (seq, event_id, hash, prev, kind, applied, bytes, after_own_seq, ord)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                n,
                e.id().to_string(),
                e.hash().to_hex(),
                env.prev.to_hex(),
                env.kind.as_str(),
                i64::from(applied),
                e.canonical_bytes(),
                after_own_seq,
                ord
            ],
        )?;
        ord += 1;
        if let Some(body) = body {
            projection::apply_hub(tx, &body)?;
            // A quota this register asked for joins its quotas (not a
            // projection: see `escrow`).
            if let caja_shared::kind::EventBody::EscrowGranted(g) = &body {
                crate::escrow::on_grant(tx, device.device, g)?;
            }
        }
        seq = n;
        prev = e.hash().to_hex();
        imported += 1;
    }
    Ok(imported)
}

/// Stores and applies the store's other registers' events (their chains are
/// the hub's to check; the register keeps them apart from its own). Events
/// already held are skipped; this register's own events and other stores'
/// events are refused. Returns how many were new.
pub fn peer_events(
    tx: &Transaction<'_>,
    device: &DeviceRecord,
    events: &[Event],
) -> Result<u64, OpError> {
    let (mut ord, after_own_seq) = projection::import_position(tx)?;
    let mut imported = 0;
    for (i, e) in events.iter().enumerate() {
        let env = e.envelope();
        let at = |what: &str| OpError::Refused(Refusal::HubEvents(format!("events[{i}]: {what}")));
        if env.store != device.store {
            return Err(at("belongs to another store"));
        }
        if env.device == device.device {
            return Err(at("is this register's own event"));
        }
        let held: Option<String> = tx
            .query_row(
                "SELECT hash FROM peer_events WHERE event_id = ?1",
                [e.id().to_string()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(h) = held {
            if h != e.hash().to_hex() {
                return Err(at("differs from the event already held with its id"));
            }
            continue;
        }
        let seq = i64::try_from(env.seq.get()).map_err(|_| at("seq out of range"))?;
        let (applied, body) = match e.body() {
            Ok(b) => (true, Some(b)),
            Err(err) if err.is_unknown() => (false, None),
            Err(err) => return Err(at(&err.to_string())),
        };
        tx.execute(
            "INSERT INTO peer_events (device, seq, event_id, hash, kind, applied, bytes, after_own_seq, ord)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                env.device.to_string(),
                seq,
                e.id().to_string(),
                e.hash().to_hex(),
                env.kind.as_str(),
                i64::from(applied),
                e.canonical_bytes(),
                after_own_seq,
                ord
            ],
        )?;
        ord += 1;
        if let Some(body) = body {
            projection::apply_peer(tx, seq, e, &body)?;
        }
        imported += 1;
    }
    Ok(imported)
}
