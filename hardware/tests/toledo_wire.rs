//! The Toledo 8217 reader against an emulator written here, independently of the
//! crate's simulator, to the public wire contract that 8217-mode scales and
//! Odoo's Toledo driver follow (`docs/hardware.md`): `W` → `STX weight [N] CR`
//! or `STX ? s CR` with the status bits as real scales set them (no bit forced
//! on), `E text` → `STX E CR text` until `F`, and `STX ? 0x40 CR` (bad command)
//! for a command the scale does not know. Each test runs over a real
//! pseudo-terminal.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use caja_hardware::messages::scale as msg;
use caja_hardware::scale::reader::{ScaleConfig, ScaleError, ScaleReader};
use caja_hardware::scale::{Protocol, WeighError};
use caja_shared::money::QtyMilli;
use serialport::{SerialPort, TTYPort};

/// What the emulated scale shows.
#[derive(Debug, Clone, Copy)]
enum Shows {
    /// A valid weight in grams; `net` when a tare is set.
    Weight { grams: u32, net: bool },
    /// No valid weight: this status byte.
    Status(u8),
    /// Never answers a weight request.
    Mute,
}

struct Emulator {
    shows: Arc<Mutex<Shows>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: String,
}

impl Emulator {
    fn start(shows: Shows) -> Emulator {
        let (mut master, slave) = TTYPort::pair().expect("pty pair");
        let path = slave.name().expect("slave path");
        master
            .set_timeout(Duration::from_millis(20))
            .expect("timeout");
        let shows = Arc::new(Mutex::new(shows));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shows = Arc::clone(&shows);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let _slave = slave;
                let mut echo = false;
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::SeqCst) {
                    let n = match master.read(&mut buf) {
                        Ok(n) => n,
                        Err(_) => continue,
                    };
                    for &b in &buf[..n] {
                        let reply: Vec<u8> = if echo {
                            if b == b'F' {
                                echo = false;
                                Vec::new()
                            } else {
                                vec![b]
                            }
                        } else {
                            match b {
                                b'E' => {
                                    echo = true;
                                    b"\x02E\r".to_vec()
                                }
                                b'W' => answer(*shows.lock().unwrap()),
                                // Zero, tare, clear: accepted silently.
                                b'Z' | b'T' | b'C' => Vec::new(),
                                _ => vec![0x02, b'?', 0x40, 0x0D],
                            }
                        };
                        // Even parity on every byte, as a 7E1 line carries it.
                        let wire: Vec<u8> = reply.iter().map(|&c| with_even_parity(c)).collect();
                        if master.write_all(&wire).is_err() {
                            return;
                        }
                    }
                }
            })
        };
        Emulator {
            shows,
            stop,
            thread: Some(thread),
            path,
        }
    }

    fn set(&self, shows: Shows) {
        *self.shows.lock().unwrap() = shows;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn with_even_parity(c: u8) -> u8 {
    if c.count_ones() % 2 == 1 {
        c | 0x80
    } else {
        c
    }
}

fn answer(shows: Shows) -> Vec<u8> {
    match shows {
        Shows::Weight { grams, net } => {
            let mut out = vec![0x02];
            out.extend(format!("{:02}.{:03}", grams / 1000, grams % 1000).bytes());
            if net {
                out.push(b'N');
            }
            out.push(0x0D);
            out
        }
        Shows::Status(s) => vec![0x02, b'?', s, 0x0D],
        Shows::Mute => Vec::new(),
    }
}

fn reader(emu: &Emulator) -> ScaleReader {
    let config = ScaleConfig {
        answer_timeout: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        ..ScaleConfig::new(Protocol::Toledo8217)
    };
    ScaleReader::open(&emu.path, None, config).expect("open the pty as a serial port")
}

#[test]
fn every_status_byte_gets_its_own_sentence_and_none_is_unreadable() {
    let emu = Emulator::start(Shows::Status(0x00));
    let mut reader = reader(&emu);
    let cases: [(u8, WeighError, &str); 6] = [
        (0x02, WeighError::Overload, "Sobrecarga"),
        (0x04, WeighError::UnderZero, "Peso negativo"),
        (0x01, WeighError::Motion, "en movimiento"),
        (0x10, WeighError::AtZero, "Balanza en cero"),
        (0x40, WeighError::BadCommand, "Comando inválido"),
        // Over capacity while moving: the overload is what the cashier fixes.
        (0x03, WeighError::Overload, "Sobrecarga"),
    ];
    let mut sentences = Vec::new();
    for (byte, expected, words) in cases {
        emu.set(Shows::Status(byte));
        match reader.read_stable(Duration::from_millis(300)) {
            Err(ScaleError::Rejected(got)) => {
                assert_eq!(got, expected, "status byte 0x{byte:02X}");
                let err = ScaleError::Rejected(got);
                assert!(err.message().contains(words), "{}", err.message());
                assert_ne!(err.message(), msg::GARBLED);
                sentences.push(err.message());
            }
            other => panic!("status byte 0x{byte:02X}: {other:?}"),
        }
    }
    sentences.sort_unstable();
    sentences.dedup();
    assert_eq!(sentences.len(), 5, "{sentences:?}");
}

#[test]
fn a_tared_net_weight_is_read_as_the_weight_sold() {
    let emu = Emulator::start(Shows::Weight {
        grams: 1250,
        net: true,
    });
    let mut reader = reader(&emu);
    assert_eq!(
        reader
            .read_stable(Duration::from_millis(1000))
            .expect("net weight"),
        QtyMilli(1250)
    );
    emu.set(Shows::Weight {
        grams: 980,
        net: false,
    });
    assert_eq!(
        reader
            .read_stable(Duration::from_millis(1000))
            .expect("gross weight"),
        QtyMilli(980)
    );
}

#[test]
fn the_echo_probe_recognises_the_scale_and_leaves_it_answering_weights() {
    let emu = Emulator::start(Shows::Weight {
        grams: 2205,
        net: false,
    });
    let mut reader = reader(&emu);
    reader.probe().expect("an 8217 scale echoes the probe");
    // After `F` the scale is out of echo mode: `W` is a weight request again.
    assert_eq!(
        reader
            .read_stable(Duration::from_millis(1000))
            .expect("weight"),
        QtyMilli(2205)
    );
    drop(reader);
    drop(emu);

    // A line with nothing answering is not a scale.
    let (_master, slave) = TTYPort::pair().expect("pty pair");
    let config = ScaleConfig {
        answer_timeout: Duration::from_millis(150),
        ..ScaleConfig::new(Protocol::Toledo8217)
    };
    let mut silent = ScaleReader::open(&slave.name().expect("path"), None, config).expect("open");
    assert!(matches!(silent.probe(), Err(ScaleError::NoAnswer { .. })));
}

#[test]
fn a_mute_scale_is_no_answer_not_unreadable() {
    let emu = Emulator::start(Shows::Mute);
    let mut reader = reader(&emu);
    assert!(matches!(
        reader.read_stable(Duration::from_millis(300)),
        Err(ScaleError::NoAnswer { .. })
    ));
}

/// The port's line settings, read the way another program would.
fn line_settings(path: &str) -> (u32, u32, u32, u32) {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
        .open(path)
        .expect("open the port");
    let t = nix::sys::termios::tcgetattr(file.as_raw_fd()).expect("tcgetattr");
    (
        t.control_flags.bits() as u32,
        t.input_flags.bits() as u32,
        t.output_flags.bits() as u32,
        t.local_flags.bits() as u32,
    )
}

#[test]
fn closing_the_scale_leaves_the_line_settings_as_it_found_them() {
    let emu = Emulator::start(Shows::Weight {
        grams: 1250,
        net: false,
    });
    // Another program left the line at 19200 8N1.
    let other = serialport::new(&emu.path, 19_200)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .open_native()
        .expect("another program opens the port");
    drop(other);
    let found = line_settings(&emu.path);

    let mut reader = reader(&emu);
    assert_eq!(
        reader
            .read_stable(Duration::from_millis(1000))
            .expect("weight"),
        QtyMilli(1250)
    );
    drop(reader);
    assert_eq!(line_settings(&emu.path), found);
}
