//! What happens at each step: the cashiers' operations at the registers,
//! head office's changes at the hub, and (in the safety phase) the faults.
//! Every choice comes from the world's seeded dice.

use caja_node::error::{OpError, Refusal};
use caja_node::register::{CustomerRequest, Document, ReturnLineRequest, ReturnRequest};
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::staff::Credentials;
use caja_shared::ids::SaleId;
use caja_shared::kind::CashMovement;
use caja_shared::kind::{PaymentMethod, Role};
use caja_shared::money::{Money, QtyMilli};

use super::faults::Fault;
use super::net::lock;
use super::tally::Work;
use super::world::{credentials, first_words, World, STAFF};
use super::SimError;

/// The sample catalog's products: (code to scan, sold by weight).
pub const PRODUCTS: [(&str, &str, bool); 5] = [
    ("7501234567890", "ARROZ", false),
    ("2000000000017", "2000000000017", true),
    ("7460000000011", "7460000000011", false),
    ("7460000000028", "HABICHUELAS", false),
    ("2000000000024", "2000000000024", true),
];

/// One cashier or head-office action at a random register.
pub fn action(w: &mut World) -> Result<(), SimError> {
    let reg = w.pick(w.regs.len());
    let roll = w.rand_range(0, 999);
    match roll {
        0..=449 => sell(w, reg),
        450..=499 => void(w, reg),
        500..=539 => pay_debt(w, reg),
        540..=569 => customer(w, reg),
        570..=649 => receive(w, reg),
        650..=674 => count(w, reg),
        675..=724 => shift(w, reg),
        725..=764 => price_change(w),
        765..=774 => catalog_rename(w),
        775..=784 => release_fiscal(w, reg),
        785..=814 => return_goods(w, reg),
        815..=839 => cash_move(w, reg),
        840..=869 => resolve_conflict(w),
        870..=919 => super::pay::provider(w),
        920..=934 => rotate_key(w, reg),
        935..=979 => super::ecf::issue(w, reg),
        _ => Ok(()),
    }
}

/// An operator at head office resolves one open conflict through the admin
/// API: the first candidate wins, or (half the time, or with none) no
/// winner and a note. Recorded for the checker, which finds the resolution
/// in the store's hub chain, in the audit log and at every register.
fn resolve_conflict(w: &mut World) -> Result<(), SimError> {
    if !lock(&w.net).hub.is_up() {
        return Ok(());
    }
    if w.chance(400) {
        // The card payments' reconciliation (the hub's timer, on demand).
        let r = lock(&w.net)
            .hub
            .admin("POST", "/v1/admin/payments/reconcile", None)?;
        w.log(format!(
            "hub: payments reconciled: {}",
            first_words(&r.to_string())
        ));
    }
    let v = lock(&w.net)
        .hub
        .admin("GET", "/v1/admin/conflicts?state=open", None)?;
    let open: Vec<serde_json::Value> = v["conflicts"].as_array().cloned().unwrap_or_default();
    if open.is_empty() {
        return Ok(());
    }
    let c = &open[w.pick(open.len())];
    let id = c["conflict_id"].as_str().unwrap_or_default().to_owned();
    let candidates: Vec<String> = c["candidates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect();
    let winner = (!candidates.is_empty() && w.chance(500)).then(|| candidates[0].clone());
    let mut body = serde_json::json!({"note": "revisado en la oficina", "by": "operadora"});
    if let Some(win) = &winner {
        body["winner"] = serde_json::Value::String(win.clone());
    }
    let r = lock(&w.net).hub.admin(
        "POST",
        &format!("/v1/admin/conflicts/{id}/resolve"),
        Some(&body),
    )?;
    let event = r["resolution"]["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    w.checks += 1;
    if r["state"] != "resolved" || event.is_empty() {
        return Err(SimError(format!(
            "operator: conflict {id} answered {r} to its resolution"
        )));
    }
    w.log(format!(
        "hub: operator resolved conflict {} ({}) winner {winner:?}",
        id,
        c["reason"].as_str().unwrap_or("")
    ));
    w.resolutions.push(super::world::Resolution {
        conflict: id,
        candidates,
        event,
    });
    w.work.add(Work::ConflictResolved);
    Ok(())
}

/// Head office rotates register `reg`'s key (planned, with the grace
/// period; sometimes as compromised, with none) and the operator installs
/// the new key at the register (`caja-node rekey`): the process stops, the
/// key file and the device's key id change, it starts again. Requests
/// already signed with the old key may still be in flight.
pub fn rotate_key(w: &mut World, reg: usize) -> Result<(), SimError> {
    if !lock(&w.net).hub.is_up() || w.regs[reg].ops.is_none() {
        return Ok(());
    }
    let no_grace = w.chance(300);
    let device = w.regs[reg].device;
    let v = lock(&w.net).hub.admin(
        "POST",
        &format!("/v1/admin/devices/{device}/rotate"),
        Some(&serde_json::json!({"no_grace": no_grace})),
    )?;
    let key_id: caja_shared::ids::KeyId = v["key_id"]
        .as_str()
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| SimError(format!("rotate answer {v}")))?;
    let key = v["key"]
        .as_str()
        .and_then(|k| caja_shared::key::DeviceKey::from_hex(k).ok())
        .ok_or_else(|| SimError("rotate answer without a key".into()))?;
    w.regs[reg].ops = None;
    w.regs[reg].sync = None;
    caja_node::datadir::rekey(&w.regs[reg].data, &key_id, &key)
        .map_err(|e| SimError(format!("r{reg} rekey: {e}")))?;
    w.work.add(Work::KeyRotation);
    w.log(format!(
        "r{reg} key rotated to {key_id}{} and installed",
        if no_grace { " (no grace)" } else { "" }
    ));
    w.open_register(reg)
}

/// The hub's clock jumps forward or back (up to 5 minutes away from the
/// world's time, so a step back is at most the 10 minutes the stale-price
/// re-decision assumes, `docs/conflicts.md`): registers' skew correction,
/// grants' lifetimes, tree heads and the audit log must not depend on the
/// hub's wall-clock order (the checker holds every chain's HLC order and
/// the projections to it).
fn hub_clock_jump(w: &mut World) {
    let jump = w.rand_range(-600_000, 600_000);
    w.hub_offset_ms = (w.hub_offset_ms + jump).clamp(-300_000, 300_000);
    w.advance(0);
    w.work.add(Work::HubClockJump);
    w.log(format!(
        "hub clock jumps {jump} ms (offset {})",
        w.hub_offset_ms
    ));
}

/// A cashier's sale of 1–3 random lines at `reg` (and sometimes the UI's
/// retry of it), recorded when acknowledged.
pub fn sell(w: &mut World, reg: usize) -> Result<(), SimError> {
    sell_as(w, reg, None)
}

/// [`sell`] on a document other than the register's default (an e-CF
/// series, `sim::ecf`): signed in the sale's transaction.
pub fn sell_as(w: &mut World, reg: usize, doc: Option<Document>) -> Result<(), SimError> {
    let lines_n = 1 + w.pick(3);
    let mut lines = Vec::new();
    for _ in 0..lines_n {
        let (_, code, weighed) = PRODUCTS[w.pick(PRODUCTS.len())];
        let qty_milli = if weighed {
            w.rand_range(50, 2_500)
        } else {
            1000 * w.rand_range(1, 3)
        };
        lines.push(LineRequest {
            code: code.into(),
            qty_milli,
            discount: None,
            unit_price: None,
        });
    }
    let mut payments = Vec::new();
    let mut customer = None;
    let kind = w.pick(10);
    let fiado_to = if kind < 2 { w.any_customer(reg) } else { None };
    if let Some(c) = fiado_to {
        customer = Some(c);
        payments.push(PaymentRequest {
            method: PaymentMethod::Fiado,
            amount: w.rand_range(100, 5_000),
            reference: None,
        });
    } else if kind < 4 {
        // Card: the terminal's authorization code, exact amount unknown to
        // the dice, so cash covers the rest.
        payments.push(PaymentRequest {
            method: PaymentMethod::Card,
            amount: w.rand_range(100, 2_000),
            reference: Some(super::pay::fresh_code(w)),
        });
    }
    payments.push(PaymentRequest {
        method: PaymentMethod::Cash,
        amount: 10_000_000,
        reference: None,
    });
    // Sometimes the cashier charges another price than the shelf's on the
    // first line: a supervisor's override (or a PIN that does not approve).
    let overridden = w.chance(50);
    if overridden {
        lines[0].unit_price = Some(w.rand_range(1, 400) * 100 + 1);
    }
    let cred = overridden.then(|| supervisor(w));
    let req = SaleRequest {
        lines,
        payments,
        discount: None,
        customer,
    };
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    let sell = |ops: &mut super::world::SimRegisterOps| {
        if overridden || doc.is_some() {
            let d = doc.clone().unwrap_or_default();
            ops.sell_approved(op, &req, &d, cred.as_ref().map(|c| &c.0))
        } else {
            ops.sell(op, &req)
        }
    };
    match sell(ops) {
        Ok(r) => {
            w.log(format!(
                "r{reg} sale seq {} total {} fiscal {:?}{}",
                r.seq,
                r.total.0,
                r.fiscal_number,
                if overridden { " price override" } else { "" }
            ));
            w.ack(
                reg,
                "sale",
                &[r.seq],
                Some(r.sale_id),
                r.fiscal_number.clone(),
            )?;
            if doc.is_some() {
                w.checks += 1;
                match r.fiscal_number.as_deref() {
                    Some(n) if n.starts_with('E') => w.work.add(Work::EcfIssued),
                    other => {
                        return Err(SimError(format!(
                            "r{reg}: an electronic sale was acknowledged with {other:?}"
                        )))
                    }
                }
            }
            if overridden {
                approved(w, "price_override", cred.as_ref())?;
            }
            if let Some(card) = req
                .payments
                .iter()
                .find(|p| p.method == PaymentMethod::Card)
            {
                super::pay::card_sale(w, reg, &r, card)?;
            }
            // The UI retries: once at once, and sometimes after the process
            // died between the commit and the answer.
            if w.chance(60) {
                let crash = w.chance(500);
                if crash {
                    w.crash_register(reg)?;
                }
                lock(&w.net).counts.add(Fault::OpRetry);
                let again = sell(
                    w.regs[reg]
                        .ops
                        .as_mut()
                        .ok_or_else(|| SimError("register closed".into()))?,
                )
                .map_err(|e| SimError(format!("r{reg} retried sale failed: {e}")))?;
                w.checks += 1;
                if again != r {
                    return Err(SimError(format!(
                        "invariant 9: r{reg} retried op {op} answered {again:?}, first {r:?}"
                    )));
                }
                w.log(format!(
                    "r{reg} retry of sale seq {} answered the same",
                    r.seq
                ));
            }
            Ok(())
        }
        Err(OpError::Refused(Refusal::EcfUnavailable(e))) => {
            // Every register is an issuer with a valid certificate.
            Err(SimError(format!("r{reg}: an electronic sale refused: {e}")))
        }
        Err(OpError::Refused(Refusal::ShiftNotOpen)) => {
            // The cashier signs in and opens a shift first.
            open_shift(w, reg, Money(20_000))
        }
        Err(e) => refused_or_pin(w, reg, "sale", &e, cred.as_ref()),
    }
}

fn void(w: &mut World, reg: usize) -> Result<(), SimError> {
    let mine: Vec<_> = w
        .acked
        .iter()
        .filter(|a| a.reg == reg && !a.lost && a.sale.is_some())
        .filter_map(|a| a.sale)
        .filter(|s| !w.voided.contains(s))
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    let sale = mine[w.pick(mine.len()).min(mine.len() - 1)];
    // Mostly recent sales.
    let sale = if w.chance(700) {
        mine[mine.len() - 1]
    } else {
        sale
    };
    let cred = supervisor(w);
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.void_approved(op, sale, "cliente se arrepintió", Some(&cred.0)) {
        Ok(r) => {
            w.log(format!("r{reg} void seq {:?}", r.seqs));
            w.voided.push(sale);
            w.ack(reg, "void", &r.seqs, None, None)?;
            approved(w, "void", Some(&cred))
        }
        Err(e) => refused_or_pin(w, reg, "void", &e, Some(&cred)),
    }
}

fn pay_debt(w: &mut World, reg: usize) -> Result<(), SimError> {
    let Some(c) = w.any_customer(reg) else {
        return Ok(());
    };
    let amount = w.rand_range(50, 3_000);
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.pay_debt(op, c, Money(amount), PaymentMethod::Cash) {
        Ok(r) => {
            w.log(format!("r{reg} debt payment seq {:?}", r.seqs));
            w.ack(reg, "debt_payment", &r.seqs, None, None)
        }
        Err(e) => w.refused(reg, "debt payment", &e),
    }
}

fn customer(w: &mut World, reg: usize) -> Result<(), SimError> {
    let existing = if w.chance(300) {
        w.any_customer(reg)
    } else {
        None
    };
    let n = w.customers.len();
    let req = CustomerRequest {
        customer_id: existing,
        name: format!("Cliente {n}"),
        phone: None,
        tax_id: None,
        credit_limit: w.rand_range(5_000, 50_000),
    };
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.upsert_customer(op, &req) {
        Ok(r) => {
            w.log(format!("r{reg} customer seq {}", r.seq));
            if existing.is_none() {
                w.customers.push((reg, r.customer_id));
            }
            w.ack(reg, "customer", &[r.seq], None, None)
        }
        Err(e) => w.refused(reg, "customer", &e),
    }
}

fn receive(w: &mut World, reg: usize) -> Result<(), SimError> {
    let (sku, _, weighed) = PRODUCTS[w.pick(PRODUCTS.len())];
    let qty = if weighed {
        w.rand_range(1_000, 10_000)
    } else {
        1000 * w.rand_range(2, 12)
    };
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.receive_stock(op, sku, QtyMilli(qty), Some("factura")) {
        Ok(r) => {
            w.log(format!(
                "r{reg} stock received {sku} {qty} seq {:?}",
                r.seqs
            ));
            w.ack(reg, "stock_receive", &r.seqs, None, None)
        }
        Err(e) => w.refused(reg, "stock receive", &e),
    }
}

fn count(w: &mut World, reg: usize) -> Result<(), SimError> {
    let (sku, _, weighed) = PRODUCTS[w.pick(PRODUCTS.len())];
    let counted = if weighed {
        w.rand_range(0, 8_000)
    } else {
        1000 * w.rand_range(0, 8)
    };
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.count_stock(op, sku, QtyMilli(counted)) {
        Ok(r) => {
            let delta = event_delta(ops.conn(), r.seqs[0]);
            w.log(format!(
                "r{reg} stock count {sku} {counted} (delta {delta})"
            ));
            w.ack(reg, "stock_count", &r.seqs, None, None)
        }
        Err(e) => w.refused(reg, "stock count", &e),
    }
}

/// The `delta_milli` of a `StockCounted` in the journal.
fn event_delta(conn: &rusqlite::Connection, seq: u64) -> i64 {
    caja_node::journal::Journal::event(conn, seq)
        .ok()
        .flatten()
        .and_then(|e| {
            e.value()
                .get("body")
                .and_then(|b| b.get("delta_milli"))
                .and_then(caja_shared::canonical::Value::as_i64)
        })
        .unwrap_or(0)
}

fn shift(w: &mut World, reg: usize) -> Result<(), SimError> {
    let op = w.op_id();
    let counted = w.rand_range(0, 100_000);
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    let open = ops
        .status()
        .map_err(|e| SimError(format!("r{reg} status: {e}")))?
        .open_shift
        .is_some();
    if !open {
        return open_shift(w, reg, Money(50_000));
    }
    // Shifts are opened by cashiers: the supervisor's close is an override
    // (another person's shift); a cashier closes their own or is refused.
    let who = w.pick(STAFF.len());
    let right = !w.chance(PIN_WRONG_PER_MILLE);
    let supervising = STAFF[who].1 != Role::Cashier;
    // A cashier with the right PIN passes for their own shift only.
    let cred = (credentials(who, right), right && supervising);
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.close_shift_as(op, Money(counted), Some(&cred.0)) {
        Ok(r) => {
            w.log(format!(
                "r{reg} shift closed seq {} by {}",
                r.seq, STAFF[who].0
            ));
            w.ack(reg, "shift_close", &[r.seq], None, None)?;
            w.checks += 1;
            if !right {
                return Err(SimError(format!("r{reg} shift closed with a wrong PIN")));
            }
            if supervising {
                approved(w, "close_shift", Some(&cred))?;
            }
            Ok(())
        }
        Err(e) => refused_or_pin(w, reg, "shift close", &e, Some(&cred)),
    }
}

/// Per-mille chance that a PIN typed is wrong.
const PIN_WRONG_PER_MILLE: u64 = 60;

/// A supervisor's credentials, sometimes with a wrong PIN, sometimes a
/// cashier's instead (a role too low); the flag is whether they should
/// pass.
fn supervisor(w: &mut World) -> (Credentials, bool) {
    if w.chance(PIN_WRONG_PER_MILLE) {
        return (credentials(2, false), false);
    }
    if w.chance(PIN_WRONG_PER_MILLE) {
        let cashier = w.pick(2);
        return (credentials(cashier, true), false);
    }
    (credentials(2, true), true)
}

/// Marks the last acknowledged operation as carrying `action`'s approval,
/// given with `cred` (which had to pass).
fn approved(
    w: &mut World,
    action: &'static str,
    cred: Option<&(Credentials, bool)>,
) -> Result<(), SimError> {
    w.checks += 1;
    if cred.is_some_and(|c| !c.1) {
        return Err(SimError(format!(
            "{action} acknowledged with credentials that do not pass (a wrong PIN or a cashier's)"
        )));
    }
    if let Some(a) = w.acked.last_mut() {
        a.approved = Some(action);
    }
    w.work.add(Work::SupervisorOverride);
    Ok(())
}

/// A refusal; with credentials that should not pass, it must be the PIN's
/// or the role's (counted), and with credentials that should, never.
fn refused_or_pin(
    w: &mut World,
    reg: usize,
    what: &str,
    e: &OpError,
    cred: Option<&(Credentials, bool)>,
) -> Result<(), SimError> {
    let pin_refusal = matches!(
        e,
        OpError::Refused(Refusal::Staff(_) | Refusal::ApprovalRequired(_))
    );
    // A lockout (five wrong PINs in a row) refuses even the right PIN.
    let locked = matches!(
        e,
        OpError::Refused(Refusal::Staff(caja_node::staff::StaffError::Locked { .. }))
    );
    if let Some((_, should_pass)) = cred {
        w.checks += 1;
        if pin_refusal && *should_pass && !locked {
            return Err(SimError(format!(
                "r{reg} {what}: credentials that pass were answered {e}"
            )));
        }
    }
    if pin_refusal {
        w.work.add(Work::PinRefused);
    }
    w.refused(reg, what, e)
}

/// A cashier signs in with their PIN (sometimes mistyped) and opens a shift.
fn open_shift(w: &mut World, reg: usize, float: Money) -> Result<(), SimError> {
    let who = w.pick(2);
    let right = !w.chance(PIN_WRONG_PER_MILLE);
    let cred = (credentials(who, right), right);
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.open_shift_signed(op, &cred.0, float) {
        Ok(r) => {
            w.log(format!(
                "r{reg} {} signed in, shift opened seq {}",
                STAFF[who].0, r.seq
            ));
            w.work.add(Work::PinSignIn);
            w.ack(reg, "shift_open", &[r.seq], None, None)
        }
        Err(e) => refused_or_pin(w, reg, "shift open", &e, Some(&cred)),
    }
}

fn price_change(w: &mut World) -> Result<(), SimError> {
    let (sku, _, _) = PRODUCTS[w.pick(PRODUCTS.len())];
    let price = w.rand_range(50, 500) * 100;
    let r = lock(&w.net).hub.admin(
        "POST",
        "/v1/admin/catalog",
        Some(&serde_json::json!({"items": [], "prices": [{"product": sku, "unit_price": price}]})),
    );
    match r {
        Ok(_) => {
            w.log(format!("hub: price of {sku} set to {price}"));
            Ok(())
        }
        Err(e) if !lock(&w.net).hub.is_up() => {
            w.log(format!(
                "hub: price change while down: {}",
                first_words(&e.0)
            ));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn catalog_rename(w: &mut World) -> Result<(), SimError> {
    let i = w.pick(caja_node::testkit::SAMPLE_CATALOG.len());
    let (sku, barcode, name, _, bp, sold_by, policy) = caja_node::testkit::SAMPLE_CATALOG[i];
    let n = w.step;
    let item = serde_json::json!({
        "product": sku,
        "name": format!("{name} ({n})"),
        "barcodes": barcode.into_iter().collect::<Vec<_>>(),
        "tax_bp": bp,
        "sold_by": sold_by,
        "policy": policy,
    });
    let r = lock(&w.net).hub.admin(
        "POST",
        "/v1/admin/catalog",
        Some(&serde_json::json!({"items": [item], "prices": []})),
    );
    match r {
        Ok(_) => {
            w.log(format!("hub: item {sku} renamed"));
            Ok(())
        }
        Err(e) if !lock(&w.net).hub.is_up() => {
            w.log(format!("hub: rename while down: {}", first_words(&e.0)));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A customer brings back part of a sale's first line, at this register or
/// another one of its store (which knows the sale once synced).
fn return_goods(w: &mut World, reg: usize) -> Result<(), SimError> {
    let store = w.regs[reg].store;
    let sales: Vec<SaleId> = w
        .acked
        .iter()
        .filter(|a| !a.lost && w.regs[a.reg].store == store)
        .filter_map(|a| a.sale)
        .collect();
    if sales.is_empty() {
        return Ok(());
    }
    let sale = sales[w.pick(sales.len())];
    let req = ReturnRequest {
        sale: sale.to_string(),
        lines: vec![ReturnLineRequest {
            line: 0,
            qty_milli: w.rand_range(1, 2) * 250,
            damaged: w.chance(200),
        }],
        refund: PaymentMethod::Cash,
        modified_date: None,
        buyer_tax_id: None,
        buyer_name: None,
        customer: None,
        unknown_original: Vec::new(),
    };
    let cred = supervisor(w);
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.return_sale(op, &req, Some(&cred.0)) {
        Ok(r) => {
            w.log(format!(
                "r{reg} return seq {} total {} credit note {:?}",
                r.seq, r.total.0, r.credit_note
            ));
            if r.credit_note.as_deref().is_some_and(|n| n.starts_with('E')) {
                w.work.add(Work::EcfCreditNote);
            }
            w.ack(reg, "return", &[r.seq], None, r.credit_note.clone())?;
            approved(w, "return", Some(&cred))
        }
        Err(e) => refused_or_pin(w, reg, "return", &e, Some(&cred)),
    }
}

fn cash_move(w: &mut World, reg: usize) -> Result<(), SimError> {
    let kind = [
        CashMovement::PaidIn,
        CashMovement::PaidOut,
        CashMovement::Drop,
    ][w.pick(3)];
    let amount = w.rand_range(100, 20_000);
    let paid_out = kind == CashMovement::PaidOut;
    let cred = paid_out.then(|| supervisor(w));
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.cash_move(
        op,
        kind,
        Money(amount),
        "caja chica",
        cred.as_ref().map(|c| &c.0),
    ) {
        Ok(r) => {
            w.log(format!("r{reg} cash {kind:?} {amount} seq {:?}", r.seqs));
            w.ack(reg, "cash_move", &r.seqs, None, None)?;
            if paid_out {
                approved(w, "paid_out", cred.as_ref())?;
            }
            Ok(())
        }
        Err(e) => refused_or_pin(w, reg, "cash movement", &e, cred.as_ref()),
    }
}

fn release_fiscal(w: &mut World, reg: usize) -> Result<(), SimError> {
    let op = w.op_id();
    let Some(ops) = w.regs[reg].ops.as_mut() else {
        return Ok(());
    };
    match ops.release_fiscal(op) {
        Ok(r) => {
            w.log(format!("r{reg} released {} fiscal ranges", r.len()));
            Ok(())
        }
        Err(e) => w.refused(reg, "fiscal release", &e),
    }
}

/// One fault of the safety phase, or none.
pub fn fault(w: &mut World) -> Result<(), SimError> {
    let reg = w.pick(w.regs.len());
    let roll = w.rand_range(0, 999);
    match roll {
        0..=249 => {
            let mut n = lock(&w.net);
            let cut = !n.partitioned[reg];
            n.partitioned[reg] = cut;
            if cut {
                n.counts.add(Fault::Partition);
            }
            drop(n);
            w.log(format!(
                "r{reg} network {}",
                if cut { "partitioned" } else { "healed" }
            ));
        }
        250..=369 => w.crash_register(reg)?,
        370..=429 => {
            if w.hub_down_steps == 0 {
                let down = u64::try_from(w.rand_range(1, 6)).unwrap_or(1);
                let which = lock(&w.net).hub.crash();
                lock(&w.net).counts.add(Fault::HubCrash);
                w.hub_down_steps = down;
                w.log(format!("{which} crashed, down for {down} steps"));
            }
        }
        430..=579 => {
            let jump = w.rand_range(-600_000, 600_000);
            let r = &mut w.regs[reg];
            r.offset_ms = (r.offset_ms + jump).clamp(-600_000, 600_000);
            let off = r.offset_ms;
            lock(&w.net).counts.add(Fault::ClockJump);
            w.log(format!("r{reg} clock jumps {jump} ms (offset {off})"));
        }
        580..=699 => w.backup_register(reg)?,
        700..=799 => {
            let n = w.regs[reg].backups.len();
            if n > 0 {
                let which = w.pick(n);
                w.restore_register(reg, which)?;
            }
        }
        940..=959 => super::faults::register_disk_fault(w, reg)?,
        960..=979 => super::faults::hub_disk_fault(w, reg)?,
        800..=849 => hub_clock_jump(w),
        980..=999 => disk_full(w, reg)?,
        _ => {
            let n = w.pick(3) + 1;
            lock(&w.net).release_delayed(n);
        }
    }
    Ok(())
}

/// Pins (or frees) the database size of register `reg`: a full disk.
fn set_disk_full(w: &mut World, reg: usize, full: bool) -> Result<(), SimError> {
    let sql = if full {
        "PRAGMA max_page_count = 1"
    } else {
        "PRAGMA max_page_count = 4294967294"
    };
    if let Some(ops) = w.regs[reg].ops.as_ref() {
        ops.conn()
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(|e| SimError(format!("r{reg} max_page_count: {e}")))?;
    }
    w.regs[reg].disk_full = full;
    Ok(())
}

/// A full disk under one register for a few sales: each either fits in the
/// database's free pages (acknowledged as usual) or is refused for the disk
/// (`World::refused`); then the disk has room again. The checker finds
/// every acknowledged sale and nothing half-applied as after any step.
fn disk_full(w: &mut World, reg: usize) -> Result<(), SimError> {
    if w.regs[reg].ops.is_none() {
        return Ok(());
    }
    set_disk_full(w, reg, true)?;
    lock(&w.net).counts.add(Fault::DiskFull);
    w.log(format!("r{reg} disk full"));
    let n = 1 + w.pick(3);
    let mut outcome = Ok(());
    for _ in 0..n {
        outcome = sell(w, reg);
        if outcome.is_err() {
            break;
        }
    }
    set_disk_full(w, reg, false)?;
    w.log(format!("r{reg} disk has room again"));
    outcome
}
