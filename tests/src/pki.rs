//! A throwaway public-key infrastructure for e-CF tests, made with the
//! `openssl` command line: a test CA, a signer certificate it issued (RSA
//! 2048, an RNC in the subject's `serialNumber`), the same key and chain as
//! PKCS#12 files in OpenSSL 3's default format and with `-legacy`, a signer
//! certificate that expires within 30 days, one that already expired, and a
//! signer issued by another CA.
//!
//! Invariant: this file uses only `std`, so every crate's tests can include it
//! with `#[path = ".../tests/src/pki.rs"] mod pki;` (node and hub tests cannot
//! depend on `caja-tests`, which depends on them); `caja-tests` exports it as
//! `caja_tests::pki`. Nothing here is used outside tests. When `openssl` is
//! missing, [`Pki::get`] returns `None` after printing a skip line, or panics
//! with `CAJA_REQUIRE_EXTERNAL=1` (as the PostgreSQL and browser tests do).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The password of every PKCS#12 file of the test PKI.
pub const P12_PASSWORD: &str = "clave-de-prueba";

/// The RNC written in the signer certificates' `serialNumber`.
pub const SIGNER_RNC: &str = "131234567";

/// The files of a generated PKI (all in [`Pki::dir`]).
#[derive(Debug, Clone)]
pub struct Pki {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// The test CA's certificate (PEM) — the trust store of the tests.
    pub ca_pem: PathBuf,
    /// Another CA's certificate (PEM), trusted by nobody by default.
    pub other_ca_pem: PathBuf,
    /// The signer's certificate (PEM), valid for about a year.
    pub leaf_pem: PathBuf,
    /// The signer's private key, PKCS#8 PEM, unencrypted.
    pub leaf_key_pem: PathBuf,
    /// The signer's key, certificate and the CA, PKCS#12 with OpenSSL 3's
    /// defaults (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC, MAC SHA-256).
    pub leaf_p12: PathBuf,
    /// The same with `-legacy` (3DES key, RC2-40 certificates, MAC SHA-1).
    pub leaf_legacy_p12: PathBuf,
    /// A signer certificate valid for 10 more days, as PKCS#12 (defaults).
    pub soon_p12: PathBuf,
    /// A signer certificate that expired (PEM), issued by the test CA.
    pub expired_pem: PathBuf,
    /// The expired signer as PKCS#12 (defaults).
    pub expired_p12: PathBuf,
    /// A signer certificate issued by the other CA (PEM).
    pub foreign_pem: PathBuf,
    /// The foreign signer as PKCS#12 (defaults).
    pub foreign_p12: PathBuf,
}

fn require_external() -> bool {
    std::env::var("CAJA_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Runs `openssl` with `args` in `dir`; the error names the command.
pub fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
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

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::write(dir.join(name), text).map_err(|e| format!("write {name}: {e}"))
}

const LEAF_EXT: &str = "basicConstraints=critical,CA:FALSE\n\
keyUsage=critical,digitalSignature,nonRepudiation\n";

const CA_CONF: &str = "[ ca ]\ndefault_ca = test\n\
[ test ]\ndir = .\ndatabase = index.txt\nnew_certs_dir = issued\n\
certificate = ca.pem\nprivate_key = ca.key\nserial = serial\n\
default_md = sha256\npolicy = anything\nunique_subject = no\n\
copy_extensions = none\nx509_extensions = leaf\n\
[ anything ]\ncommonName = supplied\nserialNumber = optional\n\
organizationName = optional\ncountryName = optional\n\
[ leaf ]\nbasicConstraints=critical,CA:FALSE\n\
keyUsage=critical,digitalSignature,nonRepudiation\n";

fn make_ca(dir: &Path, key: &str, pem: &str, cn: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            pem,
            "-days",
            "3650",
            "-sha256",
            "-subj",
            &format!("/C=DO/O=Caja Pruebas/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )
}

fn make_csr(dir: &Path, name: &str, cn: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/C=DO/O=Colmado de Prueba SRL/serialNumber={SIGNER_RNC}/CN={cn}"),
        ],
    )
}

fn sign_leaf(dir: &Path, name: &str, ca: &str, days: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            days,
            "-sha256",
            "-extfile",
            "leaf.ext",
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

fn export_p12(dir: &Path, name: &str, ca: &str, out: &str, legacy: bool) -> Result<(), String> {
    let pass = format!("pass:{P12_PASSWORD}");
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    let ca = format!("{ca}.pem");
    let mut args = vec![
        "pkcs12",
        "-export",
        "-inkey",
        &key,
        "-in",
        &pem,
        "-certfile",
        &ca,
        "-name",
        "firmante",
        "-passout",
        &pass,
        "-out",
        out,
    ];
    if legacy {
        args.push("-legacy");
    }
    openssl(dir, &args)
}

impl Pki {
    /// Makes a new PKI in `dir` (created if missing). Takes a few seconds
    /// (six RSA keys).
    pub fn generate(dir: &Path) -> Result<Pki, String> {
        std::fs::create_dir_all(dir.join("issued")).map_err(|e| format!("mkdir: {e}"))?;
        write(dir, "leaf.ext", LEAF_EXT)?;
        make_ca(dir, "ca.key", "ca.pem", "Caja Test CA")?;
        make_ca(dir, "other.key", "other.pem", "Otra CA de Prueba")?;

        make_csr(dir, "leaf", "Juan Perez Firmante")?;
        sign_leaf(dir, "leaf", "ca", "365")?;
        openssl(
            dir,
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "leaf.key",
                "-out",
                "leaf.pk8.pem",
            ],
        )?;
        export_p12(dir, "leaf", "ca", "leaf.p12", false)?;
        export_p12(dir, "leaf", "ca", "leaf-legacy.p12", true)?;

        make_csr(dir, "soon", "Firmante Por Vencer")?;
        sign_leaf(dir, "soon", "ca", "10")?;
        export_p12(dir, "soon", "ca", "soon.p12", false)?;

        // OpenSSL 3.0's `x509 -req` has no -not_before/-not_after: a
        // certificate already expired is made with `openssl ca -startdate
        // -enddate` from a minimal CA configuration.
        write(dir, "ca.cnf", CA_CONF)?;
        write(dir, "index.txt", "")?;
        write(dir, "serial", "1000\n")?;
        make_csr(dir, "expired", "Firmante Vencido")?;
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-notext",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20210101000000Z",
                "-in",
                "expired.csr",
                "-out",
                "expired.pem",
            ],
        )?;
        export_p12(dir, "expired", "ca", "expired.p12", false)?;

        make_csr(dir, "foreign", "Firmante De Otra CA")?;
        sign_leaf(dir, "foreign", "other", "365")?;
        export_p12(dir, "foreign", "other", "foreign.p12", false)?;

        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_pem: dir.join("ca.pem"),
            other_ca_pem: dir.join("other.pem"),
            leaf_pem: dir.join("leaf.pem"),
            leaf_key_pem: dir.join("leaf.pk8.pem"),
            leaf_p12: dir.join("leaf.p12"),
            leaf_legacy_p12: dir.join("leaf-legacy.p12"),
            soon_p12: dir.join("soon.p12"),
            expired_pem: dir.join("expired.pem"),
            expired_p12: dir.join("expired.p12"),
            foreign_pem: dir.join("foreign.pem"),
            foreign_p12: dir.join("foreign.p12"),
        })
    }

    /// One PKI per test process (under the system temp dir), made on first
    /// use. `None` (after a printed skip line) when `openssl` is missing and
    /// `CAJA_REQUIRE_EXTERNAL` is not `1`; a panic otherwise.
    pub fn get() -> Option<&'static Pki> {
        static PKI: OnceLock<Option<Pki>> = OnceLock::new();
        PKI.get_or_init(|| {
            let present = Command::new("openssl").arg("version").output().is_ok();
            if !present {
                assert!(
                    !require_external(),
                    "openssl not found and CAJA_REQUIRE_EXTERNAL=1"
                );
                eprintln!(
                    "SKIPPED (openssl): not on PATH — set CAJA_REQUIRE_EXTERNAL=1 to make this a failure"
                );
                return None;
            }
            let dir = std::env::temp_dir().join(format!("caja-pki-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            match Pki::generate(&dir) {
                Ok(p) => Some(p),
                Err(e) => panic!("test PKI: {e}"),
            }
        })
        .as_ref()
    }

    /// Reads one of the files.
    pub fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A signer certificate of this PKI's CA valid from `start` to `end`
    /// (`YYYYMMDDHHMMSSZ`), as PKCS#12 with OpenSSL's defaults, for a test
    /// whose clock is not today's (the simulation starts on 2026-01-01).
    /// `name` names its files; call it once per name.
    pub fn signer_between(&self, name: &str, start: &str, end: &str) -> Result<PathBuf, String> {
        let dir = &self.dir;
        make_csr(dir, name, "Firmante Simulado")?;
        let (csr, pem, p12) = (
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.p12"),
        );
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-notext",
                "-startdate",
                start,
                "-enddate",
                end,
                "-in",
                &csr,
                "-out",
                &pem,
            ],
        )?;
        export_p12(dir, name, "ca", &p12, false)?;
        Ok(dir.join(p12))
    }

    /// The DER of a PEM certificate file (via `openssl x509`).
    pub fn der_of(&self, pem: &Path) -> Vec<u8> {
        let out = self.dir.join(format!(
            "{}.der",
            pem.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let (pem_s, out_s) = (pem.to_string_lossy(), out.to_string_lossy());
        openssl(
            &self.dir,
            &["x509", "-in", &pem_s, "-outform", "DER", "-out", &out_s],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Pki::read(&out)
    }
}
