//! Whom the register believes is its hub on the network (DESIGN "Request
//! signing": production hubs are served over HTTPS and a node trusts the CA or
//! the certificate it was configured with).
//!
//! Invariant: a hub that is not on this machine is reached over `https://`
//! only — plain `http://` is accepted for a loopback host alone (`localhost`,
//! `127.0.0.0/8`, `::1`: tests, the demo, a hub beside the register), since
//! over plain HTTP a man in the middle reads the device key at enrollment and
//! swaps the hub's Ed25519 key. The TLS peer is checked in one of three ways:
//! the system's roots (default); only the roots of `hub_ca` (a head office's
//! own CA); or a pinned leaf certificate (`hub_cert_sha256`, the SHA-256 of
//! its DER, as `caja-hub init --tls-self-signed` prints it), where the host
//! name and dates are not checked but the handshake signature still is, so
//! only the holder of that certificate's private key can answer. ring is the
//! one crypto library.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

/// How the register checks the hub's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubTrust {
    /// The system's trusted roots (and the host name).
    System,
    /// Only these roots (`hub_ca`), and the host name.
    Roots(Vec<CertificateDer<'static>>),
    /// Only the leaf certificate whose DER hashes to this SHA-256
    /// (`hub_cert_sha256`).
    Pin([u8; 32]),
}

impl HubTrust {
    /// The configuration key the trust came from, for messages.
    pub fn key(&self) -> &'static str {
        match self {
            HubTrust::System => "hub_url",
            HubTrust::Roots(_) => "hub_ca",
            HubTrust::Pin(_) => "hub_cert_sha256",
        }
    }
}

/// Why a hub address or trust setting cannot be used; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TrustError {
    /// `hub_url`, `hub_ca` or `hub_cert_sha256`.
    pub key: &'static str,
    /// Why.
    pub message: String,
}

fn bad(key: &'static str, message: impl Into<String>) -> TrustError {
    TrustError {
        key,
        message: message.into(),
    }
}

/// Whether `host` (as in a URL, IPv6 in brackets or not) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") || h.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Checks a hub URL: `https://` anywhere, `http://` on a loopback host only,
/// nothing else. Returns the URL without a trailing `/`.
pub fn check_hub_url(url: &str) -> Result<String, TrustError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| bad("hub_url", format!("{url:?} is not a URL: {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| bad("hub_url", format!("{url:?} names no host")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(bad(
                "hub_url",
                format!(
                    "{url} is plain http:// to {host}, which is not this machine: use https:// \
                     (with hub_ca or hub_cert_sha256 for a head office's own certificate); \
                     http:// is only for a hub on localhost"
                ),
            ))
        }
        other => {
            return Err(bad(
                "hub_url",
                format!("{url}: scheme {other}:// is not https://"),
            ))
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("hub_url", "must not carry a user name or password"));
    }
    Ok(url.trim().trim_end_matches('/').to_owned())
}

/// Parses a pin: 64 hex digits, upper or lower case, colons allowed
/// (`AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it).
pub fn parse_pin(text: &str) -> Result<[u8; 32], TrustError> {
    let digits: String = text.trim().chars().filter(|c| *c != ':').collect();
    let err = || {
        bad(
            "hub_cert_sha256",
            "must be the SHA-256 of the hub's certificate: 64 hex digits (colons allowed)",
        )
    };
    if digits.len() != 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(err());
    }
    let mut pin = [0u8; 32];
    for (i, byte) in pin.iter_mut().enumerate() {
        let pair = digits.get(2 * i..2 * i + 2).ok_or_else(err)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| err())?;
    }
    Ok(pin)
}

/// Reads the CA certificates of `hub_ca` (PEM, one or more).
pub fn read_roots(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let bytes = std::fs::read(path)
        .map_err(|e| bad("hub_ca", format!("cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(
                "hub_ca",
                format!("{}: not PEM certificates: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(bad(
            "hub_ca",
            format!("{} holds no certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// Lowercase hex SHA-256 of a certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The leaf the hub presented is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("the hub presented certificate SHA-256 {found}, not the pinned one")]
pub struct PinMismatch {
    /// The fingerprint of what was presented.
    pub found: String,
}

/// The rustls configuration for `trust`; `None` for the system roots
/// (reqwest's own verifier).
pub fn client_config(trust: &HubTrust) -> Result<Option<rustls::ClientConfig>, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(trust.key(), e.to_string()))?;
    match trust {
        HubTrust::System => Ok(None),
        HubTrust::Roots(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs {
                roots
                    .add(c.clone())
                    .map_err(|e| bad("hub_ca", format!("not a usable CA certificate: {e}")))?;
            }
            Ok(Some(
                builder.with_root_certificates(roots).with_no_client_auth(),
            ))
        }
        HubTrust::Pin(pin) => Ok(Some(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                    pin: *pin,
                    provider,
                }))
                .with_no_client_auth(),
        )),
    }
}

/// Accepts exactly the pinned leaf; the handshake signature is still
/// verified with its public key (ring's algorithms), so a copy of the
/// certificate without its key does not pass.
#[derive(Debug)]
struct PinnedCertificate {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if found.as_ref() == self.pin.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    found: fingerprint(end_entity.as_ref()),
                })),
            )))
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

/// Whether an error (a client error and its sources) is a refused TLS
/// certificate.
pub fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            if matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            ) {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if is_certificate_error(inner) {
                    return true;
                }
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_to_this_machine() {
        for ok in [
            "https://hub.example.do",
            "https://10.0.0.5:8443/",
            "http://127.0.0.1:7878",
            "http://127.3.4.5:1",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://[::1]:9000",
        ] {
            check_hub_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad_url in [
            "http://hub.example.do",
            "http://192.168.1.10:7878",
            "http://10.0.0.1",
            "http://[::ffff:10.0.0.1]",
            "http://localhost.evil.do",
            "http://0.0.0.0:7878",
            "ftp://hub.example.do",
            "hub.example.do",
            "https://user:pw@hub.example.do",
        ] {
            let e = check_hub_url(bad_url).expect_err(bad_url);
            assert_eq!(e.key, "hub_url", "{bad_url}");
            assert!(e.to_string().starts_with("hub_url: "), "{e}");
        }
    }

    #[test]
    fn pins_are_64_hex_digits_colons_allowed() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_pin(&hex).expect("lower"), [0xab; 32]);
        assert_eq!(parse_pin(&hex.to_uppercase()).expect("upper"), [0xab; 32]);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&colons).expect("colons"), [0xab; 32]);
        for bad_pin in [
            "",
            "ab",
            &"zz".repeat(32),
            &"ab".repeat(33),
            "é".repeat(64).as_str(),
        ] {
            let e = parse_pin(bad_pin).expect_err(bad_pin);
            assert_eq!(e.key, "hub_cert_sha256");
        }
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("ca.pem");
        assert_eq!(read_roots(&p).expect_err("missing").key, "hub_ca");
        std::fs::write(&p, "not pem").expect("write");
        assert_eq!(read_roots(&p).expect_err("empty").key, "hub_ca");
    }
}
