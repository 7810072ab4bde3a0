//! Sales and contexts shared by the integration tests.
#![allow(dead_code)]

use caja_hardware::localtime::{LocalDate, UtcOffset};
use caja_hardware::receipt::{Receipt, ReceiptContext, StoreHeader};
use caja_shared::ids::Sku;
use caja_shared::kind::{FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine, SoldBy};
use caja_shared::money::{LineAmounts, Money, QtyMilli, TaxRateBp};

/// 2026-11-23T11:30:00Z, 07:30 in Santo Domingo.
pub const SOLD_AT_MS: i64 = 1_795_433_400_000;

/// One line: code, name, quantity (thousandths / grams), unit price, tax rate in
/// bp, discount, all in centavos.
pub fn line(code: &str, name: &str, qty: i64, price: i64, bp: u16, discount: i64) -> SaleLine {
    let rate = TaxRateBp::new(bp).expect("rate");
    let a = LineAmounts::compute(Money(price), QtyMilli(qty), Money(discount), rate).expect("line");
    SaleLine {
        product: code.parse::<Sku>().expect("sku"),
        name: name.to_string(),
        qty_milli: QtyMilli(qty),
        unit_price: Money(price),
        tax_bp: rate,
        discount: (discount != 0).then_some(Money(discount)),
        total: a.total,
        tax: a.tax,
        beyond_quota_milli: None,
        price_override: None,
    }
}

/// A sale of these lines and payments; totals are the sums of the lines.
pub fn sale(
    lines: Vec<SaleLine>,
    payments: Vec<Payment>,
    change: i64,
    fiscal: Option<&str>,
) -> SaleCreated {
    let total = Money(lines.iter().map(|l| l.total.0).sum());
    let tax = Money(lines.iter().map(|l| l.tax.0).sum());
    SaleCreated {
        sale_id: "0192f0c1-7a3e-7b2c-9d4e-3f9a1c2b7d10"
            .parse()
            .expect("sale id"),
        cashier: "María Núñez".to_string(),
        shift_id: None,
        customer: None,
        fiscal: fiscal.map(|n| FiscalRef {
            series: n[..3].to_string(),
            number: n.to_string(),
            modifies: None,
            valid_until: None,
            buyer_tax_id: None,
            buyer_name: None,
        }),
        lines,
        total,
        tax,
        payments,
        change: Money(change),
        approval: None,
    }
}

pub fn pay(method: PaymentMethod, amount: i64, reference: Option<&str>) -> Payment {
    Payment {
        method,
        amount: Money(amount),
        reference: reference.map(str::to_string),
    }
}

/// The sale of the receipt tests: weighed items, discounts, three tax rates
/// (18 %, 16 %, exempt), paid partly in cash and partly on fiado.
pub fn groceries() -> SaleCreated {
    let lines = vec![
        line("7501", "Arroz selecto 5 lb", 2000, 12500, 1800, 0),
        line("TOM", "Tomate de ensalada", 1250, 4500, 1800, 500),
        line("LECHE1", "Leche entera 1 L", 1000, 6200, 0, 0),
        line("YOG", "Yogur de piña", 3000, 3500, 1600, 0),
        line(
            "QHOJA",
            "Queso de hoja (maduro, añejo, importado)",
            455,
            38000,
            1800,
            1000,
        ),
    ];
    let total: i64 = lines.iter().map(|l| l.total.0).sum();
    let payments = vec![
        pay(PaymentMethod::Cash, 30000, None),
        pay(PaymentMethod::Fiado, total - 30000, None),
    ];
    let mut s = sale(lines, payments, 0, Some("B0200000051"));
    s.customer = Some(
        "0192f0c1-0000-7000-8000-000000000001"
            .parse()
            .expect("customer"),
    );
    s
}

pub fn weighed(sku: &Sku) -> SoldBy {
    if matches!(sku.as_str(), "TOM" | "QHOJA") {
        SoldBy::Weight
    } else {
        SoldBy::Unit
    }
}

pub fn context() -> ReceiptContext {
    ReceiptContext {
        store: StoreHeader {
            name: "Colmado La Esquina".to_string(),
            rnc: "1-01-12345-6".to_string(),
            lines: vec![
                "C/ Duarte 12, Santiago".to_string(),
                "Tel. 809-555-0101".to_string(),
            ],
        },
        register: "Caja 1".to_string(),
        sold_at_ms: SOLD_AT_MS,
        offset: UtcOffset::SANTO_DOMINGO,
        fiscal_valid_until: LocalDate::new(2026, 12, 31),
        customer_name: Some("José Peña".to_string()),
        fiado_balance: Some(Money(85_000)),
        qr_base_url: Some("https://dgii.gov.do/verificar".to_string()),
        footer: vec![],
        fiscal_confirmation: None,
    }
}

pub fn groceries_receipt() -> Receipt {
    Receipt::from_sale(&groceries(), &context(), weighed).expect("receipt")
}
