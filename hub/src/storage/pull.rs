//! The pull pages: `GET /v1/sync/pull` (events applied in a store, in apply
//! order, but the device's own) and `GET /v1/sync/own` (a device's own chain
//! back, for a restore).
//!
//! A page holds at most `limit` events and stops before its event bytes
//! would exceed `max_bytes`, but always holds one event when any follows
//! (an event is never larger than the push cap that let it in), so a
//! register always progresses.
//!
//! Feature module: reads only.

use crate::caps::page_takes;
use crate::storage::codec::{corrupt, i, parse, u};
use crate::storage::db::{params, Conn, OptionalExtension};
use crate::storage::device_auth::DeviceCtx;
use crate::storage::error::StorageError;
use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, Seq};

/// One page of `GET /v1/sync/pull`.
#[derive(Debug, Clone)]
pub struct PullPage {
    /// Canonical bytes of the events, in apply order.
    pub events: Vec<Vec<u8>>,
    /// Cursor after the last event (the request's cursor when empty).
    pub next: u64,
    /// Whether more events follow.
    pub more: bool,
    /// The last hub event of the page: (hub device, seq, hash).
    pub last_hub: Option<(DeviceId, Seq, Hash256)>,
}

/// One page of `GET /v1/sync/own`.
#[derive(Debug, Clone)]
pub struct OwnPage {
    /// Canonical bytes of the device's events, in seq order.
    pub events: Vec<Vec<u8>>,
    /// The device's last checkpoint (canonical JSON), if it pushed any.
    pub checkpoint: Option<String>,
    /// Whether more events follow.
    pub more: bool,
}

pub(crate) fn pull_page(
    conn: &Conn,
    who: DeviceCtx,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<PullPage, StorageError> {
    let hub: Option<String> = conn
        .prepare_cached("SELECT hub_device FROM stores WHERE store_id = $1")?
        .query_row([who.store.to_string()], |r| r.get(0))
        .optional()?;
    let mut stmt = conn.prepare_cached(
        "SELECT a.applied_seq, e.device_id, e.seq, e.hash, e.bytes FROM applied a JOIN events e ON e.id = a.event_row
         WHERE a.store_id = $1 AND a.applied_seq > $2 AND a.device_id != $3 ORDER BY a.applied_seq LIMIT $4",
    )?;
    let mut rs = stmt.query(params![
        who.store.to_string(),
        i(after),
        who.device.to_string(),
        i(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
    ])?;
    let mut page = PullPage {
        events: Vec::new(),
        next: after,
        more: false,
        last_hub: None,
    };
    let mut bytes = 0usize;
    while let Some(r) = rs.next()? {
        let event: Vec<u8> = r.get(4)?;
        if page.events.len() == limit
            || !page_takes(max_bytes, page.events.len(), bytes, event.len())
        {
            page.more = true;
            break;
        }
        bytes += event.len();
        let device: String = r.get(1)?;
        if hub.as_deref() == Some(device.as_str()) {
            let seq = Seq::new(u(r.get(2)?)).map_err(corrupt)?;
            let hash: String = r.get(3)?;
            page.last_hub = Some((parse(&device)?, seq, parse(&hash)?));
        }
        page.next = u(r.get(0)?);
        page.events.push(event);
    }
    Ok(page)
}

pub(crate) fn own_page(
    conn: &Conn,
    device: DeviceId,
    after_seq: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<OwnPage, StorageError> {
    let checkpoint: Option<String> = conn
        .prepare_cached("SELECT checkpoint FROM devices WHERE device_id = $1")?
        .query_row([device.to_string()], |r| r.get(0))
        .optional()?
        .flatten();
    let mut stmt = conn.prepare_cached(
        "SELECT bytes FROM events WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )?;
    let mut rs = stmt.query(params![
        device.to_string(),
        i(after_seq),
        i(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
    ])?;
    let mut events: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    while let Some(r) = rs.next()? {
        let event: Vec<u8> = r.get(0)?;
        if events.len() == limit || !page_takes(max_bytes, events.len(), bytes, event.len()) {
            more = true;
            break;
        }
        bytes += event.len();
        events.push(event);
    }
    Ok(OwnPage {
        events,
        checkpoint,
        more,
    })
}
