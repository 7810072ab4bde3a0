//! The tax-authority outbox's decisions (two-phase invoicing): which
//! fiscal documents go to the authority, what a worker does next with a
//! claimed document, and where each gateway answer moves it.
//!
//! Phase one happens at the register (a sale takes a fiscal number offline);
//! phase two is here: the hub submits the document to the tax authority
//! exactly once and records its verdict. The row of a document
//! (`storage::outbox`) moves through
//!
//! ```text
//! pending ──submit──▶ submitted ──status──▶ accepted | accepted_conditional | rejected
//!    │                    ▲ (track id)
//!    └──submit (synchronous answer: summaries, cancellations)──▶ final states
//! ```
//!
//! Exactly once, without two contents for one number: the bytes are built
//! once and stored before the first submission (a database trigger refuses
//! to change them), every resubmission sends those bytes, and a submission
//! whose answer was lost (`in_doubt`) is followed by a lookup at the
//! authority by the document's number before anything is sent again.
//!
//! Architecture invariant: pure — no clock, no randomness (a jitter value is
//! passed in), no IO.

use caja_shared::digest::Hash256;
use caja_shared::ids::{DeviceId, EventId, StoreId};
use caja_shared::kind::{AuthorityMessage, FiscalDocType};

/// How long a worker's lease on a document lasts by default: far longer than
/// one gateway call (a worker that outlives it loses the document to another
/// worker, which then asks the authority before sending anything).
pub const DEFAULT_LEASE_MS: i64 = 120_000;

/// `next_attempt_ms` of a document refused before sending: never due again
/// (head office decides, see `storage::outbox::refuse`).
pub const NEVER_MS: i64 = i64::MAX;

/// Longest message kept from a transport error.
pub const MAX_ERROR_LEN: usize = 500;

/// Whether documents of a fiscal series go to the tax authority one by one:
/// electronic series (DGII's e-CF, prefix `E`). Traditional NCF series (`B01`,
/// `B02`, …) are reported monthly (the 607), not submitted.
pub fn is_electronic(series: &str) -> bool {
    series.starts_with('E')
}

/// The state of a document's phase two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocState {
    /// Not yet taken by the authority.
    Pending,
    /// The authority gave a tracking id; its verdict is awaited.
    Submitted,
    /// Accepted.
    Accepted,
    /// Accepted with conditions.
    AcceptedConditional,
    /// Rejected.
    Rejected,
}

impl DocState {
    /// Every state.
    pub const ALL: [DocState; 5] = [
        DocState::Pending,
        DocState::Submitted,
        DocState::Accepted,
        DocState::AcceptedConditional,
        DocState::Rejected,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DocState::Pending => "pending",
            DocState::Submitted => "submitted",
            DocState::Accepted => "accepted",
            DocState::AcceptedConditional => "accepted_conditional",
            DocState::Rejected => "rejected",
        }
    }

    /// Looks up a stored name.
    pub fn parse(s: &str) -> Option<DocState> {
        DocState::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the verdict is in.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DocState::Accepted | DocState::AcceptedConditional | DocState::Rejected
        )
    }
}

/// The authority's verdict on a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalStatus {
    /// `Aceptado`.
    Accepted,
    /// `Aceptado Condicional`.
    AcceptedConditional,
    /// `Rechazado`.
    Rejected,
}

impl FinalStatus {
    /// The state it moves a document to.
    pub fn state(self) -> DocState {
        match self {
            FinalStatus::Accepted => DocState::Accepted,
            FinalStatus::AcceptedConditional => DocState::AcceptedConditional,
            FinalStatus::Rejected => DocState::Rejected,
        }
    }
}

/// A verdict with the authority's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Accepted, with conditions, or rejected.
    pub status: FinalStatus,
    /// What the authority said.
    pub messages: Vec<AuthorityMessage>,
}

/// The bytes of a document as built once, before its first submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The gateway's channel (for DGII: `ecf`, `rfce` or `anecf`).
    pub channel: String,
    /// The exact bytes every submission sends.
    pub body: Vec<u8>,
    /// SHA-256 of `body`.
    pub body_hash: Hash256,
    /// The full document kept when only a summary is submitted.
    pub archive: Option<Vec<u8>>,
    /// The security code printed on the receipt.
    pub security_code: Option<String>,
    /// The authority's verification address (the receipt's QR code).
    pub verify_url: Option<String>,
}

/// A document a worker holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Row id.
    pub doc_id: i64,
    /// Number (or cancellation key).
    pub doc_key: String,
    /// Invoice, credit note or cancellation.
    pub doc_type: FiscalDocType,
    /// Series prefix.
    pub series: String,
    /// Store.
    pub store: StoreId,
    /// Register.
    pub device: DeviceId,
    /// The register event that issued it (none for a cancellation).
    pub event_id: Option<EventId>,
    /// A cancellation's numbers.
    pub range: Option<(u64, u64)>,
    /// When it entered the outbox (hub clock).
    pub created_ms: i64,
    /// Pending or submitted.
    pub state: DocState,
    /// The bytes, once built.
    pub prepared: Option<Prepared>,
    /// The authority's tracking id, once given.
    pub track_id: Option<String>,
    /// A submission may have reached the authority unanswered.
    pub in_doubt: bool,
    /// Failed attempts so far (drives the backoff).
    pub attempts: u32,
    /// Head office's corrections of this rejected summary so far
    /// (`storage::outbox::correct`): after one, what the authority holds for
    /// the number may still be the rejected content.
    pub corrections: u32,
}

/// What a worker does next with a claimed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Build the bytes (first time), store them with `in_doubt` set, submit.
    Prepare,
    /// A submission may have arrived: ask the authority what it holds for
    /// this number; submit (the same bytes) only if it holds nothing.
    Lookup,
    /// Mark `in_doubt`, then submit the stored bytes.
    Submit,
    /// Ask for the verdict by tracking id.
    Poll,
}

/// The next step for a claimed document.
pub fn step(c: &Claimed) -> Step {
    debug_assert!(!c.state.is_final(), "a decided document is never claimed");
    match (c.state, &c.prepared, &c.track_id) {
        (DocState::Submitted, _, Some(_)) => Step::Poll,
        (_, None, _) => Step::Prepare,
        _ if c.in_doubt => Step::Lookup,
        _ => Step::Submit,
    }
}

/// Whether a rejection found by a lookup after a lost answer is the verdict
/// on a summary head office has since replaced: the authority answers a
/// summary's lookup by number and security code, which a correction keeps,
/// so the first content's rejection is found until the correction arrives.
/// Then the stored (corrected) bytes are sent again; if the correction did
/// arrive, the authority rejects the second arrival and the worker's lookup
/// before recording finds that rejection.
pub fn stale_rejection(c: &Claimed, found: &Verdict) -> bool {
    c.corrections > 0 && found.status == FinalStatus::Rejected
}

/// What a gateway call came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The authority took the document and will decide later.
    Tracked {
        /// Its tracking id.
        track_id: String,
    },
    /// A verdict (a synchronous answer, a status query, or a lookup).
    Decided(Verdict),
    /// The authority is still checking it (`En Proceso`).
    InProcess,
    /// The call failed. `in_doubt`: the request may have reached the
    /// authority (a timeout, a 5xx, a cut connection).
    Failed {
        /// What happened, for a person.
        error: String,
        /// Whether the authority may hold the submission.
        in_doubt: bool,
    },
}

/// Timing of retries and polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First retry after a failure, before jitter.
    pub base_ms: i64,
    /// Longest pause between attempts.
    pub cap_ms: i64,
    /// Pause between status queries while the authority is checking.
    pub poll_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base_ms: 1_000,
            cap_ms: 300_000,
            poll_ms: 5_000,
        }
    }
}

impl RetryPolicy {
    /// The pause after the `failures`-th failure in a row: exponential,
    /// capped, with "equal jitter" (half fixed, half from `jitter`), so
    /// workers that failed together do not retry together.
    pub fn backoff_ms(&self, failures: u32, jitter: u64) -> i64 {
        let exp = self
            .base_ms
            .max(1)
            .saturating_mul(1i64 << failures.saturating_sub(1).min(20));
        let ceiling = exp.min(self.cap_ms.max(1));
        let half = ceiling / 2;
        let spread = u64::try_from(ceiling - half).unwrap_or(1).max(1);
        half + i64::try_from(jitter % spread).unwrap_or(0)
    }

    /// The furthest ahead of the hub's clock a document is ever scheduled
    /// (the longest backoff or a poll). A due time further ahead than this
    /// was set before the hub's clock stepped back, so the claim treats it
    /// as due now instead of waiting the step out.
    pub fn horizon_ms(&self) -> i64 {
        self.cap_ms.max(self.poll_ms).max(self.base_ms).max(1)
    }
}

/// Where an outcome moves a document: the row's new values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// New state.
    pub state: DocState,
    /// Tracking id (kept once known).
    pub track_id: Option<String>,
    /// Whether a submission may be at the authority unanswered.
    pub in_doubt: bool,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// Due again from then (meaningless once final).
    pub next_attempt_ms: i64,
    /// The failure, if this was one.
    pub last_error: Option<String>,
    /// The verdict, when it came.
    pub verdict: Option<Verdict>,
}

/// The transition of a claimed document given a gateway outcome at `now_ms`.
pub fn transition(
    c: &Claimed,
    outcome: &Outcome,
    now_ms: i64,
    policy: &RetryPolicy,
    jitter: u64,
) -> Transition {
    let keep = Transition {
        state: c.state,
        track_id: c.track_id.clone(),
        in_doubt: c.in_doubt,
        attempts: c.attempts,
        next_attempt_ms: now_ms,
        last_error: None,
        verdict: None,
    };
    match outcome {
        Outcome::Tracked { track_id } => Transition {
            state: DocState::Submitted,
            track_id: Some(track_id.clone()),
            in_doubt: false,
            attempts: 0,
            next_attempt_ms: now_ms.saturating_add(policy.poll_ms),
            ..keep
        },
        Outcome::Decided(v) => Transition {
            state: v.status.state(),
            in_doubt: false,
            attempts: 0,
            verdict: Some(v.clone()),
            ..keep
        },
        Outcome::InProcess => Transition {
            // Only a tracked document can be in process.
            state: if c.track_id.is_some() {
                DocState::Submitted
            } else {
                c.state
            },
            attempts: 0,
            next_attempt_ms: now_ms.saturating_add(policy.poll_ms),
            ..keep
        },
        Outcome::Failed { error, in_doubt } => {
            let attempts = c.attempts.saturating_add(1);
            Transition {
                // A failed status query leaves the document tracked; a
                // failed submission leaves it in doubt when it may have
                // arrived (never cleared by a failure).
                in_doubt: c.in_doubt || (*in_doubt && c.state == DocState::Pending),
                attempts,
                next_attempt_ms: now_ms.saturating_add(policy.backoff_ms(attempts, jitter)),
                last_error: Some(truncate(error, MAX_ERROR_LEN)),
                ..keep
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The `manual` conflict reason of a rejected document.
pub const REJECTED_REASON: &str = crate::conflict::ConflictReason::FiscalDocumentRejected.as_str();

/// The conflict subject of a rejected document.
pub fn rejected_subject(doc_key: &str) -> crate::projection::Subject {
    crate::projection::Subject::FiscalDocument(doc_key.to_owned())
}

/// The outbox key of a cancellation of `first..=last` printed numbers.
pub fn cancellation_key(first: &str, last: &str) -> String {
    format!("ANECF:{first}:{last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(state: DocState) -> Claimed {
        Claimed {
            doc_id: 1,
            doc_key: "E320000000001".into(),
            doc_type: FiscalDocType::Invoice,
            series: "E32".into(),
            store: "019aaf70-d618-7000-8000-00000000a001".parse().unwrap(),
            device: "019aaf70-d618-7000-8000-00000000d001".parse().unwrap(),
            event_id: None,
            range: None,
            created_ms: 0,
            state,
            prepared: None,
            track_id: None,
            in_doubt: false,
            attempts: 0,
            corrections: 0,
        }
    }

    #[test]
    fn a_rejection_found_after_a_correction_is_stale() {
        let mut c = claimed(DocState::Pending);
        let rejected = Verdict {
            status: FinalStatus::Rejected,
            messages: vec![],
        };
        let accepted = Verdict {
            status: FinalStatus::Accepted,
            messages: vec![],
        };
        assert!(!stale_rejection(&c, &rejected));
        c.corrections = 1;
        assert!(stale_rejection(&c, &rejected));
        assert!(!stale_rejection(&c, &accepted));
    }

    fn prepared() -> Prepared {
        Prepared {
            channel: "ecf".into(),
            body: b"<ECF/>".to_vec(),
            body_hash: Hash256::of(b"<ECF/>"),
            archive: None,
            security_code: Some("ABC123".into()),
            verify_url: None,
        }
    }

    #[test]
    fn only_electronic_series_are_submitted() {
        for (s, e) in [("E31", true), ("E32", true), ("E34", true), ("B02", false)] {
            assert_eq!(is_electronic(s), e, "{s}");
        }
    }

    #[test]
    fn the_step_follows_the_row() {
        let mut c = claimed(DocState::Pending);
        assert_eq!(step(&c), Step::Prepare);
        c.prepared = Some(prepared());
        assert_eq!(step(&c), Step::Submit);
        c.in_doubt = true;
        assert_eq!(step(&c), Step::Lookup);
        c.state = DocState::Submitted;
        c.track_id = Some("t-1".into());
        assert_eq!(step(&c), Step::Poll);
    }

    /// Every outcome from every claimable row, as a table: the state it
    /// lands in and whether the document stays in doubt.
    #[test]
    fn transitions_read_like_a_table() {
        let p = RetryPolicy {
            base_ms: 100,
            cap_ms: 1000,
            poll_ms: 50,
        };
        let accepted = Outcome::Decided(Verdict {
            status: FinalStatus::Accepted,
            messages: vec![],
        });
        let rejected = Outcome::Decided(Verdict {
            status: FinalStatus::Rejected,
            messages: vec![AuthorityMessage {
                code: "7".into(),
                text: "Monto inválido".into(),
            }],
        });
        let timeout = Outcome::Failed {
            error: "timeout".into(),
            in_doubt: true,
        };
        let refused = Outcome::Failed {
            error: "connection refused".into(),
            in_doubt: false,
        };
        let tracked = Outcome::Tracked {
            track_id: "t-9".into(),
        };
        let mut pending = claimed(DocState::Pending);
        pending.prepared = Some(prepared());
        let mut doubtful = pending.clone();
        doubtful.in_doubt = true;
        let mut submitted = pending.clone();
        submitted.state = DocState::Submitted;
        submitted.track_id = Some("t-1".into());
        let cases: Vec<(&str, &Claimed, &Outcome, DocState, bool)> = vec![
            (
                "pending + tracked",
                &pending,
                &tracked,
                DocState::Submitted,
                false,
            ),
            (
                "pending + accepted",
                &pending,
                &accepted,
                DocState::Accepted,
                false,
            ),
            (
                "pending + rejected",
                &pending,
                &rejected,
                DocState::Rejected,
                false,
            ),
            (
                "pending + timeout",
                &pending,
                &timeout,
                DocState::Pending,
                true,
            ),
            (
                "pending + refused",
                &pending,
                &refused,
                DocState::Pending,
                false,
            ),
            (
                "doubtful + refused",
                &doubtful,
                &refused,
                DocState::Pending,
                true,
            ),
            (
                "doubtful + tracked",
                &doubtful,
                &tracked,
                DocState::Submitted,
                false,
            ),
            (
                "submitted + in process",
                &submitted,
                &Outcome::InProcess,
                DocState::Submitted,
                false,
            ),
            (
                "submitted + timeout",
                &submitted,
                &timeout,
                DocState::Submitted,
                false,
            ),
            (
                "submitted + accepted",
                &submitted,
                &accepted,
                DocState::Accepted,
                false,
            ),
        ];
        for (name, c, o, state, doubt) in cases {
            let t = transition(c, o, 1000, &p, 7);
            assert_eq!((t.state, t.in_doubt), (state, doubt), "{name}");
            assert!(t.next_attempt_ms >= 1000, "{name}");
            if let Outcome::Failed { .. } = o {
                assert_eq!(t.attempts, c.attempts + 1, "{name}");
                assert!(t.last_error.is_some(), "{name}");
            } else {
                assert_eq!(t.attempts, 0, "{name}");
            }
        }
        // The track id, once known, is kept by every later outcome.
        let t = transition(&submitted, &timeout, 1000, &p, 0);
        assert_eq!(t.track_id.as_deref(), Some("t-1"));
        let t = transition(&submitted, &Outcome::InProcess, 1000, &p, 0);
        assert_eq!(t.next_attempt_ms, 1050);
    }

    /// The claim takes a due time beyond the horizon as "set before the
    /// hub's clock stepped back" (`storage::outbox`), so no transition may
    /// ever schedule a document further ahead than the horizon.
    #[test]
    fn no_transition_schedules_beyond_the_horizon() {
        let p = RetryPolicy::default();
        let failed = Outcome::Failed {
            error: "timeout".into(),
            in_doubt: true,
        };
        let tracked = Outcome::Tracked {
            track_id: "t-9".into(),
        };
        let mut pending = claimed(DocState::Pending);
        pending.prepared = Some(prepared());
        let mut submitted = pending.clone();
        submitted.state = DocState::Submitted;
        submitted.track_id = Some("t-1".into());
        for attempts in [0u32, 1, 5, 12, 40, u32::MAX - 1] {
            for jitter in [0u64, 1, 299_999, u64::MAX] {
                for (c, o) in [
                    (&pending, &failed),
                    (&pending, &tracked),
                    (&submitted, &Outcome::InProcess),
                    (&submitted, &failed),
                ] {
                    let mut c = c.clone();
                    c.attempts = attempts;
                    let t = transition(&c, o, 1_000, &p, jitter);
                    assert!(
                        t.next_attempt_ms - 1_000 <= p.horizon_ms(),
                        "attempts {attempts}, jitter {jitter}: due {} ms ahead",
                        t.next_attempt_ms - 1_000
                    );
                }
            }
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            base_ms: 100,
            cap_ms: 1000,
            poll_ms: 10,
        };
        for jitter in [0u64, 1, 49, 50, 10_000] {
            let b1 = p.backoff_ms(1, jitter);
            assert!((50..=100).contains(&b1), "{b1}");
            let b3 = p.backoff_ms(3, jitter);
            assert!((200..=400).contains(&b3), "{b3}");
            let big = p.backoff_ms(60, jitter);
            assert!((500..=1000).contains(&big), "{big}");
        }
        assert_ne!(p.backoff_ms(5, 1), p.backoff_ms(5, 300));
    }

    #[test]
    fn errors_are_truncated_on_a_char_boundary() {
        let mut c = claimed(DocState::Pending);
        c.prepared = Some(prepared());
        let long = "é".repeat(600);
        let t = transition(
            &c,
            &Outcome::Failed {
                error: long,
                in_doubt: false,
            },
            0,
            &RetryPolicy::default(),
            0,
        );
        let e = t.last_error.unwrap();
        assert!(e.len() <= MAX_ERROR_LEN && !e.is_empty());
    }
}
