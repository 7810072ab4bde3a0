//! What the emulator holds for the receiver side of DGII (its handlers are
//! in the parent module): the directory of electronic taxpayers (entries
//! set by the test with `Emulator::set_directory`) and, per e-NCF, the
//! commercial approvals (ACECF) received — arrivals and distinct contents.
//!
//! Source: DGII "Descripción técnica de facturación electrónica" v1.6
//! (the directory lists each electronic receiver's URLs; the buyer sends its
//! ACECF to DGII too). Paths and the directory's JSON shape are guessed (see
//! `taxgw::dgii_http::PATH_DIRECTORY`). Test support only; a leaf.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use caja_shared::digest::Hash256;

/// The directory and the approvals received.
#[derive(Debug, Default)]
pub struct Directory {
    entries: BTreeMap<String, String>,
    approvals: BTreeMap<String, (u32, BTreeSet<Hash256>)>,
}

/// Shared between the handlers and the test.
pub type Side = Arc<Mutex<Directory>>;

impl Directory {
    /// Lists `rnc` with its services at `base_url`.
    pub fn set(&mut self, rnc: &str, base_url: &str) {
        self.entries.insert(rnc.to_owned(), base_url.to_owned());
    }

    /// The base URL of `rnc`'s services.
    pub fn lookup(&self, rnc: &str) -> Option<String> {
        self.entries.get(rnc).cloned()
    }

    /// Records an ACECF of `encf`.
    pub fn record(&mut self, encf: &str, doc: &[u8]) {
        let e = self.approvals.entry(encf.to_owned()).or_default();
        e.0 += 1;
        e.1.insert(Hash256::of(doc));
    }

    /// Per e-NCF: (arrivals, distinct contents).
    pub fn approvals(&self) -> BTreeMap<String, (u32, usize)> {
        self.approvals
            .iter()
            .map(|(k, (n, c))| (k.clone(), (*n, c.len())))
            .collect()
    }
}
