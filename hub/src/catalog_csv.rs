//! A store's product list as CSV (the export most stores already keep from a
//! spreadsheet or an older register) turned into the catalog load of
//! `POST /v1/admin/catalog`: one `CatalogItemUpserted` and one `PriceSet`
//! per row. Columns and their accepted spellings are in `docs/catalog.md`.
//!
//! Invariant: pure (bytes in, a load or the first error out). The whole file
//! is read and checked before anything is sent, so a bad file changes
//! nothing; every error names its line (1-based, as an editor counts, the
//! header is line 1) and its column (1-based, with the header's name).
//! Money is parsed with `caja_shared::money` (no floats).

use std::collections::BTreeSet;

use caja_shared::ids::Sku;
use caja_shared::kind::{CatalogItemUpserted, PriceSet, SoldBy, StockPolicy};
use caja_shared::money::{Money, TaxRateBp};

/// Most rows one file may hold (each row is two hub events; the hub's
/// default `max_events_per_push` is 5,000).
pub const MAX_ROWS: usize = 2_500;

/// Why a CSV file was refused. Nothing was loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A cell's value is wrong.
    #[error("line {line}, column {column} ({header}): {message}")]
    Cell {
        /// Line of the file, 1-based (the header is line 1).
        line: u64,
        /// Column, 1-based.
        column: usize,
        /// The column's header.
        header: String,
        /// What is wrong.
        message: String,
    },
    /// The header lacks a required column or repeats one.
    #[error("line 1 (header): {0}")]
    Header(String),
    /// The file is not CSV (bad UTF-8, an unterminated quote, a row with
    /// another number of cells).
    #[error("line {line}: {message}")]
    Row {
        /// Line of the file, 1-based.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// No product rows, or too many.
    #[error("{0}")]
    Size(String),
}

/// The catalog a CSV file holds, in the shape the hub loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvCatalog {
    /// One per row.
    pub items: Vec<CatalogItemUpserted>,
    /// One per row.
    pub prices: Vec<PriceSet>,
}

impl CsvCatalog {
    /// The body of `POST /v1/admin/catalog` for `stores` (every store when
    /// empty).
    pub fn to_load_body(&self, stores: &[String]) -> serde_json::Value {
        let mut body = serde_json::json!({ "items": self.items, "prices": self.prices });
        if !stores.is_empty() {
            body["stores"] = serde_json::json!(stores);
        }
        body
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Col {
    Code,
    Name,
    Price,
    Itbis,
    SoldBy,
    Barcodes,
    Policy,
}

impl Col {
    fn from_header(h: &str) -> Option<Col> {
        let h = h.trim().to_lowercase();
        Some(match h.as_str() {
            "code" | "codigo" | "código" | "sku" | "product" => Col::Code,
            "name" | "nombre" | "descripcion" | "descripción" => Col::Name,
            "price" | "precio" | "unit_price" => Col::Price,
            "itbis" | "itbis_rate" | "tax" | "tax_rate" | "impuesto" => Col::Itbis,
            "sold_by" | "unidad" | "venta" | "vendido_por" => Col::SoldBy,
            "barcodes" | "barcode" | "codigo_barras" | "código_barras" => Col::Barcodes,
            "policy" | "politica" | "política" => Col::Policy,
            _ => return None,
        })
    }
}

const REQUIRED: [(Col, &str); 5] = [
    (Col::Code, "code"),
    (Col::Name, "name"),
    (Col::Price, "price"),
    (Col::Itbis, "itbis"),
    (Col::SoldBy, "sold_by"),
];

/// Reads a whole CSV file (comma- or semicolon-separated, detected from the
/// header; an optional UTF-8 byte-order mark) into a catalog, or the first
/// error.
pub fn parse(bytes: &[u8]) -> Result<CsvCatalog, CsvError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let comma = first_line.iter().filter(|b| **b == b',').count();
    let semicolon = first_line.iter().filter(|b| **b == b';').count();
    let delimiter = if semicolon > comma { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    // The line of a byte offset as an editor counts it (the csv crate's own
    // count skips blank lines).
    let line_at = |pos: &csv::Position| -> u64 {
        let mut end = usize::try_from(pos.byte())
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        // A record's position may be where the blank lines before it start.
        while end < bytes.len() && matches!(bytes[end], b'\n' | b'\r') {
            end += 1;
        }
        bytes[..end].iter().filter(|b| **b == b'\n').count() as u64 + 1
    };
    let headers = reader
        .headers()
        .map_err(|e| row_error(&e, 1, &line_at))?
        .clone();
    let mut cols: Vec<Option<Col>> = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let col = Col::from_header(h);
        if let Some(c) = col {
            if cols.contains(&Some(c)) {
                return Err(CsvError::Header(format!(
                    "column {} ({h}) repeats an earlier column",
                    i + 1
                )));
            }
        }
        cols.push(col);
    }
    for (c, name) in REQUIRED {
        if !cols.contains(&Some(c)) {
            return Err(CsvError::Header(format!(
                "no column {name} (columns: code, name, price, itbis, sold_by; optional barcodes, policy)"
            )));
        }
    }
    let mut out = CsvCatalog {
        items: Vec::new(),
        prices: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    for record in reader.records() {
        let line_hint = out.items.len() as u64 + 2;
        let record = record.map_err(|e| row_error(&e, line_hint, &line_at))?;
        let line = record.position().map_or(line_hint, &line_at);
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |want: Col| -> (usize, &str) {
            let i = cols.iter().position(|c| *c == Some(want)).unwrap_or(0);
            (i, record.get(i).unwrap_or("").trim())
        };
        let bad = |i: usize, message: String| CsvError::Cell {
            line,
            column: i + 1,
            header: headers.get(i).unwrap_or("").trim().to_owned(),
            message,
        };
        let (i, code) = cell(Col::Code);
        let product: Sku = code.parse().map_err(|_| {
            bad(
                i,
                format!("{code:?} is not a product code (1–64 letters, digits, '.', '_' or '-')"),
            )
        })?;
        if !seen.insert(product.clone()) {
            return Err(bad(i, format!("{code} appears on an earlier line")));
        }
        let (i, name) = cell(Col::Name);
        if name.is_empty() || name.chars().count() > 200 {
            return Err(bad(i, "a name of 1 to 200 characters is required".into()));
        }
        let (i, price) = cell(Col::Price);
        let unit_price = parse_price(price).map_err(|m| bad(i, m))?;
        let (i, rate) = cell(Col::Itbis);
        let tax_bp = parse_rate(rate).map_err(|m| bad(i, m))?;
        let (i, by) = cell(Col::SoldBy);
        let sold_by = parse_sold_by(by).map_err(|m| bad(i, m))?;
        let mut barcodes = Vec::new();
        if cols.contains(&Some(Col::Barcodes)) {
            let (i, text) = cell(Col::Barcodes);
            for b in text.split(['|', ' ']).filter(|b| !b.is_empty()) {
                barcodes.push(
                    b.parse::<Sku>()
                        .map_err(|_| bad(i, format!("{b:?} is not a barcode")))?,
                );
            }
        }
        let policy = if cols.contains(&Some(Col::Policy)) {
            let (i, p) = cell(Col::Policy);
            parse_policy(p).map_err(|m| bad(i, m))?
        } else {
            StockPolicy::Untracked
        };
        out.prices.push(PriceSet {
            product: product.clone(),
            unit_price,
        });
        out.items.push(CatalogItemUpserted {
            product,
            name: name.to_owned(),
            barcodes,
            tax_bp,
            sold_by,
            policy,
        });
        if out.items.len() > MAX_ROWS {
            return Err(CsvError::Size(format!(
                "more than {MAX_ROWS} products: split the file (each load is at most {MAX_ROWS} rows)"
            )));
        }
    }
    if out.items.is_empty() {
        return Err(CsvError::Size("the file has no product rows".into()));
    }
    Ok(out)
}

fn row_error(e: &csv::Error, line_hint: u64, line_at: &dyn Fn(&csv::Position) -> u64) -> CsvError {
    let line = e.position().map_or(line_hint, line_at);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} cells where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text (save the file as CSV UTF-8)".into(),
        _ => e.to_string(),
    };
    CsvError::Row { line, message }
}

/// `95.00`, `1,250.50`, `RD$ 95`, `$95.5`: pesos with at most two decimals,
/// a comma only as the thousands separator (groups of three digits), so a
/// decimal comma (`5,00`) is refused rather than read as 500.
fn parse_price(text: &str) -> Result<Money, String> {
    let t = text
        .trim()
        .trim_start_matches("RD$")
        .trim_start_matches('$')
        .trim();
    let whole = t.split('.').next().unwrap_or("");
    if whole.contains(',') {
        let mut groups = whole.split(',');
        let first = groups.next().unwrap_or("");
        let grouped = (1..=3).contains(&first.len()) && groups.all(|g| g.len() == 3);
        if !grouped {
            return Err(format!(
                "{text:?}: use a period for decimals (95.50); a comma only separates thousands (1,250.00)"
            ));
        }
    }
    let t: String = t.chars().filter(|c| *c != ',').collect();
    if t.is_empty() {
        return Err("a price is required (e.g. 95.00)".into());
    }
    let m: Money = t
        .parse()
        .map_err(|e| format!("{text:?} is not a price in pesos: {e}"))?;
    if m.is_negative() || m == Money::ZERO {
        return Err(format!("{text:?}: the price must be above zero"));
    }
    Ok(m)
}

/// `18`, `18%`, `16`, `0`, `exento`, `E`: a percentage with at most two
/// decimals (basis points: 18% = 1800).
fn parse_rate(text: &str) -> Result<TaxRateBp, String> {
    let t = text.trim().trim_end_matches('%').trim().to_lowercase();
    if matches!(t.as_str(), "exento" | "exenta" | "e" | "exempt") {
        return Ok(TaxRateBp::ZERO);
    }
    let (whole, frac) = t.split_once('.').unwrap_or((t.as_str(), ""));
    let ok = !whole.is_empty()
        && whole.len() <= 3
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 2
        && frac.bytes().all(|b| b.is_ascii_digit());
    let bad =
        || format!("{text:?} is not an ITBIS rate (a percentage such as 18, 16 or 0, or exento)");
    if !ok {
        return Err(bad());
    }
    let whole: u16 = whole.parse().map_err(|_| bad())?;
    let frac: u16 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let bp = whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)?;
    TaxRateBp::new(bp).map_err(|_| format!("{text:?}: a rate is at most 100%"))
}

fn parse_sold_by(text: &str) -> Result<SoldBy, String> {
    match text.trim().to_lowercase().as_str() {
        "unit" | "unidad" | "ud" | "und" | "u" | "pieza" => Ok(SoldBy::Unit),
        "weight" | "peso" | "kg" | "kilo" | "w" => Ok(SoldBy::Weight),
        _ => Err(format!(
            "{text:?}: sold_by is unit (unidad) or weight (peso, kg)"
        )),
    }
}

fn parse_policy(text: &str) -> Result<StockPolicy, String> {
    match text.trim().to_lowercase().as_str() {
        "" | "untracked" | "sin_control" => Ok(StockPolicy::Untracked),
        "block" | "bloquear" => Ok(StockPolicy::Block),
        "warn" | "avisar" => Ok(StockPolicy::Warn),
        _ => Err(format!("{text:?}: policy is block, warn or untracked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "code,name,price,itbis,sold_by\n\
        ARROZ,Arroz selecto 1 lb,32.50,18,unidad\n\
        2000000000017,Queso de freír,\"1,250.00\",18%,peso\n\
        7460000000011,Leche entera 1 L,RD$ 95,exento,unit\n";

    #[test]
    fn a_store_export_becomes_items_and_prices() {
        let c = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(c.items.len(), 3);
        assert_eq!(c.prices[0].unit_price, Money::from_minor(3250));
        assert_eq!(c.prices[1].unit_price, Money::from_minor(125_000));
        assert_eq!(c.items[1].sold_by, SoldBy::Weight);
        assert_eq!(c.items[1].tax_bp.bp(), 1800);
        assert_eq!(c.items[2].tax_bp.bp(), 0);
        assert_eq!(c.items[2].policy, StockPolicy::Untracked);
        let body = c.to_load_body(&[]);
        assert!(body.get("stores").is_none());
        assert_eq!(body["prices"][2]["unit_price"], 9500);
    }

    #[test]
    fn semicolons_spanish_headers_and_a_bom() {
        let text = "\u{feff}Código;Nombre;Precio;ITBIS;Unidad;Política\nPAN;Pan de agua;1,005.00;16;ud;block\n";
        let c = parse(text.as_bytes()).unwrap();
        assert_eq!(c.prices[0].unit_price, Money::from_minor(100_500));
        // A decimal comma is refused, never read as hundreds of pesos.
        let e =
            parse("code;name;price;itbis;sold_by\nPAN;Pan;5,00;16;ud\n".as_bytes()).unwrap_err();
        assert!(e.to_string().contains("use a period for decimals"), "{e}");
        assert_eq!(c.items[0].tax_bp.bp(), 1600);
        assert_eq!(c.items[0].policy, StockPolicy::Block);
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = "code,name,price,itbis,sold_by\nARROZ,Arroz,32.50,18,unidad\nHUEVO,Huevo,7.5.0,18,unidad\n";
        let e = parse(text.as_bytes()).unwrap_err();
        assert!(
            matches!(&e, CsvError::Cell { line: 3, column: 3, header, .. } if header == "price"),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("line 3, column 3 (price): "),
            "{e}"
        );
        for (text, line, column) in [
            ("code,name,price,itbis,sold_by\nA,B,1.00,18,litro\n", 2, 5),
            ("code,name,price,itbis,sold_by\nA,B,1.00,118,unidad\n", 2, 4),
            (
                "code,name,price,itbis,sold_by\nA B,B,1.00,18,unidad\n",
                2,
                1,
            ),
            ("code,name,price,itbis,sold_by\nA,,1.00,18,unidad\n", 2, 2),
            ("code,name,price,itbis,sold_by\nA,B,-1.00,18,unidad\n", 2, 3),
            (
                "code,name,price,itbis,sold_by\nA,B,1.00,18,unidad\n\nA,C,2.00,18,unidad\n",
                4,
                1,
            ),
        ] {
            match parse(text.as_bytes()).unwrap_err() {
                CsvError::Cell {
                    line: l, column: c, ..
                } => assert_eq!((l, c), (line, column), "{text}"),
                other => panic!("{text}: {other}"),
            }
        }
        let e = parse(b"code,name,price,itbis,sold_by\nA,B,1.00,18\n").unwrap_err();
        assert!(matches!(e, CsvError::Row { line: 2, .. }), "{e}");
        let e = parse(b"code,name,precio,itbis\n").unwrap_err();
        assert!(e.to_string().contains("no column sold_by"), "{e}");
        let e = parse(b"code,name,price,itbis,sold_by\n").unwrap_err();
        assert!(matches!(e, CsvError::Size(_)), "{e}");
        let e = parse(b"code,name,price,itbis,sold_by\nA,B\xff,1.00,18,unidad\n").unwrap_err();
        assert!(matches!(e, CsvError::Row { line: 2, .. }), "{e}");
    }
}
