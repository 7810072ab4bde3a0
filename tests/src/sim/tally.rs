//! What the workload did beyond cashiers' sales, counted per kind for the
//! run's summary: each kind must happen at least once in the default run
//! (`tests/tests/simulation.rs`), so a workload that silently stopped
//! reaching a feature fails instead of passing.

use std::collections::BTreeMap;
use std::fmt;

/// A kind of workload action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    /// An operation acknowledged at a register of a store other than the
    /// first (several stores, each with its own chain, stock and blocks).
    OtherStoreOp,
    /// A shift opened by a member of staff signing in with their PIN.
    PinSignIn,
    /// A PIN refused (wrong digits, or a role too low for the action).
    PinRefused,
    /// An operation acknowledged with a supervisor's approval (void, return,
    /// paid-out, price override, closing another's shift).
    SupervisorOverride,
    /// A register's key rotated at the hub mid-run and installed.
    KeyRotation,
    /// A conflict resolved by an operator through the admin API.
    ConflictResolved,
    /// The hub's clock jumped forward or back.
    HubClockJump,
    /// A card payment intent created at the hub.
    PaymentIntent,
    /// A provider's webhook delivered to the hub.
    PaymentWebhook,
    /// An electronic sale (`E32` or `E31`) acknowledged, its e-CF signed.
    EcfIssued,
    /// A return of an electronic sale acknowledged with its signed credit
    /// note (`E34`).
    EcfCreditNote,
    /// A submission by the hub's outbox to the DGII emulator.
    EcfSubmitted,
    /// A lookup by the outbox (a submission in doubt, or a rejection
    /// confirmed) before it sends again or records.
    EcfLookup,
    /// A verdict recorded by the outbox (a hub event to the registers).
    EcfDecided,
    /// A call the DGII emulator answered 503 on purpose (before or after
    /// processing it): a fault of the authority, counted here because the
    /// e-CF workload owns the emulator.
    DgiiError,
}

impl Work {
    /// Every kind, in order.
    pub const ALL: [Work; 15] = [
        Work::OtherStoreOp,
        Work::PinSignIn,
        Work::PinRefused,
        Work::SupervisorOverride,
        Work::KeyRotation,
        Work::ConflictResolved,
        Work::HubClockJump,
        Work::PaymentIntent,
        Work::PaymentWebhook,
        Work::EcfIssued,
        Work::EcfCreditNote,
        Work::EcfSubmitted,
        Work::EcfLookup,
        Work::EcfDecided,
        Work::DgiiError,
    ];

    /// Its name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Work::OtherStoreOp => "other_store_op",
            Work::PinSignIn => "pin_sign_in",
            Work::PinRefused => "pin_refused",
            Work::SupervisorOverride => "supervisor_override",
            Work::KeyRotation => "key_rotation",
            Work::ConflictResolved => "conflict_resolved",
            Work::HubClockJump => "hub_clock_jump",
            Work::PaymentIntent => "payment_intent",
            Work::PaymentWebhook => "payment_webhook",
            Work::EcfIssued => "ecf_issued",
            Work::EcfCreditNote => "ecf_credit_note",
            Work::EcfSubmitted => "ecf_submitted",
            Work::EcfLookup => "ecf_lookup",
            Work::EcfDecided => "ecf_decided",
            Work::DgiiError => "dgii_error",
        }
    }
}

/// Workload actions, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkCounts(BTreeMap<Work, u64>);

impl WorkCounts {
    /// Counts one.
    pub fn add(&mut self, k: Work) {
        *self.0.entry(k).or_insert(0) += 1;
    }

    /// Adds another run's counts.
    pub fn merge(&mut self, other: &WorkCounts) {
        for (k, n) in &other.0 {
            *self.0.entry(*k).or_insert(0) += n;
        }
    }

    /// Actions of one kind.
    pub fn get(&self, k: Work) -> u64 {
        self.0.get(&k).copied().unwrap_or(0)
    }
}

impl fmt::Display for WorkCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Work::ALL
            .iter()
            .map(|k| format!("{}={}", k.name(), self.get(*k)))
            .collect();
        write!(f, "{}", parts.join(" "))
    }
}
