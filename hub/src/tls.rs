//! TLS termination by the hub itself, so a small chain needs no proxy:
//! `tls_cert` and `tls_key` in `hub.toml` (PEM files, relative to the data
//! directory) make the serve loop speak HTTPS with rustls on ring (no other
//! crypto library); `caja-hub init --tls-self-signed` makes the pair with
//! rcgen and prints the certificate's SHA-256 for registers to pin.
//!
//! Invariant: a running hub always has a usable certificate. [`TlsReloader`]
//! swaps in a new one (SIGHUP) only after it loaded and matched its key; a
//! failed reload keeps the old one and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where `caja-hub init --tls-self-signed` writes the certificate (relative
/// to the data directory).
pub const SELF_SIGNED_CERT: &str = "tls/cert.pem";
/// Where it writes the private key (owner-only).
pub const SELF_SIGNED_KEY: &str = "tls/key.pem";

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{field} {path}: {message}")]
    File {
        /// `tls_cert` or `tls_key`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("tls_cert/tls_key: {0}")]
    Config(String),
    /// The self-signed certificate could not be made.
    #[error("self-signed certificate: {0}")]
    Generate(String),
}

/// The SHA-256 of a certificate's DER bytes as 64 lowercase hex digits: what
/// `caja-hub init --tls-self-signed` prints and a register pins.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// A loaded certificate: the rustls configuration and the leaf's fingerprint.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// What the acceptor serves.
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    pub fingerprint: String,
}

/// Reads the certificate chain and key, and builds the server configuration
/// on ring's provider (TLS 1.2 and 1.3, no client certificates, HTTP/1.1).
pub fn load(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, TlsError> {
    let file_err = |field: &'static str, path: &Path, message: String| TlsError::File {
        field,
        path: path.to_owned(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| file_err("tls_cert", cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("tls_cert", cert_path, e.to_string()))?;
    let leaf = certs.first().ok_or_else(|| {
        file_err(
            "tls_cert",
            cert_path,
            "holds no CERTIFICATE block".to_owned(),
        )
    })?;
    let fingerprint = fingerprint_sha256(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| file_err("tls_key", key_path, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(LoadedCert {
        config: Arc::new(config),
        fingerprint,
    })
}

/// The certificate in use and the files it came from; [`TlsReloader::reload`]
/// reads them again.
#[derive(Debug)]
pub struct TlsReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<LoadedCert>,
}

impl TlsReloader {
    /// Loads the pair once; an error stops the hub at start.
    pub fn new(cert_path: PathBuf, key_path: PathBuf) -> Result<TlsReloader, TlsError> {
        let current = load(&cert_path, &key_path)?;
        Ok(TlsReloader {
            cert_path,
            key_path,
            current: RwLock::new(current),
        })
    }

    /// The configuration a new connection's handshake uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .map_or_else(|p| p.into_inner().config.clone(), |c| c.config.clone())
    }

    /// The fingerprint of the certificate in use.
    pub fn fingerprint(&self) -> String {
        self.current.read().map_or_else(
            |p| p.into_inner().fingerprint.clone(),
            |c| c.fingerprint.clone(),
        )
    }

    /// Reads the files again; on success new connections use the new
    /// certificate (open ones keep theirs), on failure nothing changes.
    pub fn reload(&self) -> Result<String, TlsError> {
        let fresh = load(&self.cert_path, &self.key_path)?;
        let fingerprint = fresh.fingerprint.clone();
        match self.current.write() {
            Ok(mut c) => *c = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(fingerprint)
    }
}

/// A self-signed certificate and its key, as PEM, and the fingerprint.
#[derive(Debug)]
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: zeroize::Zeroizing<String>,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fingerprint: String,
}

/// Makes a self-signed ECDSA P-256 certificate for `localhost`, `127.0.0.1`
/// and every name in `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<SelfSigned, TlsError> {
    let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for n in names {
        let n = n.trim();
        if n.is_empty() {
            return Err(TlsError::Generate("--tls-name must not be empty".into()));
        }
        if !sans.iter().any(|s| s == n) {
            sans.push(n.to_owned());
        }
    }
    let certified =
        rcgen::generate_simple_self_signed(sans).map_err(|e| TlsError::Generate(e.to_string()))?;
    let der = certified.cert.der();
    Ok(SelfSigned {
        cert_pem: certified.cert.pem(),
        key_pem: zeroize::Zeroizing::new(certified.signing_key.serialize_pem()),
        fingerprint: fingerprint_sha256(der.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_lowercase_hex_of_sha256() {
        assert_eq!(
            fingerprint_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn self_signed_loads_and_a_bad_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let made = self_signed(&["caja.example".into(), "10.0.0.5".into()]).unwrap();
        assert_eq!(made.fingerprint.len(), 64);
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, &made.cert_pem).unwrap();
        std::fs::write(&key, made.key_pem.as_bytes()).unwrap();
        let r = TlsReloader::new(cert.clone(), key.clone()).unwrap();
        assert_eq!(r.fingerprint(), made.fingerprint);
        // SANs: the defaults and the names given.
        let pem =
            rustls_pki_types::CertificateDer::from_pem_slice(made.cert_pem.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(pem.as_ref()).unwrap();
        let san = format!("{:?}", parsed.subject_alternative_name().unwrap().unwrap());
        for want in [
            "localhost",
            "caja.example",
            "[127, 0, 0, 1]",
            "[10, 0, 0, 5]",
        ] {
            assert!(san.contains(want), "{want} in {san}");
        }
        // A key of another certificate: refused, the old one stays.
        let other = self_signed(&[]).unwrap();
        std::fs::write(&key, other.key_pem.as_bytes()).unwrap();
        assert!(matches!(r.reload(), Err(TlsError::Config(_))));
        std::fs::write(&cert, "not pem").unwrap();
        assert!(matches!(
            r.reload(),
            Err(TlsError::File {
                field: "tls_cert",
                ..
            })
        ));
        assert_eq!(r.fingerprint(), made.fingerprint);
        std::fs::write(&cert, &other.cert_pem).unwrap();
        assert_eq!(r.reload().unwrap(), other.fingerprint);
        assert_eq!(r.fingerprint(), other.fingerprint);
    }
}
