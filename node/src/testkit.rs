//! Ready-made data for tests, benchmarks and demos: a small catalog as a signed
//! page of a store's hub chain, the way the hub will send it. Not used by the
//! register's own operations.

use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::digest::Hash256;
use caja_shared::entropy::RandomSource;
use caja_shared::event::{EnvelopeError, Event, EventDraft};
use caja_shared::hlc::Hlc;
use caja_shared::ids::{DeviceId, KeyId, Seq, StoreId};
use caja_shared::key::HubSigningKey;
use caja_shared::kind::{CatalogItemUpserted, EventBody, PriceSet, SoldBy, StockPolicy};
use caja_shared::money::{Money, TaxRateBp};

/// A product of the sample catalog: SKU, extra barcode, name, price (centavos
/// per piece or per kg), ITBIS (bp), sold by, policy.
pub type SampleItem = (
    &'static str,
    Option<&'static str>,
    &'static str,
    i64,
    u16,
    SoldBy,
    StockPolicy,
);

/// The sample catalog of a Dominican colmado.
pub const SAMPLE_CATALOG: &[SampleItem] = &[
    (
        "7501234567890",
        Some("ARROZ"),
        "Arroz Selecto 1kg",
        6500,
        1800,
        SoldBy::Unit,
        StockPolicy::Block,
    ),
    (
        "2000000000017",
        None,
        "Queso de freír",
        38000,
        0,
        SoldBy::Weight,
        StockPolicy::Warn,
    ),
    (
        "7460000000011",
        None,
        "Refresco 2L",
        9500,
        1800,
        SoldBy::Unit,
        StockPolicy::Block,
    ),
    (
        "7460000000028",
        Some("HABICHUELAS"),
        "Habichuelas rojas 1lb",
        8500,
        1800,
        SoldBy::Unit,
        StockPolicy::Block,
    ),
    (
        "2000000000024",
        None,
        "Salami (peso)",
        32000,
        1600,
        SoldBy::Weight,
        StockPolicy::Warn,
    ),
];

/// Builds events of a store's hub chain from `first_seq` after `prev` (stamped
/// from `hlc_ms`), and the hub's signed checkpoint over the last one.
#[allow(clippy::too_many_arguments)]
pub fn hub_chain_page(
    key: &HubSigningKey,
    key_id: &KeyId,
    store: StoreId,
    chain: DeviceId,
    first_seq: u64,
    prev: Hash256,
    hlc_ms: i64,
    bodies: Vec<EventBody>,
    rng: &mut impl RandomSource,
) -> Result<(Vec<Event>, Option<HubCheckpoint>), EnvelopeError> {
    let mut prev = prev;
    let mut out = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.into_iter().enumerate() {
        let seq = first_seq.saturating_add(i as u64);
        let hlc =
            Hlc::new(hlc_ms, u32::try_from(i).unwrap_or(u32::MAX)).map_err(|e| EnvelopeError {
                field: "hlc".into(),
                problem: caja_shared::event::EnvelopeProblem::Invalid(e.to_string()),
            })?;
        let seq = Seq::new(seq).map_err(|e| EnvelopeError {
            field: "seq".into(),
            problem: caja_shared::event::EnvelopeProblem::Invalid(e.to_string()),
        })?;
        let e = Event::build(
            EventDraft {
                store,
                device: chain,
                seq,
                prev,
                hlc,
                deps: vec![],
                body,
            },
            rng,
        )?;
        prev = e.hash();
        out.push(e);
    }
    let cp = out
        .last()
        .map(|last| HubCheckpoint::sign(key, key_id.clone(), chain, last.seq(), last.hash()));
    Ok((out, cp))
}

/// The hub events that load [`SAMPLE_CATALOG`]: one `CatalogItemUpserted` and
/// one `PriceSet` per item.
pub fn sample_catalog_bodies() -> Vec<EventBody> {
    let mut out = Vec::new();
    for (sku, barcode, name, _, bp, sold_by, policy) in SAMPLE_CATALOG {
        let (Ok(product), Ok(tax_bp)) = (sku.parse(), TaxRateBp::new(*bp)) else {
            continue;
        };
        out.push(
            CatalogItemUpserted {
                product,
                name: (*name).to_owned(),
                barcodes: barcode.and_then(|b| b.parse().ok()).into_iter().collect(),
                tax_bp,
                sold_by: *sold_by,
                policy: *policy,
            }
            .into(),
        );
    }
    for (sku, _, _, price, _, _, _) in SAMPLE_CATALOG {
        if let Ok(product) = sku.parse() {
            out.push(
                PriceSet {
                    product,
                    unit_price: Money(*price),
                }
                .into(),
            );
        }
    }
    out
}

/// A JSON pull page `{"events", "hub_checkpoint"}` as `caja-node hub import`
/// reads it.
pub fn page_json(events: &[Event], checkpoint: &HubCheckpoint) -> serde_json::Value {
    serde_json::json!({
        "events": events.iter().map(|e| e.value().to_serde()).collect::<Vec<_>>(),
        "hub_checkpoint": checkpoint,
    })
}
