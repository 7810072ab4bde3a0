//! Detail lines (`DetallesItems/Item`) and their totals (`Totales`), from sale
//! lines or returned lines.
//!
//! Quantities: DGII's `CantidadItem` takes at most 2 decimals, Caja counts
//! thousandths. A quantity with a whole number of hundredths is written as is
//! (`1.25`) with the shelf price per unit or kilogram (2 decimals) and no
//! `UnidadMedida`. A quantity that needs the third decimal is a weighed item
//! (grams): it is written in grams (`1255.00`) with `UnidadMedida` 17
//! ("Gramo", Formato e-CF Tabla IV) and the price per gram rounded to 4
//! decimals (the schema's limit for `PrecioUnitarioItem`).
//!
//! Tolerance rule (DGII "Informe Técnico e-CF v1.0" §12, "Regla de
//! tolerancia. Cuadratura"): for each line, `CantidadItem ×
//! PrecioUnitarioItem − DescuentoMonto` may differ from `MontoItem` by at
//! most 1.00; on the total, by as many units as there are lines. `MontoItem`
//! is always the register's line total and `MontoTotal` their exact sum, so
//! the total's difference is at most the sum of the lines' differences. A
//! line beyond 1.00 (a weighed line of more than about 20 kg at a price with
//! a fifth decimal per gram) is refused with the line named, never written:
//! DGII would accept it only conditionally.

use crate::kind::{ReturnLine, SaleLine};
use crate::money::{div_round_half_away, line_tax, Money, TaxRateBp};

use super::super::xml::{self, Node};
use super::DocumentError;

/// DGII's per-line tolerance, in millionths of a peso: 1.00.
pub const LINE_TOLERANCE_MICRO: i128 = 1_000_000;

/// `NombreItem`'s maximum length.
pub const MAX_ITEM_NAME_CHARS: usize = 80;

/// Most items DGII takes in one document (the schemas' `Item` maxOccurs for
/// e-CF 31/32).
pub const MAX_ITEMS: usize = 1000;

/// `UnidadMedida` "Gramo" (Formato e-CF, Tabla IV).
pub const UNIT_GRAM: &str = "17";

/// The ITBIS group of a line: 18 %, 16 % or exempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxGroup {
    /// ITBIS 1, 18 %.
    I1,
    /// ITBIS 2, 16 %.
    I2,
    /// Exempt.
    Exempt,
}

impl TaxGroup {
    fn of_bp(line: usize, bp: u16) -> Result<TaxGroup, DocumentError> {
        match bp {
            1800 => Ok(TaxGroup::I1),
            1600 => Ok(TaxGroup::I2),
            0 => Ok(TaxGroup::Exempt),
            _ => Err(DocumentError::TaxRate { line, bp }),
        }
    }

    /// The group whose rate gives exactly this tax on this total (returned
    /// lines carry amounts).
    fn of_amounts(line: usize, total: Money, tax: Money) -> Result<TaxGroup, DocumentError> {
        if tax == Money::ZERO {
            return Ok(TaxGroup::Exempt);
        }
        for (bp, g) in [(1800u16, TaxGroup::I1), (1600, TaxGroup::I2)] {
            let rate = TaxRateBp::new(bp).map_err(|_| DocumentError::overflow("tax rate"))?;
            if line_tax(total, rate).ok() == Some(tax) {
                return Ok(g);
            }
        }
        Err(DocumentError::TaxRate { line, bp: 0 })
    }

    /// `IndicadorFacturacion`: 1 (18 %), 2 (16 %), 4 (exempt).
    fn indicator(self) -> &'static str {
        match self {
            TaxGroup::I1 => "1",
            TaxGroup::I2 => "2",
            TaxGroup::Exempt => "4",
        }
    }
}

/// One detail line, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `NombreItem` (fitted to 80 characters).
    pub name: String,
    /// ITBIS group.
    pub group: TaxGroup,
    /// `CantidadItem`, in hundredths of the written unit.
    pub qty_hundredths: i64,
    /// `UnidadMedida`, when written.
    pub unit: Option<&'static str>,
    /// `PrecioUnitarioItem`, in ten-thousandths of a peso.
    pub price_e4: i64,
    /// `DescuentoMonto`.
    pub discount: Option<Money>,
    /// `MontoItem`: the line total, tax included.
    pub total: Money,
    /// The ITBIS in `total`.
    pub tax: Money,
}

/// `1.25` for 125 hundredths.
fn fixed(v: i64, decimals: u32) -> String {
    let p = 10i64.pow(decimals);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let p = p.unsigned_abs();
    format!("{sign}{}.{:0w$}", a / p, a % p, w = decimals as usize)
}

impl Item {
    /// `CantidadItem × PrecioUnitarioItem − DescuentoMonto − MontoItem`, in
    /// millionths of a peso.
    pub fn difference_micro(&self) -> i128 {
        let amount = i128::from(self.qty_hundredths) * i128::from(self.price_e4);
        let discount = i128::from(self.discount.map_or(0, |d| d.0));
        amount - (i128::from(self.total.0) + discount) * 10_000
    }

    fn node(&self, number: usize) -> Node {
        let mut n = vec![
            Node::Text("NumeroLinea", number.to_string()),
            Node::Text("IndicadorFacturacion", self.group.indicator().into()),
            Node::Text("NombreItem", self.name.clone()),
            Node::Text("IndicadorBienoServicio", "1".into()),
            Node::Text("CantidadItem", fixed(self.qty_hundredths, 2)),
        ];
        n.extend(Node::opt("UnidadMedida", self.unit.map(str::to_owned)));
        n.push(Node::Text("PrecioUnitarioItem", price_text(self.price_e4)));
        if let Some(d) = self.discount {
            n.push(Node::Text("DescuentoMonto", d.to_string()));
        }
        n.push(Node::Text("MontoItem", self.total.to_string()));
        Node::Parent("Item", n)
    }
}

/// A price with 2 decimals when it has no more, else 4.
fn price_text(e4: i64) -> String {
    if e4 % 100 == 0 {
        fixed(e4 / 100, 2)
    } else {
        fixed(e4, 4)
    }
}

/// The quantity as written and the price per written unit, from a quantity
/// in thousandths and a price in cents per thousand thousandths.
fn quantity(
    field: &str,
    qty_milli: i64,
    price_cents: i128,
) -> Result<(i64, Option<&'static str>, i64), DocumentError> {
    if qty_milli <= 0 {
        return Err(DocumentError::field(field, "must be positive"));
    }
    let to_i64 = |v: i128| i64::try_from(v).map_err(|_| DocumentError::overflow(field));
    if qty_milli % 10 == 0 {
        // Hundredths of the unit; price per unit, cents → ten-thousandths.
        Ok((qty_milli / 10, None, to_i64(price_cents * 100)?))
    } else {
        // Grams; price per gram: cents per kg × 100 / 1000, rounded.
        let e4 = div_round_half_away(price_cents * 100, 1000)
            .map_err(|_| DocumentError::overflow(field))?;
        Ok((
            qty_milli
                .checked_mul(100)
                .ok_or_else(|| DocumentError::overflow(field))?,
            Some(UNIT_GRAM),
            e4,
        ))
    }
}

fn checked(item: Item, line: usize) -> Result<Item, DocumentError> {
    if item.total.0 < 0 {
        return Err(DocumentError::field(
            &format!("lines[{line}].total"),
            "is negative",
        ));
    }
    let diff = item.difference_micro();
    if diff.abs() > LINE_TOLERANCE_MICRO {
        return Err(DocumentError::Tolerance {
            line,
            diff_micro: diff,
        });
    }
    Ok(item)
}

/// The items of a sale.
pub fn sale_items(lines: &[SaleLine]) -> Result<Vec<Item>, DocumentError> {
    if lines.is_empty() {
        return Err(DocumentError::field(
            "lines",
            "a document needs at least one line",
        ));
    }
    if lines.len() > MAX_ITEMS {
        return Err(DocumentError::field(
            "lines",
            "DGII takes at most 1000 lines in a document",
        ));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let discount = l.discount.filter(|d| *d != Money::ZERO);
            if discount.is_some_and(|d| d.0 < 0) {
                return Err(DocumentError::field(
                    &format!("lines[{i}].discount"),
                    "is negative",
                ));
            }
            let (qty_hundredths, unit, price_e4) = quantity(
                &format!("lines[{i}].qty_milli"),
                l.qty_milli.0,
                i128::from(l.unit_price.0),
            )?;
            let name = xml::fit(&l.name, MAX_ITEM_NAME_CHARS);
            let name = if name.is_empty() {
                xml::fit(l.product.as_str(), MAX_ITEM_NAME_CHARS)
            } else {
                name
            };
            checked(
                Item {
                    name,
                    group: TaxGroup::of_bp(i, l.tax_bp.bp())?,
                    qty_hundredths,
                    unit,
                    price_e4,
                    discount,
                    total: l.total,
                    tax: l.tax,
                },
                i,
            )
        })
        .collect()
}

/// The items of a return: the price is the refund per unit, rounded to 4
/// decimals (a returned line carries its refund, not a price).
pub fn return_items(lines: &[ReturnLine]) -> Result<Vec<Item>, DocumentError> {
    if lines.is_empty() {
        return Err(DocumentError::field(
            "lines",
            "a document needs at least one line",
        ));
    }
    if lines.len() > MAX_ITEMS {
        return Err(DocumentError::field(
            "lines",
            "DGII takes at most 1000 lines in a document",
        ));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let field = format!("lines[{i}].qty_milli");
            if l.qty_milli.0 <= 0 {
                return Err(DocumentError::field(&field, "must be positive"));
            }
            // Cents per 1000 thousandths, exact as a ratio: total × 1000 / qty.
            let (qty_hundredths, unit, _) = quantity(&field, l.qty_milli.0, 0)?;
            let per_written_unit_milli: i128 = if unit.is_some() { 1 } else { 1000 };
            let price_e4 = div_round_half_away(
                i128::from(l.total.0) * 100 * per_written_unit_milli,
                i128::from(l.qty_milli.0),
            )
            .map_err(|_| DocumentError::overflow(&field))?;
            let group = match l.tax_bp {
                Some(bp) => TaxGroup::of_bp(i, bp.bp())?,
                None => TaxGroup::of_amounts(i, l.total, l.tax)?,
            };
            checked(
                Item {
                    name: xml::fit(l.product.as_str(), MAX_ITEM_NAME_CHARS),
                    group,
                    qty_hundredths,
                    unit,
                    price_e4,
                    discount: None,
                    total: l.total,
                    tax: l.tax,
                },
                i,
            )
        })
        .collect()
}

/// `DetallesItems`.
pub fn items_node(items: &[Item]) -> Node {
    Node::Parent(
        "DetallesItems",
        items
            .iter()
            .enumerate()
            .map(|(i, it)| it.node(i + 1))
            .collect(),
    )
}

/// Sums per ITBIS group (tax-exclusive bases, taxes) and the total.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Base of 18 % lines.
    pub base_i1: i64,
    /// Base of 16 % lines.
    pub base_i2: i64,
    /// Exempt lines.
    pub exempt: i64,
    /// ITBIS at 18 %.
    pub tax_i1: i64,
    /// ITBIS at 16 %.
    pub tax_i2: i64,
    /// `MontoTotal`: the sum of `MontoItem`.
    pub total: i64,
}

impl Totals {
    /// Sums the items.
    pub fn of(items: &[Item]) -> Result<Totals, DocumentError> {
        let mut t = Totals::default();
        let add = |a: i64, b: i64| {
            a.checked_add(b)
                .ok_or_else(|| DocumentError::overflow("totals"))
        };
        for i in items {
            let base = i
                .total
                .0
                .checked_sub(i.tax.0)
                .ok_or_else(|| DocumentError::overflow("totals"))?;
            match i.group {
                TaxGroup::I1 => {
                    t.base_i1 = add(t.base_i1, base)?;
                    t.tax_i1 = add(t.tax_i1, i.tax.0)?;
                }
                TaxGroup::I2 => {
                    t.base_i2 = add(t.base_i2, base)?;
                    t.tax_i2 = add(t.tax_i2, i.tax.0)?;
                }
                TaxGroup::Exempt => t.exempt = add(t.exempt, i.total.0)?,
            }
            t.total = add(t.total, i.total.0)?;
        }
        Ok(t)
    }

    /// Whether any line is taxed.
    pub fn taxed(&self) -> bool {
        self.base_i1 != 0 || self.base_i2 != 0 || self.tax_i1 != 0 || self.tax_i2 != 0
    }

    /// `Totales`; `with_rates` writes `ITBIS1`/`ITBIS2` (the e-CF schemas
    /// have them, the RFCE schema does not).
    pub fn node(&self, with_rates: bool) -> Node {
        let m = |v: i64| Money(v).to_string();
        let taxed = self.base_i1 + self.base_i2;
        let i1 = self.base_i1 != 0 || self.tax_i1 != 0;
        let i2 = self.base_i2 != 0 || self.tax_i2 != 0;
        let mut n = Vec::new();
        if i1 || i2 {
            n.push(Node::Text("MontoGravadoTotal", m(taxed)));
        }
        if i1 {
            n.push(Node::Text("MontoGravadoI1", m(self.base_i1)));
        }
        if i2 {
            n.push(Node::Text("MontoGravadoI2", m(self.base_i2)));
        }
        if self.exempt != 0 {
            n.push(Node::Text("MontoExento", m(self.exempt)));
        }
        if with_rates && i1 {
            n.push(Node::Text("ITBIS1", "18".into()));
        }
        if with_rates && i2 {
            n.push(Node::Text("ITBIS2", "16".into()));
        }
        if i1 || i2 {
            n.push(Node::Text("TotalITBIS", m(self.tax_i1 + self.tax_i2)));
        }
        if i1 {
            n.push(Node::Text("TotalITBIS1", m(self.tax_i1)));
        }
        if i2 {
            n.push(Node::Text("TotalITBIS2", m(self.tax_i2)));
        }
        n.push(Node::Text("MontoTotal", m(self.total)));
        Node::Parent("Totales", n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_take_two_decimals_and_weighed_ones_grams() {
        assert_eq!(quantity("q", 1250, 38000).unwrap(), (125, None, 3_800_000));
        assert_eq!(quantity("q", 2000, 6500).unwrap(), (200, None, 650_000));
        // 1.255 kg at 385.55/kg: 1255 g at 0.3856/g (rounded half away).
        assert_eq!(
            quantity("q", 1255, 38555).unwrap(),
            (125_500, Some(UNIT_GRAM), 3856)
        );
        assert!(quantity("q", 0, 1).is_err());
        assert_eq!(fixed(125_500, 2), "1255.00");
        assert_eq!(price_text(3856), "0.3856");
        assert_eq!(price_text(3_800_000), "380.00");
    }

    #[test]
    fn the_tolerance_is_measured_against_the_line_total() {
        let item = |qty_hundredths, price_e4, discount: Option<i64>, total| Item {
            name: "x".into(),
            group: TaxGroup::Exempt,
            qty_hundredths,
            unit: None,
            price_e4,
            discount: discount.map(Money),
            total: Money(total),
            tax: Money::ZERO,
        };
        // Informe Técnico §12's examples: 5.50 × 100.33 = 551.815 vs 552.80.
        assert_eq!(
            item(550, 1_003_300, None, 55280).difference_micro(),
            -985_000
        );
        assert_eq!(
            item(200, 3_332_500, None, 66750).difference_micro(),
            -1_000_000
        );
        assert_eq!(item(200, 650_000, Some(1000), 12000).difference_micro(), 0);
        assert!(checked(item(200, 3_332_500, None, 66751), 3).is_err());
    }
}
