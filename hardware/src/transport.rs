//! Byte pipes to a printer: TCP (network printers, port 9100), a serial port, a
//! device file (USB printer class, `/dev/usb/lp0`), a plain file (previews and
//! tests) and a folder with one file per receipt ([`FolderTransport`]).
//!
//! **Architecture invariant: every write has a deadline and every error says how
//! many bytes were sent.** A printer that stops reading (paper jam with a full
//! buffer, a hung network printer) makes [`Transport::write_all`] return
//! [`TransportError::WriteTimeout`] by its deadline, never block the register; the
//! `sent` count tells the print queue whether part of a receipt may have reached
//! the printer (then a retry is printed as a copy, never as a second original).
//!
//! Reads exist for status queries only and also take a timeout. A plain file is
//! one-way ([`TransportError::OneWay`]).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};

/// The default TCP port of network receipt printers ("raw" / JetDirect).
pub const DEFAULT_TCP_PORT: u16 = 9100;

/// Most stale bytes discarded before a status query.
const MAX_DISCARD_BYTES: usize = 64 * 1024;

/// A connection to a printer.
pub trait Transport: Send + fmt::Debug {
    /// Names the device in errors and logs (`tcp 192.168.1.50:9100`).
    fn describe(&self) -> String;

    /// Writes all of `bytes` before `timeout` elapses, or fails saying how many
    /// bytes were sent.
    fn write_all(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), TransportError>;

    /// Reads one byte, waiting at most `timeout`: `Ok(None)` if nothing came.
    fn read_byte(&mut self, timeout: Duration) -> Result<Option<u8>, TransportError>;

    /// Drops whatever the printer sent that nobody read (before a status query).
    fn discard_input(&mut self) -> Result<(), TransportError>;

    /// True when the printer can answer (status queries make sense).
    fn is_bidirectional(&self) -> bool;
}

/// A transport failure. Every variant names the device.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The device could not be opened or the connection made.
    #[error("{device}: cannot connect: {source}")]
    Connect {
        /// The device.
        device: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The printer stopped taking bytes: the deadline passed mid-write.
    #[error("{device}: write timed out after {timeout_ms} ms ({sent} of {total} bytes sent)")]
    WriteTimeout {
        /// The device.
        device: String,
        /// The deadline.
        timeout_ms: u64,
        /// Bytes accepted before the deadline.
        sent: usize,
        /// Bytes of the job.
        total: usize,
    },
    /// The other end closed the connection or the device went away.
    #[error("{device}: connection closed by the printer ({sent} bytes sent)")]
    Closed {
        /// The device.
        device: String,
        /// Bytes accepted before the close.
        sent: usize,
    },
    /// Another OS error.
    #[error("{device}: {source} ({sent} bytes sent)")]
    Io {
        /// The device.
        device: String,
        /// Bytes accepted before the error.
        sent: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A read on a transport that cannot read.
    #[error("{device}: one-way connection, the printer cannot answer")]
    OneWay {
        /// The device.
        device: String,
    },
}

impl TransportError {
    /// Bytes of the job that reached the transport before the failure (0 when the
    /// failure happened before any byte was written).
    pub fn bytes_sent(&self) -> usize {
        match self {
            TransportError::WriteTimeout { sent, .. }
            | TransportError::Closed { sent, .. }
            | TransportError::Io { sent, .. } => *sent,
            TransportError::Connect { .. } | TransportError::OneWay { .. } => 0,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What one write attempt returned, for the shared deadline loop.
enum Step {
    Wrote(usize),
    WouldBlock,
    Failed(io::Error),
}

/// The deadline loop shared by every transport: `step` writes what it can of the
/// remaining bytes, `wait` blocks until writable or the remaining time is over.
fn write_with_deadline(
    device: &dyn Fn() -> String,
    bytes: &[u8],
    timeout: Duration,
    mut step: impl FnMut(&[u8], Duration) -> Step,
    mut wait: impl FnMut(Duration) -> io::Result<bool>,
) -> Result<(), TransportError> {
    let deadline = Instant::now() + timeout;
    let total = bytes.len();
    let mut sent = 0;
    let timed_out = |sent| TransportError::WriteTimeout {
        device: device(),
        timeout_ms: millis(timeout),
        sent,
        total,
    };
    while sent < total {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out(sent));
        }
        match step(&bytes[sent..], remaining) {
            Step::Wrote(0) => {
                return Err(TransportError::Closed {
                    device: device(),
                    sent,
                })
            }
            Step::Wrote(n) => sent += n,
            Step::WouldBlock => match wait(remaining) {
                Ok(true) => {}
                Ok(false) => return Err(timed_out(sent)),
                Err(source) => return Err(io_error(device(), sent, source)),
            },
            Step::Failed(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Step::Failed(e) => return Err(io_error(device(), sent, e)),
        }
    }
    Ok(())
}

fn io_error(device: String, sent: usize, source: io::Error) -> TransportError {
    match source.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => TransportError::Closed { device, sent },
        _ => TransportError::Io {
            device,
            sent,
            source,
        },
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A network printer.
#[derive(Debug)]
pub struct TcpTransport {
    stream: TcpStream,
    peer: String,
}

impl TcpTransport {
    /// Connects to `host:port` (each resolved address in turn), waiting at most
    /// `timeout` per address.
    pub fn connect(addr: &str, timeout: Duration) -> Result<TcpTransport, TransportError> {
        let device = format!("tcp {addr}");
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|source| TransportError::Connect {
                device: device.clone(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    // Small writes (status queries) must leave at once.
                    stream
                        .set_nodelay(true)
                        .map_err(|source| TransportError::Connect {
                            device: device.clone(),
                            source,
                        })?;
                    return Ok(TcpTransport {
                        stream,
                        peer: addr.to_string(),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(TransportError::Connect {
            device,
            source: last,
        })
    }
}

impl Transport for TcpTransport {
    fn describe(&self) -> String {
        format!("tcp {}", self.peer)
    }

    fn write_all(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), TransportError> {
        let peer = self.peer.clone();
        let stream = &mut self.stream;
        write_with_deadline(
            &|| format!("tcp {peer}"),
            bytes,
            timeout,
            |rest, remaining| {
                if let Err(e) = stream.set_write_timeout(Some(remaining)) {
                    return Step::Failed(e);
                }
                match stream.write(rest) {
                    Ok(n) => Step::Wrote(n),
                    Err(e) if is_timeout(&e) => Step::WouldBlock,
                    Err(e) => Step::Failed(e),
                }
            },
            // The socket's own timeout did the waiting.
            |_| Ok(false),
        )
    }

    fn read_byte(&mut self, timeout: Duration) -> Result<Option<u8>, TransportError> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| io_error(self.describe(), 0, e))?;
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => Err(TransportError::Closed {
                device: self.describe(),
                sent: 0,
            }),
            Ok(_) => Ok(Some(b[0])),
            Err(e) if is_timeout(&e) => Ok(None),
            Err(e) => Err(io_error(self.describe(), 0, e)),
        }
    }

    fn discard_input(&mut self) -> Result<(), TransportError> {
        let device = self.describe();
        let err = |e| io_error(device.clone(), 0, e);
        self.stream.set_nonblocking(true).map_err(err)?;
        let mut buf = [0u8; 512];
        let mut dropped = 0;
        let result = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    break Err(TransportError::Closed {
                        device: device.clone(),
                        sent: 0,
                    })
                }
                Ok(n) => {
                    dropped += n;
                    if dropped >= MAX_DISCARD_BYTES {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(err(e)),
            }
        };
        self.stream.set_nonblocking(false).map_err(err)?;
        result
    }

    fn is_bidirectional(&self) -> bool {
        true
    }
}

/// A printer on a serial port (RS-232 or a USB-serial adapter).
pub struct SerialTransport {
    port: Box<dyn serialport::SerialPort>,
    path: String,
}

impl fmt::Debug for SerialTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerialTransport")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SerialTransport {
    /// Opens `path` at `baud` (8 data bits, no parity, 1 stop bit, no flow
    /// control: the receipt printers' default).
    pub fn open(path: &str, baud: u32) -> Result<SerialTransport, TransportError> {
        let port = serialport::new(path, baud)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(|e| TransportError::Connect {
                device: format!("serial {path}"),
                source: io::Error::from(e),
            })?;
        Ok(SerialTransport {
            port,
            path: path.to_string(),
        })
    }
}

impl Transport for SerialTransport {
    fn describe(&self) -> String {
        format!("serial {}", self.path)
    }

    fn write_all(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), TransportError> {
        let path = self.path.clone();
        let port = &mut self.port;
        write_with_deadline(
            &|| format!("serial {path}"),
            bytes,
            timeout,
            |rest, remaining| {
                if let Err(e) = port.set_timeout(remaining) {
                    return Step::Failed(io::Error::from(e));
                }
                match port.write(rest) {
                    Ok(n) => Step::Wrote(n),
                    Err(e) if is_timeout(&e) => Step::WouldBlock,
                    Err(e) => Step::Failed(e),
                }
            },
            |_| Ok(false),
        )
    }

    fn read_byte(&mut self, timeout: Duration) -> Result<Option<u8>, TransportError> {
        self.port
            .set_timeout(timeout.max(Duration::from_millis(1)))
            .map_err(|e| io_error(self.describe(), 0, e.into()))?;
        let mut b = [0u8; 1];
        match self.port.read(&mut b) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(b[0])),
            Err(e) if is_timeout(&e) => Ok(None),
            Err(e) => Err(io_error(self.describe(), 0, e)),
        }
    }

    fn discard_input(&mut self) -> Result<(), TransportError> {
        self.port
            .clear(serialport::ClearBuffer::Input)
            .map_err(|e| io_error(self.describe(), 0, e.into()))
    }

    fn is_bidirectional(&self) -> bool {
        true
    }
}

/// A printer device file (`/dev/usb/lp0`, the USB printer class) or a plain file
/// (previews, tests). Device files are opened non-blocking and written with
/// `poll(2)` so that a printer that stops taking bytes trips the deadline.
#[derive(Debug)]
pub struct FileTransport {
    file: File,
    path: PathBuf,
    readable: bool,
}

impl FileTransport {
    /// Opens an existing printer device for reading and writing (reading serves
    /// status queries; a device that cannot be opened for reading is opened
    /// write-only and is then one-way).
    pub fn open_device(path: &Path) -> Result<FileTransport, TransportError> {
        let open = |read: bool| {
            OpenOptions::new()
                .read(read)
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(path)
        };
        let (file, readable) = match open(true) {
            Ok(f) => (f, true),
            Err(_) => (
                open(false).map_err(|source| TransportError::Connect {
                    device: format!("device {}", path.display()),
                    source,
                })?,
                false,
            ),
        };
        Ok(FileTransport {
            file,
            path: path.to_path_buf(),
            readable,
        })
    }

    /// Creates (or appends to) a plain file that collects the printer bytes.
    pub fn create(path: &Path) -> Result<FileTransport, TransportError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| TransportError::Connect {
                device: format!("file {}", path.display()),
                source,
            })?;
        Ok(FileTransport {
            file,
            path: path.to_path_buf(),
            readable: false,
        })
    }

    fn wait(&self, flags: PollFlags, timeout: Duration) -> io::Result<bool> {
        let ms = i32::try_from(timeout.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        let mut fds = [PollFd::new(self.file.as_raw_fd(), flags)];
        loop {
            match poll(&mut fds, ms) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
}

impl Transport for FileTransport {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn write_all(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), TransportError> {
        let path = self.path.clone();
        let fd_owner = &*self;
        let mut file = &self.file;
        write_with_deadline(
            &|| format!("file {}", path.display()),
            bytes,
            timeout,
            |rest, _| match file.write(rest) {
                Ok(n) => Step::Wrote(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::WouldBlock,
                Err(e) => Step::Failed(e),
            },
            |remaining| fd_owner.wait(PollFlags::POLLOUT, remaining),
        )?;
        (&self.file)
            .flush()
            .map_err(|e| io_error(self.describe(), bytes.len(), e))
    }

    fn read_byte(&mut self, timeout: Duration) -> Result<Option<u8>, TransportError> {
        if !self.readable {
            return Err(TransportError::OneWay {
                device: self.describe(),
            });
        }
        let mut b = [0u8; 1];
        let deadline = Instant::now() + timeout;
        loop {
            match (&self.file).read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(b[0])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let ready = !remaining.is_zero()
                        && self
                            .wait(PollFlags::POLLIN, remaining)
                            .map_err(|e| io_error(self.describe(), 0, e))?;
                    if !ready {
                        return Ok(None);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(self.describe(), 0, e)),
            }
        }
    }

    fn discard_input(&mut self) -> Result<(), TransportError> {
        if !self.readable {
            return Ok(());
        }
        let mut buf = [0u8; 512];
        let mut dropped = 0;
        while dropped < MAX_DISCARD_BYTES {
            match (&self.file).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => dropped += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(self.describe(), 0, e)),
            }
        }
        Ok(())
    }

    fn is_bidirectional(&self) -> bool {
        self.readable
    }
}

/// A folder that collects receipts without a printer (the "virtual printer" of
/// demos and first trials): every job ([`Transport::write_all`] call) becomes two
/// new files, `NNNNNN.bin` (the exact ESC/POS bytes) and `NNNNNN.txt` (the paper
/// as the decoder reads it, `columns` wide, with markers such as `[GAVETA]` for
/// a drawer kick). Numbers follow the highest already in the folder; files are
/// created exclusively, so two processes never overwrite each other's receipts.
#[derive(Debug)]
pub struct FolderTransport {
    dir: PathBuf,
    columns: usize,
}

/// Most numbers tried when another process takes the same one at once.
const FOLDER_CLAIM_ATTEMPTS: usize = 100;

impl FolderTransport {
    /// Creates the folder if needed.
    pub fn open(dir: &Path, columns: usize) -> Result<FolderTransport, TransportError> {
        std::fs::create_dir_all(dir).map_err(|source| TransportError::Connect {
            device: format!("folder {}", dir.display()),
            source,
        })?;
        Ok(FolderTransport {
            dir: dir.to_path_buf(),
            columns,
        })
    }

    /// The highest job number in the folder (0 when none).
    fn last_number(&self) -> io::Result<u64> {
        let mut max = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name
                .strip_suffix(".bin")
                .and_then(|stem| stem.parse::<u64>().ok())
            {
                max = max.max(n);
            }
        }
        Ok(max)
    }

    /// Writes both files complete under temporary names, then claims the next
    /// number by hard-linking the bytes (fails if taken, so two processes never
    /// share a number) and renames the text beside it: a crash leaves either
    /// nothing or whole files under their final names (plus a stray temporary).
    fn write_job(&self, bytes: &[u8]) -> io::Result<PathBuf> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = |ext: &str| {
            self.dir
                .join(format!(".job-{}-{nanos}.{ext}.tmp", std::process::id()))
        };
        let (tmp_bin, tmp_txt) = (tmp("bin"), tmp("txt"));
        let text = crate::decode::decode(bytes).paper(self.columns);
        for (path, content) in [(&tmp_bin, bytes), (&tmp_txt, text.as_bytes())] {
            let mut file = File::create(path)?;
            file.write_all(content)?;
            file.sync_all()?;
        }
        let mut number = self.last_number()?;
        let mut claimed = None;
        for _ in 0..FOLDER_CLAIM_ATTEMPTS {
            number += 1;
            let bin = self.dir.join(format!("{number:06}.bin"));
            match std::fs::hard_link(&tmp_bin, &bin) {
                Ok(()) => {
                    claimed = Some(bin);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp_bin);
                    let _ = std::fs::remove_file(&tmp_txt);
                    return Err(e);
                }
            }
        }
        let _ = std::fs::remove_file(&tmp_bin);
        let Some(bin) = claimed else {
            let _ = std::fs::remove_file(&tmp_txt);
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "no free receipt number in the folder",
            ));
        };
        std::fs::rename(&tmp_txt, bin.with_extension("txt"))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(bin)
    }
}

impl Transport for FolderTransport {
    fn describe(&self) -> String {
        format!("folder {}", self.dir.display())
    }

    fn write_all(&mut self, bytes: &[u8], _timeout: Duration) -> Result<(), TransportError> {
        // A local file write: bounded by the disk, not by a device that may stop
        // reading, so no deadline is needed.
        self.write_job(bytes)
            .map(|_| ())
            .map_err(|e| io_error(self.describe(), 0, e))
    }

    fn read_byte(&mut self, _timeout: Duration) -> Result<Option<u8>, TransportError> {
        Err(TransportError::OneWay {
            device: self.describe(),
        })
    }

    fn discard_input(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    fn is_bidirectional(&self) -> bool {
        false
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn write_all(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), TransportError> {
        (**self).write_all(bytes, timeout)
    }
    fn read_byte(&mut self, timeout: Duration) -> Result<Option<u8>, TransportError> {
        (**self).read_byte(timeout)
    }
    fn discard_input(&mut self) -> Result<(), TransportError> {
        (**self).discard_input()
    }
    fn is_bidirectional(&self) -> bool {
        (**self).is_bidirectional()
    }
}
