//! Fiscal series at the hub: the admin's series definition, the registers'
//! range requests, and the reports head office exports (the per-number
//! accounting and the DGII 607 sales layout).
//!
//! The arithmetic (formatting, accounting, allocation) is `caja_shared::fiscal`;
//! this module checks requests and renders reports. Architecture invariant:
//! pure; no SQL, no clock (the store passes rows and times in).

use caja_shared::fiscal::{self, Accounting, NumberStatus, TaxIdKind};
use caja_shared::ids::{RequestId, StoreId};
use caja_shared::kind::{PaymentMethod, SaleCreated};
use caja_shared::localtime::{LocalDate, UtcOffset};
use serde::{Deserialize, Serialize};

use crate::wire::ApiError;

/// Most numbers one range request may ask for.
pub const MAX_BLOCK: u64 = 1000;

/// A series as head office loads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// Prefix, e.g. `B02`.
    pub prefix: String,
    /// Digits after the prefix.
    pub digits: u8,
    /// First number, inclusive.
    pub first: u64,
    /// Last number, inclusive.
    pub last: u64,
    /// Last day it may be used, `yyyy-mm-dd` in each store's time.
    pub valid_until: String,
    /// The stores it serves; empty = every store.
    #[serde(default)]
    pub stores: Vec<StoreId>,
}

impl SeriesSpec {
    /// Checks every field; the error names the first one at fault.
    pub fn check(&self) -> Result<LocalDate, ApiError> {
        fiscal::check_series(&self.prefix, self.digits, self.first, self.last).map_err(|e| {
            let field = match &e {
                fiscal::FiscalError::BadPrefix(_) => "prefix",
                fiscal::FiscalError::BadDigits(_) => "digits",
                fiscal::FiscalError::BadRange { field, .. } => field,
                fiscal::FiscalError::BadTaxId(_) => "buyer_tax_id",
            };
            ApiError::invalid(field, e.to_string())
        })?;
        LocalDate::parse_iso(&self.valid_until)
            .ok_or_else(|| ApiError::invalid("valid_until", "must be a date yyyy-mm-dd"))
    }
}

/// A loaded series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesInfo {
    /// Its id.
    pub series_id: String,
    /// Prefix.
    pub prefix: String,
    /// Width.
    pub digits: u8,
    /// First number.
    pub first: u64,
    /// Last number.
    pub last: u64,
    /// Last local day of use.
    pub valid_until: String,
    /// Stores served (empty = all).
    pub stores: Vec<StoreId>,
}

impl SeriesInfo {
    /// Whether it serves `store`.
    pub fn serves(&self, store: StoreId) -> bool {
        self.stores.is_empty() || self.stores.contains(&store)
    }

    /// The last millisecond it may be used in a zone at `offset`.
    pub fn valid_until_ms(&self, offset: UtcOffset) -> i64 {
        LocalDate::parse_iso(&self.valid_until).map_or(i64::MIN, |d| d.end_utc_ms(offset))
    }
}

/// `POST /v1/fiscal/ranges`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeRequest {
    /// The register's id for this request (idempotency key).
    pub request_id: RequestId,
    /// The prefix asked for.
    pub series: String,
    /// How many numbers.
    pub count: u64,
}

impl RangeRequest {
    /// Checks the fields.
    pub fn check(&self) -> Result<(), ApiError> {
        fiscal::check_prefix(&self.series)
            .map_err(|e| ApiError::invalid("series", e.to_string()))?;
        if self.count == 0 || self.count > MAX_BLOCK {
            return Err(ApiError::invalid(
                "count",
                format!("must be from 1 to {MAX_BLOCK}"),
            ));
        }
        Ok(())
    }
}

/// The accounting of one series, for head office.
#[derive(Debug, Clone)]
pub struct SeriesReport {
    /// The series.
    pub series: SeriesInfo,
    /// Every number's status.
    pub accounting: Accounting,
}

impl SeriesReport {
    /// The report as JSON: totals (adding up to `size`), duplicates,
    /// anomalies and the runs.
    pub fn to_json(&self) -> serde_json::Value {
        let a = &self.accounting;
        let totals: serde_json::Map<String, serde_json::Value> = NumberStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), a.total(*s).into()))
            .collect();
        let runs: Vec<serde_json::Value> = a
            .runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "first": self.number(r.first),
                    "last": self.number(r.last),
                    "count": r.last - r.first + 1,
                    "status": r.status.as_str(),
                    "device": r.device,
                    "grant": r.grant,
                    "sales": r.sales.iter().map(|u| serde_json::json!({
                        "sale": u.sale, "device": u.device, "event_id": u.event_id,
                        "at_ms": u.at_ms, "voided": u.voided,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "series": self.series,
            "size": a.size(),
            "totals": totals,
            "duplicates": a.duplicates,
            "anomalies": a.anomalies.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>(),
            "runs": runs,
        })
    }

    /// The report as CSV, one row per run (a used or voided number is a run
    /// of one, with its sale): `first,last,count,status,device,grant,sale,sale_event,at_ms`.
    /// A duplicated number has one row per sale.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("first,last,count,status,device,grant,sale,sale_event,at_ms\n");
        for r in &self.accounting.runs {
            let common = format!(
                "{},{},{},{}",
                self.number(r.first),
                self.number(r.last),
                r.last - r.first + 1,
                r.status.as_str()
            );
            if r.sales.is_empty() {
                out.push_str(&format!(
                    "{common},{},{},,,\n",
                    r.device.map(|d| d.to_string()).unwrap_or_default(),
                    r.grant.map(|g| g.to_string()).unwrap_or_default()
                ));
            }
            for u in &r.sales {
                let status = if u.voided { "voided" } else { "used" };
                out.push_str(&format!(
                    "{},{},1,{status},{},,{},{},{}\n",
                    self.number(r.first),
                    self.number(r.last),
                    u.device,
                    u.sale,
                    u.event_id,
                    u.at_ms
                ));
            }
        }
        out
    }

    /// The printed number `n` of this series (`E320000000051`).
    pub fn number(&self, n: u64) -> String {
        fiscal::format_number(&self.series.prefix, self.series.digits, n)
            .unwrap_or_else(|_| format!("{}{n}", self.series.prefix))
    }
}

/// One sale of the 607 report, as the store read it from the event.
#[derive(Debug, Clone)]
pub struct Sale607 {
    /// The sale's body.
    pub sale: SaleCreated,
    /// When (the event's HLC ms).
    pub at_ms: i64,
}

fn amount(centavos: i128) -> String {
    let sign = if centavos < 0 { "-" } else { "" };
    let a = centavos.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// The DGII "607" sales report (Formato de Envío de Ventas de Bienes y
/// Servicios) for one store and month, in the store's time: a header
/// `607|<RNC>|<AAAAMM>|<count>` and one pipe-separated line of the 23 fields
/// per fiscal document that stands (voided documents belong to the 608 and
/// are left out): buyer id and its type (1 RNC, 2 cédula), NCF, modified NCF,
/// income type (01 operations), date `AAAAMMDD`, withholding date, amount
/// billed without ITBIS, ITBIS billed, the withholding and other-tax fields
/// (0.00), legal tip, and the amounts by form of payment: cash (net of
/// change), cheque/transfer, card, credit (fiado), gift certificates, barter,
/// other.
pub fn render_607(rnc: &str, year: i64, month: u8, offset: UtcOffset, sales: &[Sale607]) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    for s in sales {
        let Some(f) = &s.sale.fiscal else { continue };
        let (id, id_type) = match f.buyer_tax_id.as_deref().map(fiscal::validate_tax_id) {
            Some(Ok((TaxIdKind::Rnc, d))) => (d, "1"),
            Some(Ok((TaxIdKind::Cedula, d))) => (d, "2"),
            _ => (String::new(), ""),
        };
        let date = LocalDate::from_utc_ms(s.at_ms, offset);
        let total = i128::from(s.sale.total.0);
        let tax = i128::from(s.sale.tax.0);
        let (mut cash, mut transfer, mut card, mut credit, mut vouchers) =
            (0i128, 0i128, 0i128, 0i128, 0i128);
        for p in &s.sale.payments {
            let a = i128::from(p.amount.0);
            match p.method {
                PaymentMethod::Cash => cash += a,
                PaymentMethod::Transfer => transfer += a,
                PaymentMethod::Card => card += a,
                PaymentMethod::Fiado => credit += a,
                // Store credit from a return is a voucher of the store: the
                // "bonos o certificados de regalo" column.
                PaymentMethod::StoreCredit => vouchers += a,
            }
        }
        cash -= i128::from(s.sale.change.0);
        let fields = [
            id,
            id_type.to_owned(),
            f.number.clone(),
            String::new(),
            "01".to_owned(),
            format!("{:04}{:02}{:02}", date.year, date.month, date.day),
            String::new(),
            amount(total - tax),
            amount(tax),
            amount(0),
            amount(0),
            amount(0),
            amount(0),
            amount(0),
            amount(0),
            amount(0),
            amount(cash),
            amount(transfer),
            amount(card),
            amount(credit),
            amount(vouchers),
            amount(0),
            amount(0),
        ];
        rows.push((f.number.clone(), fields.join("|")));
    }
    rows.sort();
    let mut out = format!("607|{rnc}|{year:04}{month:02}|{}\n", rows.len());
    for (_, line) in rows {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::kind::{FiscalRef, Payment};
    use caja_shared::money::Money;

    fn sale(
        number: &str,
        buyer: Option<&str>,
        total: i64,
        tax: i64,
        pays: &[(PaymentMethod, i64)],
        change: i64,
    ) -> SaleCreated {
        SaleCreated {
            sale_id: "019aaf70-dbf4-7000-8000-00000000a001".parse().unwrap(),
            cashier: "ana".into(),
            shift_id: None,
            customer: None,
            fiscal: Some(FiscalRef {
                series: number[..3].into(),
                number: number.into(),
                modifies: None,
                valid_until: Some("2027-12-31".into()),
                buyer_tax_id: buyer.map(str::to_owned),
                buyer_name: None,
            }),
            lines: vec![],
            total: Money(total),
            tax: Money(tax),
            payments: pays
                .iter()
                .map(|(m, a)| Payment {
                    method: *m,
                    amount: Money(*a),
                    reference: None,
                })
                .collect(),
            change: Money(change),
            approval: None,
        }
    }

    #[test]
    fn the_607_has_a_header_and_23_fields_per_document() {
        // 2026-11-01 03:30 UTC is still October 31st in Santo Domingo.
        let at = LocalDate::new(2026, 11, 1)
            .unwrap()
            .start_utc_ms(UtcOffset::UTC)
            + 3 * 3_600_000
            + 1_800_000;
        let sales = vec![
            Sale607 {
                sale: sale(
                    "B0200000002",
                    None,
                    13000,
                    1983,
                    &[(PaymentMethod::Cash, 20000)],
                    7000,
                ),
                at_ms: at + 3_600_000,
            },
            Sale607 {
                sale: sale(
                    "B0100000001",
                    Some("101850043"),
                    11800,
                    1800,
                    &[(PaymentMethod::Card, 5000), (PaymentMethod::Fiado, 6800)],
                    0,
                ),
                at_ms: at,
            },
        ];
        let text = render_607("131098193", 2026, 10, UtcOffset::SANTO_DOMINGO, &sales);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "607|131098193|202610|2");
        assert_eq!(
            lines[1],
            "101850043|1|B0100000001||01|20261031||100.00|18.00|0.00|0.00|0.00|0.00|0.00|0.00|0.00|0.00|0.00|50.00|68.00|0.00|0.00|0.00"
        );
        assert_eq!(lines[2].split('|').count(), 23);
        assert!(
            lines[2].starts_with("||B0200000002||01|20261101||110.17|19.83|"),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].contains("|130.00|0.00|0.00|0.00|"),
            "cash net of change: {}",
            lines[2]
        );
    }

    #[test]
    fn bad_specs_and_requests_name_their_field() {
        let mut spec = SeriesSpec {
            prefix: "B02".into(),
            digits: 8,
            first: 1,
            last: 100,
            valid_until: "2027-12-31".into(),
            stores: vec![],
        };
        spec.check().unwrap();
        spec.valid_until = "31/12/2027".into();
        assert_eq!(
            spec.check().unwrap_err().field.as_deref(),
            Some("valid_until")
        );
        spec.valid_until = "2027-12-31".into();
        spec.last = 0;
        assert_eq!(spec.check().unwrap_err().field.as_deref(), Some("last"));
        spec.prefix = "X".into();
        assert_eq!(spec.check().unwrap_err().field.as_deref(), Some("prefix"));
        let req = RangeRequest {
            request_id: "019aaf70-dbf4-7000-8000-00000000a001".parse().unwrap(),
            series: "B02".into(),
            count: 0,
        };
        assert_eq!(req.check().unwrap_err().field.as_deref(), Some("count"));
    }
}
