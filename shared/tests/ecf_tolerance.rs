//! Random sales (names with `&` `<` `>` `ñ`, weighed quantities, discounts,
//! every ITBIS rate) give documents whose lines meet DGII's tolerance rule
//! (Informe Técnico e-CF §12: per line, quantity × price − discount within
//! 1.00 of the line amount; on the total, within as many units as lines),
//! read back from the document's own text; a sale the rule cannot fit is
//! refused with the line named. A batch of them, signed, validates with
//! `xmllint` and verifies with `xmlsec1`.

mod ecf_support;

use caja_shared::ecf::document::{self, DocumentError};
use caja_shared::ecf::issue;
use caja_shared::ecf::xml::{self, Element};
use caja_shared::kind::SaleCreated;
use caja_shared::money::{LineAmounts, Money, QtyMilli, TaxRateBp};
use ecf_support::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::json;

#[derive(Debug, Clone)]
struct Line {
    name: String,
    qty_milli: i64,
    unit_price: i64,
    discount_permille: i64,
    tax_bp: u16,
}

fn line() -> impl Strategy<Value = Line> {
    (
        proptest::string::string_regex("[a-zA-Z0-9 &<>ñÑáé'\"#/-]{1,100}").unwrap(),
        prop_oneof![
            (1i64..=50).prop_map(|u| u * 1000), // pieces
            1i64..=30_000,                      // weighed, grams (up to 30 kg)
            (1i64..=3000).prop_map(|d| d * 10), // weighed, whole hundredths
        ],
        1i64..=500_000,
        prop_oneof![Just(0i64), 0i64..=500],
        prop_oneof![Just(0u16), Just(1600u16), Just(1800u16)],
    )
        .prop_map(
            |(name, qty_milli, unit_price, discount_permille, tax_bp)| Line {
                name,
                qty_milli,
                unit_price,
                discount_permille,
                tax_bp,
            },
        )
}

fn sale_of(lines: &[Line]) -> SaleCreated {
    let ls: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let rate = TaxRateBp::new(l.tax_bp).unwrap();
            let gross = caja_shared::money::line_gross(Money(l.unit_price), QtyMilli(l.qty_milli)).unwrap();
            let discount = Money(gross.0 * l.discount_permille / 1000);
            let a = LineAmounts::compute(Money(l.unit_price), QtyMilli(l.qty_milli), discount, rate).unwrap();
            let mut v = json!({"product": format!("p{i}"), "name": l.name, "qty_milli": l.qty_milli,
                "unit_price": l.unit_price, "tax_bp": l.tax_bp, "total": a.total.0, "tax": a.tax.0});
            if discount.0 > 0 {
                v["discount"] = json!(discount.0);
            }
            v
        })
        .collect();
    let total: i64 = ls.iter().map(|l| l["total"].as_i64().unwrap()).sum();
    let mut s = sale(
        "E320000000077",
        json!(ls),
        json!([{"method": "cash", "amount": total}]),
        0,
        Some("00112345678"),
    );
    s.fiscal.as_mut().unwrap().buyer_name = Some("Ñoño & <Hijos> \"SRL\"".into());
    s
}

/// A decimal as an integer of `scale` decimals; `None` if it has more.
fn fixed(s: &str, scale: u32) -> Option<i128> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > scale as usize || int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = format!("{frac:0<w$}", w = scale as usize);
    Some(int.parse::<i128>().ok()? * 10i128.pow(scale) + frac.parse::<i128>().ok()?)
}

/// Checks the tolerance rule on a document's text; returns the line count.
fn check_tolerance(doc: &Element, sale: &SaleCreated) -> Result<(), TestCaseError> {
    let items: Vec<&Element> = doc.child("DetallesItems").unwrap().elements().collect();
    prop_assert_eq!(items.len(), sale.lines.len());
    let mut computed_total = 0i128; // millionths
    let mut amounts = 0i128; // cents
    for (i, it) in items.iter().enumerate() {
        let qty = fixed(it.text_at("CantidadItem").unwrap(), 2);
        let price = fixed(it.text_at("PrecioUnitarioItem").unwrap(), 4);
        let monto = fixed(it.text_at("MontoItem").unwrap(), 2).unwrap();
        let disc = it
            .text_at("DescuentoMonto")
            .map_or(Some(0), |d| fixed(d, 2))
            .unwrap();
        prop_assert!(
            qty.is_some_and(|q| q > 0),
            "CantidadItem of line {i} has more than 2 decimals"
        );
        prop_assert!(
            price.is_some(),
            "PrecioUnitarioItem of line {i} has more than 4 decimals"
        );
        let (qty, price) = (qty.unwrap(), price.unwrap());
        let line = qty * price - disc * 10_000; // millionths
        let diff = line - monto * 10_000;
        prop_assert!(
            diff.abs() <= 1_000_000,
            "line {i}: {} × {} − {} vs {}: diff {diff}",
            qty,
            price,
            disc,
            monto
        );
        prop_assert_eq!(
            monto,
            i128::from(sale.lines[i].total.0),
            "MontoItem is the register's line total"
        );
        let name = it.text_at("NombreItem").unwrap();
        prop_assert!(!name.is_empty() && name.chars().count() <= 80);
        computed_total += line;
        amounts += monto;
    }
    let total = fixed(doc.text_at("Encabezado/Totales/MontoTotal").unwrap(), 2).unwrap();
    prop_assert_eq!(total, amounts);
    let n = i128::try_from(items.len()).unwrap();
    prop_assert!((computed_total - total * 10_000).abs() <= n * 1_000_000);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_sales_meet_the_tolerance_rule_or_are_refused_naming_the_line(lines in proptest::collection::vec(line(), 1..25)) {
        let issuer = issuer();
        let sale = sale_of(&lines);
        match document::invoice(&sale, &ctx(&issuer, None)) {
            Ok(b) => {
                let doc = xml::parse(&b.xml).unwrap();
                // Caja's serialization is canonical: it reads back byte for byte.
                let canonical = doc.to_canonical();
                prop_assert_eq!(canonical.as_bytes(), &b.xml[xml::DECLARATION.len()..]);
                check_tolerance(&doc, &sale)?;
            }
            Err(DocumentError::Tolerance { line, diff_micro }) => {
                // Refused only when no quantity and price DGII's format can
                // hold fit: a weighed line (grams) where even the best price
                // per gram with 4 decimals is more than 1.00 off.
                let l = &sale.lines[line];
                prop_assert!(l.qty_milli.0 % 10 != 0, "{:?}", l);
                prop_assert!(diff_micro.abs() > 1_000_000);
                let grams = i128::from(l.qty_milli.0);
                let target = (i128::from(l.total.0) + i128::from(l.discount.map_or(0, |d| d.0))) * 100;
                let best = (target + grams / 2) / grams;
                let off = [best - 1, best, best + 1].iter().map(|p| (grams * p - target).abs()).min().unwrap();
                prop_assert!(off > 10_000, "line {}: a price per gram fits within {} ten-thousandths", line, off);
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected error: {e}"))),
        }
    }
}

#[test]
fn a_batch_of_random_sales_validates_and_verifies() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Firmante Prueba");
    let issuer = issuer();
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(line(), 1..12);
    let mut checked = 0;
    for n in 0..40 {
        let lines = strategy.new_tree(&mut runner).unwrap().current();
        let sale = sale_of(&lines);
        let out = match issue::issue_sale(&sale, &ctx(&issuer, None), &pki.signer()) {
            Ok(out) => out,
            Err(issue::IssueError::Document(DocumentError::Tolerance { .. })) => continue,
            Err(e) => panic!("{e}"),
        };
        for d in &out.documents {
            let (xsd, name) = match d.kind {
                issue::SignedKind::Rfce => ("RFCE-32.xsd", format!("rfce{n}.xml")),
                _ => ("e-CF-32.xsd", format!("e32-{n}.xml")),
            };
            pki.xmllint(xsd, &name, &d.xml)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{}", String::from_utf8_lossy(&d.xml)));
            pki.xmlsec_verify(&name, &d.xml, None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        checked += 1;
    }
    assert!(
        checked >= 30,
        "only {checked} of 40 random sales were issued"
    );
}
