//! Selling by weight through the real `caja-node` binary against a Toledo 8217
//! scale emulated here on a real pseudo-terminal, to the public wire contract
//! 8217-mode scales and Odoo's driver follow (`docs/hardware.md`): `W` →
//! `STX 01.250N CR` for a tared (net) weight, `STX ? s CR` with the status bits
//! as real scales set them. A tared weight sells at its net; every status is
//! its own sentence; none is "ilegibles"; a refusal changes nothing.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caja_node::journal::Journal;
use caja_shared::money::Money;
use common::Fixture;
use serialport::{SerialPort, TTYPort};

/// What the scale answers to `W`: these bytes between `STX` and `CR`.
struct Scale {
    record: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    path: String,
}

impl Scale {
    fn start(record: &[u8]) -> Scale {
        let (mut master, slave) = TTYPort::pair().expect("pty pair");
        let path = slave.name().expect("slave path");
        master
            .set_timeout(Duration::from_millis(20))
            .expect("timeout");
        let shared = Arc::new(Mutex::new(record.to_vec()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&shared), Arc::clone(&stop));
        std::thread::spawn(move || {
            let _slave = slave;
            let mut buf = [0u8; 32];
            let mut echo = false;
            while !s.load(Ordering::SeqCst) {
                let Ok(n) = master.read(&mut buf) else {
                    continue;
                };
                for &b in &buf[..n] {
                    let b = b & 0x7F;
                    // `E` … `F`: echo mode, each byte sent back.
                    if echo {
                        echo = b != b'F';
                        if echo && master.write_all(&[b]).is_err() {
                            return;
                        }
                        continue;
                    }
                    if b == b'E' {
                        echo = true;
                        if master.write_all(b"\x02E\r").is_err() {
                            return;
                        }
                        continue;
                    }
                    // An empty record: the scale ignores weight requests.
                    if b == b'W' && !r.lock().unwrap().is_empty() {
                        let mut out = vec![0x02];
                        out.extend_from_slice(&r.lock().unwrap());
                        out.push(0x0D);
                        if master.write_all(&out).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Scale {
            record: shared,
            stop,
            path,
        }
    }

    fn set(&self, record: &[u8]) {
        *self.record.lock().unwrap() = record.to_vec();
    }
}

impl Drop for Scale {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn cli(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .env("CAJA_NODE_DATA_DIR", data)
        .env_remove("CAJA_NODE_PRINTER")
        .args(args)
        .output()
        .expect("caja-node runs")
}

fn head(f: &Fixture) -> u64 {
    Journal::head(f.register.conn()).expect("head").seq
}

#[test]
fn a_tared_weight_sells_at_its_net_and_each_status_has_its_own_sentence() {
    let mut f = Fixture::new(51);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("shift");
    let data = f.data.root().to_path_buf();
    let scale = Scale::start(b"01.250N");
    std::fs::write(
        data.join("config.toml"),
        format!(
            "scale = \"toledo://{}\"\nscale_timeout_ms = 400\n",
            scale.path
        ),
    )
    .expect("config");

    // 1.250 kg net of the container, cheese at RD$ 380.00/kg: RD$ 475.00.
    let out = cli(
        &data,
        &[
            "--json",
            "sell",
            "--weigh",
            "2000000000017",
            "--cash",
            "500",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sold: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(sold["total"], serde_json::json!(47_500));

    let before = head(&f);
    let cases: [(u8, &str); 5] = [
        (0x02, "Sobrecarga"),
        (0x04, "Peso negativo"),
        (0x01, "en movimiento"),
        (0x10, "Balanza en cero"),
        (0x40, "Comando inválido"),
    ];
    let mut seen = Vec::new();
    for (byte, says) in cases {
        scale.set(&[b'?', byte]);
        let out = cli(
            &data,
            &["sell", "--weigh", "2000000000017", "--cash", "500"],
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(3), "0x{byte:02X}: {err}");
        assert!(err.contains(says), "0x{byte:02X}: {err}");
        assert!(!err.contains("ilegibles"), "0x{byte:02X}: {err}");
        assert_eq!(head(&f), before, "0x{byte:02X}: nothing sold");
        seen.push(err);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), cases.len(), "{seen:?}");
}

#[test]
fn a_scale_that_echoes_but_sends_no_weight_is_told_apart_from_a_dead_line() {
    let f = Fixture::new(52);
    let data = f.data.root().to_path_buf();
    let scale = Scale::start(b"");
    std::fs::write(
        data.join("config.toml"),
        format!(
            "scale = \"toledo://{}\"\nscale_timeout_ms = 400\n",
            scale.path
        ),
    )
    .expect("config");
    let out = cli(&data, &["scale", "read"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("no responde"), "{said}");
    assert!(said.contains("prueba de eco"), "{said}");

    // Once it answers, the same command reads the weight after the probe.
    scale.set(b"00.500");
    let said = String::from_utf8_lossy(&cli(&data, &["scale", "read"]).stdout).into_owned();
    assert!(said.contains("0.500 kg"), "{said}");
}
