//! The simulated network between the registers and the hub, below the sync
//! engine: each register's [`Link`] is the engine's [`Transport`], so the
//! engine's real request signing, retries, skew correction, breaker and
//! recovery code runs, and the hub's real handlers answer.
//!
//! Faults, each chosen from the run's seeded random source and counted:
//! a partitioned register gets no answer; a request can be lost on the way
//! (never delivered), its answer lost (delivered, the register sees a
//! timeout), delivered twice, or delayed (the register sees a timeout; the
//! request is delivered at a later step, and delayed requests are released
//! in a random order, so they are also reordered). A request to a hub that is
//! down gets no answer.

use std::sync::{Arc, Mutex, MutexGuard};

use caja_node::sync::client::{HubError, RawAnswer, Transport};
use caja_shared::entropy::{RandomSource, SeededRandom};

use super::faults::{Fault, FaultCounts};
use super::hub::SimHub;
use super::trace::Trace;

/// How often each network fault happens, in per-mille of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetFaults {
    /// A request lost before the hub.
    pub drop_request: u64,
    /// An answer lost after the hub acted.
    pub drop_answer: u64,
    /// A request delivered twice.
    pub duplicate: u64,
    /// A request held back and delivered later (in any order).
    pub delay: u64,
}

impl NetFaults {
    /// No faults (the liveness phase).
    pub const NONE: NetFaults = NetFaults {
        drop_request: 0,
        drop_answer: 0,
        duplicate: 0,
        delay: 0,
    };
}

/// A request in flight, held back by the network.
#[derive(Debug, Clone)]
struct Delayed {
    from: usize,
    method: String,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// What the network holds: the hub, the links' state, the faults' dice.
#[derive(Debug)]
pub struct NetState {
    /// The hub.
    pub hub: SimHub,
    /// Per register: cut off from the hub.
    pub partitioned: Vec<bool>,
    /// Current fault rates.
    pub faults: NetFaults,
    rng: SeededRandom,
    delayed: Vec<Delayed>,
    /// Faults injected so far.
    pub counts: FaultCounts,
    /// The run's trace.
    pub trace: Trace,
    /// Requests delivered to the hub.
    pub delivered: u64,
}

/// The shared network (the registers' links and the simulator hold it).
pub type Net = Arc<Mutex<NetState>>;

/// Locks the network (a poisoned lock means a panic elsewhere; keep going
/// with the data, the panic is reported by the test).
pub fn lock(net: &Net) -> MutexGuard<'_, NetState> {
    net.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl NetState {
    /// A network around `hub` for `registers` registers.
    pub fn new(hub: SimHub, registers: usize, seed: u64, trace: Trace) -> NetState {
        NetState {
            hub,
            partitioned: vec![false; registers],
            faults: NetFaults::NONE,
            rng: SeededRandom::new(seed),
            delayed: Vec::new(),
            counts: FaultCounts::default(),
            trace,
            delivered: 0,
        }
    }

    fn roll(&mut self, per_mille: u64) -> bool {
        per_mille > 0 && self.rng.next_u64() % 1000 < per_mille
    }

    /// Delivers one request to the hub (`None`: the hub is down).
    fn deliver(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Option<RawAnswer> {
        let a = self.hub.handle(method, path, headers, body)?;
        self.delivered += 1;
        Some(a)
    }

    /// Delivers up to `n` delayed requests, chosen at random (so in another
    /// order than they were sent); their answers are lost.
    pub fn release_delayed(&mut self, n: usize) {
        for _ in 0..n {
            if self.delayed.is_empty() {
                return;
            }
            let len = self.delayed.len() as u64;
            let i = usize::try_from(self.rng.next_u64() % len).unwrap_or(0);
            let d = self.delayed.swap_remove(i);
            let status = self
                .deliver(&d.method, &d.path, &d.headers, d.body)
                .map(|a| a.status);
            self.trace.line(format!(
                "net: late delivery from r{} {} {} -> {:?}",
                d.from,
                d.method,
                short_path(&d.path),
                status
            ));
        }
    }

    /// Requests still held back.
    pub fn in_flight(&self) -> usize {
        self.delayed.len()
    }

    /// Forgets the requests a register sent before it crashed or was
    /// restored (its connections are gone). A restored register's earlier
    /// self must not push again: that would be a second history of its chain.
    pub fn forget_from(&mut self, register: usize) {
        self.delayed.retain(|d| d.from != register);
    }

    fn send(
        &mut self,
        from: usize,
        method: &str,
        path: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<RawAnswer, HubError> {
        let what = format!("r{from} {method} {}", short_path(path));
        if self.partitioned.get(from).copied().unwrap_or(false) {
            self.counts.add(Fault::PartitionedRequest);
            self.trace.line(format!("net: {what} refused (partition)"));
            return Err(HubError::Unreachable("partitioned".into()));
        }
        let f = self.faults;
        if self.roll(f.drop_request) {
            self.counts.add(Fault::DropRequest);
            self.trace.line(format!("net: {what} lost"));
            return Err(HubError::Unreachable("request lost".into()));
        }
        if self.roll(f.delay) {
            self.counts.add(Fault::Delay);
            self.trace.line(format!("net: {what} delayed"));
            self.delayed.push(Delayed {
                from,
                method: method.into(),
                path: path.into(),
                headers: headers.to_vec(),
                body,
            });
            return Err(HubError::Unreachable("timed out".into()));
        }
        let dup = self.roll(f.duplicate);
        let copy = dup.then(|| body.clone());
        let Some(answer) = self.deliver(method, path, headers, body) else {
            self.counts.add(Fault::HubDownRequest);
            self.trace.line(format!("net: {what} -> hub down"));
            return Err(HubError::Unreachable("hub down".into()));
        };
        if let Some(copy) = copy {
            self.counts.add(Fault::Duplicate);
            let second = self.deliver(method, path, headers, copy).map(|a| a.status);
            self.trace
                .line(format!("net: {what} duplicated -> {second:?}"));
        }
        if self.roll(f.drop_answer) {
            self.counts.add(Fault::DropAnswer);
            self.trace
                .line(format!("net: {what} -> {} answer lost", answer.status));
            return Err(HubError::Unreachable("answer lost".into()));
        }
        self.trace.line(format!("net: {what} -> {}", answer.status));
        Ok(answer)
    }
}

/// A request path without its query's long values, for the trace.
fn short_path(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// One register's connection to the network.
#[derive(Debug, Clone)]
pub struct Link {
    net: Net,
    register: usize,
}

impl Link {
    /// The link of register `register`.
    pub fn new(net: Net, register: usize) -> Link {
        Link { net, register }
    }
}

impl Transport for Link {
    fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<RawAnswer, HubError> {
        lock(&self.net).send(self.register, method, path_and_query, headers, body)
    }
}
