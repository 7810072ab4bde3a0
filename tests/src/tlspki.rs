//! Throwaway TLS certificates for tests of the register's trust in its hub
//! and of PostgreSQL over TLS, made with the `openssl` command line: a test
//! CA and a server certificate it issued for `localhost` and `127.0.0.1`
//! (P-256, serverAuth), another CA nobody trusts, and a self-signed
//! certificate for a name no test connects to (what a pin is for).
//!
//! Invariant: this file uses only `std`, so a crate's tests can include it
//! with `#[path = ".../tests/src/tlspki.rs"] mod tlspki;` (the hub's tests
//! cannot depend on `caja-tests`). When `openssl` is missing,
//! [`TlsPki::generate`] returns `None` after printing a skip line, or panics
//! with `CAJA_REQUIRE_EXTERNAL=1`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of a generated TLS PKI (all in `dir`).
#[derive(Debug, Clone)]
pub struct TlsPki {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// The test CA's certificate (PEM).
    pub ca_pem: PathBuf,
    /// Another CA's certificate (PEM).
    pub other_ca_pem: PathBuf,
    /// The server certificate issued by the test CA for `localhost` and
    /// `127.0.0.1` (PEM).
    pub server_pem: PathBuf,
    /// Its private key (PKCS#8 PEM, mode 0600).
    pub server_key_pem: PathBuf,
    /// A self-signed certificate for `hub.invalid` (PEM).
    pub selfsigned_pem: PathBuf,
    /// Its key (PKCS#8 PEM, mode 0600).
    pub selfsigned_key_pem: PathBuf,
    /// A key that belongs to no certificate here (PKCS#8 PEM).
    pub stray_key_pem: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("openssl {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

fn self_signed_ca(dir: &Path, name: &str, cn: &str) -> Result<(), String> {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    let subj = format!("/CN={cn}");
    let mut args = vec!["req", "-x509"];
    args.extend(EC);
    args.extend([
        "-nodes", "-keyout", &key, "-out", &pem, "-subj", &subj, "-days", "3",
    ]);
    openssl(dir, &args)
}

impl TlsPki {
    /// Makes the PKI in `dir`; `None` (after a skip line) when `openssl` is
    /// missing, a panic then under `CAJA_REQUIRE_EXTERNAL=1`.
    pub fn generate(dir: &Path) -> Option<TlsPki> {
        if Command::new("openssl").arg("version").output().is_err() {
            if std::env::var("CAJA_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") {
                panic!("openssl is required (CAJA_REQUIRE_EXTERNAL=1) but not installed");
            }
            eprintln!("skipped: openssl is not installed (install it or set CAJA_REQUIRE_EXTERNAL=1 to fail)");
            return None;
        }
        Some(TlsPki::make(dir).unwrap_or_else(|e| panic!("test TLS PKI: {e}")))
    }

    fn make(dir: &Path) -> Result<TlsPki, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        self_signed_ca(dir, "ca", "Caja Test TLS CA")?;
        self_signed_ca(dir, "other-ca", "Someone Else's CA")?;
        let mut req = vec!["req", "-new"];
        req.extend(EC);
        req.extend([
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(dir, &req)?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n",
        )
        .map_err(|e| e.to_string())?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "3",
                "-extfile",
                "server.ext",
            ],
        )?;
        let mut ss = vec!["req", "-x509"];
        ss.extend(EC);
        ss.extend([
            "-nodes",
            "-keyout",
            "selfsigned.key",
            "-out",
            "selfsigned.pem",
            "-subj",
            "/CN=hub.invalid",
            "-days",
            "3",
            "-addext",
            "subjectAltName=DNS:hub.invalid",
        ]);
        openssl(dir, &ss)?;
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "stray.key",
            ],
        )?;
        #[cfg(unix)]
        for key in ["server.key", "selfsigned.key", "stray.key", "ca.key"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(key), std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
        Ok(TlsPki {
            dir: dir.to_path_buf(),
            ca_pem: dir.join("ca.pem"),
            other_ca_pem: dir.join("other-ca.pem"),
            server_pem: dir.join("server.pem"),
            server_key_pem: dir.join("server.key"),
            selfsigned_pem: dir.join("selfsigned.pem"),
            selfsigned_key_pem: dir.join("selfsigned.key"),
            stray_key_pem: dir.join("stray.key"),
        })
    }
}
