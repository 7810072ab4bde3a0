//! A real TCP proxy between a register and the hub, for partitions and bad
//! networks in end-to-end tests and in the demo: no mock of any HTTP client, the
//! bytes really cross sockets.
//!
//! Modes: `Up` forwards; `Down` refuses new connections and cuts open ones (the
//! hub is unreachable); `Replay` forwards and afterwards sends each
//! connection's request bytes to the hub a second time, after a delay (a
//! duplicated, late, reordered delivery; the second answer is thrown away).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Up,
    /// Refuse and cut: the hub is unreachable.
    Down,
    /// Forward, then deliver every request again later.
    Replay,
}

impl Mode {
    fn to_u8(self) -> u8 {
        match self {
            Mode::Up => 0,
            Mode::Down => 1,
            Mode::Replay => 2,
        }
    }

    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Down,
            2 => Mode::Replay,
            _ => Mode::Up,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    connections: AtomicU64,
    refused: AtomicU64,
    replays: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Largest request kept for a replay.
const MAX_REPLAY_BYTES: usize = 16 * 1024 * 1024;

impl Proxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || accept_loop(listener, upstream, s));
        Ok(Proxy { addr, shared })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the mode; `Down` also cuts every open connection.
    pub fn set(&self, mode: Mode) {
        self.shared.mode.store(mode.to_u8(), Ordering::SeqCst);
        if mode == Mode::Down {
            if let Ok(mut open) = self.shared.open.lock() {
                for s in open.drain(..) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.shared.mode.load(Ordering::SeqCst))
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections refused while down.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Requests delivered a second time.
    pub fn replays(&self) -> u64 {
        self.shared.replays.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.set(Mode::Down);
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let mode = Mode::from_u8(shared.mode.load(Ordering::SeqCst));
                if mode == Mode::Down {
                    shared.refused.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                thread::spawn(move || forward(client, upstream, s, mode == Mode::Replay));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn forward(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>, replay: bool) {
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nonblocking(false);
    // Forward each write as it comes, as a router would: with Nagle's
    // algorithm the proxy would hold a request's last segment back until the
    // previous one is acknowledged (a delayed ACK, tens of ms per request).
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if let Ok(mut open) = shared.open.lock() {
        if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
            open.push(a);
            open.push(b);
        }
    }
    // Server → client in its own thread; client → server here, recording.
    let back = thread::spawn(move || pump(s2, c2, None));
    let mut recorded = Vec::new();
    pump(client, server, replay.then_some(&mut recorded));
    let _ = back.join();
    if replay && !recorded.is_empty() {
        let s = shared.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            if let Ok(mut again) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) {
                let _ = again.set_read_timeout(Some(Duration::from_secs(10)));
                if again.write_all(&recorded).is_ok() {
                    s.replays.fetch_add(1, Ordering::SeqCst);
                    let _ = again.shutdown(Shutdown::Write);
                    let mut sink = [0u8; 8192];
                    while let Ok(n) = again.read(&mut sink) {
                        if n == 0 {
                            break;
                        }
                    }
                }
            }
        });
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, mut record: Option<&mut Vec<u8>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(r) = record.as_deref_mut() {
                    if r.len() + n <= MAX_REPLAY_BYTES {
                        r.extend_from_slice(&buf[..n]);
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
