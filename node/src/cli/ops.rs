//! The commands that are register operations: shifts, selling, voids,
//! returns, the drawer, cash, fiado payments, stock, customers, receipts,
//! printing, fiscal numbers and the Z report — one function each.
//!
//! Invariant: each parses its arguments, calls one `Register` operation and
//! prints its result; the rules live in the register, not here.

use std::io::Read;

use caja_node::devices;
use caja_node::messages;
use caja_node::register::CustomerRequest;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::{Money, QtyMilli};

use super::args::{
    ApproverArg, CashArgs, CreditArgs, CustomerArgs, DebtPayArgs, DrawerManualArgs, DrawerOpenArgs,
    FiscalReleaseArgs, PrintArgs, ReceiptReprintArgs, ReceiptShowArgs, ReturnArgs, SellArgs,
    ShiftCloseArgs, ShiftOpenArgs, StockCountArgs, StockReceiveArgs, VoidArgs, ZReportArgs,
};
use super::common::{
    approver_credentials, credentials, device_failure, emit, op_id, open, print_after, refused,
    scale_settings, sync_engine, Ctx, Failure, Node,
};
use caja_node::error::OpError;

/// `caja-node shift open`.
pub(crate) fn shift_open(cx: &Ctx, args: ShiftOpenArgs) -> Result<(), Failure> {
    let ShiftOpenArgs {
        cashier,
        pin,
        opening_float,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let mut node = open(dir)?;
    let r = match pin {
        Some(pin) => {
            let cred = credentials(&node, &cashier, pin)?;
            node.open_shift_signed(id, &cred, opening_float)?
        }
        None => node.open_shift(id, &cashier, opening_float)?,
    };
    emit(json, &r, messages::shift_opened)
}

/// `caja-node return`.
pub(crate) fn return_sale(cx: &Ctx, args: ReturnArgs) -> Result<(), Failure> {
    let ReturnArgs {
        sale,
        lines,
        products,
        refund,
        customer,
        modified_date,
        buyer,
        buyer_name,
        approver,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let mut node = open(dir)?;
    let mut parsed = Vec::new();
    for l in &lines {
        parsed.push(return_line(l)?);
    }
    let mut unknown = Vec::new();
    for p in &products {
        unknown.push(return_product(p)?);
    }
    let refund = match refund.as_str() {
        "cash" | "efectivo" => PaymentMethod::Cash,
        "card" | "tarjeta" => PaymentMethod::Card,
        "transfer" | "transferencia" => PaymentMethod::Transfer,
        "store_credit" | "credito" => PaymentMethod::StoreCredit,
        other => {
            return Err(refused(format!(
                "Forma de reembolso desconocida: {other} (cash, card, transfer o store_credit)."
            )))
        }
    };
    let cred = approver_credentials(&node, approver)?;
    let r = node.return_sale(
        id,
        &caja_node::register::ReturnRequest {
            sale,
            lines: parsed,
            refund,
            customer,
            unknown_original: unknown,
            modified_date,
            buyer_tax_id: buyer,
            buyer_name,
        },
        cred.as_ref(),
    )?;
    emit(json, &r, messages::return_done)?;
    // Committed: the return's slip goes out with the print queue (a printer
    // problem is a warning; the slip stays queued).
    print_after(&mut node, json);
    Ok(())
}

/// `caja-node drawer open`.
pub(crate) fn drawer_open(cx: &Ctx, args: DrawerOpenArgs) -> Result<(), Failure> {
    let DrawerOpenArgs {
        reason,
        approver,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let mut node = open(dir)?;
    let cred = approver_credentials(&node, approver)?;
    let r = node.open_drawer(id, &reason, cred.as_ref())?;
    emit(json, &r, messages::drawer_opened)?;
    // Committed: the kick goes out with the print queue (a printer
    // problem is a warning; the job stays queued).
    print_after(&mut node, json);
    Ok(())
}

/// `caja-node drawer manual`.
pub(crate) fn drawer_manual(cx: &Ctx, args: DrawerManualArgs) -> Result<(), Failure> {
    let mut node = open(&cx.dir)?;
    let r = node.record_manual_drawer(args.sale)?;
    emit(cx.json, &r, messages::drawer_manual)
}

/// `caja-node credit`.
pub(crate) fn credit(cx: &Ctx, args: CreditArgs) -> Result<(), Failure> {
    let CreditArgs { customer } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let balance = open(dir)?.store_credit_balance(customer)?;
    emit(
        json,
        &serde_json::json!({"customer": customer, "store_credit": balance}),
        |_| messages::store_credit(customer, balance),
    )
}

/// `caja-node cash`.
pub(crate) fn cash(cx: &Ctx, args: CashArgs) -> Result<(), Failure> {
    let CashArgs {
        kind,
        amount,
        reason,
        approver,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let mut node = open(dir)?;
    let kind = match kind.as_str() {
        "in" => caja_shared::kind::CashMovement::PaidIn,
        "out" => caja_shared::kind::CashMovement::PaidOut,
        "drop" => caja_shared::kind::CashMovement::Drop,
        other => {
            return Err(refused(format!(
                "Movimiento desconocido: {other} (in, out o drop)."
            )))
        }
    };
    let cred = approver_credentials(&node, approver)?;
    let r = node.cash_move(id, kind, amount, &reason, cred.as_ref())?;
    emit(json, &r, |r| messages::written("Movimiento de efectivo", r))
}

/// `caja-node shift close`.
pub(crate) fn shift_close(cx: &Ctx, args: ShiftCloseArgs) -> Result<(), Failure> {
    let ShiftCloseArgs {
        counted,
        by,
        pin,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let mut node = open(dir)?;
    let cred = approver_credentials(
        &node,
        ApproverArg {
            approver: by,
            approver_pin: pin,
        },
    )?;
    let r = node.close_shift_as(id, counted, cred.as_ref())?;
    emit(json, &r, |r| {
        format!(
            "{}\n{}",
            messages::shift_closed(r),
            messages::z_report(&r.z)
        )
    })
}

/// `caja-node sell`.
pub(crate) fn sell(cx: &Ctx, a: SellArgs) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    let mut req = sale_request(&a)?;
    let mut node = open(dir)?;
    // Weighed before the sale: a scale problem refuses it, unchanged.
    weigh_lines(&node, &a.weigh, &mut req, json)?;
    if a.repeat > 1 && a.op.op.is_some() {
        return Err(refused(
            "--repeat hace ventas distintas: no se combina con --op.",
        ));
    }
    let doc = caja_node::register::Document {
        series: a.doc.clone(),
        buyer_tax_id: a.buyer.clone(),
        buyer_name: a.buyer_name.clone(),
    };
    let cred = approver_credentials(
        &node,
        ApproverArg {
            approver: a.approver.approver.clone(),
            approver_pin: a.approver.approver_pin.clone(),
        },
    )?;
    let provider = match &a.provider {
        Some(p) => Some(p.clone()),
        None => {
            caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
                .map_err(|e| Failure::from(OpError::from(e)))?
                .payment_provider
        }
    };
    if a.repeat > 1 {
        // A selling loop: its WAL checkpoints off the sales' commits.
        node.start_checkpointer(caja_node::checkpointer::CheckpointPolicy::default())?;
    }
    for _ in 0..a.repeat.max(1) {
        let id = op_id(&a.op)?;
        let r = node.sell_approved(id, &req, &doc, cred.as_ref())?;
        emit(json, &r, messages::sale_done)?;
        if let Some(provider) = &provider {
            sale_intents(cx, r.sale_id, provider, &req)?;
        }
    }
    // The sale is committed: a printer problem is only a warning, the
    // receipt stays queued.
    print_after(&mut node, json);
    Ok(())
}

/// After a sale is durable: an intent per card and transfer/QR payment
/// while the hub answers; offline, the sale's references stand (the hub
/// reconciles them). Never fails the sale.
fn sale_intents(
    cx: &Ctx,
    sale: caja_shared::ids::SaleId,
    provider: &str,
    req: &SaleRequest,
) -> Result<(), Failure> {
    let payments: Vec<_> = req
        .payments
        .iter()
        .map(|p| (p.method, Money(p.amount), p.reference.clone()))
        .collect();
    if !payments
        .iter()
        .any(|(m, _, _)| caja_node::sync::intents::needs_intent(*m))
    {
        return Ok(());
    }
    let intents = match sync_engine(&cx.dir) {
        Ok(mut engine) => engine.create_sale_intents(sale, provider, &payments),
        Err(f) => payments
            .iter()
            .enumerate()
            .filter(|(_, (m, _, _))| caja_node::sync::intents::needs_intent(*m))
            .map(
                |(index, (method, amount, reference))| caja_node::sync::intents::SaleIntent {
                    index,
                    method: *method,
                    amount: *amount,
                    reference: reference.clone(),
                    intent_id: None,
                    error: Some(f.message.clone()),
                },
            )
            .collect(),
    };
    emit(
        cx.json,
        &serde_json::json!({"sale": sale, "payment_intents": intents}),
        |_| messages::sale_intents(&intents),
    )
}

/// `caja-node fiscal status`.
pub(crate) fn fiscal_status(cx: &Ctx) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    // JSON: the series left, as before; the documents' verdicts are
    // in `caja-node status --json` (`fiscal_documents`).
    let st = open(dir)?.status()?;
    let docs = st.fiscal_documents.clone();
    emit(json, &st.fiscal, |f| messages::status_fiscal(f, &docs))
}

/// `caja-node fiscal release`.
pub(crate) fn fiscal_release(cx: &Ctx, args: FiscalReleaseArgs) -> Result<(), Failure> {
    let FiscalReleaseArgs { op } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let r = open(dir)?.release_fiscal(id)?;
    emit(json, &r, |r| messages::fiscal_released(r))
}

/// `caja-node receipt show`.
pub(crate) fn receipt_show(cx: &Ctx, args: ReceiptShowArgs) -> Result<(), Failure> {
    let ReceiptShowArgs { sale } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let text = open(dir)?.receipt_text(sale)?;
    if json {
        emit(
            json,
            &serde_json::json!({"sale": sale, "text": text}),
            |_| String::new(),
        )
    } else {
        emit(json, &text, |t| t.trim_end().to_owned())
    }
}

/// `caja-node receipt reprint`.
pub(crate) fn receipt_reprint(cx: &Ctx, args: ReceiptReprintArgs) -> Result<(), Failure> {
    let ReceiptReprintArgs { sale } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let mut node = open(dir)?;
    let job = node.reprint(sale)?;
    emit(
        json,
        &serde_json::json!({"sale": sale, "job": job.0}),
        |_| messages::reprint_queued(sale, job),
    )?;
    print_after(&mut node, json);
    Ok(())
}

/// `caja-node print`.
pub(crate) fn print_due(cx: &Ctx, args: PrintArgs) -> Result<(), Failure> {
    let PrintArgs { retry_failed } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let mut node = open(dir)?;
    if retry_failed {
        let n = node.retry_failed_prints()?;
        if !json {
            emit(json, &n, |n| messages::prints_retried(*n))?;
        }
    }
    let r = node.print_now()?;
    emit(json, &r, messages::print_run)
}

/// `caja-node void`.
pub(crate) fn void(cx: &Ctx, args: VoidArgs) -> Result<(), Failure> {
    let VoidArgs {
        sale,
        reason,
        approver,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let mut node = open(dir)?;
    let cred = approver_credentials(&node, approver)?;
    let r = node.void_approved(id, sale, &reason, cred.as_ref())?;
    emit(json, &r, |r| messages::written("Anulación", r))
}

/// `caja-node debt pay`.
pub(crate) fn debt_pay(cx: &Ctx, args: DebtPayArgs) -> Result<(), Failure> {
    let DebtPayArgs {
        customer,
        amount,
        method,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let method = match method.as_str() {
        "cash" | "efectivo" => PaymentMethod::Cash,
        "card" | "tarjeta" => PaymentMethod::Card,
        "transfer" | "transferencia" => PaymentMethod::Transfer,
        other => return Err(refused(format!("Método de pago desconocido: {other}."))),
    };
    let id = op_id(&op)?;
    let r = open(dir)?.pay_debt(id, customer, amount, method)?;
    emit(json, &r, messages::debt_paid)
}

/// `caja-node stock receive`.
pub(crate) fn stock_receive(cx: &Ctx, args: StockReceiveArgs) -> Result<(), Failure> {
    let StockReceiveArgs {
        product,
        qty,
        reference,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let r = open(dir)?.receive_stock(id, &product, qty, reference.as_deref())?;
    emit(json, &r, |r| {
        messages::written("Recepción de inventario", r)
    })
}

/// `caja-node stock count`.
pub(crate) fn stock_count(cx: &Ctx, args: StockCountArgs) -> Result<(), Failure> {
    let StockCountArgs { product, qty, op } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let id = op_id(&op)?;
    let r = open(dir)?.count_stock(id, &product, qty)?;
    emit(json, &r, |r| messages::written("Conteo de inventario", r))
}

/// `caja-node customer`.
pub(crate) fn customer(cx: &Ctx, args: CustomerArgs) -> Result<(), Failure> {
    let CustomerArgs {
        id,
        name,
        phone,
        tax_id,
        credit_limit,
        op,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let op = op_id(&op)?;
    let r = open(dir)?.upsert_customer(
        op,
        &CustomerRequest {
            customer_id: id,
            name,
            phone,
            tax_id,
            credit_limit: credit_limit.0,
        },
    )?;
    emit(json, &r, messages::customer_saved)
}

/// `caja-node z-report`.
pub(crate) fn z_report(cx: &Ctx, args: ZReportArgs) -> Result<(), Failure> {
    let ZReportArgs { shift } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let z = open(dir)?.z_report(shift)?;
    emit(json, &z, messages::z_report)
}

pub(crate) fn parse_item(s: &str) -> Result<LineRequest, Failure> {
    let (s, unit_price) = match s.split_once('@') {
        Some((item, price)) => (
            item,
            Some(
                price
                    .parse::<Money>()
                    .map_err(|e| refused(format!("Precio inválido en «{s}»: {e}.")))?
                    .0,
            ),
        ),
        None => (s, None),
    };
    let (code, qty) = match s.split_once(':') {
        Some((c, q)) => (
            c,
            q.parse::<QtyMilli>()
                .map_err(|e| refused(format!("Cantidad inválida en «{s}»: {e}.")))?,
        ),
        None => (s, QtyMilli::ONE),
    };
    Ok(LineRequest {
        code: code.to_owned(),
        qty_milli: qty.0,
        discount: None,
        unit_price,
    })
}

pub(crate) fn sale_request(a: &SellArgs) -> Result<SaleRequest, Failure> {
    if a.stdin {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|e| refused(format!("No se pudo leer la venta de stdin: {e}.")))?;
        return serde_json::from_str(&buf)
            .map_err(|e| refused(format!("La venta en JSON es inválida: {e}.")));
    }
    let lines = a
        .items
        .iter()
        .map(|s| parse_item(s))
        .collect::<Result<_, _>>()?;
    let mut payments = Vec::new();
    let mut push = |method, amount: Option<Money>, reference: Option<String>| {
        if let Some(m) = amount {
            payments.push(PaymentRequest {
                method,
                amount: m.0,
                reference,
            });
        }
    };
    push(PaymentMethod::Cash, a.cash, None);
    let card_ref = match (&a.card_terminal, &a.card_ref) {
        (Some(t), Some(code)) => {
            if t.is_empty() || t.contains(':') || t.chars().any(char::is_control) {
                return Err(refused(
                    "--card-terminal: el id de la terminal no puede estar vacío ni llevar «:».",
                ));
            }
            Some(format!("{t}:{code}"))
        }
        (Some(_), None) => {
            return Err(refused(
                "--card-terminal va con --card-ref (el código de autorización).",
            ))
        }
        (None, r) => r.clone(),
    };
    push(PaymentMethod::Card, a.card, card_ref);
    push(PaymentMethod::Transfer, a.transfer, a.transfer_ref.clone());
    push(PaymentMethod::Fiado, a.fiado, None);
    push(PaymentMethod::StoreCredit, a.store_credit, None);
    Ok(SaleRequest {
        lines,
        payments,
        discount: a.discount.map(|d| d.0),
        customer: a.customer,
    })
}

/// Reads each `--weigh` item's weight from the scale and adds its line. Any
/// scale problem refuses the whole sale before it starts.
pub(crate) fn weigh_lines(
    node: &Node,
    codes: &[String],
    req: &mut SaleRequest,
    json: bool,
) -> Result<(), Failure> {
    if codes.is_empty() {
        return Ok(());
    }
    let scale = scale_settings(node)?;
    for code in codes {
        let line = devices::weigh_line(node.conn(), code, scale.as_ref())
            .map_err(|e| device_failure(&e))?;
        if !json {
            eprintln!("{}", messages::weighed(code, line.qty_milli));
        }
        req.lines.push(line);
    }
    Ok(())
}

/// `CODE:QTY[@PRICE][:damaged]` of `caja-node return --product`.
pub(crate) fn return_product(
    s: &str,
) -> Result<caja_node::register::ProductReturnRequest, Failure> {
    let bad = || {
        refused(format!(
            "Producto inválido: {s} (use CÓDIGO:CANTIDAD[@PRECIO][:damaged])."
        ))
    };
    let (rest, damaged) = match s.strip_suffix(":damaged") {
        Some(r) => (r, true),
        None => (s, false),
    };
    let (rest, unit_price) = match rest.split_once('@') {
        Some((r, p)) => (r, Some(p.parse::<Money>().map_err(|_| bad())?.0)),
        None => (rest, None),
    };
    let (code, qty) = rest.split_once(':').ok_or_else(bad)?;
    if code.is_empty() {
        return Err(bad());
    }
    Ok(caja_node::register::ProductReturnRequest {
        code: code.to_owned(),
        qty_milli: qty.parse::<QtyMilli>().map_err(|_| bad())?.0,
        unit_price,
        damaged,
    })
}

/// `INDEX:QTY[:damaged]` of `caja-node return --line`.
pub(crate) fn return_line(s: &str) -> Result<caja_node::register::ReturnLineRequest, Failure> {
    let bad = || {
        refused(format!(
            "Línea inválida: {s} (use ÍNDICE:CANTIDAD[:damaged])."
        ))
    };
    let mut parts = s.split(':');
    let line: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let qty = parts.next().ok_or_else(bad)?;
    let qty_milli = qty.parse::<QtyMilli>().map_err(|_| bad())?.0;
    let damaged = match parts.next() {
        None => false,
        Some("damaged") => true,
        Some(_) => return Err(bad()),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(caja_node::register::ReturnLineRequest {
        line,
        qty_milli,
        damaged,
    })
}
