//! The Z report: what a shift did, computed from its events only.
//!
//! Pure: the caller passes the shift's events in journal order (from its
//! `ShiftOpened` to its `ShiftClosed` or the end of the journal) and, for voids of
//! sales made in an earlier shift, a lookup of those sales. Nothing here reads a
//! projection, so the report can always be recomputed from the journal and
//! compared.
//!
//! Conventions: a void is counted in the shift where it happens; cash taken is
//! cash tendered minus change; a voided sale gives back what it took by each
//! method (cash leaves the drawer, fiado is cancelled); expected cash is the
//! opening float plus net cash from sales and from debt payments.

use std::collections::{BTreeMap, BTreeSet};

use caja_shared::ids::{SaleId, ShiftId};
use caja_shared::kind::{CashMovement, EventBody, PaymentMethod, SaleCreated};
use caja_shared::money::{Money, MoneyError, TaxRateBp};
use serde::{Deserialize, Serialize};

/// A shift's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZReport {
    /// The shift.
    pub shift_id: ShiftId,
    /// Who opened it.
    pub cashier: String,
    /// Cash in the drawer at the start.
    pub opening_float: Money,
    /// Journal seq of the shift's first event.
    pub first_seq: u64,
    /// Journal seq of the shift's last event.
    pub last_seq: u64,
    /// Sales made in the shift.
    pub sales_count: u64,
    /// Sum of those sales' totals.
    pub sales_total: Money,
    /// Voids made in the shift.
    pub voids_count: u64,
    /// Sum of the voided sales' totals.
    pub voids_total: Money,
    /// `sales_total − voids_total`.
    pub net_total: Money,
    /// ITBIS per rate: line taxes of the shift's sales minus those of its voids.
    pub tax_by_rate: BTreeMap<TaxRateBp, Money>,
    /// Sum of `tax_by_rate`.
    pub tax_total: Money,
    /// Net taken per payment method (cash net of change), voids subtracted.
    pub by_method: BTreeMap<PaymentMethod, Money>,
    /// Fiado extended by the shift's sales, voids subtracted.
    pub fiado_given: Money,
    /// Debt payments taken in the shift.
    pub fiado_collected: Money,
    /// Opening float + net cash from sales + cash debt payments.
    pub expected_cash: Money,
    /// Cash counted at close, when closed.
    pub counted_cash: Option<Money>,
    /// `counted_cash − expected_cash`, when closed.
    pub cash_difference: Option<Money>,
    /// Whether the shift is closed.
    pub closed: bool,
    /// Sale lines sold beyond this register's stock quota (`warn`), and the
    /// quantity beyond it (thousandths).
    #[serde(default)]
    pub oversold_lines: u64,
    /// Quantity sold beyond quotas (thousandths).
    #[serde(default)]
    pub oversold_milli: i64,
    /// Returns processed in the shift.
    #[serde(default)]
    pub returns_count: u64,
    /// Refunded by those returns (subtracted from their method).
    #[serde(default)]
    pub returns_total: Money,
    /// Cash paid into the drawer.
    #[serde(default)]
    pub paid_in: Money,
    /// Cash paid out of the drawer.
    #[serde(default)]
    pub paid_out: Money,
    /// Cash dropped to the safe.
    #[serde(default)]
    pub drops: Money,
    /// Every approval given in the shift: `action: name (role)`.
    #[serde(default)]
    pub approvals: Vec<String>,
    /// Refunded by the shift's returns, per method (store credit included).
    #[serde(default)]
    pub refunds_by_method: BTreeMap<PaymentMethod, Money>,
    /// Returns whose original sale the register did not know (flagged for
    /// review at the hub).
    #[serde(default)]
    pub returns_unknown_original: u64,
    /// Sale lines sold at a price other than the shelf price.
    #[serde(default)]
    pub price_overrides: u64,
    /// What those overrides changed: the lines' amounts at the prices charged
    /// minus at the shelf prices (negative when sold below the shelf price).
    #[serde(default)]
    pub price_override_amount: Money,
    /// Drawer openings without a sale.
    #[serde(default)]
    pub drawer_opens: u64,
}

/// Why a Z report cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZReportError {
    /// The first event is not the shift's opening.
    #[error("the events do not start with the shift's ShiftOpened")]
    NotAShift,
    /// A void names a sale that neither the shift nor the lookup knows.
    #[error("void of unknown sale {0}")]
    UnknownSale(SaleId),
    /// Totals beyond the range of money.
    #[error("totals out of range")]
    Overflow,
}

impl From<MoneyError> for ZReportError {
    fn from(_: MoneyError) -> Self {
        ZReportError::Overflow
    }
}

fn add(
    map: &mut BTreeMap<PaymentMethod, Money>,
    m: PaymentMethod,
    v: Money,
) -> Result<(), MoneyError> {
    let e = map.entry(m).or_insert(Money::ZERO);
    *e = e.checked_add(v)?;
    Ok(())
}

/// Net taken by each method for one sale: cash tendered minus change.
fn taken_by_method(sale: &SaleCreated) -> Result<BTreeMap<PaymentMethod, Money>, MoneyError> {
    let mut out = BTreeMap::new();
    for p in &sale.payments {
        add(&mut out, p.method, p.amount)?;
    }
    add(&mut out, PaymentMethod::Cash, sale.change.checked_neg()?)?;
    Ok(out)
}

fn approval_line(a: &caja_shared::kind::Approval) -> String {
    let role = match a.role {
        caja_shared::kind::Role::Cashier => "cajero",
        caja_shared::kind::Role::Supervisor => "supervisor",
        caja_shared::kind::Role::Manager => "gerente",
    };
    format!("{}: {} ({role})", a.action, a.name)
}

impl ZReport {
    /// Computes the report of the shift whose events are `events` (journal seq and
    /// body, in order, starting with its `ShiftOpened`). `earlier_sale` resolves
    /// voided sales made before this shift.
    pub fn compute(
        events: &[(u64, EventBody)],
        earlier_sale: impl Fn(&SaleId) -> Option<SaleCreated>,
    ) -> Result<ZReport, ZReportError> {
        let Some((first_seq, EventBody::ShiftOpened(open))) = events.first() else {
            return Err(ZReportError::NotAShift);
        };
        let mut z = ZReport {
            shift_id: open.shift_id,
            cashier: open.cashier.clone(),
            opening_float: open.opening_float,
            first_seq: *first_seq,
            last_seq: *first_seq,
            sales_count: 0,
            sales_total: Money::ZERO,
            voids_count: 0,
            voids_total: Money::ZERO,
            net_total: Money::ZERO,
            tax_by_rate: BTreeMap::new(),
            tax_total: Money::ZERO,
            by_method: BTreeMap::new(),
            fiado_given: Money::ZERO,
            fiado_collected: Money::ZERO,
            expected_cash: open.opening_float,
            counted_cash: None,
            cash_difference: None,
            closed: false,
            oversold_lines: 0,
            oversold_milli: 0,
            returns_count: 0,
            returns_total: Money::ZERO,
            paid_in: Money::ZERO,
            paid_out: Money::ZERO,
            drops: Money::ZERO,
            approvals: Vec::new(),
            refunds_by_method: BTreeMap::new(),
            returns_unknown_original: 0,
            price_overrides: 0,
            price_override_amount: Money::ZERO,
            drawer_opens: 0,
        };
        let mut sales: BTreeMap<SaleId, &SaleCreated> = BTreeMap::new();
        let mut voided: BTreeSet<SaleId> = BTreeSet::new();
        let mut debt_cash = Money::ZERO;
        for (seq, body) in events {
            z.last_seq = *seq;
            match body {
                EventBody::SaleCreated(s) => {
                    if let Some(a) = &s.approval {
                        z.approvals.push(approval_line(a));
                    }
                    let mut override_approval = None;
                    for l in &s.lines {
                        let Some(o) = &l.price_override else {
                            continue;
                        };
                        z.price_overrides += 1;
                        let charged = caja_shared::money::line_gross(l.unit_price, l.qty_milli)?;
                        let shelf = caja_shared::money::line_gross(o.shelf_price, l.qty_milli)?;
                        z.price_override_amount = z
                            .price_override_amount
                            .checked_add(charged.checked_sub(shelf)?)?;
                        override_approval = override_approval.or(o.approval.as_ref());
                    }
                    if let Some(a) = override_approval {
                        z.approvals.push(approval_line(a));
                    }
                    sales.insert(s.sale_id, s);
                    z.sales_count += 1;
                    z.sales_total = z.sales_total.checked_add(s.total)?;
                    for l in &s.lines {
                        let e = z.tax_by_rate.entry(l.tax_bp).or_insert(Money::ZERO);
                        *e = e.checked_add(l.tax)?;
                        if let Some(b) = l.beyond_quota_milli.filter(|b| b.0 > 0) {
                            z.oversold_lines += 1;
                            z.oversold_milli = z.oversold_milli.saturating_add(b.0);
                        }
                    }
                    for (m, v) in taken_by_method(s)? {
                        add(&mut z.by_method, m, v)?;
                    }
                }
                EventBody::SaleVoided(v) => {
                    if !voided.insert(v.sale_id) {
                        continue; // a second void of the same sale changes nothing
                    }
                    let owned;
                    let s: &SaleCreated = match sales.get(&v.sale_id) {
                        Some(s) => s,
                        None => {
                            owned = earlier_sale(&v.sale_id)
                                .ok_or(ZReportError::UnknownSale(v.sale_id))?;
                            &owned
                        }
                    };
                    z.voids_count += 1;
                    if let Some(a) = &v.approval {
                        z.approvals.push(approval_line(a));
                    }
                    z.voids_total = z.voids_total.checked_add(s.total)?;
                    for l in &s.lines {
                        let e = z.tax_by_rate.entry(l.tax_bp).or_insert(Money::ZERO);
                        *e = e.checked_sub(l.tax)?;
                    }
                    for (m, v) in taken_by_method(s)? {
                        add(&mut z.by_method, m, v.checked_neg()?)?;
                    }
                }
                EventBody::DebtPaymentTaken(p) => {
                    z.fiado_collected = z.fiado_collected.checked_add(p.amount)?;
                    if p.method == PaymentMethod::Cash {
                        debt_cash = debt_cash.checked_add(p.amount)?;
                    }
                }
                EventBody::SaleReturned(r) => {
                    z.returns_count += 1;
                    if r.original_unknown.is_some() {
                        z.returns_unknown_original += 1;
                    }
                    z.returns_total = z.returns_total.checked_add(r.total)?;
                    let original = r.sale_id.and_then(|id| match sales.get(&id) {
                        Some(s) => Some((*s).clone()),
                        None => earlier_sale(&id),
                    });
                    for l in &r.lines {
                        // ITBIS per rate: the line's own rate (a line whose
                        // original was unknown), else the original line's;
                        // at rate 0 only when neither is known here.
                        let rate = l
                            .tax_bp
                            .or_else(|| {
                                let i = usize::try_from(l.line?).ok()?;
                                original.as_ref()?.lines.get(i).map(|x| x.tax_bp)
                            })
                            .unwrap_or(TaxRateBp::ZERO);
                        let e = z.tax_by_rate.entry(rate).or_insert(Money::ZERO);
                        *e = e.checked_sub(l.tax)?;
                    }
                    add(&mut z.by_method, r.refund, r.total.checked_neg()?)?;
                    add(&mut z.refunds_by_method, r.refund, r.total)?;
                    if let Some(a) = &r.approval {
                        z.approvals.push(approval_line(a));
                    }
                }
                EventBody::DrawerOpened(d) => {
                    z.drawer_opens += 1;
                    if let Some(a) = &d.approval {
                        z.approvals.push(approval_line(a));
                    }
                }
                EventBody::CashMoved(m) => {
                    match m.kind {
                        CashMovement::PaidIn => z.paid_in = z.paid_in.checked_add(m.amount)?,
                        CashMovement::PaidOut => z.paid_out = z.paid_out.checked_add(m.amount)?,
                        CashMovement::Drop => z.drops = z.drops.checked_add(m.amount)?,
                    }
                    if let Some(a) = &m.approval {
                        z.approvals.push(approval_line(a));
                    }
                }
                EventBody::ShiftClosed(c) if c.shift_id == z.shift_id => {
                    if let Some(a) = c
                        .approval
                        .as_ref()
                        .filter(|a| a.action != "close_own_shift")
                    {
                        z.approvals.push(approval_line(a));
                    }
                    z.closed = true;
                    z.counted_cash = Some(c.counted_cash);
                }
                _ => {}
            }
        }
        z.net_total = z.sales_total.checked_sub(z.voids_total)?;
        z.tax_total = Money::sum(z.tax_by_rate.values().copied())?;
        z.fiado_given = z
            .by_method
            .get(&PaymentMethod::Fiado)
            .copied()
            .unwrap_or(Money::ZERO);
        let cash = z
            .by_method
            .get(&PaymentMethod::Cash)
            .copied()
            .unwrap_or(Money::ZERO);
        z.expected_cash = z
            .opening_float
            .checked_add(cash)?
            .checked_add(debt_cash)?
            .checked_add(z.paid_in)?
            .checked_sub(z.paid_out)?
            .checked_sub(z.drops)?;
        z.net_total = z.net_total.checked_sub(z.returns_total)?;
        z.cash_difference = match z.counted_cash {
            Some(c) => Some(c.checked_sub(z.expected_cash)?),
            None => None,
        };
        Ok(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::kind::{
        DebtPaymentTaken, Payment, SaleLine, SaleVoided, ShiftClosed, ShiftOpened,
    };
    use caja_shared::money::{LineAmounts, QtyMilli};
    use proptest::prelude::*;

    const SHIFT: &str = "019aaf70-d618-7000-8000-00000000c001";

    fn open(float: i64) -> EventBody {
        EventBody::ShiftOpened(ShiftOpened {
            shift_id: SHIFT.parse().expect("id"),
            cashier: "ana".into(),
            opening_float: Money(float),
            staff_id: None,
        })
    }

    fn sale(n: u32, price: i64, bp: u16, payments: Vec<(PaymentMethod, i64)>) -> SaleCreated {
        let rate = TaxRateBp::new(bp).expect("bp");
        let a =
            LineAmounts::compute(Money(price), QtyMilli(1000), Money::ZERO, rate).expect("line");
        let paid: i64 = payments.iter().map(|p| p.1).sum();
        SaleCreated {
            sale_id: format!("019aaf70-dbf4-7000-8000-{n:012x}")
                .parse()
                .expect("id"),
            cashier: "ana".into(),
            shift_id: Some(SHIFT.parse().expect("id")),
            customer: None,
            fiscal: None,
            lines: vec![SaleLine {
                product: "X1".parse().expect("sku"),
                name: "x".into(),
                qty_milli: QtyMilli(1000),
                unit_price: Money(price),
                tax_bp: rate,
                discount: None,
                total: a.total,
                tax: a.tax,
                beyond_quota_milli: None,
                price_override: None,
            }],
            total: a.total,
            tax: a.tax,
            payments: payments
                .into_iter()
                .map(|(method, amount)| Payment {
                    method,
                    amount: Money(amount),
                    reference: None,
                })
                .collect(),
            change: Money(paid - a.total.0),
            approval: None,
        }
    }

    #[test]
    fn a_shift_with_sales_a_void_and_a_debt_payment() {
        let s1 = sale(1, 13000, 1800, vec![(PaymentMethod::Cash, 20000)]);
        let s2 = sale(2, 5000, 1600, vec![(PaymentMethod::Card, 5000)]);
        let s3 = sale(3, 3000, 0, vec![(PaymentMethod::Fiado, 3000)]);
        let events = vec![
            (10, open(500_000)),
            (11, EventBody::SaleCreated(s1.clone())),
            (12, EventBody::SaleCreated(s2.clone())),
            (13, EventBody::SaleCreated(s3)),
            (
                14,
                EventBody::SaleVoided(SaleVoided {
                    sale_id: s2.sale_id,
                    reason: "error".into(),
                    approval: None,
                    approved_by: None,
                }),
            ),
            (
                15,
                EventBody::DebtPaymentTaken(DebtPaymentTaken {
                    payment_id: "019aaf70-dbf4-7000-8000-0000000d0001".parse().expect("id"),
                    debt_id: "019aaf70-dbf4-7000-8000-0000000d0002".parse().expect("id"),
                    customer: "019aaf70-dbf4-7000-8000-0000000d0003".parse().expect("id"),
                    method: PaymentMethod::Cash,
                    amount: Money(1000),
                }),
            ),
            (
                16,
                EventBody::ShiftClosed(ShiftClosed {
                    shift_id: SHIFT.parse().expect("id"),
                    cashier: "ana".into(),
                    expected_cash: Money(514_000),
                    counted_cash: Money(513_900),
                    approval: None,
                }),
            ),
        ];
        let z = ZReport::compute(&events, |_| None).expect("report");
        assert_eq!((z.first_seq, z.last_seq), (10, 16));
        assert_eq!((z.sales_count, z.voids_count), (3, 1));
        assert_eq!(z.sales_total, Money(21000));
        assert_eq!(z.voids_total, Money(5000));
        assert_eq!(z.net_total, Money(16000));
        assert_eq!(
            z.tax_by_rate.get(&TaxRateBp::new(1800).expect("bp")),
            Some(&Money(1983))
        );
        assert_eq!(
            z.tax_by_rate.get(&TaxRateBp::new(1600).expect("bp")),
            Some(&Money(0))
        );
        assert_eq!(z.tax_total, Money(1983));
        assert_eq!(z.by_method.get(&PaymentMethod::Cash), Some(&Money(13000)));
        assert_eq!(z.by_method.get(&PaymentMethod::Card), Some(&Money(0)));
        assert_eq!(z.fiado_given, Money(3000));
        assert_eq!(z.fiado_collected, Money(1000));
        assert_eq!(z.expected_cash, Money(514_000));
        assert_eq!(z.cash_difference, Some(Money(-100)));
        assert!(z.closed);
    }

    #[test]
    fn voids_of_unknown_sales_and_non_shifts_are_errors() {
        let void = EventBody::SaleVoided(SaleVoided {
            sale_id: "019aaf70-dbf4-7000-8000-0000000000ff".parse().expect("id"),
            reason: "x".into(),
            approval: None,
            approved_by: None,
        });
        assert_eq!(
            ZReport::compute(&[(1, void.clone())], |_| None),
            Err(ZReportError::NotAShift)
        );
        assert!(matches!(
            ZReport::compute(&[(1, open(0)), (2, void.clone())], |_| None),
            Err(ZReportError::UnknownSale(_))
        ));
        let earlier = sale(255, 1000, 0, vec![(PaymentMethod::Cash, 1000)]);
        let z = ZReport::compute(&[(1, open(0)), (2, void)], |_| Some(earlier.clone()))
            .expect("earlier sale resolves");
        assert_eq!(z.net_total, Money(-1000));
        assert_eq!(z.expected_cash, Money(-1000));
    }

    fn approval(action: &str) -> caja_shared::kind::Approval {
        caja_shared::kind::Approval {
            staff_id: "019aaf70-dbf4-7000-8000-0000000000e1".parse().expect("id"),
            name: "Marta".into(),
            role: caja_shared::kind::Role::Supervisor,
            action: action.into(),
        }
    }

    #[test]
    fn overrides_drawer_openings_and_refunds_by_method_are_reported() {
        use caja_shared::kind::{
            DrawerOpened, PriceOverride, ReturnLine, SaleReturned, UnknownOriginal,
        };
        // Sold at 100.00 instead of the shelf's 130.00, paid in cash.
        let mut s1 = sale(1, 10000, 1800, vec![(PaymentMethod::Cash, 10000)]);
        s1.lines[0].price_override = Some(PriceOverride {
            shelf_price: Money(13000),
            approval: Some(approval("price_override")),
        });
        let line = |line: Option<u32>, total: i64, tax_bp: Option<u16>| ReturnLine {
            line,
            product: "X1".parse().expect("sku"),
            qty_milli: QtyMilli(1000),
            total: Money(total),
            tax: Money(total / 10),
            damaged: false,
            tax_bp: tax_bp.map(|b| TaxRateBp::new(b).expect("bp")),
        };
        let ret = |n: u64, lines, refund, unknown: bool| SaleReturned {
            return_id: format!("019aaf70-dbf4-7000-8000-0000000f{n:04x}")
                .parse()
                .expect("id"),
            sale_id: (!unknown).then_some(s1.sale_id),
            shift_id: SHIFT.parse().expect("id"),
            cashier: "ana".into(),
            total: Money(1000),
            tax: Money(100),
            lines,
            refund,
            customer: None,
            credit_note: None,
            approval: Some(approval(if unknown {
                "return_unknown_original"
            } else {
                "return"
            })),
            original_unknown: unknown.then(|| UnknownOriginal {
                reference: "B0200000099".into(),
            }),
        };
        let events = vec![
            (1, open(0)),
            (2, EventBody::SaleCreated(s1.clone())),
            (
                3,
                EventBody::DrawerOpened(DrawerOpened {
                    movement_id: "019aaf70-dbf4-7000-8000-0000000d0001".parse().expect("id"),
                    shift_id: SHIFT.parse().expect("id"),
                    reason: "cambio".into(),
                    approval: Some(approval("drawer_open")),
                }),
            ),
            (
                4,
                EventBody::SaleReturned(ret(
                    1,
                    vec![line(Some(0), 1000, None)],
                    PaymentMethod::StoreCredit,
                    false,
                )),
            ),
            (
                5,
                EventBody::SaleReturned(ret(
                    2,
                    vec![line(None, 1000, Some(1600))],
                    PaymentMethod::Cash,
                    true,
                )),
            ),
        ];
        let z = ZReport::compute(&events, |_| None).expect("report");
        assert_eq!(
            (z.price_overrides, z.price_override_amount),
            (1, Money(-3000))
        );
        assert_eq!(z.drawer_opens, 1);
        assert_eq!((z.returns_count, z.returns_unknown_original), (2, 1));
        assert_eq!(
            z.refunds_by_method,
            BTreeMap::from([
                (PaymentMethod::Cash, Money(1000)),
                (PaymentMethod::StoreCredit, Money(1000))
            ])
        );
        // A store-credit refund takes no cash out of the drawer.
        assert_eq!(z.expected_cash, Money(10000 - 1000));
        // The unknown original's tax is at its own rate, the known one's at
        // the sale line's.
        assert_eq!(
            z.tax_by_rate.get(&TaxRateBp::new(1600).expect("bp")),
            Some(&Money(-100))
        );
        assert_eq!(
            z.approvals,
            [
                "price_override: Marta (supervisor)",
                "drawer_open: Marta (supervisor)",
                "return: Marta (supervisor)",
                "return_unknown_original: Marta (supervisor)"
            ]
        );
    }

    proptest! {
        /// Totals equal the sum over the shift's events, whatever the mix.
        #[test]
        fn totals_equal_the_sum_of_the_shift_events(
            specs in prop::collection::vec((1i64..100_000, prop::sample::select(vec![0u16, 1600, 1800]), 0u8..3, 0i64..5000, any::<bool>()), 0..30),
            float in 0i64..1_000_000,
        ) {
            let mut events = vec![(1u64, open(float))];
            let mut expect_total = 0i64;
            let mut expect_tax = 0i64;
            let mut expect_cash = float;
            let mut seq = 1u64;
            for (i, (price, bp, method, extra, void)) in specs.into_iter().enumerate() {
                let method = [PaymentMethod::Cash, PaymentMethod::Card, PaymentMethod::Fiado][usize::from(method)];
                let pay = if method == PaymentMethod::Cash { price + extra } else { price };
                let s = sale(u32::try_from(i).expect("few specs") + 1, price, bp, vec![(method, pay)]);
                seq += 1;
                events.push((seq, EventBody::SaleCreated(s.clone())));
                if void {
                    seq += 1;
                    events.push((seq, EventBody::SaleVoided(SaleVoided { sale_id: s.sale_id, reason: "r".into(), approved_by: None, approval: None })));
                } else {
                    expect_total += s.total.0;
                    expect_tax += s.tax.0;
                    if method == PaymentMethod::Cash { expect_cash += s.total.0; }
                }
            }
            let z = ZReport::compute(&events, |_| None).expect("report");
            prop_assert_eq!(z.net_total.0, expect_total);
            prop_assert_eq!(z.tax_total.0, expect_tax);
            prop_assert_eq!(z.expected_cash.0, expect_cash);
            prop_assert_eq!(z.by_method.values().map(|m| m.0).sum::<i64>(), expect_total);
            prop_assert_eq!(z.last_seq, seq);
        }
    }
}
