//! Appending hub events to a store's hub chain (catalog items, prices,
//! grants, resolutions, verdicts): each is built on the chain's head,
//! stored, audited and applied at once through the causal gate, and may
//! release held register events.
//!
//! Invariant: a hub event depends only on events already applied.

use crate::audit::AuditKind;
use crate::hubchain::HubChainHead;
use crate::ingest::{Admission, Candidate, PushedEvent};
use crate::projection::Origin;
use crate::storage::audit_log::append_audit;
use crate::storage::codec::{corrupt, parse, u};
use crate::storage::db::{Conn, OptionalExtension};
use crate::storage::error::StorageError;
use crate::storage::ingest::events::insert_event;
use crate::storage::ingest::index::SqlIndex;
use crate::storage::writer::Env;
use crate::{audit, hubchain, ingest};
use caja_shared::digest::Hash256;
use caja_shared::event::Event;
use caja_shared::hlc::Hlc;
use caja_shared::ids::{EventId, StoreId};
use caja_shared::kind::EventBody;
use std::borrow::Cow;

fn hub_head(
    conn: &Conn,
    store: StoreId,
) -> Result<Option<(HubChainHead, Option<EventId>)>, StorageError> {
    let hub: Option<String> = conn
        .prepare_cached("SELECT hub_device FROM stores WHERE store_id = $1")?
        .query_row([store.to_string()], |r| r.get(0))
        .optional()?;
    let Some(hub) = hub else {
        return Ok(None);
    };
    let mut head = HubChainHead {
        store,
        device: parse(&hub)?,
        seq: 0,
        hash: Hash256::ZERO,
        last_hlc: Hlc::ZERO,
    };
    let last: Option<(i64, String, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT seq, hash, hlc_ms, hlc_n, event_id FROM events WHERE device_id = $1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([hub], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let mut last_id = None;
    if let Some((seq, hash, ms, n, id)) = last {
        head.seq = u(seq);
        head.hash = parse(&hash)?;
        head.last_hlc = Hlc::new(ms, u32::try_from(n).map_err(corrupt)?).map_err(corrupt)?;
        last_id = Some(parse(&id)?);
    }
    Ok(Some((head, last_id)))
}

/// Appends `bodies` to one store's hub chain; each event is applied at once (a
/// hub event depends only on its predecessor) and may release held register
/// events. Returns the events appended.
pub(crate) fn append_to_hub_chain(
    conn: &Conn,
    env: &mut Env,
    store: StoreId,
    bodies: &[EventBody],
) -> Result<Vec<Event>, StorageError> {
    let with: Vec<(EventBody, Vec<EventId>)> = bodies.iter().map(|b| (b.clone(), vec![])).collect();
    append_to_hub_chain_with_deps(conn, env, store, &with)
}

/// [`append_to_hub_chain`] with causal deps per event (every dep must be
/// applied already: the event is applied at once).
pub(crate) fn append_to_hub_chain_with_deps(
    conn: &Conn,
    env: &mut Env,
    store: StoreId,
    bodies: &[(EventBody, Vec<EventId>)],
) -> Result<Vec<Event>, StorageError> {
    let now = env.now_ms();
    let Some((mut head, mut previous)) = hub_head(conn, store)? else {
        return Err(corrupt(format!("store {store} vanished")));
    };
    let mut appended = Vec::with_capacity(bodies.len());
    let mut index = SqlIndex::new(conn, now, &mut env.tx);
    for (body, deps) in bodies {
        let mut rng = &mut *env.rng;
        let (event, next) =
            hubchain::next_event_with_deps(&head, body.clone(), deps.clone(), now, &mut rng)?;
        let row = insert_event(conn, &event, now)?;
        index.known.insert(
            event.id(),
            (
                row,
                Cow::Owned(PushedEvent {
                    event: event.clone(),
                    body: body.clone(),
                }),
                Origin::Hub,
            ),
        );
        append_audit(
            conn,
            index.tx,
            AuditKind::HubEventAppended,
            now,
            Some(store),
            audit::data([
                ("device", audit::s(head.device)),
                ("seq", audit::n(next.seq)),
                ("event_id", audit::s(event.id())),
                ("hash", audit::s(event.hash())),
                ("kind", audit::s(body.kind().as_str())),
            ]),
        )?;
        let admitted = ingest::admit(
            &mut index,
            &Candidate {
                id: event.id(),
                deps,
                previous,
            },
        )?;
        debug_assert!(matches!(admitted, Admission::Applied { .. }));
        previous = Some(event.id());
        head = next;
        appended.push(event);
    }
    Ok(appended)
}
