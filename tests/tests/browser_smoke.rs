//! The browser harness on static pages served from loopback: keys (text,
//! Enter, an F-key), a field found by its label, a click, waiting for text,
//! screenshots, and the accessibility check both passing a good page and
//! naming every basic fault of a bad one.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use caja_tests::browser::{keys, Browser};

const GOOD: &str = r#"<!doctype html>
<html lang="es-DO"><head><meta charset="utf-8"><title>Prueba</title>
<style>body{font:16px sans-serif;color:#111;background:#fff} button{color:#fff;background:#0b5394;padding:8px}</style>
</head><body>
<main>
<h1>Prueba del navegador</h1>
<label for="item">Código</label> <input id="item" autofocus>
<ul id="lines"></ul>
<p id="status">Listo</p>
<button id="pay" type="button">Cobrar</button>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="logo">
</main>
<script>
const item = document.getElementById('item');
item.addEventListener('keydown', e => {
  if (e.key === 'Enter') {
    const li = document.createElement('li');
    li.textContent = item.value; item.value = '';
    document.getElementById('lines').appendChild(li);
  }
});
document.addEventListener('keydown', e => {
  if (e.key === 'F2') { e.preventDefault(); document.getElementById('status').textContent = 'Tecla F2'; }
});
document.getElementById('pay').addEventListener('click', () => {
  setTimeout(() => { document.getElementById('status').textContent = 'Cobrado'; }, 300);
});
</script></body></html>"#;

const BAD: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"></head><body>
<input id="nolabel">
<p style="color:#bbb;background:#fff">texto sin contraste</p>
<button id="empty"></button>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
</body></html>"#;

/// Serves `/good` and `/bad` on a loopback port until the test ends.
fn serve() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut line = String::new();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the headers.
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let body = if line.starts_with("GET /bad") {
                BAD
            } else {
                GOOD
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn harness_drives_a_static_page_and_checks_accessibility() {
    let Some(b) = Browser::start("browser_smoke").unwrap() else {
        return;
    };
    let port = serve();
    b.goto(&format!("http://127.0.0.1:{port}/good")).unwrap();
    assert_eq!(b.title().unwrap(), "Prueba");

    // A scanner types into the focused field and ends with Enter.
    b.type_keys(&format!("7460000000011{}", keys::ENTER))
        .unwrap();
    b.wait_for_text("#lines", "7460000000011", Duration::from_secs(10))
        .unwrap();
    // The same field found by its label.
    let item = b.find_by_label("Código").unwrap();
    item.type_keys(&format!("ARROZ{}", keys::ENTER)).unwrap();
    b.wait_for_text("#lines", "ARROZ", Duration::from_secs(10))
        .unwrap();
    assert_eq!(item.value().unwrap(), "");
    assert_eq!(b.find_all("#lines li").unwrap().len(), 2);

    b.type_keys(keys::F2).unwrap();
    b.wait_for_text("#status", "Tecla F2", Duration::from_secs(10))
        .unwrap();
    b.find("#pay").unwrap().click().unwrap();
    // The page answers later: wait for it, do not sleep.
    b.wait_for_text("#status", "Cobrado", Duration::from_secs(10))
        .unwrap();
    let shot = b.screenshot("good page").unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{}", shot.display());
    assert!(shot.ends_with("01-good_page.png"), "{}", shot.display());
    b.check_accessibility("good page").unwrap();

    // A timed-out wait says what it waited for.
    let err = b
        .wait_for_text("#status", "nunca", Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(err.contains("#status") && err.contains("Cobrado"), "{err}");

    // The checker finds each basic fault of a bad page.
    b.goto(&format!("http://127.0.0.1:{port}/bad")).unwrap();
    b.screenshot("bad page").unwrap();
    let v = b.accessibility_violations().unwrap();
    for rule in [
        "label",
        "color-contrast",
        "button-name",
        "document-title",
        "html-has-lang",
        "image-alt",
    ] {
        assert!(
            v.iter().any(|l| l.starts_with(&format!("{rule} ("))),
            "{rule} not reported: {v:#?}"
        );
    }
    let err = b.check_accessibility("bad page").unwrap_err().to_string();
    assert!(err.contains("#nolabel"), "{err}");
    assert!(b.output().join("a11y-bad_page.txt").is_file());
}
