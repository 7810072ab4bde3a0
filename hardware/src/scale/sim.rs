//! A simulated scale on a pseudo-terminal, for tests, the demo and a new user
//! without hardware: it answers [`super::toledo`] or [`super::cas`] requests on
//! the master side of a pty, and the register opens the slave side (its path, e.g.
//! `/dev/pts/3`) as an ordinary serial port.
//!
//! Answers come from a script (one per request, in order) and then from a
//! settable current answer. [`SimScale::unplug`] closes the master, which the
//! reader sees as a pulled cable.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use caja_shared::money::QtyMilli;
use serialport::{SerialPort, TTYPort};

use super::{cas, toledo, Protocol, StatusFlags};

/// What the simulated scale answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A weight in grams. Toledo has no unstable or negative weight record: it
    /// answers a status record (motion, under zero) instead.
    Weight {
        /// Grams.
        grams: QtyMilli,
        /// Stable.
        stable: bool,
    },
    /// A Toledo status record (CAS: nothing is sent).
    Status(StatusFlags),
    /// These bytes, as they are (garbage, truncated or corrupted frames).
    Raw(Vec<u8>),
    /// No answer at all.
    Silent,
}

impl Answer {
    /// A stable weight.
    pub fn stable(grams: i64) -> Answer {
        Answer::Weight {
            grams: QtyMilli(grams),
            stable: true,
        }
    }

    /// A weight in motion.
    pub fn moving(grams: i64) -> Answer {
        Answer::Weight {
            grams: QtyMilli(grams),
            stable: false,
        }
    }
}

/// A weight file's text that is not an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a weight in grams, \"motion\" or \"silent\"")]
pub struct AnswerTextError(String);

impl Answer {
    /// The answer a virtual scale's weight file asks for: an integer number of
    /// grams (`1250`; `-20` is below zero; empty is nothing on the scale),
    /// `motion` (a weight that is still moving, optionally `motion 1250`) or
    /// `silent` (no answer). Surrounding whitespace is ignored.
    pub fn from_text(text: &str) -> Result<Answer, AnswerTextError> {
        let t = text.trim();
        let grams = |g: &str| {
            g.trim()
                .parse::<i64>()
                .map_err(|_| AnswerTextError(t.to_string()))
        };
        if t.is_empty() {
            Ok(Answer::stable(0))
        } else if t == "silent" {
            Ok(Answer::Silent)
        } else if let Some(rest) = t.strip_prefix("motion") {
            let g = if rest.trim().is_empty() {
                0
            } else {
                grams(rest)?
            };
            Ok(Answer::moving(g))
        } else {
            Ok(Answer::stable(grams(t)?))
        }
    }
}

#[derive(Debug)]
struct SimState {
    script: VecDeque<Answer>,
    current: Answer,
    requests: usize,
}

/// A scale simulator running on its own thread.
#[derive(Debug)]
pub struct SimScale {
    state: Arc<Mutex<SimState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: String,
}

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the simulated scale's pseudo-terminal: {0}")]
pub struct SimError(String);

impl SimError {
    /// A failure to set the simulator up, described.
    pub fn new(detail: impl Into<String>) -> SimError {
        SimError(detail.into())
    }
}

fn lock(state: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimScale {
    /// Starts a simulated scale speaking `protocol`, answering `current` to every
    /// request not covered by a script.
    pub fn start(protocol: Protocol, current: Answer) -> Result<SimScale, SimError> {
        let (mut master, slave) = TTYPort::pair().map_err(|e| SimError(e.to_string()))?;
        let path = slave
            .name()
            .ok_or_else(|| SimError("the slave has no path".into()))?;
        master
            .set_timeout(Duration::from_millis(20))
            .map_err(|e| SimError(e.to_string()))?;
        let state = Arc::new(Mutex::new(SimState {
            script: VecDeque::new(),
            current,
            requests: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                // Holding the slave open keeps the master's reads from failing
                // while no reader has the port open.
                let _slave = slave;
                run(protocol, &mut master, &state, &stop);
            })
        };
        Ok(SimScale {
            state,
            stop,
            thread: Some(thread),
            path,
        })
    }

    /// The serial port to open (the pty's slave side).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sets the answer given when the script is empty.
    pub fn set(&self, answer: Answer) {
        lock(&self.state).current = answer;
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        lock(&self.state).script.extend(answers);
    }

    /// Weight requests received so far.
    pub fn requests(&self) -> usize {
        lock(&self.state).requests
    }

    /// Pulls the cable: closes the pty master; the reader's next read fails.
    pub fn unplug(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimScale {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn next_answer(state: &Mutex<SimState>) -> Answer {
    let mut s = lock(state);
    s.requests += 1;
    match s.script.pop_front() {
        Some(a) => a,
        None => s.current.clone(),
    }
}

fn encode(protocol: Protocol, answer: &Answer) -> Vec<u8> {
    match (protocol, answer) {
        (_, Answer::Raw(bytes)) => bytes.clone(),
        (_, Answer::Silent) => Vec::new(),
        (Protocol::Toledo8217, Answer::Weight { grams, stable }) => {
            if grams.milli() < 0 {
                toledo::encode_status(StatusFlags {
                    under_zero: true,
                    motion: !stable,
                    ..StatusFlags::default()
                })
                .to_vec()
            } else if !stable {
                toledo::encode_status(StatusFlags {
                    motion: true,
                    ..StatusFlags::default()
                })
                .to_vec()
            } else {
                toledo::encode_weight(*grams)
            }
        }
        (Protocol::Toledo8217, Answer::Status(flags)) => toledo::encode_status(*flags).to_vec(),
        (Protocol::CasPd2, Answer::Weight { grams, stable }) => {
            cas::encode(*grams, *stable, *b"kg")
        }
        (Protocol::CasPd2, Answer::Status(_)) => Vec::new(),
    }
}

fn run(protocol: Protocol, master: &mut TTYPort, state: &Mutex<SimState>, stop: &AtomicBool) {
    let mut buf = [0u8; 64];
    // For CAS: the answer chosen at ENQ time, sent at DC1.
    let mut chosen: Option<Answer> = None;
    // For Toledo: between `E` and `F` every byte is echoed.
    let mut echoing = false;
    while !stop.load(Ordering::SeqCst) {
        let n = match master.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        for &b in &buf[..n] {
            let reply = match (protocol, b) {
                (Protocol::Toledo8217, toledo::ECHO_END) if echoing => {
                    echoing = false;
                    Vec::new()
                }
                (Protocol::Toledo8217, _) if echoing => vec![b],
                (Protocol::Toledo8217, toledo::ECHO) => {
                    echoing = true;
                    toledo::ECHO_ACK.to_vec()
                }
                (Protocol::Toledo8217, toledo::REQUEST) => encode(protocol, &next_answer(state)),
                (Protocol::CasPd2, cas::ENQ) => {
                    let answer = next_answer(state);
                    let reply = if answer == Answer::Silent {
                        Vec::new()
                    } else {
                        vec![cas::ACK]
                    };
                    chosen = Some(answer);
                    reply
                }
                (Protocol::CasPd2, cas::DC1) => match chosen.take() {
                    Some(answer) => encode(protocol, &answer),
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
            if !reply.is_empty() && master.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_file_text_becomes_an_answer() {
        assert_eq!(Answer::from_text("1250\n"), Ok(Answer::stable(1250)));
        assert_eq!(Answer::from_text(" "), Ok(Answer::stable(0)));
        assert_eq!(Answer::from_text("-20"), Ok(Answer::stable(-20)));
        assert_eq!(Answer::from_text("motion"), Ok(Answer::moving(0)));
        assert_eq!(Answer::from_text("motion 800"), Ok(Answer::moving(800)));
        assert_eq!(Answer::from_text("silent"), Ok(Answer::Silent));
        for bad in ["1.25", "kg", "motion x", "12 g"] {
            assert!(Answer::from_text(bad).is_err(), "{bad}");
        }
    }
}
