//! The register's configuration: one struct, read from one place.
//!
//! `config.toml` in the data directory (optional; every key has a default that
//! works), then environment variables, which win. Unknown keys are an error
//! naming the key, so a typo is not silently ignored.
//!
//! ```toml
//! # Where the hub is: https:// (http:// only for a hub on this machine).
//! hub_url = "https://hub.example.do"
//! # Trust only this CA for the hub's certificate (PEM; relative to the data
//! # directory), or pin the hub's certificate by the SHA-256 of its DER (as
//! # `caja-hub init --tls-self-signed` prints it). Neither: the system's roots.
//! # hub_ca = "hub-ca.pem"
//! # hub_cert_sha256 = "3f:a2:…"
//! # How far the HLC may run ahead of this machine's clock for a remote stamp.
//! max_hlc_drift_ms = 300000
//! # The receipt's header.
//! store_name = "Colmado La Esquina"
//! store_rnc = "1-01-12345-6"
//! # The receipt printer: tcp://host[:port], serial:///dev/ttyUSB0?baud=19200,
//! # usb:///dev/usb/lp0 or file:///path (env CAJA_NODE_PRINTER). None: receipts
//! # stay queued and can be seen with `caja-node receipt show`.
//! printer = "tcp://192.168.1.50:9100"
//! # Paper width: 58 or 80 (mm).
//! receipt_width = 80
//! # Fiscal series kept (blocks asked for while online), the default
//! # document, block size, low-water mark, release everything at shift close.
//! fiscal_documents = ["B02", "B01"]
//! fiscal_document = "B02"
//! fiscal_block_size = 100
//! fiscal_low_water = 20
//! fiscal_release_at_close = false
//! # Sell tracked products from this register's stock quotas (escrow), asking
//! # for escrow_target_milli when below escrow_low_milli.
//! stock_quotas = true
//! escrow_low_milli = 2000
//! escrow_target_milli = 10000
//! # Card and transfer/QR payments get a payment intent at the hub from
//! # this provider while online (env CAJA_NODE_PAYMENT_PROVIDER).
//! # payment_provider = "azul"
//! # A virtual printer instead: one .txt (the paper) and one .bin per receipt.
//! # printer = "folder:///home/caja/recibos"
//! # The scale: toledo:///dev/ttyS0 or cas:///dev/ttyUSB0?baud=9600&capacity_g=30000
//! # (env CAJA_NODE_SCALE). A virtual scale: `caja-node scale virtual`.
//! scale = "toledo:///dev/ttyS0"
//! # How long a sale waits for the weight to settle (ms).
//! scale_timeout_ms = 3000
//!
//! # Electronic fiscal documents (e-CF): the issuer as DGII knows it. Required
//! # to sell on an `E` series; checked at start (each field is named in the
//! # error). The signing certificate: `caja-node fiscal certificate install`.
//! [ecf]
//! environment = "ecf"          # testecf | certecf | ecf (production)
//! rnc = "131234567"            # 9 digits (RNC) or 11 (cédula)
//! legal_name = "Colmado La Esquina SRL"
//! address = "Calle Duarte 12, Santo Domingo"
//! trade_name = "Colmado La Esquina"   # optional
//! deferred_send = false        # IndicadorEnvioDiferido, if DGII authorized it
//! ```

use std::path::{Path, PathBuf};

use caja_hardware::device::{PrinterAddress, ScaleAddress};
use caja_hardware::receipt::Width;
use serde::Deserialize;

use crate::sync::trust::{self, HubTrust, TrustError};

/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE_NAME: &str = "config.toml";
/// Default bound on HLC drift ahead of the local clock (5 minutes).
pub const DEFAULT_MAX_HLC_DRIFT_MS: i64 = 5 * 60 * 1000;
/// Default paper width in millimetres.
pub const DEFAULT_RECEIPT_WIDTH_MM: u16 = 58;
/// Default wait for a stable weight (3 s).
pub const DEFAULT_SCALE_TIMEOUT_MS: u64 = 3_000;
/// Where `caja-node ui` serves the cashier's screen when `ui_listen` is unset.
pub const DEFAULT_UI_LISTEN: &str = "127.0.0.1:8080";
/// Most quick keys shown.
pub const MAX_QUICK_KEYS: usize = 24;
/// Longest store name or RNC accepted.
pub const MAX_HEADER_CHARS: usize = 100;

/// The register's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The hub's base URL (env `CAJA_NODE_HUB_URL`): `https://`, or
    /// `http://` to a loopback host only (checked on load).
    pub hub_url: Option<String>,
    /// A PEM file of the only CAs trusted for the hub's certificate
    /// (env `CAJA_NODE_HUB_CA`; relative to the data directory).
    pub hub_ca: Option<String>,
    /// The pinned SHA-256 of the hub's certificate (DER), 64 hex digits,
    /// colons allowed (env `CAJA_NODE_HUB_CERT_SHA256`). Exclusive with
    /// `hub_ca`.
    pub hub_cert_sha256: Option<String>,
    /// HLC drift bound (env `CAJA_NODE_MAX_HLC_DRIFT_MS`).
    pub max_hlc_drift_ms: i64,
    /// The store's name on receipts (default: a generic one).
    pub store_name: Option<String>,
    /// The store's RNC on receipts.
    pub store_rnc: Option<String>,
    /// The receipt printer's address (env `CAJA_NODE_PRINTER`); checked on load.
    pub printer: Option<String>,
    /// Paper width in millimetres: 58 or 80.
    pub receipt_width: u16,
    /// Fiscal series this register keeps blocks of, e.g. `["B02", "B01"]`
    /// (env `CAJA_NODE_FISCAL_DOCUMENTS`, comma-separated). Empty: the
    /// register issues no fiscal numbers.
    pub fiscal_documents: Vec<String>,
    /// The document type of a sale when the cashier names none (default: the
    /// first of `fiscal_documents`).
    pub fiscal_document: Option<String>,
    /// Numbers asked for per request.
    pub fiscal_block_size: u64,
    /// Below this many numbers left, the register asks for more while online
    /// and warns the cashier.
    pub fiscal_low_water: u64,
    /// Give back every unused number at shift close (default: keep blocks
    /// across shifts so the next shift can sell offline; expired blocks are
    /// always released at close).
    pub fiscal_release_at_close: bool,
    /// Sell stock-tracked products only from this register's quotas (escrow):
    /// `block` products beyond the quota are refused, `warn` ones flagged.
    /// Off: no quota is asked for or checked (a register without a hub).
    pub stock_quotas: bool,
    /// Below this quota left (thousandths) the register asks for more.
    pub escrow_low_milli: i64,
    /// How much quota it asks for per product (thousandths; grams for
    /// weighed items).
    pub escrow_target_milli: i64,
    /// On a register with staff, a sale discounted by more than this share
    /// of its gross (basis points; 1000 = 10 %) needs a supervisor.
    pub max_discount_bp: u16,
    /// The scale's address (env `CAJA_NODE_SCALE`); checked on load.
    pub scale: Option<String>,
    /// How long a sale waits for a stable weight, in milliseconds.
    pub scale_timeout_ms: u64,
    /// Where the cashier's screen is served (env `CAJA_NODE_UI_LISTEN`), e.g.
    /// `127.0.0.1:8080`: a loopback address only (the screen has no login;
    /// it is for the register's own browser). `None`: `caja-node run` serves
    /// no screen (`caja-node ui` uses [`DEFAULT_UI_LISTEN`]).
    pub ui_listen: Option<String>,
    /// Quick keys of the cashier's screen: codes (SKU or barcode) of items
    /// without a barcode on them. Empty: the items sold by weight.
    pub quick_keys: Vec<String>,
    /// `[ecf]`: the issuer of electronic fiscal documents; `None` when the
    /// register issues none.
    pub ecf: Option<EcfConfig>,
    /// The payment provider (as configured at the hub) that card and
    /// transfer/QR payments go through (env `CAJA_NODE_PAYMENT_PROVIDER`):
    /// `caja-node sell` asks the hub for an intent per such payment while
    /// online. `None`: no intents; payments keep their references only.
    pub payment_provider: Option<String>,
}

/// DGII environments a register may send to (`[ecf] environment`).
pub const ECF_ENVIRONMENTS: [&str; 3] = ["testecf", "certecf", "ecf"];

/// The `[ecf]` section: who issues the register's e-CF. Lengths and the RNC
/// pattern are DGII's (Formato e-CF v1.0: `RNCEmisor` 9 or 11 digits,
/// `RazonSocialEmisor` and `NombreComercial` 1–150, `DireccionEmisor` 1–100
/// characters; `../shared/dgii/xsd/e-CF-32.xsd`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcfConfig {
    /// `testecf`, `certecf` or `ecf` (production).
    pub environment: String,
    /// The taxpayer's RNC (9 digits) or cédula (11 digits), digits only.
    pub rnc: String,
    /// Razón social.
    pub legal_name: String,
    /// The issuer's address (`DireccionEmisor`).
    pub address: String,
    /// Nombre comercial, if any.
    #[serde(default)]
    pub trade_name: Option<String>,
    /// `IndicadorEnvioDiferido`: DGII authorized this taxpayer to send later.
    #[serde(default)]
    pub deferred_send: bool,
}

impl EcfConfig {
    /// Checks every field with DGII's rules (`caja_shared::ecf::issuer`);
    /// the error names it (`ecf.rnc`, …).
    pub fn check(&self) -> Result<(), ConfigError> {
        self.issuer().map(|_| ())
    }

    /// The DGII environment.
    pub fn environment(&self) -> Result<caja_shared::ecf::issuer::Environment, ConfigError> {
        caja_shared::ecf::issuer::Environment::parse(self.environment.trim()).ok_or_else(|| {
            ConfigError::Invalid {
                key: "ecf.environment",
                message: format!(
                    "{:?} is not one of {}",
                    self.environment,
                    ECF_ENVIRONMENTS.join(", ")
                ),
            }
        })
    }

    /// The issuer, validated: the environment, then the RNC, legal name,
    /// address and trade name.
    pub fn issuer(&self) -> Result<caja_shared::ecf::issuer::Issuer, ConfigError> {
        use caja_shared::ecf::issuer::{Issuer, IssuerError};
        use caja_shared::ecf::xml::TextError;
        self.environment()?;
        Issuer::new(
            &self.rnc,
            &self.legal_name,
            &self.address,
            self.trade_name.as_deref(),
        )
        .map_err(|e| {
            let key = match &e {
                IssuerError::Rnc(_) => "ecf.rnc",
                IssuerError::Text(
                    TextError::Empty(f) | TextError::Character(f, _) | TextError::TooLong(f, _, _),
                ) => match f.as_str() {
                    "issuer.legal_name" => "ecf.legal_name",
                    "issuer.address" => "ecf.address",
                    "issuer.trade_name" => "ecf.trade_name",
                    _ => "ecf",
                },
            };
            ConfigError::Invalid {
                key,
                message: e.to_string().replace("issuer.", "ecf."),
            }
        })
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            hub_url: None,
            hub_ca: None,
            hub_cert_sha256: None,
            max_hlc_drift_ms: DEFAULT_MAX_HLC_DRIFT_MS,
            store_name: None,
            store_rnc: None,
            printer: None,
            receipt_width: DEFAULT_RECEIPT_WIDTH_MM,
            fiscal_documents: Vec::new(),
            fiscal_document: None,
            fiscal_block_size: 100,
            fiscal_low_water: 20,
            fiscal_release_at_close: false,
            stock_quotas: false,
            escrow_low_milli: 2_000,
            escrow_target_milli: 10_000,
            max_discount_bp: 1_000,
            scale: None,
            scale_timeout_ms: DEFAULT_SCALE_TIMEOUT_MS,
            ui_listen: None,
            quick_keys: Vec::new(),
            ecf: None,
            payment_provider: None,
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct (names the key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Why.
        message: String,
    },
    /// A value out of range.
    #[error("{key}: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// Appends `key = "value"` to `config.toml` in `data_dir` (e.g. the trust
/// `caja-node enroll` was given), then checks the file still loads.
pub fn record_setting(data_dir: &Path, key: &'static str, value: &str) -> Result<(), ConfigError> {
    let path = data_dir.join(CONFIG_FILE_NAME);
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "{key} = {}\n",
        toml::Value::String(value.to_owned())
    ));
    std::fs::write(&path, text).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    NodeConfig::load(data_dir, |_| None).map(|_| ())
}

/// `ui_listen` (or `caja-node ui --listen`): `IP:PORT` on a loopback address.
pub fn parse_ui_listen(v: &str) -> Result<std::net::SocketAddr, ConfigError> {
    let addr: std::net::SocketAddr = v.trim().parse().map_err(|_| ConfigError::Invalid {
        key: "ui_listen",
        message: format!("{v:?} is not IP:PORT (e.g. 127.0.0.1:8080)"),
    })?;
    if !addr.ip().is_loopback() {
        return Err(ConfigError::Invalid {
            key: "ui_listen",
            message: format!(
                "{addr} is not a loopback address: the cashier screen has no login and is served to this machine only"
            ),
        });
    }
    Ok(addr)
}

impl NodeConfig {
    /// Reads `config.toml` from `data_dir` (if present) and applies the
    /// environment `env` (a lookup, so tests need not touch the process env).
    pub fn load(
        data_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NodeConfig, ConfigError> {
        let path = data_dir.join(CONFIG_FILE_NAME);
        let mut cfg = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => NodeConfig::default(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if let Some(url) = env("CAJA_NODE_HUB_URL") {
            cfg.hub_url = Some(url);
        }
        if let Some(v) = env("CAJA_NODE_HUB_CA") {
            cfg.hub_ca = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = env("CAJA_NODE_HUB_CERT_SHA256") {
            cfg.hub_cert_sha256 = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = env("CAJA_NODE_MAX_HLC_DRIFT_MS") {
            cfg.max_hlc_drift_ms = v.parse().map_err(|e| ConfigError::Env {
                name: "CAJA_NODE_MAX_HLC_DRIFT_MS",
                message: format!("{e}"),
            })?;
        }
        if let Some(p) = env("CAJA_NODE_PRINTER") {
            cfg.printer = Some(p).filter(|p| !p.trim().is_empty());
        }
        if let Some(v) = env("CAJA_NODE_FISCAL_DOCUMENTS") {
            cfg.fiscal_documents = v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        cfg.check_fiscal()?;
        if let Some(v) = env("CAJA_NODE_UI_LISTEN") {
            cfg.ui_listen = Some(v).filter(|v| !v.trim().is_empty());
        }
        cfg.ui_address()?;
        if cfg.quick_keys.len() > MAX_QUICK_KEYS {
            return Err(ConfigError::Invalid {
                key: "quick_keys",
                message: format!("at most {MAX_QUICK_KEYS} codes"),
            });
        }
        if let Some(p) = env("CAJA_NODE_PAYMENT_PROVIDER") {
            cfg.payment_provider = Some(p).filter(|p| !p.trim().is_empty());
        }
        if let Some(p) = &cfg.payment_provider {
            let ok = !p.is_empty()
                && p.len() <= 32
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(ConfigError::Invalid {
                    key: "payment_provider",
                    message: "a provider name as configured at the hub: [a-z0-9_-], 1 to 32".into(),
                });
            }
        }
        if let Some(p) = env("CAJA_NODE_SCALE") {
            cfg.scale = Some(p).filter(|p| !p.trim().is_empty());
        }
        if !(1_000..=86_400_000).contains(&cfg.max_hlc_drift_ms) {
            return Err(ConfigError::Invalid {
                key: "max_hlc_drift_ms",
                message: "must be between 1000 and 86400000".into(),
            });
        }
        if let Some(ecf) = &cfg.ecf {
            ecf.check()?;
        }
        cfg.check_hub()?;
        cfg.receipt_paper()?;
        cfg.printer_address()?;
        cfg.scale_address()?;
        if !(100..=60_000).contains(&cfg.scale_timeout_ms) {
            return Err(ConfigError::Invalid {
                key: "scale_timeout_ms",
                message: "must be between 100 and 60000".into(),
            });
        }
        for (key, value) in [
            ("store_name", &cfg.store_name),
            ("store_rnc", &cfg.store_rnc),
        ] {
            if let Some(v) = value {
                if v.chars().count() > MAX_HEADER_CHARS || v.chars().any(char::is_control) {
                    return Err(ConfigError::Invalid {
                        key,
                        message: format!(
                            "at most {MAX_HEADER_CHARS} characters, no control characters"
                        ),
                    });
                }
            }
        }
        Ok(cfg)
    }

    /// `hub_url` is https:// (or http:// on loopback), the pin is well
    /// formed, and at most one of `hub_ca`, `hub_cert_sha256` is set. The CA
    /// file is read when a client is made ([`NodeConfig::hub_trust`]).
    fn check_hub(&self) -> Result<(), ConfigError> {
        let invalid = |e: TrustError| ConfigError::Invalid {
            key: e.key,
            message: e.message,
        };
        if let Some(url) = &self.hub_url {
            trust::check_hub_url(url).map_err(invalid)?;
        }
        if let Some(pin) = &self.hub_cert_sha256 {
            trust::parse_pin(pin).map_err(invalid)?;
            if self.hub_ca.is_some() {
                return Err(ConfigError::Invalid {
                    key: "hub_cert_sha256",
                    message: "set either hub_ca or hub_cert_sha256, not both".into(),
                });
            }
        }
        Ok(())
    }

    /// How the hub's certificate is checked: the pin, the roots of `hub_ca`
    /// (a relative path is taken from `data_dir`), or the system's roots.
    pub fn hub_trust(&self, data_dir: &Path) -> Result<HubTrust, ConfigError> {
        let invalid = |e: TrustError| ConfigError::Invalid {
            key: e.key,
            message: e.message,
        };
        if let Some(pin) = &self.hub_cert_sha256 {
            return Ok(HubTrust::Pin(trust::parse_pin(pin).map_err(invalid)?));
        }
        if let Some(ca) = &self.hub_ca {
            let path = data_dir.join(ca.trim());
            return Ok(HubTrust::Roots(trust::read_roots(&path).map_err(invalid)?));
        }
        Ok(HubTrust::System)
    }

    /// The cashier screen's address, checked: a loopback IP and a port.
    pub fn ui_address(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        self.ui_listen.as_deref().map(parse_ui_listen).transpose()
    }

    fn check_fiscal(&self) -> Result<(), ConfigError> {
        for d in &self.fiscal_documents {
            caja_shared::fiscal::check_prefix(d).map_err(|e| ConfigError::Invalid {
                key: "fiscal_documents",
                message: e.to_string(),
            })?;
        }
        if let Some(d) = &self.fiscal_document {
            if !self.fiscal_documents.contains(d) {
                return Err(ConfigError::Invalid {
                    key: "fiscal_document",
                    message: format!("{d} is not one of fiscal_documents"),
                });
            }
        }
        if !(1..=1000).contains(&self.fiscal_block_size) {
            return Err(ConfigError::Invalid {
                key: "fiscal_block_size",
                message: "must be from 1 to 1000".into(),
            });
        }
        if self.escrow_target_milli <= 0
            || self.escrow_low_milli < 0
            || self.escrow_low_milli > self.escrow_target_milli
        {
            return Err(ConfigError::Invalid {
                key: "escrow_low_milli",
                message: "0 ≤ escrow_low_milli ≤ escrow_target_milli, escrow_target_milli > 0"
                    .into(),
            });
        }
        if self.fiscal_low_water > self.fiscal_block_size {
            return Err(ConfigError::Invalid {
                key: "fiscal_low_water",
                message: "must not exceed fiscal_block_size".into(),
            });
        }
        Ok(())
    }

    /// The document type of a sale for which the cashier named `asked`.
    pub fn document_for(&self, asked: Option<&str>) -> Option<String> {
        asked
            .map(str::to_owned)
            .or_else(|| self.fiscal_document.clone())
            .or_else(|| self.fiscal_documents.first().cloned())
    }

    /// The paper width of `receipt_width`.
    pub fn receipt_paper(&self) -> Result<Width, ConfigError> {
        match self.receipt_width {
            58 => Ok(Width::Mm58),
            80 => Ok(Width::Mm80),
            _ => Err(ConfigError::Invalid {
                key: "receipt_width",
                message: "must be 58 or 80 (mm)".into(),
            }),
        }
    }

    /// The parsed `printer` address, if one is configured.
    pub fn printer_address(&self) -> Result<Option<PrinterAddress>, ConfigError> {
        self.printer
            .as_deref()
            .map(|p| {
                p.parse::<PrinterAddress>()
                    .map_err(|e| ConfigError::Invalid {
                        key: "printer",
                        message: e.to_string(),
                    })
            })
            .transpose()
    }
}

impl NodeConfig {
    /// The parsed `scale` address, if one is configured.
    pub fn scale_address(&self) -> Result<Option<ScaleAddress>, ConfigError> {
        self.scale
            .as_deref()
            .map(|p| {
                p.parse::<ScaleAddress>().map_err(|e| ConfigError::Invalid {
                    key: "scale",
                    message: e.to_string(),
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_env_in_that_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let none = |_: &str| None;
        assert_eq!(
            NodeConfig::load(dir.path(), none).expect("defaults"),
            NodeConfig::default()
        );
        std::fs::write(
            dir.path().join(CONFIG_FILE_NAME),
            "hub_url = \"https://hub.test\"\nmax_hlc_drift_ms = 60000\n",
        )
        .expect("write");
        let cfg = NodeConfig::load(dir.path(), none).expect("file");
        assert_eq!(cfg.hub_url.as_deref(), Some("https://hub.test"));
        assert_eq!(cfg.max_hlc_drift_ms, 60_000);
        let env = |k: &str| (k == "CAJA_NODE_MAX_HLC_DRIFT_MS").then(|| "120000".to_owned());
        assert_eq!(
            NodeConfig::load(dir.path(), env)
                .expect("env")
                .max_hlc_drift_ms,
            120_000
        );
    }

    #[test]
    fn printer_keys_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let none = |_: &str| None;
        let cfg = NodeConfig::load(dir.path(), none).expect("defaults");
        assert_eq!(cfg.receipt_paper().expect("width"), Width::Mm58);
        assert_eq!(cfg.printer_address().expect("printer"), None);
        std::fs::write(
            dir.path().join(CONFIG_FILE_NAME),
            "store_name = \"Colmado Ñoño\"\nstore_rnc = \"1-01-12345-6\"\nprinter = \"tcp://127.0.0.1:9100\"\nreceipt_width = 80\n",
        )
        .expect("write");
        let cfg = NodeConfig::load(dir.path(), none).expect("file");
        assert_eq!(cfg.store_name.as_deref(), Some("Colmado Ñoño"));
        assert_eq!(cfg.receipt_paper().expect("width"), Width::Mm80);
        assert!(matches!(
            cfg.printer_address().expect("printer"),
            Some(PrinterAddress::Tcp { port: 9100, .. })
        ));
        let env = |k: &str| (k == "CAJA_NODE_PRINTER").then(|| "file:///tmp/r.bin".to_owned());
        assert!(matches!(
            NodeConfig::load(dir.path(), env)
                .expect("env")
                .printer_address(),
            Ok(Some(PrinterAddress::File { .. }))
        ));
        std::fs::write(
            dir.path().join(CONFIG_FILE_NAME),
            "printer = \"folder:///tmp/recibos\"\nscale = \"cas:///dev/ttyUSB0?baud=9600\"\n",
        )
        .expect("write");
        let cfg = NodeConfig::load(dir.path(), none).expect("devices");
        assert!(matches!(
            cfg.printer_address(),
            Ok(Some(PrinterAddress::Folder { .. }))
        ));
        let scale = cfg.scale_address().expect("scale").expect("configured");
        assert_eq!(
            (scale.path.as_str(), scale.baud),
            ("/dev/ttyUSB0", Some(9600))
        );
        let env = |k: &str| (k == "CAJA_NODE_SCALE").then(|| "toledo:///dev/ttyS0".to_owned());
        let cfg = NodeConfig::load(dir.path(), env).expect("env scale");
        assert_eq!(cfg.scale.as_deref(), Some("toledo:///dev/ttyS0"));
        for (text, key) in [
            ("scale = \"mettler:///dev/ttyS0\"\n", "scale"),
            ("scale_timeout_ms = 5\n", "scale_timeout_ms"),
            ("printer = \"lpt://1\"\n", "printer"),
            ("receipt_width = 42\n", "receipt_width"),
            ("store_name = \"a\\u0007b\"\n", "store_name"),
        ] {
            std::fs::write(dir.path().join(CONFIG_FILE_NAME), text).expect("write");
            let err = NodeConfig::load(dir.path(), none).expect_err(text);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), "hub_ulr = \"x\"\n").expect("write");
        let err = NodeConfig::load(dir.path(), |_| None).expect_err("typo");
        assert!(err.to_string().contains("hub_ulr"), "{err}");
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), "max_hlc_drift_ms = 5\n").expect("write");
        let err = NodeConfig::load(dir.path(), |_| None).expect_err("range");
        assert!(err.to_string().contains("max_hlc_drift_ms"), "{err}");
        let bad_env = |_: &str| Some("soon".to_owned());
        std::fs::remove_file(dir.path().join(CONFIG_FILE_NAME)).expect("rm");
        assert!(matches!(
            NodeConfig::load(dir.path(), bad_env),
            Err(ConfigError::Env { .. })
        ));
    }

    #[test]
    fn ecf_section_is_read_and_each_field_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let good = "[ecf]\nenvironment = \"certecf\"\nrnc = \"131234567\"\n\
                    legal_name = \"Colmado Ñoño SRL\"\naddress = \"Calle Duarte 12\"\n";
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), good).expect("write");
        let cfg = NodeConfig::load(dir.path(), |_| None).expect("ecf");
        let ecf = cfg.ecf.expect("section");
        assert_eq!(ecf.environment, "certecf");
        assert_eq!(ecf.trade_name, None);
        assert!(!ecf.deferred_send);
        for (edit, key) in [
            (("certecf", "prod"), "ecf.environment"),
            (("131234567", "1-31-23456-7"), "ecf.rnc"),
            (("131234567", "1312345678"), "ecf.rnc"),
            (("Colmado Ñoño SRL", ""), "ecf.legal_name"),
            (("Calle Duarte 12", " "), "ecf.address"),
        ] {
            let text = good.replace(edit.0, edit.1);
            std::fs::write(dir.path().join(CONFIG_FILE_NAME), &text).expect("write");
            let err = NodeConfig::load(dir.path(), |_| None).expect_err(&text);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let long = format!("{good}trade_name = \"{}\"\n", "x".repeat(151));
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), long).expect("write");
        let err = NodeConfig::load(dir.path(), |_| None).expect_err("long");
        assert!(err.to_string().contains("ecf.trade_name"), "{err}");
        let missing = good.replace("address = \"Calle Duarte 12\"\n", "");
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), missing).expect("write");
        let err = NodeConfig::load(dir.path(), |_| None).expect_err("missing");
        assert!(err.to_string().contains("address"), "{err}");
    }

    #[test]
    fn ui_listen_is_loopback_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg_with = |text: &str| {
            std::fs::write(dir.path().join(CONFIG_FILE_NAME), text).expect("write");
            NodeConfig::load(dir.path(), |_| None)
        };
        let ok =
            cfg_with("ui_listen = \"127.0.0.1:8080\"\nquick_keys = [\"ARROZ\"]\n").expect("ok");
        assert_eq!(
            ok.ui_address().expect("addr"),
            Some("127.0.0.1:8080".parse().expect("addr"))
        );
        assert_eq!(ok.quick_keys, vec!["ARROZ".to_owned()]);
        for bad in ["0.0.0.0:8080", "192.168.1.5:80", "localhost", "127.0.0.1"] {
            let err = cfg_with(&format!("ui_listen = \"{bad}\"\n")).expect_err(bad);
            assert!(err.to_string().contains("ui_listen"), "{bad}: {err}");
        }
        std::fs::remove_file(dir.path().join(CONFIG_FILE_NAME)).expect("rm");
        let env = |k: &str| (k == "CAJA_NODE_UI_LISTEN").then(|| "[::1]:9000".to_owned());
        let cfg = NodeConfig::load(dir.path(), env).expect("env");
        assert_eq!(cfg.ui_listen.as_deref(), Some("[::1]:9000"));
    }

    #[test]
    fn hub_url_is_https_unless_loopback_and_trust_is_one_of_ca_or_pin() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg_with = |text: &str| {
            std::fs::write(dir.path().join(CONFIG_FILE_NAME), text).expect("write");
            NodeConfig::load(dir.path(), |_| None)
        };
        for bad in [
            "hub_url = \"http://hub.example.do\"\n",
            "hub_url = \"http://192.168.1.10:7878\"\n",
        ] {
            let err = cfg_with(bad).expect_err(bad);
            assert!(err.to_string().starts_with("hub_url: "), "{err}");
        }
        let env = |k: &str| (k == "CAJA_NODE_HUB_URL").then(|| "http://10.1.1.1".to_owned());
        std::fs::remove_file(dir.path().join(CONFIG_FILE_NAME)).expect("rm");
        let err = NodeConfig::load(dir.path(), env).expect_err("env");
        assert!(err.to_string().starts_with("hub_url: "), "{err}");
        let cfg = cfg_with("hub_url = \"http://127.0.0.1:7878\"\n").expect("loopback");
        assert_eq!(cfg.hub_trust(dir.path()).expect("trust"), HubTrust::System);
        let pin = "AB:".repeat(31) + "AB";
        let cfg = cfg_with(&format!(
            "hub_url = \"https://hub.example.do\"\nhub_cert_sha256 = \"{pin}\"\n"
        ))
        .expect("pin");
        assert_eq!(
            cfg.hub_trust(dir.path()).expect("trust"),
            HubTrust::Pin([0xab; 32])
        );
        let err = cfg_with("hub_cert_sha256 = \"abcd\"\n").expect_err("short pin");
        assert!(err.to_string().starts_with("hub_cert_sha256: "), "{err}");
        let err = cfg_with(&format!(
            "hub_ca = \"ca.pem\"\nhub_cert_sha256 = \"{pin}\"\n"
        ))
        .expect_err("both");
        assert!(err.to_string().starts_with("hub_cert_sha256: "), "{err}");
        // The CA file is read when a client is made, and named when missing.
        let cfg = cfg_with("hub_ca = \"ca.pem\"\n").expect("ca");
        let err = cfg.hub_trust(dir.path()).expect_err("no file");
        assert!(err.to_string().starts_with("hub_ca: "), "{err}");
        record_setting(dir.path(), "hub_url", "https://hub.example.do").expect("record");
        let cfg = NodeConfig::load(dir.path(), |_| None).expect("recorded");
        assert_eq!(cfg.hub_url.as_deref(), Some("https://hub.example.do"));
    }
}
