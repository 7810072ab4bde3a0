//! Printers on real transports: a TCP listener on 127.0.0.1 that plays a network
//! printer (records the bytes, answers `DLE EOT`), a file, a FIFO that stops
//! reading, and a pseudo-terminal as a serial port.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use caja_hardware::codepage::CodePage;
use caja_hardware::decode::{decode, Command};
use caja_hardware::escpos_ext::DrawerPulse;
use caja_hardware::localtime::{LocalDateTime, UtcOffset};
use caja_hardware::printer::{DeliveryError, PrinterConfig, ReceiptPrinter};
use caja_hardware::queue::{FailReason, JobKind, JobState, PrintQueue, RetryPolicy};
use caja_hardware::receipt::Width;
use caja_hardware::render::render;
use caja_hardware::status::{answers_for, PrinterStatus, Problems, UnknownReason};
use caja_hardware::transport::{
    FileTransport, FolderTransport, SerialTransport, TcpTransport, Transport, TransportError,
};
use common::*;

/// What the fake network printer saw and how it answers.
#[derive(Default)]
struct FakeState {
    /// Bytes received that were not status requests.
    job_bytes: Vec<u8>,
    /// `n` of each `DLE EOT n` received.
    status_requests: Vec<u8>,
    /// What the printer reports.
    problems: Problems,
    /// Answer status requests at all.
    mute: bool,
}

/// A network printer on 127.0.0.1: one thread per connection, bytes recorded,
/// `DLE EOT 1/2/4` answered from `problems`.
struct FakePrinter {
    addr: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakePrinter {
    fn start() -> FakePrinter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = Arc::clone(&shared);
                thread::spawn(move || serve(stream, &state));
            }
        });
        FakePrinter { addr, state }
    }

    fn set(&self, problems: Problems) {
        self.state.lock().expect("state").problems = problems;
    }

    fn job_bytes(&self) -> Vec<u8> {
        self.state.lock().expect("state").job_bytes.clone()
    }

    fn connect(&self) -> ReceiptPrinter<TcpTransport> {
        let t = TcpTransport::connect(&self.addr, Duration::from_secs(2)).expect("connect");
        ReceiptPrinter::new(t, config())
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<FakeState>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        // Peel off DLE EOT n requests; everything else is job data.
        let mut i = 0;
        while i < pending.len() {
            if pending[i] == 0x10 {
                if pending.len() < i + 3 {
                    break;
                }
                if pending[i + 1] == 0x04 {
                    let n = pending[i + 2];
                    let (answer, mute) = {
                        let mut s = state.lock().expect("state");
                        s.status_requests.push(n);
                        let (a, b, c) = answers_for(s.problems, false);
                        (
                            match n {
                                1 => a,
                                2 => b,
                                _ => c,
                            },
                            s.mute,
                        )
                    };
                    if !mute {
                        let _ = stream.write_all(&[answer]);
                    }
                    i += 3;
                    continue;
                }
            }
            state.lock().expect("state").job_bytes.push(pending[i]);
            i += 1;
        }
        pending.drain(..i);
    }
}

fn config() -> PrinterConfig {
    PrinterConfig {
        write_timeout: Duration::from_secs(2),
        status_timeout: Duration::from_millis(300),
        check_before_print: true,
    }
}

fn job() -> Vec<u8> {
    let layout = groceries_receipt()
        .layout(Width::Mm80, CodePage::Pc858)
        .expect("layout");
    render(&layout).expect("render").bytes
}

/// Waits until the fake printer has received `n` job bytes.
fn wait_for_bytes(printer: &FakePrinter, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while printer.job_bytes().len() < n {
        assert!(
            Instant::now() < deadline,
            "fake printer got {} of {n} bytes",
            printer.job_bytes().len()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn tcp_printer_receives_the_receipt_after_a_status_check() {
    let fake = FakePrinter::start();
    let mut printer = fake.connect();
    assert_eq!(printer.status(), PrinterStatus::Ready { paper_low: false });
    let bytes = job();
    printer.deliver(&bytes).expect("deliver");
    wait_for_bytes(&fake, bytes.len());
    assert_eq!(fake.job_bytes(), bytes);
    assert_eq!(
        fake.state.lock().expect("state").status_requests,
        [1, 2, 4, 1, 2, 4]
    );
    let paper = decode(&fake.job_bytes()).paper(48);
    assert!(
        paper.contains("TOTAL                                 RD$ 631.15"),
        "{paper}"
    );
    assert!(paper.contains("0.455 kg x RD$ 380.00"), "{paper}");
}

#[test]
fn paper_out_keeps_the_job_queued_until_the_printer_is_back_then_prints_exactly_once() {
    let fake = FakePrinter::start();
    fake.set(Problems {
        paper_out: true,
        ..Problems::default()
    });
    let mut queue = PrintQueue::new(16, RetryPolicy::default());
    let sale = groceries().sale_id;
    let id = queue.enqueue(sale, JobKind::Original, 0).expect("enqueue");
    let render_attempt = |as_copy: bool| {
        let mut receipt = groceries_receipt();
        if as_copy {
            receipt = receipt.into_copy(LocalDateTime::from_utc_ms(
                SOLD_AT_MS,
                UtcOffset::SANTO_DOMINGO,
            ));
        }
        render(
            &receipt
                .layout(Width::Mm80, CodePage::Pc858)
                .expect("layout"),
        )
        .expect("render")
        .bytes
    };

    // The worker's loop, as the node will run it after the sale commits.
    let mut now = 0;
    let mut outcomes = Vec::new();
    for round in 0..6 {
        if round == 3 {
            fake.set(Problems::default()); // paper replaced
        }
        if let Some(attempt) = queue.start_next(now).expect("start") {
            let mut printer = fake.connect();
            match printer.deliver(&render_attempt(attempt.as_copy)) {
                Ok(()) => {
                    queue.printed(attempt.job, now).expect("printed");
                    outcomes.push("printed".to_string());
                }
                Err(e) => {
                    let state = queue
                        .failed(attempt.job, now, &e.fail_reason())
                        .expect("failed");
                    outcomes.push(format!(
                        "{state:?}: {}",
                        queue
                            .get(id)
                            .and_then(|j| j.last_error.clone())
                            .unwrap_or_default()
                    ));
                }
            }
        }
        now += RetryPolicy::default().max_backoff_ms;
    }
    assert_eq!(
        outcomes,
        [
            "Pending: Impresora sin papel",
            "Pending: Impresora sin papel",
            "Pending: Impresora sin papel",
            "printed",
        ]
    );
    let expected = render_attempt(false);
    wait_for_bytes(&fake, expected.len());
    let received = fake.job_bytes();
    assert_eq!(
        received, expected,
        "exactly one original, nothing while out of paper"
    );
    assert_eq!(
        decode(&received)
            .commands
            .iter()
            .filter(|c| **c == Command::Init)
            .count(),
        1
    );
    assert!(!decode(&received).paper(48).contains("COPIA"));
    assert_eq!(queue.get(id).map(|j| j.state), Some(JobState::Printed));
    assert_eq!(queue.start_next(now).expect("start"), None);
}

#[test]
fn a_printer_that_answers_no_status_is_unknown_not_ready() {
    let fake = FakePrinter::start();
    fake.state.lock().expect("state").mute = true;
    let mut printer = fake.connect();
    let started = Instant::now();
    let status = printer.status();
    assert_eq!(status, PrinterStatus::Unknown(UnknownReason::NoAnswer));
    assert!(!status.is_ready());
    assert!(started.elapsed() < Duration::from_secs(2));
    // Printing still goes ahead: many printers cannot answer.
    printer.deliver(b"\x1b@hola\n").expect("deliver");
}

#[test]
fn a_printer_that_stops_reading_trips_the_write_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // Accepts and never reads, until the test is done.
    let (done, wait_done) = std::sync::mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let _ = wait_done.recv_timeout(Duration::from_secs(10));
        drop(stream);
    });
    let transport = TcpTransport::connect(&addr, Duration::from_secs(2)).expect("connect");
    let mut printer = ReceiptPrinter::new(
        transport,
        PrinterConfig {
            write_timeout: Duration::from_millis(300),
            check_before_print: false,
            ..config()
        },
    );
    let huge = vec![b'x'; 64 << 20];
    let started = Instant::now();
    let err = printer.deliver(&huge).expect_err("must time out");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let DeliveryError::Transport(TransportError::WriteTimeout {
        sent,
        total,
        timeout_ms,
        ..
    }) = &err
    else {
        panic!("{err:?}");
    };
    assert!(*sent > 0 && *sent < *total, "{sent} of {total}");
    assert_eq!(*timeout_ms, 300);
    assert!(
        err.to_string().contains("write timed out after 300 ms"),
        "{err}"
    );
    // Part of the job may be on paper: the queue makes the retry a copy.
    assert!(
        matches!(err.fail_reason(), FailReason::Transport { bytes_sent, .. } if bytes_sent == *sent)
    );
    done.send(()).expect("signal");
    holder.join().expect("holder");
}

#[test]
fn an_unreachable_printer_is_a_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let err = TcpTransport::connect(&format!("127.0.0.1:{port}"), Duration::from_millis(500))
        .expect_err("refused");
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
    assert_eq!(err.bytes_sent(), 0);
}

#[test]
fn drawer_kick_over_tcp_is_the_full_five_byte_command() {
    let fake = FakePrinter::start();
    let mut printer = fake.connect();
    printer.open_drawer(DrawerPulse::default()).expect("kick");
    wait_for_bytes(&fake, 5);
    assert_eq!(
        decode(&fake.job_bytes()).commands,
        [Command::DrawerKick {
            pin: 0,
            on_ms: 100,
            off_ms: 200
        }]
    );
}

#[test]
fn file_transport_collects_previews_and_has_no_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("receipts.bin");
    let mut printer = ReceiptPrinter::new(FileTransport::create(&path).expect("create"), config());
    assert_eq!(
        printer.status(),
        PrinterStatus::Unknown(UnknownReason::OneWay)
    );
    let bytes = job();
    printer.deliver(&bytes).expect("first");
    printer.deliver(&bytes).expect("second");
    let written = std::fs::read(&path).expect("read");
    assert_eq!(written.len(), 2 * bytes.len());
    assert_eq!(&written[..bytes.len()], &bytes[..]);
    assert!(FileTransport::create(&dir.path().join("missing/x.bin")).is_err());
}

#[test]
fn folder_printer_writes_one_text_and_one_binary_file_per_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("recibos");
    let address: caja_hardware::device::PrinterAddress = format!("folder://{}", folder.display())
        .parse()
        .expect("address");
    let mut printer = ReceiptPrinter::new(
        address.open_with(Duration::from_secs(1), 42).expect("open"),
        config(),
    );
    assert_eq!(
        printer.status(),
        PrinterStatus::Unknown(UnknownReason::OneWay)
    );
    let bytes = job();
    printer.deliver(&bytes).expect("first");
    printer.open_drawer(DrawerPulse::default()).expect("drawer");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["000001.bin", "000001.txt", "000002.bin", "000002.txt"]
    );
    assert_eq!(
        std::fs::read(folder.join("000001.bin")).expect("bin"),
        bytes
    );
    let text = std::fs::read_to_string(folder.join("000001.txt")).expect("txt");
    assert_eq!(text, decode(&bytes).paper(42));
    assert!(text.contains("[CORTE]"), "{text}");
    let drawer = std::fs::read_to_string(folder.join("000002.txt")).expect("txt");
    assert_eq!(drawer.trim(), "[GAVETA]");
    // A new printer on the same folder continues the numbering.
    let mut again = FolderTransport::open(&folder, 42).expect("reopen");
    again
        .write_all(&bytes, Duration::from_secs(1))
        .expect("third");
    assert!(folder.join("000003.txt").exists());
    // A folder that cannot be created is a connect error.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").expect("file");
    assert!(matches!(
        FolderTransport::open(&blocker.join("sub"), 42),
        Err(TransportError::Connect { .. })
    ));
}

#[test]
fn a_device_file_that_stops_reading_trips_the_write_deadline() {
    // A FIFO stands in for /dev/usb/lp0 with a stuck printer: its 64 KiB buffer
    // fills and nobody drains it.
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("lp0");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let mut transport = FileTransport::open_device(&fifo).expect("open");
    assert!(transport.is_bidirectional());
    let started = Instant::now();
    let err = transport
        .write_all(&vec![0u8; 1 << 20], Duration::from_millis(200))
        .expect_err("must time out");
    assert!(started.elapsed() < Duration::from_secs(2));
    match err {
        TransportError::WriteTimeout { sent, total, .. } => {
            assert!(sent > 0 && sent < total, "{sent}")
        }
        other => panic!("{other:?}"),
    }
    assert!(FileTransport::open_device(&dir.path().join("no-such-device")).is_err());
}

#[test]
fn serial_printer_over_a_pseudo_terminal() {
    use serialport::SerialPort;
    let (mut master, slave) = serialport::TTYPort::pair().expect("pty");
    let path = slave.name().expect("slave path");
    // Kept open until the end: a pty master whose slave is closed reads EIO.
    let _slave = slave;
    let bytes = job();
    let expected = bytes.len() + 5;
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        master.set_timeout(Duration::from_secs(3)).expect("timeout");
        while got.len() < expected {
            match master.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("pty read: {e}"),
            }
        }
        got
    });
    let transport = SerialTransport::open(&path, 19_200).expect("open");
    let mut printer = ReceiptPrinter::new(
        transport,
        PrinterConfig {
            check_before_print: false,
            ..config()
        },
    );
    printer.open_drawer(DrawerPulse::default()).expect("kick");
    printer.deliver(&bytes).expect("deliver");
    let got = reader.join().expect("reader");
    assert_eq!(&got[..5], &[0x1b, b'p', 0, 50, 100]);
    assert_eq!(&got[5..], &bytes[..]);
}
