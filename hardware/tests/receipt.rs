//! Receipts rendered to ESC/POS and decoded back to the paper a customer reads.

mod common;

use caja_hardware::codepage::CodePage;
use caja_hardware::decode::{decode, Command};
use caja_hardware::localtime::{LocalDateTime, UtcOffset};
use caja_hardware::receipt::{Receipt, ReceiptError, Width};
use caja_hardware::render::{preview, render};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use common::*;
use expect_test::expect;

fn paper(receipt: &Receipt, width: Width, page: CodePage) -> String {
    preview(&receipt.layout(width, page).expect("layout")).expect("render")
}

#[test]
fn groceries_on_58mm_paper() {
    expect![[r#"
                    Colmado La Esquina
                    RNC: 1-01-12345-6
                  C/ Duarte 12, Santiago
                    Tel. 809-555-0101
        ------------------------------------------
                    FACTURA DE CONSUMO
        NCF: B0200000051
        Válido hasta: 31/12/2026
        Fecha: 23/11/2026 07:30
        Cajero: María Núñez
        Caja: Caja 1
        Venta:
          0192f0c1-7a3e-7b2c-9d4e-3f9a1c2b7d10
        Cliente: José Peña
        ------------------------------------------
        DESCRIPCIÓN                          VALOR
        ------------------------------------------
        Arroz selecto 5 lb                  250.00
          2 x RD$ 125.00
        Tomate de ensalada                   51.25
          1.250 kg x RD$ 45.00
          Descuento                          -5.00
        Leche entera 1 L                     62.00
        Yogur de piña                       105.00
          3 x RD$ 35.00
        Queso de hoja (maduro, añejo,       162.90
          importado)
          0.455 kg x RD$ 380.00
          Descuento                         -10.00
        ------------------------------------------
        Subtotal                            646.15
        Descuentos                          -15.00
        Exento                               62.00
        ITBIS 16%                            14.48
        ITBIS 18%                            70.81
        Total ITBIS                          85.29
        TOTAL                           RD$ 631.15
        ------------------------------------------
        Efectivo                            300.00
        Fiado (crédito)                     331.15
        Cambio                                0.00
        Balance pendiente               RD$ 850.00
        ------------------------------------------
        [QR: https://dgii.gov.do/verificar?RncEmisor=1-01-12345-6&NCF=B0200000051&FechaEmision=23-11-2026&MontoTotal=631.15&ITBIS=85.29]

                Verifique este comprobante
        ------------------------------------------
                 ¡Gracias por su compra!


        [CORTE]
    "#]]
    .assert_eq(&paper(&groceries_receipt(), Width::Mm58, CodePage::Pc858));
}

#[test]
fn reprint_on_80mm_paper_is_marked_copia() {
    let at = LocalDateTime::from_utc_ms(SOLD_AT_MS + 3_600_000, UtcOffset::SANTO_DOMINGO);
    let copy = groceries_receipt().into_copy(at);
    expect![[r#"
                         *** COPIA ***
                  Reimpreso: 23/11/2026 08:30

                       Colmado La Esquina
                       RNC: 1-01-12345-6
                     C/ Duarte 12, Santiago
                       Tel. 809-555-0101
        ------------------------------------------------
                       FACTURA DE CONSUMO
        NCF: B0200000051
        Válido hasta: 31/12/2026
        Fecha: 23/11/2026 07:30
        Cajero: María Núñez
        Caja: Caja 1
        Venta: 0192f0c1-7a3e-7b2c-9d4e-3f9a1c2b7d10
        Cliente: José Peña
        ------------------------------------------------
        DESCRIPCIÓN                                VALOR
        ------------------------------------------------
        Arroz selecto 5 lb                        250.00
          2 x RD$ 125.00
        Tomate de ensalada                         51.25
          1.250 kg x RD$ 45.00
          Descuento                                -5.00
        Leche entera 1 L                           62.00
        Yogur de piña                             105.00
          3 x RD$ 35.00
        Queso de hoja (maduro, añejo, importado)  162.90
          0.455 kg x RD$ 380.00
          Descuento                               -10.00
        ------------------------------------------------
        Subtotal                                  646.15
        Descuentos                                -15.00
        Exento                                     62.00
        ITBIS 16%                                  14.48
        ITBIS 18%                                  70.81
        Total ITBIS                                85.29
        TOTAL                                 RD$ 631.15
        ------------------------------------------------
        Efectivo                                  300.00
        Fiado (crédito)                           331.15
        Cambio                                      0.00
        Balance pendiente                     RD$ 850.00
        ------------------------------------------------
        [QR: https://dgii.gov.do/verificar?RncEmisor=1-01-12345-6&NCF=B0200000051&FechaEmision=23-11-2026&MontoTotal=631.15&ITBIS=85.29]

                   Verifique este comprobante
        ------------------------------------------------
                    ¡Gracias por su compra!
                         *** COPIA ***


        [CORTE]
    "#]]
    .assert_eq(&paper(&copy, Width::Mm80, CodePage::Wpc1252));
}

#[test]
fn cash_and_card_sale_without_fiscal_number() {
    let s = sale(
        vec![
            line("REF2L", "Refresco 2 L", 1000, 11000, 1800, 0),
            line("PAN", "Pan de agua", 6000, 500, 0, 0),
        ],
        vec![
            pay(PaymentMethod::Card, 5000, Some("004512")),
            pay(PaymentMethod::Cash, 10000, None),
        ],
        1000,
        None,
    );
    let mut ctx = context();
    ctx.customer_name = None;
    ctx.fiado_balance = None;
    ctx.footer = vec!["Cambios con factura, 30 días".into()];
    let receipt = Receipt::from_sale(&s, &ctx, weighed).expect("receipt");
    expect![[r#"
                    Colmado La Esquina
                    RNC: 1-01-12345-6
                  C/ Duarte 12, Santiago
                    Tel. 809-555-0101
        ------------------------------------------
                     RECIBO DE VENTA
                  Sin comprobante fiscal
        Fecha: 23/11/2026 07:30
        Cajero: María Núñez
        Caja: Caja 1
        Venta:
          0192f0c1-7a3e-7b2c-9d4e-3f9a1c2b7d10
        ------------------------------------------
        DESCRIPCIÓN                          VALOR
        ------------------------------------------
        Refresco 2 L                        110.00
        Pan de agua                          30.00
          6 x RD$ 5.00
        ------------------------------------------
        Exento                               30.00
        ITBIS 18%                            16.78
        TOTAL                           RD$ 140.00
        ------------------------------------------
        Tarjeta ref. 004512                  50.00
        Efectivo                            100.00
        Cambio                               10.00
        ------------------------------------------
               Cambios con factura, 30 días


        [CORTE]
    "#]]
    .assert_eq(&paper(&receipt, Width::Mm58, CodePage::Pc858));
}

#[test]
fn every_line_fits_both_widths() {
    for width in [Width::Mm58, Width::Mm80] {
        let text = paper(&groceries_receipt(), width, CodePage::Pc858);
        for line in text.lines().filter(|l| !l.starts_with("[QR")) {
            assert!(
                line.chars().count() <= width.columns(),
                "{width:?}: {line:?}"
            );
        }
    }
}

#[test]
fn spanish_text_round_trips_through_both_code_pages() {
    let spanish = [
        "¿Cuánto cuesta el ñame?",
        "¡Qué barato! Güira",
        "ÁÉÍÓÚÜÑ áéíóúüñ € ºª",
    ];
    for page in CodePage::ALL {
        let mut s = sale(
            vec![line("X", "Ñame y piña", 1000, 100, 1800, 0)],
            vec![pay(PaymentMethod::Cash, 100, None)],
            0,
            None,
        );
        s.cashier = "Ángel Muñoz".into();
        let mut ctx = context();
        ctx.footer = spanish.iter().map(|s| s.to_string()).collect();
        let receipt = Receipt::from_sale(&s, &ctx, weighed).expect("receipt");
        let layout = receipt.layout(Width::Mm58, page).expect("layout");
        assert!(
            layout.unmappable.is_empty(),
            "{page}: {}",
            layout.unmappable
        );
        let decoded = decode(&render(&layout).expect("render").bytes).text();
        for expected in spanish
            .iter()
            .chain(&["Ñame y piña", "Cajero: Ángel Muñoz", "DESCRIPCIÓN"])
        {
            assert!(
                decoded.lines().any(|l| l.contains(expected)),
                "{page}: {expected} in {decoded}"
            );
        }
    }
}

#[test]
fn characters_the_page_lacks_print_as_question_marks_and_are_counted() {
    let s = sale(
        vec![line("X", "Café ☕ → 2×1 — oferta", 1000, 100, 1800, 0)],
        vec![pay(PaymentMethod::Cash, 100, None)],
        0,
        None,
    );
    let receipt = Receipt::from_sale(&s, &context(), weighed).expect("receipt");
    let layout = receipt
        .layout(Width::Mm58, CodePage::Pc858)
        .expect("layout");
    let rendered = render(&layout).expect("render");
    assert_eq!(rendered.unmappable.total(), 3);
    expect![[r#"U+2014 '—' ×1, U+2192 '→' ×1, U+2615 '☕' ×1"#]]
        .assert_eq(&rendered.unmappable.to_string());
    let text = decode(&rendered.bytes).text();
    assert!(text.contains("Café ? ? 2×1 ? oferta"), "{text}");
}

#[test]
fn control_characters_in_names_never_reach_the_printer() {
    let s = sale(
        vec![line("X", "Pan\u{1b}p\u{0}\u{19}\u{fa}", 1000, 100, 1800, 0)],
        vec![pay(PaymentMethod::Cash, 100, None)],
        0,
        None,
    );
    let receipt = Receipt::from_sale(&s, &context(), weighed).expect("receipt");
    let rendered = render(
        &receipt
            .layout(Width::Mm58, CodePage::Pc858)
            .expect("layout"),
    )
    .expect("render");
    let decoded = decode(&rendered.bytes);
    assert!(
        !decoded
            .commands
            .iter()
            .any(|c| matches!(c, Command::DrawerKick { .. } | Command::Unknown(_))),
        "{:?}",
        decoded.commands
    );
    assert_eq!(rendered.unmappable.total(), 3);
}

#[test]
fn the_job_starts_with_init_and_code_page_and_ends_with_a_cut() {
    let rendered = render(
        &groceries_receipt()
            .layout(Width::Mm58, CodePage::Pc858)
            .expect("layout"),
    )
    .expect("render");
    let commands = decode(&rendered.bytes).commands;
    assert_eq!(commands[..2], [Command::Init, Command::CodePage(19)]);
    assert_eq!(commands.last(), Some(&Command::Cut { partial: false }));
    assert!(commands.contains(&Command::QrModel(50)), "QR model 2");
}

#[test]
fn a_sale_whose_totals_disagree_with_its_lines_is_refused() {
    let mut s = groceries();
    s.total = Money(s.total.0 + 1);
    assert_eq!(
        Receipt::from_sale(&s, &context(), weighed),
        Err(ReceiptError::Inconsistent {
            field: "total",
            recorded: s.total,
            computed: Money(s.total.0 - 1),
        })
    );
    let mut ctx = context();
    ctx.fiscal_valid_until = None;
    assert!(matches!(
        Receipt::from_sale(&groceries(), &ctx, weighed),
        Err(ReceiptError::MissingFiscalExpiry(_))
    ));
}

#[test]
fn command_stream_of_the_header() {
    let rendered = render(
        &groceries_receipt()
            .layout(Width::Mm58, CodePage::Pc858)
            .expect("layout"),
    )
    .expect("render");
    let commands = decode(&rendered.bytes).commands;
    let head: Vec<String> = commands.iter().take(12).map(|c| format!("{c:?}")).collect();
    expect![[r#"
        Init
        CodePage(19)
        Font(1)
        Justify(Center)
        Bold(true)
        Size { width: 1, height: 2 }
        Text("Colmado La Esquina")
        PrintAndFeed(1)
        Bold(false)
        Size { width: 1, height: 1 }
        Text("RNC: 1-01-12345-6")
        PrintAndFeed(1)"#]]
    .assert_eq(&head.join("\n"));
}

#[test]
fn a_confirmed_electronic_document_carries_the_authoritys_qr_and_security_code() {
    let mut ctx = context();
    ctx.fiscal_confirmation = Some(caja_hardware::receipt::FiscalConfirmation {
        security_code: "A1B2C3".into(),
        verify_url: "https://fc.dgii.gov.do/ecf/ConsultaTimbreFC?RncEmisor=101123456&ENCF=E320000000051&MontoTotal=631.15&CodigoSeguridad=A1B2C3".into(),
        signed_at: None,
    });
    let r = Receipt::from_sale(&groceries(), &ctx, weighed).expect("receipt");
    let text = paper(&r, Width::Mm58, CodePage::Pc858);
    let tail: Vec<&str> = text.lines().skip_while(|l| !l.contains("[QR:")).collect();
    expect![[r#"
        [QR: https://fc.dgii.gov.do/ecf/ConsultaTimbreFC?RncEmisor=101123456&ENCF=E320000000051&MontoTotal=631.15&CodigoSeguridad=A1B2C3]

                Verifique este comprobante
               Código de seguridad: A1B2C3
        ------------------------------------------
                 ¡Gracias por su compra!


        [CORTE]"#]]
    .assert_eq(&tail.join("\n"));
    // Without a fiscal number there is nothing to confirm.
    let mut plain = groceries();
    plain.fiscal = None;
    let r = Receipt::from_sale(&plain, &ctx, weighed).expect("receipt");
    assert_eq!((r.qr, r.security_code), (None, None));
}

#[test]
fn an_ecf_signed_at_the_register_prints_code_signing_time_and_a_large_enough_qr() {
    let mut ctx = context();
    let url = "https://fc.dgii.gov.do/testecf/ConsultaTimbreFC?RncEmisor=101123456&ENCF=E320000000051&MontoTotal=631.15&CodigoSeguridad=A1B2C3";
    ctx.fiscal_confirmation = Some(caja_hardware::receipt::FiscalConfirmation {
        security_code: "A1B2C3".into(),
        verify_url: url.into(),
        signed_at: Some(LocalDateTime::from_utc_ms(
            SOLD_AT_MS,
            UtcOffset::SANTO_DOMINGO,
        )),
    });
    let r = Receipt::from_sale(&groceries(), &ctx, weighed).expect("receipt");
    let text = paper(&r, Width::Mm80, CodePage::Pc858);
    assert!(text.contains("Código de seguridad: A1B2C3"), "{text}");
    let at = LocalDateTime::from_utc_ms(SOLD_AT_MS, UtcOffset::SANTO_DOMINGO);
    let expected = format!(
        "Fecha de firma: {:02}-{:02}-{:04} {:02}:{:02}:{:02}",
        at.day, at.month, at.year, at.hour, at.minute, at.second
    );
    assert!(text.contains(&expected), "{text}");
    // The symbol's side in mm at the module size the renderer sends, for
    // the shortest and the longest DGII payload.
    let side_mm = |data: &str| {
        let code =
            qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M).expect("qr");
        let modules = u32::try_from(code.width()).expect("width");
        f64::from(modules * u32::from(caja_hardware::render::QR_MODULE_DOTS))
            / f64::from(caja_hardware::render::DOTS_PER_MM)
    };
    let shortest = "https://fc.dgii.gov.do/ecf/ConsultaTimbreFC?RncEmisor=101123456&ENCF=E320000000001&MontoTotal=0.00&CodigoSeguridad=A1B2C3";
    let longest = "https://ecf.dgii.gov.do/certecf/ConsultaTimbre?RncEmisor=101123456&RncComprador=40212345678&ENCF=E310000000001&FechaEmision=31-12-2026&MontoTotal=99999999999.99&FechaFirma=31-12-2026%2023%3A59%3A59&CodigoSeguridad=A%2B%2F1b2";
    assert!(side_mm(shortest) >= 22.0, "{} mm", side_mm(shortest));
    assert!(side_mm(longest) <= 48.0, "{} mm", side_mm(longest));
}

#[test]
fn an_electronic_tax_credit_invoice_names_the_e_ncf_and_its_buyer() {
    let mut sale = groceries();
    let f = sale.fiscal.as_mut().expect("groceries are fiscal");
    f.series = "E31".into();
    f.number = "E310000000001".into();
    f.buyer_tax_id = Some("101000015".into());
    f.buyer_name = Some("Cafetería El Puente SRL".into());
    let r = Receipt::from_sale(&sale, &context(), weighed).expect("receipt");
    let text = paper(&r, Width::Mm80, CodePage::Pc858);
    assert!(
        text.contains("FACTURA DE CRÉDITO FISCAL ELECTRÓNICA"),
        "{text}"
    );
    assert!(text.contains("e-NCF: E310000000001"), "{text}");
    assert!(text.contains("RNC/Cédula comprador: 101000015"), "{text}");
    assert!(
        text.contains("Razón social comprador: Cafetería El Puente SRL"),
        "{text}"
    );
    // A paper NCF keeps its label and a consumer sale names no buyer.
    let plain = paper(&groceries_receipt(), Width::Mm80, CodePage::Pc858);
    assert!(!plain.contains("e-NCF"), "{plain}");
    assert!(!plain.contains("comprador"), "{plain}");
}

#[test]
fn a_line_sold_over_its_shelf_price_prints_both_prices() {
    let mut rice = line("ARROZ", "Arroz selecto 1 kg", 1000, 6000, 1800, 0);
    rice.price_override = Some(caja_shared::kind::PriceOverride {
        shelf_price: Money(6500),
        approval: None,
    });
    let s = sale(
        vec![rice, line("PAN", "Pan de agua", 2000, 500, 0, 0)],
        vec![pay(PaymentMethod::Cash, 7000, None)],
        0,
        None,
    );
    let mut ctx = context();
    ctx.customer_name = None;
    ctx.fiado_balance = None;
    let receipt = Receipt::from_sale(&s, &ctx, weighed).expect("receipt");
    let text = paper(&receipt, Width::Mm58, CodePage::Pc858);
    let body: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("DESCRIPCIÓN"))
        .skip(2)
        .take(4)
        .collect();
    expect![[r#"
        [
            "Arroz selecto 1 kg                   60.00",
            "  1 x RD$ 60.00",
            "  Precio de lista: RD$ 65.00",
            "Pan de agua                          10.00",
        ]
    "#]]
    .assert_debug_eq(&body);
}
