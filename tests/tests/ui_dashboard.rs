//! The head-office dashboard in a real browser (headless Chromium over
//! chromedriver, `caja_tests::browser`) against a real hub and real
//! registers on loopback: a register going offline and coming back on the
//! sync page; a conflict resolved from the queue and reaching both
//! registers; the fiscal per-number report downloaded. Every test saves
//! screenshots under `target/test-output/<test>/` and passes the
//! accessibility check on each page it visits.
//!
//! The three tests take one lock: each starts its own Chromium, and three at
//! once on a loaded 2-core machine only makes every step slower.

use std::sync::Mutex;
use std::time::Duration;

use caja_hub::config::HubConfig;
use caja_hub::ui::text;
use caja_node::register::CustomerRequest;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::testkit;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::browser::{Browser, BrowserError};
use caja_tests::cluster::{fast_sync_settings, op_id, Hub, Till, ADMIN_TOKEN};
use caja_tests::proxy::Mode;
use serde_json::json;

static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::new(());

const SODA: &str = "7460000000011";
/// A register silent this long shows "Sin contacto".
const SILENT_MS: i64 = 3_000;
const WAIT: Duration = Duration::from_secs(60);

fn sync(t: &mut Till) {
    t.sync
        .round()
        .unwrap_or_else(|e| panic!("{} sync: {e}", t.name));
}

/// A hub whose dashboard is used over plain HTTP on loopback (no `Secure`
/// cookies) and calls a register silent after [`SILENT_MS`].
fn hub(dir: &std::path::Path) -> Hub {
    Hub::start_with(&dir.join("hub"), |c| HubConfig {
        ui_secure_cookie: false,
        register_silent_ms: SILENT_MS,
        ..c
    })
    .expect("hub starts")
}

fn sell_soda(t: &mut Till, method: PaymentMethod, customer: Option<caja_shared::ids::CustomerId>) {
    t.register
        .sell(
            op_id(),
            &SaleRequest {
                lines: vec![LineRequest {
                    code: SODA.into(),
                    qty_milli: 1000,
                    discount: None,
                    unit_price: None,
                }],
                payments: vec![PaymentRequest {
                    method,
                    amount: 9_500,
                    reference: None,
                }],
                discount: None,
                customer,
            },
        )
        .unwrap_or_else(|e| panic!("{} sale: {e}", t.name));
}

/// Signs in through the login form, as a person does.
fn login(b: &mut Browser, url: &str, name: &str) -> Result<(), BrowserError> {
    b.goto(&format!("{url}/ui/login"))?;
    b.check_accessibility("login")?;
    b.find_by_label(text::LOGIN_NAME)?.type_keys(name)?;
    b.find_by_label(text::LOGIN_SECRET)?
        .type_keys(ADMIN_TOKEN)?;
    b.screenshot("login")?;
    b.find("form[action='/ui/login'] button[type=submit]")?
        .click()?;
    b.wait_for_text("header.top", name, WAIT)?;
    Ok(())
}

#[test]
fn the_sync_page_shows_a_register_going_offline_and_coming_back() {
    let _one = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = hub(tmp.path());
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut a =
        Till::enroll(&hub, store, "caja-1", tmp.path(), fast_sync_settings()).expect("enroll");
    sync(&mut a);
    a.register
        .open_shift(op_id(), "ana", Money(0))
        .expect("shift");
    sell_soda(&mut a, PaymentMethod::Cash, None);
    sync(&mut a);
    let Some(mut b) = Browser::start("ui_dashboard_offline").expect("browser") else {
        return;
    };
    login(&mut b, &hub.url, "Marta").expect("login");
    let device = hub.get("/v1/admin/devices").expect("devices")["devices"][0]["device"]
        .as_str()
        .expect("device")
        .to_owned();
    let row = format!("#caja-{device}");
    let sync_page = format!("{}/ui/sync", hub.url);

    // Online: the register pushed a moment ago.
    b.wait_for("caja-1 online", WAIT, |b| {
        sync(&mut a);
        b.goto(&sync_page)?;
        Ok(b.text(&row)?.contains(text::LINK_UP))
    })
    .expect("online");
    b.screenshot("online").expect("screenshot");
    b.check_accessibility("sync online").expect("a11y");

    // The network drops; the cashier keeps selling; the hub stops hearing.
    a.set_network(Mode::Down);
    sell_soda(&mut a, PaymentMethod::Cash, None);
    sell_soda(&mut a, PaymentMethod::Cash, None);
    b.wait_for("caja-1 without contact", WAIT, |b| {
        let _ = a.sync.round();
        b.goto(&sync_page)?;
        Ok(b.text(&row)?.contains(text::LINK_DOWN))
    })
    .expect("offline");
    assert!(b.exists(&format!("{row} [data-link=open]")).expect("badge"));
    b.screenshot("offline").expect("screenshot");
    b.check_accessibility("sync offline").expect("a11y");
    // The overview counts it too.
    b.goto(&format!("{}/ui/", hub.url)).expect("overview");
    assert!(b.text("main").expect("main").contains(text::CARD_SILENT));

    // Back: it pushes its backlog and is online again, nothing pending.
    a.set_network(Mode::Up);
    b.wait_for("caja-1 back online", WAIT, |b| {
        sync(&mut a);
        b.goto(&sync_page)?;
        Ok(b.text(&row)?.contains(text::LINK_UP))
    })
    .expect("back online");
    let cells = b.text(&row).expect("row");
    assert!(cells.contains(text::STATUS_ACTIVE), "{cells}");
    b.screenshot("back online").expect("screenshot");
    b.check_accessibility("sync back online").expect("a11y");
    let health = hub.get("/v1/health").expect("health");
    let d = &health["sync"]["devices"][0];
    assert_eq!(d["circuit"], "closed", "{health}");
    assert_eq!(d["backlog"], 0, "{health}");
    let acked = d["acked_seq"].as_u64().expect("acked");
    assert!(cells.contains(&acked.to_string()), "{cells} / {acked}");
}

#[test]
fn a_conflict_is_resolved_from_the_queue_and_reaches_the_registers() {
    let _one = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = hub(tmp.path());
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut a =
        Till::enroll(&hub, store, "caja-1", tmp.path(), fast_sync_settings()).expect("enroll a");
    let mut c =
        Till::enroll(&hub, store, "caja-2", tmp.path(), fast_sync_settings()).expect("enroll b");
    for t in [&mut a, &mut c] {
        sync(t);
        t.register
            .open_shift(op_id(), "ana", Money(0))
            .expect("shift");
    }
    // A sells on fiado; caja-2, offline, takes a payment on the debt while A
    // voids the sale: a payment on a voided debt.
    let customer = a
        .register
        .upsert_customer(
            op_id(),
            &CustomerRequest {
                customer_id: None,
                name: "Doña Carmen".into(),
                phone: None,
                tax_id: None,
                credit_limit: 1_000_000,
            },
        )
        .expect("customer")
        .customer_id;
    let sale = a
        .register
        .sell(
            op_id(),
            &SaleRequest {
                lines: vec![LineRequest {
                    code: SODA.into(),
                    qty_milli: 2000,
                    discount: None,
                    unit_price: None,
                }],
                payments: vec![PaymentRequest {
                    method: PaymentMethod::Fiado,
                    amount: 19_000,
                    reference: None,
                }],
                discount: None,
                customer: Some(customer),
            },
        )
        .expect("fiado sale");
    sync(&mut a);
    sync(&mut c);
    c.set_network(Mode::Down);
    a.register
        .void(op_id(), sale.sale_id, "cliente devolvió todo")
        .expect("void");
    sync(&mut a);
    c.register
        .pay_debt(op_id(), customer, Money(9_500), PaymentMethod::Cash)
        .expect("offline payment");
    c.set_network(Mode::Up);
    sync(&mut c);
    let open = hub
        .get("/v1/admin/conflicts?state=open")
        .expect("conflicts");
    let id = open["conflicts"][0]["conflict_id"]
        .as_str()
        .expect("one open conflict")
        .to_owned();

    let Some(mut b) = Browser::start("ui_dashboard_conflict").expect("browser") else {
        return;
    };
    login(&mut b, &hub.url, "María (oficina)").expect("login");
    b.goto(&format!("{}/ui/conflicts", hub.url)).expect("queue");
    b.screenshot("queue").expect("screenshot");
    b.check_accessibility("conflict queue").expect("a11y");
    b.find(&format!("a[href='/ui/conflicts/{id}']"))
        .expect("conflict link")
        .click()
        .expect("open conflict");
    b.wait_for_text("main", text::CANDIDATES_TITLE, WAIT)
        .expect("detail");
    // Both candidates side by side, each with its resolve button.
    let cards = b
        .find_all(".side-by-side article.candidate")
        .expect("cards");
    assert_eq!(cards.len(), 2);
    let kinds: Vec<String> = cards.iter().map(|c| c.text().expect("card")).collect();
    assert!(
        kinds.iter().any(|k| k.contains("Anulación de venta")),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k.contains("Abono a fiado")),
        "{kinds:?}"
    );
    b.screenshot("candidates").expect("screenshot");
    b.check_accessibility("conflict detail").expect("a11y");

    // The void stands: resolve in its favour, with a note.
    let void_card = (0..2)
        .find(|i| kinds[*i].contains("Anulación de venta"))
        .expect("void card");
    let form = format!(
        ".side-by-side article.candidate:nth-of-type({}) form",
        void_card + 1
    );
    b.find(&format!("{form} textarea"))
        .expect("note")
        .type_keys("La anulación se mantiene; devolver el abono en efectivo")
        .expect("type note");
    b.find(&format!("{form} button[type=submit]"))
        .expect("button")
        .click()
        .expect("resolve");
    b.wait_for_text(".notice", "Conflicto resuelto.", WAIT)
        .expect("resolved notice");
    assert!(!b.exists(".side-by-side form").expect("forms gone"));
    b.screenshot("resolved").expect("screenshot");
    b.check_accessibility("conflict resolved").expect("a11y");

    let done = hub
        .get("/v1/admin/conflicts?state=resolved")
        .expect("resolved");
    let r = &done["conflicts"][0]["resolution"];
    assert_eq!(r["by"], "María (oficina)", "{done}");
    assert_eq!(
        r["note"], "La anulación se mantiene; devolver el abono en efectivo",
        "{done}"
    );
    // The other pages, with this day's data, pass the check too.
    for (path, needle) in [
        ("/ui/", text::SALES_TITLE),
        ("/ui/stores", "caja-2"),
        ("/ui/held", text::QUARANTINE_TITLE),
        ("/ui/stock", text::STOCK_TITLE),
        ("/ui/outbox", text::OUTBOX_TITLE),
        ("/ui/purchases", text::PURCHASES_TITLE),
        ("/ui/audit", text::STH_TITLE),
    ] {
        b.goto(&format!("{}{path}", hub.url)).expect("page");
        b.wait_for_text("main", needle, WAIT).expect("page content");
        b.screenshot(path.trim_matches('/')).expect("screenshot");
        b.check_accessibility(path).expect("a11y");
    }
    b.find("form[action='/ui/audit/verify'] button")
        .expect("verify button")
        .click()
        .expect("verify");
    b.wait_for_text("#verificacion", "El registro verifica", WAIT)
        .expect("verified");
    b.screenshot("audit verified").expect("screenshot");
    b.check_accessibility("audit verified").expect("a11y");

    // The decision reaches both registers with their next sync.
    for t in [&mut a, &mut c] {
        sync(t);
        let status = t.register.status().expect("status");
        assert_eq!(status.conflicts_resolved.len(), 1, "{}", t.name);
        assert_eq!(status.conflicts_resolved[0].conflict_id, id);
        assert_eq!(status.conflicts_resolved[0].resolved_by, "María (oficina)");
    }
}

#[test]
fn the_fiscal_report_is_downloaded_from_the_dashboard() {
    let _one = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = hub(tmp.path());
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let series = hub
        .post(
            "/v1/admin/fiscal/series",
            &json!({"prefix":"B02","digits":8,"first":1,"last":500,"valid_until":"2099-12-31"}),
        )
        .expect("series B02");
    let series_id = series["series_id"].as_str().expect("series id").to_owned();
    let mut a =
        Till::enroll(&hub, store, "caja-1", tmp.path(), fast_sync_settings()).expect("enroll");
    a.configure(
        "fiscal_documents = [\"B02\"]\nfiscal_document = \"B02\"\nfiscal_block_size = 10\nfiscal_low_water = 4",
        fast_sync_settings(),
    )
    .expect("configure");
    sync(&mut a);
    a.register
        .open_shift(op_id(), "ana", Money(0))
        .expect("shift");
    sell_soda(&mut a, PaymentMethod::Cash, None);
    sell_soda(&mut a, PaymentMethod::Cash, None);
    sync(&mut a);

    let Some(mut b) = Browser::start("ui_dashboard_fiscal").expect("browser") else {
        return;
    };
    login(&mut b, &hub.url, "Contabilidad").expect("login");
    b.goto(&format!("{}/ui/fiscal", hub.url)).expect("fiscal");
    let table = b.text("main > table").expect("series table");
    assert!(table.contains("B02"), "{table}");
    assert!(b.exists("figure#quedan svg").expect("chart"));
    b.screenshot("series").expect("screenshot");
    b.check_accessibility("fiscal series").expect("a11y");
    b.find(&format!("a[href='/ui/fiscal/{series_id}']"))
        .expect("report link")
        .click()
        .expect("open report");
    b.wait_for_text("main", "B0200000002", WAIT)
        .expect("report page");
    b.screenshot("per-number report").expect("screenshot");
    b.check_accessibility("per-number report").expect("a11y");

    // The CSV link, fetched by the page itself with the session's cookie.
    let link = b
        .find(&format!("a[href='/ui/fiscal/{series_id}/report.csv']"))
        .expect("csv link");
    assert_eq!(link.text().expect("text"), text::DOWNLOAD_CSV);
    assert!(link.attr("download").expect("attr").is_some());
    let got = b
        .execute(
            r#"return fetch(arguments[0], {credentials: 'same-origin'}).then(async r => ({
                 status: r.status,
                 type: r.headers.get('content-type'),
                 disposition: r.headers.get('content-disposition'),
                 body: await r.text()}));"#,
            vec![json!(format!("/ui/fiscal/{series_id}/report.csv"))],
        )
        .expect("download");
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["type"], "text/csv; charset=utf-8");
    assert!(got["disposition"]
        .as_str()
        .expect("disposition")
        .starts_with("attachment; filename=\"fiscal-B02-"));
    let csv = got["body"].as_str().expect("body");
    std::fs::write(b.output().join("fiscal-B02.csv"), csv).expect("save csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "first,last,count,status,device,grant,sale,sale_event,at_ms"
    );
    assert!(
        lines[1].starts_with("B0200000001,B0200000001,1,used,"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("B0200000002,B0200000002,1,used,"),
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("B0200000003,B0200000010,8,outstanding,")),
        "{csv}"
    );
    assert!(
        lines.last().expect("last").contains(",never_allocated,"),
        "{csv}"
    );
    // Without the session the same link sends to the login page.
    b.execute(
        "document.querySelector(\"form[action='/ui/logout'] button\").click(); return true;",
        vec![],
    )
    .expect("logout");
    b.wait_for_text("main", text::LOGIN_TITLE, WAIT)
        .expect("login page");
    b.screenshot("logged out").expect("screenshot");
    let after = b
        .execute(
            "return fetch(arguments[0], {redirect: 'manual'}).then(r => r.type + ' ' + r.status);",
            vec![json!(format!("/ui/fiscal/{series_id}/report.csv"))],
        )
        .expect("fetch after logout");
    assert_eq!(after, "opaqueredirect 0");
}
