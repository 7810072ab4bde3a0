//! The register's trust in whatever answers at `hub_url`, against a small real
//! TLS server of this test (rustls on ring, certificates from `openssl`):
//! only the roots of `hub_ca`, only the pinned certificate of
//! `hub_cert_sha256` — whose handshake signature is still checked, so a copy
//! of the certificate without its key gets nothing — and never plain
//! `http://` to another machine. A refused server never receives a byte of
//! the request (the enrollment token, later the device key's signatures).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use caja_node::sync::client::{HubClient, HubError};
use caja_node::sync::engine::SyncError;
use caja_node::sync::trust::{self, HubTrust};
use caja_tests::tlspki::TlsPki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A TLS server that answers every complete request `404` and counts them.
struct TlsServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl TlsServer {
    /// Serves `cert` with the private key in `key` (which need not match it:
    /// a server that copied someone's certificate).
    fn start(cert: &Path, key: &Path) -> TlsServer {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("cert")
            .collect::<Result<_, _>>()
            .expect("cert pem");
        let key = PrivateKeyDer::from_pem_file(key).expect("key pem");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signing = provider
            .key_provider
            .load_private_key(key)
            .expect("signing key");
        let certified = Arc::new(CertifiedKey::new(chain, signing));
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Fixed(certified))),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let cfg = cfg.clone();
                let count = count.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, stream);
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"error":"not_found","message":"test server"}"#;
                    let answer = format!(
                        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes());
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        TlsServer { addr, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn pem_der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .expect("pem")
        .as_ref()
        .to_vec()
}

/// Enrolls through `trust`: `Ok(())` when the TLS server answered (its 404),
/// the client's error otherwise.
fn reach(url: &str, trust: &HubTrust) -> Result<(), HubError> {
    let client = HubClient::with_trust(url, 5_000, false, trust)?;
    match client.enroll("token-0123456789") {
        Err(HubError::Api { status: 404, .. }) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => panic!("the test server never enrolls anyone"),
    }
}

fn pki(tmp: &Path) -> Option<TlsPki> {
    TlsPki::generate(&tmp.join("pki"))
}

fn assert_untrusted(r: Result<(), HubError>, key: &str) {
    match r {
        Err(HubError::Untrusted { key: k, detail }) => {
            assert_eq!(k, key, "{detail}");
        }
        other => panic!("expected an untrusted certificate ({key}), got {other:?}"),
    }
}

#[test]
fn hub_ca_trusts_only_its_roots_and_the_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(pki) = pki(tmp.path()) else { return };
    let server = TlsServer::start(&pki.server_pem, &pki.server_key_pem);
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let ours = HubTrust::Roots(trust::read_roots(&pki.ca_pem).expect("ca"));
    reach(&url, &ours).expect("the hub's CA");
    let localhost = format!("https://localhost:{}", server.addr.port());
    reach(&localhost, &ours).expect("the other name on the certificate");
    assert_eq!(server.requests(), 2);

    let theirs = HubTrust::Roots(trust::read_roots(&pki.other_ca_pem).expect("ca"));
    assert_untrusted(reach(&url, &theirs), "hub_ca");
    // The system's roots do not know a head office's own CA.
    assert_untrusted(reach(&url, &HubTrust::System), "hub_url");
    assert_eq!(server.requests(), 2, "nothing sent to an untrusted server");

    // A certificate of the right CA but for another name.
    let other_name = TlsServer::start(&pki.selfsigned_pem, &pki.selfsigned_key_pem);
    let url = format!("https://127.0.0.1:{}", other_name.addr.port());
    let own_root = HubTrust::Roots(trust::read_roots(&pki.selfsigned_pem).expect("root"));
    assert_untrusted(reach(&url, &own_root), "hub_ca");
    assert_eq!(other_name.requests(), 0);
}

#[test]
fn a_pin_trusts_exactly_one_certificate_and_its_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(pki) = pki(tmp.path()) else { return };
    // A self-signed certificate for a name that is not the address: the pin
    // is what is checked, not the name nor a CA.
    let server = TlsServer::start(&pki.selfsigned_pem, &pki.selfsigned_key_pem);
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let fp = trust::fingerprint(&pem_der(&pki.selfsigned_pem));
    let pin = HubTrust::Pin(trust::parse_pin(&fp).expect("pin"));
    reach(&url, &pin).expect("the pinned certificate");
    let colons: Vec<String> = fp
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect();
    let pin_colons = HubTrust::Pin(trust::parse_pin(&colons.join(":")).expect("colon pin"));
    reach(&url, &pin_colons).expect("the same pin written with colons");
    assert_eq!(server.requests(), 2);

    // Another certificate (a valid one, from a CA): refused, with the
    // Spanish sentence for the cashier.
    let ca_server = TlsServer::start(&pki.server_pem, &pki.server_key_pem);
    let url_ca = format!("https://127.0.0.1:{}", ca_server.addr.port());
    let r = reach(&url_ca, &pin);
    let sentence = match &r {
        Err(e) => caja_node::messages::hub::trust_failure(&SyncError::Hub(e.clone()))
            .expect("a trust failure"),
        Ok(()) => String::new(),
    };
    assert_untrusted(r, "hub_cert_sha256");
    assert!(
        sentence.contains("no es el configurado") && sentence.contains("hub_cert_sha256"),
        "{sentence}"
    );
    assert_eq!(ca_server.requests(), 0);

    // The pinned certificate served with a key that is not its own: the
    // handshake signature does not verify, nothing is sent.
    let copycat = TlsServer::start(&pki.selfsigned_pem, &pki.stray_key_pem);
    let url_copy = format!("https://127.0.0.1:{}", copycat.addr.port());
    match reach(&url_copy, &pin) {
        Err(HubError::Untrusted { .. } | HubError::Unreachable(_)) => {}
        other => panic!("a copied certificate must not pass: {other:?}"),
    }
    assert_eq!(copycat.requests(), 0, "nothing sent to the copycat");
}

#[test]
fn plain_http_is_for_this_machine_only() {
    for url in ["http://192.0.2.10:7878", "http://hub.example.do"] {
        match HubClient::with_trust(url, 1_000, false, &HubTrust::System) {
            Err(HubError::Config { key, message }) => {
                assert_eq!(key, "hub_url");
                let sentence =
                    caja_node::messages::hub::trust_failure(&SyncError::Hub(HubError::Config {
                        key,
                        message: message.clone(),
                    }))
                    .expect("sentence");
                assert!(sentence.starts_with("hub_url:"), "{sentence}");
                assert!(sentence.contains("https://"), "{sentence}");
            }
            other => panic!("{url}: expected a refusal naming hub_url, got {other:?}"),
        }
    }
    HubClient::with_trust("http://127.0.0.1:1", 1_000, false, &HubTrust::System)
        .expect("loopback is fine for tests and the demo");
}
