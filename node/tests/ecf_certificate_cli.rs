//! `caja-node fiscal certificate install|show` and the certificate line of
//! `status`, end to end on a real data directory, with PKCS#12 files made by
//! the `openssl` command line (`tests/src/pki.rs`): the password from a file
//! (owner-only checked), the environment or nowhere; a wrong password writes
//! nothing; the stored key is owner-only and loads in a new process.

#[path = "../../tests/src/pki.rs"]
mod pki;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use caja_node::datadir::DataDir;
use caja_node::fiscal::certificate::{self, CertStoreError};
use pki::{Pki, P12_PASSWORD, SIGNER_RNC};

fn run(data: &Path, env_password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caja-node"));
    cmd.env("CAJA_NODE_DATA_DIR", data)
        .env_remove("CAJA_CERT_PASSWORD")
        .stdin(Stdio::null())
        .args(args);
    if let Some(p) = env_password {
        cmd.env("CAJA_CERT_PASSWORD", p);
    }
    cmd.output().expect("caja-node runs")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn install_show_status_and_reload_after_restart() {
    let Some(pki) = Pki::get() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("caja-1");
    let p12 = pki.leaf_p12.to_str().expect("path");
    let legacy = pki.leaf_legacy_p12.to_str().expect("path");
    let store = "01935f4e-8a00-7000-8000-000000000001";
    assert!(run(&data, None, &["init", "--store", store])
        .status
        .success());
    let dir = DataDir::new(&data);
    let cert_dir = data.join(certificate::CERT_DIR_NAME);

    // Nothing installed yet.
    let v = json(&run(
        &data,
        None,
        &["--json", "fiscal", "certificate", "show"],
    ));
    assert_eq!(v["present"], false);
    assert_eq!(v["status"], "missing");
    let out = run(&data, None, &["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no instalado"));

    // Wrong password: refused, clear, nothing written.
    let out = run(
        &data,
        Some("otra"),
        &["fiscal", "certificate", "install", p12],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("contraseña incorrecta"), "{err}");
    assert!(err.contains("no se cambió nada"), "{err}");
    assert!(!cert_dir.exists(), "nothing may be written");

    // No password at all, and no terminal to ask on.
    let out = run(&data, None, &["fiscal", "certificate", "install", p12]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAJA_CERT_PASSWORD"));

    // A password file others may read is refused; owner-only is accepted.
    let pw = tmp.path().join("clave.txt");
    std::fs::write(&pw, format!("{P12_PASSWORD}\n")).expect("write");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let pw_s = pw.to_str().expect("path");
    let args = [
        "fiscal",
        "certificate",
        "install",
        p12,
        "--password-file",
        pw_s,
    ];
    let out = run(&data, None, &args);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0644"));
    assert!(!cert_dir.exists());
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let v = json(&run(&data, None, &[&["--json"][..], &args[..]].concat()));
    assert_eq!(v["status"], "valid");
    assert_eq!(v["subject_tax_id"], SIGNER_RNC);
    assert_eq!(mode(&cert_dir), 0o700);
    assert_eq!(mode(&certificate::cert_path(&dir)), 0o600);

    // The -legacy file through the environment replaces it.
    let v = json(&run(
        &data,
        Some(P12_PASSWORD),
        &["--json", "fiscal", "certificate", "install", legacy],
    ));
    assert_eq!(v["present"], true);

    // A new process (a restart) loads it without any password.
    let v = json(&run(
        &data,
        None,
        &["--json", "fiscal", "certificate", "show"],
    ));
    assert!(v["subject"]
        .as_str()
        .expect("subject")
        .contains("Juan Perez Firmante"));
    assert!(v["days_left"].as_i64().expect("days") >= 360);
    let creds = certificate::load(&dir).expect("load").expect("installed");
    assert_eq!(creds.cert_der(), pki.der_of(&pki.leaf_pem).as_slice());
    let v = json(&run(&data, None, &["--json", "status"]));
    assert_eq!(v["certificate"]["status"], "valid");
    let out = run(&data, None, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Certificado de firma e-CF: "), "{text}");
    assert!(!text.contains("ATENCIÓN"), "{text}");

    // An expired certificate is not installed; the current one stays.
    let expired = pki.expired_p12.to_str().expect("path");
    let out = run(
        &data,
        Some(P12_PASSWORD),
        &["fiscal", "certificate", "install", expired],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vencido"));
    let after = certificate::load(&dir).expect("load").expect("installed");
    assert_eq!(after.cert_der(), creds.cert_der());

    // One that expires within 30 days: installed, and status warns in Spanish.
    let soon = pki.soon_p12.to_str().expect("path");
    json(&run(
        &data,
        Some(P12_PASSWORD),
        &["--json", "fiscal", "certificate", "install", soon],
    ));
    let out = run(&data, None, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ATENCIÓN: vence en"), "{text}");
    let v = json(&run(&data, None, &["--json", "status"]));
    assert_eq!(v["certificate"]["status"], "expires_soon");

    // A stored key that others may read is refused, not used quietly.
    let path = certificate::cert_path(&dir);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert!(matches!(
        certificate::load(&dir),
        Err(CertStoreError::TooOpen { mode: 0o640, .. })
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(&cert_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(matches!(
        certificate::load(&dir),
        Err(CertStoreError::TooOpen { mode: 0o755, .. })
    ));
}
