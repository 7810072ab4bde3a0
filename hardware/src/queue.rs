//! The print queue as a pure state machine, ready to be persisted by the node.
//!
//! ```text
//!             start(now ≥ not_before)          printed
//!   Pending ───────────────────────▶ Printing ─────────▶ Printed (final)
//!      ▲                                │
//!      │ failed: not ready / transport  │ failed: transport, cap reached,
//!      └──── (backoff, not_before) ◀────┤         or permanent
//!      ▲                                ▼
//!      └──────────── retry ─────────── Failed
//!   (crash while Printing: recover → Pending, marked "may have printed")
//! ```
//!
//! The node writes a [`PrintJob`] row in the same SQLite transaction as the sale
//! (so a sale the cashier saw as done always has its receipt queued), drives the
//! transitions after commit and writes each new state back. Each transition is a
//! method that checks its precondition and changes nothing when it fails.
//!
//! **Never a second original.** ESC/POS has no per-job acknowledgement: once any
//! byte of an attempt may have reached the printer (a transport error after some
//! bytes, or a crash while printing), the job is marked
//! [`PrintJob::may_have_printed`] and every later attempt is rendered as a copy
//! ("COPIA"). An explicit reprint is a new job of kind [`JobKind::Copy`].
//!
//! Failures are of three kinds ([`FailReason`]): the printer answered "not ready"
//! (paper out, cover open: nothing was sent, the job waits with backoff and is
//! never given up), a transport failure (counts toward
//! [`RetryPolicy::max_transport_failures`], then the job is `Failed` and waits for
//! a person), or a permanent failure (a receipt that cannot be rendered: `Failed`
//! at once). A `Failed` job is kept and shown until someone retries it.
//!
//! **Architecture invariant: pure and bounded.** Time is passed in (`now_ms`), no
//! IO, no clock; backoff and counters are capped; [`PrintQueue`] holds at most its
//! capacity of unfinished jobs and at most one job is printing at a time.

use std::collections::BTreeMap;
use std::fmt;

use caja_shared::ids::SaleId;
use serde::{Deserialize, Serialize};

/// A print job's id (the node's row id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the job prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// The sale's receipt, queued with the sale.
    Original,
    /// A reprint asked for by a person; always marked "COPIA".
    Copy,
    /// The cash drawer opened without a sale: the kick and a short slip,
    /// queued with the opening's event. For this kind the job's `sale` field
    /// carries the opening's id (a cash movement id) instead of a sale's. A
    /// retry after an attempt that may have printed does not kick again.
    Drawer,
    /// A return's slip, queued with the return: the original sale, the lines,
    /// the refund and its method. For this kind the job's `sale` field
    /// carries the return's id. A cash refund's slip kicks the drawer like a
    /// cash sale's receipt: once, never on a copy.
    Return,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its turn or for `not_before_ms`.
    Pending,
    /// An attempt is under way.
    Printing,
    /// Done; final.
    Printed,
    /// Given up until a person retries it.
    Failed,
}

impl JobState {
    /// The name stored in the node's database.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Printing => "printing",
            JobState::Printed => "printed",
            JobState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<JobState> {
        [
            JobState::Pending,
            JobState::Printing,
            JobState::Printed,
            JobState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

impl JobKind {
    /// The name stored in the node's database.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobKind::Original => "original",
            JobKind::Copy => "copy",
            JobKind::Drawer => "drawer",
            JobKind::Return => "return",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<JobKind> {
        [
            JobKind::Original,
            JobKind::Copy,
            JobKind::Drawer,
            JobKind::Return,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == s)
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FailReason {
    /// The printer answered that it cannot print (paper out, cover open…);
    /// nothing was sent. Retried with backoff, never given up.
    NotReady {
        /// For the status line.
        detail: String,
    },
    /// The connection failed or timed out; `bytes_sent > 0` means part of the job
    /// may have printed.
    Transport {
        /// Bytes that reached the transport.
        bytes_sent: usize,
        /// For the status line.
        detail: String,
    },
    /// The job cannot succeed by retrying (e.g. the receipt cannot be rendered).
    Permanent {
        /// For the status line.
        detail: String,
    },
}

impl FailReason {
    fn detail(&self) -> &str {
        match self {
            FailReason::NotReady { detail }
            | FailReason::Transport { detail, .. }
            | FailReason::Permanent { detail } => detail,
        }
    }
}

/// Longest failure detail kept on a job.
pub const MAX_DETAIL_CHARS: usize = 200;

/// Backoff and give-up rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Wait after the first failure; doubles with each attempt.
    pub base_backoff_ms: i64,
    /// Longest wait between attempts.
    pub max_backoff_ms: i64,
    /// Transport failures after which the job is `Failed`.
    pub max_transport_failures: u32,
}

impl Default for RetryPolicy {
    /// 2 s doubling up to 5 min; a job is given up after 10 transport failures
    /// (about 25 min of an unreachable printer). Paper out never gives up.
    fn default() -> Self {
        RetryPolicy {
            base_backoff_ms: 2_000,
            max_backoff_ms: 300_000,
            max_transport_failures: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt after `attempts` attempts:
    /// `min(base × 2^(attempts−1), max)`, never negative.
    pub fn backoff_ms(&self, attempts: u32) -> i64 {
        let base = self.base_backoff_ms.max(0);
        let max = self.max_backoff_ms.max(0);
        let shift = attempts.saturating_sub(1).min(32);
        base.saturating_mul(1i64 << shift).min(max)
    }
}

/// One print job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintJob {
    /// Its id.
    pub id: JobId,
    /// The sale whose receipt it prints.
    pub sale: SaleId,
    /// Original or reprint.
    pub kind: JobKind,
    /// Where it is.
    pub state: JobState,
    /// When it was queued.
    pub created_ms: i64,
    /// No attempt before this instant.
    pub not_before_ms: i64,
    /// Attempts started.
    pub attempts: u32,
    /// Transport failures since the job was queued or last retried by a person.
    pub transport_failures: u32,
    /// Some earlier attempt may have put paper out; later attempts print "COPIA".
    pub may_have_printed: bool,
    /// The last failure, for the status line.
    pub last_error: Option<String>,
    /// When it was printed.
    pub printed_ms: Option<i64>,
}

/// An attempt handed to the printer worker by [`PrintJob::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The job.
    pub job: JobId,
    /// The sale to render.
    pub sale: SaleId,
    /// 1 for the first attempt.
    pub number: u32,
    /// Render the receipt marked "COPIA".
    pub as_copy: bool,
}

/// A transition that does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The transition does not start from the job's state.
    #[error("job {job} is {state:?}, cannot {op}")]
    WrongState {
        /// The job.
        job: JobId,
        /// Its state.
        state: JobState,
        /// The transition tried.
        op: &'static str,
    },
    /// The job is waiting for its backoff.
    #[error("job {job} is not due before {not_before_ms}")]
    NotDue {
        /// The job.
        job: JobId,
        /// When it will be.
        not_before_ms: i64,
    },
    /// No such job.
    #[error("no job {0}")]
    UnknownJob(JobId),
    /// Another job is printing.
    #[error("job {0} is printing")]
    Busy(JobId),
    /// The queue holds its capacity of unfinished jobs.
    #[error("the print queue is full ({0} jobs waiting)")]
    Full(usize),
}

impl PrintJob {
    /// A new pending job, due at once.
    pub fn new(id: JobId, sale: SaleId, kind: JobKind, now_ms: i64) -> PrintJob {
        PrintJob {
            id,
            sale,
            kind,
            state: JobState::Pending,
            created_ms: now_ms,
            not_before_ms: now_ms,
            attempts: 0,
            transport_failures: 0,
            may_have_printed: false,
            last_error: None,
            printed_ms: None,
        }
    }

    fn wrong(&self, op: &'static str) -> QueueError {
        QueueError::WrongState {
            job: self.id,
            state: self.state,
            op,
        }
    }

    /// True when the next attempt must print "COPIA".
    pub fn prints_as_copy(&self) -> bool {
        self.kind == JobKind::Copy || self.may_have_printed
    }

    /// True when the job is pending and its backoff is over.
    pub fn is_due(&self, now_ms: i64) -> bool {
        self.state == JobState::Pending && now_ms >= self.not_before_ms
    }

    /// A person asked to print now (paper refilled, cover closed): a pending
    /// job's backoff is waived, its attempt count and copy rule unchanged.
    pub fn waive_backoff(&mut self, now_ms: i64) {
        if self.state == JobState::Pending && self.not_before_ms > now_ms {
            self.not_before_ms = now_ms;
        }
    }

    /// Pending → Printing, when due.
    pub fn start(&mut self, now_ms: i64) -> Result<Attempt, QueueError> {
        if self.state != JobState::Pending {
            return Err(self.wrong("start"));
        }
        if now_ms < self.not_before_ms {
            return Err(QueueError::NotDue {
                job: self.id,
                not_before_ms: self.not_before_ms,
            });
        }
        self.state = JobState::Printing;
        self.attempts = self.attempts.saturating_add(1);
        Ok(Attempt {
            job: self.id,
            sale: self.sale,
            number: self.attempts,
            as_copy: self.prints_as_copy(),
        })
    }

    /// Printing → Printed.
    pub fn printed(&mut self, now_ms: i64) -> Result<(), QueueError> {
        if self.state != JobState::Printing {
            return Err(self.wrong("mark printed"));
        }
        self.state = JobState::Printed;
        self.printed_ms = Some(now_ms);
        self.last_error = None;
        Ok(())
    }

    /// Printing → Pending (with backoff) or Failed; returns the new state.
    pub fn failed(
        &mut self,
        now_ms: i64,
        reason: &FailReason,
        policy: &RetryPolicy,
    ) -> Result<JobState, QueueError> {
        if self.state != JobState::Printing {
            return Err(self.wrong("mark failed"));
        }
        self.last_error = Some(reason.detail().chars().take(MAX_DETAIL_CHARS).collect());
        let retry_at = now_ms.saturating_add(policy.backoff_ms(self.attempts));
        self.state = match reason {
            FailReason::NotReady { .. } => JobState::Pending,
            FailReason::Transport { bytes_sent, .. } => {
                if *bytes_sent > 0 {
                    self.may_have_printed = true;
                }
                self.transport_failures = self.transport_failures.saturating_add(1);
                if self.transport_failures >= policy.max_transport_failures {
                    JobState::Failed
                } else {
                    JobState::Pending
                }
            }
            FailReason::Permanent { .. } => JobState::Failed,
        };
        if self.state == JobState::Pending {
            self.not_before_ms = retry_at;
        }
        Ok(self.state)
    }

    /// After a restart: a job found Printing was interrupted; it goes back to
    /// Pending, marked as possibly printed. Other states are left alone.
    pub fn recover(&mut self, now_ms: i64) {
        if self.state == JobState::Printing {
            self.state = JobState::Pending;
            self.may_have_printed = true;
            self.not_before_ms = now_ms;
        }
    }

    /// Failed → Pending, due at once, transport failures forgotten (a person
    /// fixed the printer and asked again).
    pub fn retry(&mut self, now_ms: i64) -> Result<(), QueueError> {
        if self.state != JobState::Failed {
            return Err(self.wrong("retry"));
        }
        self.state = JobState::Pending;
        self.transport_failures = 0;
        self.not_before_ms = now_ms;
        Ok(())
    }
}

/// Counts for the register's status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueSummary {
    /// Waiting (including backoff).
    pub pending: usize,
    /// Under way.
    pub printing: usize,
    /// Done and still held.
    pub printed: usize,
    /// Given up, waiting for a person.
    pub failed: usize,
    /// The earliest instant a pending job is due.
    pub next_due_ms: Option<i64>,
}

/// An in-memory queue of jobs for one printer: the reference model of what the
/// node keeps in SQLite, used by tests and the simulation.
#[derive(Debug, Clone)]
pub struct PrintQueue {
    jobs: BTreeMap<JobId, PrintJob>,
    capacity: usize,
    next_id: u64,
    policy: RetryPolicy,
}

impl PrintQueue {
    /// An empty queue holding at most `capacity` unfinished jobs.
    pub fn new(capacity: usize, policy: RetryPolicy) -> PrintQueue {
        PrintQueue {
            jobs: BTreeMap::new(),
            capacity,
            next_id: 1,
            policy,
        }
    }

    /// Queues a job; `Full` when `capacity` jobs are unfinished.
    pub fn enqueue(
        &mut self,
        sale: SaleId,
        kind: JobKind,
        now_ms: i64,
    ) -> Result<JobId, QueueError> {
        let unfinished = self
            .jobs
            .values()
            .filter(|j| j.state != JobState::Printed)
            .count();
        if unfinished >= self.capacity {
            return Err(QueueError::Full(unfinished));
        }
        let id = JobId(self.next_id);
        self.next_id += 1;
        self.jobs.insert(id, PrintJob::new(id, sale, kind, now_ms));
        Ok(id)
    }

    /// Starts the oldest due job: `Ok(None)` when none is due, `Busy` while
    /// another is printing (one printer prints one job at a time).
    pub fn start_next(&mut self, now_ms: i64) -> Result<Option<Attempt>, QueueError> {
        if let Some(busy) = self.jobs.values().find(|j| j.state == JobState::Printing) {
            return Err(QueueError::Busy(busy.id));
        }
        match self.jobs.values_mut().find(|j| j.is_due(now_ms)) {
            Some(job) => job.start(now_ms).map(Some),
            None => Ok(None),
        }
    }

    fn job_mut(&mut self, id: JobId) -> Result<&mut PrintJob, QueueError> {
        self.jobs.get_mut(&id).ok_or(QueueError::UnknownJob(id))
    }

    /// Records a successful attempt.
    pub fn printed(&mut self, id: JobId, now_ms: i64) -> Result<(), QueueError> {
        self.job_mut(id)?.printed(now_ms)
    }

    /// Records a failed attempt; returns the job's new state.
    pub fn failed(
        &mut self,
        id: JobId,
        now_ms: i64,
        reason: &FailReason,
    ) -> Result<JobState, QueueError> {
        let policy = self.policy;
        self.job_mut(id)?.failed(now_ms, reason, &policy)
    }

    /// A person asks to try a failed job again.
    pub fn retry(&mut self, id: JobId, now_ms: i64) -> Result<(), QueueError> {
        self.job_mut(id)?.retry(now_ms)
    }

    /// After a restart: interrupted jobs go back to Pending as possibly printed.
    pub fn recover(&mut self, now_ms: i64) {
        for job in self.jobs.values_mut() {
            job.recover(now_ms);
        }
    }

    /// Forgets printed jobs printed before `before_ms`.
    pub fn prune_printed(&mut self, before_ms: i64) {
        self.jobs.retain(|_, j| {
            !(j.state == JobState::Printed && j.printed_ms.unwrap_or(0) < before_ms)
        });
    }

    /// A job.
    pub fn get(&self, id: JobId) -> Option<&PrintJob> {
        self.jobs.get(&id)
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> impl Iterator<Item = &PrintJob> {
        self.jobs.values()
    }

    /// Counts by state and the next due instant.
    pub fn summary(&self) -> QueueSummary {
        let mut s = QueueSummary::default();
        for j in self.jobs.values() {
            match j.state {
                JobState::Pending => {
                    s.pending += 1;
                    s.next_due_ms = Some(
                        s.next_due_ms
                            .map_or(j.not_before_ms, |d| d.min(j.not_before_ms)),
                    );
                }
                JobState::Printing => s.printing += 1,
                JobState::Printed => s.printed += 1,
                JobState::Failed => s.failed += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sale(n: u8) -> SaleId {
        format!("0192f0c1-7a3e-7b2c-9d4e-0000000000{n:02x}")
            .parse()
            .expect("sale id")
    }

    fn transport(bytes_sent: usize) -> FailReason {
        FailReason::Transport {
            bytes_sent,
            detail: "timeout".into(),
        }
    }

    #[test]
    fn paper_out_waits_then_prints_once() {
        let policy = RetryPolicy::default();
        let mut job = PrintJob::new(JobId(1), sale(1), JobKind::Original, 1_000);
        let a = job.start(1_000).expect("start");
        assert!(!a.as_copy);
        let paper_out = FailReason::NotReady {
            detail: "Impresora sin papel".into(),
        };
        assert_eq!(
            job.failed(1_100, &paper_out, &policy),
            Ok(JobState::Pending)
        );
        assert_eq!(job.not_before_ms, 3_100);
        assert_eq!(
            job.start(2_000),
            Err(QueueError::NotDue {
                job: JobId(1),
                not_before_ms: 3_100
            })
        );
        let a = job.start(3_100).expect("due");
        assert_eq!(
            (a.number, a.as_copy),
            (2, false),
            "nothing was sent: still the original"
        );
        job.printed(3_200).expect("printed");
        assert!(job.start(9_999).is_err(), "printed is final");
        assert!(job.printed(9_999).is_err());
    }

    #[test]
    fn a_partial_send_makes_every_later_attempt_a_copy() {
        let policy = RetryPolicy::default();
        let mut job = PrintJob::new(JobId(1), sale(1), JobKind::Original, 0);
        job.start(0).expect("start");
        job.failed(0, &transport(512), &policy).expect("failed");
        assert!(job.start(policy.max_backoff_ms).expect("start").as_copy);
    }

    #[test]
    fn transport_failures_give_up_at_the_cap_and_a_person_can_retry() {
        let policy = RetryPolicy {
            max_transport_failures: 3,
            ..RetryPolicy::default()
        };
        let mut job = PrintJob::new(JobId(1), sale(1), JobKind::Original, 0);
        let mut now = 0;
        for expected in [JobState::Pending, JobState::Pending, JobState::Failed] {
            job.start(now).expect("start");
            assert_eq!(job.failed(now, &transport(0), &policy), Ok(expected));
            now = job.not_before_ms;
        }
        assert!(job.start(i64::MAX).is_err());
        job.retry(now).expect("retry");
        assert!(!job.start(now).expect("start").as_copy);
    }

    #[test]
    fn a_crash_while_printing_is_recovered_as_a_copy() {
        let mut q = PrintQueue::new(10, RetryPolicy::default());
        let id = q.enqueue(sale(1), JobKind::Original, 0).expect("enqueue");
        q.start_next(0).expect("start").expect("due");
        q.recover(5);
        let a = q.start_next(5).expect("start").expect("due");
        assert_eq!((a.job, a.as_copy), (id, true));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<i64> = (1..=10).map(|n| p.backoff_ms(n)).collect();
        assert_eq!(
            waits,
            [2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]
        );
        assert_eq!(p.backoff_ms(u32::MAX), 300_000);
    }

    #[test]
    fn states_and_kinds_round_trip_their_stored_names() {
        for s in [
            JobState::Pending,
            JobState::Printing,
            JobState::Printed,
            JobState::Failed,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        for k in [
            JobKind::Original,
            JobKind::Copy,
            JobKind::Drawer,
            JobKind::Return,
        ] {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(JobState::parse("done"), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue { copy: bool },
        Start,
        Printed,
        NotReady,
        Transport { bytes_sent: usize },
        Permanent,
        Crash,
        Retry { pick: usize },
        Wait { ms: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => any::<bool>().prop_map(|copy| Op::Enqueue { copy }),
            4 => Just(Op::Start),
            3 => Just(Op::Printed),
            2 => Just(Op::NotReady),
            2 => prop_oneof![Just(0usize), 1usize..4096].prop_map(|bytes_sent| Op::Transport { bytes_sent }),
            1 => Just(Op::Permanent),
            1 => Just(Op::Crash),
            1 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
            3 => (0i64..400_000).prop_map(|ms| Op::Wait { ms }),
        ]
    }

    proptest! {
        /// Random schedules of sales, attempts, failures, crashes and retries:
        /// at most one job prints at a time; a job is printed at most once; no job
        /// puts out more than one original (an attempt that may have reached the
        /// printer without being a copy); Failed only after the cap or a permanent
        /// failure; backoff never exceeds the policy; the queue stays bounded.
        #[test]
        fn queue_invariants_hold_under_random_schedules(ops in proptest::collection::vec(op(), 1..200)) {
            let policy = RetryPolicy { base_backoff_ms: 1_000, max_backoff_ms: 60_000, max_transport_failures: 4 };
            let capacity = 8;
            let mut q = PrintQueue::new(capacity, policy);
            let mut now = 0i64;
            let mut current: Option<Attempt> = None;
            let mut printed_count: BTreeMap<JobId, u32> = BTreeMap::new();
            let mut originals_out: BTreeMap<JobId, u32> = BTreeMap::new();
            let mut sales = 0u8;
            for op in ops {
                match op {
                    Op::Enqueue { copy } => {
                        sales = sales.wrapping_add(1);
                        let kind = if copy { JobKind::Copy } else { JobKind::Original };
                        let _ = q.enqueue(sale(sales), kind, now);
                    }
                    Op::Start => match q.start_next(now) {
                        Ok(Some(a)) => {
                            prop_assert!(current.is_none());
                            let job = q.get(a.job).expect("job");
                            prop_assert_eq!(a.as_copy, job.kind == JobKind::Copy || job.may_have_printed);
                            current = Some(a);
                        }
                        Ok(None) => prop_assert!(current.is_none()),
                        Err(QueueError::Busy(id)) => prop_assert_eq!(Some(id), current.map(|a| a.job)),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    },
                    Op::Printed => {
                        if let Some(a) = current.take() {
                            q.printed(a.job, now).expect("printed");
                            *printed_count.entry(a.job).or_default() += 1;
                            if !a.as_copy {
                                *originals_out.entry(a.job).or_default() += 1;
                            }
                        }
                    }
                    Op::NotReady | Op::Transport { .. } | Op::Permanent => {
                        if let Some(a) = current.take() {
                            let reason = match op {
                                Op::NotReady => FailReason::NotReady { detail: "sin papel".into() },
                                Op::Transport { bytes_sent } => transport(bytes_sent),
                                _ => FailReason::Permanent { detail: "render".into() },
                            };
                            let before = q.get(a.job).expect("job").clone();
                            let state = q.failed(a.job, now, &reason).expect("failed");
                            let job = q.get(a.job).expect("job");
                            if let FailReason::Transport { bytes_sent, .. } = reason {
                                if bytes_sent > 0 && !a.as_copy {
                                    *originals_out.entry(a.job).or_default() += 1;
                                }
                                prop_assert_eq!(job.transport_failures, before.transport_failures + 1);
                            }
                            match state {
                                JobState::Failed => {
                                    let permanent = matches!(reason, FailReason::Permanent { .. });
                                    let capped = job.transport_failures >= policy.max_transport_failures;
                                    prop_assert!(permanent || capped, "given up too early");
                                }
                                JobState::Pending => {
                                    prop_assert!(job.not_before_ms >= now);
                                    prop_assert!(job.not_before_ms - now <= policy.max_backoff_ms);
                                }
                                other => prop_assert!(false, "failed into {other:?}"),
                            }
                        }
                    }
                    Op::Crash => {
                        if let Some(a) = current.take() {
                            // The attempt may have printed before the crash.
                            if !a.as_copy {
                                *originals_out.entry(a.job).or_default() += 1;
                            }
                        }
                        q.recover(now);
                    }
                    Op::Retry { pick } => {
                        let failed: Vec<JobId> = q.jobs().filter(|j| j.state == JobState::Failed).map(|j| j.id).collect();
                        if !failed.is_empty() {
                            q.retry(failed[pick % failed.len()], now).expect("retry");
                        }
                    }
                    Op::Wait { ms } => now += ms,
                }
                let s = q.summary();
                prop_assert!(s.printing <= 1);
                prop_assert_eq!(s.printing == 1, current.is_some());
                prop_assert!(s.pending + s.printing + s.failed <= capacity);
                for (_, n) in printed_count.iter() {
                    prop_assert!(*n <= 1);
                }
                for (id, n) in originals_out.iter() {
                    prop_assert!(*n <= 1, "job {id} put out {n} originals");
                }
                for job in q.jobs() {
                    prop_assert!(job.transport_failures <= policy.max_transport_failures);
                    prop_assert_eq!(job.state == JobState::Printed, job.printed_ms.is_some());
                }
            }
        }
    }
}
