//! The durable print queue against real SQLite, a file printer and a fake
//! network printer on 127.0.0.1 that answers `DLE EOT` (paper out, then back).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caja_hardware::decode::decode;
use caja_hardware::device::PrinterAddress;
use caja_hardware::printer::PrinterConfig;
use caja_hardware::queue::{JobKind, JobState, PrintJob};
use caja_hardware::status::{answers_for, Problems};
use caja_node::error::{OpError, Refusal};
use caja_node::print::{self, PrinterSettings};
use caja_shared::ids::SaleId;
use common::{cash, line, sale, Fixture};

/// Sells rice and weighed cheese for cash; returns the sale.
fn sell(f: &mut Fixture) -> SaleId {
    let op = f.op();
    f.register
        .open_shift(op, "ana", caja_shared::money::Money(0))
        .ok();
    let op = f.op();
    f.register
        .sell(
            op,
            &sale(
                vec![line("ARROZ", 2000), line("2000000000017", 1250)],
                vec![cash(100_000)],
            ),
        )
        .expect("sale")
        .sale_id
}

fn jobs(f: &Fixture, sale: SaleId) -> Vec<PrintJob> {
    print::jobs_of_sale(f.register.conn(), sale).expect("jobs")
}

fn file_printer(path: &Path) -> PrinterSettings {
    PrinterSettings::new(PrinterAddress::File {
        path: path.to_path_buf(),
    })
}

fn paper(bytes: &[u8]) -> String {
    decode(bytes).paper(42)
}

#[test]
fn a_sale_queues_exactly_one_original_in_its_transaction() {
    let mut f = Fixture::new(1);
    let id = sell(&mut f);
    let queued = jobs(&f, id);
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].kind, JobKind::Original);
    assert_eq!(queued[0].state, JobState::Pending);
    assert_eq!(queued[0].created_ms, common::START_MS);

    // An invalid sale (unknown product, short payment) queues nothing.
    let before: i64 = f
        .register
        .conn()
        .query_row("SELECT count(*) FROM print_jobs", [], |r| r.get(0))
        .expect("count");
    for bad in [
        sale(vec![line("NO-SUCH", 1000)], vec![cash(100)]),
        sale(vec![line("ARROZ", 1000)], vec![cash(1)]),
    ] {
        let op = f.op();
        assert!(f.register.sell(op, &bad).is_err());
    }
    // A retried op id answers the first result and queues nothing more.
    let op = f.op();
    let req = sale(vec![line("ARROZ", 1000)], vec![cash(10_000)]);
    let first = f.register.sell(op, &req).expect("sale");
    let again = f.register.sell(op, &req).expect("retry");
    assert_eq!(first, again);
    let after: i64 = f
        .register
        .conn()
        .query_row("SELECT count(*) FROM print_jobs", [], |r| r.get(0))
        .expect("count");
    assert_eq!(after, before + 1);

    // The database itself refuses a second original.
    let dup = f.register.conn().execute(
        "INSERT INTO print_jobs (sale_id, kind, state, next_attempt_ms, created_ms)
         VALUES (?1, 'original', 'pending', 0, 0)",
        [id.to_string()],
    );
    assert!(
        dup.is_err(),
        "a second original must violate the unique index"
    );

    let status = f.register.status().expect("status");
    assert_eq!(status.print.pending, 2);
    let text = caja_node::messages::status(&status);
    assert!(text.contains("Recibos en cola: 2"), "{text}");
    assert!(text.contains("Impresora: no configurada"), "{text}");
}

#[test]
fn a_file_printer_gets_the_receipt_with_the_sale_lines() {
    let mut f = Fixture::new(2);
    let id = sell(&mut f);
    let out = f.dir.path().join("printer.bin");
    let run = f
        .register
        .print_pending_on(&file_printer(&out))
        .expect("print");
    assert_eq!(run.printed(), 1, "{run:?}");
    let text = paper(&std::fs::read(&out).expect("printed bytes"));
    assert!(text.contains("Arroz Selecto 1kg"), "{text}");
    assert!(text.contains("Queso de freír"), "{text}");
    assert!(text.contains("1.250 kg"), "weighed line: {text}");
    assert!(!text.contains("COPIA"), "{text}");
    assert_eq!(jobs(&f, id)[0].state, JobState::Printed);
    // Nothing left: a second run prints nothing.
    let again = f
        .register
        .print_pending_on(&file_printer(&out))
        .expect("print");
    assert!(again.jobs.is_empty());
    // `receipt show` is the same paper.
    let shown = f.register.receipt_text(id).expect("show");
    assert!(shown.contains("Arroz Selecto 1kg"), "{shown}");
    assert!(
        text.contains(shown.trim_end()),
        "show:\n{shown}\nprinted:\n{text}"
    );
}

/// A fake network printer: answers `DLE EOT n` from `problems`, records the rest.
#[derive(Default)]
struct FakeState {
    problems: Problems,
    job_bytes: Vec<u8>,
    status_requests: usize,
    /// Real-time drawer pulses (`DLE DC4 1 m t`), executed apart from the job.
    pulses: usize,
}

fn fake_printer() -> (String, Arc<Mutex<FakeState>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(Mutex::new(FakeState::default()));
    let shared = state.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let state = shared.clone();
            std::thread::spawn(move || serve(stream, &state));
        }
    });
    (format!("tcp://{addr}"), state)
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
        let mut i = 0;
        while i < pending.len() {
            // Status requests arrive alone, before a job (the printer asks first).
            if pending[i] == 0x10 && pending.get(i + 1) == Some(&0x04) {
                let Some(&n) = pending.get(i + 2) else { break };
                let answer = {
                    let mut s = state.lock().expect("state");
                    s.status_requests += 1;
                    let (a, b, c) = answers_for(s.problems, false);
                    match n {
                        1 => a,
                        2 => b,
                        _ => c,
                    }
                };
                let _ = stream.write_all(&[answer]);
                i += 3;
                continue;
            }
            if pending[i] == 0x10 && pending.get(i + 1) == Some(&0x14) {
                if pending.len() < i + 5 {
                    break;
                }
                state.lock().expect("state").pulses += 1;
                i += 5;
                continue;
            }
            state.lock().expect("state").job_bytes.push(pending[i]);
            i += 1;
        }
        pending.drain(..i);
    }
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

#[test]
fn paper_out_keeps_the_job_then_it_prints_exactly_once() {
    let mut f = Fixture::new(3);
    let id = sell(&mut f);
    let (address, state) = fake_printer();
    state.lock().expect("state").problems.paper_out = true;
    let printer = tcp_printer(&address);

    let run = f.register.print_pending_on(&printer).expect("print");
    assert_eq!(run.printed(), 0);
    assert!(
        run.first_error().is_some_and(|e| e.contains("papel")),
        "{run:?}"
    );
    let job = jobs(&f, id).remove(0);
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.attempts, 1);
    assert!(
        !job.may_have_printed,
        "nothing was sent to a printer without paper"
    );
    assert!(job.not_before_ms > common::START_MS, "backoff");
    assert!(state.lock().expect("state").job_bytes.is_empty());
    // A cash sale: the drawer opened with the real-time pulse, apart from the job.
    assert_eq!(state.lock().expect("state").pulses, 1);
    let status = f.register.status().expect("status");
    assert_eq!(status.print.pending, 1);
    assert!(caja_node::messages::status(&status).contains("sin papel"));

    // Still in its backoff: not tried again.
    let run = f.register.print_pending_on(&printer).expect("print");
    assert!(run.jobs.is_empty());

    // Paper back, backoff over: printed once, as the original.
    state.lock().expect("state").problems.paper_out = false;
    f.clock.set(job.not_before_ms);
    let run = f.register.print_pending_on(&printer).expect("print");
    assert_eq!(run.printed(), 1, "{run:?}");
    assert!(!run.jobs[0].as_copy);
    let job = jobs(&f, id).remove(0);
    assert_eq!(job.state, JobState::Printed);
    assert_eq!(job.attempts, 2);

    // Later runs print nothing more.
    f.clock.set(job.not_before_ms + 3_600_000);
    assert!(f
        .register
        .print_pending_on(&printer)
        .expect("print")
        .jobs
        .is_empty());
    let bytes = wait_for_bytes(&state);
    let text = paper(&bytes);
    assert_eq!(text.matches("Arroz Selecto 1kg").count(), 1, "{text}");
    assert!(!text.contains("COPIA"), "{text}");
    assert_eq!(f.register.status().expect("status").print.pending, 0);
}

/// The job's bytes, once the fake printer has them all (it ends with the cut).
fn wait_for_bytes(state: &Mutex<FakeState>) -> Vec<u8> {
    for _ in 0..200 {
        let bytes = state.lock().expect("state").job_bytes.clone();
        // `GS V`: the cut ends the job.
        if bytes.windows(2).any(|w| w == [0x1d, 0x56]) {
            std::thread::sleep(Duration::from_millis(50));
            return state.lock().expect("state").job_bytes.clone();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    state.lock().expect("state").job_bytes.clone()
}

#[test]
fn an_unreachable_printer_keeps_the_job_queued() {
    let mut f = Fixture::new(4);
    let id = sell(&mut f);
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("tcp://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let run = f
        .register
        .print_pending_on(&tcp_printer(&address))
        .expect("print");
    assert_eq!(run.printed(), 0);
    let job = jobs(&f, id).remove(0);
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.transport_failures, 1);
    assert!(!job.may_have_printed);
    assert!(job.last_error.is_some());
}

#[test]
fn a_reprint_says_copia_and_the_original_never_prints_twice() {
    let mut f = Fixture::new(5);
    let id = sell(&mut f);
    let out = f.dir.path().join("printer.bin");
    let printer = file_printer(&out);
    assert_eq!(
        f.register
            .print_pending_on(&printer)
            .expect("print")
            .printed(),
        1
    );
    let original = std::fs::read(&out).expect("bytes");
    assert!(!paper(&original).contains("COPIA"));

    let copy = f.register.reprint(id).expect("reprint");
    let run = f.register.print_pending_on(&printer).expect("print");
    assert_eq!(run.printed(), 1);
    assert_eq!(run.jobs[0].job, copy);
    assert!(run.jobs[0].as_copy);
    let all = std::fs::read(&out).expect("bytes");
    let copy_text = paper(&all[original.len()..]);
    assert!(copy_text.contains("COPIA"), "{copy_text}");
    assert!(copy_text.contains("Arroz Selecto 1kg"), "{copy_text}");

    let kinds: Vec<(JobKind, JobState)> = jobs(&f, id).iter().map(|j| (j.kind, j.state)).collect();
    assert_eq!(
        kinds,
        vec![
            (JobKind::Original, JobState::Printed),
            (JobKind::Copy, JobState::Printed)
        ]
    );
    // Nothing is printed again, and an unknown sale cannot be reprinted.
    assert!(f
        .register
        .print_pending_on(&printer)
        .expect("print")
        .jobs
        .is_empty());
    let unknown: SaleId = "01935f4e-8a00-7000-8000-00000000dead".parse().expect("id");
    assert!(matches!(
        f.register.reprint(unknown),
        Err(OpError::Refused(Refusal::UnknownSale(_)))
    ));
}

#[test]
fn an_interrupted_attempt_is_retried_as_a_copy() {
    let mut f = Fixture::new(6);
    let id = sell(&mut f);
    // A crash after the job was claimed, before it was marked printed.
    f.register
        .conn()
        .execute(
            "UPDATE print_jobs SET state = 'printing', attempts = 1, attempt_started_ms = ?1",
            [common::START_MS],
        )
        .expect("simulate crash");
    let out = f.dir.path().join("printer.bin");
    // Within the lease the attempt may still be running elsewhere: left alone.
    let run = f
        .register
        .print_pending_on(&file_printer(&out))
        .expect("print");
    assert!(run.jobs.is_empty());
    f.clock.set(common::START_MS + print::ATTEMPT_LEASE_MS);
    let run = f
        .register
        .print_pending_on(&file_printer(&out))
        .expect("print");
    assert_eq!(run.recovered, 1);
    assert_eq!(run.printed(), 1);
    assert!(
        run.jobs[0].as_copy,
        "may have printed: never a second original"
    );
    assert!(paper(&std::fs::read(&out).expect("bytes")).contains("COPIA"));
    assert_eq!(jobs(&f, id)[0].kind, JobKind::Original);
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .env("CAJA_NODE_DATA_DIR", data)
        .env_remove("CAJA_NODE_PRINTER")
        .args(args)
        .output()
        .expect("caja-node runs")
}

#[test]
fn the_cli_shows_reprints_and_prints_receipts() {
    let mut f = Fixture::new(7);
    let id = sell(&mut f);
    let data = f.data.root().to_path_buf();
    let sale = id.to_string();

    let out = cli(&data, &["receipt", "show", "--sale", &sale]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("Arroz Selecto 1kg"), "{text}");
    assert!(text.contains("Queso de freír"), "{text}");
    assert!(text.contains("Tienda"), "default store name: {text}");

    // No printer configured: `print` is refused, in Spanish.
    let out = cli(&data, &["print"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("impresora"));

    // With a file printer in config.toml: print, reprint, status.
    let printed = f.dir.path().join("out.bin");
    std::fs::write(
        data.join("config.toml"),
        format!(
            "store_name = \"Colmado Ñoño\"\nstore_rnc = \"1-01-12345-6\"\nprinter = \"file://{}\"\n",
            printed.display()
        ),
    )
    .expect("config");
    let out = cli(&data, &["print"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("impreso"));
    let text = paper(&std::fs::read(&printed).expect("bytes"));
    assert!(text.contains("Colmado Ñoño"), "{text}");
    assert!(text.contains("Arroz Selecto 1kg"), "{text}");

    let out = cli(&data, &["receipt", "reprint", "--sale", &sale]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(paper(&std::fs::read(&printed).expect("bytes")).contains("COPIA"));

    // A sale through the CLI prints its receipt after commit.
    let out = cli(&data, &["sell", "--item", "ARROZ", "--cash", "65"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&data, &["status"]);
    let status = String::from_utf8(out.stdout).expect("utf8");
    assert!(status.contains("Recibos en cola: 0"), "{status}");
    assert!(
        status.contains(&format!("Impresora: file://{}", printed.display())),
        "{status}"
    );
    assert!(status.contains("Balanza: no configurada"), "{status}");
    let text = paper(&std::fs::read(&printed).expect("bytes"));
    assert_eq!(text.matches("Arroz Selecto 1kg").count(), 3, "{text}");

    // A printer that cannot be reached: the sale still succeeds (exit 0) with a
    // warning, and its receipt stays queued.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("tcp://{}", closed.local_addr().expect("addr"));
    drop(closed);
    std::fs::write(
        data.join("config.toml"),
        format!("printer = \"{address}\"\n"),
    )
    .expect("config");
    let out = cli(&data, &["sell", "--item", "ARROZ", "--cash", "65"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Aviso"));
    let status = String::from_utf8(cli(&data, &["status"]).stdout).expect("utf8");
    assert!(status.contains("Recibos en cola: 1"), "{status}");

    // A bad sale id is refused; an unknown one too.
    assert_eq!(
        cli(&data, &["receipt", "show", "--sale", "x"])
            .status
            .code(),
        Some(2)
    );
    let out = cli(
        &data,
        &[
            "receipt",
            "show",
            "--sale",
            "01935f4e-8a00-7000-8000-00000000dead",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
}
