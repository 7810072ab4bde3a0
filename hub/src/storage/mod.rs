//! Storage: the one module that knows SQL, on SQLite (the default) or
//! PostgreSQL, through one SQL facade ([`db`]): every statement is written
//! once.
//!
//! Writes go to one dedicated writer thread through a **bounded** queue
//! (`Storage::write`): the thread takes every job waiting (up to
//! `max_batch_jobs`), runs them in one write transaction (`BEGIN IMMEDIATE`
//! on SQLite; on PostgreSQL `BEGIN`, then each job's advisory locks —
//! per store, per series, or the writers' lock for everything else, see
//! `serial`), commits once (`synchronous=FULL`, WAL on
//! SQLite; a durable commit on PostgreSQL), and only then answers each job. A job that
//! fails (a storage error, not a protocol rejection) rolls the whole
//! transaction back; the jobs batched before it are answered with a storage
//! error and retried by their clients, those after it run in a new
//! transaction. So a push is applied entirely or not at all, and nothing is
//! acknowledged before it is durable. (Per-job savepoints were measured: their
//! statement journals cost more than the whole rest of an ingest.) When the queue is full the caller gets [`StorageError::Overloaded`]
//! at once (the HTTP layer answers 429). Reads run on a small pool of read-only
//! connections (WAL readers never block the writer).
//!
//! Each store method returns `Result<Answer<T>, StorageError>`: the outer error is a
//! storage failure (nothing kept), the inner [`Answer`] either the result or a
//! protocol rejection whose permitted traces (nonce, rate-limit bucket, audit
//! entry, quarantine and alert of a chain mismatch) are committed.
//!
//! Layers (each imports only the layers below it, but for the outbox's
//! `restore_conflicts` that a rebuild calls; no file imports this one):
//! - **kernel**: [`db`] (SQL facade), `migrate`, `connect` (opening),
//!   `error`, `codec` (row codecs), `tx_cache`, `serial` (what a job is
//!   serialized with on PostgreSQL), `writer` (the [`Storage`] handle and its
//!   writer thread), `audit_log` and [`audit_tree`] (audit append; staging
//!   and the sequencer on PostgreSQL), `alerts`, `device_auth`,
//!   `device_request`;
//! - **facts**: `facts`, one module per fact family (its `p_*` tables,
//!   named-column statements and row decoders) and the registry of those
//!   tables that rebuild and the digest go through;
//! - **ingest**: `ingest` (push, the events table, the causal gate, the
//!   decision pipeline, hub-chain append, rebuild) and `outbox::enqueue`;
//! - **features**: `stores`, `devices`, `catalog`, `pull`, `conflicts`,
//!   `fiscal`, `escrow`, `payments`, `outbox`, `dashboard`, `reports`,
//!   `health` (`dashboard` and `audit_api` add their own methods to
//!   [`Storage`]);
//! - **this module**: the typed async methods of [`Storage`] that handlers
//!   call, and the re-exports.
//!
//! Architecture invariant: handlers call these methods and never see SQL;
//! every SQL statement of the hub lives in this module's files and in
//! `migrations/hub/` (SQLite) and `migrations/hub/postgres/`.

mod acecf_delivery;
mod alerts;
mod audit_api;
mod audit_log;
pub mod audit_tree;
mod catalog;
pub mod checkpointer;
#[cfg(all(test, feature = "testkit"))]
mod checkpointer_tests;
mod codec;
mod conflicts;
mod connect;
mod dashboard;
pub mod db;
mod device_auth;
mod device_request;
mod devices;
mod ecf_delivery;
mod error;
mod escrow;
mod facts;
mod fiscal;
mod health;
mod ingest;
mod migrate;
mod multirow;
mod outbox;
// — OPS —
mod ops_gauges;
mod payments;
mod payments_intents;
mod payments_reads;
mod payments_refunds;
pub mod pg_tls;
mod pull;
mod received;
mod reports;
pub mod restore;
// — PGLOCK —
mod serial;
mod stores;
mod tx_cache;
mod writer;

pub use acecf_delivery::{Delivery, DeliveryInfo, Settled};
pub use audit_log::{SEQUENCER_TICK_MS, SEQUENCE_DELAY_MS};
pub use catalog::HubAppend;
pub use checkpointer::{CheckpointStats, WalPolicy};
pub use conflicts::{ConflictInfo, ResolutionInfo, StateFilter};
pub use connect::{open, open_connection, open_detached, open_offline, record_hub_key};
pub use dashboard::{EventSummary, HourlySales, UiSession};
pub use db::{Conn, Database, DbError, Dialect};
pub use device_auth::DeviceCtx;
pub use devices::{DeviceInfo, Enrollment, RotatedKey};
pub use ecf_delivery::{EcfDelivery, EcfDeliveryInfo, EcfSettled};
pub use error::{Answer, StorageError};
pub use facts::load::{digest, load_projections as projections};
pub use fiscal::{FiscalHealth, WriteOff};
pub use health::{HealthInputs, HeldEvent, HELD_LISTED};
pub use ingest::documents::ExportRow;
pub use ingest::push::{ConflictRef, HeldInfo, PushAck};
pub use ingest::rebuild::rebuild;
pub use migrate::{MigrateError, MIGRATIONS};
pub use ops_gauges::AuditGauges;
pub use outbox::cancel::Cancelled;
pub use outbox::correct::{Corrected, CorrectionSource};
pub use outbox::{DocInfo, OutboxHealth, Recorded};
pub use payments::ReconcileReport;
pub use payments_intents::WebhookAnswer;
pub use payments_reads::{
    CardCheckInfo, IntentInfo, PaymentsHealth, PaymentsOverview, WebhookInfo,
};
pub use payments_refunds::RefundTarget;
pub use pull::{OwnPage, PullPage};
pub use received::{ApprovalStored, CommercialApproval, Purchase, ToDecide};
pub use reports::AlertInfo;
pub use stores::StoreInfo;
pub use writer::{Storage, StorageConfig};

use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, StoreId};
use caja_shared::kind::EventBody;

use crate::auth::Authentic;
use crate::ingest::PushBatch;
use crate::wire::ApiError;

impl Storage {
    /// The writer's part of authenticating an admitted request
    /// ([`Storage::preauthenticate`] first): the key's standing, the nonce,
    /// quarantine and the device's rate limit, persisted.
    pub async fn authenticate(&self, req: Authentic) -> Result<Answer<DeviceCtx>, StorageError> {
        self.write(move |conn, env| {
            device_auth::authenticate(conn, env, &req).map(|a| {
                a.map(|d| DeviceCtx {
                    device: d.device,
                    store: d.store,
                })
            })
        })
        .await
    }

    /// `POST /v1/sync/push`: authentication, then the checks of
    /// [`crate::ingest`] in DESIGN's order, then storage and the causal gate, all
    /// in one transaction. `parsed` is the body already parsed off the writer.
    pub async fn push(
        &self,
        req: Authentic,
        parsed: Result<PushBatch, ApiError>,
    ) -> Result<Answer<PushAck>, StorageError> {
        // On PostgreSQL: serialized with the writes of the device's store and
        // of the fiscal numbers its events use (`serial`).
        let fiscal = parsed
            .as_ref()
            .map(|b| serial::fiscal_keys(&b.events))
            .unwrap_or_default();
        let plan = serial::for_device_in(req.headers().device, req.store(), fiscal);
        let (answer, parsed) = self
            .write_serial(Some(plan), move |conn, env| {
                let answer = ingest::push::push(conn, env, &req, &parsed)?;
                // Hand the parsed events back so the writer does not spend its
                // time freeing them.
                Ok((answer, parsed))
            })
            .await?;
        drop(parsed);
        Ok(answer)
    }

    /// `POST /v1/devices/enroll`.
    pub async fn enroll(&self, token: String) -> Result<Answer<Enrollment>, StorageError> {
        self.write(move |conn, env| devices::enroll(conn, env, &token))
            .await
    }

    /// `POST /v1/devices/rotate`, signed by the device: authentication first,
    /// then the key must be the device's current one (a key rotated out and
    /// inside its grace period may not rotate: 401 `key_not_current`), then
    /// the body check (`parsed`), then the rotation.
    pub async fn rotate_checked(
        &self,
        req: Authentic,
        parsed: Result<(), ApiError>,
    ) -> Result<Answer<RotatedKey>, StorageError> {
        self.write(move |conn, env| {
            let device = match device_auth::authenticate(conn, env, &req)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            if let Err(failure) = crate::auth::check_current_key(&req, &device) {
                tracing::warn!(device = %device.device, key_id = %req.headers().key_id, code = failure.code(), "rotation refused: not the current key");
                return Ok(Err(failure.to_api(env.now_ms())));
            }
            if let Err(e) = parsed {
                return Ok(Err(e));
            }
            devices::rotate_key(conn, env, device.device, "device", devices::Grace::Configured)
                .map(Ok)
        })
        .await
    }

    /// Admin: rotates a device's key (the new key is shown once); the old
    /// keys stay valid for the configured grace period.
    pub async fn admin_rotate(&self, device: DeviceId) -> Result<Answer<RotatedKey>, StorageError> {
        self.admin_rotate_with(device, false).await
    }

    /// Admin: rotates a device's key; with `no_grace` (a key known to be
    /// compromised) every old key is refused from this moment.
    pub async fn admin_rotate_with(
        &self,
        device: DeviceId,
        no_grace: bool,
    ) -> Result<Answer<RotatedKey>, StorageError> {
        let grace = if no_grace {
            devices::Grace::None
        } else {
            devices::Grace::Configured
        };
        self.write(move |conn, env| {
            if !device_auth::device_exists(conn, device)? {
                return Ok(Err(ApiError::not_found("no such device")));
            }
            devices::rotate_key(conn, env, device, "admin", grace).map(Ok)
        })
        .await
    }

    /// Admin: creates a store and its hub chain.
    pub async fn create_store(
        &self,
        name: String,
        time_zone: String,
    ) -> Result<StoreInfo, StorageError> {
        self.write(move |conn, env| stores::create_store(conn, env, &name, &time_zone))
            .await
    }

    /// Admin: creates a one-time enrollment token for a store; returns it and
    /// its expiry.
    pub async fn create_token(
        &self,
        store: StoreId,
        device_name: String,
        ttl_ms: i64,
    ) -> Result<Answer<(String, i64)>, StorageError> {
        self.write(move |conn, env| devices::create_token(conn, env, store, &device_name, ttl_ms))
            .await
    }

    /// Admin: revokes a device (every key refused from now on).
    pub async fn revoke(
        &self,
        device: DeviceId,
        reason: String,
    ) -> Result<Answer<()>, StorageError> {
        self.write(move |conn, env| devices::revoke(conn, env, device, &reason))
            .await
    }

    /// Admin: releases a device's quarantine after review.
    pub async fn release_quarantine(
        &self,
        device: DeviceId,
        note: String,
    ) -> Result<Answer<()>, StorageError> {
        self.write(move |conn, env| devices::release_quarantine(conn, env, device, &note))
            .await
    }

    /// Admin: appends catalog items and prices (as hub events) to the hub chain
    /// of each store in `stores` (every store when empty).
    pub async fn append_hub_events(
        &self,
        stores: Vec<StoreId>,
        bodies: Vec<EventBody>,
    ) -> Result<Answer<Vec<HubAppend>>, StorageError> {
        self.write(move |conn, env| catalog::append_hub_events(conn, env, &stores, &bodies))
            .await
    }

    /// `POST /v1/sync/hub-events`: hub events a register returns after a
    /// restore, and its report (see [`restore::hub_events`]).
    pub async fn hub_events(
        &self,
        who: DeviceCtx,
        batch: crate::restore::HubEventsBatch,
    ) -> Result<Answer<restore::HubEventsAck>, StorageError> {
        self.write(move |conn, env| restore::hub_events(conn, env, who, &batch))
            .await
    }

    /// Whether any store waits for its registers after a restore (cheap
    /// when the hub was never restored: the epoch is in memory).
    pub async fn restore_any_gated(&self) -> Result<bool, StorageError> {
        if self.restore_epoch() == 0 {
            return Ok(false);
        }
        self.read(restore::any_gated).await
    }

    /// Admin: the latest restore and each store's gate.
    pub async fn restore_status(&self) -> Result<restore::RestoreStatus, StorageError> {
        self.read(restore::status).await
    }

    /// Admin: acknowledges the latest restore (audited).
    pub async fn restore_acknowledge(
        &self,
        by: String,
        note: String,
    ) -> Result<Answer<restore::RestoreInfo>, StorageError> {
        let r = self
            .write(move |conn, env| restore::acknowledge(conn, env, &by, &note))
            .await?;
        if let Ok(info) = &r {
            self.set_restore_epoch(info.epoch, true);
        }
        Ok(r)
    }

    /// Admin: lifts a store's restore gate (audited).
    pub async fn restore_override(
        &self,
        store: StoreId,
        by: String,
        note: String,
    ) -> Result<Answer<restore::StoreGate>, StorageError> {
        self.write(move |conn, env| restore::override_store(conn, env, store, &by, &note))
            .await
    }

    /// Admin: loads a fiscal series.
    pub async fn add_series(
        &self,
        spec: crate::fiscal::SeriesSpec,
    ) -> Result<Answer<crate::fiscal::SeriesInfo>, StorageError> {
        self.write(move |conn, env| fiscal::add_series(conn, env, &spec))
            .await
    }

    /// `POST /v1/fiscal/ranges`: authentication first, then the body, the
    /// request id and the grant, in one writer job. Answers the hub events'
    /// canonical bytes.
    pub async fn grant_fiscal_range(
        &self,
        req: Authentic,
        parsed: Result<(crate::fiscal::RangeRequest, Hash256), ApiError>,
        block_ttl_ms: i64,
    ) -> Result<Answer<Vec<Vec<u8>>>, StorageError> {
        // Serialized with the writes of the device's store and of the series.
        let series = parsed
            .as_ref()
            .map(|(r, _)| serial::LockKey::series(&r.series))
            .into_iter()
            .collect();
        let plan = serial::for_device(req.headers().device, series);
        self.write_serial(Some(plan), move |conn, env| {
            fiscal::grant_range(conn, env, &req, parsed, block_ttl_ms)
        })
        .await
    }

    /// `POST /v1/escrow/grants`: authentication first, then the body, the
    /// request id and the quotas, in one writer job.
    pub async fn grant_quota(
        &self,
        req: Authentic,
        parsed: Result<(crate::escrow::QuotaRequest, Hash256), ApiError>,
        ttl_ms: i64,
    ) -> Result<Answer<Vec<Vec<u8>>>, StorageError> {
        // Serialized with the writes of the device's store (its stock).
        let plan = serial::for_device(req.headers().device, Default::default());
        self.write_serial(Some(plan), move |conn, env| {
            escrow::grant_quota(conn, env, &req, parsed, ttl_ms)
        })
        .await
    }

    /// Admin: stock, outstanding quotas and what is available, per product.
    pub async fn stock(
        &self,
        store: StoreId,
    ) -> Result<Vec<crate::escrow::ProductStock>, StorageError> {
        self.read(move |conn| escrow::store_stock(conn, store))
            .await
    }

    /// Admin: a store's approvals, drawer openings without a sale, returns
    /// made without the original and store-credit balances.
    pub async fn staff_activity(&self, store: StoreId) -> Result<serde_json::Value, StorageError> {
        self.read(move |conn| reports::staff_activity(conn, store))
            .await
    }

    /// Admin: stock alerts (oversells, negative stock) with their decisions.
    pub async fn stock_alerts(&self) -> Result<Vec<crate::escrow::StockAlert>, StorageError> {
        self.read(escrow::alerts).await
    }

    /// Admin: an operator acknowledges or resolves a stock alert.
    pub async fn decide_stock_alert(
        &self,
        d: crate::escrow::AlertDecision,
    ) -> Result<Answer<crate::escrow::StockAlert>, StorageError> {
        self.write(move |conn, env| escrow::decide(conn, env, &d))
            .await
    }

    /// Admin: the conflicts in a state, oldest first.
    pub async fn conflicts(&self, state: StateFilter) -> Result<Vec<ConflictInfo>, StorageError> {
        self.read(move |conn| conflicts::list(conn, state)).await
    }

    /// Admin: an operator resolves a conflict (a `ConflictResolved` hub event).
    pub async fn resolve_conflict(
        &self,
        id: caja_shared::ids::ConflictId,
        req: crate::conflict::ResolveRequest,
    ) -> Result<Answer<ConflictInfo>, StorageError> {
        self.write(move |conn, env| conflicts::resolve(conn, env, id, &req))
            .await
    }

    /// Admin: writes a register off.
    pub async fn write_off(
        &self,
        device: DeviceId,
        reason: String,
    ) -> Result<Answer<WriteOff>, StorageError> {
        self.write(move |conn, env| fiscal::write_off(conn, env, device, &reason))
            .await
    }

    /// Admin: the fiscal series.
    pub async fn fiscal_series(&self) -> Result<Vec<crate::fiscal::SeriesInfo>, StorageError> {
        self.read(fiscal::list_series).await
    }

    /// Admin: the accounting of the series of a prefix (all when `None`).
    pub async fn fiscal_reports(
        &self,
        prefix: Option<String>,
    ) -> Result<Vec<crate::fiscal::SeriesReport>, StorageError> {
        self.read(move |conn| fiscal::reports(conn, prefix.as_deref()))
            .await
    }

    /// Admin: a store's fiscal documents in a month of its local time (for
    /// the 607 and 608), and its zone offset.
    pub async fn fiscal_month(
        &self,
        store: StoreId,
        month: caja_shared::localtime::LocalDate,
    ) -> Result<
        Answer<(
            caja_shared::localtime::UtcOffset,
            crate::fiscal::MonthDocuments,
        )>,
        StorageError,
    > {
        self.read(move |conn| fiscal::month_documents(conn, store, month))
            .await
    }

    /// `POST /v1/payments/intents`: authentication first, then the body, the
    /// request id and the new intent, in one writer job. Answers the hub
    /// event's canonical bytes.
    pub async fn create_payment_intent(
        &self,
        req: Authentic,
        parsed: Result<(crate::payments::IntentRequest, Hash256), ApiError>,
        providers: Vec<String>,
    ) -> Result<Answer<Vec<Vec<u8>>>, StorageError> {
        self.write(move |conn, env| payments::create_intent(conn, env, &req, parsed, &providers))
            .await
    }

    /// A provider's webhook whose signature the caller verified: decided in
    /// one writer job (idempotent by the provider's event id).
    pub async fn payment_webhook(
        &self,
        provider: String,
        webhook: crate::payments::Webhook,
        body_hash: Hash256,
        deadline_ms: i64,
    ) -> Result<Answer<WebhookAnswer>, StorageError> {
        self.write(move |conn, env| {
            payments::webhook(conn, env, &provider, &webhook, body_hash, deadline_ms)
        })
        .await
    }

    /// One reconciliation pass of card payments against the providers'
    /// confirmations.
    pub async fn reconcile_payments(
        &self,
        deadline_ms: i64,
    ) -> Result<ReconcileReport, StorageError> {
        self.write(move |conn, env| payments::reconcile(conn, env, deadline_ms))
            .await
    }

    /// Admin: checks and audits a refund to ask of the intent's provider
    /// (`storage::payments_refunds::refund_request`).
    pub async fn payment_refund_request(
        &self,
        req: crate::payments::RefundRequest,
        callable: Vec<String>,
    ) -> Result<Answer<payments_refunds::RefundTarget>, StorageError> {
        self.write(move |conn, env| payments_refunds::refund_request(conn, env, &req, &callable))
            .await
    }

    /// Admin: payment intents, received webhooks and card checks.
    pub async fn payments_overview(
        &self,
        store: Option<StoreId>,
    ) -> Result<PaymentsOverview, StorageError> {
        self.read(move |conn| payments_reads::overview(conn, store))
            .await
    }

    /// Outbox: claims up to `limit` due documents for `owner` for `lease_ms`
    /// (one conditional UPDATE; see `storage::outbox`). A due time more than
    /// `horizon_ms` ahead counts as due (the hub's clock stepped back).
    pub async fn outbox_claim(
        &self,
        owner: String,
        lease_ms: i64,
        horizon_ms: i64,
        limit: usize,
    ) -> Result<Vec<crate::outbox::Claimed>, StorageError> {
        // No lock but the writers' lock shared: rows are claimed with
        // `FOR UPDATE SKIP LOCKED` on PostgreSQL.
        let plan: writer::Plan = Box::new(|_| Ok(serial::Serial::keys([])));
        self.write_serial(Some(plan), move |conn, env| {
            outbox::claim(conn, env, &owner, lease_ms, horizon_ms, limit)
        })
        .await
    }

    /// Outbox: what the gateway needs to build a claimed document.
    pub async fn outbox_source(
        &self,
        doc: crate::outbox::Claimed,
    ) -> Result<crate::taxgw::DocumentSource, StorageError> {
        let now = self.now_ms();
        self.read(move |conn| outbox::source(conn, &doc, now)).await
    }

    /// Outbox: stores a document's bytes once and marks it in doubt (before
    /// its first submission). `false`: the lease was lost.
    pub async fn outbox_prepare(
        &self,
        doc: crate::outbox::Claimed,
        owner: String,
        prepared: crate::outbox::Prepared,
    ) -> Result<bool, StorageError> {
        self.write(move |conn, env| outbox::prepare(conn, env, &doc, &owner, &prepared))
            .await
    }

    /// Outbox: keeps a document that failed the checks before its first
    /// submission from ever being sent (a `manual` conflict and an alert).
    /// `false`: the lease was lost.
    pub async fn outbox_refuse(
        &self,
        doc: crate::outbox::Claimed,
        owner: String,
        reason: String,
    ) -> Result<bool, StorageError> {
        self.write(move |conn, env| outbox::refuse(conn, env, &doc, &owner, &reason))
            .await
    }

    /// Outbox: marks a document in doubt before it is sent again. `false`:
    /// the lease was lost.
    pub async fn outbox_mark_in_doubt(
        &self,
        doc_id: i64,
        owner: String,
    ) -> Result<bool, StorageError> {
        self.write(move |conn, _| outbox::mark_in_doubt(conn, doc_id, &owner))
            .await
    }

    /// Outbox: records a gateway outcome and releases the lease; a verdict
    /// becomes a hub event (and, rejected, a `manual` conflict and an alert)
    /// in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn outbox_record(
        &self,
        doc: crate::outbox::Claimed,
        owner: String,
        outcome: crate::outbox::Outcome,
        policy: crate::outbox::RetryPolicy,
        jitter: u64,
        authority: &'static str,
    ) -> Result<Recorded, StorageError> {
        self.write(move |conn, env| {
            outbox::record(
                conn, env, &doc, &owner, &outcome, &policy, jitter, authority,
            )
        })
        .await
    }

    /// Admin: a rejected summary (RFCE) and the e-CF it is rebuilt from;
    /// refused (404/409) for anything else.
    pub async fn outbox_correction_source(
        &self,
        document: String,
    ) -> Result<Answer<CorrectionSource>, StorageError> {
        self.read(move |conn| outbox::correct::source(conn, &document))
            .await
    }

    /// Admin: head office's correction of a rejected summary: the hub-signed
    /// `signed` replaces the rejected `rejected_hash` as a new attempt of the
    /// same e-NCF; audited, the rejection's conflict resolved
    /// (`storage::outbox::correct`).
    pub async fn outbox_correct_summary(
        &self,
        document: String,
        rejected_hash: Hash256,
        signed: Vec<u8>,
        by: String,
        note: String,
    ) -> Result<Answer<Corrected>, StorageError> {
        self.write(move |conn, env| {
            outbox::correct::correct_summary(
                conn,
                env,
                &document,
                rejected_hash,
                &signed,
                &by,
                &note,
            )
        })
        .await
    }

    /// Admin: head office cancels (ANECF, hub-signed) the number of a
    /// document refused before sending; audited, its conflict resolved
    /// (`storage::outbox::cancel`).
    pub async fn outbox_cancel_refused(
        &self,
        document: String,
        by: String,
        note: String,
    ) -> Result<Answer<Cancelled>, StorageError> {
        self.write(move |conn, env| {
            outbox::cancel::cancel_refused(conn, env, &document, &by, &note)
        })
        .await
    }

    /// Admin: outbox documents in a state (all when `None`), newest first.
    pub async fn outbox_list(
        &self,
        state: Option<crate::outbox::DocState>,
        limit: usize,
    ) -> Result<Vec<DocInfo>, StorageError> {
        self.read(move |conn| outbox::list(conn, state, limit))
            .await
    }

    /// Every signed document the hub holds signed in `[from_ms, to_ms)`,
    /// with its bytes and outbox state (`caja-hub fiscal documents`).
    pub async fn signed_documents(
        &self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Vec<ExportRow>, StorageError> {
        self.read(move |conn| ingest::documents::list(conn, from_ms, to_ms))
            .await
    }

    /// Outbox counts (health, metrics).
    pub async fn outbox_health(&self) -> Result<OutboxHealth, StorageError> {
        self.read(outbox::health).await
    }

    /// Forgets nonces whose timestamp is outside the replay window.
    pub async fn prune_nonces(&self) -> Result<usize, StorageError> {
        self.write(device_auth::prune_nonces).await
    }

    /// `GET /v1/sync/pull` for an authenticated device.
    pub async fn pull(
        &self,
        who: DeviceCtx,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<PullPage, StorageError> {
        self.read(move |conn| pull::pull_page(conn, who, after, limit, max_bytes))
            .await
    }

    /// `GET /v1/sync/own` for an authenticated device.
    pub async fn own(
        &self,
        who: DeviceCtx,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<OwnPage, StorageError> {
        self.read(move |conn| pull::own_page(conn, who.device, after_seq, limit, max_bytes))
            .await
    }

    /// Admin: the stores.
    pub async fn stores(&self) -> Result<Vec<StoreInfo>, StorageError> {
        self.read(stores::list_stores).await
    }

    /// Admin: the devices (of one store, or all).
    pub async fn devices(&self, store: Option<StoreId>) -> Result<Vec<DeviceInfo>, StorageError> {
        let now = self.now_ms();
        self.read(move |conn| devices::list_devices(conn, store, now))
            .await
    }

    /// Admin: alerts (stored ones, open conflicts, negative stock).
    pub async fn alerts(&self) -> Result<Vec<AlertInfo>, StorageError> {
        self.read(reports::list_alerts).await
    }

    /// The payments section of the health report, with the confirmation
    /// deadline `deadline_ms`.
    pub async fn payments_health(&self, deadline_ms: i64) -> Result<PaymentsHealth, StorageError> {
        let now = self.now_ms();
        self.read(move |conn| payments_reads::health(conn, now, deadline_ms))
            .await
    }

    /// What the health report is computed from.
    pub async fn health_inputs(&self) -> Result<HealthInputs, StorageError> {
        let now = self.now_ms();
        self.read(move |conn| health::health_inputs(conn, now))
            .await
    }

    /// Digest of the projections (see [`digest`]).
    pub async fn digest(&self) -> Result<Hash256, StorageError> {
        self.read(facts::load::digest).await
    }
}
