//! Signing beside the sale's transaction: one thread kept for the e-CF's
//! signing work ([`Worker`]), and the steps it hands back to the sale's
//! thread ([`Pending`], of the signed documents `D`) while that thread goes
//! on with the SQL that does not need the signature.
//!
//! Invariant: a sale's documents are stored only once they are all signed,
//! and the transaction commits only after every document was checked
//! ([`Pending::documents`] runs the checks handed to the sale's thread,
//! [`Pending::finish`] waits for the last one); any failure, a worker
//! that stopped included, refuses the sale. Jobs run one at a time in the
//! order given; when no thread can start, a job runs on the caller's thread
//! (the same steps, one after the other).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use super::error::IssueFailed;

/// Work for the worker thread.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// One thread, started on first use and kept, that runs jobs in order.
/// Dropping it lets the running job finish and joins the thread.
#[derive(Debug, Default)]
pub struct Worker {
    thread: Mutex<Option<(Sender<Job>, JoinHandle<()>)>>,
}

impl Worker {
    /// A worker whose thread starts with its first job.
    pub fn new() -> Worker {
        Worker::default()
    }

    /// Runs `job` on the worker's thread, or here when no thread can be
    /// started (or the one started has stopped and no new one can).
    pub fn run(&self, job: Job) {
        let mut slot = match self.thread.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let job = match slot.as_ref() {
            Some((tx, _)) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => {
                    // The thread stopped: start another below.
                    *slot = None;
                    job
                }
            },
            None => job,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("ecf-sign".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // A job that panics drops its sender: its caller sees a
                    // stopped worker and refuses; later jobs still run.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        match spawned {
            Ok(handle) => match tx.send(job) {
                Ok(()) => *slot = Some((tx, handle)),
                Err(mpsc::SendError(job)) => {
                    drop(slot);
                    job();
                }
            },
            Err(_) => {
                drop(slot);
                job();
            }
        }
    }

    /// The worker thread's id, when one is running (for tests).
    pub fn thread_id(&self) -> Option<std::thread::ThreadId> {
        let slot = match self.thread.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        slot.as_ref().map(|(_, h)| h.thread().id())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let slot = match self.thread.get_mut() {
            Ok(s) => s.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some((tx, handle)) = slot {
            drop(tx);
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// A check to run on the sale's thread (it returns why it failed).
pub type Check = Box<dyn FnOnce() -> Result<(), IssueFailed> + Send + 'static>;

enum Step<D> {
    /// Run this check on the sale's thread, before taking the documents.
    CheckHere(Check),
    /// Every document, signed.
    Documents(D),
    /// The checks still running beside, done.
    Checked(Result<(), IssueFailed>),
    /// Signing failed.
    Failed(IssueFailed),
}

/// What the signing side sends: its steps, in this order — checks for the
/// sale's thread, then the documents (or a failure), then the result of the
/// checks it ran itself.
#[derive(Debug)]
pub struct Steps<D> {
    tx: Sender<Step<D>>,
}

impl<D> std::fmt::Debug for Step<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::CheckHere(_) => "CheckHere",
            Step::Documents(_) => "Documents",
            Step::Checked(_) => "Checked",
            Step::Failed(_) => "Failed",
        })
    }
}

impl<D> Steps<D> {
    // A send fails only when the sale gave up (its transaction is rolling
    // back): nothing is waiting, so the step is dropped.

    /// A check the sale's thread runs before it takes the documents.
    pub fn check_here(&self, check: Check) {
        let _ = self.tx.send(Step::CheckHere(check));
    }

    /// The signed documents.
    pub fn documents(&self, issued: D) {
        let _ = self.tx.send(Step::Documents(issued));
    }

    /// The result of the checks run beside.
    pub fn checked(&self, result: Result<(), IssueFailed>) {
        let _ = self.tx.send(Step::Checked(result));
    }

    /// Signing failed.
    pub fn failed(&self, e: IssueFailed) {
        let _ = self.tx.send(Step::Failed(e));
    }
}

/// A sale's documents being signed: take them with [`Pending::documents`],
/// then wait for the last checks with [`Pending::finish`] before the
/// transaction commits.
#[derive(Debug)]
pub struct Pending<D> {
    rx: Receiver<Step<D>>,
}

fn stopped() -> IssueFailed {
    IssueFailed {
        field: "ecf".into(),
        reason: "the signing thread stopped before the documents were signed and checked".into(),
    }
}

impl<D> Pending<D> {
    /// A pending sale and the sender its signing side fills.
    pub fn channel() -> (Steps<D>, Pending<D>) {
        let (tx, rx) = mpsc::channel();
        (Steps { tx }, Pending { rx })
    }

    /// A sale signed and checked already (an issuer that signs in one call).
    pub fn ready(result: Result<D, IssueFailed>) -> Pending<D> {
        let (steps, pending) = Pending::channel();
        match result {
            Ok(issued) => {
                steps.documents(issued);
                steps.checked(Ok(()));
            }
            Err(e) => steps.failed(e),
        }
        pending
    }

    /// Waits for the documents, running here the checks handed over first
    /// (the first failure in step order is the one reported).
    pub fn documents(&mut self) -> Result<D, IssueFailed> {
        loop {
            match self.rx.recv().map_err(|_| stopped())? {
                Step::CheckHere(check) => check()?,
                Step::Documents(issued) => return Ok(issued),
                Step::Failed(e) => return Err(e),
                Step::Checked(r) => {
                    r?;
                    return Err(IssueFailed {
                        field: "ecf".into(),
                        reason: "checked before any document was signed".into(),
                    });
                }
            }
        }
    }

    /// Waits for the checks run beside; `Ok` only when every one passed.
    pub fn finish(self) -> Result<(), IssueFailed> {
        loop {
            match self.rx.recv().map_err(|_| stopped())? {
                Step::CheckHere(check) => check()?,
                Step::Checked(r) => return r,
                Step::Failed(e) => return Err(e),
                Step::Documents(_) => {
                    return Err(IssueFailed {
                        field: "ecf".into(),
                        reason: "documents sent twice".into(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    type PendingSale = Pending<String>;

    fn issued(encf: &str) -> String {
        encf.to_owned()
    }

    fn fail(why: &str) -> IssueFailed {
        IssueFailed {
            field: "ecf".into(),
            reason: why.into(),
        }
    }

    #[test]
    fn jobs_run_in_order_on_one_kept_thread_and_survive_a_panic() {
        let worker = Worker::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..5 {
            let seen = seen.clone();
            worker.run(Box::new(move || {
                seen.lock().unwrap().push((i, std::thread::current().id()));
            }));
            if i == 2 {
                worker.run(Box::new(|| panic!("a job that panics")));
            }
        }
        let id = worker.thread_id().expect("a thread was started");
        drop(worker); // joins: every job has run
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert!(seen.iter().all(|(_, t)| *t == id), "one thread for all");
        assert_ne!(id, std::thread::current().id());
    }

    #[test]
    fn the_sale_gets_its_documents_only_after_the_checks_and_fails_on_any() {
        // Checks handed over pass, the last check passes: documents, then Ok.
        let (steps, mut p) = PendingSale::channel();
        steps.check_here(Box::new(|| Ok(())));
        steps.documents(issued("E320000000001"));
        steps.checked(Ok(()));
        assert_eq!(p.documents().unwrap(), "E320000000001");
        assert_eq!(p.finish(), Ok(()));
        // A failed check here is reported before a failure of the signing.
        let (steps, mut p) = PendingSale::channel();
        steps.check_here(Box::new(|| Err(fail("ecf check"))));
        steps.failed(fail("rfce signing"));
        assert_eq!(p.documents().unwrap_err().reason, "ecf check");
        // The last check fails: the documents came, the sale is refused.
        let (steps, mut p) = PendingSale::channel();
        steps.documents(issued("E320000000002"));
        steps.checked(Err(fail("rfce check")));
        assert!(p.documents().is_ok());
        assert_eq!(p.finish().unwrap_err().reason, "rfce check");
        // The signing side went away without a word: refused, twice over.
        let (steps, mut p) = PendingSale::channel();
        drop(steps);
        assert!(p.documents().is_err());
        let (steps, mut p) = PendingSale::channel();
        steps.documents(issued("E320000000003"));
        drop(steps);
        assert!(p.documents().is_ok());
        assert!(
            p.finish().is_err(),
            "no word on the last check is a refusal"
        );
        // Ready: what one call gave.
        let mut p = PendingSale::ready(Ok(issued("E320000000004")));
        assert!(p.documents().is_ok() && p.finish().is_ok());
        let mut p = PendingSale::ready(Err(fail("no")));
        assert_eq!(p.documents().unwrap_err().reason, "no");
    }
}
