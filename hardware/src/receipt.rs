//! The receipt: what it says ([`Receipt`]) and how it sits on the paper
//! ([`Layout`]).
//!
//! A [`Receipt`] is built from the sale as journaled ([`Receipt::from_sale`]) plus
//! what the event does not hold (store header, register name, the sale's instant
//! and the store's offset, the fiscal series' expiry, the fiado balance). Amounts
//! are printed as recorded: line totals and taxes come from the event, the per-rate
//! taxes are sums of the lines' taxes ([`SaleTotals`]), never recomputed, and a
//! sale whose recorded sums disagree with its lines is refused rather than printed.
//!
//! [`Receipt::layout`] places it on a paper width of 42 or 48 columns.
//!
//! **Architecture invariant: the layout is pure and every line fits.** Each
//! [`Line`] is text already fitted to the code page ([`CodePage::fit`], one byte per
//! character) and at most [`Width::columns`] characters long (asserted); the
//! characters that had to be replaced are reported in [`Layout::unmappable`].
//! Bytes are made from a layout by [`crate::render`] only.

use caja_shared::ids::Sku;
use caja_shared::kind::{FiscalRef, Payment, PaymentMethod, SaleCreated, SoldBy};
use caja_shared::money::{LineAmounts, Money, MoneyError, QtyMilli, SaleTotals, TaxRateBp};

use crate::codepage::{CodePage, Unmappable};
use crate::localtime::{LocalDate, LocalDateTime, UtcOffset};
use crate::messages as msg;

/// Most lines a receipt may carry (the node's sale limit is 500).
pub const MAX_LINES: usize = 1000;
/// Longest QR payload accepted, in bytes (a printed QR code stays scannable well
/// below the format's 7089-digit limit).
pub const MAX_QR_BYTES: usize = 512;

/// Paper width in printed columns (font A).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Width {
    /// 58 mm paper: 42 columns.
    #[default]
    Mm58,
    /// 80 mm paper: 48 columns.
    Mm80,
}

impl Width {
    /// Columns per line.
    pub const fn columns(self) -> usize {
        match self {
            Width::Mm58 => 42,
            Width::Mm80 => 48,
        }
    }

    /// The width for a column count, if it is one of ours.
    pub fn from_columns(columns: usize) -> Option<Width> {
        [Width::Mm58, Width::Mm80]
            .into_iter()
            .find(|w| w.columns() == columns)
    }
}

/// The store's header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreHeader {
    /// Trade name, printed large.
    pub name: String,
    /// Tax id (RNC), as the store writes it (`1-01-12345-6`).
    pub rnc: String,
    /// Address, phone… one entry per printed line.
    pub lines: Vec<String>,
}

/// The fiscal number of the sale and the expiry of its series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiscalInfo {
    /// Series and number (`B02`, `B0200000051`).
    pub number: FiscalRef,
    /// Last day the series may be used, in the store's zone.
    pub valid_until: LocalDate,
}

/// One line of the receipt, as the register recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// Name as printed.
    pub name: String,
    /// By the piece or by weight (prices per kg, quantity in grams).
    pub sold_by: SoldBy,
    /// Quantity in thousandths (grams for weighed items).
    pub qty: QtyMilli,
    /// Shelf price per piece or per kg, tax included.
    pub unit_price: Money,
    /// Discount on this line (zero if none).
    pub discount: Money,
    /// The shelf price when the cashier sold at another one (a price
    /// override, approved): printed under the line so the customer sees both.
    pub shelf_price: Option<Money>,
    /// Line total after discount, tax included.
    pub total: Money,
    /// Tax rate.
    pub tax_bp: TaxRateBp,
    /// Tax contained in `total`.
    pub tax: Money,
}

/// Everything printed on a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The store.
    pub store: StoreHeader,
    /// The fiscal number, when the sale used one.
    pub fiscal: Option<FiscalInfo>,
    /// When the sale was made, in the store's zone.
    pub sold_at: LocalDateTime,
    /// Who sold.
    pub cashier: String,
    /// The register's name.
    pub register: String,
    /// The sale id, printed so a reprint or a return can find the sale.
    pub sale_id: String,
    /// The customer (named for fiado).
    pub customer: Option<String>,
    /// The lines.
    pub lines: Vec<ReceiptLine>,
    /// Sums of the lines (gross, discounts, totals and taxes per rate).
    pub totals: SaleTotals,
    /// Payments as taken.
    pub payments: Vec<Payment>,
    /// Cash given back.
    pub change: Money,
    /// What the customer owes after this sale, when fiado was involved.
    pub fiado_balance: Option<Money>,
    /// Data of the fiscal verification QR code (ASCII), if any.
    pub qr: Option<String>,
    /// The tax authority's security code, printed under the QR code once the
    /// document is confirmed.
    pub security_code: Option<String>,
    /// When the electronic document was signed (GMT-4), printed under the
    /// security code.
    pub signed_at: Option<LocalDateTime>,
    /// Closing lines.
    pub footer: Vec<String>,
    /// Set on a reprint: when it was reprinted. A receipt with this set is marked
    /// "COPIA" at the top and the bottom; there is never a second original.
    pub copy: Option<LocalDateTime>,
}

/// What [`Receipt::from_sale`] needs beyond the sale event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptContext {
    /// The store's header.
    pub store: StoreHeader,
    /// The register's name.
    pub register: String,
    /// The sale's instant (the event's `hlc.ms`), UTC milliseconds.
    pub sold_at_ms: i64,
    /// The store's offset from UTC.
    pub offset: UtcOffset,
    /// Expiry of the fiscal series, required when the sale has a fiscal number.
    pub fiscal_valid_until: Option<LocalDate>,
    /// The customer's name, when the sale names a customer.
    pub customer_name: Option<String>,
    /// The customer's balance after this sale, for fiado.
    pub fiado_balance: Option<Money>,
    /// Base address of the fiscal verification page; with a fiscal number, the QR
    /// code carries [`fiscal_qr`] of it. `None`: no QR code.
    pub qr_base_url: Option<String>,
    /// Closing lines (default: [`msg::DEFAULT_FOOTER`]).
    pub footer: Vec<String>,
    /// The tax authority's confirmation of the sale's fiscal document
    /// (phase two, known after the hub's verdict reached the register):
    /// the QR code then carries the authority's verification address and the
    /// security code is printed under it.
    pub fiscal_confirmation: Option<FiscalConfirmation>,
}

/// The tax authority's confirmation of a fiscal document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiscalConfirmation {
    /// The security code (DGII: six characters).
    pub security_code: String,
    /// The authority's verification address for the document.
    pub verify_url: String,
    /// When the document was signed, in GMT-4 (an e-CF signed at the
    /// register: known when the original receipt prints, offline too).
    pub signed_at: Option<LocalDateTime>,
}

/// Why a receipt cannot be built or laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// A sum left the `i64` range.
    #[error("amount overflow in {field}")]
    Overflow {
        /// The sum that overflowed.
        field: &'static str,
    },
    /// The sale's recorded totals do not match its lines.
    #[error("the sale's {field} is {recorded} but its lines add up to {computed}")]
    Inconsistent {
        /// `total` or `tax`.
        field: &'static str,
        /// As recorded in the event.
        recorded: Money,
        /// Σ of the lines.
        computed: Money,
    },
    /// The sale has a fiscal number but the context gives no expiry date.
    #[error("the sale has fiscal number {0} but no expiry date was given")]
    MissingFiscalExpiry(String),
    /// Too many lines.
    #[error("{0} lines, at most {MAX_LINES} fit on a receipt")]
    TooManyLines(usize),
    /// The QR data is not ASCII or is too long.
    #[error("QR data must be ASCII and at most {MAX_QR_BYTES} bytes ({0} bytes given)")]
    QrData(usize),
}

impl From<MoneyError> for ReceiptError {
    fn from(_: MoneyError) -> Self {
        ReceiptError::Overflow { field: "totals" }
    }
}

impl Receipt {
    /// Builds the receipt of a journaled sale. `sold_by` tells which products are
    /// weighed (the event's lines do not say; the catalog does). Checks that the
    /// event's `total` and `tax` equal the sums of its lines.
    pub fn from_sale(
        sale: &SaleCreated,
        ctx: &ReceiptContext,
        sold_by: impl Fn(&Sku) -> SoldBy,
    ) -> Result<Receipt, ReceiptError> {
        if sale.lines.len() > MAX_LINES {
            return Err(ReceiptError::TooManyLines(sale.lines.len()));
        }
        let lines: Vec<ReceiptLine> = sale
            .lines
            .iter()
            .map(|l| ReceiptLine {
                name: l.name.clone(),
                sold_by: sold_by(&l.product),
                qty: l.qty_milli,
                unit_price: l.unit_price,
                discount: l.discount.unwrap_or(Money::ZERO),
                shelf_price: l.price_override.as_ref().map(|o| o.shelf_price),
                total: l.total,
                tax_bp: l.tax_bp,
                tax: l.tax,
            })
            .collect();
        let totals = totals_of(&lines)?;
        for (field, recorded, computed) in [
            ("total", sale.total, totals.total),
            ("tax", sale.tax, totals.tax),
        ] {
            if recorded != computed {
                return Err(ReceiptError::Inconsistent {
                    field,
                    recorded,
                    computed,
                });
            }
        }
        let sold_at = LocalDateTime::from_utc_ms(ctx.sold_at_ms, ctx.offset);
        let fiscal = match &sale.fiscal {
            Some(number) => Some(FiscalInfo {
                number: number.clone(),
                valid_until: ctx
                    .fiscal_valid_until
                    .ok_or_else(|| ReceiptError::MissingFiscalExpiry(number.number.clone()))?,
            }),
            None => None,
        };
        let confirmed = fiscal.as_ref().and(ctx.fiscal_confirmation.as_ref());
        let qr = match (&fiscal, &ctx.qr_base_url) {
            _ if confirmed.is_some() => confirmed.map(|c| c.verify_url.clone()),
            (Some(f), Some(base)) => Some(fiscal_qr(
                base,
                &ctx.store.rnc,
                &f.number.number,
                sold_at.date(),
                sale.total,
                sale.tax,
            )),
            _ => None,
        };
        let footer = if ctx.footer.is_empty() {
            msg::DEFAULT_FOOTER.iter().map(|s| s.to_string()).collect()
        } else {
            ctx.footer.clone()
        };
        Ok(Receipt {
            store: ctx.store.clone(),
            fiscal,
            sold_at,
            cashier: sale.cashier.clone(),
            register: ctx.register.clone(),
            sale_id: sale.sale_id.to_string(),
            customer: ctx.customer_name.clone(),
            lines,
            totals,
            payments: sale.payments.clone(),
            change: sale.change,
            fiado_balance: ctx.fiado_balance,
            qr,
            security_code: confirmed.map(|c| c.security_code.clone()),
            signed_at: confirmed.and_then(|c| c.signed_at),
            footer,
            copy: None,
        })
    }

    /// The same receipt marked as a reprint made at `at`.
    pub fn into_copy(mut self, at: LocalDateTime) -> Receipt {
        self.copy = Some(at);
        self
    }

    /// Places the receipt on paper of the given width, with text fitted to the code
    /// page.
    pub fn layout(&self, width: Width, page: CodePage) -> Result<Layout, ReceiptError> {
        if self.lines.len() > MAX_LINES {
            return Err(ReceiptError::TooManyLines(self.lines.len()));
        }
        if let Some(qr) = &self.qr {
            if !qr.is_ascii() || qr.len() > MAX_QR_BYTES {
                return Err(ReceiptError::QrData(qr.len()));
            }
        }
        let mut b = Builder::new(width, page);
        if let Some(at) = &self.copy {
            b.center(msg::COPY_BANNER, Style::BOLD);
            b.center(&msg::reprinted_at(at), Style::PLAIN);
            b.blank();
        }
        b.center(&self.store.name, Style::TITLE);
        b.center(&msg::rnc(&self.store.rnc), Style::PLAIN);
        for line in &self.store.lines {
            b.center(line, Style::PLAIN);
        }
        b.rule();
        match &self.fiscal {
            Some(f) => {
                b.center(msg::fiscal_title(&f.number.series), Style::BOLD);
                b.left(
                    &msg::labelled(msg::ncf_label(&f.number.number), &f.number.number),
                    Style::BOLD,
                );
                b.left(&msg::valid_until(&f.valid_until), Style::PLAIN);
                // DGII's "Representación Impresa": the buyer's RNC or
                // cédula and name when the document names a buyer.
                if let Some(id) = &f.number.buyer_tax_id {
                    b.left(&msg::labelled(msg::LABEL_BUYER_ID, id), Style::PLAIN);
                }
                if let Some(name) = &f.number.buyer_name {
                    b.left(&msg::labelled(msg::LABEL_BUYER_NAME, name), Style::PLAIN);
                }
            }
            None => {
                b.center(msg::NON_FISCAL_TITLE, Style::BOLD);
                b.center(msg::NON_FISCAL_NOTE, Style::PLAIN);
            }
        }
        b.left(
            &msg::labelled(msg::LABEL_DATE, &self.sold_at.to_string()),
            Style::PLAIN,
        );
        b.left(
            &msg::labelled(msg::LABEL_CASHIER, &self.cashier),
            Style::PLAIN,
        );
        b.left(
            &msg::labelled(msg::LABEL_REGISTER, &self.register),
            Style::PLAIN,
        );
        b.left(&msg::labelled(msg::LABEL_SALE, &self.sale_id), Style::PLAIN);
        if let Some(customer) = &self.customer {
            b.left(&msg::labelled(msg::LABEL_CUSTOMER, customer), Style::PLAIN);
        }
        b.rule();
        b.row(msg::HEAD_ITEM, msg::HEAD_AMOUNT, Style::BOLD);
        b.rule();
        for line in &self.lines {
            b.row(&line.name, &msg::amount(line.total), Style::PLAIN);
            let weighed = line.sold_by == SoldBy::Weight;
            if let Some(shelf) = line.shelf_price {
                b.indented(&msg::quantity(line.qty, weighed, line.unit_price));
                b.indented(&msg::shelf_price(shelf));
            } else if weighed || line.qty != QtyMilli::ONE {
                b.indented(&msg::quantity(line.qty, weighed, line.unit_price));
            }
            if line.discount != Money::ZERO {
                let off = line.discount.checked_neg()?;
                b.row_at(2, msg::LINE_DISCOUNT, &msg::amount(off), Style::PLAIN);
            }
        }
        b.rule();
        let t = &self.totals;
        if t.discount != Money::ZERO {
            b.row(msg::SUBTOTAL, &msg::amount(t.gross), Style::PLAIN);
            b.row(
                msg::DISCOUNTS,
                &msg::amount(t.discount.checked_neg()?),
                Style::PLAIN,
            );
        }
        for (rate, tax) in &t.tax_by_rate {
            if *rate == TaxRateBp::ZERO {
                let exempt = t.total_by_rate.get(rate).copied().unwrap_or(Money::ZERO);
                b.row(msg::EXEMPT, &msg::amount(exempt), Style::PLAIN);
            } else {
                b.row(&msg::tax_at(*rate), &msg::amount(*tax), Style::PLAIN);
            }
        }
        if t.tax_by_rate
            .keys()
            .filter(|r| **r != TaxRateBp::ZERO)
            .count()
            > 1
        {
            b.row(msg::TAX_TOTAL, &msg::amount(t.tax), Style::PLAIN);
        }
        b.row(msg::TOTAL, &msg::currency(t.total), Style::TITLE);
        b.rule();
        for p in &self.payments {
            b.row(
                &msg::payment(p.method, p.reference.as_deref()),
                &msg::amount(p.amount),
                Style::PLAIN,
            );
        }
        if self.change != Money::ZERO
            || self
                .payments
                .iter()
                .any(|p| p.method == PaymentMethod::Cash)
        {
            b.row(msg::CHANGE, &msg::amount(self.change), Style::BOLD);
        }
        if let Some(balance) = self.fiado_balance {
            b.row(msg::FIADO_BALANCE, &msg::currency(balance), Style::BOLD);
        }
        if let Some(qr) = &self.qr {
            b.rule();
            b.blocks.push(Block::Qr(qr.clone()));
            b.center(msg::QR_CAPTION, Style::PLAIN);
        }
        if let Some(code) = &self.security_code {
            b.center(&msg::security_code(code), Style::BOLD);
        }
        if let Some(at) = &self.signed_at {
            b.center(&msg::signed_at(at), Style::PLAIN);
        }
        b.rule();
        for line in &self.footer {
            b.center(line, Style::PLAIN);
        }
        if self.copy.is_some() {
            b.center(msg::COPY_BANNER, Style::BOLD);
        }
        b.blocks.push(Block::Cut);
        Ok(b.finish())
    }
}

/// Sums the lines the way DESIGN fixes it (tax per rate = Σ of the lines' taxes).
fn totals_of(lines: &[ReceiptLine]) -> Result<SaleTotals, ReceiptError> {
    let amounts = lines
        .iter()
        .map(|l| {
            let gross = l
                .total
                .checked_add(l.discount)
                .map_err(|_| ReceiptError::Overflow { field: "gross" })?;
            Ok((
                l.tax_bp,
                LineAmounts {
                    gross,
                    discount: l.discount,
                    total: l.total,
                    tax: l.tax,
                },
            ))
        })
        .collect::<Result<Vec<_>, ReceiptError>>()?;
    Ok(SaleTotals::from_lines(amounts)?)
}

/// The fiscal verification data carried by the QR code:
/// `{base}?RncEmisor={rnc}&NCF={number}&FechaEmision={dd-mm-yyyy}&MontoTotal={total}&ITBIS={tax}`
/// with amounts as `130.00` and every value percent-encoded (RFC 3986 unreserved
/// characters kept), so the payload is always ASCII.
pub fn fiscal_qr(
    base: &str,
    rnc: &str,
    number: &str,
    date: LocalDate,
    total: Money,
    tax: Money,
) -> String {
    let date = format!("{:02}-{:02}-{:04}", date.day, date.month, date.year);
    let params = [
        ("RncEmisor", rnc.to_string()),
        ("NCF", number.to_string()),
        ("FechaEmision", date),
        ("MontoTotal", total.to_string()),
        ("ITBIS", tax.to_string()),
    ];
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{}{sep}{}", percent_encode_url(base), query.join("&"))
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

/// Keeps a base URL as given but percent-encodes anything outside printable ASCII.
fn percent_encode_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if (0x21..0x7F).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Horizontal placement of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Align {
    /// Flush left.
    #[default]
    Left,
    /// Centered (by the printer).
    Center,
    /// Flush right (by the printer).
    Right,
}

/// Emphasis of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Style {
    /// Bold (`ESC E 1`).
    pub bold: bool,
    /// Double height (`GS ! 0x01`); the width, and so the columns, are unchanged.
    pub tall: bool,
}

impl Style {
    /// Plain text.
    pub const PLAIN: Style = Style {
        bold: false,
        tall: false,
    };
    /// Bold.
    pub const BOLD: Style = Style {
        bold: true,
        tall: false,
    };
    /// Bold and double height: the store name and the total.
    pub const TITLE: Style = Style {
        bold: true,
        tall: true,
    };
}

/// One printed line: fitted text, at most the paper's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The text, every character printable on the layout's code page.
    pub text: String,
    /// Placement.
    pub align: Align,
    /// Emphasis.
    pub style: Style,
}

/// A piece of the paper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A line of text.
    Line(Line),
    /// A QR code, centered.
    Qr(String),
    /// Feed and cut.
    Cut,
}

/// A receipt placed on paper, ready for [`crate::render::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Paper width.
    pub width: Width,
    /// The code page the text was fitted to.
    pub page: CodePage,
    /// Top to bottom.
    pub blocks: Vec<Block>,
    /// Characters that were replaced by `?` to fit the code page.
    pub unmappable: Unmappable,
}

struct Builder {
    width: Width,
    page: CodePage,
    blocks: Vec<Block>,
    unmappable: Unmappable,
}

impl Builder {
    fn new(width: Width, page: CodePage) -> Builder {
        Builder {
            width,
            page,
            blocks: Vec::new(),
            unmappable: Unmappable::default(),
        }
    }

    fn cols(&self) -> usize {
        self.width.columns()
    }

    fn fit(&mut self, text: &str) -> String {
        self.page.fit(text, &mut self.unmappable)
    }

    fn push(&mut self, text: String, align: Align, style: Style) {
        assert!(
            text.chars().count() <= self.cols(),
            "layout line wider than the paper: {text:?}"
        );
        self.blocks.push(Block::Line(Line { text, align, style }));
    }

    fn blank(&mut self) {
        self.push(String::new(), Align::Left, Style::PLAIN);
    }

    fn rule(&mut self) {
        let rule: String = std::iter::repeat_n(msg::RULE, self.cols()).collect();
        self.push(rule, Align::Left, Style::PLAIN);
    }

    /// Text wrapped to the width, each piece centered by the printer.
    fn center(&mut self, text: &str, style: Style) {
        let fitted = self.fit(text);
        for piece in wrap(&fitted, self.cols()) {
            self.push(piece, Align::Center, style);
        }
    }

    /// Text wrapped to the width, flush left; continuation lines indented.
    fn left(&mut self, text: &str, style: Style) {
        let fitted = self.fit(text);
        let cols = self.cols();
        let mut pieces = wrap(&fitted, cols).into_iter();
        if let Some(first) = pieces.next() {
            self.push(first, Align::Left, style);
        }
        let rest: String = pieces.collect::<Vec<_>>().join(" ");
        for piece in wrap(&rest, cols - 2) {
            self.push(format!("  {piece}"), Align::Left, style);
        }
    }

    /// A detail line under an item, indented by two columns.
    fn indented(&mut self, text: &str) {
        let fitted = self.fit(text);
        for piece in wrap(&fitted, self.cols() - 2) {
            self.push(format!("  {piece}"), Align::Left, Style::PLAIN);
        }
    }

    /// `left …… right` on one line; when `left` is too long it wraps, and `right`
    /// stays on the first line.
    fn row(&mut self, left: &str, right: &str, style: Style) {
        self.row_at(0, left, right, style);
    }

    /// [`Builder::row`] with `left` indented by `indent` columns.
    fn row_at(&mut self, indent: usize, left: &str, right: &str, style: Style) {
        let left = self.fit(left);
        let right = self.fit(right);
        let cols = self.cols();
        let right_len = right.chars().count();
        if indent + right_len + 2 >= cols {
            // An amount as wide as the paper: its own line, flush right.
            self.left(&left, style);
            self.push(right, Align::Right, style);
            return;
        }
        let room = cols - indent - right_len - 1;
        let mut pieces = wrap(&left, room).into_iter();
        let first = pieces.next().unwrap_or_default();
        let pad = cols - indent - first.chars().count() - right_len;
        self.push(
            format!("{}{first}{}{right}", " ".repeat(indent), " ".repeat(pad)),
            Align::Left,
            style,
        );
        let rest: String = pieces.collect::<Vec<_>>().join(" ");
        let cont = indent + 2;
        for piece in wrap(&rest, cols - cont) {
            self.push(format!("{}{piece}", " ".repeat(cont)), Align::Left, style);
        }
    }

    fn finish(self) -> Layout {
        Layout {
            width: self.width,
            page: self.page,
            blocks: self.blocks,
            unmappable: self.unmappable,
        }
    }
}

/// Word-wraps `text` into pieces of at most `cols` characters (words longer than a
/// line are cut). Empty text gives no pieces. `cols` must be positive.
fn wrap(text: &str, cols: usize) -> Vec<String> {
    assert!(cols > 0, "wrap to zero columns");
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let sep = usize::from(current_len > 0);
            if current_len + sep + word.len() <= cols {
                if sep == 1 {
                    current.push(' ');
                }
                current.extend(word.iter());
                current_len += sep + word.len();
                break;
            }
            if current_len > 0 {
                pieces.push(std::mem::take(&mut current));
                current_len = 0;
                continue;
            }
            // A word longer than the line: cut it.
            let rest = word.split_off(cols);
            pieces.push(word.into_iter().collect());
            word = rest;
        }
    }
    if current_len > 0 {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrap_breaks_on_words_and_cuts_long_words() {
        assert_eq!(
            wrap("Arroz selecto  5 lb", 10),
            ["Arroz", "selecto 5", "lb"]
        );
        assert_eq!(wrap("abcdefghijkl", 5), ["abcde", "fghij", "kl"]);
        assert!(wrap("   ", 5).is_empty());
    }

    #[test]
    fn qr_payload_is_ascii_and_escaped() {
        let qr = fiscal_qr(
            "https://dgii.example/verificar",
            "1-01-12345-6",
            "B0200000051",
            LocalDate::new(2026, 11, 23).expect("date"),
            Money(36325),
            Money(4742),
        );
        assert_eq!(
            qr,
            "https://dgii.example/verificar?RncEmisor=1-01-12345-6&NCF=B0200000051\
             &FechaEmision=23-11-2026&MontoTotal=363.25&ITBIS=47.42"
        );
        let odd = fiscal_qr(
            "https://x/ñ?a=1",
            "1 2&3",
            "B",
            LocalDate::new(2026, 1, 2).expect("date"),
            Money(1),
            Money(0),
        );
        assert!(odd.is_ascii(), "{odd}");
        assert!(
            odd.starts_with("https://x/%C3%B1?a=1&RncEmisor=1%202%263&"),
            "{odd}"
        );
    }

    proptest! {
        #[test]
        fn wrap_never_exceeds_the_width_and_keeps_every_character(
            text in "[a-zñ ]{0,120}", cols in 1usize..50
        ) {
            let pieces = wrap(&text, cols);
            for p in &pieces {
                prop_assert!(p.chars().count() <= cols);
                prop_assert!(!p.is_empty());
            }
            let joined: String = pieces.concat();
            let original: String = text.split_whitespace().collect();
            prop_assert_eq!(joined.replace(' ', ""), original);
        }
    }
}
