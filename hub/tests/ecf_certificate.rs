//! The hub's e-CF certificate: `caja-hub fiscal certificate install|show` on
//! a real data directory (password from an owner-only file or the
//! environment; a wrong one writes nothing), the credentials loader, the
//! trusted CAs of `[tax_authority] trusted_ca` read at start, and the health
//! report's `fiscal.certificate` (missing / expiring / expired against the
//! electronic series loaded). PKCS#12 files from `tests/src/pki.rs`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use caja_hub::certificate::{self, CertificateState};
use caja_hub::config::TaxAuthorityConfig;
use caja_shared::ecf::certificate::{verify_chain, CertError};
use serde_json::json;
use support::pki::{Pki, P12_PASSWORD};
use support::*;

fn hub_cli(env_password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caja-hub"));
    cmd.env_remove("CAJA_CERT_PASSWORD")
        .env_remove("CAJA_HUB_DATA_DIR")
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .args(args);
    if let Some(p) = env_password {
        cmd.env("CAJA_CERT_PASSWORD", p);
    }
    cmd.output().expect("caja-hub runs")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn install_cli_writes_owner_only_and_a_new_process_loads_it() {
    let Some(pki) = Pki::get() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("hub");
    let d = dir.to_str().expect("path");
    let out = hub_cli(None, &["init", "--data-dir", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let install = |pw: Option<&str>, file: &Path, extra: &[&str]| {
        let f = file.to_str().expect("path");
        let mut args = vec![
            "fiscal",
            "certificate",
            "--data-dir",
            d,
            "--json",
            "install",
            f,
        ];
        args.extend_from_slice(extra);
        hub_cli(pw, &args)
    };
    let cert_dir = dir.join(certificate::CERT_DIR_NAME);

    // Wrong password: refused, nothing written.
    let out = install(Some("otra"), &pki.leaf_p12, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong password"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!cert_dir.exists());
    // No password source at all.
    let out = install(None, &pki.leaf_p12, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAJA_CERT_PASSWORD"));
    assert!(!cert_dir.exists());

    // A password file others may read is refused; owner-only works.
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, format!("{P12_PASSWORD}\n")).expect("write");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let pw_s = pw.to_str().expect("path");
    let out = install(None, &pki.leaf_legacy_p12, &["--password-file", pw_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0640"));
    assert!(!cert_dir.exists());
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = install(None, &pki.leaf_legacy_p12, &["--password-file", pw_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], "valid");
    assert_eq!(mode(&cert_dir), 0o700);
    assert_eq!(mode(&certificate::cert_path(&dir)), 0o600);

    // An expired certificate is refused and the installed one stays.
    let out = install(Some(P12_PASSWORD), &pki.expired_p12, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));

    // A new process (as after a restart) reads it without a password.
    let out = hub_cli(
        None,
        &["fiscal", "certificate", "--data-dir", d, "--json", "show"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["present"], true);
    assert!(v["subject"]
        .as_str()
        .expect("subject")
        .contains("Juan Perez Firmante"));
    let creds = certificate::load_credentials(&dir)
        .expect("load")
        .expect("installed");
    assert_eq!(creds.cert_der(), pki.der_of(&pki.leaf_pem).as_slice());
    assert!(matches!(
        CertificateState::read(&dir),
        CertificateState::Installed(_)
    ));
    // Loosened permissions: refused, and health will say unreadable.
    let path = certificate::cert_path(&dir);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(certificate::load_credentials(&dir).is_err());
    assert!(matches!(
        CertificateState::read(&dir),
        CertificateState::Unreadable(_)
    ));
}

#[test]
fn trusted_cas_from_the_configured_pem_check_chains() {
    let Some(pki) = Pki::get() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::copy(&pki.ca_pem, tmp.path().join("cas.pem")).expect("copy");
    let trust = certificate::trust_store(tmp.path(), "cas.pem").expect("trust store");
    let leaf = pki.der_of(&pki.leaf_pem);
    let now = caja_shared::ecf::certificate::cert_info(&leaf)
        .expect("info")
        .not_before_ms
        + 86_400_000;
    verify_chain(&leaf, &[], &trust, now).expect("good chain");
    let foreign = pki.der_of(&pki.foreign_pem);
    assert!(matches!(
        verify_chain(&foreign, &[], &trust, now),
        Err(CertError::Untrusted { .. })
    ));
    let expired = pki.der_of(&pki.expired_pem);
    assert!(matches!(
        verify_chain(&expired, &[], &trust, now),
        Err(CertError::Expired { .. })
    ));
    let err = certificate::trust_store(tmp.path(), "missing.pem").unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

#[tokio::test]
async fn a_hub_refuses_to_start_with_an_unreadable_trusted_ca_file() {
    let Some(pki) = Pki::get() else { return };
    let mut cfg = test_config();
    cfg.tax_authority = Some(TaxAuthorityConfig {
        rnc: "131234567".into(),
        legal_name: "Colmado de Prueba SRL".into(),
        workers: 0,
        trusted_ca: Some("cas.pem".into()),
        ..TaxAuthorityConfig::default()
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("hub");
    let init_cfg = cfg.clone();
    let d2 = dir.clone();
    tokio::task::spawn_blocking(move || {
        caja_hub::datadir::init(
            &d2,
            init_cfg,
            &mut caja_hub::system::OsRandom::new(),
            &caja_hub::system::SystemClock,
        )
        .expect("init")
    })
    .await
    .expect("join");
    let err = caja_hub::server::start(&dir, cfg.clone())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("tax_authority.trusted_ca"),
        "{err}"
    );
    assert!(err.to_string().contains("cas.pem"), "{err}");
    std::fs::copy(&pki.ca_pem, dir.join("cas.pem")).expect("copy");
    let hub = caja_hub::server::start(&dir, cfg).await.expect("starts");
    hub.stop().await.expect("stop");
}

#[tokio::test]
async fn health_reports_the_certificate_against_electronic_series() {
    let Some(pki) = Pki::get() else { return };
    let hub = TestHub::start().await;
    let health = || async { hub.admin_get("/v1/health").await };
    let h = health().await;
    assert_eq!(h["fiscal"]["certificate"]["present"], false);
    assert_eq!(h["fiscal"]["certificate"]["status"], "missing");
    assert_eq!(h["overall"], "healthy", "{h}");

    // Electronic series loaded and no certificate: critical.
    hub.admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&json!({"prefix":"E32","digits":10,"first":1,"last":1000,"valid_until":"2099-12-31"})),
        )
        .await
        .expect("series");
    let h = health().await;
    assert_eq!(h["overall"], "critical", "{h}");

    // One that expires within 30 days: degraded, with its facts.
    let now = now_ms();
    let install = |p12: &Path| {
        certificate::install(&hub.data_dir(), p12, &Pki::read(p12), P12_PASSWORD, now)
            .expect("install")
    };
    install(&pki.soon_p12);
    let h = health().await;
    let c = &h["fiscal"]["certificate"];
    assert_eq!(c["status"], "expires_soon", "{h}");
    assert!(c["days_left"].as_i64().expect("days") <= 10);
    assert!(c["not_after_ms"].as_i64().expect("not after") > now);
    assert!(c["subject"]
        .as_str()
        .expect("subject")
        .contains("Por Vencer"));
    assert_eq!(h["overall"], "degraded", "{h}");

    // A current one: healthy again.
    install(&pki.leaf_p12);
    let h = health().await;
    assert_eq!(h["fiscal"]["certificate"]["status"], "valid");
    assert_eq!(h["overall"], "healthy", "{h}");
}
