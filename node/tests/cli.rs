//! The real `caja-node` binary answers `version` and `--help`.

use std::process::Command;

#[test]
fn version_names_the_protocol_versions() {
    let out = Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .arg("version")
        .output()
        .expect("caja-node runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.starts_with(&format!("caja-node {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("event envelope v1"), "{text}");
}

#[test]
fn help_lists_commands_and_unknown_commands_fail() {
    let out = Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .arg("--help")
        .output()
        .expect("caja-node runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("version"));
    let bad = Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .arg("no-such-command")
        .output()
        .expect("caja-node runs");
    assert_eq!(bad.status.code(), Some(2), "usage errors exit with 2");
}

#[test]
fn a_register_runs_from_the_sample_catalog_with_the_documented_commands() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("caja-1");
    let page = dir.path().join("page.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_caja-node"))
            .env("CAJA_NODE_DATA_DIR", &data)
            .args(args)
            .output()
            .expect("caja-node runs")
    };
    let store = "01935f4e-8a00-7000-8000-000000000001";
    let out = run(&[
        "--json",
        "sample-catalog",
        "--store",
        store,
        "--out",
        page.to_str().expect("path"),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let key = v["hub_key"].as_str().expect("hub_key").to_owned();
    // Before init: not ready.
    assert_eq!(run(&["status"]).status.code(), Some(4));
    assert!(run(&["init", "--store", store, "--hub-key", &key])
        .status
        .success());
    assert!(
        run(&["hub", "import", "--file", page.to_str().expect("path")])
            .status
            .success()
    );
    // Selling without a shift is refused (3) and the message is Spanish.
    let out = run(&["sell", "--item", "ARROZ", "--cash", "65"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("turno"));
    assert!(
        run(&["shift", "open", "--cashier", "ana", "--float", "5000"])
            .status
            .success()
    );
    let out = run(&[
        "--json",
        "sell",
        "--item",
        "ARROZ:2",
        "--item",
        "2000000000017:0.455",
        "--cash",
        "400",
    ]);
    assert!(out.status.success());
    let sale: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(sale["total"], serde_json::json!(30290));
    assert_eq!(sale["change"], serde_json::json!(9710));
    // The same op id twice: one sale.
    let op = "019aaf70-dbf4-7000-8000-0000000f0001";
    let a = run(&[
        "--json", "sell", "--item", "ARROZ", "--cash", "65", "--op", op,
    ]);
    let b = run(&[
        "--json", "sell", "--item", "ARROZ", "--cash", "65", "--op", op,
    ]);
    assert_eq!(a.stdout, b.stdout);
    let s: serde_json::Value =
        serde_json::from_slice(&run(&["--json", "status"]).stdout).expect("status json");
    assert_eq!(s["head_seq"], serde_json::json!(3));
    // A partial return (1 of the 2 rice) refunded in cash, a drop, a paid-in.
    let sale_id = sale["sale_id"].as_str().expect("sale id");
    let out = run(&["--json", "return", "--sale", sale_id, "--line", "0:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["total"], serde_json::json!(6500));
    let out = run(&["return", "--sale", sale_id, "--line", "0:2"]);
    assert_eq!(out.status.code(), Some(3), "more than is left");
    assert!(String::from_utf8_lossy(&out.stderr).contains("quedan"));
    assert!(
        run(&["return", "--sale", sale_id, "--line", "zero"])
            .status
            .code()
            == Some(3)
    );
    assert!(run(&[
        "cash",
        "drop",
        "--amount",
        "1000",
        "--reason",
        "caja fuerte"
    ])
    .status
    .success());
    assert!(run(&["cash", "in", "--amount", "10", "--reason", "cambio"])
        .status
        .success());
    assert_eq!(
        run(&["cash", "sideways", "--amount", "10", "--reason", "x"])
            .status
            .code(),
        Some(3)
    );
    // 5367.90 expected before − 65.00 refunded − 1000.00 dropped + 10.00 paid in.
    let out = run(&["shift", "close", "--counted", "4312.90"]);
    assert!(out.status.success());
    let z = String::from_utf8_lossy(&out.stdout);
    assert!(z.contains("REPORTE Z"));
    assert!(z.contains("Devoluciones: 1 por RD$ 65.00"), "{z}");
    assert!(z.contains("Diferencia: RD$ 0.00"), "{z}");
    assert!(run(&["verify"]).status.success());
}

#[test]
fn overrides_the_drawer_store_credit_and_unknown_originals_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("caja-1");
    let page = dir.path().join("page.json");
    let slips = dir.path().join("recibos");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_caja-node"))
            .env("CAJA_NODE_DATA_DIR", &data)
            .env("CAJA_NODE_PRINTER", format!("folder://{}", slips.display()))
            .args(args)
            .output()
            .expect("caja-node runs")
    };
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let store = "01935f4e-8a00-7000-8000-000000000001";
    let v = json(run(&[
        "--json",
        "sample-catalog",
        "--store",
        store,
        "--out",
        page.to_str().expect("path"),
    ]));
    let key = v["hub_key"].as_str().expect("hub_key").to_owned();
    assert!(run(&["init", "--store", store, "--hub-key", &key])
        .status
        .success());
    assert!(
        run(&["hub", "import", "--file", page.to_str().expect("path")])
            .status
            .success()
    );
    assert!(
        run(&["shift", "open", "--cashier", "ana", "--float", "1000"])
            .status
            .success()
    );
    let rosa = json(run(&[
        "--json",
        "customer",
        "--name",
        "Doña Rosa",
        "--credit-limit",
        "0",
    ]))["customer_id"]
        .as_str()
        .expect("customer")
        .to_owned();
    // A price override: 2 rice at RD$ 60.00 (a register without staff has
    // no one to ask; the line still records the shelf price).
    let sale = json(run(&[
        "--json",
        "sell",
        "--item",
        "ARROZ:2@60.00",
        "--cash",
        "200",
        "--customer",
        &rosa,
    ]));
    assert_eq!(sale["total"], serde_json::json!(12_000));
    let bad = run(&["sell", "--item", "ARROZ:2@sesenta", "--cash", "200"]);
    assert_eq!(bad.status.code(), Some(3));
    // Refunded as store credit, then spent.
    let sale_id = sale["sale_id"].as_str().expect("sale");
    let r = json(run(&[
        "--json",
        "return",
        "--sale",
        sale_id,
        "--line",
        "0:1",
        "--refund",
        "store_credit",
    ]));
    assert_eq!(r["store_credit_balance"], serde_json::json!(6_000));
    let out = run(&["credit", "--customer", &rosa]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("RD$ 60.00"));
    let out = run(&[
        "sell",
        "--item",
        "7460000000011",
        "--store-credit",
        "95.00",
        "--customer",
        &rosa,
    ]);
    assert_eq!(out.status.code(), Some(3), "more than her credit");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Crédito en tienda insuficiente"));
    assert!(run(&[
        "sell",
        "--item",
        "7460000000011",
        "--store-credit",
        "60.00",
        "--cash",
        "35.00",
        "--customer",
        &rosa,
    ])
    .status
    .success());
    // A sale this register does not know, returned by product.
    let out = run(&["return", "--sale", "B0299999999", "--line", "0:1"]);
    assert_eq!(out.status.code(), Some(3));
    let r = json(run(&[
        "--json",
        "return",
        "--sale",
        "B0299999999",
        "--product",
        "2000000000017:0.500@380.00:damaged",
    ]));
    assert_eq!(r["original_unknown"], serde_json::json!(true));
    assert_eq!(r["total"], serde_json::json!(19_000));
    assert_eq!(
        run(&["return", "--sale", "B0299999999", "--product", "ARROZ"])
            .status
            .code(),
        Some(3)
    );
    // The drawer without a sale: a reason, the kick through the printer.
    assert_eq!(
        run(&["drawer", "open", "--reason", ""]).status.code(),
        Some(3)
    );
    let out = run(&["drawer", "open", "--reason", "cambio"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kicked = std::fs::read_dir(&slips)
        .expect("slips")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
        .map(|e| std::fs::read_to_string(e.path()).expect("txt"))
        .filter(|t| t.contains("APERTURA DE GAVETA"))
        .count();
    assert_eq!(kicked, 1);
    let z = String::from_utf8_lossy(&run(&["z-report"]).stdout).into_owned();
    for want in [
        "Cambios de precio autorizados: 1 línea(s), diferencia RD$ -10.00",
        "Reembolsado en crédito en tienda: RD$ 60.00",
        "Sin venta original conocida (a revisar): 1",
        "Aperturas de gaveta sin venta: 1",
        "Crédito en tienda: RD$ 0.00",
    ] {
        assert!(z.contains(want), "{want} in\n{z}");
    }
    assert!(run(&["verify"]).status.success());
}

/// `caja-node ui` serves the cashier's screen on a loopback address only; a
/// standalone register (no hub) serves it too.
#[test]
fn ui_serves_the_screen_on_loopback_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("caja-1");
    let page = dir.path().join("page.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_caja-node"))
            .env("CAJA_NODE_DATA_DIR", &data)
            .env_remove("CAJA_NODE_UI_LISTEN")
            .env_remove("CAJA_NODE_HUB_URL")
            .args(args)
            .output()
            .expect("caja-node runs")
    };
    let store = "01935f4e-8a00-7000-8000-000000000001";
    let out = run(&[
        "--json",
        "sample-catalog",
        "--store",
        store,
        "--out",
        page.to_str().expect("path"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let key = v["hub_key"].as_str().expect("hub_key").to_owned();
    assert!(run(&["init", "--store", store, "--hub-key", &key])
        .status
        .success());
    // Not loopback: refused before anything is served, naming the key.
    let out = run(&["ui", "--listen", "0.0.0.0:8080"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ui_listen"), "{err}");
    // Loopback: it serves the page.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_caja-node"))
        .env("CAJA_NODE_DATA_DIR", &data)
        .env_remove("CAJA_NODE_HUB_URL")
        .args(["ui", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("caja-node ui");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let page = loop {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            if text.starts_with("HTTP/1.1 200") {
                break text;
            }
        }
        assert!(
            std::time::Instant::now() < until,
            "the screen never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.contains(r#"<html lang="es-DO">"#), "{page}");
    assert!(page
        .to_ascii_lowercase()
        .contains("content-security-policy: default-src 'none'"));
}
