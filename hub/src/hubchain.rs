//! The hub's own chains: one per store (device id = the store's hub device),
//! holding what that store's registers must obey (catalog items and prices
//! today; fiscal blocks, escrow grants, staff and resolutions later). Hub events
//! are ordinary envelope-v1 events built with [`Event::build`]; their
//! checkpoints are signed with the hub's Ed25519 key ([`HubCheckpoint`]).
//!
//! Architecture invariant: pure; the head of the chain, the time and the random
//! source are passed in. The store appends under its single writer, so each
//! chain has one gapless order.

use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::digest::Hash256;
use caja_shared::entropy::RandomSource;
use caja_shared::event::{EnvelopeError, Event, EventDraft};
use caja_shared::hlc::{Hlc, HlcError, HlcState};
use caja_shared::ids::{DeviceId, EventId, KeyId, Seq, StoreId};
use caja_shared::key::{HubPublicKey, HubSigningKey};
use caja_shared::kind::EventBody;

/// How far ahead of the hub's clock its HLC may be pushed.
pub const HUB_MAX_DRIFT_MS: i64 = 60_000;

/// Where a store's hub chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubChainHead {
    /// The store.
    pub store: StoreId,
    /// The store's hub device.
    pub device: DeviceId,
    /// Last seq, 0 when empty.
    pub seq: u64,
    /// Hash at `seq`, zeros when empty.
    pub hash: Hash256,
    /// HLC of the last event (zero when empty).
    pub last_hlc: Hlc,
}

/// Why a hub event could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubChainError {
    /// The hub's clock is unusable for an HLC.
    #[error("hub clock: {0}")]
    Clock(#[from] HlcError),
    /// The event does not validate (a bug: the body came from typed values).
    #[error("hub event: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The chain is at the last representable seq.
    #[error("hub chain is full")]
    Full,
}

/// Builds the next event of a hub chain and returns it with the new head.
pub fn next_event(
    head: &HubChainHead,
    body: EventBody,
    now_ms: i64,
    rng: &mut impl RandomSource,
) -> Result<(Event, HubChainHead), HubChainError> {
    next_event_with_deps(head, body, vec![], now_ms, rng)
}

/// [`next_event`] with causal `deps` besides the chain's own predecessor (a
/// conflict resolution depends on the candidates it decided on).
pub fn next_event_with_deps(
    head: &HubChainHead,
    body: EventBody,
    deps: Vec<EventId>,
    now_ms: i64,
    rng: &mut impl RandomSource,
) -> Result<(Event, HubChainHead), HubChainError> {
    let mut hlc = HlcState::restore(head.last_hlc, HUB_MAX_DRIFT_MS)?;
    let stamp = hlc.tick(now_ms)?;
    let seq = Seq::new(head.seq.checked_add(1).ok_or(HubChainError::Full)?)
        .map_err(|_| HubChainError::Full)?;
    let event = Event::build(
        EventDraft {
            store: head.store,
            device: head.device,
            seq,
            prev: head.hash,
            hlc: stamp,
            deps,
            body,
        },
        rng,
    )?;
    let next = HubChainHead {
        seq: seq.get(),
        hash: event.hash(),
        last_hlc: stamp,
        ..*head
    };
    debug_assert_eq!(next.seq, head.seq + 1);
    Ok((event, next))
}

/// The hub key's id: `hub-` and the first 16 hex digits of SHA-256 of the
/// public key, so every hub instance sharing the key names it the same way.
pub fn hub_key_id(public: &HubPublicKey) -> KeyId {
    let h = Hash256::of(&public.0).to_hex();
    // 4 + 16 characters of [a-z0-9-] is a valid key id.
    format!("hub-{}", &h[..16])
        .parse()
        .unwrap_or_else(|e| unreachable!("hub key id is well-formed: {e}"))
}

/// Signs the checkpoint of a hub chain at `seq`/`hash`.
pub fn checkpoint(key: &HubSigningKey, device: DeviceId, seq: Seq, hash: Hash256) -> HubCheckpoint {
    HubCheckpoint::sign(key, hub_key_id(&key.public_key()), device, seq, hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::chain::{verify_chain, ChainHead};
    use caja_shared::entropy::SeededRandom;
    use caja_shared::kind::PriceSet;
    use caja_shared::money::Money;

    #[test]
    fn hub_events_chain_and_their_checkpoint_verifies() {
        let mut rng = SeededRandom::new(1);
        let mut head = HubChainHead {
            store: "01935f4e-8a00-7000-8000-0000000000a1".parse().unwrap(),
            device: "01935f4e-8a00-7000-8000-0000000000b1".parse().unwrap(),
            seq: 0,
            hash: Hash256::ZERO,
            last_hlc: Hlc::ZERO,
        };
        let mut events = vec![];
        for price in [100, 200, 300] {
            let body = EventBody::PriceSet(PriceSet {
                product: "rice".parse().unwrap(),
                unit_price: Money(price),
            });
            // The same ms thrice: the HLC counter orders them.
            let (e, next) = next_event(&head, body, 1_763_880_000_000, &mut rng).unwrap();
            events.push(e);
            head = next;
        }
        let values: Vec<_> = events
            .iter()
            .map(|e| (e.value().clone(), e.hash()))
            .collect();
        let end = verify_chain(ChainHead::GENESIS, values.iter().map(|(v, h)| (v, h))).unwrap();
        assert_eq!(end.seq, 3);
        assert_eq!(events[2].envelope().hlc.n(), 2);
        let key = HubSigningKey::from_seed([4; 32]);
        let cp = checkpoint(&key, head.device, Seq::new(3).unwrap(), head.hash);
        cp.verify(&key.public_key()).unwrap();
        assert!(cp.key_id.as_str().starts_with("hub-"));
    }
}
