//! The head-office dashboard over real loopback HTTP against a real hub:
//! login and logout with cookie flags, the persisted login rate limit,
//! CSRF refusals that change nothing, every page rendering real data,
//! resolving a conflict through its form, the fiscal CSV, the enrollment
//! token and its QR code, and the audit log's verify button and export.

mod support;

use std::collections::BTreeMap;

use caja_hub::workload::Register;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{CustomerId, DebtId, EventId, PaymentId, SaleId, StoreId};
use caja_shared::kind::{
    DebtOpened, DebtPaymentTaken, EventBody, FiscalRef, Payment, PaymentMethod, SaleCreated,
    SaleLine, SaleVoided,
};
use caja_shared::money::{Money, QtyMilli, TaxRateBp};
use serde_json::{json, Value};
use support::*;

const CUSTOMER: &str = "019aaf70-0000-7000-8000-00000000c001";

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn rng() -> SeededRandom {
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    SeededRandom::new((k << 40) ^ now_ms().unsigned_abs())
}

// ---- A browser without a browser: cookies by hand, no redirects followed ----

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    fn location(&self) -> Option<&str> {
        self.headers.get("location").map(|v| v.to_str().unwrap())
    }

    /// The CSRF token of the first form on the page.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie.join("; "))
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        let page = Page {
            status,
            headers,
            body,
        };
        for c in page.set_cookies() {
            let (pair, _) = c.split_once(';').unwrap_or((&c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        page
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        self.send(req).await
    }

    async fn login(&mut self, name: &str, token: &str) -> Page {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/ui/login",
            &[("csrf", &csrf), ("name", name), ("token", token)],
        )
        .await
    }

    /// Logs in and returns the session's CSRF token.
    async fn signed_in(&mut self, name: &str) -> String {
        let r = self.login(name, ADMIN_TOKEN).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let home = self.get("/ui/").await;
        assert_eq!(home.status, 200, "{}", home.body);
        home.csrf()
    }
}

fn count(hub: &TestHub, sql: &str) -> i64 {
    hub.db().query_row(sql, [], |r| r.get(0)).unwrap()
}

// ---- A day's data -------------------------------------------------------------

fn line(product: &str, qty_milli: i64, unit_price: i64) -> SaleLine {
    let total = unit_price * qty_milli / 1000;
    SaleLine {
        product: product.parse().unwrap(),
        name: product.into(),
        qty_milli: QtyMilli(qty_milli),
        unit_price: Money(unit_price),
        tax_bp: TaxRateBp::ZERO,
        discount: None,
        total: Money(total),
        tax: Money(0),
        beyond_quota_milli: None,
        price_override: None,
    }
}

fn sale_body(
    lines: Vec<SaleLine>,
    method: PaymentMethod,
    fiscal: Option<&str>,
    customer: bool,
) -> (SaleId, EventBody) {
    let sale_id = SaleId::new_v7(now_ms(), &mut rng()).unwrap();
    let total: i64 = lines.iter().map(|l| l.total.0).sum();
    let body = EventBody::SaleCreated(SaleCreated {
        sale_id,
        cashier: "ana".into(),
        shift_id: None,
        customer: customer.then(|| CUSTOMER.parse::<CustomerId>().unwrap()),
        fiscal: fiscal.map(|n| FiscalRef {
            series: n[..3].into(),
            number: n.into(),
            modifies: None,
            valid_until: Some("2027-12-31".into()),
            buyer_tax_id: None,
            buyer_name: None,
        }),
        lines,
        total: Money(total),
        tax: Money(0),
        payments: vec![Payment {
            method,
            amount: Money(total),
            reference: None,
        }],
        change: Money(0),
        approval: None,
    });
    (sale_id, body)
}

fn append(reg: &mut Register, store: StoreId, body: EventBody, deps: Vec<EventId>) -> Event {
    reg.append(store, body, deps, now_ms(), &mut rng())
}

struct Day {
    store: StoreId,
    a: Register,
    conflict: String,
    series_id: String,
    void: Event,
    pay: Event,
}

/// A store with two registers: a fiscal cash sale of coffee (stock goes
/// negative: an alert), a fiado sale voided by the other register, and a
/// payment on that debt (a `payment_on_voided_debt` conflict).
async fn day(hub: &TestHub) -> Day {
    let store = hub.create_store("Colmado La Esquina").await;
    let (mut a, _) = hub.enroll(store).await;
    let (mut b, _) = hub.enroll(store).await;
    let series = hub
        .admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&json!({"prefix":"B02","digits":8,"first":1,"last":1000,"valid_until":"2027-12-31"})),
        )
        .await
        .unwrap();
    let series_id = series["series_id"].as_str().unwrap().to_owned();
    let body = serde_json::to_vec(
        &json!({"request_id": "019aaf70-0000-7000-8000-000000000001", "series": "B02", "count": 10}),
    )
    .unwrap();
    let r = hub
        .signed(&a, "POST", "/v1/fiscal/ranges", &body, now_ms())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let (_, cash) = sale_body(
        vec![line("cafe-250g", 2000, 7500)],
        PaymentMethod::Cash,
        Some("B0200000001"),
        false,
    );
    let cash = append(&mut a, store, cash, vec![]);
    let (sale_id, fiado) = sale_body(
        vec![line("rice-1kg", 1000, 6500)],
        PaymentMethod::Fiado,
        None,
        true,
    );
    let fiado = append(&mut a, store, fiado, vec![]);
    let debt_id = DebtId::new_v7(now_ms(), &mut rng()).unwrap();
    let debt = append(
        &mut a,
        store,
        EventBody::DebtOpened(DebtOpened {
            debt_id,
            customer: CUSTOMER.parse().unwrap(),
            sale_id: Some(sale_id),
            amount: Money(6500),
        }),
        vec![fiado.id()],
    );
    let r = hub.push(&a, &[cash, fiado.clone(), debt.clone()]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let void = append(
        &mut b,
        store,
        EventBody::SaleVoided(SaleVoided {
            sale_id,
            reason: "cliente equivocado".into(),
            approval: None,
            approved_by: None,
        }),
        vec![fiado.id()],
    );
    assert_eq!(hub.push(&b, std::slice::from_ref(&void)).await.status, 200);
    let pay = append(
        &mut a,
        store,
        EventBody::DebtPaymentTaken(DebtPaymentTaken {
            payment_id: PaymentId::new_v7(now_ms(), &mut rng()).unwrap(),
            debt_id,
            customer: CUSTOMER.parse().unwrap(),
            method: PaymentMethod::Cash,
            amount: Money(2000),
        }),
        vec![debt.id()],
    );
    let r = hub.push(&a, std::slice::from_ref(&pay)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["conflicts"][0]["reason"], "payment_on_voided_debt");
    let conflict = r.body["conflicts"][0]["conflict_id"]
        .as_str()
        .unwrap()
        .to_owned();
    Day {
        store,
        a,
        conflict,
        series_id,
        void,
        pay,
    }
}

// ---- Tests ----------------------------------------------------------------------

on_both_backends! {
#[tokio::test]
async fn login_sets_safe_cookies_and_logout_ends_the_session() {
    let hub = TestHub::start().await;
    let mut ui = Browser::new(&hub.url);

    // Not signed in: every page sends to the login form.
    for path in [
        "/ui/",
        "/ui/stores",
        "/ui/conflicts",
        "/ui/fiscal/x/report.csv",
    ] {
        let r = ui.get(path).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.location(), Some("/ui/login"), "{path}");
    }
    let form = ui.get("/ui/login").await;
    assert_eq!(form.status, 200);
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    let login_cookie = form.set_cookies().join("\n");
    assert!(login_cookie.starts_with("caja_login="), "{login_cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui/login"] {
        assert!(login_cookie.contains(flag), "{flag} in {login_cookie}");
    }
    assert!(form.body.contains(r#"<html lang="es-DO">"#));
    assert!(form.body.contains(r#"<label for="login-token">"#));

    let r = ui.login("María Pérez", ADMIN_TOKEN).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), Some("/ui/"));
    let session = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("caja_sesion="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui;"] {
        assert!(session.contains(flag), "{flag} in {session}");
    }
    // Only a hash of the session id is stored.
    let id = ui.cookies["caja_sesion"].clone();
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM ui_sessions"), 1);
    let stored: String = hub
        .db()
        .query_row("SELECT session_hash FROM ui_sessions", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, id);
    assert!(!ui.cookies.contains_key("caja_login"));

    let home = ui.get("/ui/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("María Pérez"));
    assert_eq!(home.headers["cache-control"], "no-store");
    // Signed in, the login page sends home.
    assert_eq!(ui.get("/ui/login").await.location(), Some("/ui/"));

    let csrf = home.csrf();
    let out = ui.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), Some("/ui/login"));
    assert!(out.set_cookies()[0].contains("Max-Age=0"));
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM ui_sessions"), 0);
    // The old cookie no longer opens anything.
    ui.cookies.insert("caja_sesion".into(), id);
    assert_eq!(ui.get("/ui/").await.location(), Some("/ui/login"));

    // A login form posted without its cookie (another site) is refused.
    let mut other = Browser::new(&hub.url);
    let r = other
        .post(
            "/ui/login",
            &[
                ("csrf", &"a".repeat(64)),
                ("name", "x"),
                ("token", ADMIN_TOKEN),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM ui_sessions"), 0);
}
}

on_both_backends! {
#[tokio::test]
async fn the_secure_flag_can_be_turned_off_for_loopback_http() {
    let hub = TestHub::start_with(caja_hub::config::HubConfig {
        ui_secure_cookie: false,
        ..test_config()
    })
    .await;
    let mut ui = Browser::new(&hub.url);
    let r = ui.login("ops", ADMIN_TOKEN).await;
    assert_eq!(r.status, 303);
    for c in r.set_cookies() {
        assert!(!c.contains("Secure"), "{c}");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
}
}

on_both_backends! {
#[tokio::test]
async fn wrong_passwords_are_rate_limited_across_restarts() {
    let mut hub = TestHub::start_with(caja_hub::config::HubConfig {
        ui_login_limit: caja_hub::ratelimit::RateLimit {
            burst: 3,
            per_minute: 1,
        },
        ..test_config()
    })
    .await;
    let mut ui = Browser::new(&hub.url);
    for _ in 0..3 {
        let r = ui.login("intruso", "not-the-admin-token").await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.body.contains("La clave no es correcta."));
    }
    // Over the limit, even the right token is refused, with Retry-After.
    let r = ui.login("ops", ADMIN_TOKEN).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(r.body.contains("Demasiados intentos"));
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM ui_sessions"), 0);

    // The bucket is persisted: a restart grants no fresh guesses.
    hub.restart().await;
    let mut ui = Browser::new(&hub.url);
    let r = ui.login("ops", ADMIN_TOKEN).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM ui_sessions"), 0);
}
}

on_both_backends! {
#[tokio::test]
async fn forms_without_the_session_csrf_token_change_nothing() {
    let hub = TestHub::start().await;
    let d = day(&hub).await;
    let mut ui = Browser::new(&hub.url);
    let csrf = ui.signed_in("ops").await;
    let mut other = Browser::new(&hub.url);
    let other_csrf = other.signed_in("otra").await;
    assert_ne!(csrf, other_csrf);

    let before = (
        hub.business_state(),
        count(&hub, "SELECT COUNT(*) FROM stores"),
        count(&hub, "SELECT COUNT(*) FROM audit_log"),
        count(&hub, "SELECT COUNT(*) FROM enrollment_tokens"),
    );
    let resolve = format!("/ui/conflicts/{}/resolve", d.conflict);
    let winner = d.void.id().to_string();
    let revoke = format!("/ui/devices/{}/revoke", d.a.device);
    let posts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/ui/stores", vec![("name", "Tienda falsa")]),
        ("/ui/stores", vec![("name", "Tienda falsa"), ("csrf", "")]),
        (
            "/ui/stores",
            vec![("name", "Tienda falsa"), ("csrf", &other_csrf)],
        ),
        (&resolve, vec![("winner", &winner), ("note", "x")]),
        (
            &resolve,
            vec![("winner", &winner), ("note", "x"), ("csrf", &other_csrf)],
        ),
        (&revoke, vec![("reason", "x"), ("csrf", "0000")]),
        (
            "/ui/stores/enroll",
            vec![("store", "x"), ("name", "caja 9")],
        ),
        ("/ui/audit/sign", vec![]),
        ("/ui/logout", vec![]),
    ];
    for (path, fields) in posts {
        let r = ui.post(path, &fields).await;
        assert_eq!(r.status, 403, "{path} {fields:?}");
        assert!(r.body.contains("código de seguridad"), "{}", r.body);
    }
    let after = (
        hub.business_state(),
        count(&hub, "SELECT COUNT(*) FROM stores"),
        count(&hub, "SELECT COUNT(*) FROM audit_log"),
        count(&hub, "SELECT COUNT(*) FROM enrollment_tokens"),
    );
    assert_eq!(before, after);
    let open = hub.admin_get("/v1/admin/conflicts?state=open").await;
    assert_eq!(open["conflicts"].as_array().unwrap().len(), 1);
    // Still signed in (the refused logout did nothing).
    assert_eq!(ui.get("/ui/").await.status, 200);
    // And a GET never changes anything.
    assert_eq!(ui.get("/ui/stores?name=x").await.status, 200);
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM stores"), before.1);
}
}

on_both_backends! {
#[tokio::test]
async fn every_page_renders_the_real_data() {
    let hub = TestHub::start().await;
    let d = day(&hub).await;
    let mut ui = Browser::new(&hub.url);
    ui.signed_in("ops").await;

    let expect = |page: &Page, path: &str, needles: &[&str]| {
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        for n in needles {
            assert!(page.body.contains(n), "{path} lacks {n:?}:\n{}", page.body);
        }
    };
    let conflict_page = format!("/ui/conflicts/{}", d.conflict);
    let series_page = format!("/ui/fiscal/{}", d.series_id);
    let a = d.a.device.to_string();
    let pages: Vec<(&str, Vec<&str>)> = vec![
        (
            "/ui/",
            vec![
                "Colmado La Esquina: RD$ 150.00 en 24 horas",
                "Degradado",
                "1 conflicto(s) esperan una decisión.",
                "<svg",
                "Ver datos",
            ],
        ),
        (
            "/ui/stores",
            vec!["Colmado La Esquina", "caja 1", &a, "Activa", "Rotar clave"],
        ),
        (
            "/ui/sync",
            vec!["En línea", "Retraso de sincronización", &a],
        ),
        (
            "/ui/held",
            vec![
                "Ninguna caja está en cuarentena.",
                "No hay eventos retenidos.",
            ],
        ),
        (
            "/ui/conflicts",
            vec![
                "Abono a una deuda cuya venta fue anulada",
                "Conflictos abiertos (1)",
            ],
        ),
        (
            &conflict_page,
            vec![
                "Anulación de venta",
                "Abono a fiado",
                "Resolver a favor de este",
                "cliente equivocado",
                "RD$ 20.00",
            ],
        ),
        (
            "/ui/stock",
            vec!["Existencia negativa", "cafe-250g", ">2.000<"],
        ),
        (
            "/ui/fiscal",
            vec!["B02", "Números que quedan por serie", "Descargar CSV"],
        ),
        (
            &series_page,
            vec![
                "B0200000001",
                "Usados",
                "En manos de cajas",
                "Nunca asignados",
            ],
        ),
        (
            "/ui/outbox",
            vec![
                "Comprobantes por estado",
                "Rechazado",
                "Todavía no hay comprobantes",
            ],
        ),
        (
            "/ui/purchases",
            vec![
                "Comprobantes recibidos de proveedores",
                "Todavía no se ha recibido ningún comprobante",
                "Ningún comprador ha aprobado",
            ],
        ),
        (
            "/ui/audit",
            vec![
                "Última cabeza firmada",
                "Verificar ahora",
                "Clave pública del hub",
            ],
        ),
    ];
    for (path, needles) in pages {
        let page = ui.get(path).await;
        expect(&page, path, &needles);
        // Every input has a label; the navigation marks where we are.
        let inputs = page.body.matches("<input id=").count()
            + page.body.matches("<textarea id=").count()
            + page.body.matches("<select id=").count();
        assert_eq!(inputs, page.body.matches("<label for=").count(), "{path}");
        assert!(page.body.contains(r#"aria-current="page""#), "{path}");
    }
    // A stock alert acknowledged through its form.
    let stock = ui.get("/ui/stock").await;
    let key = format!("negative:{}:cafe-250g", d.store);
    let r = ui
        .post(
            "/ui/stock/decide",
            &[
                ("csrf", &stock.csrf()),
                ("key", &key),
                ("state", "acknowledged"),
                ("note", "conteo el lunes"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let stock = ui.get(r.location().unwrap()).await;
    assert!(
        stock.body.contains("Recibida") && stock.body.contains("ops: conteo el lunes"),
        "{}",
        stock.body
    );
    let bad = ui
        .post(
            "/ui/stock/decide",
            &[("csrf", &stock.csrf()), ("key", &key), ("state", "borrada")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("Decisión"), "{}", bad.body);
    let health = ui.get("/ui/health.json").await;
    let v: Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(v["overall"], "degraded");
    assert_eq!(v["conflicts"]["open"], 1);
    // Unknown ids are a plain 404 page, not a panic.
    for path in [
        "/ui/conflicts/not-an-id",
        "/ui/conflicts/019aaf70-0000-8000-8000-000000000000",
        "/ui/fiscal/nope",
        "/ui/fiscal/nope/report.csv",
    ] {
        assert_eq!(ui.get(path).await.status, 404, "{path}");
    }
}
}

on_both_backends! {
#[tokio::test]
async fn a_conflict_is_resolved_through_its_form() {
    let hub = TestHub::start().await;
    let d = day(&hub).await;
    let mut ui = Browser::new(&hub.url);
    ui.signed_in("Marta").await;
    let path = format!("/ui/conflicts/{}", d.conflict);
    let page = ui.get(&path).await;
    let csrf = page.csrf();
    let action = format!("/ui/conflicts/{}/resolve", d.conflict);
    assert!(page.body.contains(&action));
    let winner = d.void.id().to_string();

    // Bad input: a clear sentence naming the field, and nothing changes.
    let before = (
        hub.business_state(),
        count(&hub, "SELECT COUNT(*) FROM audit_log"),
    );
    let stranger = "019aaf70-0000-7000-8000-0000000000ee";
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("csrf", &csrf), ("winner", &winner)], 400, "Nota"),
        (
            vec![("csrf", &csrf), ("winner", &winner), ("note", "   ")],
            400,
            "Nota",
        ),
        (
            vec![("csrf", &csrf), ("winner", "no"), ("note", "x")],
            400,
            "Ganador",
        ),
        (
            vec![("csrf", &csrf), ("winner", stranger), ("note", "x")],
            400,
            "Ganador",
        ),
    ];
    for (fields, status, needle) in cases {
        let r = ui.post(&action, &fields).await;
        assert_eq!(r.status, status, "{fields:?}: {}", r.body);
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
        assert!(r.body.contains("No se cambió nada"), "{}", r.body);
    }
    let r = ui
        .post(
            "/ui/conflicts/zzz/resolve",
            &[("csrf", &csrf), ("note", "x")],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        before,
        (
            hub.business_state(),
            count(&hub, "SELECT COUNT(*) FROM audit_log")
        )
    );

    let r = ui
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("winner", &winner),
                ("note", "La anulación se mantiene; devolver el abono"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), Some(format!("{path}?ok=resolved").as_str()));
    let page = ui.get(r.location().unwrap()).await;
    assert!(page.body.contains("Conflicto resuelto."));
    assert!(page.body.contains("Marta: La anulación se mantiene"));
    assert!(!page.body.contains("Resolver a favor de este"));

    let all = hub.admin_get("/v1/admin/conflicts?state=resolved").await;
    let c = &all["conflicts"][0];
    assert_eq!(c["resolution"]["by"], "Marta");
    assert_eq!(c["resolution"]["winner"], winner);
    let audit: Vec<u8> = hub
        .db()
        .query_row(
            "SELECT entry FROM audit_log WHERE kind = 'conflict_resolved'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let audit: Value = serde_json::from_slice(&audit).unwrap();
    assert_eq!(audit["data"]["by"], "Marta");

    // Twice: refused, nothing more written.
    let n = count(&hub, "SELECT COUNT(*) FROM audit_log");
    let again = ui
        .post(&action, &[("csrf", &csrf), ("note", "otra vez")])
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("ya estaba resuelto"));
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM audit_log"), n);
    let _ = d.pay;
}
}

on_both_backends! {
#[tokio::test]
async fn the_fiscal_report_downloads_as_csv() {
    let hub = TestHub::start().await;
    let d = day(&hub).await;
    let mut ui = Browser::new(&hub.url);
    ui.signed_in("ops").await;
    let r = ui
        .get(&format!("/ui/fiscal/{}/report.csv", d.series_id))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    let disposition = r.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"fiscal-B02-"),
        "{disposition}"
    );
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(
        lines[0],
        "first,last,count,status,device,grant,sale,sale_event,at_ms"
    );
    assert!(
        lines[1].starts_with("B0200000001,B0200000001,1,used,"),
        "{}",
        r.body
    );
    assert!(
        lines[2].starts_with("B0200000002,B0200000010,9,outstanding,"),
        "{}",
        r.body
    );
    assert!(
        lines[3].starts_with("B0200000011,B0200001000,990,never_allocated,"),
        "{}",
        r.body
    );
    // The same bytes as the admin API's report.
    let api = hub
        .http
        .get(format!(
            "{}/v1/admin/fiscal/report?series=B02&format=csv",
            hub.url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(api, r.body);
}
}

on_both_backends! {
#[tokio::test]
async fn an_enrollment_token_is_shown_as_text_and_qr_and_enrolls_a_register() {
    let hub = TestHub::start().await;
    let store = hub.create_store("Farmacia Central").await;
    let mut ui = Browser::new(&hub.url);
    let csrf = ui.signed_in("ops").await;
    let page = ui.get("/ui/stores").await;
    assert!(page.body.contains(&format!(
        r#"<option value="{store}">Farmacia Central</option>"#
    )));

    // Bad input first: nothing is created.
    for (fields, needle) in [
        (
            vec![("csrf", csrf.as_str()), ("store", &store.to_string())],
            "Nombre",
        ),
        (
            vec![("csrf", csrf.as_str()), ("store", "x"), ("name", "caja 1")],
            "Tienda",
        ),
    ] {
        let r = ui.post("/ui/stores/enroll", &fields).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(needle), "{}", r.body);
    }
    let unknown = ui
        .post(
            "/ui/stores/enroll",
            &[
                ("csrf", &csrf),
                ("store", "019aaf70-0000-7000-8000-0000000000ff"),
                ("name", "c"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM enrollment_tokens"), 0);

    let r = ui
        .post(
            "/ui/stores/enroll",
            &[
                ("csrf", &csrf),
                ("store", &store.to_string()),
                ("name", "caja 7"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body.find(r#"id="token">"#).unwrap() + r#"id="token">"#.len();
    let token = r.body[at..at + r.body[at..].find('<').unwrap()].to_owned();
    assert!(token.len() >= 32, "{token}");
    assert!(r.body.contains(&format!("--token {token}")));
    // The QR code on the page is the token's, rendered by the qrcode crate.
    let qr = caja_hub::ui::qr_svg(&token, caja_hub::ui::text::QR_LABEL).unwrap();
    assert!(r.body.contains(&qr), "no QR of the token");
    assert!(qr.contains(r#"role="img""#) && qr.starts_with("<svg"));
    // It is a real one-time token.
    let (status, v) = hub
        .post_json("/v1/devices/enroll", &json!({ "token": token }))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["store"], store.to_string());
    let (status, _) = hub
        .post_json("/v1/devices/enroll", &json!({ "token": token }))
        .await;
    assert_eq!(status, 401);
    let page = ui.get("/ui/stores").await;
    assert!(page.body.contains("caja 7"));
}
}

on_both_backends! {
#[tokio::test]
async fn registers_are_revoked_and_rotated_and_quarantines_released_from_the_dashboard() {
    let hub = TestHub::start().await;
    let store = hub.create_store("Colmado").await;
    let (a, _) = hub.enroll(store).await;
    let (b, _) = hub.enroll(store).await;
    let mut ui = Browser::new(&hub.url);
    let csrf = ui.signed_in("ops").await;

    let r = ui
        .post(
            &format!("/ui/devices/{}/rotate", a.device),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Clave rotada"));
    assert_eq!(
        count(
            &hub,
            &format!(
                "SELECT COUNT(*) FROM device_keys WHERE device_id = '{}'",
                a.device
            )
        ),
        2
    );

    let r = ui
        .post(
            &format!("/ui/devices/{}/revoke", b.device),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 400, "a reason is required");
    let r = ui
        .post(
            &format!("/ui/devices/{}/revoke", b.device),
            &[("csrf", &csrf), ("reason", "robada")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = ui.get(r.location().unwrap()).await;
    assert!(page.body.contains("Caja revocada"));
    assert!(page.body.contains("Revocada"));
    let pushed = hub.pull(&b, "").await;
    assert_eq!(pushed.status, 401);

    // A quarantine (set as a chain mismatch sets it), released with a note.
    hub.db()
        .execute(
            "UPDATE devices SET quarantined_at_ms = 1, quarantine_reason = 'chain_mismatch' WHERE device_id = $1",
            [a.device.to_string()],
        )
        .unwrap();
    let page = ui.get("/ui/held").await;
    assert!(page.body.contains("Levantar la cuarentena"));
    let release = format!("/ui/devices/{}/release", a.device);
    assert_eq!(ui.post(&release, &[("csrf", &csrf)]).await.status, 400);
    let r = ui
        .post(
            &release,
            &[("csrf", &csrf), ("note", "restaurada de copia; revisada")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM devices WHERE quarantined_at_ms IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM audit_log WHERE kind = 'quarantine_released'"
        ),
        1
    );
}
}

#[tokio::test]
async fn the_audit_log_verifies_from_the_button_and_its_export_downloads() {
    let hub = TestHub::start().await;
    let _ = day(&hub).await;
    let mut ui = Browser::new(&hub.url);
    let csrf = ui.signed_in("ops").await;

    let r = ui.post("/ui/audit/verify", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#"data-verified="true""#), "{}", r.body);
    assert!(r.body.contains("El registro verifica"));

    let r = ui.post("/ui/audit/export", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/x-tar");
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("audit.tar");
    // `text()` would mangle nothing here: every file of the export is ASCII.
    std::fs::write(&tar_path, r.body.as_bytes()).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar_path)
        .arg("-C")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sth: Value = hub.admin_get("/v1/audit/sth").await;
    let export = dir.path().join(format!("caja-audit-{}", sth["tree_size"]));
    let report = caja_hub::audit_export::verify(&export).unwrap();
    assert_eq!(report.entries, sth["tree_size"].as_u64().unwrap());
    // The scratch directories are removed (the download's thread removes
    // its own once the last byte is handed over: wait for it).
    let leftovers = || {
        std::fs::read_dir(hub.data_dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("ui-audit-"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while leftovers() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(leftovers(), 0);

    // An entry edited behind the hub's back: the button says so, naming it.
    // (SQLite's file edited by hand: this test stays SQLite-only.)
    let db = hub.db();
    db.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    let changed = db
        .execute(
            "UPDATE audit_log SET entry = CAST(REPLACE(CAST(entry AS TEXT), '\"at_ms\":', '\"at_ms\":1') AS BLOB) WHERE idx = 1",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let r = ui.post("/ui/audit/verify", &[("csrf", &csrf)]).await;
    assert!(r.body.contains(r#"data-verified="false""#), "{}", r.body);
    assert!(r.body.contains("entry 1 was changed"), "{}", r.body);
}

#[tokio::test]
async fn the_overview_shows_the_hubs_certificate_state() {
    use support::pki;
    let Some(pki) = pki::Pki::get() else { return };
    let hub = TestHub::start().await;
    let mut ui = Browser::new(&hub.url);
    ui.signed_in("Marta").await;
    hub.admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&json!({"prefix":"E32","digits":10,"first":1,"last":1000,"valid_until":"2099-12-31"})),
        )
        .await
        .unwrap();
    let home = ui.get("/ui/").await;
    assert!(
        home.body
            .contains("No hay certificado de firma e-CF instalado en el hub"),
        "{}",
        home.body
    );
    caja_hub::certificate::install(
        &hub.data_dir(),
        &pki.soon_p12,
        &pki::Pki::read(&pki.soon_p12),
        pki::P12_PASSWORD,
        support::now_ms(),
    )
    .unwrap();
    let home = ui.get("/ui/").await;
    assert!(
        home.body
            .contains("El certificado de firma e-CF del hub vence en"),
        "{}",
        home.body
    );
    assert!(home.body.contains("Certificado e-CF (días)"));
    assert!(!home.body.contains("No hay certificado de firma"));
}
