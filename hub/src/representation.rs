//! The printed representation ("representación impresa") of a signed e-CF
//! as a one-page PDF: the issuer (name, RNC, address), the document's name
//! and e-NCF, the issue date, the buyer, the lines, the totals and ITBIS,
//! and — as DGII requires on every representation — the QR of DGII's
//! consultation address, the security code and the signing date and time.
//!
//! Source: DGII "Representación Impresa (Modelos ilustrativos)" (the
//! elements every model carries: issuer block, document name and e-NCF,
//! buyer, detail, totals, QR, "Código de Seguridad", "Fecha de Firma
//! Digital"); DGII "Descripción técnica" v1.6 §5 (the QR address and its
//! parameters, `shared::ecf::receipt`). Guessed: the layout (a plain A4
//! page; DGII's models are illustrative), the document names by type.
//!
//! Invariant: pure — reads the signed bytes and writes the PDF; every value
//! printed comes from the signed document itself, never from elsewhere.
//! Built with `pdf-writer` (Helvetica, WinAnsi; characters outside Latin-1
//! print as `?`); positions are whole points.

use caja_shared::ecf::issuer::Environment;
use caja_shared::ecf::receipt::{qr_url, TimbreParams};
use caja_shared::ecf::xmldsig;
use caja_shared::localtime::{LocalDate, LocalDateTime};
use caja_shared::money::Money;
use pdf_writer::{Content, Finish, Name, Pdf, Ref, Str};

use crate::receiver::documents::parse_amount;
use crate::taxgw::xml;

/// Why a representation cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepresentationError {
    /// The bytes are not a signed e-CF Caja can read (the field named).
    #[error("not a signed e-CF: {0}")]
    Document(String),
}

/// DGII's name of each e-CF type.
pub fn type_name(t: &str) -> &'static str {
    match t {
        "31" => "Factura de Crédito Fiscal Electrónica",
        "32" => "Factura de Consumo Electrónica",
        "33" => "Nota de Débito Electrónica",
        "34" => "Nota de Crédito Electrónica",
        "41" => "Compras Electrónico",
        "43" => "Gastos Menores Electrónico",
        "44" => "Regímenes Especiales Electrónica",
        "45" => "Gubernamental Electrónico",
        "46" => "Exportaciones Electrónico",
        "47" => "Pagos al Exterior Electrónico",
        _ => "Comprobante Fiscal Electrónico",
    }
}

fn winansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

fn dmy(s: &str) -> Option<LocalDate> {
    let (d, rest) = s.split_once('-')?;
    let (m, y) = rest.split_once('-')?;
    LocalDate::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

fn dmy_time(s: &str) -> Option<LocalDateTime> {
    let (date, time) = s.split_once(' ')?;
    let d = dmy(date)?;
    let mut t = time.split(':').map(|p| p.parse::<u8>().ok());
    let (Some(Some(hour)), Some(Some(minute)), Some(Some(second))) = (t.next(), t.next(), t.next())
    else {
        return None;
    };
    Some(LocalDateTime {
        year: d.year,
        month: d.month,
        day: d.day,
        hour,
        minute,
        second,
    })
}

/// The layout is computed in whole PDF points (`i16`) and written as integer
/// operands through `pdf-writer`'s raw operator API: no coordinate, amount or
/// quantity is ever a float. No amount or quantity passes through the layout:
/// they are printed from the document's text.
fn pt(v: i16) -> i32 {
    i32::from(v)
}

/// A page of text lines and the QR, built top-down in whole points.
struct Page {
    content: Content,
    y: i16,
}

impl Page {
    fn line(&mut self, size: i16, x: i16, text: &str) {
        self.y -= size + 4;
        self.content.begin_text();
        self.content.op("Tf").operand(Name(b"F1")).operand(pt(size));
        self.content.op("Td").operands([pt(x), pt(self.y)]);
        self.content.show(Str(&winansi(text))).end_text();
    }
}

/// The PDF of a signed e-CF for the environment `env` (its QR address).
pub fn pdf(ecf: &[u8], env: Environment) -> Result<Vec<u8>, RepresentationError> {
    let fields = xml::flatten(ecf).map_err(RepresentationError::Document)?;
    let get = |path: &str| xml::field(&fields, path).map(str::to_owned);
    let need = |path: &'static str| {
        get(path).ok_or_else(|| RepresentationError::Document(format!("{path} is missing")))
    };
    let encf = need("ECF/Encabezado/IdDoc/eNCF")?;
    let tipo = need("ECF/Encabezado/IdDoc/TipoeCF")?;
    let rnc = need("ECF/Encabezado/Emisor/RNCEmisor")?;
    let name = need("ECF/Encabezado/Emisor/RazonSocialEmisor")?;
    let issued = need("ECF/Encabezado/Emisor/FechaEmision")?;
    let total = need("ECF/Encabezado/Totales/MontoTotal")?;
    let signed_at = need("ECF/FechaHoraFirma")?;
    let buyer_rnc = get("ECF/Encabezado/Comprador/RNCComprador");
    let code = xmldsig::verify(ecf)
        .map(|v| xmldsig::code_of(&v.signature_value))
        .map_err(|e| RepresentationError::Document(format!("signature: {e}")))?;
    let bad = |what: &str| RepresentationError::Document(format!("{what} is not readable"));
    let params = TimbreParams {
        rnc: &rnc,
        buyer_rnc: buyer_rnc.as_deref(),
        encf: &encf,
        issued: dmy(&issued).ok_or_else(|| bad("FechaEmision"))?,
        total: Money(parse_amount(&total).ok_or_else(|| bad("MontoTotal"))?),
        signed_at: dmy_time(&signed_at).ok_or_else(|| bad("FechaHoraFirma"))?,
        code: &code,
    };
    let url = qr_url(env, false, &params);

    let mut page = Page {
        content: Content::new(),
        y: 812,
    };
    page.line(14, 40, &name);
    page.line(10, 40, &format!("RNC {rnc}"));
    if let Some(a) = get("ECF/Encabezado/Emisor/DireccionEmisor") {
        page.line(10, 40, &a);
    }
    page.line(9, 40, &format!("Fecha de emisión: {issued}"));
    page.y -= 8;
    page.line(13, 40, type_name(&tipo));
    page.line(11, 40, &format!("e-NCF: {encf}"));
    if let Some(v) = get("ECF/Encabezado/IdDoc/FechaVencimientoSecuencia") {
        page.line(9, 40, &format!("Fecha de vencimiento de la secuencia: {v}"));
    }
    if let Some(b) = &buyer_rnc {
        page.line(10, 40, &format!("RNC comprador: {b}"));
    }
    if let Some(b) = get("ECF/Encabezado/Comprador/RazonSocialComprador") {
        page.line(10, 40, &format!("Razón social comprador: {b}"));
    }
    page.y -= 8;
    page.line(
        10,
        40,
        "Cantidad   Descripción                                   Precio        Valor",
    );
    let names: Vec<&(String, String)> = fields
        .iter()
        .filter(|(p, _)| p.ends_with("/Item/NombreItem"))
        .collect();
    let nth = |suffix: &str, i: usize| {
        fields
            .iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .nth(i)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    for (i, (_, item)) in names.iter().enumerate().take(40) {
        let line = format!(
            "{:>8}   {:<44} {:>10} {:>12}",
            nth("/Item/CantidadItem", i),
            item.chars().take(44).collect::<String>(),
            nth("/Item/PrecioUnitarioItem", i),
            nth("/Item/MontoItem", i)
        );
        page.line(9, 40, &line);
    }
    page.y -= 8;
    for (label, path) in [
        (
            "Subtotal gravado",
            "ECF/Encabezado/Totales/MontoGravadoTotal",
        ),
        ("Exento", "ECF/Encabezado/Totales/MontoExento"),
        ("Total ITBIS", "ECF/Encabezado/Totales/TotalITBIS"),
        ("Total", "ECF/Encabezado/Totales/MontoTotal"),
    ] {
        if let Some(v) = get(path) {
            page.line(10, 330, &format!("{label}: {v}"));
        }
    }
    // The QR (DGII's consultation address), code and signing time.
    let qr = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| RepresentationError::Document(format!("QR: {e}")))?;
    let width = i16::try_from(qr.width()).unwrap_or(0);
    let module: i16 = 2;
    let (left, top) = (40_i16, page.y - 16);
    for (i, dark) in qr.to_colors().iter().enumerate() {
        if *dark == qrcode::Color::Dark {
            let i = i16::try_from(i).unwrap_or(0);
            let (col, row) = (i % width.max(1), i / width.max(1));
            page.content.op("re").operands([
                pt(left + col * module),
                pt(top - (row + 1) * module),
                pt(module),
                pt(module),
            ]);
        }
    }
    page.content.fill_nonzero();
    page.y = top - width * module - 4;
    page.line(10, 40, &format!("Código de Seguridad: {code}"));
    page.line(10, 40, &format!("Fecha de Firma Digital: {signed_at}"));

    let (catalog, tree, page_id, font, content) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page_id]).count(1);
    let mut p = pdf.page(page_id);
    p.parent(tree).contents(content);
    // A4 in whole points.
    p.insert(Name(b"MediaBox"))
        .array()
        .items([0_i32, 0, 595, 842]);
    p.resources().fonts().pair(Name(b"F1"), font);
    p.finish();
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.stream(content, &page.content.finish());
    Ok(pdf.finish())
}
