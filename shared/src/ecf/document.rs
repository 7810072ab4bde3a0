//! The e-CF documents Caja issues, built from register events as unsigned
//! bytes in Caja's canonical serialization: the invoice (`ECF`, types 31 and
//! 32), the consumer-invoice summary (`RFCE`), the credit note (`ECF` type
//! 34) and the cancellation of unused numbers (`ANECF`).
//!
//! Invariant: every document built here validates against DGII's schema for
//! its type (`../shared/dgii/xsd`, checked by `shared/tests/ecf_documents.rs`
//! with `xmllint`): elements in the schema's order, every required element
//! present, no empty element, amounts with 2 decimals, prices with up to 4,
//! text within the schema's lengths. Data a document needs and the event
//! does not carry is an error naming the field, never a dropped element.
//!
//! Sources: DGII "Formato Comprobante Fiscal Electrónico (e-CF) v1.0" (areas
//! IdDoc, Emisor, Comprador, Totales, DetallesItems, InformacionReferencia;
//! `IndicadorNotaCredito` 0 when the modified document is at most 30
//! calendar days old, else 1; `CodigoModificacion` 1 cancels, 3 corrects
//! amounts, 4 replaces a contingency NCF), "Formato Resumen Factura Consumo
//! Electrónica v1.0", "Formato Anulación de e-NCF v1.0", "Informe Técnico
//! e-CF v1.0" §12 (tolerance, see [`items`]), "Descripción técnica" (no
//! empty tags). Guessed: the schemas require `Comprador` on every e-CF 32 and
//! RFCE but DGII refuses empty tags; a consumer invoice without a buyer
//! names its buyer `CONSUMIDOR FINAL` ([`ANONYMOUS_BUYER`], the wording of
//! the paper consumer invoice). `TipoIngresos` is always `01` (operational
//! income); a credit note's `TipoPago` is `1`.

pub mod items;

use crate::kind::{PaymentMethod, SaleCreated, SaleReturned};
use crate::localtime::{LocalDate, LocalDateTime, UtcOffset};
use crate::money::Money;

use super::issuer::{Environment, Issuer};
use super::numbers::{self, FiscalNumber};
use super::receipt::{date_dmy, datetime_dmy};
use super::xml::{self, check_text, Node};
use items::{items_node, Totals};

/// `RazonSocialComprador` of a consumer invoice whose buyer is not named.
pub const ANONYMOUS_BUYER: &str = "CONSUMIDOR FINAL";

/// `RazonSocialComprador`'s maximum length.
pub const MAX_BUYER_NAME_CHARS: usize = 150;

/// Days after which a credit note no longer reduces the ITBIS
/// (`IndicadorNotaCredito` 1).
pub const CREDIT_NOTE_DAYS: i64 = 30;

/// What the register knows when it issues a document besides the event.
#[derive(Debug, Clone)]
pub struct SaleContextEcf<'a> {
    /// The issuing taxpayer.
    pub issuer: &'a Issuer,
    /// DGII environment (QR addresses).
    pub environment: Environment,
    /// The store's offset from UTC (dates on documents are local).
    pub offset: UtcOffset,
    /// When the sale or return happened (UTC ms): `FechaEmision`.
    pub issued_ms: i64,
    /// When it is signed (UTC ms, hub-corrected clock): `FechaHoraFirma`.
    pub signed_at_ms: i64,
    /// The series' expiry, `yyyy-mm-dd` (required for e-CF 31).
    pub series_valid_until: Option<&'a str>,
    /// The taxpayer is authorized to send later (`IndicadorEnvioDiferido`).
    pub deferred_send: bool,
    /// The buyer's name (`RazonSocialComprador`), when given; else the
    /// event's `FiscalRef::buyer_name`.
    pub buyer_name: Option<&'a str>,
}

/// Why a credit note modifies its document (`CodigoModificacion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModificationCode {
    /// 1: cancels the modified document (a full return).
    Cancel,
    /// 2: corrects text.
    CorrectText,
    /// 3: corrects amounts (a partial return).
    CorrectAmounts,
    /// 4: replaces an NCF issued in contingency.
    Contingency,
}

impl ModificationCode {
    /// The code written.
    pub fn code(self) -> u8 {
        match self {
            ModificationCode::Cancel => 1,
            ModificationCode::CorrectText => 2,
            ModificationCode::CorrectAmounts => 3,
            ModificationCode::Contingency => 4,
        }
    }
}

/// The document a credit note modifies: an e-CF (`E…`) or a paper-era /
/// contingency NCF (`B…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifiedDocument {
    /// Its number (`NCFModificado`).
    pub ncf: String,
    /// Its issue date (`FechaNCFModificado`): from the original, or typed by
    /// the cashier when the register does not hold it.
    pub issued_date: LocalDate,
    /// Why it is modified.
    pub code: ModificationCode,
}

/// Why a document cannot be built. Names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// A field is missing or unfit.
    #[error("{field}: {reason}")]
    Field {
        /// The field, e.g. `fiscal.buyer_tax_id`, `lines[2].qty_milli`.
        field: String,
        /// Why.
        reason: String,
    },
    /// A line's tax rate has no ITBIS group.
    #[error("lines[{line}].tax_bp: {bp} basis points is not an ITBIS rate DGII knows")]
    TaxRate {
        /// The line.
        line: usize,
        /// Its rate (0 when read from amounts that fit no rate).
        bp: u16,
    },
    /// A line's amounts break DGII's tolerance (see [`items`]).
    #[error("lines[{line}]: quantity × price − discount differs from the line total by {diff_micro} millionths of a peso, DGII tolerates 1.00")]
    Tolerance {
        /// The line.
        line: usize,
        /// The difference.
        diff_micro: i128,
    },
}

impl DocumentError {
    /// A field error.
    pub fn field(field: &str, reason: &str) -> DocumentError {
        DocumentError::Field {
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn overflow(field: &str) -> DocumentError {
        DocumentError::field(field, "amount overflow")
    }
}

/// An unsigned document and what the receipt and the event need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The e-CF type (31, 32, 34).
    pub ecf_type: u8,
    /// The e-NCF.
    pub encf: String,
    /// `MontoTotal`.
    pub total: Money,
    /// `RNCComprador`, when written.
    pub buyer_rnc: Option<String>,
    /// The unsigned bytes.
    pub xml: Vec<u8>,
}

fn encf_of(field: &str, number: &str, allowed: &[u8]) -> Result<FiscalNumber, DocumentError> {
    let n = numbers::parse_encf(number).map_err(|e| DocumentError::field(field, &e.to_string()))?;
    if !allowed.contains(&n.doc_type) {
        return Err(DocumentError::field(
            field,
            &format!("type {} is not one this document is built for", n.doc_type),
        ));
    }
    Ok(n)
}

fn emisor(issuer: &Issuer, issued: LocalDate, full: bool) -> Node {
    let mut n = vec![
        Node::Text("RNCEmisor", issuer.rnc.clone()),
        Node::Text("RazonSocialEmisor", issuer.legal_name.clone()),
    ];
    if full {
        n.extend(Node::opt("NombreComercial", issuer.trade_name.clone()));
        n.push(Node::Text("DireccionEmisor", issuer.address.clone()));
    }
    n.push(Node::Text("FechaEmision", date_dmy(issued)));
    Node::Parent("Emisor", n)
}

/// The buyer, validated: `(RNC, name)`.
fn buyer(
    tax_id: Option<&str>,
    name: Option<&str>,
    required: bool,
) -> Result<(Option<String>, Option<String>), DocumentError> {
    let tax_id = tax_id.map(str::trim).filter(|s| !s.is_empty());
    let name = name.map(str::trim).filter(|s| !s.is_empty());
    if let Some(id) = tax_id {
        numbers::check_tax_id(id)
            .map_err(|e| DocumentError::field("fiscal.buyer_tax_id", &e.to_string()))?;
    }
    if let Some(n) = name {
        check_text("buyer_name", n, MAX_BUYER_NAME_CHARS)
            .map_err(|e| DocumentError::field("buyer_name", &e.to_string()))?;
    }
    if required && tax_id.is_none() {
        return Err(DocumentError::field(
            "fiscal.buyer_tax_id",
            "DGII requires the buyer's RNC or cédula on this document",
        ));
    }
    if (required || tax_id.is_some()) && name.is_none() {
        return Err(DocumentError::field(
            "buyer_name",
            "DGII requires the buyer's name with the buyer's RNC or cédula",
        ));
    }
    Ok((tax_id.map(str::to_owned), name.map(str::to_owned)))
}

fn comprador(rnc: Option<&String>, name: Option<&String>, anonymous: bool) -> Option<Node> {
    let mut n = Vec::new();
    n.extend(Node::opt("RNCComprador", rnc.cloned()));
    match name {
        Some(name) => n.push(Node::Text("RazonSocialComprador", name.clone())),
        None if anonymous && rnc.is_none() => {
            n.push(Node::Text("RazonSocialComprador", ANONYMOUS_BUYER.into()));
        }
        None => {}
    }
    (!n.is_empty()).then_some(Node::Parent("Comprador", n))
}

/// `TipoPago` and `TablaFormasPago`. `FormaPago`: 1 cash, 2 transfer, 3
/// card, 4 credit (fiado), 7 credit note (store credit from a return spent as
/// one). Change comes out of the cash.
fn payments(s: &SaleCreated) -> Result<(String, Option<Node>), DocumentError> {
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
            .ok_or_else(|| DocumentError::overflow("payments"))?;
    }
    if let Some(cash) = by_code.get_mut("1") {
        *cash = cash
            .checked_sub(s.change.0)
            .ok_or_else(|| DocumentError::overflow("payments"))?;
    }
    let credit = by_code.get("4").is_some_and(|v| *v > 0);
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

/// Everything the invoice and its summary share.
struct SaleDoc {
    number: FiscalNumber,
    encf: String,
    items: Vec<items::Item>,
    totals: Totals,
    tipo_pago: String,
    forms: Option<Node>,
    issued: LocalDate,
    buyer_rnc: Option<String>,
    buyer_name: Option<String>,
}

fn sale_doc(sale: &SaleCreated, ctx: &SaleContextEcf<'_>) -> Result<SaleDoc, DocumentError> {
    let fiscal = sale
        .fiscal
        .as_ref()
        .ok_or_else(|| DocumentError::field("fiscal", "an e-CF sale needs its fiscal number"))?;
    let number = encf_of("fiscal.number", &fiscal.number, &[31, 32])?;
    if fiscal.series != fiscal.number[..3] {
        return Err(DocumentError::field(
            "fiscal.series",
            "does not match fiscal.number",
        ));
    }
    let items = items::sale_items(&sale.lines)?;
    let totals = Totals::of(&items)?;
    if totals.total != sale.total.0 {
        return Err(DocumentError::field(
            "total",
            "is not the sum of the line totals",
        ));
    }
    let (tipo_pago, forms) = payments(sale)?;
    let required = numbers::invoice_needs_buyer(number.doc_type, Money(totals.total));
    let name = ctx.buyer_name.or(fiscal.buyer_name.as_deref());
    let (buyer_rnc, buyer_name) = buyer(fiscal.buyer_tax_id.as_deref(), name, required)?;
    Ok(SaleDoc {
        number,
        encf: fiscal.number.clone(),
        items,
        totals,
        tipo_pago,
        forms,
        issued: LocalDate::from_utc_ms(ctx.issued_ms, ctx.offset),
        buyer_rnc,
        buyer_name,
    })
}

fn fecha_hora_firma(ctx: &SaleContextEcf<'_>) -> Node {
    Node::Text(
        "FechaHoraFirma",
        datetime_dmy(LocalDateTime::from_utc_ms(ctx.signed_at_ms, ctx.offset)),
    )
}

/// The invoice (e-CF 31 or 32) of a sale, unsigned.
pub fn invoice(sale: &SaleCreated, ctx: &SaleContextEcf<'_>) -> Result<Built, DocumentError> {
    let d = sale_doc(sale, ctx)?;
    let mut id_doc = vec![
        Node::Text("TipoeCF", d.number.doc_type.to_string()),
        Node::Text("eNCF", d.encf.clone()),
    ];
    if d.number.doc_type == 31 {
        let until = ctx
            .series_valid_until
            .or(sale.fiscal.as_ref().and_then(|f| f.valid_until.as_deref()))
            .ok_or_else(|| {
                DocumentError::field(
                    "series_valid_until",
                    "e-CF 31 requires the sequence's expiry",
                )
            })?;
        let date = LocalDate::parse_iso(until).ok_or_else(|| {
            DocumentError::field("series_valid_until", "is not a yyyy-mm-dd date")
        })?;
        id_doc.push(Node::Text("FechaVencimientoSecuencia", date_dmy(date)));
    }
    if ctx.deferred_send {
        id_doc.push(Node::Text("IndicadorEnvioDiferido", "1".into()));
    }
    if d.totals.taxed() {
        id_doc.push(Node::Text("IndicadorMontoGravado", "1".into()));
    }
    id_doc.push(Node::Text("TipoIngresos", "01".into()));
    id_doc.push(Node::Text("TipoPago", d.tipo_pago.clone()));
    id_doc.extend(d.forms.clone());
    let mut enc = vec![
        Node::Text("Version", "1.0".into()),
        Node::Parent("IdDoc", id_doc),
        emisor(ctx.issuer, d.issued, true),
    ];
    enc.extend(comprador(d.buyer_rnc.as_ref(), d.buyer_name.as_ref(), true));
    enc.push(d.totals.node(true));
    let root = Node::Parent(
        "ECF",
        vec![
            Node::Parent("Encabezado", enc),
            items_node(&d.items),
            fecha_hora_firma(ctx),
        ],
    );
    Ok(Built {
        ecf_type: d.number.doc_type,
        encf: d.encf,
        total: Money(d.totals.total),
        buyer_rnc: d.buyer_rnc,
        xml: xml::document(&root),
    })
}

/// The summary (RFCE) of a consumer invoice under DOP$250,000.00, carrying
/// the signed invoice's security code; unsigned.
pub fn summary(
    sale: &SaleCreated,
    ctx: &SaleContextEcf<'_>,
    security_code: &str,
) -> Result<Vec<u8>, DocumentError> {
    let d = sale_doc(sale, ctx)?;
    if !numbers::uses_summary(d.number.doc_type, Money(d.totals.total)) {
        return Err(DocumentError::field(
            "total",
            "only a consumer invoice (E32) under DOP$250,000.00 goes as a summary",
        ));
    }
    if security_code.chars().count() != 6 {
        return Err(DocumentError::field(
            "security_code",
            "must be 6 characters",
        ));
    }
    let mut id_doc = vec![
        Node::Text("TipoeCF", d.number.doc_type.to_string()),
        Node::Text("eNCF", d.encf.clone()),
        Node::Text("TipoIngresos", "01".into()),
        Node::Text("TipoPago", d.tipo_pago.clone()),
    ];
    id_doc.extend(d.forms.clone());
    let mut enc = vec![
        Node::Text("Version", "1.0".into()),
        Node::Parent("IdDoc", id_doc),
        emisor(ctx.issuer, d.issued, false),
    ];
    enc.extend(comprador(d.buyer_rnc.as_ref(), d.buyer_name.as_ref(), true));
    enc.push(d.totals.node(false));
    enc.push(Node::Text("CodigoSeguridadeCF", security_code.to_owned()));
    Ok(xml::document(&Node::Parent(
        "RFCE",
        vec![Node::Parent("Encabezado", enc)],
    )))
}

/// The credit note (e-CF 34) of a return, unsigned. The buyer is named when
/// the note carries the buyer's RNC (then the name is required too) and is
/// required when it modifies a tax-credit invoice (`E31`/`B01`).
pub fn credit_note(
    ret: &SaleReturned,
    modified: &ModifiedDocument,
    ctx: &SaleContextEcf<'_>,
) -> Result<Built, DocumentError> {
    let note = ret.credit_note.as_ref().ok_or_else(|| {
        DocumentError::field("credit_note", "an e-CF return needs its credit note number")
    })?;
    let number = encf_of("credit_note.number", &note.number, &[34])?;
    let original = numbers::parse_number(&modified.ncf)
        .map_err(|e| DocumentError::field("modified.ncf", &e.to_string()))?;
    if let Some(m) = &note.modifies {
        if *m != modified.ncf {
            return Err(DocumentError::field(
                "modified.ncf",
                "differs from the return's credit_note.modifies",
            ));
        }
    }
    let items = items::return_items(&ret.lines)?;
    let totals = Totals::of(&items)?;
    if totals.total != ret.total.0 {
        return Err(DocumentError::field(
            "total",
            "is not the sum of the line totals",
        ));
    }
    let issued = LocalDate::from_utc_ms(ctx.issued_ms, ctx.offset);
    let age_days = issued.days_since_epoch() - modified.issued_date.days_since_epoch();
    if age_days < 0 {
        return Err(DocumentError::field(
            "modified.issued_date",
            "is after the credit note's date",
        ));
    }
    let required = matches!(original.doc_type, 1 | 31);
    let name = ctx.buyer_name.or(note.buyer_name.as_deref());
    let (buyer_rnc, buyer_name) = buyer(note.buyer_tax_id.as_deref(), name, required)?;
    let mut id_doc = vec![
        Node::Text("TipoeCF", number.doc_type.to_string()),
        Node::Text("eNCF", note.number.clone()),
        Node::Text(
            "IndicadorNotaCredito",
            if age_days > CREDIT_NOTE_DAYS {
                "1"
            } else {
                "0"
            }
            .into(),
        ),
    ];
    if ctx.deferred_send {
        id_doc.push(Node::Text("IndicadorEnvioDiferido", "1".into()));
    }
    if totals.taxed() {
        id_doc.push(Node::Text("IndicadorMontoGravado", "1".into()));
    }
    id_doc.push(Node::Text("TipoIngresos", "01".into()));
    id_doc.push(Node::Text("TipoPago", "1".into()));
    let mut enc = vec![
        Node::Text("Version", "1.0".into()),
        Node::Parent("IdDoc", id_doc),
        emisor(ctx.issuer, issued, true),
    ];
    enc.extend(comprador(buyer_rnc.as_ref(), buyer_name.as_ref(), false));
    enc.push(totals.node(true));
    let reference = vec![
        Node::Text("NCFModificado", modified.ncf.clone()),
        Node::Text("FechaNCFModificado", date_dmy(modified.issued_date)),
        Node::Text("CodigoModificacion", modified.code.code().to_string()),
    ];
    let root = Node::Parent(
        "ECF",
        vec![
            Node::Parent("Encabezado", enc),
            items_node(&items),
            Node::Parent("InformacionReferencia", reference),
            fecha_hora_firma(ctx),
        ],
    );
    Ok(Built {
        ecf_type: number.doc_type,
        encf: note.number.clone(),
        total: Money(totals.total),
        buyer_rnc,
        xml: xml::document(&root),
    })
}

/// Most ranges in one cancellation (`Secuencias` maxOccurs).
pub const MAX_CANCELLED_RANGES: usize = 10_000;

/// The cancellation (ANECF) of unused e-NCF ranges of one series, unsigned.
pub fn cancellation(
    issuer: &Issuer,
    series: &str,
    ranges: &[(&str, &str)],
    at: LocalDateTime,
) -> Result<Vec<u8>, DocumentError> {
    let (electronic, doc_type) = numbers::parse_series(series)
        .map_err(|e| DocumentError::field("series", &e.to_string()))?;
    if !electronic {
        return Err(DocumentError::field(
            "series",
            "only e-NCF ranges are cancelled with an ANECF",
        ));
    }
    if ranges.is_empty() || ranges.len() > MAX_CANCELLED_RANGES {
        return Err(DocumentError::field("ranges", "between 1 and 10000 ranges"));
    }
    let mut count: u64 = 0;
    let mut secuencias = Vec::with_capacity(ranges.len());
    for (i, (first, last)) in ranges.iter().enumerate() {
        let f = encf_of(&format!("ranges[{i}].first"), first, &[doc_type])?;
        let l = encf_of(&format!("ranges[{i}].last"), last, &[doc_type])?;
        if l.sequence < f.sequence {
            return Err(DocumentError::field(
                &format!("ranges[{i}]"),
                "last is before first",
            ));
        }
        count = count
            .checked_add(l.sequence - f.sequence + 1)
            .ok_or_else(|| DocumentError::overflow("ranges"))?;
        secuencias.push(Node::Parent(
            "Secuencias",
            vec![
                Node::Text("SecuenciaeNCFDesde", (*first).to_owned()),
                Node::Text("SecuenciaeNCFHasta", (*last).to_owned()),
            ],
        ));
    }
    if count > 9_999_999_999 {
        return Err(DocumentError::field(
            "ranges",
            "more than 10 digits of numbers",
        ));
    }
    let root = Node::Parent(
        "ANECF",
        vec![
            Node::Parent(
                "Encabezado",
                vec![
                    Node::Text("Version", "1.0".into()),
                    Node::Text("RncEmisor", issuer.rnc.clone()),
                    Node::Text("CantidadeNCFAnulados", count.to_string()),
                    Node::Text("FechaHoraAnulacioneNCF", datetime_dmy(at)),
                ],
            ),
            Node::Parent(
                "DetalleAnulacion",
                vec![Node::Parent(
                    "Anulacion",
                    vec![
                        Node::Text("NoLinea", "1".into()),
                        Node::Text("TipoeCF", doc_type.to_string()),
                        Node::Parent("TablaRangoSecuenciasAnuladaseNCF", secuencias),
                        Node::Text("CantidadeNCFAnulados", count.to_string()),
                    ],
                )],
            ),
        ],
    );
    Ok(xml::document(&root))
}
