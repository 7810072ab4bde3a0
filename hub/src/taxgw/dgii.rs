//! The Dominican Republic's DGII e-CF services, the pure half: the documents
//! (`ECF`, the consumer-invoice summary `RFCE`, the cancellation `ANECF`)
//! built from the registers' events with only the fields Caja has, the
//! security code and verification address printed on receipts, the service
//! paths, and the reading of the answers. [`super::dgii_http`] does the IO.
//!
//! Followed from DGII's public "Descripción técnica de facturación
//! electrónica" (v1.6): the service paths under `{ambiente}` bases
//! (`https://ecf.dgii.gov.do/testecf`, `https://fc.dgii.gov.do/testecf`, …),
//! seed → signed seed → bearer token with an expiry, `POST
//! /recepcion/api/facturaselectronicas` → `trackId`, `GET
//! /consultaresultado/api/consultas/estado?trackId=` with `codigo` 0 (not
//! found), 1 (Aceptado), 2 (Rechazado), 3 (En Proceso), 4 (Aceptado
//! Condicional), consumer invoices (`E32`) below RD$250,000.00 sent as a
//! summary to `fc.` `/recepcionfc/api/recepcion/ecf` and answered at once,
//! `GET /consultatrackids/api/trackids/consulta?RncEmisor=&ENCF=` (what DGII
//! holds for a number: our lookup after a lost answer), `GET
//! /consultarfce/api/Consultas/Consulta` for summaries, `POST
//! /anulacionrangos/api/operaciones/anularrango`, file names
//! `{RNC}{e-NCF}.xml`, the QR addresses `ConsultaTimbre` /
//! `ConsultaTimbreFC`.
//!
//! Guessed (documented where the public text is silent or we cannot comply):
//! documents are **not signed** (XMLDSig with the taxpayer's certificate is out
//! of scope: no well-kept Rust crate does it on ring), so the "signed" seed
//! is the seed as received and the security code — on DGII the first six
//! characters of the signature value — is the first six hexadecimal digits
//! (upper case) of SHA-256 of the full e-CF; element order follows the
//! published XSDs as far as the fields we have go; `CodigoModificacion` 3
//! ("corrige montos") for every return; the cancellation answer is read by
//! its `estado` text; a cancellation has no lookup service, so it is resent
//! as is (DGII is expected to answer a repeated identical cancellation the
//! same way — the emulator does).

use caja_shared::digest::Hash256;
use caja_shared::kind::{
    AuthorityMessage, FiscalDocType, PaymentMethod, SaleCreated, SaleReturned,
};
use caja_shared::localtime::{LocalDate, LocalDateTime, UtcOffset};
use caja_shared::money::{div_round_half_away, line_tax, Money, TaxRateBp};
use serde_json::Value;

use super::xml::{self, Node};
use super::{BuildError, DocumentSource, SourceBody, StatusAnswer, Submitted};
use crate::outbox::{FinalStatus, Prepared, Verdict};

/// The authority's short name.
pub const AUTHORITY: &str = "dgii";

/// Consumer invoices (`E32`) below this total go as a summary (RFCE):
/// RD$250,000.00.
pub const SUMMARY_THRESHOLD: Money = Money(25_000_000);

/// Seed (GET, on the e-CF base).
pub const PATH_SEED: &str = "/autenticacion/api/autenticacion/semilla";
/// Signed seed → token (POST form `xml`, on the e-CF base).
pub const PATH_VALIDATE_SEED: &str = "/autenticacion/api/autenticacion/validarsemilla";
/// e-CF reception (POST form `xml`, on the e-CF base) → `trackId`.
pub const PATH_RECEPTION: &str = "/recepcion/api/facturaselectronicas";
/// Status by tracking id (GET `?trackId=`, on the e-CF base).
pub const PATH_STATUS: &str = "/consultaresultado/api/consultas/estado";
/// Tracking ids of a number (GET `?RncEmisor=&ENCF=`, on the e-CF base).
pub const PATH_TRACKIDS: &str = "/consultatrackids/api/trackids/consulta";
/// Consumer-invoice summary reception (POST form `xml`, on the FC base).
pub const PATH_SUMMARY: &str = "/recepcionfc/api/recepcion/ecf";
/// Summary query (GET `?RNC_Emisor=&ENCF=&Cod_Seguridad_eCF=`, on the FC base).
pub const PATH_SUMMARY_QUERY: &str = "/consultarfce/api/Consultas/Consulta";
/// Cancellation of unused numbers (POST form `xml`, on the e-CF base).
pub const PATH_CANCEL: &str = "/anulacionrangos/api/operaciones/anularrango";

/// Channel of a full e-CF.
pub const CHANNEL_ECF: &str = "ecf";
/// Channel of a consumer-invoice summary.
pub const CHANNEL_SUMMARY: &str = "rfce";
/// Channel of a cancellation.
pub const CHANNEL_CANCEL: &str = "anecf";

/// The issuer's data and the service bases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DgiiConfig {
    /// Base of the e-CF services, e.g. `https://ecf.dgii.gov.do/testecf`.
    pub ecf_base_url: String,
    /// Base of the consumer-invoice services, e.g.
    /// `https://fc.dgii.gov.do/testecf`.
    pub fc_base_url: String,
    /// The issuer's RNC (9 digits) or cédula (11).
    pub rnc: String,
    /// The issuer's legal name.
    pub legal_name: String,
    /// The issuer's address, when configured.
    pub address: Option<String>,
}

/// The e-CF type of a series (`E32` → 32).
pub fn ecf_type(series: &str) -> Option<u8> {
    let digits = series.strip_prefix('E')?;
    if digits.len() != 2 {
        return None;
    }
    digits.parse().ok()
}

/// Whether a sale of this series and total goes as a summary (RFCE).
pub fn uses_summary(series: &str, total: Money) -> bool {
    series == "E32" && total < SUMMARY_THRESHOLD
}

/// `dd-MM-yyyy`.
fn date_dmy(d: LocalDate) -> String {
    format!("{:02}-{:02}-{:04}", d.day, d.month, d.year)
}

/// `dd-MM-yyyy HH:mm:ss`.
fn datetime_dmy(t: LocalDateTime) -> String {
    format!(
        "{} {:02}:{:02}:{:02}",
        date_dmy(t.date()),
        t.hour,
        t.minute,
        t.second
    )
}

/// `1.250` for 1250 thousandths.
fn qty(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    let m = milli.unsigned_abs();
    format!("{sign}{}.{:03}", m / 1000, m % 1000)
}

/// The ITBIS group of a rate: 1 (18 %), 2 (16 %), 3 (0 %) and exempt (4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaxGroup {
    I1,
    I2,
    Exempt,
}

impl TaxGroup {
    fn of_bp(line: usize, bp: u16) -> Result<TaxGroup, BuildError> {
        match bp {
            1800 => Ok(TaxGroup::I1),
            1600 => Ok(TaxGroup::I2),
            0 => Ok(TaxGroup::Exempt),
            _ => Err(BuildError::UnsupportedTaxRate { line, bp }),
        }
    }

    /// The group whose rate gives exactly this tax on this total (returns
    /// carry amounts, not rates).
    fn of_amounts(line: usize, total: Money, tax: Money) -> Result<TaxGroup, BuildError> {
        if tax == Money::ZERO {
            return Ok(TaxGroup::Exempt);
        }
        for (bp, g) in [(1800u16, TaxGroup::I1), (1600, TaxGroup::I2)] {
            let rate = TaxRateBp::new(bp).map_err(|_| BuildError::Overflow("tax rate"))?;
            if line_tax(total, rate).ok() == Some(tax) {
                return Ok(g);
            }
        }
        Err(BuildError::UnsupportedTaxRate { line, bp: 0 })
    }

    /// `IndicadorFacturacion`.
    fn indicator(self) -> &'static str {
        match self {
            TaxGroup::I1 => "1",
            TaxGroup::I2 => "2",
            TaxGroup::Exempt => "4",
        }
    }
}

/// One item of a document, from a sale line or a returned line.
struct Item {
    name: String,
    group: TaxGroup,
    qty_milli: i64,
    unit_price: Money,
    discount: Option<Money>,
    total: Money,
    tax: Money,
}

/// Sums per ITBIS group (tax-exclusive bases, taxes), and the total.
#[derive(Default)]
struct Totals {
    base_i1: i64,
    base_i2: i64,
    exempt: i64,
    tax_i1: i64,
    tax_i2: i64,
    total: i64,
}

impl Totals {
    fn of(items: &[Item]) -> Result<Totals, BuildError> {
        let mut t = Totals::default();
        let add = |a: i64, b: i64| a.checked_add(b).ok_or(BuildError::Overflow("totals"));
        for i in items {
            let base = i
                .total
                .0
                .checked_sub(i.tax.0)
                .ok_or(BuildError::Overflow("totals"))?;
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

    fn nodes(&self) -> Vec<Node> {
        let m = |v: i64| Money(v).to_string();
        let taxed = self.base_i1 + self.base_i2;
        let mut n = Vec::new();
        if taxed != 0 {
            n.push(Node::Text("MontoGravadoTotal", m(taxed)));
        }
        if self.base_i1 != 0 {
            n.push(Node::Text("MontoGravadoI1", m(self.base_i1)));
        }
        if self.base_i2 != 0 {
            n.push(Node::Text("MontoGravadoI2", m(self.base_i2)));
        }
        if self.exempt != 0 {
            n.push(Node::Text("MontoExento", m(self.exempt)));
        }
        if self.base_i1 != 0 {
            n.push(Node::Text("ITBIS1", "18".into()));
        }
        if self.base_i2 != 0 {
            n.push(Node::Text("ITBIS2", "16".into()));
        }
        if taxed != 0 {
            n.push(Node::Text("TotalITBIS", m(self.tax_i1 + self.tax_i2)));
        }
        if self.base_i1 != 0 {
            n.push(Node::Text("TotalITBIS1", m(self.tax_i1)));
        }
        if self.base_i2 != 0 {
            n.push(Node::Text("TotalITBIS2", m(self.tax_i2)));
        }
        n.push(Node::Text("MontoTotal", m(self.total)));
        n
    }
}

fn sale_items(s: &SaleCreated) -> Result<Vec<Item>, BuildError> {
    s.lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Ok(Item {
                name: l.name.clone(),
                group: TaxGroup::of_bp(i, l.tax_bp.bp())?,
                qty_milli: l.qty_milli.0,
                unit_price: l.unit_price,
                discount: l.discount.filter(|d| *d != Money::ZERO),
                total: l.total,
                tax: l.tax,
            })
        })
        .collect()
}

fn return_items(r: &SaleReturned) -> Result<Vec<Item>, BuildError> {
    r.lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if l.qty_milli.0 <= 0 {
                return Err(BuildError::Missing("lines[].qty_milli (positive)"));
            }
            // A returned line carries its refund, not a price: the unit
            // price is the refund per unit, rounded once.
            let unit = div_round_half_away(i128::from(l.total.0) * 1000, i128::from(l.qty_milli.0))
                .map_err(|_| BuildError::Overflow("unit price"))?;
            Ok(Item {
                // The register records the product code of a returned line.
                name: l.product.as_str().to_owned(),
                group: TaxGroup::of_amounts(i, l.total, l.tax)?,
                qty_milli: l.qty_milli.0,
                unit_price: Money(unit),
                discount: None,
                total: l.total,
                tax: l.tax,
            })
        })
        .collect()
}

fn item_nodes(items: &[Item]) -> Node {
    Node::Parent(
        "DetallesItems",
        items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let mut n = vec![
                    Node::Text("NumeroLinea", (i + 1).to_string()),
                    Node::Text("IndicadorFacturacion", it.group.indicator().into()),
                    Node::Text("NombreItem", it.name.clone()),
                    Node::Text("IndicadorBienoServicio", "1".into()),
                    Node::Text("CantidadItem", qty(it.qty_milli)),
                    Node::Text("PrecioUnitarioItem", it.unit_price.to_string()),
                ];
                if let Some(d) = it.discount {
                    n.push(Node::Text("DescuentoMonto", d.to_string()));
                }
                n.push(Node::Text("MontoItem", it.total.to_string()));
                Node::Parent("Item", n)
            })
            .collect(),
    )
}

/// `FormaPago` codes: 1 cash, 2 transfer, 3 card, 4 credit, 7 credit note
/// (store credit from an earlier return is spent as one).
fn payment_nodes(s: &SaleCreated) -> Result<(String, Option<Node>), BuildError> {
    let mut by_code: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for p in &s.payments {
        let code = match p.method {
            PaymentMethod::Cash => "1",
            PaymentMethod::Transfer => "2",
            PaymentMethod::Card => "3",
            PaymentMethod::Fiado => "4",
            PaymentMethod::StoreCredit => "7",
        };
        let e = by_code.entry(code).or_insert(0);
        *e = e
            .checked_add(p.amount.0)
            .ok_or(BuildError::Overflow("payments"))?;
    }
    if let Some(cash) = by_code.get_mut("1") {
        // Change comes out of the cash.
        *cash = cash
            .checked_sub(s.change.0)
            .ok_or(BuildError::Overflow("payments"))?;
    }
    let credit = by_code.contains_key("4");
    let forms: Vec<Node> = by_code
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(code, v)| {
            Node::Parent(
                "FormaDePago",
                vec![
                    Node::Text("FormaPago", (*code).into()),
                    Node::Text("MontoPago", Money(*v).to_string()),
                ],
            )
        })
        .collect();
    let tipo = if credit { "2" } else { "1" };
    Ok((
        tipo.into(),
        (!forms.is_empty()).then_some(Node::Parent("TablaFormasPago", forms)),
    ))
}

fn emisor(cfg: &DgiiConfig, issued: LocalDate, full: bool) -> Node {
    let mut n = vec![
        Node::Text("RNCEmisor", cfg.rnc.clone()),
        Node::Text("RazonSocialEmisor", cfg.legal_name.clone()),
    ];
    if full {
        n.extend(Node::opt("DireccionEmisor", cfg.address.clone()));
    }
    n.push(Node::Text("FechaEmision", date_dmy(issued)));
    Node::Parent("Emisor", n)
}

fn valid_until_dmy(iso: Option<&str>) -> Option<String> {
    iso.and_then(LocalDate::parse_iso).map(date_dmy)
}

/// What a sale's documents share: type, number, payment, totals.
struct SaleDoc<'a> {
    sale: &'a SaleCreated,
    e_type: u8,
    number: &'a str,
    items: Vec<Item>,
    totals: Totals,
    tipo_pago: String,
    forms: Option<Node>,
    issued: LocalDate,
}

fn sale_doc<'a>(src: &'a DocumentSource, sale: &'a SaleCreated) -> Result<SaleDoc<'a>, BuildError> {
    let fiscal = sale.fiscal.as_ref().ok_or(BuildError::Missing("fiscal"))?;
    let e_type =
        ecf_type(&fiscal.series).ok_or_else(|| BuildError::NotSubmitted(fiscal.series.clone()))?;
    let items = sale_items(sale)?;
    let totals = Totals::of(&items)?;
    let (tipo_pago, forms) = payment_nodes(sale)?;
    Ok(SaleDoc {
        sale,
        e_type,
        number: &fiscal.number,
        items,
        totals,
        tipo_pago,
        forms,
        issued: LocalDate::from_utc_ms(src.issued_ms, src.offset),
    })
}

fn comprador(tax_id: Option<&str>) -> Option<Node> {
    tax_id.map(|id| Node::Parent("Comprador", vec![Node::Text("RNCComprador", id.to_owned())]))
}

/// The full e-CF of a sale.
fn sale_ecf(
    cfg: &DgiiConfig,
    src: &DocumentSource,
    d: &SaleDoc<'_>,
) -> Result<Vec<u8>, BuildError> {
    let fiscal = d
        .sale
        .fiscal
        .as_ref()
        .ok_or(BuildError::Missing("fiscal"))?;
    let mut id_doc = vec![
        Node::Text("TipoeCF", d.e_type.to_string()),
        Node::Text("eNCF", d.number.to_owned()),
    ];
    // Consumer invoices and credit notes carry no sequence expiry.
    if !matches!(d.e_type, 32 | 34) {
        id_doc.extend(Node::opt(
            "FechaVencimientoSecuencia",
            valid_until_dmy(fiscal.valid_until.as_deref()),
        ));
    }
    id_doc.push(Node::Text("IndicadorMontoGravado", "1".into()));
    id_doc.push(Node::Text("TipoIngresos", "01".into()));
    id_doc.push(Node::Text("TipoPago", d.tipo_pago.clone()));
    id_doc.extend(d.forms.clone());
    let mut enc = vec![
        Node::Text("Version", "1.0".into()),
        Node::Parent("IdDoc", id_doc),
        emisor(cfg, d.issued, true),
    ];
    enc.extend(comprador(fiscal.buyer_tax_id.as_deref()));
    enc.push(Node::Parent("Totales", d.totals.nodes()));
    let root = Node::Parent(
        "ECF",
        vec![
            Node::Parent("Encabezado", enc),
            item_nodes(&d.items),
            Node::Text(
                "FechaHoraFirma",
                datetime_dmy(LocalDateTime::from_utc_ms(src.built_ms, src.offset)),
            ),
        ],
    );
    xml::write_document(&root).map_err(BuildError::Xml)
}

/// The summary (RFCE) of a consumer invoice.
fn sale_summary(cfg: &DgiiConfig, d: &SaleDoc<'_>, code: &str) -> Result<Vec<u8>, BuildError> {
    let fiscal = d
        .sale
        .fiscal
        .as_ref()
        .ok_or(BuildError::Missing("fiscal"))?;
    let mut id_doc = vec![
        Node::Text("TipoeCF", d.e_type.to_string()),
        Node::Text("eNCF", d.number.to_owned()),
        Node::Text("TipoIngresos", "01".into()),
        Node::Text("TipoPago", d.tipo_pago.clone()),
    ];
    id_doc.extend(d.forms.clone());
    let mut enc = vec![
        Node::Text("Version", "1.0".into()),
        Node::Parent("IdDoc", id_doc),
        emisor(cfg, d.issued, false),
    ];
    enc.extend(comprador(fiscal.buyer_tax_id.as_deref()));
    enc.push(Node::Parent("Totales", d.totals.nodes()));
    enc.push(Node::Text("CodigoSeguridadeCF", code.to_owned()));
    xml::write_document(&Node::Parent("RFCE", vec![Node::Parent("Encabezado", enc)]))
        .map_err(BuildError::Xml)
}

/// The credit note (e-CF 34) of a return.
fn return_ecf(
    cfg: &DgiiConfig,
    src: &DocumentSource,
    r: &SaleReturned,
) -> Result<(String, Vec<u8>, Money), BuildError> {
    let note = r
        .credit_note
        .as_ref()
        .ok_or(BuildError::Missing("credit_note"))?;
    let e_type =
        ecf_type(&note.series).ok_or_else(|| BuildError::NotSubmitted(note.series.clone()))?;
    let modifies = note
        .modifies
        .clone()
        .ok_or(BuildError::Missing("credit_note.modifies"))?;
    let items = return_items(r)?;
    let totals = Totals::of(&items)?;
    let issued = LocalDate::from_utc_ms(src.issued_ms, src.offset);
    let id_doc = vec![
        Node::Text("TipoeCF", e_type.to_string()),
        Node::Text("eNCF", note.number.clone()),
        Node::Text("IndicadorMontoGravado", "1".into()),
        Node::Text("TipoIngresos", "01".into()),
        Node::Text("TipoPago", "1".into()),
    ];
    let mut enc = vec![
        Node::Text("Version", "1.0".into()),
        Node::Parent("IdDoc", id_doc),
        emisor(cfg, issued, true),
    ];
    enc.extend(comprador(note.buyer_tax_id.as_deref()));
    enc.push(Node::Parent("Totales", totals.nodes()));
    let mut reference = vec![Node::Text("NCFModificado", modifies)];
    reference.extend(Node::opt(
        "FechaNCFModificado",
        src.modified_issued_ms
            .map(|ms| date_dmy(LocalDate::from_utc_ms(ms, src.offset))),
    ));
    reference.push(Node::Text("CodigoModificacion", "3".into()));
    let root = Node::Parent(
        "ECF",
        vec![
            Node::Parent("Encabezado", enc),
            item_nodes(&items),
            Node::Parent("InformacionReferencia", reference),
            Node::Text(
                "FechaHoraFirma",
                datetime_dmy(LocalDateTime::from_utc_ms(src.built_ms, src.offset)),
            ),
        ],
    );
    let bytes = xml::write_document(&root).map_err(BuildError::Xml)?;
    Ok((note.number.clone(), bytes, Money(totals.total)))
}

/// The cancellation (ANECF) of unused numbers.
fn cancellation(
    cfg: &DgiiConfig,
    src: &DocumentSource,
    first: &str,
    last: &str,
    count: u64,
) -> Result<Vec<u8>, BuildError> {
    let e_type =
        ecf_type(&src.series).ok_or_else(|| BuildError::NotSubmitted(src.series.clone()))?;
    let root = Node::Parent(
        "ANECF",
        vec![
            Node::Parent(
                "Encabezado",
                vec![
                    Node::Text("Version", "1.0".into()),
                    Node::Text("RncEmisor", cfg.rnc.clone()),
                    Node::Text("CantidadeNCFAnulados", count.to_string()),
                    Node::Text(
                        "FechaHoraAnulacioneNCF",
                        datetime_dmy(LocalDateTime::from_utc_ms(src.built_ms, src.offset)),
                    ),
                ],
            ),
            Node::Parent(
                "DetalleAnulacion",
                vec![Node::Parent(
                    "Anulacion",
                    vec![
                        Node::Text("NoLinea", "1".into()),
                        Node::Text("TipoeCF", e_type.to_string()),
                        Node::Parent(
                            "TablaRangoSecuenciasAnuladaseNCF",
                            vec![Node::Parent(
                                "Secuencias",
                                vec![
                                    Node::Text("SecuenciaeNCFDesde", first.to_owned()),
                                    Node::Text("SecuenciaeNCFHasta", last.to_owned()),
                                ],
                            )],
                        ),
                        Node::Text("CantidadeNCFAnulados", count.to_string()),
                    ],
                )],
            ),
        ],
    );
    xml::write_document(&root).map_err(BuildError::Xml)
}

/// The security code of a full e-CF (see the module doc: unsigned
/// documents use SHA-256 in place of the signature value).
pub fn security_code(full_ecf: &[u8]) -> String {
    Hash256::of(full_ecf).to_hex()[..6].to_ascii_uppercase()
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base?k=v&…` with every value percent-encoded.
pub fn query(base: &str, params: &[(&str, String)]) -> String {
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    format!("{}?{}", base.trim_end_matches('/'), q.join("&"))
}

/// Builds a document: the bytes to submit, the kept full e-CF when a
/// summary is submitted, the security code and the verification address.
pub fn build(cfg: &DgiiConfig, src: &DocumentSource) -> Result<Prepared, BuildError> {
    let (channel, body, archive, code, url) = match (&src.doc_type, &src.body) {
        (FiscalDocType::Invoice, SourceBody::Sale(sale)) => {
            let d = sale_doc(src, sale)?;
            let full = sale_ecf(cfg, src, &d)?;
            let code = security_code(&full);
            let total = Money(d.totals.total);
            if uses_summary(&src.series, total) {
                let url = query(
                    &format!("{}/ConsultaTimbreFC", cfg.fc_base_url.trim_end_matches('/')),
                    &[
                        ("RncEmisor", cfg.rnc.clone()),
                        ("ENCF", d.number.to_owned()),
                        ("MontoTotal", total.to_string()),
                        ("CodigoSeguridad", code.clone()),
                    ],
                );
                let summary = sale_summary(cfg, &d, &code)?;
                (CHANNEL_SUMMARY, summary, Some(full), Some(code), Some(url))
            } else {
                let fiscal = sale.fiscal.as_ref().ok_or(BuildError::Missing("fiscal"))?;
                let mut params = vec![("RncEmisor", cfg.rnc.clone())];
                if let Some(b) = &fiscal.buyer_tax_id {
                    params.push(("RncComprador", b.clone()));
                }
                params.extend([
                    ("ENCF", d.number.to_owned()),
                    ("FechaEmision", date_dmy(d.issued)),
                    ("MontoTotal", total.to_string()),
                    (
                        "FechaFirma",
                        datetime_dmy(LocalDateTime::from_utc_ms(src.built_ms, src.offset)),
                    ),
                    ("CodigoSeguridad", code.clone()),
                ]);
                let url = query(
                    &format!("{}/ConsultaTimbre", cfg.ecf_base_url.trim_end_matches('/')),
                    &params,
                );
                (CHANNEL_ECF, full, None, Some(code), Some(url))
            }
        }
        (FiscalDocType::CreditNote, SourceBody::Return(r)) => {
            let (number, full, total) = return_ecf(cfg, src, r)?;
            let code = security_code(&full);
            let note = r
                .credit_note
                .as_ref()
                .ok_or(BuildError::Missing("credit_note"))?;
            let mut params = vec![("RncEmisor", cfg.rnc.clone())];
            if let Some(b) = &note.buyer_tax_id {
                params.push(("RncComprador", b.clone()));
            }
            params.extend([
                ("ENCF", number),
                (
                    "FechaEmision",
                    date_dmy(LocalDate::from_utc_ms(src.issued_ms, src.offset)),
                ),
                ("MontoTotal", total.to_string()),
                (
                    "FechaFirma",
                    datetime_dmy(LocalDateTime::from_utc_ms(src.built_ms, src.offset)),
                ),
                ("CodigoSeguridad", code.clone()),
            ]);
            let url = query(
                &format!("{}/ConsultaTimbre", cfg.ecf_base_url.trim_end_matches('/')),
                &params,
            );
            (CHANNEL_ECF, full, None, Some(code), Some(url))
        }
        (FiscalDocType::Cancellation, SourceBody::Cancellation { first, last, count }) => {
            let bytes = cancellation(cfg, src, first, last, *count)?;
            (CHANNEL_CANCEL, bytes, None, None, None)
        }
        (t, b) => {
            return Err(BuildError::WrongSource {
                doc_type: t.as_str(),
                what: match b {
                    SourceBody::Signed(_) => "signed documents",
                    SourceBody::Sale(_) => "a sale",
                    SourceBody::Return(_) => "a return",
                    SourceBody::Cancellation { .. } => "a cancelled range",
                },
            })
        }
    };
    Ok(Prepared {
        channel: channel.to_owned(),
        body_hash: Hash256::of(&body),
        body,
        archive,
        security_code: code,
        verify_url: url,
    })
}

/// The file name DGII expects: `{RNC}{e-NCF}.xml` (`{RNC}ANECF{…}.xml` for a
/// cancellation).
pub fn file_name(rnc: &str, doc_key: &str) -> String {
    match doc_key.strip_prefix("ANECF:") {
        Some(range) => format!("{rnc}ANECF{}.xml", range.replace(':', "-")),
        None => format!("{rnc}{doc_key}.xml"),
    }
}

// ---- Answers ----------------------------------------------------------------

/// A JSON field by name, case-insensitively (DGII's services are not case
/// sensitive and implementations differ in casing).
fn get<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_text(v: &Value, name: &str) -> Option<String> {
    get(v, name).and_then(text_of).filter(|s| !s.is_empty())
}

/// The messages of an answer: `mensajes` `[{"codigo","valor"}]` or a single
/// `mensaje` string (both shapes appear in DGII's documentation).
pub fn messages(v: &Value) -> Vec<AuthorityMessage> {
    let mut out = Vec::new();
    if let Some(Value::Array(items)) = get(v, "mensajes") {
        for m in items {
            out.push(AuthorityMessage {
                code: get_text(m, "codigo").unwrap_or_default(),
                text: get_text(m, "valor")
                    .or_else(|| text_of(m))
                    .unwrap_or_default(),
            });
        }
    }
    if let Some(m) = get_text(v, "mensaje") {
        out.push(AuthorityMessage {
            code: get_text(v, "codigo").unwrap_or_default(),
            text: m,
        });
    }
    if let Some(e) = get_text(v, "error") {
        out.push(AuthorityMessage {
            code: "error".into(),
            text: e,
        });
    }
    out
}

/// A status from `codigo` (0–4), else from `estado`'s words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estado {
    /// 0, `No encontrado`.
    NotFound,
    /// 1, `Aceptado`.
    Accepted,
    /// 2, `Rechazado`.
    Rejected,
    /// 3, `En Proceso`.
    InProcess,
    /// 4, `Aceptado Condicional`.
    Conditional,
}

impl Estado {
    /// The `codigo`.
    pub fn code(self) -> u8 {
        match self {
            Estado::NotFound => 0,
            Estado::Accepted => 1,
            Estado::Rejected => 2,
            Estado::InProcess => 3,
            Estado::Conditional => 4,
        }
    }

    /// The `estado` text.
    pub fn text(self) -> &'static str {
        match self {
            Estado::NotFound => "No Encontrado",
            Estado::Accepted => "Aceptado",
            Estado::Rejected => "Rechazado",
            Estado::InProcess => "En Proceso",
            Estado::Conditional => "Aceptado Condicional",
        }
    }

    fn from_text(s: &str) -> Option<Estado> {
        let s = s.trim().to_lowercase();
        Some(match s.as_str() {
            "aceptado" | "accepted" => Estado::Accepted,
            "aceptado condicional" | "conditionally accepted" => Estado::Conditional,
            "rechazado" | "rejected" => Estado::Rejected,
            "en proceso" | "in process" => Estado::InProcess,
            "no encontrado" | "not found" => Estado::NotFound,
            _ => return None,
        })
    }

    /// Reads an answer's status.
    pub fn of(v: &Value) -> Option<Estado> {
        let by_code = get_text(v, "codigo").and_then(|c| match c.trim() {
            "0" => Some(Estado::NotFound),
            "1" => Some(Estado::Accepted),
            "2" => Some(Estado::Rejected),
            "3" => Some(Estado::InProcess),
            "4" => Some(Estado::Conditional),
            _ => None,
        });
        by_code.or_else(|| get_text(v, "estado").and_then(|e| Estado::from_text(&e)))
    }

    fn verdict(self, v: &Value) -> Option<Verdict> {
        let status = match self {
            Estado::Accepted => FinalStatus::Accepted,
            Estado::Conditional => FinalStatus::AcceptedConditional,
            Estado::Rejected => FinalStatus::Rejected,
            Estado::InProcess | Estado::NotFound => return None,
        };
        Some(Verdict {
            status,
            messages: messages(v),
        })
    }
}

/// Why an answer could not be read.
pub type AnswerError = String;

fn json(body: &[u8]) -> Result<Value, AnswerError> {
    serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))
}

/// The seed (`SemillaModel`): checked to hold a `valor`; returned as is (it
/// is what gets "signed").
pub fn read_seed(body: &[u8]) -> Result<Vec<u8>, AnswerError> {
    let f = xml::flatten(body)?;
    match xml::field(&f, "SemillaModel/valor") {
        Some(v) if !v.trim().is_empty() => Ok(body.to_vec()),
        _ => Err("the seed has no SemillaModel/valor".into()),
    }
}

/// `{"token","expira","expedido"}` → the token and its expiry (UTC ms).
pub fn read_token(body: &[u8]) -> Result<(String, i64), AnswerError> {
    let v = json(body)?;
    let token = get_text(&v, "token").ok_or("no token")?;
    let expira = get_text(&v, "expira").ok_or("no expira")?;
    let ms = parse_utc(&expira)
        .ok_or_else(|| format!("expira {expira:?} is not yyyy-MM-ddTHH:mm:ssZ"))?;
    Ok((token, ms))
}

/// `yyyy-MM-ddTHH:mm:ss[.fraction][Z|±hh:mm]` → UTC ms (no zone = UTC).
pub fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0i64)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|i| *i >= 8) {
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        (
            t,
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?),
        )
    } else {
        (rest, 0)
    };
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = t.next()?.parse().ok()?;
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let start = LocalDate::new(year, month, day)?.start_utc_ms(UtcOffset::UTC);
    Some(start + ((h * 60 + mi - offset_min) * 60 + se) * 1000)
}

/// The answer of e-CF reception (2xx): `{"trackId","error","mensaje"}`.
pub fn read_reception(body: &[u8]) -> Result<Submitted, AnswerError> {
    let v = json(body)?;
    match get_text(&v, "trackId") {
        Some(t) => Ok(Submitted::Tracked(t)),
        None => Err(format!("no trackId in {v}")),
    }
}

/// A 400 from reception: the document was refused, a verdict a person must
/// see.
pub fn refusal(body: &[u8]) -> Verdict {
    let messages = match serde_json::from_slice::<Value>(body) {
        Ok(v) => messages(&v),
        Err(_) => vec![AuthorityMessage {
            code: "400".into(),
            text: String::from_utf8_lossy(body).chars().take(500).collect(),
        }],
    };
    Verdict {
        status: FinalStatus::Rejected,
        messages,
    }
}

/// The answer of a status query.
pub fn read_status(body: &[u8]) -> Result<StatusAnswer, AnswerError> {
    let v = json(body)?;
    let e = Estado::of(&v).ok_or_else(|| format!("no codigo/estado in {v}"))?;
    Ok(match e {
        Estado::NotFound => StatusAnswer::NotFound,
        Estado::InProcess => StatusAnswer::InProcess,
        _ => StatusAnswer::Final(e.verdict(&v).ok_or("no verdict")?),
    })
}

/// The synchronous answer to a summary or a cancellation.
pub fn read_decision(body: &[u8]) -> Result<Verdict, AnswerError> {
    let v = json(body)?;
    let e = Estado::of(&v).ok_or_else(|| format!("no codigo/estado in {v}"))?;
    e.verdict(&v)
        .ok_or_else(|| format!("not a verdict: {}", e.text()))
}

/// What the authority holds for a number (trackIds query): an accepted
/// submission if any, else one in process, else the latest rejected one.
pub fn read_trackids(body: &[u8]) -> Result<Option<Submitted>, AnswerError> {
    let v = json(body)?;
    let list = match &v {
        Value::Array(a) => a.clone(),
        _ => match get(&v, "detalles") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => return Err(format!("detalles is not a list: {other}")),
        },
    };
    let mut in_process = None;
    let mut rejected = None;
    for d in &list {
        let Some(track) = get_text(d, "trackId") else {
            continue;
        };
        match Estado::of(d) {
            Some(e @ (Estado::Accepted | Estado::Conditional)) => {
                return Ok(e.verdict(d).map(Submitted::Decided));
            }
            Some(Estado::InProcess) => in_process = Some(track),
            Some(e @ Estado::Rejected) => rejected = e.verdict(d),
            _ => {}
        }
    }
    Ok(in_process
        .map(Submitted::Tracked)
        .or(rejected.map(Submitted::Decided)))
}

/// The summary query's answer: `None` when not found.
pub fn read_summary_query(body: &[u8]) -> Result<Option<Submitted>, AnswerError> {
    let v = json(body)?;
    match Estado::of(&v).ok_or_else(|| format!("no codigo/estado in {v}"))? {
        Estado::NotFound => Ok(None),
        // A summary is decided at once; "in process" means not yet recorded.
        Estado::InProcess => Ok(None),
        e => Ok(e.verdict(&v).map(Submitted::Decided)),
    }
}

#[cfg(test)]
mod tests;
