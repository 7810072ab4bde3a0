//! Writing an applied event's facts into the projection tables: a sale with
//! its lines and own payments as one `p_sales` row, every other fact as its
//! own row.
//!
//! Invariant: writes only `p_*` tables; decides nothing.

use crate::projection;
use crate::projection::Fact;
use crate::storage::codec::{corrupt, i, opt_str};
use crate::storage::db::{params, Conn};
use crate::storage::error::StoreError;

/// Writes one event's facts: a sale with its lines and payments as one
/// `p_sales` row (see the schema), every other fact as its own row.
pub(crate) fn write_facts(conn: &Conn, facts: &[Fact]) -> Result<(), StoreError> {
    let mut lines = Vec::new();
    let mut payments = Vec::new();
    for f in facts {
        match f {
            Fact::SaleLine {
                product,
                qty_milli,
                total,
                tax,
                unit_price,
                overridden,
                ..
            } => lines.push(if *overridden {
                // A sixth element only on overridden lines: rows written
                // before schema v9 read as not overridden.
                serde_json::json!([product.as_str(), qty_milli, total, tax, unit_price, true])
            } else {
                serde_json::json!([product.as_str(), qty_milli, total, tax, unit_price])
            }),
            Fact::Payment {
                payment_id: None,
                method,
                amount,
                ..
            } => payments.push(serde_json::json!([
                projection::method_name(*method),
                amount
            ])),
            _ => {}
        }
    }
    for f in facts {
        match f {
            Fact::SaleLine { .. }
            | Fact::Payment {
                payment_id: None, ..
            } => {}
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
            } => {
                conn.prepare_cached(
                    "INSERT INTO p_sales VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )?
                .execute(params![
                    event_id.to_string(),
                    sale_id.to_string(),
                    store.to_string(),
                    device.to_string(),
                    opt_str(shift_id),
                    opt_str(customer),
                    total,
                    tax,
                    change,
                    fiscal.as_ref().map(|f| f.0.clone()),
                    fiscal.as_ref().map(|f| f.1.clone()),
                    serde_json::Value::Array(std::mem::take(&mut lines)).to_string(),
                    serde_json::Value::Array(std::mem::take(&mut payments)).to_string(),
                    hlc.map(|h| h.ms()),
                    hlc.map(|h| i64::from(h.n()))
                ])?;
            }
            other => write_fact(conn, other)?,
        }
    }
    Ok(())
}

fn write_fact(conn: &Conn, f: &Fact) -> Result<(), StoreError> {
    match f {
        Fact::Shift {
            event_id,
            shift_id,
            store,
            device,
            cashier,
            opening_float,
        } => conn
            .prepare_cached("INSERT INTO p_shifts VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                shift_id.to_string(),
                store.to_string(),
                device.to_string(),
                cashier,
                opening_float
            ])?,
        Fact::ShiftClose {
            event_id,
            shift_id,
            store,
            expected_cash,
            counted_cash,
        } => conn
            .prepare_cached("INSERT INTO p_shift_closes VALUES ($1, $2, $3, $4, $5)")?
            .execute(params![
                event_id.to_string(),
                shift_id.to_string(),
                store.to_string(),
                expected_cash,
                counted_cash
            ])?,
        // A sale, its lines and its own payments are one row: write_facts.
        Fact::Sale { .. }
        | Fact::SaleLine { .. }
        | Fact::Payment {
            payment_id: None, ..
        } => return Err(corrupt("sale facts are written by write_facts")),
        Fact::Payment {
            event_id,
            idx,
            payment_id: Some(payment_id),
            sale_id,
            store,
            method,
            amount,
        } => conn
            .prepare_cached("INSERT INTO p_payments VALUES ($1, $2, $3, $4, $5, $6, $7)")?
            .execute(params![
                event_id.to_string(),
                idx,
                payment_id.to_string(),
                sale_id.to_string(),
                store.to_string(),
                projection::method_name(*method),
                amount
            ])?,
        Fact::Void {
            event_id,
            sale_id,
            store,
        } => conn
            .prepare_cached("INSERT INTO p_voids VALUES ($1, $2, $3)")?
            .execute(params![event_id.to_string(), sale_id.to_string(), store.to_string()])?,
        Fact::Debt {
            event_id,
            debt_id,
            store,
            customer,
            amount,
            sale_id,
        } => conn
            .prepare_cached("INSERT INTO p_debts VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                debt_id.to_string(),
                store.to_string(),
                customer.to_string(),
                amount,
                opt_str(sale_id)
            ])?,
        Fact::DebtPayment {
            event_id,
            payment_id,
            debt_id,
            store,
            customer,
            amount,
        } => conn
            .prepare_cached("INSERT INTO p_debt_payments VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                payment_id.to_string(),
                debt_id.to_string(),
                store.to_string(),
                customer.to_string(),
                amount
            ])?,
        Fact::StockMove {
            event_id,
            store,
            product,
            delta_milli,
        } => conn
            .prepare_cached("INSERT INTO p_stock_moves VALUES ($1, $2, $3, $4)")?
            .execute(params![event_id.to_string(), store.to_string(), product.as_str(), delta_milli])?,
        Fact::Customer {
            customer_id,
            event_id,
            hlc,
            device,
            body,
        } => conn
            .prepare_cached(
                "INSERT INTO p_customers VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (customer_id) DO UPDATE SET event_id = excluded.event_id, hlc_ms = excluded.hlc_ms,
                   hlc_n = excluded.hlc_n, device_id = excluded.device_id, body = excluded.body
                 WHERE (excluded.hlc_ms, excluded.hlc_n, excluded.device_id, excluded.event_id)
                     > (p_customers.hlc_ms, p_customers.hlc_n, p_customers.device_id, p_customers.event_id)",
            )?
            .execute(params![
                customer_id.to_string(),
                event_id.to_string(),
                hlc.ms(),
                i64::from(hlc.n()),
                device.to_string(),
                body
            ])?,
        Fact::CatalogItem {
            store,
            product,
            event_id,
            hub_seq,
            body,
        } => conn
            .prepare_cached(
                "INSERT INTO p_catalog VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (store_id, product) DO UPDATE SET event_id = excluded.event_id,
                   hub_seq = excluded.hub_seq, body = excluded.body
                 WHERE excluded.hub_seq > p_catalog.hub_seq",
            )?
            .execute(params![store.to_string(), product.as_str(), event_id.to_string(), i(*hub_seq), body])?,
        Fact::Price {
            store,
            product,
            event_id,
            hub_seq,
            unit_price,
        } => conn
            .prepare_cached(
                "INSERT INTO p_prices VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (store_id, product) DO UPDATE SET event_id = excluded.event_id,
                   hub_seq = excluded.hub_seq, unit_price = excluded.unit_price
                 WHERE excluded.hub_seq > p_prices.hub_seq",
            )?
            .execute(params![store.to_string(), product.as_str(), event_id.to_string(), i(*hub_seq), unit_price])?,
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
        } => conn
            .prepare_cached("INSERT INTO p_fiscal_blocks VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")?
            .execute(params![
                event_id.to_string(),
                if *release { "release" } else { "grant" },
                grant_id.to_string(),
                store.to_string(),
                device.to_string(),
                series,
                i(*first),
                i(*last),
                expires_ms
            ])?,
        Fact::Escrow {
            event_id,
            release,
            grant_id,
            store,
            device,
            product,
            qty_milli,
            expires_ms,
        } => conn
            .prepare_cached("INSERT INTO p_escrow VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")?
            .execute(params![
                event_id.to_string(),
                if *release { "release" } else { "grant" },
                grant_id.to_string(),
                store.to_string(),
                device.to_string(),
                product.as_str(),
                qty_milli,
                expires_ms
            ])?,
        Fact::Oversell {
            event_id,
            line,
            store,
            device,
            sale_id,
            product,
            beyond_milli,
        } => conn
            .prepare_cached("INSERT INTO p_oversells VALUES ($1, $2, $3, $4, $5, $6, $7)")?
            .execute(params![
                event_id.to_string(),
                line,
                store.to_string(),
                device.to_string(),
                sale_id.to_string(),
                product.as_str(),
                beyond_milli
            ])?,
        Fact::ReturnLine {
            event_id,
            line,
            store,
            sale_id,
            sale_line,
            product,
            qty_milli,
            damaged,
        } => conn
            .prepare_cached("INSERT INTO p_returns VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")?
            .execute(params![
                event_id.to_string(),
                line,
                store.to_string(),
                sale_id.to_string(),
                sale_line,
                product.as_str(),
                qty_milli,
                i64::from(*damaged)
            ])?,
        Fact::CreditNote {
            event_id,
            store,
            device,
            sale_id,
            series,
            number,
        } => conn
            .prepare_cached("INSERT INTO p_credit_notes VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                device.to_string(),
                // '' for a credit note whose original was given by fiscal
                // number only (the column predates unknown originals).
                sale_id.map(|x| x.to_string()).unwrap_or_default(),
                series,
                number
            ])?,
        Fact::PriceHistory {
            event_id,
            store,
            product,
            hub_seq,
            hlc,
            unit_price,
        } => conn
            .prepare_cached("INSERT INTO p_price_history VALUES ($1, $2, $3, $4, $5, $6, $7)")?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                product.as_str(),
                i(*hub_seq),
                hlc.ms(),
                i64::from(hlc.n()),
                unit_price
            ])?,
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
        } => conn
            .prepare_cached(
                "INSERT INTO p_resolutions VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                conflict_id.to_string(),
                i(*hub_seq),
                strategy,
                opt_str(winner),
                resolved_by,
                note,
                serde_json::to_string(&covers.iter().map(ToString::to_string).collect::<Vec<_>>())
                    .map_err(corrupt)?
            ])?,
        Fact::StoreCredit {
            event_id,
            idx,
            store,
            customer,
            amount,
            sale_id,
        } => conn
            .prepare_cached("INSERT INTO p_store_credit VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                idx,
                store.to_string(),
                customer.to_string(),
                amount,
                opt_str(sale_id)
            ])?,
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
        } => conn
            .prepare_cached(
                "INSERT INTO p_returns_unknown VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?
            .execute(params![
                event_id.to_string(),
                line,
                store.to_string(),
                device.to_string(),
                opt_str(sale_id),
                reference,
                product.as_str(),
                qty_milli,
                i64::from(*damaged)
            ])?,
        Fact::DrawerOpen {
            event_id,
            store,
            device,
            shift_id,
            reason,
            approved_by,
        } => conn
            .prepare_cached("INSERT INTO p_drawer_opens VALUES ($1, $2, $3, $4, $5, $6)")?
            .execute(params![
                event_id.to_string(),
                store.to_string(),
                device.to_string(),
                shift_id.to_string(),
                reason,
                approved_by
            ])?,
        Fact::Approval {
            event_id,
            idx,
            store,
            device,
            action,
            staff_id,
            name,
            role,
        } => conn
            .prepare_cached("INSERT INTO p_approvals VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")?
            .execute(params![
                event_id.to_string(),
                idx,
                store.to_string(),
                device.to_string(),
                action,
                staff_id.to_string(),
                name,
                role
            ])?,
        Fact::ForeignKind {
            event_id,
            store,
            device,
            kind,
        } => conn
            .prepare_cached("INSERT INTO p_foreign_kinds VALUES ($1, $2, $3, $4)")?
            .execute(params![event_id.to_string(), store.to_string(), device.to_string(), kind])?,
    };
    Ok(())
}
