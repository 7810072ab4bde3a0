//! What an operator runs against a real hub: the `/metrics` scrape (the
//! operator's gauges, the duration histogram by route template and status,
//! the backup stamp) checked against the shipped alert rules and dashboard,
//! and the shipped catalog example and CSV import through the real
//! `caja-hub admin load-catalog` binary.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_caja-hub");

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

async fn scrape(hub: &TestHub) -> String {
    let r = hub
        .http
        .get(format!("{}/metrics", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The sample names the exposition can hold, from its `# TYPE` lines
/// (a counter's samples end in `_total`, a histogram's in `_bucket`, `_sum`,
/// `_count`).
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
    names
}

/// The value of the sample `name{labels}` (`labels` as printed, or empty).
fn sample(text: &str, series: &str) -> Option<i64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series || s == format!("{series}{{}}")).then(|| v.parse().ok())?
    })
}

const PROMQL_FUNCTIONS: &[&str] = &[
    "absent",
    "delta",
    "histogram_quantile",
    "increase",
    "max",
    "min",
    "rate",
    "sum",
];
const PROMQL_WORDS: &[&str] = &["and", "or", "unless", "by", "without", "on", "bool"];
/// Prometheus' own series, not the hub's.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// The metric names a PromQL expression reads (string literals, label
/// matchers, grouping labels, ranges and numbers left out); every function
/// it calls must be known.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
        } else if c == '{' || c == '[' || (c == '(' && after_grouping) {
            let close = match c {
                '{' => '}',
                '[' => ']',
                _ => ')',
            };
            while i < chars.len() && chars[i] != close {
                i += 1;
            }
            i += 1;
            after_grouping = false;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let call = chars.get(j) == Some(&'(');
            if matches!(word.as_str(), "by" | "without" | "on" | "ignoring") {
                after_grouping = true;
            } else if call || PROMQL_FUNCTIONS.contains(&word.as_str()) {
                assert!(
                    PROMQL_FUNCTIONS.contains(&word.as_str()),
                    "unknown function {word} in {expr}"
                );
            } else if !PROMQL_WORDS.contains(&word.as_str()) {
                out.push(word);
            }
        } else {
            if c.is_ascii_digit() || c == '.' {
                // A number (or a duration suffix read as part of it).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                continue;
            }
            i += 1;
        }
    }
    out
}

#[test]
fn promql_reader_finds_metric_names_only() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (route, le) (rate(caja_hub_x_bucket{status=~"5.."}[5m]))) > 2"#
        ),
        ["caja_hub_x_bucket"]
    );
    assert_eq!(
        metric_names(r#"absent(caja_hub_a) and on() (up{job="caja-hub"} == 1)"#),
        ["caja_hub_a", "up"]
    );
}

fn check_expr(expr: &str, exported: &BTreeSet<String>, what: &str) {
    let names = metric_names(expr);
    assert!(!names.is_empty(), "{what}: no metric in {expr}");
    for n in names {
        assert!(
            exported.contains(&n) || PROMETHEUS_SERIES.contains(&n.as_str()),
            "{what}: {n} is not exported by the hub (expr {expr})"
        );
    }
}

on_both_backends! {
#[tokio::test(flavor = "multi_thread")]
async fn metrics_feed_every_alert_rule_and_dashboard_panel() {
    let hub = TestHub::start().await;
    let store = hub.create_store("Colmado La Esquina").await;
    let _register = hub.enroll(store).await;
    hub.admin
        .post(
            "/v1/admin/fiscal/series",
            &json!({"prefix":"B02","digits":8,"first":1,"last":300,"valid_until":"2099-12-31"}),
        )
        .await
        .unwrap();
    hub.admin.sign_tree_head().await.unwrap();
    // A 404 on a route with a device id in its path: the label is the template.
    let r = hub
        .http
        .post(format!(
            "{}/v1/admin/devices/01935f4e-8a00-7000-8000-00000000dead/revoke",
            hub.url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let text = scrape(&hub).await;
    assert!(
        text.lines().any(
            |l| l.starts_with("caja_hub_request_duration_seconds_bucket{le=")
                && l.contains(r#",route="/v1/admin/devices/{device}/revoke",status="404"}"#)
        ),
        "{text}"
    );
    assert!(
        !text.contains("00000000dead"),
        "a raw path is a label: {text}"
    );
    assert_eq!(sample(&text, "caja_hub_registers_active"), Some(1));
    assert_eq!(
        sample(&text, "caja_hub_registers_silent"),
        Some(1),
        "enrolled, never pushed"
    );
    assert_eq!(sample(&text, "caja_hub_devices_quarantined"), Some(0));
    assert_eq!(sample(&text, "caja_hub_held_events"), Some(0));
    assert_eq!(
        sample(&text, r#"caja_hub_fiscal_numbers_free{prefix="B02"}"#),
        Some(300)
    );
    assert!(sample(&text, "caja_hub_audit_log_entries").unwrap() > 0);
    assert!(sample(&text, "caja_hub_audit_signed_head_age_seconds").is_some());
    assert_eq!(
        sample(&text, "caja_hub_certificate_days_to_expiry"),
        None,
        "no certificate: no sample"
    );
    assert_eq!(sample(&text, "caja_hub_backup_age_seconds"), None);

    // With the e-CF certificate installed, its days to expiry.
    tokio::task::block_in_place(|| hub.install_test_certificate());
    // The backup command's stamp (Unix ms) in the data directory.
    let stamp = hub.data_dir().join(caja_hub::metrics::BACKUP_STAMP_FILE);
    std::fs::write(&stamp, format!("{}\n", now_ms() - 7_200_000)).unwrap();
    let text = scrape(&hub).await;
    let age = sample(&text, "caja_hub_backup_age_seconds").expect(&text);
    let days = sample(&text, "caja_hub_certificate_days_to_expiry").expect(&text);
    assert!(days > 0, "{days}");
    assert!((7_200..7_260).contains(&age), "{age}");
    std::fs::remove_file(&stamp).unwrap();
    assert_eq!(
        sample(&scrape(&hub).await, "caja_hub_backup_age_seconds"),
        None
    );

    let exported = exported_names(&text);
    // Alert rules: YAML, each with a name, an expression over exported
    // metrics, a severity and a summary.
    let rules_text = std::fs::read_to_string(docs().join("alerts/caja.rules.yml")).unwrap();
    let docs_yaml = yaml_rust2::YamlLoader::load_from_str(&rules_text).unwrap();
    let mut n = 0;
    for group in docs_yaml[0]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name");
            let expr = rule["expr"].as_str().expect("expr");
            check_expr(expr, &exported, name);
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("critical" | "warning" | "info")
                ),
                "{name}: severity"
            );
            assert!(rule["annotations"]["summary"].as_str().is_some(), "{name}");
            n += 1;
        }
    }
    assert!(n >= 15, "{n} rules");
    // The dashboard: every panel's query reads exported metrics.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(docs().join("alerts/caja-hub.dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            check_expr(
                t["expr"].as_str().unwrap(),
                &exported,
                panel["title"].as_str().unwrap(),
            );
        }
    }
}
}

fn load_catalog(hub: &TestHub, file: &Path, stores: &[String]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["admin", "load-catalog"])
        .arg(file)
        .env("CAJA_HUB_URL", &hub.url)
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN);
    for s in stores {
        cmd.args(["--store", s]);
    }
    cmd.output().unwrap()
}

fn counts(hub: &TestHub) -> (i64, i64, i64) {
    let db = hub.db();
    let one = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    (
        one("SELECT COUNT(*) FROM p_catalog"),
        one("SELECT COUNT(*) FROM p_prices"),
        one("SELECT COUNT(*) FROM events"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_catalog_loads_and_a_bad_csv_changes_nothing() {
    let hub = TestHub::start().await;
    let store = hub.create_store("Colmado").await.to_string();
    let other = hub.create_store("Minimarket").await.to_string();
    let h = &hub;
    let example = docs().join("catalog.example.json");
    let out = tokio::task::block_in_place(|| load_catalog(h, &example, &[]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let example_items =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&example).unwrap())
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .len() as i64;
    let (items, prices, _) = counts(&hub);
    assert_eq!(items, 2 * example_items, "both stores");
    assert_eq!(prices, 2 * example_items);

    // The CSV twin of the example, into one store.
    let csv = docs().join("catalog.example.csv");
    let before = counts(&hub);
    let out = tokio::task::block_in_place(|| load_catalog(h, &csv, std::slice::from_ref(&store)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["stores"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["stores"][0]["events"], 2 * example_items);
    let after = counts(&hub);
    assert_eq!(after.0, before.0, "same products, replaced");
    assert!(after.2 > before.2);

    // A bad file: an error on line 3, column 3, and nothing loaded anywhere.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("productos.csv");
    std::fs::write(
        &bad,
        "código,nombre,precio,itbis,unidad\nNUEVO,Producto nuevo,10.00,18,ud\nOTRO,Otro,7.5.0,18,ud\n",
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| load_catalog(h, &bad, std::slice::from_ref(&other)));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3, column 3 (precio)"), "{err}");
    assert!(err.contains("nothing loaded"), "{err}");
    assert_eq!(counts(&hub), after, "a bad file changed something");
}
