//! Devices end to end: the cash drawer kick in a cash sale's receipt job (a
//! fake network printer on 127.0.0.1), the folder printer, the virtual scale on
//! a real pseudo-terminal driving `caja-node sell --weigh` through the binary,
//! and the running node (`caja-node run`) printing queued receipts.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caja_hardware::decode::{decode, Command as Esc};
use caja_hardware::printer::PrinterConfig;
use caja_hardware::status::{answers_for, Problems};
use caja_node::journal::Journal;
use caja_node::print::{self, PrinterSettings};
use caja_node::sale::PaymentRequest;
use caja_shared::ids::SaleId;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use common::{cash, line, sale, Fixture};

/// A network printer on 127.0.0.1: answers `DLE EOT` (always ready), records
/// every other byte.
fn fake_printer() -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&bytes);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let bytes = Arc::clone(&shared);
            std::thread::spawn(move || serve(stream, &bytes));
        }
    });
    (format!("tcp://{addr}"), bytes)
}

fn serve(mut stream: TcpStream, bytes: &Mutex<Vec<u8>>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut i = 0;
        while i < pending.len() {
            if pending[i] == 0x10 && pending.get(i + 1) == Some(&0x04) {
                let Some(&n) = pending.get(i + 2) else { break };
                let (a, b, c) = answers_for(Problems::default(), false);
                let answer = match n {
                    1 => a,
                    2 => b,
                    _ => c,
                };
                let _ = stream.write_all(&[answer]);
                i += 3;
                continue;
            }
            bytes.lock().expect("bytes").push(pending[i]);
            i += 1;
        }
        pending.drain(..i);
    }
}

/// The bytes received after `from`, once a whole job (ending with the cut,
/// `GS V`) is there.
fn job_after(bytes: &Mutex<Vec<u8>>, from: usize) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let all = bytes.lock().expect("bytes").clone();
        let tail = all.get(from..).unwrap_or_default().to_vec();
        if let Some(cut) = tail.windows(2).position(|w| w == [0x1d, 0x56]) {
            // The cut's parameter bytes follow.
            if tail.len() >= cut + 3 {
                return tail;
            }
        }
        assert!(Instant::now() < deadline, "no whole job after byte {from}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kicks(bytes: &[u8]) -> usize {
    decode(bytes)
        .commands
        .iter()
        .filter(|c| matches!(c, Esc::DrawerKick { pin: 0, .. }))
        .count()
}

fn tcp_printer(address: &str) -> PrinterSettings {
    let mut p = PrinterSettings::new(address.parse().expect("address"));
    p.config = PrinterConfig {
        write_timeout: Duration::from_secs(2),
        status_timeout: Duration::from_millis(500),
        check_before_print: true,
    };
    p.connect_timeout = Duration::from_secs(2);
    p
}

fn card(amount: i64) -> PaymentRequest {
    PaymentRequest {
        method: PaymentMethod::Card,
        amount,
        reference: Some("AUTH-1".into()),
    }
}

fn sell(f: &mut Fixture, payments: Vec<PaymentRequest>) -> SaleId {
    let op = f.op();
    let req = sale(vec![line("ARROZ", 1000)], payments);
    f.register.sell(op, &req).expect("sale").sale_id
}

#[test]
fn a_cash_sale_opens_the_drawer_once_card_sales_and_copies_never() {
    let mut f = Fixture::new(41);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("shift");
    let (address, bytes) = fake_printer();
    let printer = tcp_printer(&address);

    let cash_sale = sell(&mut f, vec![cash(10_000)]);
    let run = f.register.print_pending_on(&printer).expect("print");
    assert_eq!(run.printed(), 1, "{run:?}");
    let job = job_after(&bytes, 0);
    assert_eq!(kicks(&job), 1, "cash sale: one drawer pulse");
    assert_eq!(
        &job[..5],
        &[0x1b, b'p', 0, 50, 100],
        "the pulse leads the job"
    );
    assert!(decode(&job).paper(42).contains("[GAVETA]"));

    let mut seen = bytes.lock().expect("bytes").len();
    sell(&mut f, vec![card(6_500)]);
    assert_eq!(
        f.register
            .print_pending_on(&printer)
            .expect("print")
            .printed(),
        1
    );
    let job = job_after(&bytes, seen);
    assert_eq!(kicks(&job), 0, "card sale: the drawer stays shut");
    assert!(decode(&job).paper(42).contains("Tarjeta"));

    seen = bytes.lock().expect("bytes").len();
    f.register.reprint(cash_sale).expect("reprint");
    let run = f.register.print_pending_on(&printer).expect("print");
    assert!(run.jobs[0].as_copy);
    let job = job_after(&bytes, seen);
    assert_eq!(kicks(&job), 0, "a COPIA never opens the drawer");
    assert!(decode(&job).paper(42).contains("COPIA"));

    // A cash sale whose first attempt may have printed (a crash mid-job) is
    // retried as a copy: no second pulse.
    let crashed = sell(&mut f, vec![cash(10_000)]);
    f.register
        .conn()
        .execute(
            "UPDATE print_jobs SET state = 'printing', attempts = 1, attempt_started_ms = ?1
             WHERE sale_id = ?2",
            rusqlite::params![common::START_MS, crashed.to_string()],
        )
        .expect("simulate crash");
    f.clock.set(common::START_MS + print::ATTEMPT_LEASE_MS);
    seen = bytes.lock().expect("bytes").len();
    let run = f.register.print_pending_on(&printer).expect("print");
    assert_eq!((run.recovered, run.printed()), (1, 1), "{run:?}");
    let job = job_after(&bytes, seen);
    assert_eq!(kicks(&job), 0);
    assert!(decode(&job).paper(42).contains("COPIA"));
    // In all: exactly one pulse went out, for the one original cash receipt.
    assert_eq!(kicks(&bytes.lock().expect("bytes")), 1);
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .env("CAJA_NODE_DATA_DIR", data)
        .env_remove("CAJA_NODE_PRINTER")
        .env_remove("CAJA_NODE_SCALE")
        .args(args)
        .output()
        .expect("caja-node runs")
}

/// A child process killed (by its own handle) when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `caja-node scale virtual` and returns it with the port it printed.
fn virtual_scale(protocol: &str, weight_file: &Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .args(["scale", "virtual", "--protocol", protocol, "--weight-file"])
        .arg(weight_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("virtual scale starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut port = String::new();
    BufReader::new(stdout)
        .read_line(&mut port)
        .expect("the port");
    let port = port.trim().to_owned();
    assert!(port.starts_with("/dev/"), "{port}");
    (Running(child), port)
}

/// Journal head and projection digest: equal before and after means nothing
/// changed.
fn state(f: &Fixture) -> (u64, String, i64) {
    let conn = f.register.conn();
    let head = Journal::head(conn).expect("head").seq;
    let digest = caja_node::projection::digest(conn)
        .expect("digest")
        .to_hex();
    let jobs: i64 = conn
        .query_row("SELECT count(*) FROM print_jobs", [], |r| r.get(0))
        .expect("jobs");
    (head, digest, jobs)
}

fn txt_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|d| {
            d.map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "txt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn selling_a_weighed_item_reads_the_virtual_scale_and_refuses_bad_weights() {
    let mut f = Fixture::new(42);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("shift");
    let data = f.data.root().to_path_buf();
    let weight = f.dir.path().join("peso.txt");
    let folder = f.dir.path().join("recibos");
    std::fs::write(&weight, "1250\n").expect("weight");
    let (_scale, port) = virtual_scale("toledo", &weight);

    // No scale configured: refused in Spanish, nothing sold.
    let before = state(&f);
    let out = cli(
        &data,
        &["sell", "--weigh", "2000000000017", "--cash", "500"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No hay balanza configurada"));
    assert_eq!(state(&f), before);

    std::fs::write(
        data.join("config.toml"),
        format!(
            "scale = \"toledo://{port}\"\nscale_timeout_ms = 600\nprinter = \"folder://{}\"\n",
            folder.display()
        ),
    )
    .expect("config");

    // `scale read` and `status` show the weight.
    let out = cli(&data, &["scale", "read"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1.250 kg (estable"));
    let status = String::from_utf8(cli(&data, &["status"]).stdout).expect("utf8");
    assert!(
        status.contains(&format!("Balanza: toledo://{port}")),
        "{status}"
    );
    assert!(status.contains("1.250 kg"), "{status}");

    // A stable 1.250 kg of cheese at RD$ 380.00/kg: RD$ 475.00, receipt in the
    // folder with the weight and the drawer pulse.
    let out = cli(
        &data,
        &[
            "--json",
            "sell",
            "--weigh",
            "2000000000017",
            "--item",
            "ARROZ",
            "--cash",
            "600",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sold: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(sold["total"], serde_json::json!(47_500 + 6_500));
    let receipts = txt_files(&folder);
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    let paper = std::fs::read_to_string(&receipts[0]).expect("receipt");
    assert!(paper.contains("1.250 kg x RD$ 380.00"), "{paper}");
    assert!(paper.contains("[GAVETA]"), "cash opens the drawer: {paper}");
    assert!(receipts[0].with_extension("bin").exists());

    // Every uncertified reading refuses the sale, plainly, and changes nothing.
    let before = state(&f);
    for (text, says) in [
        ("motion 1250", "Peso inestable"),
        ("20000", "Sobrecarga"),
        ("-30", "bajo cero"),
        ("0", "No hay peso"),
        ("silent", "no responde"),
    ] {
        std::fs::write(&weight, text).expect("weight");
        std::thread::sleep(Duration::from_millis(150));
        let out = cli(
            &data,
            &["sell", "--weigh", "2000000000017", "--cash", "600"],
        );
        assert_eq!(out.status.code(), Some(3), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{text}: {err}");
        assert!(err.contains("La venta no se hizo"), "{err}");
        assert_eq!(state(&f), before, "{text}: state unchanged");
        let read = cli(&data, &["scale", "read"]);
        assert_eq!(read.status.code(), Some(3), "{text}");
    }
    // A piece item cannot be weighed; an unknown code neither.
    std::fs::write(&weight, "1000").expect("weight");
    let out = cli(&data, &["sell", "--weigh", "ARROZ", "--cash", "600"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("por unidad"));
    let out = cli(&data, &["sell", "--weigh", "NO-SUCH", "--cash", "600"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(state(&f), before);
    assert_eq!(txt_files(&folder).len(), 1, "no receipt for refused sales");

    // A card sale's receipt: no drawer pulse.
    let out = cli(
        &data,
        &[
            "sell",
            "--item",
            "ARROZ",
            "--card",
            "65",
            "--card-ref",
            "A1",
        ],
    );
    assert!(out.status.success());
    let receipts = txt_files(&folder);
    assert_eq!(receipts.len(), 2);
    let paper = std::fs::read_to_string(&receipts[1]).expect("receipt");
    assert!(!paper.contains("[GAVETA]"), "{paper}");
}

#[test]
fn a_cas_virtual_scale_weighs_too() {
    let mut f = Fixture::new(43);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("shift");
    let data = f.data.root().to_path_buf();
    let weight = f.dir.path().join("peso.txt");
    std::fs::write(&weight, "455").expect("weight");
    let (_scale, port) = virtual_scale("cas", &weight);
    std::fs::write(
        data.join("config.toml"),
        format!("scale = \"cas://{port}\"\nscale_timeout_ms = 600\n"),
    )
    .expect("config");
    let out = cli(
        &data,
        &[
            "--json",
            "sell",
            "--weigh",
            "2000000000017",
            "--cash",
            "200",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sold: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    // 0.455 kg x RD$ 380.00 = RD$ 172.90.
    assert_eq!(sold["total"], serde_json::json!(17_290));
}

#[test]
fn the_running_node_prints_queued_receipts_without_a_hub() {
    let mut f = Fixture::new(44);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("shift");
    let sold = sell(&mut f, vec![cash(10_000)]);
    let data = f.data.root().to_path_buf();
    let folder = f.dir.path().join("recibos");
    // A hub nobody answers: sync keeps failing, printing goes on.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hub = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    std::fs::write(
        data.join("config.toml"),
        format!(
            "hub_url = \"{hub}\"\nprinter = \"folder://{}\"\nreceipt_width = 80\n",
            folder.display()
        ),
    )
    .expect("config");
    let _node = Running(
        Command::new(env!("CARGO_BIN_EXE_caja-node"))
            .env("CAJA_NODE_DATA_DIR", &data)
            .env_remove("CAJA_NODE_PRINTER")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caja-node run"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while txt_files(&folder).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the running node printed nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A sale made while the node runs is printed by it too.
    let second = sell(&mut f, vec![card(6_500)]);
    while txt_files(&folder).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the second receipt was not printed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let files = txt_files(&folder);
    let first = std::fs::read_to_string(&files[0]).expect("receipt");
    assert!(first.contains("Arroz Selecto 1kg"), "{first}");
    assert!(first.contains("[GAVETA]"), "{first}");
    // The file is written before the job is marked printed (in its own
    // transaction): wait for the mark.
    for id in [sold, second] {
        loop {
            let jobs = print::jobs_of_sale(f.register.conn(), id).expect("jobs");
            if jobs[0].state == caja_hardware::queue::JobState::Printed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job of {id} not marked printed: {:?}",
                jobs[0].state
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_printer_loop_backs_off_from_an_unreachable_printer_then_prints_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut f = Fixture::new(45);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("shift");
    let sold = sell(&mut f, vec![cash(10_000)]);
    // A printer port nobody listens on yet.
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    std::fs::write(
        f.data.root().join("config.toml"),
        format!("printer = \"tcp://{addr}\"\n"),
    )
    .expect("config");
    let mut printing = caja_node::register::Register::open(
        &f.data,
        f.clock.clone(),
        caja_shared::entropy::SeededRandom::new(9),
    )
    .expect("second handle");
    let stop = AtomicBool::new(false);
    let runs = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            caja_node::devices::print_loop(&mut printing, &stop, Duration::from_millis(20), |r| {
                runs.lock()
                    .expect("runs")
                    .push(r.as_ref().map(|r| r.printed()).map_err(|e| e.to_string()));
            });
        });
        // Many polls while the clock stands still: one attempt, then the job
        // waits out its backoff instead of hammering the printer.
        std::thread::sleep(Duration::from_millis(400));
        let job = print::jobs_of_sale(f.register.conn(), sold)
            .expect("jobs")
            .remove(0);
        assert_eq!(job.state, caja_hardware::queue::JobState::Pending);
        assert_eq!(job.attempts, 1, "backoff respected: {job:?}");
        assert_eq!(job.transport_failures, 1);
        assert!(job.not_before_ms > common::START_MS);

        // The printer comes up on that port, the backoff passes: printed once.
        let listener = TcpListener::bind(addr).expect("rebind the printer port");
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let bytes = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &bytes));
            }
        });
        f.clock.set(job.not_before_ms);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let job = print::jobs_of_sale(f.register.conn(), sold)
                .expect("jobs")
                .remove(0);
            if job.state == caja_hardware::queue::JobState::Printed {
                assert_eq!(job.attempts, 2);
                break;
            }
            assert!(Instant::now() < deadline, "never printed: {job:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let job = job_after(&received, 0);
        assert_eq!(kicks(&job), 1);
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
    });
    let runs = runs.into_inner().expect("runs");
    assert_eq!(
        runs.iter().filter(|r| matches!(r, Ok(1))).count(),
        1,
        "printed in exactly one run: {runs:?}"
    );
}
