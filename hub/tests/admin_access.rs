//! Who may use the admin token, and for how long: wrong tokens on the
//! endpoints that take it are limited per client address (the address over
//! its limit is refused before its token is compared, the right one
//! included); dashboard sessions end when the admin token changes, and
//! "sign out everyone" ends them all at once.

mod support;

use std::collections::BTreeMap;

use caja_hub::ratelimit::RateLimit;
use support::*;

/// A client whose connections come from `source` (a loopback address).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn status(c: &reqwest::Client, url: &str, token: &str) -> (u16, Option<String>) {
    let r = c.get(url).bearer_auth(token).send().await.unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry)
}

#[tokio::test]
async fn wrong_admin_tokens_are_limited_per_address_before_the_token_is_compared() {
    let hub = TestHub::start_with(caja_hub::config::HubConfig {
        admin_guess_limit: RateLimit {
            burst: 3,
            per_minute: 1,
        },
        ..test_config()
    })
    .await;
    let intruder = client_from("127.0.0.2");
    let office = client_from("127.0.0.1");
    let url = |p: &str| format!("{}{p}", hub.url);
    // Three wrong tokens, on any endpoint that takes the admin token.
    for path in ["/v1/health", "/metrics", "/v1/admin/stores"] {
        assert_eq!(
            status(&intruder, &url(path), "guess-guess-guess-guess")
                .await
                .0,
            401,
            "{path}"
        );
    }
    // Then 429 with Retry-After, for a wrong token and for the right one:
    // a right guess is not recognised while the address is limited.
    for (path, token) in [
        ("/metrics", "guess-guess-guess-guess"),
        ("/v1/health", ADMIN_TOKEN),
        ("/v1/admin/stores", ADMIN_TOKEN),
    ] {
        let (code, retry) = status(&intruder, &url(path), token).await;
        assert_eq!(code, 429, "{path}");
        let wait: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    // Another address is not limited by it.
    assert_eq!(
        status(&office, &url("/v1/health"), ADMIN_TOKEN).await.0,
        200
    );
    assert_eq!(status(&office, &url("/metrics"), ADMIN_TOKEN).await.0, 200);
    assert_eq!(
        status(&office, &url("/metrics"), "guess-guess-guess-guess")
            .await
            .0,
        401
    );
    // Device endpoints do not use the admin token and are not limited by it.
    let r = intruder
        .get(url("/v1/sync/pull?after="))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Cookies by hand, no redirects followed.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Page {
    fn csrf(&self) -> String {
        let key = r#"name="csrf" value=""#;
        let at = self
            .body
            .find(key)
            .unwrap_or_else(|| panic!("no csrf in {}", self.body));
        let rest = &self.body[at + key.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: client_from("127.0.0.1"),
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
        let r = req
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let body = r.text().await.unwrap();
        Page {
            status,
            location,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        self.send(req).await
    }

    /// Signs in with `token`; the home page's CSRF token.
    async fn sign_in(&mut self, name: &str, token: &str) -> String {
        let form = self.get("/ui/login").await;
        let csrf = form.csrf();
        let r = self
            .post(
                "/ui/login",
                &[("csrf", &csrf), ("name", name), ("token", token)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let home = self.get("/ui/").await;
        assert_eq!(home.status, 200, "{}", home.body);
        home.csrf()
    }
}

fn sessions(hub: &TestHub) -> i64 {
    hub.db()
        .query_row("SELECT COUNT(*) FROM ui_sessions", [], |r| r.get(0))
        .unwrap()
}

on_both_backends! {
#[tokio::test]
async fn a_new_admin_token_ends_every_dashboard_session() {
    let mut hub = TestHub::start_with(caja_hub::config::HubConfig {
        ui_secure_cookie: false,
        ..test_config()
    })
    .await;
    let mut ui = Browser::new(&hub.url);
    ui.sign_in("ana", ADMIN_TOKEN).await;
    // A restart with the same token keeps the session.
    hub.restart().await;
    ui.base = hub.url.clone();
    assert_eq!(ui.get("/ui/").await.status, 200);
    // A restart with a new token: the old cookie opens nothing.
    let new_token = "another-admin-token-9876543210fedcba";
    hub.cfg.admin_token = new_token.into();
    hub.restart().await;
    ui.base = hub.url.clone();
    let r = ui.get("/ui/").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/ui/login"));
    // The new token signs in.
    let mut again = Browser::new(&hub.url);
    again.sign_in("ana", new_token).await;
}
}

on_both_backends! {
#[tokio::test]
async fn sign_out_everyone_ends_every_session() {
    let hub = TestHub::start_with(caja_hub::config::HubConfig {
        ui_secure_cookie: false,
        ..test_config()
    })
    .await;
    let mut ana = Browser::new(&hub.url);
    let mut luis = Browser::new(&hub.url);
    let csrf = ana.sign_in("ana", ADMIN_TOKEN).await;
    luis.sign_in("luis", ADMIN_TOKEN).await;
    assert_eq!(sessions(&hub), 2);
    // The button is on every page.
    assert!(ana.get("/ui/").await.body.contains(r#"action="/ui/sessions/end-all""#));
    // Without the session's CSRF token nothing changes.
    let r = ana.post("/ui/sessions/end-all", &[("csrf", &"0".repeat(64))]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(sessions(&hub), 2);
    let r = ana.post("/ui/sessions/end-all", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/ui/login"));
    assert_eq!(sessions(&hub), 0);
    for b in [&mut ana, &mut luis] {
        let r = b.get("/ui/").await;
        assert_eq!(r.location.as_deref(), Some("/ui/login"));
    }
}
}
