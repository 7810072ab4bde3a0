//! The register's operations: what a cashier and a store manager do, offline.
//!
//! Each operation is one SQLite transaction (`BEGIN IMMEDIATE`) that
//! 1. answers a retried client operation id with its first result (DESIGN
//!    invariant 9) — or refuses the id if it was used for another request;
//! 2. validates the request against the projections (typed errors that name the
//!    field; nothing is written when validation fails);
//! 3. appends the event(s) to the journal with their causal `deps`;
//! 4. applies them to the projections;
//! 5. records the op id with its result;
//!
//! and commits with `synchronous=FULL` before the caller sees "done". The fiscal
//! number and the escrow quota of a sale will join the same transaction.

use caja_shared::canonical::Value;
use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::RandomSource;
use caja_shared::event::Event;
use caja_shared::ids::{
    CustomerId, DebtId, DeviceId, EventId, OpId, PaymentId, SaleId, ShiftId, Sku, StoreId,
};
use caja_shared::kind::{
    CustomerUpserted, DebtOpened, DebtPaymentTaken, EventBody, PaymentMethod, SaleCreated,
    SaleVoided, ShiftClosed, ShiftOpened, SoldBy, StockCounted, StockReceived,
};
use caja_shared::money::{Money, QtyMilli, TaxRateBp};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::datadir::DataDir;
use crate::db::Db;
use crate::error::{OpError, Refusal};
use crate::journal::{self, CheckpointReason, DeviceRecord, Journal, JournalError, OpRecord};
use crate::keyfile;
use crate::projection;
use crate::sale::{self, CatalogItem, CreditStanding, SaleContext, SaleError, SaleRequest};
use crate::zreport::ZReport;

/// One line to return: the original sale's line and how much of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineRequest {
    /// Index of the line in the sale (0-based).
    pub line: u32,
    /// Quantity (thousandths; grams for weighed items).
    pub qty_milli: i64,
    /// Damaged goods do not go back to stock.
    #[serde(default)]
    pub damaged: bool,
}

/// One product to return from a sale this register does not know (its
/// original is unknown offline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductReturnRequest {
    /// SKU or barcode.
    pub code: String,
    /// Quantity (thousandths; grams for weighed items).
    pub qty_milli: i64,
    /// The unit price paid (per unit or per kg), as on the receipt; the shelf
    /// price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<i64>,
    /// Damaged goods do not go back to stock.
    #[serde(default)]
    pub damaged: bool,
}

/// A return as the cashier asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// The sale: its id or its fiscal number.
    pub sale: String,
    /// What comes back, by line of the sale (a sale this register knows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<ReturnLineRequest>,
    /// How the money goes back: cash, card, transfer or store credit.
    pub refund: PaymentMethod,
    /// The customer credited, for store credit (the sale's customer when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    /// What comes back, by product, when the register does not know the sale
    /// (not synced, or sold elsewhere): needs a supervisor's approval and is
    /// flagged for review at the hub. Refused when the sale is known here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_original: Vec<ProductReturnRequest>,
}

/// What a return wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnResult {
    /// The return.
    pub return_id: caja_shared::ids::ReturnId,
    /// The original sale, when known (or given by its id).
    pub sale_id: Option<SaleId>,
    /// Journal seq of the `SaleReturned`.
    pub seq: u64,
    /// Refunded, tax included.
    pub total: Money,
    /// The credit note's number (`B04…`), when one was issued.
    pub credit_note: Option<String>,
    /// The original sale was unknown here: the return is flagged for review.
    #[serde(default)]
    pub original_unknown: bool,
    /// The customer's store-credit balance after a store-credit refund.
    #[serde(default)]
    pub store_credit_balance: Option<Money>,
}

/// What a drawer opening wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawerResult {
    /// The opening.
    pub movement_id: caja_shared::ids::MovementId,
    /// Journal seq of the `DrawerOpened`.
    pub seq: u64,
    /// The print job that kicks the drawer.
    pub job: u64,
}

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

/// The fiscal document a sale is issued as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Series prefix (e.g. `B01`); `None` = the register's default.
    #[serde(default)]
    pub series: Option<String>,
    /// The buyer's RNC or cédula (tax-credit documents).
    #[serde(default)]
    pub buyer_tax_id: Option<String>,
}

/// Longest free text (names, reasons, references) accepted.
pub const MAX_TEXT_LEN: usize = 200;

fn invalid(field: &'static str, reason: impl Into<String>) -> OpError {
    OpError::invalid(field, reason)
}

fn text(field: &'static str, s: &str, required: bool) -> Result<String, OpError> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if t.chars().count() > MAX_TEXT_LEN {
        return Err(invalid(
            field,
            format!("longer than {MAX_TEXT_LEN} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(t.to_owned())
}

/// Result of opening a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftOpenedResult {
    /// The shift.
    pub shift_id: ShiftId,
    /// Journal seq of its `ShiftOpened`.
    pub seq: u64,
}

/// Result of a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleResult {
    /// The sale.
    pub sale_id: SaleId,
    /// Journal seq of its `SaleCreated`.
    pub seq: u64,
    /// Total, tax included.
    pub total: Money,
    /// ITBIS in the total.
    pub tax: Money,
    /// Change to give.
    pub change: Money,
    /// Fiado extended (0 when none).
    pub fiado: Money,
    /// The debt opened for the fiado, if any.
    pub debt_id: Option<DebtId>,
    /// The fiscal number the sale used, if any.
    #[serde(default)]
    pub fiscal_number: Option<String>,
    /// Numbers of that series left on this register when they are running
    /// low (below `fiscal_low_water`): the cashier is warned.
    #[serde(default)]
    pub fiscal_low: Option<u64>,
}

/// Result of a void, a stock movement, a customer change: the seq written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// Journal seqs written, in order.
    pub seqs: Vec<u64>,
}

/// Result of a debt payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtPaymentResult {
    /// Journal seqs written (one per debt paid).
    pub seqs: Vec<u64>,
    /// What the customer still owes.
    pub balance: Money,
}

/// Result of closing a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftClosedResult {
    /// Journal seq of its `ShiftClosed`.
    pub seq: u64,
    /// The Z report, computed from the shift's events.
    pub z: ZReport,
}

/// A customer as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    /// Existing customer to update; a new one when absent.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
    /// Name.
    pub name: String,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// RNC or cédula.
    #[serde(default)]
    pub tax_id: Option<String>,
    /// Credit limit in centavos.
    pub credit_limit: i64,
}

/// Result of a customer upsert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerResult {
    /// The customer.
    pub customer_id: CustomerId,
    /// Journal seq written.
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
}

/// An open register: its database, journal writer, clock and random source.
#[derive(Debug)]
pub struct Register<C: Clock, R: RandomSource> {
    db: Db,
    journal: Journal,
    clock: C,
    rng: R,
    config: crate::config::NodeConfig,
}

impl<C: Clock, R: RandomSource> Register<C, R> {
    /// Opens an initialized data directory. Verifies the chain from the last
    /// checkpoint: a journal whose history was changed is refused here, with
    /// the first bad seq, so a broken register cannot sell.
    pub fn open(dir: &DataDir, clock: C, rng: R) -> Result<Self, OpError> {
        if !dir.db_path().exists() {
            return Err(JournalError::NotInitialized.into());
        }
        let config = crate::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())?;
        let db = Db::open(dir.db_path())?;
        let key = keyfile::read_key_file(&dir.key_path())?;
        let journal = Journal::open(db.conn(), key, config.max_hlc_drift_ms)?;
        Ok(Register {
            db,
            journal,
            clock,
            rng,
            config,
        })
    }

    /// The database connection, for reads.
    pub fn conn(&self) -> &Connection {
        self.db.conn()
    }

    /// The configuration read when the register was opened.
    pub fn config(&self) -> &crate::config::NodeConfig {
        &self.config
    }

    /// The register's clock now (UTC ms).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The device identity.
    pub fn device(&self) -> &DeviceRecord {
        self.journal.device()
    }

    /// Runs one operation in one transaction, answering a retried op id with its
    /// first result.
    fn run<T, F>(
        &mut self,
        op_id: OpId,
        kind: &str,
        request: &impl Serialize,
        f: F,
    ) -> Result<T, OpError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&mut OpCtx<'_, '_, R>) -> Result<T, OpError>,
    {
        let request_hash = request_hash(kind, request)?;
        let now_ms = self.clock.now_ms();
        let tx = self.db.write_tx()?;
        crate::crashpoint::hit("op:begun");
        if let Some(prior) = journal::find_op(&tx, &op_id)? {
            if prior.request_hash != request_hash || prior.kind != kind {
                return Err(OpError::Refused(Refusal::OpIdReused(op_id)));
            }
            return Ok(serde_json::from_str(&prior.result)?);
        }
        let mut ctx = OpCtx {
            tx: &tx,
            journal: &mut self.journal,
            rng: &mut self.rng,
            now_ms,
            last_seq: None,
        };
        // Read under the write lock: a sync process may have just cleared it.
        if journal::load_device(ctx.tx)?.is_some_and(|d| d.restored_from_backup) {
            return Err(OpError::Refused(Refusal::RestoredNeedsSync));
        }
        let result = f(&mut ctx)?;
        let last_seq = ctx.last_seq;
        journal::record_op(
            &tx,
            &OpRecord {
                op_id,
                kind: kind.to_owned(),
                request_hash,
                result: serde_json::to_string(&result)?,
                seq: last_seq,
                at_ms: now_ms,
            },
        )?;
        crate::crashpoint::hit("op:recorded");
        tx.commit()?;
        crate::crashpoint::hit("op:committed");
        Ok(result)
    }

    /// Opens a shift for `cashier` with an opening cash float.
    pub fn open_shift(
        &mut self,
        op_id: OpId,
        cashier: &str,
        opening_float: Money,
    ) -> Result<ShiftOpenedResult, OpError> {
        let cashier = text("cashier", cashier, true)?;
        if opening_float.0 < 0 {
            return Err(invalid("opening_float", "must not be negative"));
        }
        if crate::staff::has_staff(self.conn())? {
            return Err(OpError::Refused(Refusal::SignInRequired));
        }
        let request = (&cashier, opening_float);
        self.run(op_id, "shift_open", &request, |ctx| {
            if let Some((shift, _, _)) = projection::open_shift(ctx.tx)? {
                return Err(OpError::Refused(Refusal::ShiftAlreadyOpen(shift)));
            }
            let shift_id = ShiftId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("shift_id", e.to_string()))?;
            let seq = ctx.append(
                ShiftOpened {
                    shift_id,
                    cashier: cashier.clone(),
                    opening_float,
                    staff_id: None,
                }
                .into(),
                vec![],
            )?;
            Ok(ShiftOpenedResult { shift_id, seq })
        })
    }

    /// The member of staff who opened the open shift, if any.
    fn shift_staff(&self) -> Result<Option<caja_shared::ids::StaffId>, OpError> {
        let Some((_, _, seq)) = projection::open_shift(self.conn())? else {
            return Err(OpError::Refused(Refusal::ShiftNotOpen));
        };
        let event = Journal::event(self.conn(), seq.unsigned_abs())?;
        Ok(match event.map(|e| e.body()).transpose() {
            Ok(Some(EventBody::ShiftOpened(o))) => o.staff_id,
            _ => None,
        })
    }

    /// Checks a member of staff's PIN and role in a transaction of its own,
    /// so a refusal moves only the failure counter.
    fn approve(
        &mut self,
        cred: &crate::staff::Credentials,
        needed: caja_shared::kind::Role,
        action: &'static str,
    ) -> Result<caja_shared::kind::Approval, OpError> {
        let now = self.clock.now_ms();
        let tx = self.db.write_tx()?;
        let r = crate::staff::check(&tx, cred, needed, action, now)?;
        tx.commit()?;
        Ok(r?)
    }

    /// The supervisor's approval an action needs on a register that has
    /// staff (`None` on a register without staff: nothing to check against).
    fn approval_for(
        &mut self,
        cred: Option<&crate::staff::Credentials>,
        action: &'static str,
    ) -> Result<Option<caja_shared::kind::Approval>, OpError> {
        if !crate::staff::has_staff(self.conn())? {
            return Ok(None);
        }
        let cred = cred.ok_or(OpError::Refused(Refusal::ApprovalRequired(action)))?;
        self.approve(cred, caja_shared::kind::Role::Supervisor, action)
            .map(Some)
    }

    /// Opens a shift for a member of staff who signs in with their PIN.
    pub fn open_shift_signed(
        &mut self,
        op_id: OpId,
        cred: &crate::staff::Credentials,
        opening_float: Money,
    ) -> Result<ShiftOpenedResult, OpError> {
        if opening_float.0 < 0 {
            return Err(invalid("opening_float", "must not be negative"));
        }
        let who = self.approve(cred, caja_shared::kind::Role::Cashier, "sign_in")?;
        let request = (who.staff_id, opening_float);
        self.run(op_id, "shift_open", &request, |ctx| {
            if let Some((shift, _, _)) = projection::open_shift(ctx.tx)? {
                return Err(OpError::Refused(Refusal::ShiftAlreadyOpen(shift)));
            }
            let shift_id = ShiftId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("shift_id", e.to_string()))?;
            let seq = ctx.append(
                ShiftOpened {
                    shift_id,
                    cashier: who.name.clone(),
                    opening_float,
                    staff_id: Some(who.staff_id),
                }
                .into(),
                vec![],
            )?;
            Ok(ShiftOpenedResult { shift_id, seq })
        })
    }

    /// Cash paid in, paid out (a supervisor approves on a register with
    /// staff) or dropped to the safe, in the open shift.
    pub fn cash_move(
        &mut self,
        op_id: OpId,
        kind: caja_shared::kind::CashMovement,
        amount: Money,
        reason: &str,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<Written, OpError> {
        let reason = text("reason", reason, true)?;
        if amount.0 <= 0 {
            return Err(invalid("amount", "must be positive"));
        }
        let approval = if kind == caja_shared::kind::CashMovement::PaidOut {
            self.approval_for(cred, "paid_out")?
        } else {
            None
        };
        self.run(op_id, "cash_move", &(kind, amount, &reason), |ctx| {
            let (shift_id, _, shift_seq) = ctx.open_shift()?;
            let dep = ctx.event_id_at(shift_seq)?;
            let movement_id = caja_shared::ids::MovementId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("movement_id", e.to_string()))?;
            let seq = ctx.append(
                caja_shared::kind::CashMoved {
                    movement_id,
                    shift_id,
                    kind,
                    amount,
                    reason: reason.clone(),
                    approval: approval.clone(),
                }
                .into(),
                vec![dep],
            )?;
            Ok(Written { seqs: vec![seq] })
        })
    }

    /// Returns (part of) a sale of this store, found by id or fiscal number:
    /// never more than is left of a line (nor of a product, counting returns
    /// made without the original), refunded by `refund` (store credit to a
    /// customer), stock back unless damaged, a credit note (`B04`) in the
    /// same transaction when the register issues fiscal documents, a
    /// supervisor's approval on a register with staff. A sale this register
    /// does not know is returned by product (`unknown_original`), with the
    /// approval `return_unknown_original`, and flagged for the hub.
    pub fn return_sale(
        &mut self,
        op_id: OpId,
        req: &ReturnRequest,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<ReturnResult, OpError> {
        let unknown = !req.unknown_original.is_empty();
        if unknown && !req.lines.is_empty() {
            return Err(invalid(
                "lines",
                "return by line of a known sale or by product of an unknown one, not both",
            ));
        }
        let count = req.lines.len() + req.unknown_original.len();
        if count == 0 || count > 200 {
            return Err(invalid("lines", "1 to 200 lines"));
        }
        if req.refund == PaymentMethod::Fiado {
            return Err(invalid("refund", "cash, card, transfer or store_credit"));
        }
        let reference = text("sale", &req.sale, true)?;
        if reference.chars().count() > 64 {
            return Err(invalid(
                "sale",
                "a sale id or fiscal number (at most 64 characters)",
            ));
        }
        for (i, l) in req.lines.iter().enumerate() {
            if l.qty_milli <= 0 {
                return Err(OpError::Refused(Refusal::Invalid {
                    field: "lines[].qty_milli",
                    reason: format!("line {i}: must be positive"),
                }));
            }
        }
        for (i, l) in req.unknown_original.iter().enumerate() {
            if l.qty_milli <= 0 {
                return Err(OpError::Refused(Refusal::Invalid {
                    field: "unknown_original[].qty_milli",
                    reason: format!("line {i}: must be positive"),
                }));
            }
            if l.unit_price.is_some_and(|p| p < 0) {
                return Err(OpError::Refused(Refusal::Invalid {
                    field: "unknown_original[].unit_price",
                    reason: format!("line {i}: must not be negative"),
                }));
            }
        }
        let action = if unknown {
            "return_unknown_original"
        } else {
            "return"
        };
        let approval = self.approval_for(cred, action)?;
        // A credit note of the register's kind: `E34` (electronic) for an
        // electronic sale when the register issues E34, else `B04`.
        let issues = |s: &str| self.config.fiscal_documents.iter().any(|d| d.as_str() == s);
        let (b04, e34) = (issues("B04"), issues("E34"));
        let own_device = self.device().device;
        self.run(op_id, "return", req, |ctx| {
            let (shift_id, cashier, shift_seq) = ctx.open_shift()?;
            let shift_event = ctx.event_id_at(shift_seq)?;
            type SaleRow = (String, String, Option<i64>, Option<String>, Option<String>);
            let row: Option<SaleRow> = ctx
                .tx
                .query_row(
                    "SELECT sale_id, event_id, voided_seq, fiscal_number, customer_id FROM sales
                     WHERE sale_id = ?1 OR fiscal_number = ?1 ORDER BY seq LIMIT 1",
                    [reference.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            let (sale_id, deps, original_number, sale_customer, lines, original_unknown) = match row
            {
                Some((sale_id, sale_event, voided, number, customer)) => {
                    if unknown {
                        return Err(invalid(
                            "unknown_original",
                            format!("the sale {reference} is known here: return it by line"),
                        ));
                    }
                    let sale_id: SaleId = sale_id
                        .parse()
                        .map_err(|_| invalid("sale", "stored sale id unreadable"))?;
                    if voided.is_some() {
                        return Err(OpError::Refused(Refusal::AlreadyVoided(sale_id)));
                    }
                    let sale_event: EventId = sale_event
                        .parse()
                        .map_err(|_| invalid("sale", "stored event id unreadable"))?;
                    let lines = known_return_lines(ctx.tx, sale_id, number.as_deref(), &req.lines)?;
                    let customer: Option<CustomerId> = customer.and_then(|c| c.parse().ok());
                    (
                        Some(sale_id),
                        vec![shift_event, sale_event],
                        number,
                        customer,
                        lines,
                        None,
                    )
                }
                None if !unknown => {
                    return Err(OpError::Refused(Refusal::UnknownSaleRef(
                        reference.chars().take(64).collect(),
                    )))
                }
                None => {
                    let lines = unknown_return_lines(ctx.tx, &req.unknown_original)?;
                    let by_id: Option<SaleId> = reference.parse().ok();
                    (
                        by_id,
                        vec![shift_event],
                        // A fiscal number is what a credit note modifies.
                        by_id.is_none().then(|| reference.clone()),
                        None,
                        lines,
                        Some(caja_shared::kind::UnknownOriginal {
                            reference: reference.clone(),
                        }),
                    )
                }
            };
            let customer = match req.refund {
                PaymentMethod::StoreCredit => {
                    let c = req.customer.or(sale_customer).ok_or_else(|| {
                        invalid("customer", "a store-credit refund needs a customer")
                    })?;
                    ctx.customer_exists(&c)?;
                    Some(c)
                }
                _ => None,
            };
            let total = Money(lines.iter().map(|l| l.total.0).sum());
            let tax = Money(lines.iter().map(|l| l.tax.0).sum());
            let electronic = original_number
                .as_deref()
                .is_some_and(|n| n.starts_with('E'));
            let credit_series = match (electronic && e34, b04) {
                (true, _) => Some("E34".to_owned()),
                (false, true) => Some("B04".to_owned()),
                (false, false) => None,
            };
            let credit_note = match &credit_series {
                Some(series) => {
                    let mut f = crate::fiscal::next_number(ctx.tx, own_device, series, ctx.now_ms)?
                        .ok_or_else(|| {
                            OpError::Refused(Refusal::FiscalExhausted(series.clone()))
                        })?;
                    f.modifies = original_number.clone();
                    Some(f)
                }
                None => None,
            };
            let return_id = caja_shared::ids::ReturnId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("return_id", e.to_string()))?;
            let number = credit_note.as_ref().map(|f| f.number.clone());
            let flagged = original_unknown.is_some();
            let seq = ctx.append(
                caja_shared::kind::SaleReturned {
                    return_id,
                    sale_id,
                    shift_id,
                    cashier,
                    lines,
                    total,
                    tax,
                    refund: req.refund,
                    customer,
                    credit_note,
                    approval: approval.clone(),
                    original_unknown,
                }
                .into(),
                deps,
            )?;
            let store_credit_balance = match customer {
                Some(c) => Some(Money(projection::store_credit_balance(
                    ctx.tx,
                    &c.to_string(),
                )?)),
                None => None,
            };
            Ok(ReturnResult {
                return_id,
                sale_id,
                seq,
                total,
                credit_note: number,
                original_unknown: flagged,
                store_credit_balance,
            })
        })
    }

    /// Opens the cash drawer without a sale, in the open shift: a reason, a
    /// supervisor's approval on a register with staff, a `DrawerOpened` event
    /// and the drawer kick queued in the print queue in the same transaction
    /// (printed after commit, like a receipt).
    pub fn open_drawer(
        &mut self,
        op_id: OpId,
        reason: &str,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<DrawerResult, OpError> {
        let reason = text("reason", reason, true)?;
        let approval = self.approval_for(cred, "drawer_open")?;
        self.run(op_id, "drawer_open", &reason, |ctx| {
            let (shift_id, _, shift_seq) = ctx.open_shift()?;
            let dep = ctx.event_id_at(shift_seq)?;
            let movement_id = caja_shared::ids::MovementId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("movement_id", e.to_string()))?;
            let seq = ctx.append(
                caja_shared::kind::DrawerOpened {
                    movement_id,
                    shift_id,
                    reason: reason.clone(),
                    approval: approval.clone(),
                }
                .into(),
                vec![dep],
            )?;
            let job = crate::print::enqueue_drawer(ctx.tx, movement_id, ctx.now_ms)?;
            Ok(DrawerResult {
                movement_id,
                seq,
                job: job.0,
            })
        })
    }

    /// A customer's store-credit balance as this register knows it.
    pub fn store_credit_balance(&self, customer: CustomerId) -> Result<Money, OpError> {
        let conn = self.conn();
        let exists: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = ?1)")?
            .query_row([customer.to_string()], |r| r.get(0))?;
        if !exists {
            return Err(OpError::Refused(Refusal::UnknownCustomer(customer)));
        }
        Ok(Money(projection::store_credit_balance(
            conn,
            &customer.to_string(),
        )?))
    }

    /// Makes a sale in the open shift, as the register's default document.
    pub fn sell(&mut self, op_id: OpId, req: &SaleRequest) -> Result<SaleResult, OpError> {
        self.sell_as(op_id, req, &Document::default())
    }

    /// Makes a sale in the open shift as the fiscal document `doc` (series
    /// and, for tax-credit documents, the buyer's RNC or cédula). A fiscal
    /// register takes the next number of a usable block of that series in this
    /// same transaction; when it has none, the sale is refused with the reason
    /// (never a number outside a granted block, never one used twice).
    pub fn sell_as(
        &mut self,
        op_id: OpId,
        req: &SaleRequest,
        doc: &Document,
    ) -> Result<SaleResult, OpError> {
        self.sell_approved(op_id, req, doc, None)
    }

    /// Whether a sale's discounts exceed `max_discount_bp` of its gross, and
    /// whether it overrides a shelf price (read only: the sale is built again
    /// in its transaction).
    fn approvals_needed(&self, req: &SaleRequest) -> Result<(bool, bool), OpError> {
        let has_discount = req.discount.is_some_and(|d| d > 0)
            || req.lines.iter().any(|l| l.discount.is_some_and(|d| d > 0));
        let has_price = req.lines.iter().any(|l| l.unit_price.is_some());
        if !has_discount && !has_price {
            return Ok((false, false));
        }
        let conn = self.conn();
        // Amounts only: the payments (fiado, store credit, short cash) are
        // checked by the sale's own transaction, so a probe never fails on
        // them and never hides an override or a discount.
        let amounts_only = SaleRequest {
            payments: vec![sale::PaymentRequest {
                method: PaymentMethod::Cash,
                amount: i64::MAX / 4,
                reference: None,
            }],
            customer: None,
            ..req.clone()
        };
        let probe = sale::build_sale(
            &amounts_only,
            SaleContext {
                sale_id: "00000000-0000-7000-8000-000000000000"
                    .parse()
                    .map_err(|_| invalid("sale_id", "probe id"))?,
                cashier: String::new(),
                shift_id: "00000000-0000-7000-8000-000000000000"
                    .parse()
                    .map_err(|_| invalid("shift_id", "probe id"))?,
                fiscal: None,
            },
            |code| lookup_item(conn, code).ok().flatten(),
            None,
        );
        let Ok(outcome) = probe else {
            // The sale itself is invalid: its own transaction says why.
            return Ok((false, false));
        };
        let discount: i128 = outcome
            .body
            .lines
            .iter()
            .map(|l| i128::from(l.discount.map_or(0, |d| d.0)))
            .sum();
        let gross = i128::from(outcome.body.total.0) + discount;
        let overrides = outcome
            .body
            .lines
            .iter()
            .any(|l| l.price_override.is_some());
        Ok((
            discount * 10_000 > gross * i128::from(self.config.max_discount_bp),
            overrides,
        ))
    }

    /// A sale, with a supervisor's approval when its discount is beyond the
    /// register's limit or a line overrides the shelf price (registers with
    /// staff). One PIN check covers both; each is recorded with its action
    /// (the sale's `approval` for the discount, each overridden line's
    /// `price_override.approval`).
    pub fn sell_approved(
        &mut self,
        op_id: OpId,
        req: &SaleRequest,
        doc: &Document,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<SaleResult, OpError> {
        let (discount, overrides) = self.approvals_needed(req)?;
        let checked = match (discount, overrides) {
            (false, false) => None,
            (_, true) => self.approval_for(cred, "price_override")?,
            (true, false) => self.approval_for(cred, "discount")?,
        };
        let approval = checked
            .clone()
            .filter(|_| discount)
            .map(|a| caja_shared::kind::Approval {
                action: "discount".into(),
                ..a
            });
        let override_approval =
            checked
                .filter(|_| overrides)
                .map(|a| caja_shared::kind::Approval {
                    action: "price_override".into(),
                    ..a
                });
        let series = self.config.document_for(doc.series.as_deref());
        if let Some(s) = &series {
            caja_shared::fiscal::check_prefix(s).map_err(|e| invalid("document", e.to_string()))?;
        }
        let buyer = match (&series, &doc.buyer_tax_id) {
            (_, Some(id)) => Some(
                caja_shared::fiscal::validate_tax_id(id)
                    .map_err(|e| invalid("buyer_tax_id", e.to_string()))?
                    .1,
            ),
            (Some(s), None) if caja_shared::fiscal::requires_buyer_tax_id(s) => {
                return Err(OpError::Refused(Refusal::BuyerTaxIdRequired(s.clone())));
            }
            _ => None,
        };
        let own_device = self.device().device;
        let low_water = self.config.fiscal_low_water;
        let stock_quotas = self.config.stock_quotas;
        // A plain sale hashes as before; a named document is part of the request.
        let hashed = if *doc == Document::default() {
            serde_json::to_value(req)?
        } else {
            serde_json::to_value((req, doc))?
        };
        self.run(op_id, "sell", &hashed, |ctx| {
            let (shift_id, cashier, shift_seq) = ctx.open_shift()?;
            let shift_event = ctx.event_id_at(shift_seq)?;
            let credit = match req.customer {
                Some(c) => Some(ctx.credit(&c)?),
                None => None,
            };
            let fiscal = match &series {
                Some(s) => {
                    let mut f = crate::fiscal::next_number(ctx.tx, own_device, s, ctx.now_ms)?
                        .ok_or_else(|| OpError::Refused(Refusal::FiscalExhausted(s.clone())))?;
                    f.buyer_tax_id = buyer.clone();
                    Some(f)
                }
                None => None,
            };
            let sale_id = SaleId::new_v7(ctx.now_ms, ctx.rng)
                .map_err(|e| invalid("sale_id", e.to_string()))?;
            let tx = ctx.tx;
            let outcome = sale::build_sale(
                req,
                SaleContext {
                    sale_id,
                    cashier,
                    shift_id,
                    fiscal,
                },
                |code| lookup_item(tx, code).ok().flatten(),
                credit,
            )?;
            let mut outcome = outcome;
            outcome.body.approval = approval.clone();
            for l in &mut outcome.body.lines {
                if let Some(o) = &mut l.price_override {
                    o.approval = override_approval.clone();
                }
            }
            // Never an override without its approval on a register with
            // staff, whatever the probe above concluded.
            if outcome.body.lines.iter().any(|l| {
                l.price_override
                    .as_ref()
                    .is_some_and(|o| o.approval.is_none())
            }) && crate::staff::has_staff(ctx.tx)?
            {
                return Err(OpError::Refused(Refusal::ApprovalRequired(
                    "price_override",
                )));
            }
            if stock_quotas {
                if let Err(short) = crate::escrow::take(ctx.tx, &mut outcome.body, ctx.now_ms)? {
                    return Err(OpError::Refused(Refusal::QuotaExceeded {
                        product: short.product,
                        name: short.name,
                        left: QtyMilli(short.left_milli),
                        wanted: QtyMilli(short.wanted_milli),
                    }));
                }
                crate::crashpoint::hit("escrow:taken");
            }
            let body = outcome.body.clone();
            let seq = ctx.append(outcome.body.into(), vec![shift_event])?;
            let fiscal_low = match &body.fiscal {
                Some(f) => Some(crate::fiscal::numbers_left(
                    ctx.tx, own_device, &f.series, ctx.now_ms,
                )?)
                .filter(|left| *left < low_water),
                None => None,
            };
            // The receipt is queued with the sale: committed together or not at all.
            crate::print::enqueue_original(ctx.tx, sale_id, ctx.now_ms)?;
            crate::crashpoint::hit("print:enqueued");
            let mut debt_id = None;
            if outcome.fiado.0 > 0 {
                let customer = req.customer.ok_or(SaleError::FiadoWithoutCustomer)?;
                let id = DebtId::new_v7(ctx.now_ms, ctx.rng)
                    .map_err(|e| invalid("debt_id", e.to_string()))?;
                let sale_event = ctx.event_id_at(seq)?;
                ctx.append(
                    DebtOpened {
                        debt_id: id,
                        customer,
                        sale_id: Some(sale_id),
                        amount: outcome.fiado,
                    }
                    .into(),
                    vec![sale_event],
                )?;
                debt_id = Some(id);
            }
            Ok(SaleResult {
                sale_id,
                seq,
                total: body.total,
                tax: body.tax,
                change: body.change,
                fiado: outcome.fiado,
                debt_id,
                fiscal_number: body.fiscal.as_ref().map(|f| f.number.clone()),
                fiscal_low,
            })
        })
    }

    /// Voids a sale (a reason is required; a sale is voided at most once).
    pub fn void(&mut self, op_id: OpId, sale_id: SaleId, reason: &str) -> Result<Written, OpError> {
        self.void_approved(op_id, sale_id, reason, None)
    }

    /// Voids a sale with a supervisor's approval (required on a register
    /// with staff; recorded in the event).
    pub fn void_approved(
        &mut self,
        op_id: OpId,
        sale_id: SaleId,
        reason: &str,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<Written, OpError> {
        let reason = text("reason", reason, true)?;
        let approval = self.approval_for(cred, "void")?;
        let own_device = self.device().device;
        let stock_quotas = self.config.stock_quotas;
        self.run(op_id, "void", &(sale_id, &reason), |ctx| {
            ctx.open_shift()?;
            let row: Option<(String, Option<i64>)> = ctx
                .tx
                .query_row(
                    "SELECT event_id, voided_seq FROM sales WHERE sale_id = ?1 AND device = ?2",
                    [sale_id.to_string(), own_device.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (event_id, voided) = row.ok_or(OpError::Refused(Refusal::UnknownSale(sale_id)))?;
            if voided.is_some() {
                return Err(OpError::Refused(Refusal::AlreadyVoided(sale_id)));
            }
            let dep: EventId = event_id
                .parse()
                .map_err(|_| invalid("sale_id", "stored event id unreadable"))?;
            if stock_quotas {
                let sale_seq: i64 = ctx.tx.query_row(
                    "SELECT seq FROM sales WHERE sale_id = ?1",
                    [sale_id.to_string()],
                    |r| r.get(0),
                )?;
                if let Some(EventBody::SaleCreated(sale)) =
                    Journal::event(ctx.tx, sale_seq.unsigned_abs())?
                        .map(|e| e.body())
                        .transpose()
                        .map_err(|e| invalid("sale_id", e.to_string()))?
                {
                    crate::escrow::give_back(ctx.tx, &sale)?;
                }
            }
            let seq = ctx.append(
                SaleVoided {
                    sale_id,
                    reason: reason.clone(),
                    approved_by: approval.as_ref().map(|a| a.name.clone()),
                    approval: approval.clone(),
                }
                .into(),
                vec![dep],
            )?;
            Ok(Written { seqs: vec![seq] })
        })
    }

    /// Takes a payment on a customer's fiado, paying the oldest debts first.
    pub fn pay_debt(
        &mut self,
        op_id: OpId,
        customer: CustomerId,
        amount: Money,
        method: PaymentMethod,
    ) -> Result<DebtPaymentResult, OpError> {
        if amount.0 <= 0 {
            return Err(invalid("amount", "must be positive"));
        }
        if matches!(method, PaymentMethod::Fiado | PaymentMethod::StoreCredit) {
            return Err(invalid(
                "method",
                "a debt is paid with cash, card or transfer",
            ));
        }
        self.run(op_id, "debt_pay", &(customer, amount, method), |ctx| {
            ctx.open_shift()?;
            ctx.customer_exists(&customer)?;
            let balance = Money(projection::customer_balance(ctx.tx, &customer.to_string())?);
            if amount.0 > balance.0 {
                return Err(OpError::Refused(Refusal::DebtOverpaid { amount, balance }));
            }
            let debts: Vec<(String, String, i64)> = ctx
                .tx
                .prepare(
                    "SELECT debt_id, event_id, amount - paid FROM debts
                     WHERE customer_id = ?1 AND voided = 0 AND amount > paid
                     ORDER BY event_id",
                )?
                .query_map([customer.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut left = amount.0;
            let mut seqs = Vec::new();
            for (debt_id, event_id, owed) in debts {
                if left == 0 {
                    break;
                }
                let part = left.min(owed);
                left -= part;
                let payment_id = PaymentId::new_v7(ctx.now_ms, ctx.rng)
                    .map_err(|e| invalid("payment_id", e.to_string()))?;
                let dep: EventId = event_id
                    .parse()
                    .map_err(|_| invalid("debt", "stored event id unreadable"))?;
                let debt_id: DebtId = debt_id
                    .parse()
                    .map_err(|_| invalid("debt", "stored debt id unreadable"))?;
                seqs.push(
                    ctx.append(
                        DebtPaymentTaken {
                            payment_id,
                            debt_id,
                            customer,
                            method,
                            amount: Money(part),
                        }
                        .into(),
                        vec![dep],
                    )?,
                );
            }
            debug_assert_eq!(left, 0, "balance covered the payment");
            let balance = Money(projection::customer_balance(ctx.tx, &customer.to_string())?);
            Ok(DebtPaymentResult { seqs, balance })
        })
    }

    /// Records stock received.
    pub fn receive_stock(
        &mut self,
        op_id: OpId,
        product: &str,
        qty: QtyMilli,
        reference: Option<&str>,
    ) -> Result<Written, OpError> {
        if qty.0 <= 0 {
            return Err(invalid("qty_milli", "must be positive"));
        }
        let reference = reference.map(|r| text("reference", r, false)).transpose()?;
        self.run(op_id, "stock_receive", &(product, qty, &reference), |ctx| {
            let item = ctx.item(product)?;
            let seq = ctx.append(
                StockReceived {
                    product: item.sku,
                    qty_milli: qty,
                    reference: reference.clone().filter(|r| !r.is_empty()),
                }
                .into(),
                vec![],
            )?;
            Ok(Written { seqs: vec![seq] })
        })
    }

    /// Records a stock count; the event carries the signed difference to what the
    /// register expected.
    pub fn count_stock(
        &mut self,
        op_id: OpId,
        product: &str,
        counted: QtyMilli,
    ) -> Result<Written, OpError> {
        if counted.0 < 0 {
            return Err(invalid("counted_milli", "must not be negative"));
        }
        self.run(op_id, "stock_count", &(product, counted), |ctx| {
            let item = ctx.item(product)?;
            let current: i64 = ctx
                .tx
                .query_row(
                    "SELECT qty_milli FROM stock WHERE sku = ?1",
                    [item.sku.as_str()],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            let delta = counted
                .0
                .checked_sub(current)
                .ok_or_else(|| invalid("counted_milli", "out of range"))?;
            let seq = ctx.append(
                StockCounted {
                    product: item.sku,
                    counted_milli: counted,
                    delta_milli: QtyMilli(delta),
                }
                .into(),
                vec![],
            )?;
            Ok(Written { seqs: vec![seq] })
        })
    }

    /// Creates or updates a customer.
    pub fn upsert_customer(
        &mut self,
        op_id: OpId,
        req: &CustomerRequest,
    ) -> Result<CustomerResult, OpError> {
        let name = text("name", &req.name, true)?;
        let phone = req
            .phone
            .as_deref()
            .map(|p| text("phone", p, false))
            .transpose()?;
        let tax_id = req
            .tax_id
            .as_deref()
            .map(|t| text("tax_id", t, false))
            .transpose()?;
        if req.credit_limit < 0 {
            return Err(invalid("credit_limit", "must not be negative"));
        }
        self.run(op_id, "customer", req, |ctx| {
            let customer_id = match req.customer_id {
                Some(c) => {
                    ctx.customer_exists(&c)?;
                    c
                }
                None => CustomerId::new_v7(ctx.now_ms, ctx.rng)
                    .map_err(|e| invalid("customer_id", e.to_string()))?,
            };
            let seq = ctx.append(
                CustomerUpserted {
                    customer_id,
                    name: name.clone(),
                    phone: phone.clone().filter(|p| !p.is_empty()),
                    tax_id: tax_id.clone().filter(|t| !t.is_empty()),
                    credit_limit: Money(req.credit_limit),
                }
                .into(),
                vec![],
            )?;
            Ok(CustomerResult { customer_id, seq })
        })
    }

    /// Closes the open shift with the cash counted, writes a checkpoint, and
    /// returns the Z report.
    pub fn close_shift(
        &mut self,
        op_id: OpId,
        counted_cash: Money,
    ) -> Result<ShiftClosedResult, OpError> {
        self.close_shift_as(op_id, counted_cash, None)
    }

    /// Closes the open shift. On a register with staff someone signs the
    /// close with their PIN: the shift's own cashier, or a supervisor for
    /// another person's shift (recorded in the event and the Z report).
    pub fn close_shift_as(
        &mut self,
        op_id: OpId,
        counted_cash: Money,
        cred: Option<&crate::staff::Credentials>,
    ) -> Result<ShiftClosedResult, OpError> {
        if counted_cash.0 < 0 {
            return Err(invalid("counted_cash", "must not be negative"));
        }
        let approval = if crate::staff::has_staff(self.conn())? {
            let cred = cred.ok_or(OpError::Refused(Refusal::SignInRequired))?;
            let owner = self.shift_staff()?;
            if owner == Some(cred.staff_id) {
                Some(self.approve(cred, caja_shared::kind::Role::Cashier, "close_own_shift")?)
            } else {
                Some(self.approve(cred, caja_shared::kind::Role::Supervisor, "close_shift")?)
            }
        } else {
            None
        };
        let release_all = self.config.fiscal_release_at_close;
        self.run(op_id, "shift_close", &counted_cash, |ctx| {
            let (shift_id, cashier, opened_seq) = ctx.open_shift()?;
            let before = z_report_of(ctx.tx, opened_seq, None)?;
            let dep = ctx.event_id_at(opened_seq)?;
            let seq = ctx.append(
                ShiftClosed {
                    shift_id,
                    cashier,
                    expected_cash: before.expected_cash,
                    counted_cash,
                    approval: approval.clone(),
                }
                .into(),
                vec![dep],
            )?;
            // Unused fiscal numbers go back: of expired blocks always, of every
            // block when so configured.
            let own = ctx.journal.device().device;
            for r in crate::fiscal::to_release(ctx.tx, own, ctx.now_ms, release_all)? {
                ctx.append(r.into(), vec![])?;
            }
            // Unused stock quota goes back to the store at every close.
            for r in crate::escrow::to_release(ctx.tx)? {
                crate::escrow::released(ctx.tx, &r)?;
                ctx.append(r.into(), vec![])?;
            }
            ctx.journal
                .write_checkpoint(ctx.tx, CheckpointReason::ShiftClose, ctx.now_ms)?;
            let closed = i64::try_from(seq).map_err(|_| invalid("seq", "out of range"))?;
            let z = z_report_of(ctx.tx, opened_seq, Some(closed))?;
            Ok(ShiftClosedResult { seq, z })
        })
    }

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

    /// The Z report of the open shift, or of the shift with this id.
    pub fn z_report(&self, shift: Option<ShiftId>) -> Result<ZReport, OpError> {
        let conn = self.db.conn();
        let row: Option<(i64, Option<i64>)> = match shift {
            Some(s) => conn
                .query_row(
                    "SELECT opened_seq, closed_seq FROM shifts WHERE shift_id = ?1",
                    [s.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?,
            None => conn
                .query_row(
                    "SELECT opened_seq, closed_seq FROM shifts WHERE closed_seq IS NULL",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?,
        };
        let (opened, closed) = row.ok_or(OpError::Refused(Refusal::ShiftNotOpen))?;
        z_report_of(conn, opened, closed)
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
        let hub_events: i64 =
            conn.query_row("SELECT count(*) FROM hub_events", [], |r| r.get(0))?;
        let peer_events: i64 =
            conn.query_row("SELECT count(*) FROM peer_events", [], |r| r.get(0))?;
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
        })
    }

    /// The receipt settings of this register's configuration.
    pub fn receipt_settings(&self) -> Result<crate::print::ReceiptSettings, OpError> {
        Ok(crate::print::ReceiptSettings::from_config(&self.config)?)
    }

    /// The configured printer, if any.
    pub fn printer_settings(&self) -> Result<Option<crate::print::PrinterSettings>, OpError> {
        Ok(crate::print::PrinterSettings::from_config(&self.config)?)
    }

    /// The receipt of one of this register's sales as it prints (decoded text).
    pub fn receipt_text(&self, sale: SaleId) -> Result<String, OpError> {
        crate::print::receipt_text(self.conn(), sale, &self.receipt_settings()?)
    }

    /// Queues a reprint of a sale, marked "COPIA"; the original is never
    /// printed again.
    pub fn reprint(&mut self, sale: SaleId) -> Result<caja_hardware::queue::JobId, OpError> {
        let now_ms = self.clock.now_ms();
        let tx = self.db.write_tx()?;
        let id = crate::print::enqueue_copy(&tx, sale, now_ms)?;
        tx.commit()?;
        Ok(id)
    }

    /// Prints the due jobs on `printer` (see [`crate::print::print_pending`]).
    pub fn print_pending_on(
        &mut self,
        printer: &crate::print::PrinterSettings,
    ) -> Result<crate::print::PrintRun, OpError> {
        let receipt = self.receipt_settings()?;
        let now_ms = self.clock.now_ms();
        crate::print::print_pending(self.conn(), printer, &receipt, now_ms)
    }

    /// Prints the due jobs on the configured printer.
    pub fn print_pending(&mut self) -> Result<crate::print::PrintRun, OpError> {
        let printer = self
            .printer_settings()?
            .ok_or(OpError::Refused(Refusal::NoPrinter))?;
        self.print_pending_on(&printer)
    }

    /// Puts the print jobs that were given up back in the queue.
    pub fn retry_failed_prints(&mut self) -> Result<usize, OpError> {
        let now_ms = self.clock.now_ms();
        crate::print::retry_failed(self.conn(), now_ms)
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

/// The mutable parts one operation works with inside its transaction.
struct OpCtx<'t, 'c, R> {
    tx: &'t Transaction<'c>,
    journal: &'t mut Journal,
    rng: &'t mut R,
    now_ms: i64,
    last_seq: Option<u64>,
}

impl<R: RandomSource> OpCtx<'_, '_, R> {
    /// Appends an event and applies it to the projections.
    fn append(&mut self, body: EventBody, deps: Vec<EventId>) -> Result<u64, OpError> {
        let event =
            self.journal
                .append(self.tx, body.clone(), deps, &mut *self.rng, self.now_ms)?;
        let seq = event.seq().get();
        let seq_i = i64::try_from(seq).map_err(|_| invalid("seq", "out of range"))?;
        projection::apply_own(self.tx, seq_i, &event, &body)?;
        crate::crashpoint::hit("projection:applied");
        self.last_seq = Some(seq);
        Ok(seq)
    }

    fn open_shift(&self) -> Result<(ShiftId, String, i64), OpError> {
        let (shift, cashier, seq) =
            projection::open_shift(self.tx)?.ok_or(OpError::Refused(Refusal::ShiftNotOpen))?;
        let shift: ShiftId = shift
            .parse()
            .map_err(|_| invalid("shift", "stored shift id unreadable"))?;
        Ok((shift, cashier, seq))
    }

    fn event_id_at(&self, seq: impl TryInto<u64>) -> Result<EventId, OpError> {
        // The index column, checked against the event's bytes by `verify`.
        let seq: u64 = seq.try_into().map_err(|_| invalid("seq", "out of range"))?;
        let seq_i = i64::try_from(seq).map_err(|_| invalid("seq", "out of range"))?;
        let id: String = self
            .tx
            .prepare_cached("SELECT event_id FROM journal WHERE seq = ?1")?
            .query_row([seq_i], |r| r.get(0))
            .optional()?
            .ok_or_else(|| invalid("seq", format!("no event at seq {seq}")))?;
        id.parse()
            .map_err(|_| invalid("seq", format!("unreadable event id at seq {seq}")))
    }

    fn customer_exists(&self, c: &CustomerId) -> Result<i64, OpError> {
        self.tx
            .prepare_cached("SELECT credit_limit FROM customers WHERE customer_id = ?1")?
            .query_row([c.to_string()], |r| r.get(0))
            .optional()?
            .ok_or(OpError::Refused(Refusal::UnknownCustomer(*c)))
    }

    fn credit(&self, c: &CustomerId) -> Result<CreditStanding, OpError> {
        let limit = self.customer_exists(c)?;
        let balance = projection::customer_balance(self.tx, &c.to_string())?;
        let store_credit = projection::store_credit_balance(self.tx, &c.to_string())?;
        Ok(CreditStanding {
            limit: Money(limit),
            balance: Money(balance),
            store_credit: Money(store_credit),
        })
    }

    fn item(&self, code: &str) -> Result<CatalogItem, OpError> {
        lookup_item(self.tx, code)?.ok_or_else(|| {
            OpError::Refused(Refusal::UnknownProduct(code.chars().take(64).collect()))
        })
    }
}

/// The lines of a return of a sale this register knows: never more than is
/// left of a line, nor of a product (returns made without the original,
/// matched by the sale's id or fiscal number, count against its products).
fn known_return_lines(
    tx: &Connection,
    sale_id: SaleId,
    fiscal_number: Option<&str>,
    req: &[ReturnLineRequest],
) -> Result<Vec<caja_shared::kind::ReturnLine>, OpError> {
    let sale = sale_id.to_string();
    let mut lines = Vec::new();
    let mut taken: std::collections::BTreeMap<u32, i64> = std::collections::BTreeMap::new();
    let mut taken_product: std::collections::BTreeMap<String, i64> =
        std::collections::BTreeMap::new();
    for (index, l) in req.iter().enumerate() {
        let orig: Option<(String, i64, i64, i64)> = tx
            .query_row(
                "SELECT sku, qty_milli, total, tax FROM sale_lines WHERE sale_id = ?1 AND line_no = ?2",
                params![sale, i64::from(l.line)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (sku, sold, total, tax) = orig.ok_or_else(|| {
            OpError::Refused(Refusal::Invalid {
                field: "lines[].line",
                reason: format!("line {index}: the sale has no line {}", l.line),
            })
        })?;
        let (returned, refunded, refunded_tax): (i64, i64, i64) = tx.query_row(
            "SELECT coalesce(sum(qty_milli), 0), coalesce(sum(total), 0), coalesce(sum(tax), 0)
             FROM returns WHERE sale_id = ?1 AND sale_line = ?2",
            params![sale, i64::from(l.line)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        // What is left of the product: sold in the sale, less returned by
        // line and returned without the original.
        let (sold_p, returned_p, unknown_p): (i64, i64, i64) = tx.query_row(
            "SELECT (SELECT coalesce(sum(qty_milli), 0) FROM sale_lines WHERE sale_id = ?1 AND sku = ?2),
                    (SELECT coalesce(sum(qty_milli), 0) FROM returns WHERE sale_id = ?1 AND product = ?2),
                    (SELECT coalesce(sum(qty_milli), 0) FROM returns_unknown
                      WHERE product = ?2 AND (sale_id = ?1 OR reference = ?1 OR reference = ?3))",
            params![sale, sku, fiscal_number],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let before = taken.get(&l.line).copied().unwrap_or(0);
        let before_p = taken_product.get(&sku).copied().unwrap_or(0);
        let left_line = sold - returned - before;
        let left = left_line.min(sold_p - returned_p - unknown_p - before_p);
        if l.qty_milli > left {
            return Err(OpError::Refused(Refusal::ReturnTooMuch {
                index,
                line: l.line,
                left: QtyMilli(left.max(0)),
            }));
        }
        taken.insert(l.line, before + l.qty_milli);
        taken_product.insert(sku.clone(), before_p + l.qty_milli);
        // The whole rest of a line refunds exactly what is left of its
        // amount; a part, its share rounded once.
        let (t, x) = if l.qty_milli == left_line && before == 0 {
            (total - refunded, tax - refunded_tax)
        } else {
            let share = |amount: i64| {
                caja_shared::money::div_round_half_away(
                    i128::from(amount) * i128::from(l.qty_milli),
                    i128::from(sold),
                )
                .map_err(|e| invalid("lines", e.to_string()))
            };
            (share(total)?, share(tax)?)
        };
        lines.push(caja_shared::kind::ReturnLine {
            line: Some(l.line),
            product: sku
                .parse()
                .map_err(|_| invalid("lines", "stored sku unreadable"))?,
            qty_milli: QtyMilli(l.qty_milli),
            total: Money(t),
            tax: Money(x),
            damaged: l.damaged,
            tax_bp: None,
        });
    }
    Ok(lines)
}

/// The lines of a return whose original this register does not know: each
/// product from the catalog, its amount at the price paid (the shelf price
/// when none is given) and its tax at the product's rate.
fn unknown_return_lines(
    tx: &Connection,
    req: &[ProductReturnRequest],
) -> Result<Vec<caja_shared::kind::ReturnLine>, OpError> {
    let mut lines = Vec::new();
    for (index, l) in req.iter().enumerate() {
        let item = lookup_item(tx, &l.code)?.ok_or_else(|| {
            OpError::Refused(Refusal::UnknownProduct(l.code.chars().take(64).collect()))
        })?;
        if item.sold_by == SoldBy::Unit && l.qty_milli % QtyMilli::PER_UNIT != 0 {
            return Err(OpError::Refused(Refusal::Invalid {
                field: "unknown_original[].qty_milli",
                reason: format!("line {index}: {} is sold by the piece", item.sku),
            }));
        }
        let price = match (l.unit_price, item.unit_price) {
            (Some(p), _) => Money(p),
            (None, Some(p)) => p,
            (None, None) => {
                return Err(OpError::Refused(Refusal::Invalid {
                    field: "unknown_original[].unit_price",
                    reason: format!(
                        "line {index}: {} has no price: give the price paid",
                        item.sku
                    ),
                }))
            }
        };
        let a = caja_shared::money::LineAmounts::compute(
            price,
            QtyMilli(l.qty_milli),
            Money::ZERO,
            item.tax_bp,
        )
        .map_err(|e| {
            OpError::Refused(Refusal::Invalid {
                field: "unknown_original[].qty_milli",
                reason: format!("line {index}: {e}"),
            })
        })?;
        lines.push(caja_shared::kind::ReturnLine {
            line: None,
            product: item.sku,
            qty_milli: QtyMilli(l.qty_milli),
            total: a.total,
            tax: a.tax,
            damaged: l.damaged,
            tax_bp: Some(item.tax_bp),
        });
    }
    Ok(lines)
}

/// SHA-256 of the canonical JSON of `(kind, request)`.
fn request_hash(kind: &str, request: &impl Serialize) -> Result<Hash256, OpError> {
    let v = serde_json::json!({ "kind": kind, "request": request });
    let v = Value::from_serde(v).map_err(|e| invalid("request", e.to_string()))?;
    Ok(Hash256::of(&v.to_canonical_bytes()))
}

/// Looks up an item by SKU or barcode.
pub fn lookup_item(conn: &Connection, code: &str) -> Result<Option<CatalogItem>, OpError> {
    let row: Option<(String, String, i64, String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT sku, name, tax_bp, sold_by, unit_price FROM catalog_items
             WHERE sku = ?1 OR sku = (SELECT sku FROM barcodes WHERE code = ?1)",
        )?
        .query_row([code], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((sku, name, bp, sold_by, price)) = row else {
        return Ok(None);
    };
    let sku: Sku = sku
        .parse()
        .map_err(|_| invalid("sku", "stored sku unreadable"))?;
    let bp = u16::try_from(bp)
        .ok()
        .and_then(|b| TaxRateBp::new(b).ok())
        .ok_or_else(|| invalid("tax_bp", "stored tax rate unreadable"))?;
    Ok(Some(CatalogItem {
        sku,
        name,
        tax_bp: bp,
        sold_by: if sold_by == "weight" {
            SoldBy::Weight
        } else {
            SoldBy::Unit
        },
        unit_price: price.map(Money),
    }))
}

/// Computes the Z report of the shift opened at `opened_seq` (and closed at
/// `closed_seq`, when closed) from the journal.
fn z_report_of(
    conn: &Connection,
    opened_seq: i64,
    closed_seq: Option<i64>,
) -> Result<ZReport, OpError> {
    let end = closed_seq.unwrap_or(i64::MAX);
    let mut stmt =
        conn.prepare("SELECT seq, bytes FROM journal WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq")?;
    let mut rows = stmt.query(params![opened_seq, end])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let bytes: Vec<u8> = row.get(1)?;
        let e = Event::from_json(&bytes).map_err(|err| invalid("journal", err.to_string()))?;
        let body = e
            .body()
            .map_err(|err| invalid("journal", err.to_string()))?;
        events.push((u64::try_from(seq).unwrap_or(0), body));
    }
    let earlier = |sale_id: &SaleId| -> Option<SaleCreated> {
        let seq: i64 = conn
            .query_row(
                "SELECT seq FROM sales WHERE sale_id = ?1
                 AND device = (SELECT device_id FROM device WHERE id = 1)",
                [sale_id.to_string()],
                |r| r.get(0),
            )
            .ok()?;
        let e = Journal::event(conn, u64::try_from(seq).ok()?).ok()??;
        match e.body().ok()? {
            EventBody::SaleCreated(s) => Some(s),
            _ => None,
        }
    };
    Ok(ZReport::compute(&events, earlier)?)
}
