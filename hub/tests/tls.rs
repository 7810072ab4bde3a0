//! The real `caja-hub` terminating TLS: `init --tls-self-signed` prints the
//! certificate's fingerprint; a client trusting the certificate, and one
//! pinning the fingerprint, talk to it over HTTPS; a plain-HTTP request to
//! the TLS port gets no HTTP answer; SIGHUP reloads the certificate and a
//! failed reload keeps the one in use.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use support::ADMIN_TOKEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_caja-hub");

/// `caja-hub init --tls-self-signed`; the fingerprint line it printed.
fn init_tls(dir: &Path) -> String {
    let out = Command::new(BIN)
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["init", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--tls-self-signed"])
        .args(["--tls-name", "caja.test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("TLS certificate SHA-256: "))
        .unwrap_or_else(|| panic!("no fingerprint line in {text}"));
    let fp = line["TLS certificate SHA-256: ".len()..].to_owned();
    assert_eq!(fp.len(), 64, "{line:?}");
    assert!(
        fp.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{line:?}"
    );
    fp
}

fn serve(dir: &Path) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .env("CAJA_HUB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("caja-hub listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// Accepts exactly the certificate whose SHA-256 is `pin` (the handshake's
/// signature is still checked), and remembers what it was shown.
#[derive(Debug)]
struct Pinned {
    pin: String,
    seen: Mutex<Option<String>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = caja_hub::tls::fingerprint_sha256(end_entity.as_ref());
        *self.seen.lock().unwrap() = Some(fp.clone());
        if fp == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `GET /v1/health` over TLS with a client pinning `pin`: the status line
/// (or the handshake error) and the fingerprint the hub presented.
async fn pinned_get(addr: std::net::SocketAddr, pin: &str) -> (Result<String, String>, String) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        pin: pin.to_owned(),
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("caja.test").unwrap();
    let result = match connector.connect(name, tcp).await {
        Err(e) => Err(e.to_string()),
        Ok(mut tls) => {
            let req = format!(
                "GET /v1/health HTTP/1.1\r\nHost: caja.test\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
            );
            tls.write_all(req.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let _ = tls.read_to_end(&mut answer).await;
            let text = String::from_utf8_lossy(&answer).into_owned();
            Ok(text.lines().next().unwrap_or("").to_owned())
        }
    };
    let seen = verifier.seen.lock().unwrap().clone().unwrap_or_default();
    (result, seen)
}

fn hup(child: &Child) {
    let ok = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    // The reload runs on the hub's own schedule.
    std::thread::sleep(Duration::from_millis(500));
}

#[tokio::test]
async fn the_hub_serves_https_with_its_self_signed_certificate_and_reloads_on_sighup() {
    caja_hub::admin_client::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let printed = init_tls(&dir);

    // The fingerprint printed is the SHA-256 of the certificate written; both
    // files are owner-only and hub.toml points at them.
    let cert_pem = std::fs::read(dir.join("tls/cert.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(&cert_pem).unwrap();
    assert_eq!(caja_hub::tls::fingerprint_sha256(der.as_ref()), printed);
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["tls/cert.pem", "tls/key.pem", "hub.toml"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    let toml = std::fs::read_to_string(dir.join("hub.toml")).unwrap();
    assert!(toml.contains("tls_cert = \"tls/cert.pem\""), "{toml}");
    assert!(toml.contains("tls_key = \"tls/key.pem\""), "{toml}");

    let (mut child, addr) = serve(&dir);

    // A client that trusts the certificate (as a CA: it is self-signed).
    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert_pem).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let r = trusting
            .get(format!("https://{host}:{}/v1/health", addr.port()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("https to {host}: {e:?}"));
        assert_eq!(r.status(), 200, "{host}");
    }
    // The admin API works over it too (the token as always).
    let r = trusting
        .post(format!("https://127.0.0.1:{}/v1/admin/stores", addr.port()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": "Colmado TLS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The admin CLI, trusting the hub's certificate with --hub-ca.
    let out = Command::new(BIN)
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .args([
            "admin",
            "--url",
            &format!("https://localhost:{}", addr.port()),
        ])
        .arg("--hub-ca")
        .arg(dir.join("tls/cert.pem"))
        .arg("stores")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Colmado TLS"));
    // A client without the certificate among its roots refuses it.
    let strict = reqwest::Client::builder()
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(strict
        .get(format!("https://127.0.0.1:{}/v1/health", addr.port()))
        .send()
        .await
        .is_err());

    // A client pinning the fingerprint; a wrong pin fails the handshake.
    let (ok, seen) = pinned_get(addr, &printed).await;
    assert_eq!(ok.as_deref(), Ok("HTTP/1.1 200 OK"), "pinned");
    assert_eq!(seen, printed);
    let (refused, _) = pinned_get(addr, &"0".repeat(64)).await;
    assert!(refused.is_err(), "a wrong pin: {refused:?}");

    // Plain HTTP on the TLS port: no HTTP answer, the connection closes.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the hub closes a plain-HTTP connection");
    assert!(
        !got.starts_with(b"HTTP/"),
        "no HTTP answer on the TLS port: {:?}",
        String::from_utf8_lossy(&got)
    );

    // SIGHUP with a new pair: new connections get the new certificate.
    let fresh = caja_hub::tls::self_signed(&["caja.test".into()]).unwrap();
    std::fs::write(dir.join("tls/key.pem"), fresh.key_pem.as_bytes()).unwrap();
    std::fs::write(dir.join("tls/cert.pem"), &fresh.cert_pem).unwrap();
    hup(&child);
    let (ok, seen) = pinned_get(addr, &fresh.fingerprint).await;
    assert_eq!(seen, fresh.fingerprint, "reloaded on SIGHUP");
    assert_eq!(ok.as_deref(), Ok("HTTP/1.1 200 OK"));

    // A broken certificate file: the reload fails and the hub keeps serving
    // the one in use.
    std::fs::write(
        dir.join("tls/cert.pem"),
        "-----BEGIN CERTIFICATE-----\nnope\n",
    )
    .unwrap();
    hup(&child);
    let (ok, seen) = pinned_get(addr, &fresh.fingerprint).await;
    assert_eq!(seen, fresh.fingerprint, "the old certificate is kept");
    assert_eq!(ok.as_deref(), Ok("HTTP/1.1 200 OK"));

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_hub_toml_others_can_read_stops_serve_and_rebuild() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    init_tls(&dir);
    std::fs::set_permissions(dir.join("hub.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    for cmd in ["serve", "rebuild"] {
        let out = Command::new(BIN)
            .args([cmd, "--data-dir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{cmd}: {err}");
        assert!(
            err.contains("hub.toml") && err.contains("chmod 600"),
            "{cmd}: {err}"
        );
    }
    // A key file others can read stops serve too.
    std::fs::set_permissions(dir.join("hub.toml"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        dir.join("tls/key.pem"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("key.pem") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn init_reads_the_admin_token_from_an_owner_only_file_never_from_argv() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let init = |dir: &Path| {
        Command::new(BIN)
            .env_remove("CAJA_HUB_ADMIN_TOKEN")
            .args(["init", "--data-dir"])
            .arg(dir)
            .arg("--admin-token-file")
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = init(&tmp.path().join("a"));
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = init(&tmp.path().join("b"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(tmp.path().join("b/hub.toml")).unwrap();
    assert!(toml.contains(&format!("admin_token = \"{ADMIN_TOKEN}\"")));
    // The old flag that put the token on the command line is gone.
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(tmp.path().join("c"))
        .args(["--admin-token", ADMIN_TOKEN])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
