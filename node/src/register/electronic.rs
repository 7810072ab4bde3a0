//! The e-CF part of a sale's or a return's transaction: check the buyer
//! rules, sign at the hub-corrected time, append `FiscalDocumentIssued`
//! (deps: the sale or return event) and store the signed bytes — inside the
//! caller's transaction, so any refusal here rolls the whole operation back.
//!
//! Invariant: an `E` document is never appended without its signed bytes,
//! nor stored without its event. Rules: DGII "Formato e-CF" (NCFModificado,
//! FechaNCFModificado, CodigoModificacion 1 full / 3 amounts) and "Informe
//! Técnico e-CF" (the buyer on E31, on an E32 of RD$250,000 or more and on
//! credit notes modifying them).

use caja_shared::entropy::RandomSource;
use caja_shared::kind::{
    FiscalDocType, FiscalDocumentIssued, IssuedDocument, SaleCreated, SaleReturned,
};
use caja_shared::localtime::{LocalDate, UtcOffset};

use super::kernel::{invalid, OpCtx};
use crate::ecf::{self, store::Owner, EcfIssuer, IssuedEcf, Modification, Modified};
use crate::error::{OpError, Refusal};

/// The hub-corrected signing time of this transaction.
fn signing_time<R: RandomSource>(ctx: &OpCtx<'_, '_, R>) -> Result<i64, OpError> {
    Ok(ecf::hub_corrected(
        ctx.now_ms,
        crate::sync::state::saved_skew_ms(ctx.tx)?,
    ))
}

/// Appends the `FiscalDocumentIssued` of `issued` (deps: the event at
/// `dep_seq`) and stores its documents.
fn record<R: RandomSource>(
    ctx: &mut OpCtx<'_, '_, R>,
    issued: &IssuedEcf,
    owner: Owner,
    dep_seq: u64,
    issued_ms: i64,
    buyer: (Option<&str>, Option<&str>),
) -> Result<(), OpError> {
    let dep = ctx.event_id_at(dep_seq)?;
    let (doc_type, sale_id, return_id) = match owner {
        Owner::Sale(s) => (FiscalDocType::Invoice, Some(s), None),
        Owner::Return(r) => (FiscalDocType::CreditNote, None, Some(r)),
    };
    let seq = ctx.append(
        FiscalDocumentIssued {
            encf: issued.encf.clone(),
            doc_type,
            sale_id,
            return_id,
            security_code: issued.security_code.clone(),
            signed_at_ms: issued.signed_at_ms,
            total: issued.total,
            documents: issued
                .documents
                .iter()
                .map(|d| IssuedDocument {
                    kind: d.kind.clone(),
                    sha256: d.sha256,
                })
                .collect(),
        }
        .into(),
        vec![dep],
    )?;
    let date = LocalDate::from_utc_ms(issued_ms, UtcOffset::SANTO_DOMINGO).iso();
    ecf::store::insert(
        ctx.tx,
        issued,
        owner,
        &date,
        buyer,
        i64::try_from(seq).map_err(|_| invalid("seq", "out of range"))?,
    )?;
    crate::crashpoint::hit("ecf:stored");
    Ok(())
}

/// A sale's e-CF being signed beside its transaction ([`start_sale`]),
/// stored and checked by [`finish_sale`] before the transaction commits.
pub(super) struct SaleSigning {
    pending: ecf::PendingSale,
    sale_id: caja_shared::ids::SaleId,
    at: i64,
    buyer_tax_id: Option<String>,
    buyer_name: Option<String>,
}

/// Checks the buyer rules and the certificate at the signing time, then
/// starts signing the e-CF of `sale` (final: its fiscal number taken in this
/// transaction) while the transaction goes on; `None` for a sale without a
/// fiscal number.
pub(super) fn start_sale<R: RandomSource>(
    ctx: &OpCtx<'_, '_, R>,
    issuer: &dyn EcfIssuer,
    sale: &SaleCreated,
    buyer_name: Option<&str>,
) -> Result<Option<SaleSigning>, OpError> {
    let Some(fiscal) = &sale.fiscal else {
        return Ok(None);
    };
    if ecf::buyer_required(&fiscal.series, sale.total)
        && (fiscal.buyer_tax_id.is_none() || buyer_name.is_none())
    {
        return Err(OpError::Refused(Refusal::BuyerNameRequired(
            fiscal.series.clone(),
        )));
    }
    let at = signing_time(ctx)?;
    issuer.check(at)?;
    let pending = issuer.start_sale(
        sale.clone(),
        ecf::SigningOwned {
            issued_ms: at,
            signed_at_ms: at,
            series_valid_until: fiscal.valid_until.clone(),
            buyer_name: buyer_name.map(str::to_owned),
        },
    );
    Ok(Some(SaleSigning {
        pending,
        sale_id: sale.sale_id,
        at,
        buyer_tax_id: fiscal.buyer_tax_id.clone(),
        buyer_name: buyer_name.map(str::to_owned),
    }))
}

/// Takes the signed documents of a sale appended at `seq`, appends their
/// `FiscalDocumentIssued` and stores them, then waits for the last checks:
/// an error here rolls the sale back.
pub(super) fn finish_sale<R: RandomSource>(
    ctx: &mut OpCtx<'_, '_, R>,
    signing: SaleSigning,
    seq: u64,
) -> Result<(), OpError> {
    let SaleSigning {
        mut pending,
        sale_id,
        at,
        buyer_tax_id,
        buyer_name,
    } = signing;
    let refused = |e| OpError::Refused(Refusal::EcfNotIssued(e));
    let issued = pending.documents().map_err(refused)?;
    record(
        ctx,
        &issued,
        Owner::Sale(sale_id),
        seq,
        at,
        (buyer_tax_id.as_deref(), buyer_name.as_deref()),
    )?;
    // Every document checked before the sale commits.
    pending.finish().map_err(refused)
}

/// What the cashier may give for a credit note whose original this register
/// does not hold (or to name the buyer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct CreditNoteInput<'a> {
    /// `FechaNCFModificado`, `yyyy-mm-dd`.
    pub modified_date: Option<&'a str>,
    /// The buyer's RNC or cédula.
    pub buyer_tax_id: Option<&'a str>,
    /// The buyer's name.
    pub buyer_name: Option<&'a str>,
}

/// The buyer a credit note names and the document it modifies, decided
/// before the return is appended (the credit note's `FiscalRef` carries the
/// buyer's tax id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CreditNotePlan {
    /// What it modifies.
    pub modified: Modified,
    /// The buyer's RNC or cédula.
    pub buyer_tax_id: Option<String>,
    /// The buyer's name.
    pub buyer_name: Option<String>,
}

/// Decides the modified document and the buyer of an `E34` for a return of
/// `total` modifying `ncf`: the date and buyer from the register's own e-CF
/// when it holds it, else as typed; full when the return gives back the
/// whole document.
pub(super) fn plan_credit_note<R: RandomSource>(
    ctx: &OpCtx<'_, '_, R>,
    ncf: &str,
    total: caja_shared::money::Money,
    input: &CreditNoteInput<'_>,
) -> Result<CreditNotePlan, OpError> {
    let own = ecf::store::by_encf(ctx.tx, ncf)?;
    let typed_date = match input.modified_date {
        Some(d) => Some(
            LocalDate::parse_iso(d).ok_or_else(|| invalid("modified_date", "a date yyyy-mm-dd"))?,
        ),
        None => None,
    };
    let issued_date = match (&own, typed_date) {
        (Some(row), _) => LocalDate::parse_iso(&row.issued_date)
            .ok_or_else(|| invalid("modified_date", "stored date unreadable"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(OpError::Refused(Refusal::ModifiedDateRequired(ncf.into()))),
    };
    let modification = match &own {
        Some(row) if row.total == total => Modification::Full,
        _ => Modification::Partial,
    };
    let buyer_tax_id = own
        .as_ref()
        .and_then(|r| r.buyer_tax_id.clone())
        .or_else(|| input.buyer_tax_id.map(str::to_owned));
    let buyer_name = own
        .as_ref()
        .and_then(|r| r.buyer_name.clone())
        .or_else(|| input.buyer_name.map(str::to_owned));
    // A credit note modifying a document that names its buyer names it too.
    let needs_buyer = ncf.starts_with("E31")
        || own.as_ref().is_some_and(|r| r.buyer_tax_id.is_some())
        || (own.is_none() && ncf.starts_with("E32") && total >= ecf::E32_BUYER_THRESHOLD);
    if needs_buyer && (buyer_tax_id.is_none() || buyer_name.is_none()) {
        return Err(OpError::Refused(Refusal::BuyerNameRequired("E34".into())));
    }
    Ok(CreditNotePlan {
        modified: Modified {
            ncf: ncf.to_owned(),
            issued_date,
            modification,
        },
        buyer_tax_id,
        buyer_name,
    })
}

/// Signs the credit note of a return just appended at `seq`.
pub(super) fn issue_credit_note<R: RandomSource>(
    ctx: &mut OpCtx<'_, '_, R>,
    issuer: &dyn EcfIssuer,
    ret: &SaleReturned,
    seq: u64,
    plan: &CreditNotePlan,
) -> Result<(), OpError> {
    let Some(fiscal) = &ret.credit_note else {
        return Ok(());
    };
    let at = signing_time(ctx)?;
    issuer.check(at)?;
    let issued = issuer
        .issue_credit_note(
            ret,
            &plan.modified,
            &ecf::Signing {
                issued_ms: at,
                signed_at_ms: at,
                series_valid_until: fiscal.valid_until.as_deref(),
                buyer_name: plan.buyer_name.as_deref(),
            },
        )
        .map_err(|e| OpError::Refused(Refusal::EcfNotIssued(e)))?;
    record(
        ctx,
        &issued,
        Owner::Return(ret.return_id),
        seq,
        at,
        (plan.buyer_tax_id.as_deref(), plan.buyer_name.as_deref()),
    )
}
