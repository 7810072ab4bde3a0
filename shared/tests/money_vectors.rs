//! The shared money vectors (`tests/vectors/money.json`, see DESIGN.md "Money and
//! quantities"): every case of `lines` (total and tax) and of `discount_spread`.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use caja_shared::money::{
    line_tax, line_total, spread_discount, LineAmounts, Money, QtyMilli, SaleTotals, TaxRateBp,
};
use serde::Deserialize;

const VECTORS: &str = include_str!("vectors/money.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vectors {
    #[allow(dead_code)]
    about: String,
    lines: Vec<LineCase>,
    discount_spread: Vec<SpreadCase>,
}

/// Deserialized straight into the newtypes: the vectors also check that each
/// type reads a plain JSON integer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineCase {
    #[serde(default)]
    name: Option<String>,
    unit_price: Money,
    qty_milli: QtyMilli,
    tax_bp: TaxRateBp,
    #[serde(default)]
    discount: Money,
    total: Money,
    tax: Money,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpreadCase {
    #[serde(default)]
    name: Option<String>,
    discount: Money,
    gross: Vec<Money>,
    shares: Vec<Money>,
}

fn vectors() -> Vectors {
    serde_json::from_str(VECTORS).expect("tests/vectors/money.json parses")
}

impl LineCase {
    fn label(&self, index: usize) -> String {
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        format!(
            "lines[{index}]{name} (unit_price={}, qty_milli={}, discount={}, tax_bp={})",
            self.unit_price.0,
            self.qty_milli.0,
            self.discount.0,
            self.tax_bp.bp()
        )
    }
}

impl SpreadCase {
    fn label(&self, index: usize) -> String {
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        let gross: Vec<i64> = self.gross.iter().map(|g| g.0).collect();
        format!(
            "discount_spread[{index}]{name} (discount={}, gross={gross:?})",
            self.discount.0
        )
    }
}

#[test]
fn vectors_are_not_empty() {
    let v = vectors();
    assert!(!v.lines.is_empty(), "money.json has no `lines` cases");
    assert!(
        !v.discount_spread.is_empty(),
        "money.json has no `discount_spread` cases"
    );
}

#[test]
fn every_line_case_matches_total_and_tax() {
    for (i, case) in vectors().lines.iter().enumerate() {
        let label = case.label(i);
        let line =
            LineAmounts::compute(case.unit_price, case.qty_milli, case.discount, case.tax_bp)
                .unwrap_or_else(|e| panic!("{label}: LineAmounts::compute failed: {e}"));
        assert_eq!(line.total, case.total, "{label}: total");
        assert_eq!(line.tax, case.tax, "{label}: tax");
        // The free functions agree with LineAmounts.
        assert_eq!(
            line_total(case.unit_price, case.qty_milli, case.discount),
            Ok(case.total),
            "{label}: line_total"
        );
        assert_eq!(
            line_tax(case.total, case.tax_bp),
            Ok(case.tax),
            "{label}: line_tax"
        );
    }
}

#[test]
fn every_discount_spread_case_matches_shares() {
    for (i, case) in vectors().discount_spread.iter().enumerate() {
        let label = case.label(i);
        let shares = spread_discount(case.discount, &case.gross)
            .unwrap_or_else(|e| panic!("{label}: spread_discount failed: {e}"));
        assert_eq!(shares, case.shares, "{label}: shares");
        // The vectors themselves respect the invariants.
        assert_eq!(
            Money::sum(case.shares.iter().copied()),
            Ok(case.discount),
            "{label}: shares sum to the discount"
        );
        for (j, (share, gross)) in case.shares.iter().zip(&case.gross).enumerate() {
            assert!(
                Money::ZERO <= *share && share <= gross,
                "{label}: share {j} = {share} outside 0..={gross}"
            );
        }
    }
}

#[test]
fn sale_of_all_vector_lines_sums_line_taxes() {
    let v = vectors();
    let lines: Vec<(TaxRateBp, LineAmounts)> = v
        .lines
        .iter()
        .map(|c| {
            let line =
                LineAmounts::compute(c.unit_price, c.qty_milli, c.discount, c.tax_bp).unwrap();
            (c.tax_bp, line)
        })
        .collect();
    let totals = SaleTotals::from_lines(lines.iter().copied()).unwrap();
    let expected_tax = Money::sum(v.lines.iter().map(|c| c.tax)).unwrap();
    let expected_total = Money::sum(v.lines.iter().map(|c| c.total)).unwrap();
    assert_eq!(totals.tax, expected_tax, "sale tax = Σ vector line taxes");
    assert_eq!(
        totals.total, expected_total,
        "sale total = Σ vector line totals"
    );
    for (rate, tax) in &totals.tax_by_rate {
        let expected =
            Money::sum(v.lines.iter().filter(|c| c.tax_bp == *rate).map(|c| c.tax)).unwrap();
        assert_eq!(
            *tax, expected,
            "tax at {rate} = Σ of its vector lines' taxes"
        );
    }
}
