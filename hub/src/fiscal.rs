//! Fiscal series at the hub: the admin's series definition, the registers'
//! range requests, and the reports head office exports (the per-number
//! accounting, the DGII 607 sales layout and the 608 of voided documents).
//!
//! The arithmetic (formatting, accounting, allocation) is `caja_shared::fiscal`;
//! this module checks requests and renders reports. Architecture invariant:
//! pure; no SQL, no clock (the store passes rows and times in).

use caja_shared::fiscal::{self, Accounting, NumberStatus, TaxIdKind};
use caja_shared::ids::{RequestId, StoreId};
use caja_shared::kind::{PaymentMethod, SaleCreated, SaleReturned};
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

/// One return of the month issued as a fiscal credit note (`B04`/`E34`).
#[derive(Debug, Clone)]
pub struct Return607 {
    /// The return's body (its `credit_note` is set).
    pub ret: SaleReturned,
    /// When (the event's HLC ms).
    pub at_ms: i64,
}

/// One fiscal number voided in the month (a sale voided at the register).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Void608 {
    /// The voided document's number.
    pub number: String,
    /// When the voided document was issued (the sale's HLC ms).
    pub issued_ms: i64,
}

/// Everything of one store and month the 607 and 608 are made from.
#[derive(Debug, Clone, Default)]
pub struct MonthDocuments {
    /// Fiscal sales that stand (not voided), issued in the month.
    pub sales: Vec<Sale607>,
    /// Credit notes issued in the month.
    pub returns: Vec<Return607>,
    /// Fiscal numbers voided in the month.
    pub voided: Vec<Void608>,
}

/// Consumer invoices (`B02`, `E32`) below this total are not listed one by
/// one in the 607: their sums go in the "resumen de facturas de consumo" of
/// the Oficina Virtual when the 607 is sent (RD$250,000.00, the same
/// threshold as e-CF summaries).
pub const CONSUMER_DETAIL_THRESHOLD: i64 = 25_000_000;

fn amount(centavos: i128) -> String {
    let sign = if centavos < 0 { "-" } else { "" };
    let a = centavos.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

fn yyyymmdd(ms: i64, offset: UtcOffset) -> String {
    let d = LocalDate::from_utc_ms(ms, offset);
    format!("{:04}{:02}{:02}", d.year, d.month, d.day)
}

/// Buyer id and its 607 type (1 RNC, 2 cédula), or two empty fields.
fn buyer(tax_id: Option<&str>) -> (String, &'static str) {
    match tax_id.map(fiscal::validate_tax_id) {
        Some(Ok((TaxIdKind::Rnc, d))) => (d, "1"),
        Some(Ok((TaxIdKind::Cedula, d))) => (d, "2"),
        _ => (String::new(), ""),
    }
}

/// Whether a document of this series is a consumer invoice (`B02`, `E32`).
fn is_consumer(series: &str) -> bool {
    matches!(series, "B02" | "E32")
}

/// A sale's amounts by form of payment (cash net of change): cash,
/// cheque/transfer, card, credit (fiado), vouchers (store credit).
fn payment_split(sale: &SaleCreated) -> [i128; 5] {
    let mut by = [0i128; 5];
    for p in &sale.payments {
        let a = i128::from(p.amount.0);
        let slot = match p.method {
            PaymentMethod::Cash => 0,
            PaymentMethod::Transfer => 1,
            PaymentMethod::Card => 2,
            PaymentMethod::Fiado => 3,
            // Store credit from a return is a voucher of the store: the
            // "bonos o certificados de regalo" column.
            PaymentMethod::StoreCredit => 4,
        };
        by[slot] += a;
    }
    by[0] -= i128::from(sale.change.0);
    by
}

/// The consumer invoices below [`CONSUMER_DETAIL_THRESHOLD`] of a month,
/// summed for the Oficina Virtual's "resumen de facturas de consumo".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsumerSummary {
    /// How many invoices.
    pub count: u64,
    /// Amount billed without ITBIS, centavos.
    pub amount: i64,
    /// ITBIS billed, centavos.
    pub itbis: i64,
    /// Cash (net of change), centavos.
    pub cash: i64,
    /// Cheque, transfer or deposit, centavos.
    pub transfer: i64,
    /// Debit or credit card, centavos.
    pub card: i64,
    /// Sale on credit (fiado), centavos.
    pub credit: i64,
    /// Vouchers or gift certificates (store credit), centavos.
    pub vouchers: i64,
}

/// The 607 of a month: the pipe-separated text and the consumer summary
/// that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report607 {
    /// The text file.
    pub text: String,
    /// The consumer invoices not listed in `text`.
    pub consumer: ConsumerSummary,
}

/// The DGII "607" sales report (Formato de Envío de Ventas de Bienes y
/// Servicios) for one store and month, in the store's time: a header
/// `607|<RNC>|<AAAAMM>|<lines>` and one pipe-separated line of 23 fields
/// per document: buyer id and its type (1 RNC, 2 cédula), NCF, modified NCF,
/// income type (01 operations), date `AAAAMMDD`, withholding date, amount
/// billed without ITBIS, ITBIS billed, the withholding and other-tax fields
/// (0.00), legal tip, and the amounts by form of payment: cash (net of
/// change), cheque/transfer, card, credit (fiado), gift certificates, barter,
/// other.
///
/// - Voided documents belong to the 608 and are left out.
/// - Consumer invoices (`B02`, `E32`) below RD$250,000.00 are not listed:
///   they are summed into [`Report607::consumer`], which head office types
///   into the Oficina Virtual's consumer-sales section when it sends the
///   file; the header counts the listed lines only.
/// - A credit note (`B04`, `E34`) is its own line: its number, the number it
///   modifies, positive amounts, and no payment fields (it pays nothing).
///
/// Sources: the 23 fields and their order, the consumer summary and the
/// credit-note line follow the layout DGII's Oficina Virtual accepts as
/// implemented by the open-source Odoo localization `l10n-dominicana`
/// (`dgii_reports`), which follows DGII's "Instructivo de llenado del
/// Formato 607"; the instructivo itself could not be read from here.
pub fn render_607(
    rnc: &str,
    year: i64,
    month: u8,
    offset: UtcOffset,
    docs: &MonthDocuments,
) -> Report607 {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut consumer = ConsumerSummary::default();
    let narrow = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    for s in &docs.sales {
        let Some(f) = &s.sale.fiscal else { continue };
        let total = i128::from(s.sale.total.0);
        let tax = i128::from(s.sale.tax.0);
        let pay = payment_split(&s.sale);
        if is_consumer(&f.series) && s.sale.total.0 < CONSUMER_DETAIL_THRESHOLD {
            consumer.count += 1;
            consumer.amount = narrow(i128::from(consumer.amount) + total - tax);
            consumer.itbis = narrow(i128::from(consumer.itbis) + tax);
            consumer.cash = narrow(i128::from(consumer.cash) + pay[0]);
            consumer.transfer = narrow(i128::from(consumer.transfer) + pay[1]);
            consumer.card = narrow(i128::from(consumer.card) + pay[2]);
            consumer.credit = narrow(i128::from(consumer.credit) + pay[3]);
            consumer.vouchers = narrow(i128::from(consumer.vouchers) + pay[4]);
            continue;
        }
        let (id, id_type) = buyer(f.buyer_tax_id.as_deref());
        let mut fields = vec![
            id,
            id_type.to_owned(),
            f.number.clone(),
            String::new(),
            "01".to_owned(),
            yyyymmdd(s.at_ms, offset),
            String::new(),
            amount(total - tax),
            amount(tax),
        ];
        fields.extend(std::iter::repeat_n(amount(0), 7));
        fields.extend(pay.iter().map(|a| amount(*a)));
        fields.extend([amount(0), amount(0)]);
        debug_assert_eq!(fields.len(), 23);
        rows.push((f.number.clone(), fields.join("|")));
    }
    for r in &docs.returns {
        let Some(note) = &r.ret.credit_note else {
            continue;
        };
        let total = i128::from(r.ret.total.0).abs();
        let tax = i128::from(r.ret.tax.0).abs();
        let (id, id_type) = buyer(note.buyer_tax_id.as_deref());
        let mut fields = vec![
            id,
            id_type.to_owned(),
            note.number.clone(),
            note.modifies.clone().unwrap_or_default(),
            "01".to_owned(),
            yyyymmdd(r.at_ms, offset),
            String::new(),
            amount(total - tax),
            amount(tax),
        ];
        fields.extend(std::iter::repeat_n(amount(0), 7));
        fields.extend(std::iter::repeat_n(String::new(), 7));
        debug_assert_eq!(fields.len(), 23);
        rows.push((note.number.clone(), fields.join("|")));
    }
    rows.sort();
    let mut text = format!("607|{rnc}|{year:04}{month:02}|{}\n", rows.len());
    for (_, line) in rows {
        text.push_str(&line);
        text.push('\n');
    }
    Report607 { text, consumer }
}

/// `Tipo de anulación` 04, "corrección de la información": a sale voided at
/// the register before the customer left with it.
pub const VOID_REASON_CORRECTION: &str = "04";

/// The DGII "608" report of voided documents (Formato de Envío de
/// Comprobantes Anulados) for one store and month: a header
/// `608|<RNC>|<AAAAMM>|<lines>` and one line `NCF|AAAAMMDD|tipo de
/// anulación` per number voided in the month (the date is the voided
/// document's own).
///
/// Electronic numbers that were never used (a written-off register's
/// numbers) are not listed: they are cancelled with DGII directly by an
/// ANECF (Informe Técnico e-CF, §10). Source of the layout: as for
/// [`render_607`].
pub fn render_608(
    rnc: &str,
    year: i64,
    month: u8,
    offset: UtcOffset,
    docs: &MonthDocuments,
) -> String {
    let mut rows: Vec<String> = docs
        .voided
        .iter()
        .map(|v| {
            format!(
                "{}|{}|{VOID_REASON_CORRECTION}",
                v.number,
                yyyymmdd(v.issued_ms, offset)
            )
        })
        .collect();
    rows.sort();
    rows.dedup();
    let mut out = format!("608|{rnc}|{year:04}{month:02}|{}\n", rows.len());
    for line in rows {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::kind::{FiscalRef, Payment, SaleReturned};
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

    fn credit_note(number: &str, modifies: &str, buyer: Option<&str>) -> SaleReturned {
        SaleReturned {
            return_id: "019aaf70-dbf4-7000-8000-00000000b001".parse().unwrap(),
            sale_id: None,
            shift_id: "019aaf70-dbf4-7000-8000-00000000c001".parse().unwrap(),
            cashier: "ana".into(),
            lines: vec![],
            total: Money(5900),
            tax: Money(900),
            refund: PaymentMethod::Cash,
            customer: None,
            credit_note: Some(FiscalRef {
                series: number[..3].into(),
                number: number.into(),
                modifies: Some(modifies.into()),
                valid_until: None,
                buyer_tax_id: buyer.map(str::to_owned),
                buyer_name: buyer.map(|_| "Ferretería Ñ & Co".to_owned()),
            }),
            approval: None,
            original_unknown: None,
        }
    }

    #[test]
    fn the_607_lists_documents_with_23_fields_and_sums_small_consumer_invoices() {
        // 2026-11-01 03:30 UTC is still October 31st in Santo Domingo.
        let at = LocalDate::new(2026, 11, 1)
            .unwrap()
            .start_utc_ms(UtcOffset::UTC)
            + 3 * 3_600_000
            + 1_800_000;
        let docs = MonthDocuments {
            sales: vec![
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
                        "E320000000007",
                        None,
                        11800,
                        1800,
                        &[(PaymentMethod::Card, 11800)],
                        0,
                    ),
                    at_ms: at,
                },
                Sale607 {
                    sale: sale(
                        "E320000000009",
                        Some("00113918205"),
                        CONSUMER_DETAIL_THRESHOLD,
                        3_813_559,
                        &[(PaymentMethod::Transfer, CONSUMER_DETAIL_THRESHOLD)],
                        0,
                    ),
                    at_ms: at,
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
            ],
            returns: vec![Return607 {
                ret: credit_note("E340000000003", "E310000000001", Some("101850043")),
                at_ms: at + 3_600_000,
            }],
            voided: vec![],
        };
        let r = render_607("131098193", 2026, 10, UtcOffset::SANTO_DOMINGO, &docs);
        let lines: Vec<&str> = r.text.lines().collect();
        assert_eq!(lines[0], "607|131098193|202610|3", "{}", r.text);
        assert_eq!(
            lines[1],
            "101850043|1|B0100000001||01|20261031||100.00|18.00|0.00|0.00|0.00|0.00|0.00|0.00|0.00|0.00|0.00|50.00|68.00|0.00|0.00|0.00"
        );
        assert_eq!(
            lines[2],
            "00113918205|2|E320000000009||01|20261031||211864.41|38135.59|0.00|0.00|0.00|0.00|0.00|0.00|0.00|0.00|250000.00|0.00|0.00|0.00|0.00|0.00"
        );
        assert_eq!(
            lines[3],
            "101850043|1|E340000000003|E310000000001|01|20261101||50.00|9.00|0.00|0.00|0.00|0.00|0.00|0.00|0.00|||||||"
        );
        for l in &lines[1..] {
            assert_eq!(l.split('|').count(), 23, "{l}");
        }
        // The two consumer invoices below RD$250,000: summed, cash net of
        // change.
        assert_eq!(
            r.consumer,
            ConsumerSummary {
                count: 2,
                amount: 11017 + 10000,
                itbis: 1983 + 1800,
                cash: 13000,
                transfer: 0,
                card: 11800,
                credit: 0,
                vouchers: 0,
            }
        );
    }

    #[test]
    fn the_608_lists_voided_numbers_with_their_own_date() {
        let day = |d: u8| {
            LocalDate::new(2026, 10, d)
                .unwrap()
                .start_utc_ms(UtcOffset::SANTO_DOMINGO)
                + 3_600_000
        };
        let docs = MonthDocuments {
            voided: vec![
                Void608 {
                    number: "B0200000009".into(),
                    issued_ms: day(30),
                },
                Void608 {
                    number: "B0100000004".into(),
                    issued_ms: day(2),
                },
            ],
            ..MonthDocuments::default()
        };
        let text = render_608("131098193", 2026, 10, UtcOffset::SANTO_DOMINGO, &docs);
        assert_eq!(
            text,
            "608|131098193|202610|2\nB0100000004|20261002|04\nB0200000009|20261030|04\n"
        );
        let empty = render_608(
            "131098193",
            2026,
            10,
            UtcOffset::SANTO_DOMINGO,
            &MonthDocuments::default(),
        );
        assert_eq!(empty, "608|131098193|202610|0\n");
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
