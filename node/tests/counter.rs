//! The register at the counter against a network receipt printer emulated here,
//! independently of the hardware crate, to the public ESC/POS contract (Epson
//! ESC/POS reference): `DLE EOT 1/2/4` answered with the status bytes a
//! printer sets (`0xx1xx10`: offline, cover open, paper end stop, paper near
//! end and end), `DLE DC4 1 m t` executed at once even while the printer cannot
//! print, everything else taken as the job. Real TCP, the real `caja-node`
//! binary. A refilled printer prints at once with one `caja-node print`; a cash
//! sale with no paper opens the drawer once; an unreachable printer is said so
//! and the manual opening is recorded. A return prints its slip through the
//! same queue (a cash refund kicks the drawer once; a slip waiting for paper
//! prints with one `caja-node print`).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Fixture;

#[derive(Default)]
struct Printer {
    paper_out: bool,
    cover_open: bool,
    near_end: bool,
    /// Bytes received as job data.
    job: Vec<u8>,
    /// `DLE DC4 1 m t` received.
    pulses: usize,
}

impl Printer {
    /// The answer to `DLE EOT n`, as an Epson printer sets the bits.
    fn status(&self, n: u8) -> u8 {
        const FIXED: u8 = 0x12;
        let offline = self.paper_out || self.cover_open;
        match n {
            1 => FIXED | if offline { 0x08 } else { 0 },
            2 => {
                FIXED
                    | if self.cover_open { 0x04 } else { 0 }
                    | if self.paper_out { 0x20 } else { 0 }
            }
            _ => {
                FIXED
                    | if self.near_end || self.paper_out {
                        0x0C
                    } else {
                        0
                    }
                    | if self.paper_out { 0x60 } else { 0 }
            }
        }
    }

    /// Receipts received (each ends with the cut, `GS V`).
    fn receipts(&self) -> usize {
        self.job.windows(2).filter(|w| w == &[0x1D, 0x56]).count()
    }

    /// Drawer kicks inside the job data (`ESC p`).
    fn kicks(&self) -> usize {
        self.job.windows(2).filter(|w| w == &[0x1B, b'p']).count()
    }
}

fn emulator() -> (String, Arc<Mutex<Printer>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(Mutex::new(Printer::default()));
    let shared = Arc::clone(&state);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let state = Arc::clone(&shared);
            std::thread::spawn(move || serve(stream, &state));
        }
    });
    (format!("tcp://{addr}"), state)
}

fn serve(mut stream: impl Read + Write, state: &Mutex<Printer>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            // A pty master polled with a timeout: nothing yet.
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut i = 0;
        while i < pending.len() {
            if pending[i] == 0x10 {
                match pending.get(i + 1) {
                    None => break,
                    Some(0x04) => {
                        let Some(&n) = pending.get(i + 2) else { break };
                        let answer = state.lock().unwrap().status(n);
                        let _ = stream.write_all(&[answer]);
                        i += 3;
                        continue;
                    }
                    Some(0x14) => {
                        if pending.len() < i + 5 {
                            break;
                        }
                        if pending[i + 2] == 1 {
                            state.lock().unwrap().pulses += 1;
                        }
                        i += 5;
                        continue;
                    }
                    Some(_) => {}
                }
            }
            state.lock().unwrap().job.push(pending[i]);
            i += 1;
        }
        pending.drain(..i);
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

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A register with an open shift and `printer` configured.
fn register(seed: u64, printer: &str) -> Fixture {
    let mut f = Fixture::new(seed);
    let op = f.op();
    f.register
        .open_shift(op, "ana", caja_shared::money::Money(0))
        .expect("shift");
    std::fs::write(
        f.data.root().join("config.toml"),
        format!("printer = \"{printer}\"\n"),
    )
    .expect("config");
    f
}

/// Sells one rice through the CLI; returns the sale id and what it said.
fn sell(data: &Path, pay: &[&str]) -> (String, String) {
    let mut args = vec!["--json", "sell", "--item", "ARROZ"];
    args.extend_from_slice(pay);
    let out = cli(data, &args);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = v["sale_id"].as_str().expect("sale_id").to_owned();
    (id, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn wait_for(state: &Mutex<Printer>, what: impl Fn(&Printer) -> bool) {
    for _ in 0..200 {
        if what(&state.lock().unwrap()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_refilled_printer_prints_every_queued_receipt_with_one_print() {
    let (address, printer) = emulator();
    let f = register(41, &address);
    let data = f.data.root().to_path_buf();
    printer.lock().unwrap().paper_out = true;

    // Two sales while the paper is out: both receipts queued, the first one
    // tried and in its backoff, the second not tried.
    sell(&data, &["--card", "65", "--card-ref", "123456"]);
    sell(&data, &["--card", "65", "--card-ref", "123457"]);
    let out = cli(&data, &["print"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("Queda en cola"), "{said}");
    assert!(said.contains("Quedan en cola 1 recibo(s) más"), "{said}");
    assert_eq!(printer.lock().unwrap().receipts(), 0);

    // The paper is refilled and the cashier presses print, once, at once.
    printer.lock().unwrap().paper_out = false;
    let out = cli(&data, &["print"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert_eq!(said.matches("impreso").count(), 2, "{said}");
    assert!(!said.contains("Queda"), "{said}");
    wait_for(&printer, |p| p.receipts() == 2);
    assert_eq!(printer.lock().unwrap().receipts(), 2);
    let status = text(&cli(&data, &["status"]));
    assert!(status.contains("Recibos en cola: 0"), "{status}");

    // Nothing left: said so.
    let said = text(&cli(&data, &["print"]));
    assert!(said.contains("No hay recibos pendientes"), "{said}");
}

#[test]
fn a_cash_sale_with_no_paper_opens_the_drawer_once_with_the_real_time_pulse() {
    let (address, printer) = emulator();
    let f = register(42, &address);
    let data = f.data.root().to_path_buf();
    printer.lock().unwrap().paper_out = true;

    let (sale, said) = sell(&data, &["--cash", "100"]);
    assert!(said.contains("Gaveta abierta"), "{said}");
    wait_for(&printer, |p| p.pulses == 1);
    assert_eq!(printer.lock().unwrap().pulses, 1);
    // The opening is in the journal, for head office.
    let opened = drawer_events(&f);
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].sale_id.map(|s| s.to_string()), Some(sale));
    assert_eq!(opened[0].how, caja_shared::kind::DrawerHow::Pulse);

    // Printing again while the paper is still out: no second opening.
    let said = text(&cli(&data, &["print"]));
    assert!(!said.contains("Gaveta abierta"), "{said}");
    // A card sale never opens the drawer.
    let (_, said) = sell(&data, &["--card", "65", "--card-ref", "654321"]);
    assert!(!said.contains("Gaveta"), "{said}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(printer.lock().unwrap().pulses, 1);

    // The cover is open too: still the same single opening.
    printer.lock().unwrap().cover_open = true;
    cli(&data, &["print"]);
    // Paper back, cover closed: the receipts print, and none kicks the drawer.
    {
        let mut p = printer.lock().unwrap();
        p.paper_out = false;
        p.cover_open = false;
    }
    let out = cli(&data, &["print"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(&printer, |p| p.receipts() == 2);
    let p = printer.lock().unwrap();
    assert_eq!(p.receipts(), 2);
    assert_eq!(p.kicks(), 0, "the drawer was already opened");
    assert_eq!(p.pulses, 1);
    assert_eq!(drawer_events(&f).len(), 1, "journaled once");
}

/// The `SaleDrawerOpened` events in the register's journal.
fn drawer_events(f: &Fixture) -> Vec<caja_shared::kind::SaleDrawerOpened> {
    let conn = f.register.conn();
    let head = caja_node::journal::Journal::head(conn).expect("head").seq;
    (1..=head)
        .filter_map(|seq| {
            let e = caja_node::journal::Journal::event(conn, seq)
                .expect("read")
                .expect("event");
            match e.body().expect("body") {
                caja_shared::kind::EventBody::SaleDrawerOpened(d) => Some(d),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn an_unreachable_printer_is_said_and_the_manual_opening_is_recorded() {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = format!("tcp://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let f = register(43, &gone);
    let data = f.data.root().to_path_buf();

    let (sale, said) = sell(&data, &["--cash", "100"]);
    assert!(said.contains("La impresora no responde"), "{said}");
    assert!(said.contains("caja-node drawer manual"), "{said}");

    let out = cli(&data, &["drawer", "manual", "--sale", &sale]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Apertura manual"), "{}", text(&out));
    // Once.
    let out = cli(&data, &["drawer", "manual", "--sale", &sale]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    // The printer is back: the receipt prints without kicking the drawer.
    let (address, printer) = emulator();
    std::fs::write(
        data.join("config.toml"),
        format!("printer = \"{address}\"\n"),
    )
    .expect("config");
    let out = cli(&data, &["print"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(&printer, |p| p.receipts() == 1);
    let p = printer.lock().unwrap();
    assert_eq!(p.receipts(), 1);
    assert_eq!(p.kicks(), 0);
    assert_eq!(p.pulses, 0);
}

#[test]
fn status_shows_the_printer_bits_and_times_with_their_age_and_ends_quietly_on_a_closed_pipe() {
    let (address, printer) = emulator();
    let f = register(44, &address);
    let data = f.data.root().to_path_buf();
    {
        let mut p = printer.lock().unwrap();
        p.cover_open = true;
        p.paper_out = true;
    }
    sell(&data, &["--card", "65", "--card-ref", "111111"]);
    let out = cli(&data, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        status
            .contains("Estado de la impresora: Tapa de la impresora abierta; Impresora sin papel"),
        "{status}"
    );
    // The queued receipt's time: the store's zone and its age, no milliseconds.
    let queue = status
        .lines()
        .find(|l| l.starts_with("Recibos en cola: 1"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(queue.contains(", hace "), "{queue}");
    assert!(!status.contains(" ms"), "{status}");

    {
        let mut p = printer.lock().unwrap();
        p.cover_open = false;
        p.paper_out = false;
        p.near_end = true;
    }
    let status = text(&cli(&data, &["status"]));
    assert!(
        status.contains("Estado de la impresora: Impresora lista (papel por acabarse)"),
        "{status}"
    );

    // `caja-node status | head -1`: the reader is gone before the answer.
    let mut child = Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .env("CAJA_NODE_DATA_DIR", &data)
        .arg("status")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// A pseudo-terminal in raw mode stands in for the USB printer class device
/// (`/dev/usb/lp0`): the register opens the slave side as a `usb://` printer,
/// the emulator answers on the master side.
fn usb_emulator() -> (String, Arc<Mutex<Printer>>) {
    use serialport::{SerialPort, TTYPort};
    use std::os::unix::io::AsRawFd;
    let (mut master, slave) = TTYPort::pair().expect("pty pair");
    let path = slave.name().expect("slave path");
    let mut t = nix::sys::termios::tcgetattr(slave.as_raw_fd()).expect("termios");
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(slave.as_raw_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
        .expect("raw");
    master
        .set_timeout(Duration::from_millis(20))
        .expect("timeout");
    let state = Arc::new(Mutex::new(Printer::default()));
    let shared = Arc::clone(&state);
    std::thread::spawn(move || {
        let _slave = slave;
        serve(master, &shared);
    });
    (format!("usb://{path}"), state)
}

#[test]
fn a_usb_printer_class_device_answers_its_status_opens_the_drawer_and_prints() {
    let (address, printer) = usb_emulator();
    let f = register(45, &address);
    let data = f.data.root().to_path_buf();
    printer.lock().unwrap().paper_out = true;

    let (_, said) = sell(&data, &["--cash", "100"]);
    assert!(said.contains("Gaveta abierta"), "{said}");
    wait_for(&printer, |p| p.pulses == 1);
    let status = text(&cli(&data, &["status"]));
    assert!(status.contains("Impresora sin papel"), "{status}");

    printer.lock().unwrap().paper_out = false;
    let out = cli(&data, &["print"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("impreso"), "{}", text(&out));
    wait_for(&printer, |p| p.receipts() == 1);
    let p = printer.lock().unwrap();
    assert_eq!((p.receipts(), p.kicks(), p.pulses), (1, 0, 1));
}

/// The paper a job's bytes make (decoded by the hardware crate's decoder).
fn paper_of(bytes: &[u8]) -> String {
    caja_hardware::decode::decode(bytes).paper(42)
}

#[test]
fn a_return_prints_its_slip_through_the_queue_and_a_cash_refund_opens_the_drawer_once() {
    let (address, printer) = emulator();
    let f = register(45, &address);
    let data = f.data.root().to_path_buf();

    // Three rice for cash: the receipt prints with the kick.
    let out = cli(
        &data,
        &["--json", "sell", "--item", "ARROZ:3", "--cash", "500"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let sale = v["sale_id"].as_str().expect("sale_id").to_owned();
    wait_for(&printer, |p| p.receipts() == 1);
    let receipt_len = {
        let p = printer.lock().unwrap();
        assert_eq!((p.receipts(), p.kicks()), (1, 1));
        p.job.len()
    };

    // One back for cash: the slip prints at once, the drawer opens for the
    // refund.
    let out = cli(
        &data,
        &[
            "return", "--sale", &sale, "--line", "0:1", "--refund", "cash",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Comprobante de la devolución"),
        "{}",
        text(&out)
    );
    wait_for(&printer, |p| p.receipts() == 2);
    let slip = {
        let p = printer.lock().unwrap();
        assert_eq!((p.receipts(), p.kicks()), (2, 2));
        p.job[receipt_len..].to_vec()
    };
    let paper = paper_of(&slip);
    assert!(paper.contains("COMPROBANTE DE DEVOLUCIÓN"), "{paper}");
    assert!(
        paper.contains(&format!("Venta original:\n  {sale}")),
        "{paper}"
    );
    assert!(paper.contains("Reembolso en: Efectivo"), "{paper}");
    assert!(paper.contains("TOTAL REEMBOLSADO"), "{paper}");
    assert!(paper.contains("1 ud."), "{paper}");
    assert!(!paper.contains("DAÑADO"), "{paper}");
    assert!(!paper.contains("COPIA"), "{paper}");

    // A damaged one back by card while the paper is out: the slip stays
    // queued (a card refund opens no drawer), then prints once with one
    // `caja-node print` when the paper is back.
    printer.lock().unwrap().paper_out = true;
    let out = cli(
        &data,
        &[
            "return",
            "--sale",
            &sale,
            "--line",
            "0:1:damaged",
            "--refund",
            "card",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("Aviso: la operación quedó registrada"),
        "{said}"
    );
    assert!(!said.contains("Gaveta"), "{said}");
    let status = text(&cli(&data, &["status"]));
    assert!(status.contains("Recibos en cola: 1"), "{status}");
    printer.lock().unwrap().paper_out = false;
    let out = cli(&data, &["print"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Comprobante de la devolución"),
        "{}",
        text(&out)
    );
    wait_for(&printer, |p| p.receipts() == 3);
    let p = printer.lock().unwrap();
    assert_eq!((p.receipts(), p.kicks(), p.pulses), (3, 2, 0));
    let paper = paper_of(&p.job[receipt_len + slip.len()..]);
    assert!(paper.contains("DAÑADO: no vuelve al inventario"), "{paper}");
    assert!(paper.contains("Reembolso en: Tarjeta"), "{paper}");
    drop(p);

    // Nothing left, nothing printed twice.
    let said = text(&cli(&data, &["print"]));
    assert!(said.contains("No hay recibos pendientes"), "{said}");
    assert_eq!(printer.lock().unwrap().receipts(), 3);
}

#[test]
fn a_refused_return_queues_no_slip() {
    let (address, printer) = emulator();
    let f = register(46, &address);
    let data = f.data.root().to_path_buf();
    let (sale, _) = sell(&data, &["--cash", "100"]);
    wait_for(&printer, |p| p.receipts() == 1);
    // More than was sold: refused, nothing recorded, nothing printed.
    let out = cli(&data, &["return", "--sale", &sale, "--line", "0:2"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let status = text(&cli(&data, &["status"]));
    assert!(status.contains("Recibos en cola: 0"), "{status}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(printer.lock().unwrap().receipts(), 1);
}

#[test]
fn a_cash_refund_with_the_printer_unreachable_names_the_return_and_journals_its_opening() {
    let (address, printer) = emulator();
    let f = register(47, &address);
    let data = f.data.root().to_path_buf();
    let (sale, _) = sell(&data, &["--cash", "100"]);
    wait_for(&printer, |p| p.receipts() == 1);

    // The printer is gone; one rice back for cash.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = format!("tcp://{}", closed.local_addr().expect("addr"));
    drop(closed);
    std::fs::write(data.join("config.toml"), format!("printer = \"{gone}\"\n")).expect("config");
    let out = cli(
        &data,
        &[
            "--json", "return", "--sale", &sale, "--line", "0:1", "--refund", "cash",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ret = v["return_id"].as_str().expect("return_id").to_owned();
    let said = text(&out);
    assert!(
        said.contains(&format!("la gaveta de la devolución {ret} no se abrió")),
        "{said}"
    );
    assert!(!said.contains(&format!("venta {ret}")), "{said}");

    let out = cli(&data, &["drawer", "manual", "--sale", &ret]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "Apertura manual de la gaveta registrada (la devolución {ret}); el comprobante"
        )),
        "{said}"
    );
    // In the journal as the refund's opening, by key.
    let opened = drawer_events(&f);
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].return_id.map(|r| r.to_string()), Some(ret));
    assert_eq!(opened[0].sale_id, None);
    assert_eq!(opened[0].how, caja_shared::kind::DrawerHow::Manual);
}

#[test]
fn customer_edit_changes_only_the_fields_given_and_refuses_a_bad_rnc() {
    let f = Fixture::new(48);
    let data = f.data.root().to_path_buf();
    let out = cli(
        &data,
        &[
            "--json",
            "customer",
            "--name",
            "Doña Rosa",
            "--phone",
            "809-555-0100",
            "--tax-id",
            "101850043",
            "--credit-limit",
            "500",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = v["customer_id"].as_str().expect("id").to_owned();
    let customer: caja_shared::ids::CustomerId = id.parse().expect("id");
    let fields = || {
        caja_node::queries::customer_fields(f.register.conn(), &customer)
            .expect("read")
            .expect("customer")
    };
    let head = || {
        caja_node::journal::Journal::head(f.register.conn())
            .expect("head")
            .seq
    };

    // Only the limit: the rest stays.
    let out = cli(
        &data,
        &["customer-edit", "--id", &id, "--credit-limit", "750.00"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Cliente guardado"), "{}", text(&out));
    assert_eq!(
        fields(),
        (
            "Doña Rosa".to_owned(),
            Some("809-555-0100".to_owned()),
            Some("101850043".to_owned()),
            75_000
        )
    );

    // A wrong check digit, a negative limit, an unknown customer: refused,
    // nothing written.
    let before = head();
    for args in [
        vec!["customer-edit", "--id", &id, "--tax-id", "101850042"],
        vec!["customer-edit", "--id", &id, "--name", "  "],
        vec![
            "customer-edit",
            "--id",
            "01935f4e-8a00-7000-8000-00000000abcd",
            "--name",
            "Nadie",
        ],
    ] {
        let out = cli(&data, &args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
    }
    assert_eq!(head(), before);

    // An empty phone clears it; the name changes.
    let out = cli(
        &data,
        &[
            "customer-edit",
            "--id",
            &id,
            "--phone",
            "",
            "--name",
            "Rosa Pérez",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fields(),
        (
            "Rosa Pérez".to_owned(),
            None,
            Some("101850043".to_owned()),
            75_000
        )
    );
    assert_eq!(head(), before + 1);
}
