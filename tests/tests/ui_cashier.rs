//! The cashier's screen in a real browser: headless Chromium
//! (`caja_tests::browser`) on the screen served by a real `caja-node run`
//! (enrolled with a real `caja-hub serve`, printing to a folder printer and
//! weighing on a virtual Toledo scale on a real pseudo-terminal).
//!
//! - a full sale by keyboard: shift opened with F9 and a PIN, an item
//!   scanned, a weighed item (1.250 kg from the scale), F4, cash, change; the
//!   sale checked in the register's journal, the receipt printed with the
//!   drawer kick, the sale at the hub;
//! - the same sale with the hub down: the status bar says so, the page is
//!   reloaded mid-sale and loses nothing, the sale is journaled and reaches
//!   the hub when it is back;
//! - a price override and a void, each needing a supervisor: a line's price
//!   changed with its button, the payment refused with a wrong PIN in
//!   Spanish with nothing changed (cart kept, no sale), sold at the new
//!   price with the right one (the approval in the sale's line); then a
//!   wrong PIN refused on the void, the right one voids it (approval in the
//!   journal); the receipt prints the shelf price under the line;
//! - a new customer, a line and a sale discount beyond the register's limit
//!   approved by the supervisor, a B01 with the buyer's RNC (missing, then a
//!   wrong check digit, refused naming the field), an abono; each in the
//!   journal and at the hub;
//! - a receipt that could not print, printed by "Reimprimir pendientes"
//!   before its backoff ends; a damaged return from the sales list;
//! - a customer edited from the customers dialog (a wrong RNC refused with
//!   nothing written), and a drawer opened with the key reaching the hub as
//!   a `SaleDrawerOpened`.
//!
//! Every step saves a screenshot under `target/test-output/<test>/`, and
//! every screen state passes the accessibility check.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caja_node::journal::Journal;
use caja_node::testkit;
use caja_shared::kind::{EventBody, PaymentMethod};
use caja_tests::browser::{keys, Browser};
use caja_tests::procs::{binary, free_port, HubProcess, NodeProcess};

const ADMIN_TOKEN: &str = "caja-ui-test-admin-token-0123456";
/// Generous: a loaded 2-core machine runs three browsers and six processes.
const WAIT: Duration = Duration::from_secs(45);
/// How long a register may take to find the hub back after an outage.
const RECONNECT: Duration = Duration::from_secs(120);

struct Rig {
    tmp: tempfile::TempDir,
    hub: HubProcess,
    node: NodeProcess,
    device: String,
    url: String,
    scale_stop: Arc<AtomicBool>,
    scale: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.scale_stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.scale.take() {
            let _ = h.join();
        }
    }
}

fn catalog_file(path: &Path) {
    let mut items = Vec::new();
    let mut prices = Vec::new();
    for b in testkit::sample_catalog_bodies() {
        let v = b.to_value().expect("catalog body").to_serde();
        match b {
            EventBody::CatalogItemUpserted(_) => items.push(v),
            EventBody::PriceSet(_) => prices.push(v),
            _ => {}
        }
    }
    let body = serde_json::json!({ "items": items, "prices": prices });
    std::fs::write(path, body.to_string()).expect("catalog file");
}

fn hub_cli(hub: &HubProcess, args: &[&str]) {
    let out = Command::new(binary("caja-hub").expect("caja-hub"))
        .env("CAJA_HUB_URL", &hub.url)
        .env("CAJA_HUB_ADMIN_TOKEN", &hub.token)
        .args(args)
        .output()
        .expect("caja-hub");
    assert!(
        out.status.success(),
        "caja-hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A hub with the sample catalog, fiscal series B02, a cashier (Ana, 1111)
/// and a supervisor (Marta, 2222); a register enrolled and synced, with a
/// folder printer, a virtual scale showing 1.250 kg and the screen on a free
/// loopback port, running as `caja-node run`.
fn rig(name: &str) -> Rig {
    rig_with(name, &[])
}

/// [`rig`] with more fiscal series (loaded at the hub and issued by the
/// register after B02).
fn rig_with(name: &str, more_series: &[&str]) -> Rig {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("caja-ui-{name}-"))
        .tempdir()
        .expect("tmp");
    let hub_port = free_port().expect("port");
    let hub =
        HubProcess::init_and_serve(&tmp.path().join("hub"), hub_port, ADMIN_TOKEN).expect("hub");
    let store = hub
        .admin(&["create-store", "Colmado La Esquina"])
        .expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    let catalog = tmp.path().join("catalog.json");
    catalog_file(&catalog);
    hub.admin(&["load-catalog", catalog.to_str().expect("path")])
        .expect("catalog");
    for prefix in more_series {
        hub_cli(
            &hub,
            &[
                "fiscal",
                "load-series",
                "--prefix",
                prefix,
                "--digits",
                "8",
                "--first",
                "1",
                "--last",
                "1000",
                "--valid-until",
                "2099-12-31",
            ],
        );
    }
    hub_cli(
        &hub,
        &[
            "fiscal",
            "load-series",
            "--prefix",
            "B02",
            "--digits",
            "8",
            "--first",
            "1",
            "--last",
            "1000",
            "--valid-until",
            "2099-12-31",
        ],
    );
    for (n, role, pin) in [("Ana", "cashier", "1111"), ("Marta", "supervisor", "2222")] {
        hub.admin(&["staff", "--name", n, "--role", role, "--pin", pin])
            .expect("staff");
    }
    let token = hub
        .admin(&["create-token", &store, "caja 1"])
        .expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut node = NodeProcess::new(&tmp.path().join("caja-1"));
    let enrolled = node
        .json(&["enroll", "--hub", &hub.url, "--token", &token])
        .expect("enroll");
    let device = enrolled["device"].as_str().expect("device").to_owned();

    // The scale: a Toledo on a pseudo-terminal, answering what the file says.
    let weight = tmp.path().join("peso.txt");
    std::fs::write(&weight, "1250").expect("weight");
    let link = tmp.path().join("balanza");
    let scale = caja_node::devices::VirtualScale::start(
        caja_hardware::scale::Protocol::Toledo8217,
        &weight,
        Some(&link),
    )
    .expect("virtual scale");
    let scale_stop = Arc::new(AtomicBool::new(false));
    let stop = scale_stop.clone();
    let scale = std::thread::spawn(move || caja_node::devices::run_virtual_scale(&scale, &stop));

    let ui_port = free_port().expect("port");
    let recibos = tmp.path().join("recibos");
    std::fs::create_dir_all(&recibos).expect("recibos");
    let documents: Vec<String> = std::iter::once("B02")
        .chain(more_series.iter().copied())
        .map(|d| format!("\"{d}\""))
        .collect();
    let config = format!(
        "printer = \"folder://{}\"\nscale = \"toledo://{}\"\nui_listen = \"127.0.0.1:{ui_port}\"\nfiscal_documents = [{}]\nfiscal_document = \"B02\"\nfiscal_block_size = 50\nfiscal_low_water = 10\nstore_name = \"Colmado La Esquina\"\n",
        recibos.display(),
        link.display(),
        documents.join(", ")
    );
    let cfg_path = tmp.path().join("caja-1").join("config.toml");
    let mut text = std::fs::read_to_string(&cfg_path).expect("config");
    text.push_str(&config);
    std::fs::write(&cfg_path, text).expect("config");
    // Catalog, staff and a block of B02 numbers before the screen opens.
    node.json(&["sync"]).expect("sync");
    node.json(&["sync"]).expect("sync");
    node.start_run(&tmp.path().join("caja-node-run.log"))
        .expect("caja-node run");
    let url = format!("http://127.0.0.1:{ui_port}/");
    let until = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", ui_port)).is_err() {
        assert!(
            Instant::now() < until,
            "the screen never listened: {}",
            std::fs::read_to_string(tmp.path().join("caja-node-run.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Rig {
        tmp,
        hub,
        node,
        device,
        url,
        scale_stop,
        scale: Some(scale),
    }
}

fn recibos(rig: &Rig) -> PathBuf {
    rig.tmp.path().join("recibos")
}

/// Screenshot and accessibility check of the screen as it is now.
fn look(b: &Browser, step: &str) {
    b.screenshot(step).expect("screenshot");
    b.check_accessibility(step).expect("accessibility");
}

fn status_bar(b: &Browser, key: &str) -> String {
    b.text(&format!("#status [data-key={key}]"))
        .unwrap_or_default()
}

fn open_shift(b: &Browser) {
    b.wait_for_text("#shift-info", "No hay turno", WAIT)
        .expect("no shift yet");
    b.type_keys(keys::F9).expect("F9");
    b.wait_for("the shift dialog", WAIT, |b| {
        b.find("#dlg-shift").and_then(|d| d.is_displayed())
    })
    .expect("dialog");
    look(b, "shift dialog");
    b.find_by_label("Cajero")
        .expect("cashier field")
        .type_keys("Ana")
        .expect("name");
    b.find_by_label("PIN")
        .expect("pin field")
        .type_keys("1111")
        .expect("pin");
    let float = b.find_by_label("Fondo inicial").expect("float");
    float.clear().expect("clear");
    float
        .type_keys(&format!("1000.00{}", keys::ENTER))
        .expect("float");
    b.wait_for_text("#shift-info", "Ana", WAIT)
        .expect("shift open");
}

/// Scans ARROZ and the weighed cheese (the scale shows 1.250 kg), then pays
/// 600.00 in cash with F4: total 540.00, change 60.00.
fn keyboard_sale(b: &Browser) {
    b.type_keys(&format!("ARROZ{}", keys::ENTER)).expect("scan");
    b.wait_for_text("#lines", "Arroz Selecto 1kg", WAIT)
        .expect("line");
    b.type_keys(&format!("2000000000017{}", keys::ENTER))
        .expect("scan weighed");
    b.wait_for_text("#lines", "1.250 kg", WAIT)
        .expect("weighed");
    assert_eq!(b.text("#total").expect("total"), "RD$ 540.00");
    // ITBIS: 18 % inside the rice's 65.00; the cheese is exempt.
    assert_eq!(b.text("#tax").expect("tax"), "RD$ 9.92");
    assert!(
        b.text("#message").expect("message").contains("1.250 kg"),
        "the cashier sees the weight"
    );
    look(b, "cart");
    b.type_keys(keys::F4).expect("F4");
    b.wait_for("the payment dialog", WAIT, |b| {
        b.find("#dlg-pay").and_then(|d| d.is_displayed())
    })
    .expect("pay dialog");
    b.type_keys("600.00").expect("cash");
    b.wait_for_text("#pay-preview", "RD$ 60.00", WAIT)
        .expect("change preview");
    look(b, "payment");
    b.type_keys(keys::ENTER).expect("pay");
    b.wait_for_text("#shown-text", "cambio RD$ 60.00", WAIT)
        .expect("sale done");
    assert!(b.find_all("#lines tr").expect("lines").is_empty());
    look(b, "sale done");
}

/// The register's last `SaleCreated`, read from its journal.
fn last_sale(node: &NodeProcess) -> (u64, caja_shared::kind::SaleCreated) {
    let db = node.db().expect("db");
    let head = Journal::head(&db).expect("head").seq;
    for seq in (1..=head).rev() {
        let e = Journal::event(&db, seq).expect("event").expect("present");
        if let EventBody::SaleCreated(s) = e.body().expect("body") {
            return (seq, s);
        }
    }
    panic!("no sale in the journal");
}

fn check_sale_in_journal(node: &NodeProcess) -> caja_shared::kind::SaleCreated {
    let (_, sale) = last_sale(node);
    let lines: Vec<(String, i64)> = sale
        .lines
        .iter()
        .map(|l| (l.product.to_string(), l.qty_milli.0))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("7501234567890".to_owned(), 1000),
            ("2000000000017".to_owned(), 1250)
        ]
    );
    assert_eq!(sale.total.0, 54_000);
    assert_eq!(sale.tax.0, 992);
    assert_eq!(sale.change.0, 6_000);
    assert_eq!(sale.payments.len(), 1);
    assert_eq!(sale.payments[0].method, PaymentMethod::Cash);
    assert_eq!(sale.payments[0].amount.0, 60_000);
    assert!(
        sale.fiscal
            .as_ref()
            .is_some_and(|f| f.number.starts_with("B02")),
        "a B02 number: {:?}",
        sale.fiscal
    );
    sale
}

/// Waits until the folder printer holds a receipt with `needle`.
fn wait_receipt(rig: &Rig, needle: &str) -> String {
    let until = Instant::now() + WAIT;
    loop {
        let mut found = None;
        if let Ok(dir) = std::fs::read_dir(recibos(rig)) {
            for e in dir.flatten() {
                if e.path().extension().is_some_and(|x| x == "txt") {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    if text.contains(needle) {
                        found = Some(text);
                    }
                }
            }
        }
        if let Some(t) = found {
            return t;
        }
        assert!(Instant::now() < until, "no receipt with {needle:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hub_has_sale(rig: &Rig, sale_id: &str) -> bool {
    let Ok(db) = rig.hub.db() else { return false };
    db.query_row(
        "SELECT COUNT(*) FROM events WHERE device_id = ?1 AND kind = 'SaleCreated' AND instr(CAST(bytes AS TEXT), ?2) > 0",
        [rig.device.as_str(), sale_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n == 1)
    .unwrap_or(false)
}

fn wait_hub_sale(rig: &Rig, sale_id: &str) {
    wait_hub_sale_within(rig, sale_id, WAIT);
}

fn wait_hub_sale_within(rig: &Rig, sale_id: &str, limit: Duration) {
    let until = Instant::now() + limit;
    while !hub_has_sale(rig, sale_id) {
        assert!(
            Instant::now() < until,
            "sale {sale_id} never reached the hub"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn keyboard_sale_with_weighed_item_and_cash() {
    let Some(b) = Browser::start("ui_cashier_keyboard_sale").expect("browser") else {
        return;
    };
    let rig = rig("sale");
    b.goto(&rig.url).expect("open the screen");
    assert_eq!(b.title().expect("title"), "Caja — pantalla del cajero");
    let lang = b
        .execute("return document.documentElement.lang;", vec![])
        .expect("lang");
    assert_eq!(lang, "es-DO");
    b.wait_for("the status bar", WAIT, |b| {
        Ok(
            status_bar(b, "net").contains("En línea")
                && status_bar(b, "scale").contains("1.250 kg"),
        )
    })
    .expect("online, scale ready");
    assert!(
        status_bar(&b, "fiscal").starts_with("B02: quedan"),
        "{}",
        status_bar(&b, "fiscal")
    );
    look(&b, "start");
    open_shift(&b);
    keyboard_sale(&b);

    let sale = check_sale_in_journal(&rig.node);
    let receipt = wait_receipt(&rig, "Queso de");
    assert!(receipt.contains("[GAVETA]"), "a cash sale opens the drawer");
    assert!(receipt.contains("1.250 kg"), "{receipt}");
    wait_hub_sale(&rig, &sale.sale_id.to_string());
    b.wait_for("everything synced", WAIT, |b| {
        Ok(status_bar(b, "sync").contains("Todo sincronizado"))
    })
    .expect("synced");
    look(&b, "synced");
}

#[test]
fn same_sale_with_the_hub_down_loses_nothing() {
    let Some(b) = Browser::start("ui_cashier_hub_down").expect("browser") else {
        return;
    };
    let mut rig = rig("down");
    b.goto(&rig.url).expect("open the screen");
    open_shift(&b);
    rig.hub.kill().expect("hub down");
    b.wait_for("the status bar to show offline", WAIT, |b| {
        Ok(status_bar(b, "net").contains("Sin conexión"))
    })
    .expect("offline shown");
    look(&b, "offline");

    // Mid-sale the tab is reloaded: the cart is in the node.
    b.type_keys(&format!("ARROZ{}", keys::ENTER)).expect("scan");
    b.wait_for_text("#lines", "Arroz Selecto 1kg", WAIT)
        .expect("line");
    b.goto(&rig.url).expect("reload");
    b.wait_for_text("#lines", "Arroz Selecto 1kg", WAIT)
        .expect("the cart survived the reload");
    assert_eq!(b.find_all("#lines tr").expect("lines").len(), 1);
    look(&b, "after reload");
    // Continue the same sale by keyboard.
    b.find("#item").expect("item").click().expect("focus");
    b.type_keys(&format!("2000000000017{}", keys::ENTER))
        .expect("scan weighed");
    b.wait_for_text("#lines", "1.250 kg", WAIT)
        .expect("weighed");
    b.type_keys(keys::F4).expect("F4");
    b.wait_for("the payment dialog", WAIT, |b| {
        b.find("#dlg-pay").and_then(|d| d.is_displayed())
    })
    .expect("pay dialog");
    b.type_keys(&format!("600.00{}", keys::ENTER)).expect("pay");
    b.wait_for_text("#shown-text", "cambio RD$ 60.00", WAIT)
        .expect("sale done offline");
    let sale = check_sale_in_journal(&rig.node);
    b.wait_for("unsynced events in the status bar", WAIT, |b| {
        Ok(status_bar(b, "sync").contains("sin sincronizar"))
    })
    .expect("unsynced shown");
    look(&b, "sold offline");
    wait_receipt(&rig, "Queso de");
    assert!(!hub_has_sale(&rig, &sale.sale_id.to_string()));

    // Head office comes back: the sale gets there, the bar says so.
    rig.hub.serve().expect("hub back");
    // The register retries with full-jitter backoff (up to a minute between
    // rounds after a long outage): a longer limit here only.
    wait_hub_sale_within(&rig, &sale.sale_id.to_string(), RECONNECT);
    b.wait_for("online again", RECONNECT, |b| {
        Ok(status_bar(b, "net").contains("En línea")
            && status_bar(b, "sync").contains("Todo sincronizado"))
    })
    .expect("back online");
    look(&b, "back online");
}

#[test]
fn price_override_and_void_need_a_supervisor_pin() {
    let Some(b) = Browser::start("ui_cashier_void").expect("browser") else {
        return;
    };
    let rig = rig("void");
    b.goto(&rig.url).expect("open the screen");
    open_shift(&b);
    b.type_keys(&format!("2*ARROZ{}", keys::ENTER))
        .expect("scan");
    b.wait_for_text("#total", "RD$ 130.00", WAIT)
        .expect("total");

    // The rice at RD$ 60.00 instead of 65.00, with the line's button.
    b.find("#lines button[aria-label='Precio Arroz Selecto 1kg']")
        .expect("price button")
        .click()
        .expect("price");
    b.wait_for("the price dialog", WAIT, |b| {
        b.find("#dlg-price").and_then(|d| d.is_displayed())
    })
    .expect("price dialog");
    let price = b
        .find_by_label("Precio nuevo (por unidad o por kg)")
        .expect("price field");
    price.clear().expect("clear");
    price
        .type_keys(&format!("60.00{}", keys::ENTER))
        .expect("new price");
    b.wait_for_text("#total", "RD$ 120.00", WAIT)
        .expect("total at the new price");
    assert!(
        b.text("#lines")
            .expect("lines")
            .contains("precio de lista: RD$ 65.00"),
        "the shelf price is shown next to the new one"
    );
    look(&b, "price changed");
    b.type_keys(keys::F4).expect("F4");
    b.wait_for("the payment dialog asking for a supervisor", WAIT, |b| {
        b.find("#pay-approver").and_then(|d| d.is_displayed())
    })
    .expect("pay dialog with approval");
    b.type_keys("120").expect("cash");
    b.find_by_label("Supervisor")
        .expect("supervisor")
        .type_keys("Marta")
        .expect("who");
    let pin = b.find_by_label("PIN del supervisor").expect("pin");
    pin.type_keys(&format!("9999{}", keys::ENTER)).expect("pin");
    b.wait_for_text("#pay-message", "PIN incorrecto", WAIT)
        .expect("wrong PIN refused in Spanish");
    look(&b, "override wrong pin");
    let db = rig.node.db().expect("db");
    let sales: i64 = db
        .query_row("SELECT COUNT(*) FROM sales", [], |r| r.get(0))
        .expect("sales");
    assert_eq!(sales, 0, "a refused PIN sells nothing");
    assert_eq!(b.text("#total").expect("total"), "RD$ 120.00", "cart kept");
    pin.clear().expect("clear");
    pin.type_keys(&format!("2222{}", keys::ENTER)).expect("pin");
    b.wait_for_text("#shown-text", "Venta registrada", WAIT)
        .expect("sold");
    let (_, sale) = last_sale(&rig.node);
    assert_eq!(sale.total.0, 12_000);
    // The receipt shows the price sold at and the shelf price under it.
    let receipt = wait_receipt(&rig, "Precio de lista: RD$ 65.00");
    assert!(receipt.contains("2 x RD$ 60.00"), "{receipt}");
    let o = sale.lines[0]
        .price_override
        .as_ref()
        .expect("override recorded");
    assert_eq!(
        (sale.lines[0].unit_price.0, o.shelf_price.0),
        (6_000, 6_500)
    );
    assert_eq!(
        o.approval
            .as_ref()
            .map(|a| (a.name.as_str(), a.action.as_str())),
        Some(("Marta", "price_override"))
    );

    b.type_keys(keys::F7).expect("F7");
    b.wait_for_text("#sales-rows", "RD$ 120.00", WAIT)
        .expect("sales list");
    look(&b, "sales list");
    b.find("#sales-rows button[aria-label^='Anular']")
        .expect("void button")
        .click()
        .expect("void");
    b.wait_for("the void dialog", WAIT, |b| {
        b.find("#dlg-void").and_then(|d| d.is_displayed())
    })
    .expect("void dialog");
    b.find_by_label("Motivo")
        .expect("reason")
        .type_keys("cliente desistió")
        .expect("reason");
    b.find_by_label("Supervisor")
        .expect("supervisor")
        .type_keys("Marta")
        .expect("who");
    let pin = b.find_by_label("PIN del supervisor").expect("pin");
    pin.type_keys(&format!("9999{}", keys::ENTER)).expect("pin");
    b.wait_for_text("#void-message", "PIN incorrecto", WAIT)
        .expect("wrong PIN refused in Spanish");
    look(&b, "wrong pin");
    let db = rig.node.db().expect("db");
    let voided: Option<i64> = db
        .query_row(
            "SELECT voided_seq FROM sales WHERE sale_id = ?1",
            [sale.sale_id.to_string()],
            |r| r.get(0),
        )
        .expect("sale row");
    assert_eq!(voided, None, "a refused PIN changes nothing");
    pin.clear().expect("clear");
    pin.type_keys(&format!("2222{}", keys::ENTER)).expect("pin");
    b.wait_for_text("#shown-text", "anulada", WAIT)
        .expect("voided");
    look(&b, "voided");

    let head = Journal::head(&db).expect("head").seq;
    let e = Journal::event(&db, head).expect("event").expect("present");
    match e.body().expect("body") {
        EventBody::SaleVoided(v) => {
            assert_eq!(v.sale_id, sale.sale_id);
            assert_eq!(v.reason, "cliente desistió");
            let a = v.approval.expect("approval recorded");
            assert_eq!(a.name, "Marta");
        }
        other => panic!("last event is not the void: {other:?}"),
    }
    // A reprint from the list is marked COPIA and opens no drawer.
    b.type_keys(keys::F7).expect("F7");
    b.wait_for_text("#sales-rows", "anulada", WAIT)
        .expect("list shows the void");
    b.find("#sales-rows button[aria-label^='Reimprimir']")
        .expect("reprint button")
        .click()
        .expect("reprint");
    b.wait_for_text("#sales-message", "COPIA", WAIT)
        .expect("reprint queued");
    let copy = wait_receipt(&rig, "COPIA");
    assert!(!copy.contains("[GAVETA]"), "a copy opens no drawer");
    look(&b, "reprint");
}

#[test]
fn split_payment_fiado_paid_out_and_shift_close_with_the_z_report() {
    let Some(b) = Browser::start("ui_cashier_split_close").expect("browser") else {
        return;
    };
    let rig = rig("split");
    let customer = rig
        .node
        .json(&[
            "customer",
            "--name",
            "Doña Rosa",
            "--credit-limit",
            "500.00",
        ])
        .expect("customer")["customer_id"]
        .as_str()
        .expect("id")
        .to_owned();
    b.goto(&rig.url).expect("open the screen");
    open_shift(&b);

    // 3 × rice = 195.00: 100.00 by card, 95.00 on fiado.
    b.type_keys(&format!("3*ARROZ{}", keys::ENTER))
        .expect("scan");
    b.wait_for_text("#total", "RD$ 195.00", WAIT)
        .expect("total");
    b.type_keys(keys::F4).expect("F4");
    b.wait_for("customers in the payment dialog", WAIT, |b| {
        b.exists(&format!("#pay-customer option[value='{customer}']"))
    })
    .expect("customer listed");
    assert!(b
        .text("#pay-customer")
        .expect("customers")
        .contains("Doña Rosa — RD$ 500.00"));
    b.find_by_label("Tarjeta (monto)")
        .expect("card")
        .type_keys("100.00")
        .expect("card");
    b.find_by_label("Referencia de la tarjeta")
        .expect("ref")
        .type_keys("004512")
        .expect("ref");
    b.find_by_label("Fiado (monto)")
        .expect("fiado")
        .type_keys("95.00")
        .expect("fiado");
    b.find_by_label("Cliente del fiado")
        .expect("customer")
        .select(&customer)
        .expect("choose");
    b.wait_for_text("#pay-preview", "Cambio: RD$ 0.00", WAIT)
        .expect("preview");
    look(&b, "split payment");
    b.find("#form-pay button[type=submit]")
        .expect("pay button")
        .click()
        .expect("pay");
    b.wait_for_text("#shown-text", "crédito disponible: RD$ 405.00", WAIT)
        .expect("fiado with the credit left");
    let (_, sale) = last_sale(&rig.node);
    let pays: Vec<(PaymentMethod, i64, Option<String>)> = sale
        .payments
        .iter()
        .map(|p| (p.method, p.amount.0, p.reference.clone()))
        .collect();
    assert_eq!(
        pays,
        vec![
            (PaymentMethod::Card, 10_000, Some("004512".to_owned())),
            (PaymentMethod::Fiado, 9_500, None)
        ]
    );
    assert_eq!(sale.customer.map(|c| c.to_string()), Some(customer.clone()));
    let receipt = wait_receipt(&rig, "004512");
    assert!(!receipt.contains("[GAVETA]"), "no cash, no drawer");

    // Beyond the credit left: refused in Spanish, nothing written.
    let head = Journal::head(&rig.node.db().expect("db"))
        .expect("head")
        .seq;
    // Typed where the focus is: the item field, back after the dialog closed.
    b.type_keys(&format!("10*ARROZ{}", keys::ENTER))
        .expect("scan");
    b.wait_for_text("#total", "RD$ 650.00", WAIT)
        .expect("total");
    b.type_keys(keys::F4).expect("F4");
    b.wait_for("customers in the payment dialog", WAIT, |b| {
        b.exists(&format!("#pay-customer option[value='{customer}']"))
    })
    .expect("customer listed");
    b.find_by_label("Cliente del fiado")
        .expect("customer")
        .select(&customer)
        .expect("choose");
    b.find_by_label("Fiado (monto)")
        .expect("fiado")
        .type_keys(&format!("650.00{}", keys::ENTER))
        .expect("fiado");
    b.wait_for_text("#pay-message", "Límite de crédito excedido", WAIT)
        .expect("refused");
    look(&b, "credit refused");
    assert_eq!(
        Journal::head(&rig.node.db().expect("db"))
            .expect("head")
            .seq,
        head
    );
    b.type_keys(keys::ESCAPE).expect("close");
    b.wait_for("the dialog to close", WAIT, |b| {
        b.find("#dlg-pay")
            .and_then(|d| d.is_displayed())
            .map(|v| !v)
    })
    .expect("closed");
    b.type_keys(keys::F10).expect("empty the sale");
    b.wait_for_text("#total", "RD$ 0.00", WAIT)
        .expect("emptied");

    // Paid out, approved by the supervisor.
    b.type_keys(keys::F8).expect("F8");
    b.wait_for("the cash dialog", WAIT, |b| {
        b.find("#dlg-cash").and_then(|d| d.is_displayed())
    })
    .expect("cash dialog");
    b.find_by_label("Movimiento")
        .expect("kind")
        .select("out")
        .expect("out");
    b.find_by_label("Monto")
        .expect("amount")
        .type_keys("150.00")
        .expect("amount");
    b.find_by_label("Motivo")
        .expect("reason")
        .type_keys("hielo")
        .expect("reason");
    b.find_by_label("Supervisor")
        .expect("who")
        .type_keys("Marta")
        .expect("who");
    b.find_by_label("PIN del supervisor")
        .expect("pin")
        .type_keys(&format!("2222{}", keys::ENTER))
        .expect("pin");
    b.wait_for_text("#shown-text", "Salida de efectivo de RD$ 150.00", WAIT)
        .expect("paid out");
    look(&b, "paid out");

    // Shift close: the Z report on screen.
    b.type_keys(keys::F9).expect("F9");
    b.wait_for("the close form", WAIT, |b| {
        b.find("#form-shift-close").and_then(|d| d.is_displayed())
    })
    .expect("close form");
    b.find_by_label("Efectivo contado")
        .expect("counted")
        .type_keys("850.00")
        .expect("counted");
    b.find_by_label("Quién cierra")
        .expect("by")
        .type_keys("Ana")
        .expect("by");
    // The close form's PIN (the open form is hidden).
    b.find_by_label("PIN")
        .expect("pin")
        .type_keys(&format!("1111{}", keys::ENTER))
        .expect("pin");
    let z = b
        .wait_for_text("#shown-z", "REPORTE Z", WAIT)
        .expect("Z report on screen");
    assert!(z.contains("Fiado: RD$ 95.00"), "{z}");
    assert!(z.contains("Tarjeta: RD$ 100.00"), "{z}");
    b.wait_for_text("#shift-info", "No hay turno", WAIT)
        .expect("shift closed");
    look(&b, "z report");
}

/// Events of `kind` this register's journal holds at the hub.
fn hub_count(rig: &Rig, kind: &str) -> i64 {
    let Ok(db) = rig.hub.db() else { return 0 };
    db.query_row(
        "SELECT COUNT(*) FROM events WHERE device_id = ?1 AND kind = ?2",
        [rig.device.as_str(), kind],
        |r| r.get::<_, i64>(0),
    )
    .unwrap_or(0)
}

fn wait_shown(b: &Browser, id: &str) {
    b.wait_for(id, WAIT, |b| {
        b.find(&format!("#{id}")).and_then(|d| d.is_displayed())
    })
    .expect(id);
}

/// A new customer (a bad cédula refused, naming the field), a sale with a
/// line discount (10 %) and a sale discount (F5) beyond the register's
/// 10 % limit, on fiado, as a B01 with the buyer's RNC (missing, then a
/// wrong check digit, refused naming the field; then right), approved by
/// the supervisor; then an abono (too much refused, then part of the debt
/// in cash). Each checked in the journal and at the hub.
#[test]
fn discounts_new_customer_b01_buyer_and_debt_payment() {
    let Some(b) = Browser::start("ui_cashier_discounts_abonos").expect("browser") else {
        return;
    };
    let rig = rig_with("more", &["B01"]);
    b.goto(&rig.url).expect("open the screen");
    open_shift(&b);

    // F2: customers. A new one, first with a cédula that does not check.
    b.type_keys(keys::F2).expect("F2");
    wait_shown(&b, "dlg-customers");
    b.find_by_label("Nombre del cliente")
        .expect("name")
        .type_keys("Doña Rosa")
        .expect("name");
    let tax = b.find_by_label("RNC o cédula (opcional)").expect("tax id");
    tax.type_keys("00112345678").expect("tax id");
    let limit = b.find_by_label("Límite de crédito (fiado)").expect("limit");
    limit.clear().expect("clear");
    limit
        .type_keys(&format!("500.00{}", keys::ENTER))
        .expect("limit");
    b.wait_for_text(
        "#customers-message",
        "RNC o cédula del cliente inválido",
        WAIT,
    )
    .expect("bad cédula refused, naming the field");
    look(&b, "customer bad cedula");
    tax.clear().expect("clear");
    b.find("#form-customer button[type=submit]")
        .expect("submit")
        .click()
        .expect("add customer");
    b.wait_for_text("#customer-rows", "Doña Rosa", WAIT)
        .expect("customer listed");
    assert!(
        b.text("#customers-message")
            .expect("message")
            .contains("Cliente Doña Rosa registrado"),
        "{}",
        b.text("#customers-message").unwrap_or_default()
    );
    look(&b, "customer added");
    b.type_keys(keys::ESCAPE).expect("close");
    b.wait_for("the dialog to close", WAIT, |b| {
        b.find("#dlg-customers")
            .and_then(|d| d.is_displayed())
            .map(|v| !v)
    })
    .expect("closed");
    let customer: String = rig
        .node
        .db()
        .expect("db")
        .query_row(
            "SELECT customer_id FROM customers WHERE name = 'Doña Rosa'",
            [],
            |r| r.get(0),
        )
        .expect("customer row");

    // 3 × rice = 195.00; 10 % off the line: 175.50.
    b.find("#item").expect("item").click().expect("focus");
    b.type_keys(&format!("3*ARROZ{}", keys::ENTER))
        .expect("scan");
    b.wait_for_text("#total", "RD$ 195.00", WAIT)
        .expect("total");
    b.find("#lines button[aria-label='Descuento Arroz Selecto 1kg']")
        .expect("discount button")
        .click()
        .expect("discount");
    wait_shown(&b, "dlg-discount");
    let field = b
        .find_by_label("Descuento en RD$ (o porcentaje, ej. 10%)")
        .expect("discount field");
    field
        .type_keys(&format!("diez{}", keys::ENTER))
        .expect("bad");
    b.wait_for_text("#discount-message", "Descuento inválido", WAIT)
        .expect("bad discount refused");
    field.clear().expect("clear");
    field
        .type_keys(&format!("10%{}", keys::ENTER))
        .expect("10%");
    b.wait_for_text("#total", "RD$ 175.50", WAIT)
        .expect("line discount");
    assert!(
        b.text("#lines")
            .expect("lines")
            .contains("Descuento: −RD$ 19.50"),
        "{}",
        b.text("#lines").unwrap_or_default()
    );
    // F5: RD$ 5.50 off the sale: 170.00, 25.00 off in all (12.8 % > 10 %).
    b.type_keys(keys::F5).expect("F5");
    wait_shown(&b, "dlg-discount");
    b.type_keys(&format!("5.50{}", keys::ENTER))
        .expect("sale discount");
    b.wait_for_text("#total", "RD$ 170.00", WAIT)
        .expect("sale discount");
    assert_eq!(
        b.text("#sale-discount").expect("discount shown"),
        "Descuento: −RD$ 5.50"
    );
    look(&b, "discounts");

    // F4: on fiado for Doña Rosa, as a B01.
    b.type_keys(keys::F4).expect("F4");
    b.wait_for("the payment dialog asking for a supervisor", WAIT, |b| {
        b.find("#pay-approver").and_then(|d| d.is_displayed())
    })
    .expect("approval asked for the discount");
    assert!(b
        .find("#pay-discount-note")
        .expect("note")
        .is_displayed()
        .expect("shown"));
    b.wait_for("customers in the payment dialog", WAIT, |b| {
        b.exists(&format!("#pay-customer option[value='{customer}']"))
    })
    .expect("customer listed");
    b.find_by_label("Fiado (monto)")
        .expect("fiado")
        .type_keys("170.00")
        .expect("fiado");
    b.find_by_label("Cliente del fiado")
        .expect("customer")
        .select(&customer)
        .expect("choose");
    b.find_by_label("Comprobante fiscal")
        .expect("document")
        .select("B01")
        .expect("B01");
    let submit = b.find("#form-pay button[type=submit]").expect("pay");
    submit.click().expect("pay");
    b.wait_for_text(
        "#pay-message",
        "requiere el RNC o la cédula del comprador",
        WAIT,
    )
    .expect("B01 without the buyer's RNC refused");
    let buyer = b
        .find_by_label("RNC o cédula del comprador")
        .expect("buyer field");
    buyer.type_keys("101850042").expect("wrong check digit");
    submit.click().expect("pay");
    b.wait_for_text("#pay-message", "RNC o cédula del comprador inválido", WAIT)
        .expect("wrong RNC refused, naming the field");
    look(&b, "buyer rnc refused");
    buyer.clear().expect("clear");
    buyer.type_keys("101850043").expect("rnc");
    b.find_by_label("Nombre o razón social del comprador")
        .expect("buyer name")
        .type_keys("Ferretería Rosa SRL")
        .expect("name");
    submit.click().expect("pay");
    b.wait_for_text("#pay-message", "supervisor debe autorizarlo", WAIT)
        .expect("the discount needs a supervisor");
    let db = rig.node.db().expect("db");
    let sales: i64 = db
        .query_row("SELECT COUNT(*) FROM sales", [], |r| r.get(0))
        .expect("sales");
    assert_eq!(sales, 0, "refusals sell nothing");
    b.find_by_label("Supervisor")
        .expect("supervisor")
        .type_keys("Marta")
        .expect("who");
    b.find_by_label("PIN del supervisor")
        .expect("pin")
        .type_keys(&format!("2222{}", keys::ENTER))
        .expect("pin");
    b.wait_for_text("#shown-text", "Venta registrada", WAIT)
        .expect("sold");
    look(&b, "discounted b01 sold");
    let (_, sale) = last_sale(&rig.node);
    assert_eq!(sale.total.0, 17_000);
    let off: Vec<i64> = sale
        .lines
        .iter()
        .map(|l| l.discount.map_or(0, |d| d.0))
        .collect();
    assert_eq!(off, vec![2_500], "10 % of the line plus the sale's 5.50");
    assert_eq!(
        sale.approval
            .as_ref()
            .map(|a| (a.name.as_str(), a.action.as_str())),
        Some(("Marta", "discount"))
    );
    let f = sale.fiscal.as_ref().expect("fiscal");
    assert!(f.number.starts_with("B01"), "{f:?}");
    assert_eq!(f.buyer_tax_id.as_deref(), Some("101850043"));
    assert_eq!(sale.customer.map(|c| c.to_string()), Some(customer.clone()));
    wait_hub_sale(&rig, &sale.sale_id.to_string());

    // F2: an abono. More than owed is refused; 70.00 in cash is taken.
    b.type_keys(keys::F2).expect("F2");
    wait_shown(&b, "dlg-customers");
    b.wait_for_text("#customer-rows", "RD$ 170.00", WAIT)
        .expect("owes 170.00");
    b.find("#customer-rows button[aria-label='Abonar Doña Rosa']")
        .expect("abono button")
        .click()
        .expect("abono");
    wait_shown(&b, "dlg-debt");
    let amount = b.find_by_label("Monto del abono").expect("amount");
    amount
        .type_keys(&format!("200.00{}", keys::ENTER))
        .expect("too much");
    b.wait_for_text("#debt-message", "mayor que lo que debe", WAIT)
        .expect("overpayment refused");
    look(&b, "abono refused");
    amount.clear().expect("clear");
    amount
        .type_keys(&format!("70.00{}", keys::ENTER))
        .expect("abono");
    b.wait_for_text("#shown-text", "todavía debe RD$ 100.00", WAIT)
        .expect("abono taken");
    look(&b, "abono taken");
    let db = rig.node.db().expect("db");
    let head = Journal::head(&db).expect("head").seq;
    let e = Journal::event(&db, head).expect("event").expect("present");
    match e.body().expect("body") {
        EventBody::DebtPaymentTaken(p) => {
            assert_eq!(p.amount.0, 7_000);
            assert_eq!(p.method, PaymentMethod::Cash);
            assert_eq!(p.customer.to_string(), customer);
        }
        other => panic!("last event is not the abono: {other:?}"),
    }
    let until = Instant::now() + WAIT;
    while hub_count(&rig, "DebtPaymentTaken") < 1 || hub_count(&rig, "CustomerUpserted") < 1 {
        assert!(
            Instant::now() < until,
            "the abono and the customer never reached the hub"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Receipts queued while the printer could not print (its folder gone) are
/// printed by "Reimprimir pendientes" once it is back; then a damaged return
/// from the sales list (the box ticked), approved by the supervisor, is
/// journaled as damaged and reaches the hub.
#[test]
fn pending_receipts_printed_now_and_a_damaged_return() {
    let Some(b) = Browser::start("ui_cashier_print_now_damaged").expect("browser") else {
        return;
    };
    let rig = rig("damaged");
    b.goto(&rig.url).expect("open the screen");
    open_shift(&b);
    let away = rig.tmp.path().join("recibos-fuera");
    std::fs::rename(recibos(&rig), &away).expect("printer gone");
    // A file where the folder was: nothing can be written there.
    std::fs::write(recibos(&rig), b"no es una carpeta").expect("blocker");
    b.type_keys(&format!("2*ARROZ{}", keys::ENTER))
        .expect("scan");
    b.wait_for_text("#total", "RD$ 130.00", WAIT)
        .expect("total");
    b.type_keys(keys::F4).expect("F4");
    wait_shown(&b, "dlg-pay");
    b.type_keys(&format!("200.00{}", keys::ENTER)).expect("pay");
    b.wait_for_text("#shown-text", "cambio RD$ 70.00", WAIT)
        .expect("sold");
    let (_, sale) = last_sale(&rig.node);
    b.wait_for("the status bar to show the receipt waiting", WAIT, |b| {
        Ok(status_bar(b, "printer").contains("recibo"))
    })
    .expect("receipt waiting shown");
    look(&b, "receipt waiting");
    // Wait until the queue's backoff puts the next attempt 8 s or more
    // away: the button must print before then.
    let now_ms = || {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("ms")
    };
    let until = Instant::now() + WAIT;
    let due = loop {
        let next: Option<i64> = rig
            .node
            .db()
            .expect("db")
            .query_row(
                "SELECT next_attempt_ms FROM print_jobs WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .ok();
        if let Some(next) = next.filter(|n| *n - now_ms() >= 8_000) {
            break next;
        }
        assert!(
            Instant::now() < until,
            "the receipt never backed off: {:?}",
            {
                let db = rig.node.db().expect("db");
                db.query_row(
                "SELECT state, attempts, transport_failures, next_attempt_ms, last_error FROM print_jobs",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)? - now_ms(), r.get::<_, Option<String>>(4)?)),
            )
            }
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::fs::remove_file(recibos(&rig)).expect("blocker gone");
    std::fs::rename(&away, recibos(&rig)).expect("printer back");
    b.find("#btn-print-now")
        .expect("print now button")
        .click()
        .expect("print now");
    let receipt = wait_receipt(&rig, &sale.sale_id.to_string());
    assert!(
        now_ms() < due,
        "printed by the button, before its backoff ended"
    );
    assert!(receipt.contains("[GAVETA]"), "a cash sale opens the drawer");
    let said = b
        .wait_for_text("#message", "impreso", WAIT)
        .expect("the button's run printed it");
    assert!(said.contains(&sale.sale_id.to_string()), "{said}");
    look(&b, "printed now");

    // F7, Devolver: one rice, damaged.
    b.type_keys(keys::F7).expect("F7");
    b.wait_for_text("#sales-rows", "RD$ 130.00", WAIT)
        .expect("sales list");
    b.find("#sales-rows button[aria-label^='Devolver']")
        .expect("return button")
        .click()
        .expect("return");
    wait_shown(&b, "dlg-return");
    b.find("#return-lines input.ret-qty")
        .expect("qty")
        .type_keys("1")
        .expect("qty");
    b.find_by_label("Dañado, no vuelve al inventario: Arroz Selecto 1kg")
        .expect("damaged box")
        .click()
        .expect("tick");
    b.find("#dlg-return #return-approver")
        .expect("supervisor")
        .type_keys("Marta")
        .expect("who");
    b.find("#dlg-return #return-pin")
        .expect("pin")
        .type_keys("2222")
        .expect("pin");
    look(&b, "damaged return");
    b.find("#form-return button[type=submit]")
        .expect("submit")
        .click()
        .expect("return");
    b.wait_for_text("#shown-text", "reembolso RD$ 65.00", WAIT)
        .expect("returned");
    look(&b, "returned");
    let db = rig.node.db().expect("db");
    let head = Journal::head(&db).expect("head").seq;
    let e = Journal::event(&db, head).expect("event").expect("present");
    match e.body().expect("body") {
        EventBody::SaleReturned(r) => {
            assert_eq!(r.sale_id, Some(sale.sale_id));
            assert_eq!(r.lines.len(), 1);
            assert!(r.lines[0].damaged, "{r:?}");
            assert_eq!(r.lines[0].qty_milli.0, 1_000);
        }
        other => panic!("last event is not the return: {other:?}"),
    }
    let until = Instant::now() + WAIT;
    while hub_count(&rig, "SaleReturned") < 1 {
        assert!(Instant::now() < until, "the return never reached the hub");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The register's screen restarted with a payment provider at the hub
/// (`azul`) and in the register's configuration.
fn with_provider(rig: &mut Rig) {
    rig.hub.kill().expect("hub down");
    let hub_toml = rig.tmp.path().join("hub").join("hub.toml");
    let text = std::fs::read_to_string(&hub_toml).expect("hub.toml");
    // `caja-hub init` writes an empty `[payment_providers]` table.
    assert!(text.contains("[payment_providers]\n"), "{text}");
    let text = text.replacen(
        "[payment_providers]\n",
        "[payment_providers]\nazul = \"azul-webhook-secret-0123456789\"\n",
        1,
    );
    std::fs::write(&hub_toml, text).expect("hub.toml");
    rig.hub.serve().expect("hub back");
    restart_register(rig, |text| {
        text.insert_str(0, "payment_provider = \"azul\"\n");
    });
}

/// `caja-node run` stopped, its `config.toml` changed by `edit`, started
/// again; waits for the screen.
fn restart_register(rig: &mut Rig, edit: impl FnOnce(&mut String)) {
    rig.node.kill_run().expect("stop the register");
    let cfg_path = rig.tmp.path().join("caja-1").join("config.toml");
    let mut text = std::fs::read_to_string(&cfg_path).expect("config");
    edit(&mut text);
    std::fs::write(&cfg_path, text).expect("config");
    let log = rig.tmp.path().join("caja-node-run-2.log");
    rig.node.start_run(&log).expect("caja-node run");
    let port: u16 = rig
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let until = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "the screen never listened again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Scans ARROZ (RD$ 65.00) and pays it by transfer/QR with `reference`.
fn pay_by_qr(b: &Browser, reference: &str) {
    b.find("#item").expect("item").click().expect("focus");
    b.type_keys(&format!("ARROZ{}", keys::ENTER)).expect("scan");
    b.wait_for_text("#lines", "Arroz Selecto 1kg", WAIT)
        .expect("line");
    b.type_keys(keys::F4).expect("F4");
    b.wait_for("the payment dialog", WAIT, |b| {
        b.find("#dlg-pay").and_then(|d| d.is_displayed())
    })
    .expect("pay dialog");
    b.find_by_label("Transferencia o QR (monto)")
        .expect("transfer field")
        .type_keys("65.00")
        .expect("amount");
    b.find_by_label("Referencia de la transferencia o del QR")
        .expect("reference field")
        .type_keys(reference)
        .expect("reference");
    look(b, &format!("qr payment {reference}"));
    b.type_keys(keys::ENTER).expect("pay");
}

#[test]
fn a_transfer_qr_payment_creates_its_intent_online_and_keeps_its_reference_offline() {
    let Some(b) = Browser::start("ui_cashier_qr").expect("browser") else {
        return;
    };
    let mut rig = rig("qr");
    with_provider(&mut rig);
    b.goto(&rig.url).expect("open the screen");
    open_shift(&b);

    // Online: the sale, then its intent created at head office; the intent's
    // state (from the hub chain) is shown with it.
    pay_by_qr(&b, "QR-1001");
    b.wait_for_text("#shown-intents", "intención de pago", WAIT)
        .expect("intent created");
    b.wait_for_text("#shown-intents", "con azul: pendiente", WAIT)
        .expect("intent state shown");
    look(&b, "qr intent created");
    let (_, sale) = last_sale(&rig.node);
    assert_eq!(sale.payments.len(), 1);
    assert_eq!(sale.payments[0].method, PaymentMethod::Transfer);
    assert_eq!(sale.payments[0].reference.as_deref(), Some("QR-1001"));
    let db = rig.node.db().expect("db");
    let (state, amount): (String, i64) = db
        .query_row(
            "SELECT state, amount FROM payment_intents WHERE sale_id = ?1",
            [sale.sale_id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the intent reached the register through the hub chain");
    assert_eq!((state.as_str(), amount), ("pending", 6500));

    // Offline: the sale stands with its reference, the screen says so.
    rig.hub.kill().expect("hub down");
    pay_by_qr(&b, "QR-1002");
    b.wait_for_text("#shown-intents", "sin conexión", WAIT)
        .expect("offline said");
    assert!(
        b.text("#shown-intents")
            .expect("intents")
            .contains("referencia QR-1002"),
        "the reference stands"
    );
    look(&b, "qr offline");
    let (_, offline) = last_sale(&rig.node);
    assert_ne!(offline.sale_id, sale.sale_id);
    assert_eq!(offline.payments[0].method, PaymentMethod::Transfer);
    assert_eq!(offline.payments[0].reference.as_deref(), Some("QR-1002"));
    let intents: i64 = db
        .query_row(
            "SELECT count(*) FROM payment_intents WHERE sale_id = ?1",
            [offline.sale_id.to_string()],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(intents, 0);
}

#[test]
fn the_drawer_opened_with_the_key_when_the_printer_is_unreachable() {
    let Some(b) = Browser::start("ui_cashier_drawer_manual").expect("browser") else {
        return;
    };
    let mut rig = rig("drawer");
    // The printer is a network printer nothing answers for.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = format!("tcp://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let folder = format!("printer = \"folder://{}\"", recibos(&rig).display());
    restart_register(&mut rig, |text| {
        assert!(text.contains(&folder), "{text}");
        *text = text.replace(&folder, &format!("printer = \"{gone}\""));
    });
    b.goto(&rig.url).expect("open the screen");
    open_shift(&b);
    keyboard_sale(&b);
    let (_, sale) = last_sale(&rig.node);
    let manual = || -> i64 {
        rig.node
            .db()
            .expect("db")
            .query_row(
                "SELECT count(*) FROM drawer_openings WHERE how = 'manual' AND sale_id = ?1",
                [sale.sale_id.to_string()],
                |r| r.get(0),
            )
            .expect("count")
    };

    // The cashier opens the drawer with the key and records it: the dialog
    // comes with the sale just made.
    b.find("#btn-drawer-manual")
        .expect("button")
        .click()
        .expect("click");
    b.wait_for("the drawer dialog", WAIT, |b| {
        b.find("#dlg-drawer").and_then(|d| d.is_displayed())
    })
    .expect("dialog");
    let field = b.find_by_label("Venta de la gaveta").expect("sale field");
    assert_eq!(
        field.value().expect("value"),
        sale.sale_id.to_string(),
        "the last sale is offered"
    );
    look(&b, "drawer dialog");
    b.type_keys(keys::ENTER).expect("confirm");
    b.wait_for_text(
        "#shown-text",
        "Apertura manual de la gaveta registrada",
        WAIT,
    )
    .expect("recorded");
    look(&b, "drawer recorded");
    assert_eq!(manual(), 1);

    // Twice: refused in Spanish, nothing more recorded.
    b.find("#btn-drawer-manual")
        .expect("button")
        .click()
        .expect("click");
    b.wait_for("the drawer dialog", WAIT, |b| {
        b.find("#dlg-drawer").and_then(|d| d.is_displayed())
    })
    .expect("dialog");
    b.type_keys(keys::ENTER).expect("confirm");
    b.wait_for_text("#drawer-message", "ya está registrada", WAIT)
        .expect("refused");
    look(&b, "drawer refused");
    assert_eq!(manual(), 1);

    // Head office sees the opening: one `SaleDrawerOpened` reaches the hub.
    let deadline = Instant::now() + RECONNECT;
    while hub_count(&rig, "SaleDrawerOpened") < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(hub_count(&rig, "SaleDrawerOpened"), 1);
}

/// A customer edited from the customers dialog (F2, "Editar"): the dialog
/// starts from what the register knows; a wrong RNC is refused naming the
/// field with nothing written; the changes are journaled and reach the hub.
#[test]
fn editing_a_customer_from_the_screen() {
    let Some(b) = Browser::start("ui_cashier_customer_edit").expect("browser") else {
        return;
    };
    let rig = rig("edit");
    b.goto(&rig.url).expect("open the screen");
    open_shift(&b);

    b.type_keys(keys::F2).expect("F2");
    wait_shown(&b, "dlg-customers");
    b.find("#cust-name")
        .expect("name")
        .type_keys("Don Pedro")
        .expect("name");
    let limit = b.find("#cust-limit").expect("limit");
    limit.clear().expect("clear");
    limit
        .type_keys(&format!("300.00{}", keys::ENTER))
        .expect("limit");
    b.wait_for_text("#customer-rows", "Don Pedro", WAIT)
        .expect("customer listed");
    let journal_head = || {
        Journal::head(&rig.node.db().expect("db"))
            .expect("head")
            .seq
    };
    let before = journal_head();

    b.find("#customer-rows button[aria-label='Editar Don Pedro']")
        .expect("edit button")
        .click()
        .expect("edit");
    wait_shown(&b, "dlg-customer-edit");
    assert_eq!(
        b.find("#edit-name").expect("name").value().expect("value"),
        "Don Pedro"
    );
    assert_eq!(
        b.find("#edit-limit")
            .expect("limit")
            .value()
            .expect("value"),
        "300.00"
    );
    look(&b, "customer edit dialog");

    // A wrong check digit: refused, naming the field; nothing written.
    b.find("#edit-phone")
        .expect("phone")
        .type_keys("809-555-0101")
        .expect("phone");
    let tax = b.find("#edit-tax-id").expect("tax id");
    tax.type_keys("101850042").expect("tax id");
    let limit = b.find("#edit-limit").expect("limit");
    limit.clear().expect("clear");
    limit
        .type_keys(&format!("750.00{}", keys::ENTER))
        .expect("limit");
    b.wait_for_text(
        "#customer-edit-message",
        "RNC o cédula del cliente inválido",
        WAIT,
    )
    .expect("wrong RNC refused");
    look(&b, "customer edit refused");
    assert_eq!(journal_head(), before, "nothing written");

    tax.clear().expect("clear");
    tax.type_keys("101850043").expect("tax id");
    b.find("#form-customer-edit button[type=submit]")
        .expect("submit")
        .click()
        .expect("save");
    b.wait_for_text("#shown-text", "Cliente Don Pedro actualizado", WAIT)
        .expect("saved");
    look(&b, "customer edited");

    let (phone, tax_id, limit): (Option<String>, Option<String>, i64) = rig
        .node
        .db()
        .expect("db")
        .query_row(
            "SELECT phone, tax_id, credit_limit FROM customers WHERE name = 'Don Pedro'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("customer row");
    assert_eq!(
        (phone.as_deref(), tax_id.as_deref(), limit),
        (Some("809-555-0101"), Some("101850043"), 75_000)
    );
    assert_eq!(journal_head(), before + 1);
    // At the hub: the new customer and its edit.
    let deadline = Instant::now() + RECONNECT;
    while hub_count(&rig, "CustomerUpserted") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(hub_count(&rig, "CustomerUpserted"), 2);
}
