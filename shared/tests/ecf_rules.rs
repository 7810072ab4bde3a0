//! DGII's rules as the builders apply them, without external tools: what a
//! document needs and the event lacks is an error naming the field, never a
//! dropped element.

mod ecf_support;

use caja_shared::ecf::document::{self, DocumentError, ModificationCode, ModifiedDocument};
use caja_shared::ecf::xml;
use caja_shared::localtime::{LocalDate, LocalDateTime, UtcOffset};
use caja_shared::money::Money;
use ecf_support::*;

fn field_of(e: DocumentError) -> String {
    match e {
        DocumentError::Field { field, .. } => field,
        other => panic!("not a field error: {other}"),
    }
}

#[test]
fn an_invoice_needs_what_dgii_requires() {
    let issuer = issuer();
    let c = ctx(&issuer, None);
    let ok = small_sale("E320000000051");
    assert!(document::invoice(&ok, &c).is_ok());

    let mut s = ok.clone();
    s.fiscal = None;
    assert_eq!(field_of(document::invoice(&s, &c).unwrap_err()), "fiscal");
    let mut s = ok.clone();
    s.fiscal.as_mut().unwrap().number = "E34000000005".into();
    assert_eq!(
        field_of(document::invoice(&s, &c).unwrap_err()),
        "fiscal.number"
    );
    let mut s = ok.clone();
    s.fiscal.as_mut().unwrap().number = "E340000000051".into();
    assert_eq!(
        field_of(document::invoice(&s, &c).unwrap_err()),
        "fiscal.number"
    );
    let mut s = ok.clone();
    s.total = Money(s.total.0 + 1);
    assert_eq!(field_of(document::invoice(&s, &c).unwrap_err()), "total");
    let mut s = ok.clone();
    s.lines.clear();
    assert_eq!(field_of(document::invoice(&s, &c).unwrap_err()), "lines");
    let mut s = ok.clone();
    s.lines = vec![s.lines[2].clone(); 1001];
    s.total = Money(s.lines.iter().map(|l| l.total.0).sum());
    assert_eq!(field_of(document::invoice(&s, &c).unwrap_err()), "lines");
    let mut s = ok.clone();
    s.fiscal.as_mut().unwrap().buyer_tax_id = Some("123".into());
    assert_eq!(
        field_of(document::invoice(&s, &c).unwrap_err()),
        "fiscal.buyer_tax_id"
    );
    let mut s = ok.clone();
    s.lines[0].tax_bp = caja_shared::money::TaxRateBp::new(1000).unwrap();
    assert_eq!(
        document::invoice(&s, &c).unwrap_err(),
        DocumentError::TaxRate { line: 0, bp: 1000 }
    );
    // A line whose total is not quantity × price is refused, line named.
    let mut s = ok.clone();
    s.lines[2].total = Money(s.lines[2].total.0 + 101);
    s.total = Money(s.total.0 + 101);
    assert!(matches!(
        document::invoice(&s, &c).unwrap_err(),
        DocumentError::Tolerance { line: 2, .. }
    ));
    // A 1,000-line sale is fine.
    let mut s = ok.clone();
    s.lines = vec![s.lines[2].clone(); 1000];
    s.total = Money(s.lines.iter().map(|l| l.total.0).sum());
    s.fiscal.as_mut().unwrap().buyer_tax_id = Some("131880738".into());
    s.fiscal.as_mut().unwrap().buyer_name = Some("Juan".into());
    assert!(document::invoice(&s, &c).is_ok());
}

#[test]
fn deferred_sending_and_long_names() {
    let issuer = issuer();
    let mut c = ctx(&issuer, None);
    c.deferred_send = true;
    let mut s = small_sale("E320000000051");
    s.lines[0].name = format!("{}ñ", "x".repeat(90));
    let b = document::invoice(&s, &c).unwrap();
    let doc = xml::parse(&b.xml).unwrap();
    assert_eq!(
        doc.text_at("Encabezado/IdDoc/IndicadorEnvioDiferido"),
        Some("1")
    );
    let name = doc
        .child("DetallesItems")
        .unwrap()
        .elements()
        .next()
        .unwrap()
        .text_at("NombreItem")
        .unwrap()
        .to_owned();
    assert_eq!(name.chars().count(), 80);
    // The summary carries the code given; only under the threshold.
    assert!(document::summary(&s, &c, "abc").is_err());
    let r = document::summary(&s, &c, "AbC+/1").unwrap();
    assert!(String::from_utf8(r)
        .unwrap()
        .contains("<CodigoSeguridadeCF>AbC+/1</CodigoSeguridadeCF>"));
}

#[test]
fn a_credit_note_needs_its_reference() {
    let issuer = issuer();
    let c = ctx(&issuer, None);
    let r = a_return("E340000000003", "E320000000051", None);
    let m = ModifiedDocument {
        ncf: "E320000000051".into(),
        issued_date: LocalDate::new(2026, 11, 22).unwrap(),
        code: ModificationCode::CorrectAmounts,
    };
    assert!(document::credit_note(&r, &m, &c).is_ok());
    let other = ModifiedDocument {
        ncf: "E320000000052".into(),
        ..m.clone()
    };
    assert_eq!(
        field_of(document::credit_note(&r, &other, &c).unwrap_err()),
        "modified.ncf"
    );
    let future = ModifiedDocument {
        issued_date: LocalDate::new(2026, 11, 24).unwrap(),
        ..m.clone()
    };
    assert_eq!(
        field_of(document::credit_note(&r, &future, &c).unwrap_err()),
        "modified.issued_date"
    );
    let bad = ModifiedDocument {
        ncf: "X".into(),
        ..m.clone()
    };
    assert_eq!(
        field_of(document::credit_note(&r, &bad, &c).unwrap_err()),
        "modified.ncf"
    );
    let mut no_note = r.clone();
    no_note.credit_note = None;
    assert_eq!(
        field_of(document::credit_note(&no_note, &m, &c).unwrap_err()),
        "credit_note"
    );
    // A buyer's RNC on the note needs the name.
    let named = a_return("E340000000003", "E320000000051", Some("101672919"));
    assert_eq!(
        field_of(document::credit_note(&named, &m, &c).unwrap_err()),
        "buyer_name"
    );
    assert_eq!(ModificationCode::Cancel.code(), 1);
    assert_eq!(ModificationCode::Contingency.code(), 4);
}

#[test]
fn a_cancellation_counts_its_ranges() {
    let at = LocalDateTime::from_utc_ms(ISSUED_MS, UtcOffset::SANTO_DOMINGO);
    let b = document::cancellation(&issuer(), "E31", &[("E310000000001", "E310000000010")], at)
        .unwrap();
    let doc = xml::parse(&b).unwrap();
    assert_eq!(doc.text_at("Encabezado/CantidadeNCFAnulados"), Some("10"));
    assert_eq!(
        doc.text_at("DetalleAnulacion/Anulacion/TipoeCF"),
        Some("31")
    );
    assert_eq!(
        field_of(
            document::cancellation(&issuer(), "B02", &[("B0200000001", "B0200000002")], at)
                .unwrap_err()
        ),
        "series"
    );
    assert_eq!(
        field_of(document::cancellation(&issuer(), "E31", &[], at).unwrap_err()),
        "ranges"
    );
}
