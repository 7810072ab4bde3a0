//! Catalog loads of head office: catalog items and prices appended as hub
//! events to the hub chain of each store named (every store when none is),
//! all targets checked before anything is written.
//!
//! Feature module: appends through [`super::ingest::hub_chain`].

use caja_shared::ids::StoreId;
use caja_shared::kind::EventBody;
use serde::Serialize;

use crate::storage::db::Conn;
use crate::storage::error::{Answer, StorageError};
use crate::storage::ingest::hub_chain::append_to_hub_chain;
use crate::storage::stores::{list_stores, store_exists};
use crate::storage::writer::Env;
use crate::wire::ApiError;

/// Hub events written by one catalog load.
#[derive(Debug, Clone, Serialize)]
pub struct HubAppend {
    /// Store.
    pub store: StoreId,
    /// Events appended to its hub chain.
    pub events: usize,
    /// The chain's seq after.
    pub hub_seq: u64,
}

/// Appends hub events (catalog items, prices) to the hub chains of `stores`
/// (all stores when empty); each is applied at once (a hub event depends only
/// on its predecessor) and may release held register events.
pub(crate) fn append_hub_events(
    conn: &Conn,
    env: &mut Env,
    stores: &[StoreId],
    bodies: &[EventBody],
) -> Result<Answer<Vec<HubAppend>>, StorageError> {
    let targets: Vec<StoreId> = if stores.is_empty() {
        list_stores(conn)?.into_iter().map(|s| s.store).collect()
    } else {
        stores.to_vec()
    };
    // Every target is checked before anything is written: a rejection keeps nothing.
    for store in &targets {
        if !store_exists(conn, *store)? {
            return Ok(Err(ApiError::not_found(format!("no store {store}"))));
        }
        if let Some(pending) = crate::storage::restore::gate(conn, *store)? {
            return Ok(Err(pending));
        }
    }
    let mut out = Vec::new();
    for store in targets {
        let events = append_to_hub_chain(conn, env, store, bodies)?;
        out.push(HubAppend {
            store,
            events: events.len(),
            hub_seq: events.last().map_or(0, |e| e.seq().get()),
        });
    }
    Ok(Ok(out))
}
