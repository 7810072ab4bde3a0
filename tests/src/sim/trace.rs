//! The run's trace: one line per step and per network event. All lines are
//! folded into a running SHA-256 (two runs of a seed must end with the same
//! hash), and the last [`TAIL`] are kept to print when a check fails.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use caja_shared::digest::Hash256;

/// Lines kept for the failure report.
pub const TAIL: usize = 30;

#[derive(Debug)]
struct Inner {
    hash: Hash256,
    lines: u64,
    tail: VecDeque<String>,
    echo: bool,
}

/// A shared trace handle.
#[derive(Debug, Clone)]
pub struct Trace(Arc<Mutex<Inner>>);

impl Trace {
    /// An empty trace; `echo` also prints every line (for replaying a seed).
    pub fn new(echo: bool) -> Trace {
        Trace(Arc::new(Mutex::new(Inner {
            hash: Hash256::of(b"caja/sim/trace/v1"),
            lines: 0,
            tail: VecDeque::with_capacity(TAIL),
            echo,
        })))
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a line.
    pub fn line(&self, line: impl Into<String>) {
        let line = line.into();
        let mut t = self.inner();
        let mut bytes = t.hash.to_hex().into_bytes();
        bytes.push(b'\n');
        bytes.extend_from_slice(line.as_bytes());
        t.hash = Hash256::of(&bytes);
        t.lines += 1;
        if t.echo {
            println!("{:>6} {line}", t.lines);
        }
        if t.tail.len() == TAIL {
            t.tail.pop_front();
        }
        t.tail.push_back(line);
    }

    /// The running hash of every line so far.
    pub fn hash(&self) -> Hash256 {
        self.inner().hash
    }

    /// Lines written.
    pub fn len(&self) -> u64 {
        self.inner().lines
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last lines, numbered.
    pub fn tail(&self) -> Vec<String> {
        let t = self.inner();
        let first = t.lines - t.tail.len() as u64 + 1;
        t.tail
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{:>6} {l}", first + i as u64))
            .collect()
    }
}
