//! The sync engine: pushes this register's unsynced events, pulls what the hub
//! sends, and recovers its own chain from the hub after a restore from backup.
//!
//! It works on its own SQLite connection, so selling never waits for the
//! network: a sale only waits for the write lock, which a sync transaction
//! holds for one page at a time. Every failure leaves the database consistent,
//! and the next round resumes from the hub's `acked_seq` and the stored pull
//! cursor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use caja_shared::canonical::Value;
use caja_shared::checkpoint::{Checkpoint, HubCheckpoint};
use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::event::Event;

use super::backoff::{Backoff, BackoffPolicy};
use super::breaker::{Breaker, BreakerPolicy};
use super::client::{Credentials, HubClient, HubError};
use super::skew::SkewEstimate;
use super::state;
use crate::datadir::DataDir;
use crate::db::{Db, DbError};
use crate::error::OpError;
use crate::journal::{self, DeviceRecord, Journal, JournalError};
use crate::keyfile::{self, KeyFileError};

mod audit;
mod restore;
pub use crate::sync::state::{hub_log_status, reset_hub_trust, HubLogStatus};

/// The sync engine's limits, all named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    /// Events per push.
    pub push_batch: usize,
    /// Bytes per push body, signed documents included (under the hub's
    /// body limit).
    pub push_bytes: usize,
    /// Events per pull page.
    pub pull_limit: usize,
    /// Longest wait for one request, ms.
    pub timeout_ms: u64,
    /// Pause between rounds when all is synced, ms.
    pub interval_ms: u64,
    /// Retry backoff.
    pub backoff: BackoffPolicy,
    /// Circuit breaker.
    pub breaker: BreakerPolicy,
    /// HLC drift bound (from the node's configuration).
    pub max_hlc_drift_ms: i64,
    /// Reuse HTTP connections (off: one connection per request).
    pub keep_alive: bool,
    /// After the hub granted no quota for a product, ask again only after
    /// this long, ms.
    pub escrow_retry_ms: i64,
    // — PERF —
    /// Pushes at the hub at once over HTTP ([`super::pipeline`]): 1 sends
    /// each push once the one before is answered, the next batch read and
    /// signed while one is at the hub and each acknowledgement recorded
    /// while the next push is in flight; more overlap pushes at the hub; 0
    /// turns the pipeline off (one push at a time, nothing ahead).
    pub push_window: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            push_batch: 500,
            push_bytes: super::batch::DEFAULT_PUSH_BYTES,
            pull_limit: 500,
            timeout_ms: super::client::DEFAULT_TIMEOUT_MS,
            interval_ms: 2_000,
            backoff: BackoffPolicy::default(),
            breaker: BreakerPolicy::default(),
            max_hlc_drift_ms: crate::config::DEFAULT_MAX_HLC_DRIFT_MS,
            keep_alive: true,
            escrow_retry_ms: ESCROW_QUIET_MS,
            push_window: 1,
        }
    }
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The hub could not be reached or refused.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The hub quarantined this register (its history differs from the hub's).
    #[error("the hub quarantined this register: {0}")]
    Quarantined(String),
    /// What the hub sent does not verify or does not fit this register.
    #[error("hub data refused: {0}")]
    BadHubData(String),
    /// The hub's audit log does not extend what it signed before (or its head
    /// does not verify): hub data is no longer applied.
    #[error("the hub's audit log was rewritten: {0}")]
    HubLogRewritten(String),
    /// The journal refused.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The key file.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The configuration cannot be used (names the key).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The hub was restored from a backup since the last round: followed
    /// within the round (never returned by it).
    #[error("the hub was restored from a backup")]
    NewRestoreEpoch,
}

impl From<super::pipeline::PipelineError> for SyncError {
    fn from(e: super::pipeline::PipelineError) -> Self {
        use super::pipeline::PipelineError as P;
        match e {
            P::Journal(e) => SyncError::Journal(e),
            P::Db(e) => SyncError::Db(e),
            P::Sql(e) => SyncError::Sql(e),
            P::Op(e) => e.into(),
            P::Other(m) => SyncError::BadHubData(m),
        }
    }
}

impl From<OpError> for SyncError {
    fn from(e: OpError) -> Self {
        SyncError::BadHubData(e.to_string())
    }
}

impl SyncError {
    /// Whether the breaker should count this as a failure of the link (as
    /// opposed to something that needs a person).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Hub(h) => h.is_transient(),
            SyncError::Db(_) | SyncError::Sql(_) => true,
            _ => false,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Own events fetched back from the hub (after a restore).
    pub recovered: u64,
    /// Own events the hub newly stored.
    pub pushed: u64,
    /// Own events the hub already had.
    pub duplicates: u64,
    /// Own events the hub holds for dependencies.
    pub held: u64,
    /// New hub-chain events.
    pub hub_events: u64,
    /// New events of other registers.
    pub peer_events: u64,
    /// Fiscal blocks the hub granted this round.
    pub fiscal_blocks: u64,
    /// Stock quotas the hub granted this round.
    pub quotas: u64,
}

/// After the hub granted nothing for a product, ask again only after this long.
pub const ESCROW_QUIET_MS: i64 = 60_000;

/// After the hub refused a series (exhausted, missing), ask again only after
/// this long.
pub const FISCAL_REFUSAL_RETRY_MS: i64 = 60_000;

/// What the register keeps of fiscal numbers (from its configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FiscalPlan {
    documents: Vec<String>,
    block_size: u64,
    low_water: u64,
    stock_quotas: bool,
    escrow_low: i64,
    escrow_target: i64,
}

/// The engine of one register.
#[derive(Debug)]
pub struct SyncEngine<C: Clock, R: RandomSource> {
    db: Db,
    journal: Journal,
    device: DeviceRecord,
    creds: Credentials,
    client: HubClient,
    clock: C,
    rng: R,
    settings: SyncSettings,
    skew: SkewEstimate,
    breaker: Breaker,
    backoff: Backoff,
    fiscal: FiscalPlan,
}

impl<C: Clock, R: RandomSource> SyncEngine<C, R> {
    /// Opens the register's data directory for syncing with the hub at
    /// `hub_url`, checking its certificate as `config.toml` says (`hub_ca`,
    /// `hub_cert_sha256`; https unless loopback).
    pub fn open(
        dir: &DataDir,
        hub_url: &str,
        clock: C,
        rng: R,
        settings: SyncSettings,
    ) -> Result<Self, SyncError> {
        let config = crate::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())?;
        let trust = config.hub_trust(dir.root())?;
        let client =
            HubClient::with_trust(hub_url, settings.timeout_ms, settings.keep_alive, &trust)?;
        SyncEngine::open_with_client(dir, client, clock, rng, settings)
    }

    /// Opens the engine with a ready client (e.g. one over the simulation's
    /// network, [`HubClient::with_transport`]).
    pub fn open_with_client(
        dir: &DataDir,
        client: HubClient,
        clock: C,
        rng: R,
        settings: SyncSettings,
    ) -> Result<Self, SyncError> {
        let db = Db::open(dir.db_path())?;
        let config = crate::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
            .map_err(|e| SyncError::BadHubData(format!("configuration: {e}")))?;
        let fiscal = FiscalPlan {
            documents: config.fiscal_documents.clone(),
            block_size: config.fiscal_block_size,
            low_water: config.fiscal_low_water,
            stock_quotas: config.stock_quotas,
            escrow_low: config.escrow_low_milli,
            escrow_target: config.escrow_target_milli,
        };
        let device = journal::load_device(db.conn())?.ok_or(JournalError::NotInitialized)?;
        let key = keyfile::read_key_file(&dir.key_path())?;
        let creds = Credentials {
            device: device.device,
            key_id: device.key_id.clone(),
            key,
        };
        let journal = Journal::open(db.conn(), creds.key.clone(), settings.max_hlc_drift_ms)?;
        let skew_ms = state::saved_skew_ms(db.conn()).unwrap_or(0);
        let mut skew = SkewEstimate::default();
        if skew_ms != 0 {
            skew.observe(0, 0, skew_ms);
        }
        Ok(SyncEngine {
            db,
            journal,
            device,
            creds,
            client,
            clock,
            rng,
            settings,
            skew,
            breaker: Breaker::new(settings.breaker),
            backoff: Backoff::new(settings.backoff),
            fiscal,
        })
    }

    /// The estimated skew (hub − local), ms.
    pub fn skew_ms(&self) -> i64 {
        self.skew.skew_ms()
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// One signed request; a `stale_timestamp` answer corrects the skew from the
    /// hub's time and the request is retried once.
    fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<Value, HubError> {
        for attempt in 0..2 {
            let sent = self.clock.now_ms();
            let hub_now = self.skew.hub_now(sent);
            let result = self.client.signed(
                &self.creds,
                method,
                path_and_query,
                body.clone(),
                hub_now,
                &mut self.rng,
            );
            let received = self.clock.now_ms();
            match &result {
                Ok(v) => {
                    if let Some(t) = v.get("hub_time_ms").and_then(Value::as_i64) {
                        self.skew.observe(sent, received, t);
                    }
                }
                Err(HubError::Api {
                    code,
                    hub_time_ms: Some(t),
                    ..
                }) if code == "stale_timestamp" && attempt == 0 => {
                    self.skew.restart(sent, received, *t);
                    continue;
                }
                Err(_) => {}
            }
            return result;
        }
        Err(HubError::BadAnswer("unreachable retry loop".into()))
    }

    /// One full round: recover own events if the hub holds more of this
    /// register's chain, push everything unsynced, pull everything new.
    pub fn round(&mut self) -> Result<RoundReport, SyncError> {
        let mut report = RoundReport::default();
        let restored = journal::load_device(self.db.conn())?
            .map(|d| d.restored_from_backup)
            .unwrap_or(false);
        if restored {
            report.recovered += self.recover_own()?;
        }
        self.push_all(&mut report)?;
        if self.new_restore_epoch()?.is_some() {
            self.follow_restore(&mut report)?;
        }
        // Hub data is applied only from a hub whose audit log still extends
        // the signed head this register saw last.
        match self.check_hub_log() {
            Err(SyncError::NewRestoreEpoch) => {
                self.follow_restore(&mut report)?;
                self.check_hub_log()?;
            }
            other => other?,
        }
        self.pull_all(&mut report)?;
        self.fiscal_topup(&mut report)?;
        self.escrow_topup(&mut report)?;
        Ok(report)
    }

    /// Asks the hub for a card or QR payment intent for a sale (online only),
    /// then pulls the hub chain so the intent is held as a verified hub
    /// event. `request_id` is the caller's: sending the same one again (after
    /// a timeout) gets the same intent back, never a second. Returns the
    /// intent's id. Later states (authorized, captured, …) arrive with the
    /// next pulls.
    pub fn create_payment_intent(
        &mut self,
        request_id: caja_shared::ids::RequestId,
        sale_id: caja_shared::ids::SaleId,
        provider: &str,
        method: caja_shared::kind::PaymentMethod,
        amount: caja_shared::money::Money,
    ) -> Result<caja_shared::ids::IntentId, SyncError> {
        let body = serde_json::json!({
            "request_id": request_id,
            "sale_id": sale_id,
            "provider": provider,
            "method": method,
            "amount": amount,
        });
        let v = self.request(
            "POST",
            "/v1/payments/intents",
            serde_json::to_vec(&body).map_err(|e| SyncError::BadHubData(e.to_string()))?,
        )?;
        let id = v
            .get("events")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|e| e.get("body"))
            .and_then(|b| b.get("intent_id"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| SyncError::BadHubData("the intent answer has no intent_id".into()))?;
        let mut report = RoundReport::default();
        self.pull_all(&mut report)?;
        Ok(id)
    }

    /// Asks the hub for stock quota of every tracked product below the
    /// low-water mark, then pulls the grants in (usable once verified hub
    /// events). An unanswered request is sent again with the same id.
    fn escrow_topup(&mut self, report: &mut RoundReport) -> Result<(), SyncError> {
        if !self.fiscal.stock_quotas {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let wanted = crate::escrow::wanted(
            self.db.conn(),
            self.fiscal.escrow_low,
            self.fiscal.escrow_target,
            now,
            self.settings.escrow_retry_ms,
        )?;
        let pending = crate::escrow::request_pending(self.db.conn())?;
        if wanted.is_empty() && !pending {
            return Ok(());
        }
        let items: Vec<(String, i64)> = wanted.into_iter().take(crate::escrow::MAX_ITEMS).collect();
        let (id, body) = {
            let tx = self.db.write_tx()?;
            let r = crate::escrow::request_for(&tx, &items, now, &mut self.rng)?;
            tx.commit()?;
            r
        };
        crate::crashpoint::hit("sync:escrow_requested");
        let v = match self.request("POST", "/v1/escrow/grants", body.clone().into_bytes()) {
            Err(HubError::Api { code, .. }) if code == "restore_pending" => {
                // Asked again (same id) once the restored hub grants again.
                tracing::info!("stock quota waits for the restored hub");
                return Ok(());
            }
            other => other?,
        };
        let granted = v
            .get("events")
            .and_then(Value::as_array)
            .map_or(0, |a| a.len() as u64);
        {
            let tx = self.db.write_tx()?;
            crate::escrow::answered(&tx, id, &body, now)?;
            tx.commit()?;
        }
        crate::crashpoint::hit("sync:escrow_answered");
        if granted > 0 {
            report.quotas += granted;
            self.pull_all(report)?;
        }
        Ok(())
    }

    /// Asks the hub for a block of every configured series running low (below
    /// the low-water mark), then pulls the grants in: a block is usable only
    /// once it arrives as a verified hub event. A request keeps its id until
    /// answered, so a retry after a timeout gets the same block, not a second.
    fn fiscal_topup(&mut self, report: &mut RoundReport) -> Result<(), SyncError> {
        let mut granted = 0;
        for series in self.fiscal.documents.clone() {
            let now = self.clock.now_ms();
            let left =
                crate::fiscal::numbers_left(self.db.conn(), self.device.device, &series, now)?;
            if left >= self.fiscal.low_water {
                continue;
            }
            if let Some((at, _)) = crate::fiscal::last_refusal(self.db.conn(), &series)? {
                if now.saturating_sub(at) < FISCAL_REFUSAL_RETRY_MS {
                    continue;
                }
            }
            let (request_id, count) = {
                let tx = self.db.write_tx()?;
                let r = crate::fiscal::request_for(
                    &tx,
                    &series,
                    self.fiscal.block_size,
                    now,
                    &mut self.rng,
                )?;
                tx.commit()?;
                r
            };
            crate::crashpoint::hit("sync:fiscal_requested");
            let mut body = caja_shared::canonical::Object::new();
            body.insert(
                "count".to_owned(),
                Value::Int(i64::try_from(count).unwrap_or(1)),
            );
            body.insert(
                "request_id".to_owned(),
                Value::String(request_id.to_string()),
            );
            body.insert("series".to_owned(), Value::String(series.clone()));
            let body = Value::Object(body);
            match self.request("POST", "/v1/fiscal/ranges", body.to_canonical_bytes()) {
                Ok(v) => {
                    granted += v
                        .get("events")
                        .and_then(Value::as_array)
                        .map_or(0, |a| a.len() as u64);
                    tracing::info!(series = %series, request = %request_id, "fiscal block granted");
                    crate::crashpoint::hit("sync:fiscal_granted");
                }
                Err(HubError::Api { code, .. }) if code == "restore_pending" => {
                    // A restored hub grants nothing until every register of
                    // the store reported; the request keeps its id.
                    tracing::info!(series = %series, "fiscal block waits for the restored hub");
                }
                Err(HubError::Api { code, message, .. })
                    if code == "fiscal_series_exhausted" || code == "no_fiscal_series" =>
                {
                    tracing::warn!(series = %series, code = %code, "hub gave no fiscal block");
                    crate::fiscal::refused(self.db.conn(), request_id, &message)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if granted > 0 {
            report.fiscal_blocks += granted;
            self.pull_all(report)?;
        }
        Ok(())
    }

    /// Fetches this register's own events the hub holds beyond the local head,
    /// verifies and appends them; then clears the restored-from-backup mark.
    fn recover_own(&mut self) -> Result<u64, SyncError> {
        let mut recovered = 0;
        loop {
            let head = Journal::head(self.db.conn())?;
            let path = format!(
                "/v1/sync/own?after_seq={}&limit={}",
                head.seq, self.settings.pull_limit
            );
            let v = self.request("GET", &path, Vec::new())?;
            let events = events_of(&v)?;
            let more = v.get("more") == Some(&Value::Bool(true));
            let now = self.clock.now_ms();
            let mut journal = Journal::open(
                self.db.conn(),
                self.creds.key.clone(),
                self.settings.max_hlc_drift_ms,
            )?;
            let tx = self.db.write_tx()?;
            for e in &events {
                journal.append_received(&tx, e, now)?;
                let body = e
                    .body()
                    .map_err(|err| SyncError::BadHubData(err.to_string()))?;
                let seq = i64::try_from(e.seq().get()).unwrap_or(i64::MAX);
                crate::projection::apply_own(&tx, seq, e, &body)
                    .map_err(|err| SyncError::BadHubData(err.to_string()))?;
            }
            // The hub's copy of our last checkpoint must verify with our key
            // and agree with the chain we now hold.
            if let Some(cp) = v.get("checkpoint").filter(|c| **c != Value::Null) {
                let cp: Checkpoint = serde_json::from_value(cp.to_serde())
                    .map_err(|e| SyncError::BadHubData(format!("checkpoint: {e}")))?;
                // Made with a key head office has since replaced (a
                // register re-keyed on new hardware): its MAC cannot be
                // checked with the new key; its hash still must agree.
                if cp.key_id == self.creds.key_id {
                    cp.verify(&self.creds.key)
                        .map_err(|e| SyncError::BadHubData(e.to_string()))?;
                }
                let held = Journal::event(&tx, cp.seq.get())?;
                if held.map(|e| e.hash()) != Some(cp.hash) {
                    return Err(SyncError::BadHubData(
                        "the hub's checkpoint of this register does not match its chain".into(),
                    ));
                }
            }
            // The hub holds what it sent back and, its chains being
            // contiguous, everything before it. When it sent nothing, it may
            // hold less than this copy (a backup taken while offline): the
            // acknowledged seq stays the backup's, so the rest is pushed.
            // (Found by the simulation, seed 26: setting it to the local head
            // here marked events the hub never had as synced.)
            let head = Journal::head(&tx)?;
            if !events.is_empty() && head.seq > Journal::acked_seq(&tx)? {
                Journal::set_acked_seq(&tx, head.seq, now)?;
            }
            if !more {
                journal::set_restored_from_backup(&tx, false)?;
                // Blocks this database held before the restore are never used
                // again (a lost copy may have printed their numbers).
                crate::fiscal::forget_requests_after_restore(&tx)?;
                crate::escrow::forget_after_restore(&tx)?;
            }
            tx.commit()?;
            recovered += events.len() as u64;
            if !more {
                return Ok(recovered);
            }
        }
    }

    fn push_all(&mut self, report: &mut RoundReport) -> Result<(), SyncError> {
        if super::pipeline::enabled(self.settings.push_window, &self.client) {
            let (clock, skew) = (&self.clock, &self.skew);
            let mut parts = super::pipeline::Parts {
                db: &mut self.db,
                journal: &self.journal,
                creds: &self.creds,
                client: &self.client,
                rng: &mut self.rng,
                limits: super::pipeline::Limits {
                    window: self.settings.push_window,
                    batch: self.settings.push_batch,
                    bytes: self.settings.push_bytes,
                },
                hub_now: &|| skew.hub_now(clock.now_ms()),
                local_now: &|| clock.now_ms(),
            };
            let mut pushed = super::pipeline::Pushed::default();
            let ended = super::pipeline::push(&mut parts, &mut pushed);
            report.pushed += pushed.accepted;
            report.duplicates += pushed.duplicates;
            report.held += pushed.held;
            if ended? == super::pipeline::Ended::Done {
                return Ok(());
            }
        }
        loop {
            let conn = self.db.conn();
            let acked = Journal::acked_seq(conn)?;
            // The signed documents named by the batch's events go beside
            // them; the batch is cut so the body stays under the byte budget.
            let (events, documents) = super::batch::next_batch(
                conn,
                acked,
                self.settings.push_batch,
                self.settings.push_bytes,
            )?;
            let Some(last) = events.last() else {
                return Ok(());
            };
            let head = Journal::head(conn)?;
            let cp = Checkpoint::sign(
                &self.creds.key,
                self.creds.key_id.clone(),
                self.device.device,
                last.seq(),
                last.hash(),
            );
            let last_seq = last.seq().get();
            let body = caja_shared::push::push_body(
                self.device.device,
                &events,
                &documents,
                &cp,
                head.seq - last_seq,
            )
            .map_err(|e| SyncError::BadHubData(e.to_string()))?;
            match self.request("POST", "/v1/sync/push", body) {
                Ok(v) => {
                    let count = |k: &str| {
                        v.get(k)
                            .and_then(Value::as_i64)
                            .and_then(|n| u64::try_from(n).ok())
                            .unwrap_or(0)
                    };
                    let new_acked = count("acked_seq");
                    report.pushed += count("accepted");
                    report.duplicates += count("duplicates");
                    report.held += v
                        .get("held")
                        .and_then(Value::as_array)
                        .map_or(0, |h| h.len() as u64);
                    if new_acked <= acked || new_acked > head.seq {
                        return Err(SyncError::BadHubData(format!(
                            "push acknowledged seq {new_acked} after {acked} (head {})",
                            head.seq
                        )));
                    }
                    let now = self.clock.now_ms();
                    let tx = self.db.write_tx()?;
                    Journal::set_acked_seq(&tx, new_acked, now)?;
                    // DESIGN: a checkpoint with every push (of the head, when
                    // the push reached it).
                    if last_seq == head.seq {
                        self.journal
                            .write_checkpoint(&tx, journal::CheckpointReason::Push, now)?;
                    }
                    tx.commit()?;
                    crate::crashpoint::hit("sync:push_acked");
                }
                Err(HubError::Api {
                    code,
                    expected_seq: Some(expected),
                    ..
                }) if code == "seq_gap" => {
                    // The hub wants to continue from `expected`.
                    let hub_has = expected.saturating_sub(1);
                    if hub_has > head.seq {
                        // The hub holds more of our chain than we do: never fork.
                        self.recover_own()?;
                        continue;
                    }
                    if hub_has <= acked && self.new_restore_epoch()?.is_some() {
                        // A restored hub lacks what it acknowledged after
                        // its backup: push it again.
                        state::rewind_acked_seq(self.db.conn(), hub_has, self.clock.now_ms())?;
                        continue;
                    }
                    if hub_has <= acked {
                        return Err(SyncError::BadHubData(format!(
                            "the hub asks for seq {expected}, before what it acknowledged ({acked})"
                        )));
                    }
                    let tx = self.db.write_tx()?;
                    Journal::set_acked_seq(&tx, hub_has, self.clock.now_ms())?;
                    tx.commit()?;
                }
                Err(HubError::Api { code, message, .. })
                    if code == "chain_mismatch" || code == "quarantined" =>
                {
                    state::set_quarantined(self.db.conn(), &message)?;
                    return Err(SyncError::Quarantined(message));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn pull_all(&mut self, report: &mut RoundReport) -> Result<(), SyncError> {
        loop {
            let cursor = state::pull_cursor(self.db.conn())?;
            let path = format!(
                "/v1/sync/pull?after={cursor}&limit={}",
                self.settings.pull_limit
            );
            let v = self.request("GET", &path, Vec::new())?;
            let events = events_of(&v)?;
            let next = v
                .get("next")
                .and_then(Value::as_str)
                .ok_or_else(|| SyncError::BadHubData("pull answer lacks next".into()))?
                .to_owned();
            let more = v.get("more") == Some(&Value::Bool(true));
            let hub_cp: Option<HubCheckpoint> = match v.get("hub_checkpoint") {
                Some(c) if *c != Value::Null => Some(
                    serde_json::from_value(c.to_serde())
                        .map_err(|e| SyncError::BadHubData(format!("hub_checkpoint: {e}")))?,
                ),
                _ => None,
            };
            let (hub, peers): (Vec<Event>, Vec<Event>) = events.into_iter().partition(|e| {
                hub_cp
                    .as_ref()
                    .is_some_and(|cp| cp.device == e.envelope().device)
            });
            let tx = self.db.write_tx()?;
            if let Some(cp) = &hub_cp {
                if !hub.is_empty() {
                    report.hub_events += crate::import::hub_page(&tx, &self.device, &hub, cp)?;
                    // Kept to prove these hub events to a restored hub.
                    if state::hub_events_head(&tx)? == cp.seq.get() {
                        let json = serde_json::to_string(cp)
                            .map_err(|e| SyncError::BadHubData(e.to_string()))?;
                        state::keep_hub_checkpoint(&tx, cp.seq.get(), &json)?;
                    }
                }
                state::set_hub_chain(&tx, &cp.device.to_string())?;
            }
            report.peer_events += crate::import::peer_events(&tx, &self.device, &peers)?;
            state::set_pull_cursor(&tx, &next)?;
            tx.commit()?;
            self.note_restore_ack(&v)?;
            crate::crashpoint::hit("sync:pull_page");
            if !more || next == cursor {
                return Ok(());
            }
        }
    }

    /// Records the outcome of a round for `status` and health.
    fn record(&self, ok: bool, error: Option<&str>) -> Result<(), SyncError> {
        let now = self.clock.now_ms();
        state::record_round(
            self.db.conn(),
            &state::Round {
                ok,
                circuit: self.breaker.state().name(),
                skew_ms: self.skew.skew_ms(),
                now_ms: now,
                error,
            },
        )?;
        Ok(())
    }

    /// One round with the breaker and the status record around it; returns how
    /// long to wait before the next one.
    pub fn tick(&mut self) -> (Result<RoundReport, SyncError>, u64) {
        let now = self.clock.now_ms();
        if !self.breaker.allow(now) {
            let wait = match self.breaker.state() {
                super::breaker::BreakerState::Open { until_ms } => {
                    u64::try_from(until_ms.saturating_sub(now)).unwrap_or(0)
                }
                _ => 0,
            };
            let _ = self.record(false, Some("circuit open"));
            return (
                Err(HubError::Unreachable("circuit open".into()).into()),
                wait.max(1),
            );
        }
        let result = self.round();
        let wait = match &result {
            Ok(_) => {
                self.breaker.on_success();
                self.backoff.on_success();
                let _ = self.record(true, None);
                self.settings.interval_ms
            }
            Err(e) => {
                let retry_after = match e {
                    SyncError::Hub(HubError::Api { retry_after_ms, .. }) => *retry_after_ms,
                    _ => None,
                };
                if e.is_transient() {
                    self.breaker.on_failure(self.clock.now_ms(), &mut self.rng);
                }
                let _ = self.record(false, Some(&e.to_string()));
                self.backoff.on_failure(retry_after, &mut self.rng)
            }
        };
        (result, wait)
    }

    /// Syncs until `stop` is set, sleeping between rounds.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut on_round: impl FnMut(&Result<RoundReport, SyncError>),
    ) {
        while !stop.load(Ordering::Relaxed) {
            let (result, wait_ms) = self.tick();
            on_round(&result);
            let mut slept = 0;
            while slept < wait_ms && !stop.load(Ordering::Relaxed) {
                let step = (wait_ms - slept).min(100);
                std::thread::sleep(Duration::from_millis(step));
                slept += step;
            }
        }
    }
}

/// The events of an answer, each validated and hashed as received.
fn events_of(v: &Value) -> Result<Vec<Event>, SyncError> {
    let list = v
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| SyncError::BadHubData("answer lacks events".into()))?;
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            Event::from_value(e.clone())
                .map_err(|err| SyncError::BadHubData(format!("events[{i}].{err}")))
        })
        .collect()
}

/// The stored sync status, for `caja-node status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncStatus {
    /// Whether the last round reached the hub.
    pub online: bool,
    /// Breaker state.
    pub circuit: String,
    /// Hub − local clock, ms.
    pub skew_ms: i64,
    /// Last successful round, UTC ms.
    pub last_success_ms: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
    /// Whether the hub quarantined this register.
    pub quarantined: bool,
    /// Oldest unsynced event's HLC ms, if any.
    pub oldest_unsynced_ms: Option<i64>,
    /// Trust in the hub's audit log.
    pub hub_log: HubLogStatus,
    /// The hub restore this register followed last: a warning until head
    /// office acknowledged it.
    pub hub_restore: Option<state::HubRestore>,
}

/// Reads the sync status row and the age of the oldest unsynced event.
pub fn status(conn: &rusqlite::Connection) -> Result<SyncStatus, SyncError> {
    let acked = Journal::acked_seq(conn)?;
    let oldest = crate::queries::event_hlc_ms(conn, i64::try_from(acked + 1).unwrap_or(i64::MAX))?;
    let hub_log = hub_log_status(conn)?;
    let row = state::status_row(conn)?;
    Ok(SyncStatus {
        online: row.online,
        circuit: row.circuit,
        skew_ms: row.skew_ms,
        last_success_ms: row.last_success_ms,
        last_error: row.last_error,
        quarantined: row.quarantined,
        oldest_unsynced_ms: oldest,
        hub_log,
        hub_restore: state::hub_restore(conn)?,
    })
}
