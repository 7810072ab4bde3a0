//! Administration: the status line, giving back fiscal numbers, importing
//! a verified page of the hub chain, and rebuilding the projections.
//!
//! Invariant: a hub page is imported all or nothing, after its continuity
//! and the hub's signed checkpoint verify.

use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::RandomSource;
use caja_shared::event::Event;
use caja_shared::ids::{DeviceId, OpId, StoreId};
use serde::{Deserialize, Serialize};

use super::kernel::{invalid, Register};
use crate::error::OpError;
use crate::journal::{self, Journal};
use crate::projection;

/// Numbers given back by [`Register::release_fiscal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedRange {
    /// Series.
    pub series: String,
    /// First released.
    pub first: u64,
    /// Last released.
    pub last: u64,
    /// The release event's seq.
    pub seq: u64,
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Store.
    pub store: StoreId,
    /// Device.
    pub device: DeviceId,
    /// Journal head seq.
    pub head_seq: u64,
    /// Last checkpoint seq.
    pub last_checkpoint_seq: Option<u64>,
    /// Events not yet acknowledged by the hub.
    pub unsynced: u64,
    /// The open shift (id and cashier).
    pub open_shift: Option<(String, String)>,
    /// Whether this database is a restored backup not yet synced.
    pub restored_from_backup: bool,
    /// Hub chain events held.
    pub hub_events: u64,
    /// Other registers' events held.
    pub peer_events: u64,
    /// What the sync engine last saw.
    pub sync: crate::sync::engine::SyncStatus,
    /// The configured receipt printer's address.
    pub printer: Option<String>,
    /// The print queue.
    pub print: crate::print::QueueStatus,
    /// Fiscal numbers left per configured series.
    pub fiscal: Vec<crate::fiscal::SeriesLeft>,
    /// Stock quotas held (when `stock_quotas` is on).
    pub quotas: Option<Vec<crate::escrow::QuotaLeft>>,
    /// The configured scale's address.
    pub scale: Option<String>,
    /// This register's card/QR payment intents, as the hub reported them.
    pub payment_intents: Vec<projection::IntentLine>,
    /// Conflicts head office resolved (ConflictResolved hub events).
    pub conflicts_resolved: Vec<projection::ResolvedConflict>,
    /// This register's fiscal documents by the tax authority's verdict (phase
    /// two, confirmed through the hub).
    pub fiscal_documents: projection::FiscalDocCounts,
    /// When this status was taken (UTC ms), for the ages the register shows.
    pub now_ms: i64,
}

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// Gives back every unused fiscal number this register holds (e.g. before
    /// it is retired): one `FiscalNumbersReleased` per block.
    pub fn release_fiscal(&mut self, op_id: OpId) -> Result<Vec<ReleasedRange>, OpError> {
        self.run(op_id, "fiscal_release", &"all", |ctx| {
            let own = ctx.journal.device().device;
            let mut out = Vec::new();
            for r in crate::fiscal::to_release(ctx.tx, own, ctx.now_ms, true)? {
                let (series, first, last) = (r.series.clone(), r.first, r.last);
                let seq = ctx.append(r.into(), vec![])?;
                out.push(ReleasedRange {
                    series,
                    first,
                    last,
                    seq,
                });
            }
            Ok(out)
        })
    }

    /// Imports a page of the store's hub chain (catalog, prices, …) after
    /// verifying its continuity with what the register holds and the hub's
    /// Ed25519 checkpoint over its last event. All or nothing.
    pub fn import_hub_events(
        &mut self,
        events: &[Event],
        checkpoint: &HubCheckpoint,
    ) -> Result<u64, OpError> {
        let device = self.device().clone();
        let tx = self.db.write_tx()?;
        let n = crate::import::hub_page(&tx, &device, events, checkpoint)?;
        tx.commit()?;
        Ok(n)
    }

    /// What the register shows in its status line.
    pub fn status(&self) -> Result<Status, OpError> {
        let conn = self.db.conn();
        let head = Journal::head(conn)?;
        let cp = Journal::latest_checkpoint(conn)?;
        let open = projection::open_shift(conn)?.map(|(s, c, _)| (s, c));
        let (hub_events, peer_events) = crate::queries::held_events(conn)?;
        let sync =
            crate::sync::engine::status(conn).map_err(|e| invalid("sync_status", e.to_string()))?;
        let d = self.device();
        // Read, not the record cached at open: the sync engine (its own
        // connection) clears the mark when the recovery ends.
        let restored = journal::load_device(conn)?.is_some_and(|d| d.restored_from_backup);
        let fiscal = crate::fiscal::status(
            conn,
            self.device().device,
            &self.config.fiscal_documents,
            self.config.fiscal_low_water,
            self.clock.now_ms(),
        )?;
        Ok(Status {
            store: d.store,
            device: d.device,
            head_seq: head.seq,
            last_checkpoint_seq: cp.map(|c| c.checkpoint.seq.get()),
            unsynced: Journal::unsynced(conn)?,
            open_shift: open,
            restored_from_backup: restored,
            fiscal,
            quotas: if self.config.stock_quotas {
                Some(crate::escrow::status(conn, self.clock.now_ms())?)
            } else {
                None
            },
            hub_events: u64::try_from(hub_events).unwrap_or(0),
            peer_events: u64::try_from(peer_events).unwrap_or(0),
            sync,
            printer: self.config.printer.clone(),
            print: crate::print::queue_status(conn)?,
            scale: self.config.scale.clone(),
            payment_intents: projection::payment_intents(conn, &d.device.to_string())?,
            conflicts_resolved: projection::conflicts_resolved(conn)?,
            fiscal_documents: projection::fiscal_doc_counts(conn, &d.device.to_string())?,
            now_ms: self.clock.now_ms(),
        })
    }

    /// Rebuilds every projection from the journal and the hub chain, in one
    /// transaction, and returns the digest before and after.
    pub fn rebuild(&mut self) -> Result<(Hash256, Hash256), OpError> {
        let tx = self.db.write_tx()?;
        let before = projection::digest(&tx)?;
        projection::rebuild(&tx)?;
        let after = projection::digest(&tx)?;
        tx.commit()?;
        Ok((before, after))
    }
}
