//! Shared by the e-CF tests: external checkers (`xmllint`, `xmlsec1`,
//! `openssl`) with the `CAJA_REQUIRE_EXTERNAL` convention (missing → skip
//! with a printed reason, or fail when the variable is `1`), a throwaway RSA
//! 2048 key and self-signed certificate made with `openssl`, and sample
//! events.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use caja_shared::ecf::issue::SaleContextEcf;
use caja_shared::ecf::issuer::{Environment, Issuer};
use caja_shared::ecf::xmldsig::Signer;
use caja_shared::kind::{SaleCreated, SaleReturned};
use caja_shared::localtime::UtcOffset;
use serde_json::{json, Value};

/// Whether a missing external program fails the test.
pub fn required() -> bool {
    std::env::var("CAJA_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// The program on PATH, or `None` (skip, printed) — a panic when required.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !required(),
            "{name} not found on PATH and CAJA_REQUIRE_EXTERNAL=1 (Debian: libxml2-utils, xmlsec1, openssl)"
        );
        eprintln!(
            "SKIPPED ({name}): not on PATH — set CAJA_REQUIRE_EXTERNAL=1 to make this a failure"
        );
    }
    found
}

/// All three tools, or `None` when one is missing (and not required).
pub fn tools() -> Option<()> {
    let a = tool("xmllint");
    let b = tool("xmlsec1");
    let c = tool("openssl");
    (a.is_some() && b.is_some() && c.is_some()).then_some(())
}

/// DGII's schemas: `$CAJA_DGII_XSD`, else `../shared/dgii/xsd` beside the
/// workspace.
pub fn xsd_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CAJA_DGII_XSD") {
        return PathBuf::from(d);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd");
    assert!(
        dir.join("e-CF-32.xsd").is_file(),
        "DGII schemas not found at {} (set CAJA_DGII_XSD)",
        dir.display()
    );
    dir
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("the program runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A scratch directory and a key + self-signed certificate in it.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub key_pkcs8_der: Vec<u8>,
    pub cert_der: Vec<u8>,
    pub cert_pem: PathBuf,
}

impl Pki {
    /// RSA 2048 key and certificate made with `openssl`.
    pub fn new(cn: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let (ok, out) = run(Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={cn}/serialNumber=131880738"),
            "-keyout",
            p("key.pem").to_str().unwrap(),
            "-out",
            p("cert.pem").to_str().unwrap(),
        ]));
        assert!(ok, "openssl req: {out}");
        let (ok, out) = run(Command::new("openssl").args([
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-outform",
            "DER",
            "-in",
            p("key.pem").to_str().unwrap(),
            "-out",
            p("key.der").to_str().unwrap(),
        ]));
        assert!(ok, "openssl pkcs8: {out}");
        let (ok, out) = run(Command::new("openssl").args([
            "x509",
            "-outform",
            "DER",
            "-in",
            p("cert.pem").to_str().unwrap(),
            "-out",
            p("cert.der").to_str().unwrap(),
        ]));
        assert!(ok, "openssl x509: {out}");
        Pki {
            key_pkcs8_der: std::fs::read(p("key.der")).unwrap(),
            cert_der: std::fs::read(p("cert.der")).unwrap(),
            cert_pem: p("cert.pem"),
            dir,
        }
    }

    pub fn signer(&self) -> Signer {
        Signer::new(&self.key_pkcs8_der, self.cert_der.clone()).unwrap()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `xmllint --noout --schema XSD`: `Err(output)` when invalid.
    pub fn xmllint(&self, xsd: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
        let path = self.write(name, bytes);
        let (ok, out) = run(Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(xsd_dir().join(xsd))
            .arg(&path));
        if ok {
            Ok(())
        } else {
            Err(out)
        }
    }

    /// `xmlsec1 --verify --enabled-reference-uris empty --pubkey-cert-pem`
    /// with `cert` (this PKI's by default).
    pub fn xmlsec_verify(
        &self,
        name: &str,
        bytes: &[u8],
        cert: Option<&Path>,
    ) -> Result<(), String> {
        let path = self.write(name, bytes);
        let (ok, out) = run(Command::new("xmlsec1")
            .args([
                "--verify",
                "--enabled-reference-uris",
                "empty",
                "--pubkey-cert-pem",
            ])
            .arg(cert.unwrap_or(&self.cert_pem))
            .arg(&path));
        if ok {
            Ok(())
        } else {
            Err(out)
        }
    }
}

pub const ISSUED_MS: i64 = 1_795_457_109_000; // 2026-11-23 14:05:09 GMT-4

pub fn issuer() -> Issuer {
    Issuer::new(
        "131880738",
        "Colmado Ñico & Hijos <SRL>",
        "Calle 1 #5, Los Mina, Santo Domingo Este",
        Some("Colmado Ñico"),
    )
    .unwrap()
}

pub fn ctx<'a>(issuer: &'a Issuer, buyer_name: Option<&'a str>) -> SaleContextEcf<'a> {
    SaleContextEcf {
        issuer,
        environment: Environment::Test,
        offset: UtcOffset::SANTO_DOMINGO,
        issued_ms: ISSUED_MS,
        signed_at_ms: ISSUED_MS + 2_000,
        series_valid_until: Some("2027-12-31"),
        deferred_send: false,
        buyer_name,
    }
}

/// A sale from lines `{product,name,qty_milli,unit_price,tax_bp,discount?,total,tax}`.
pub fn sale(
    number: &str,
    lines: Value,
    payments: Value,
    change: i64,
    buyer: Option<&str>,
) -> SaleCreated {
    let ls = lines.as_array().unwrap();
    let total: i64 = ls.iter().map(|l| l["total"].as_i64().unwrap()).sum();
    let tax: i64 = ls.iter().map(|l| l["tax"].as_i64().unwrap()).sum();
    let mut fiscal = json!({"series": &number[..3], "number": number, "valid_until": "2027-12-31"});
    if let Some(b) = buyer {
        fiscal["buyer_tax_id"] = json!(b);
    }
    serde_json::from_value(json!({
        "sale_id": "019aaf70-dbf4-7000-8000-00000000a001",
        "cashier": "ana",
        "fiscal": fiscal,
        "lines": lines,
        "total": total,
        "tax": tax,
        "payments": payments,
        "change": change,
    }))
    .unwrap()
}

/// A weighed, discounted consumer sale under RD$250,000.
pub fn small_sale(number: &str) -> SaleCreated {
    sale(
        number,
        json!([
            {"product": "salami", "name": "Salami Induveca & <Cía>", "qty_milli": 1255, "unit_price": 38555,
             "tax_bp": 1800, "total": 48387, "tax": 7381},
            {"product": "rice-1kg", "name": "Arroz selecto ñ", "qty_milli": 2000, "unit_price": 6500,
             "tax_bp": 0, "discount": 1000, "total": 12000, "tax": 0},
            {"product": "oil", "name": "Aceite", "qty_milli": 1000, "unit_price": 32000,
             "tax_bp": 1600, "total": 32000, "tax": 4414}
        ]),
        json!([{"method": "cash", "amount": 100000}, {"method": "card", "amount": 5000, "reference": "9"}]),
        12613,
        None,
    )
}

/// A return of two lines as a credit note modifying `modifies`.
pub fn a_return(number: &str, modifies: &str, buyer: Option<&str>) -> SaleReturned {
    let mut note = json!({"series": "E34", "number": number, "modifies": modifies});
    if let Some(b) = buyer {
        note["buyer_tax_id"] = json!(b);
    }
    serde_json::from_value(json!({
        "return_id": "019aaf70-dbf4-7000-8000-00000000b001",
        "sale_id": "019aaf70-dbf4-7000-8000-00000000a001",
        "shift_id": "019aaf70-dbf4-7000-8000-00000000c001",
        "cashier": "ana",
        "lines": [
            {"line": 0, "product": "salami", "qty_milli": 255, "total": 9832, "tax": 1500},
            {"line": 1, "product": "rice-1kg", "qty_milli": 1000, "total": 6000, "tax": 0}
        ],
        "total": 15832, "tax": 1500, "refund": "cash",
        "credit_note": note
    }))
    .unwrap()
}
