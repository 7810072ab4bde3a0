//! Canonical JSON of projection state: [`fact_value`] (one fact as the
//! object the digest hashes) and the small value builders the summary and
//! the digest share.
//!
//! Architecture invariant: pure; no `crate::storage`, no SQL, no IO. Imports
//! only [`super::fact`]. Changing what it writes changes every projection
//! digest.

use caja_shared::canonical::{Object, Value};

use super::fact::{method_name, Fact};

pub(super) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut o = Object::new();
    for (k, v) in pairs {
        o.insert(k.to_owned(), v);
    }
    Value::Object(o)
}

/// An integer in canonical JSON; sums beyond ±(2^53−1) are written as strings.
pub(super) fn int(v: i128) -> Value {
    let max = i128::from(caja_shared::canonical::MAX_SAFE_INTEGER);
    if (-max..=max).contains(&v) {
        Value::Int(i64::try_from(v).unwrap_or(0))
    } else {
        Value::String(v.to_string())
    }
}

pub(super) fn opt<T: ToString>(v: &Option<T>) -> Value {
    v.as_ref()
        .map_or(Value::Null, |x| Value::String(x.to_string()))
}

fn s(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

pub(super) fn fact_value(f: &Fact) -> Value {
    match f {
        Fact::Shift {
            event_id,
            shift_id,
            store,
            device,
            cashier,
            opening_float,
        } => obj([
            ("t", s("shift")),
            ("event", s(event_id)),
            ("shift", s(shift_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("cashier", s(cashier)),
            ("opening_float", int((*opening_float).into())),
        ]),
        Fact::ShiftClose {
            event_id,
            shift_id,
            store,
            expected_cash,
            counted_cash,
        } => obj([
            ("t", s("shift_close")),
            ("event", s(event_id)),
            ("shift", s(shift_id)),
            ("store", s(store)),
            ("expected_cash", int((*expected_cash).into())),
            ("counted_cash", int((*counted_cash).into())),
        ]),
        Fact::Sale {
            event_id,
            sale_id,
            store,
            device,
            shift_id,
            customer,
            total,
            tax,
            change,
            fiscal,
            hlc,
        } => obj([
            ("t", s("sale")),
            ("event", s(event_id)),
            ("sale", s(sale_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("shift", opt(shift_id)),
            ("customer", opt(customer)),
            ("total", int((*total).into())),
            ("tax", int((*tax).into())),
            ("change", int((*change).into())),
            (
                "fiscal",
                fiscal
                    .as_ref()
                    .map_or(Value::Null, |(a, b)| s(format!("{a}/{b}"))),
            ),
            ("hlc", opt(hlc)),
        ]),
        Fact::SaleLine {
            event_id,
            line,
            sale_id,
            store,
            product,
            qty_milli,
            total,
            tax,
            unit_price,
            overridden,
        } => obj([
            ("t", s("line")),
            ("event", s(event_id)),
            ("line", int((*line).into())),
            ("sale", s(sale_id)),
            ("store", s(store)),
            ("product", s(product)),
            ("qty_milli", int((*qty_milli).into())),
            ("total", int((*total).into())),
            ("tax", int((*tax).into())),
            (
                "unit_price",
                unit_price.map_or(Value::Null, |p| int(p.into())),
            ),
            ("overridden", Value::Bool(*overridden)),
        ]),
        Fact::Payment {
            event_id,
            idx,
            payment_id,
            sale_id,
            store,
            method,
            amount,
        } => obj([
            ("t", s("payment")),
            ("event", s(event_id)),
            ("idx", int((*idx).into())),
            ("payment", opt(payment_id)),
            ("sale", s(sale_id)),
            ("store", s(store)),
            ("method", s(method_name(*method))),
            ("amount", int((*amount).into())),
        ]),
        Fact::Void {
            event_id,
            sale_id,
            store,
        } => obj([
            ("t", s("void")),
            ("event", s(event_id)),
            ("sale", s(sale_id)),
            ("store", s(store)),
        ]),
        Fact::Debt {
            event_id,
            debt_id,
            store,
            customer,
            amount,
            sale_id,
        } => obj([
            ("t", s("debt")),
            ("event", s(event_id)),
            ("debt", s(debt_id)),
            ("store", s(store)),
            ("customer", s(customer)),
            ("amount", int((*amount).into())),
            ("sale", opt(sale_id)),
        ]),
        Fact::DebtPayment {
            event_id,
            payment_id,
            debt_id,
            store,
            customer,
            amount,
        } => obj([
            ("t", s("debt_payment")),
            ("event", s(event_id)),
            ("payment", s(payment_id)),
            ("debt", s(debt_id)),
            ("store", s(store)),
            ("customer", s(customer)),
            ("amount", int((*amount).into())),
        ]),
        Fact::StockMove {
            event_id,
            store,
            product,
            delta_milli,
        } => obj([
            ("t", s("stock")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("product", s(product)),
            ("delta_milli", int((*delta_milli).into())),
        ]),
        Fact::Customer {
            customer_id,
            event_id,
            hlc,
            device,
            body,
        } => obj([
            ("t", s("customer")),
            ("customer", s(customer_id)),
            ("event", s(event_id)),
            ("hlc", s(hlc)),
            ("device", s(device)),
            ("body", s(body)),
        ]),
        Fact::CatalogItem {
            store,
            product,
            event_id,
            hub_seq,
            body,
        } => obj([
            ("t", s("catalog")),
            ("store", s(store)),
            ("product", s(product)),
            ("event", s(event_id)),
            ("hub_seq", int((*hub_seq).into())),
            ("body", s(body)),
        ]),
        Fact::Price {
            store,
            product,
            event_id,
            hub_seq,
            unit_price,
        } => obj([
            ("t", s("price")),
            ("store", s(store)),
            ("product", s(product)),
            ("event", s(event_id)),
            ("hub_seq", int((*hub_seq).into())),
            ("unit_price", int((*unit_price).into())),
        ]),
        Fact::FiscalBlock {
            event_id,
            release,
            grant_id,
            store,
            device,
            series,
            first,
            last,
            expires_ms,
        } => obj([
            (
                "t",
                s(if *release {
                    "fiscal_release"
                } else {
                    "fiscal_grant"
                }),
            ),
            ("event", s(event_id)),
            ("grant", s(grant_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("series", s(series)),
            ("first", int((*first).into())),
            ("last", int((*last).into())),
            (
                "expires_ms",
                expires_ms.map_or(Value::Null, |e| int(e.into())),
            ),
        ]),
        Fact::Escrow {
            event_id,
            release,
            grant_id,
            store,
            device,
            product,
            qty_milli,
            expires_ms,
        } => obj([
            (
                "t",
                s(if *release {
                    "escrow_release"
                } else {
                    "escrow_grant"
                }),
            ),
            ("event", s(event_id)),
            ("grant", s(grant_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("product", s(product)),
            ("qty_milli", int((*qty_milli).into())),
            (
                "expires_ms",
                expires_ms.map_or(Value::Null, |e| int(e.into())),
            ),
        ]),
        Fact::Oversell {
            event_id,
            line,
            store,
            device,
            sale_id,
            product,
            beyond_milli,
        } => obj([
            ("t", s("oversell")),
            ("event", s(event_id)),
            ("line", int((*line).into())),
            ("store", s(store)),
            ("device", s(device)),
            ("sale", s(sale_id)),
            ("product", s(product)),
            ("beyond_milli", int((*beyond_milli).into())),
        ]),
        Fact::ReturnLine {
            event_id,
            line,
            store,
            sale_id,
            sale_line,
            product,
            qty_milli,
            damaged,
        } => obj([
            ("t", s("return_line")),
            ("event", s(event_id)),
            ("line", int((*line).into())),
            ("store", s(store)),
            ("sale", s(sale_id)),
            ("sale_line", int((*sale_line).into())),
            ("product", s(product)),
            ("qty_milli", int((*qty_milli).into())),
            ("damaged", Value::Bool(*damaged)),
        ]),
        Fact::CreditNote {
            event_id,
            store,
            device,
            sale_id,
            series,
            number,
        } => obj([
            ("t", s("credit_note")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("sale", opt(sale_id)),
            ("series", s(series)),
            ("number", s(number)),
        ]),
        Fact::PriceHistory {
            event_id,
            store,
            product,
            hub_seq,
            hlc,
            unit_price,
        } => obj([
            ("t", s("price_history")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("product", s(product)),
            ("hub_seq", int((*hub_seq).into())),
            ("hlc", s(hlc)),
            ("unit_price", int((*unit_price).into())),
        ]),
        Fact::Resolution {
            event_id,
            store,
            conflict_id,
            hub_seq,
            strategy,
            winner,
            resolved_by,
            note,
            covers,
        } => obj([
            ("t", s("resolution")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("conflict", s(conflict_id)),
            ("hub_seq", int((*hub_seq).into())),
            ("strategy", s(strategy)),
            ("winner", opt(winner)),
            ("by", s(resolved_by)),
            ("note", s(note)),
            ("covers", Value::Array(covers.iter().map(s).collect())),
        ]),
        Fact::StoreCredit {
            event_id,
            idx,
            store,
            customer,
            amount,
            sale_id,
        } => obj([
            ("t", s("store_credit")),
            ("event", s(event_id)),
            ("idx", int((*idx).into())),
            ("store", s(store)),
            ("customer", s(customer)),
            ("amount", int((*amount).into())),
            ("sale", opt(sale_id)),
        ]),
        Fact::UnlinkedReturn {
            event_id,
            line,
            store,
            device,
            sale_id,
            reference,
            product,
            qty_milli,
            damaged,
        } => obj([
            ("t", s("unlinked_return")),
            ("event", s(event_id)),
            ("line", int((*line).into())),
            ("store", s(store)),
            ("device", s(device)),
            ("sale", opt(sale_id)),
            ("reference", s(reference)),
            ("product", s(product)),
            ("qty_milli", int((*qty_milli).into())),
            ("damaged", Value::Bool(*damaged)),
        ]),
        Fact::SaleDrawerOpen {
            event_id,
            store,
            device,
            document,
            refund,
            how,
            opened_ms,
        } => obj([
            ("t", s("sale_drawer_open")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("document", s(document)),
            ("refund", Value::Bool(*refund)),
            ("how", s(how)),
            ("opened_ms", int((*opened_ms).into())),
        ]),
        Fact::DrawerOpen {
            event_id,
            store,
            device,
            shift_id,
            reason,
            approved_by,
        } => obj([
            ("t", s("drawer_open")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("shift", s(shift_id)),
            ("reason", s(reason)),
            ("approved_by", opt(approved_by)),
        ]),
        Fact::Approval {
            event_id,
            idx,
            store,
            device,
            action,
            staff_id,
            name,
            role,
        } => obj([
            ("t", s("approval")),
            ("event", s(event_id)),
            ("idx", int((*idx).into())),
            ("store", s(store)),
            ("device", s(device)),
            ("action", s(action)),
            ("staff", s(staff_id)),
            ("name", s(name)),
            ("role", s(role)),
        ]),
        Fact::ForeignKind {
            event_id,
            store,
            device,
            kind,
        } => obj([
            ("t", s("foreign_kind")),
            ("event", s(event_id)),
            ("store", s(store)),
            ("device", s(device)),
            ("kind", s(kind)),
        ]),
    }
}
