//! Signing certificates for e-CF: a PKCS#12 file opened into [`Credentials`]
//! (the RSA private key as PKCS#8 DER, the leaf certificate and its chain), the
//! facts of a certificate ([`CertInfo`]), its expiry state ([`Validity`]), and
//! the check of a signer's chain against the configured trusted CAs
//! ([`TrustStore`], [`verify_chain`]).
//!
//! Invariants: a [`Credentials`] always holds an RSA key of at least 2,048 bits
//! that ring accepts for signing and whose public half is the leaf
//! certificate's; the key bytes live only in [`Zeroizing`] buffers (so do the
//! decrypted PKCS#12 contents and every key derived from the password, see
//! `pfx`). The caller owns the PKCS#12 bytes and the password and should keep
//! them in `Zeroizing` too (the node and hub CLIs do). What cannot be zeroized:
//! ring's `RsaKeyPair` (built by [`Credentials::signer`] for each signer) keeps
//! the key's private components in its own big-number buffers and exposes no
//! way to wipe them; they are freed, not overwritten, when it drops. So the
//! long-lived copy is the PKCS#8 buffer here, and a `RsaKeyPair` should live no
//! longer than the process needs it. Also not wiped: the AES key `pkcs5`
//! 0.7 derives inside PBES2 decryption (a stack value it does not zeroize;
//! it unlocks the PKCS#12, it is not the signing key). The ciphers' key
//! schedules are wiped on drop (their `zeroize` features are on), and so
//! are the PKCS#12 KDF's keys and IVs (`pfx`).
//!
//! Dependencies (the workspace `Cargo.toml` says the same): ring signs and
//! verifies, including X.509 signatures through x509-parser's `verify`
//! feature. ring has no password-based decryption, which PKCS#12 needs: PBES2
//! with PBKDF2-HMAC-SHA256 and AES-256-CBC (OpenSSL 3's default) and the
//! PKCS#12 PBEs with 3DES and RC2-40 (`openssl pkcs12 -legacy`, and many
//! files issued by certification authorities). Those come from RustCrypto's
//! `pkcs12`, `pkcs5`, `cms`, `des`, `rc2` and `cbc`, decoded here rather than
//! through `p12-keystore`, whose key buffers are not zeroized.
//!
//! DGII: the signer's certificate is issued by a Dominican certification
//! authority to a person delegated as signer ("Firmante") for the taxpayer's
//! RNC (DGII, "Firmado de e-CF" and "Descripción técnica de facturación
//! electrónica"). Where the taxpayer's id sits in the certificate is not
//! specified by DGII; the `serialNumber` attribute of the subject is used by
//! the Dominican CAs' certificates seen in examples (guessed: it is the X.500
//! attribute meant for such ids), and is reported as written.

mod pfx;

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

pub use pfx::MAX_PKCS12_BYTES;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// A certificate expiring in this many days or fewer is reported as
/// [`Validity::ExpiresSoon`].
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Longest chain followed from the leaf to a trusted CA.
const MAX_CHAIN_DEPTH: usize = 8;

/// Most certificates accepted in a trust store file.
const MAX_TRUSTED: usize = 256;

/// Why a certificate or a PKCS#12 file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The bytes are not a PKCS#12 file Caja can read.
    #[error("the file is not a valid PKCS#12 (.p12/.pfx): {0}")]
    Pkcs12Format(String),
    /// The password does not open the file (MAC or decryption failed).
    #[error("wrong password for the PKCS#12 file")]
    WrongPassword,
    /// An algorithm Caja does not implement.
    #[error("the PKCS#12 file uses an unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The private key is stored without encryption.
    #[error(
        "the private key in the PKCS#12 file is not encrypted; export it again with a password"
    )]
    UnencryptedKey,
    /// No private key in the file.
    #[error("the PKCS#12 file holds no private key")]
    NoPrivateKey,
    /// More than one private key: which one signs would be a guess.
    #[error("the PKCS#12 file holds {0} private keys; it must hold exactly one")]
    SeveralKeys(usize),
    /// No certificate matches the private key.
    #[error("the PKCS#12 file holds no certificate for its private key")]
    NoCertificate,
    /// The key is not one ring can sign with (RSA, 2,048 to 4,096 bits).
    #[error("the private key cannot sign e-CF (RSA 2048-4096 bits required): {0}")]
    Key(String),
    /// Bytes that should be an X.509 certificate are not.
    #[error("invalid X.509 certificate: {0}")]
    Certificate(String),
    /// A PEM file of trusted CAs that cannot be read.
    #[error("trusted CA file: {0}")]
    Pem(String),
    /// A trusted CA file with no certificate.
    #[error("trusted CA file holds no certificate")]
    EmptyTrustStore,
    /// A certificate of the chain had expired at the checked time.
    #[error("certificate {subject} expired (not after {not_after_ms} ms)")]
    Expired {
        /// Its subject.
        subject: String,
        /// Its notAfter, Unix ms UTC.
        not_after_ms: i64,
    },
    /// A certificate of the chain was not yet valid at the checked time.
    #[error("certificate {subject} is not valid before {not_before_ms} ms")]
    NotYetValid {
        /// Its subject.
        subject: String,
        /// Its notBefore, Unix ms UTC.
        not_before_ms: i64,
    },
    /// No trusted CA (directly or through the given intermediates) issued it.
    #[error("certificate {subject} was not issued by a trusted CA (issuer {issuer})")]
    Untrusted {
        /// The certificate whose issuer is unknown.
        subject: String,
        /// Its issuer.
        issuer: String,
    },
    /// An intermediate that is not a CA.
    #[error("certificate {subject} is used as an issuer but is not a CA")]
    NotACa {
        /// Its subject.
        subject: String,
    },
    /// The chain is longer than Caja follows.
    #[error("certificate chain longer than {MAX_CHAIN_DEPTH}")]
    ChainTooLong,
}

/// The facts of a certificate shown to people and checked by code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name (RFC 4514 style, as x509-parser prints it).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, uppercase hex without leading zero bytes (as
    /// `openssl x509 -serial` prints it).
    pub serial_hex: String,
    /// Start of validity, Unix ms UTC.
    pub not_before_ms: i64,
    /// End of validity (inclusive), Unix ms UTC.
    pub not_after_ms: i64,
    /// The subject's `serialNumber` attribute, as written (Dominican CAs put
    /// the RNC or cédula there; see the module doc), if present.
    pub subject_tax_id: Option<String>,
}

/// Expiry state of a certificate at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid for more than [`EXPIRY_WARNING_DAYS`] whole days.
    Valid {
        /// Whole days until notAfter.
        days_left: i64,
    },
    /// Valid, but for [`EXPIRY_WARNING_DAYS`] whole days or fewer.
    ExpiresSoon {
        /// Whole days until notAfter (0 on its last day).
        days_left: i64,
    },
    /// Past notAfter.
    Expired,
    /// Before notBefore.
    NotYetValid,
}

impl Validity {
    /// Whether a document may be signed with the certificate now.
    pub fn usable(&self) -> bool {
        matches!(self, Validity::Valid { .. } | Validity::ExpiresSoon { .. })
    }

    /// Stable name for reports: `valid`, `expires_soon`, `expired`,
    /// `not_yet_valid`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Validity::Valid { .. } => "valid",
            Validity::ExpiresSoon { .. } => "expires_soon",
            Validity::Expired => "expired",
            Validity::NotYetValid => "not_yet_valid",
        }
    }
}

/// Classifies `info` at `now_ms` (Unix ms UTC). notAfter is inclusive
/// (RFC 5280 §4.1.2.5).
pub fn validity(info: &CertInfo, now_ms: i64) -> Validity {
    if now_ms < info.not_before_ms {
        return Validity::NotYetValid;
    }
    if now_ms > info.not_after_ms {
        return Validity::Expired;
    }
    let days_left = (info.not_after_ms - now_ms) / DAY_MS;
    if days_left <= EXPIRY_WARNING_DAYS {
        Validity::ExpiresSoon { days_left }
    } else {
        Validity::Valid { days_left }
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::Certificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Certificate(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

fn info_of(cert: &X509Certificate<'_>) -> CertInfo {
    let raw = cert.raw_serial();
    let first = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    let serial_hex = hex::encode_upper(raw.get(first..).unwrap_or(raw));
    let subject_tax_id = cert
        .subject()
        .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
        .next()
        .and_then(|a| a.as_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial_hex,
        not_before_ms: cert.validity().not_before.timestamp().saturating_mul(1000),
        not_after_ms: cert.validity().not_after.timestamp().saturating_mul(1000),
        subject_tax_id,
    }
}

/// Reads the facts of a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, CertError> {
    Ok(info_of(&parse(der)?))
}

/// A signer's key and certificates, opened from a PKCS#12 file.
pub struct Credentials {
    key_pkcs8: Zeroizing<Vec<u8>>,
    cert_der: Vec<u8>,
    chain_der: Vec<Vec<u8>>,
    info: CertInfo,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_pkcs8", &"<redacted>")
            .field("info", &self.info)
            .field("chain_len", &self.chain_der.len())
            .finish()
    }
}

impl Credentials {
    /// Opens a PKCS#12 file: checks its MAC with `password`, decrypts the one
    /// private key and picks the certificate that matches it (by
    /// `localKeyId`, else by public key); the other certificates become the
    /// chain, in file order. Works with OpenSSL 3's defaults and `-legacy`.
    pub fn from_pkcs12(p12: &[u8], password: &str) -> Result<Credentials, CertError> {
        let mut decoded = pfx::decode(p12, password)?;
        let (key, key_id) = match decoded.keys.len() {
            0 => return Err(CertError::NoPrivateKey),
            1 => decoded.keys.remove(0),
            n => return Err(CertError::SeveralKeys(n)),
        };
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&key)
            .map_err(|e| CertError::Key(e.to_string()))?;
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        drop(pair);
        let matches_key = |der: &[u8]| {
            parse(der)
                .map(|c| c.public_key().subject_public_key.data.as_ref() == public.as_slice())
                .unwrap_or(false)
        };
        let by_id = key_id.as_ref().and_then(|id| {
            decoded
                .certs
                .iter()
                .position(|(_, cid)| cid.as_ref() == Some(id))
        });
        let leaf_at = match by_id {
            Some(i) => i,
            None => decoded
                .certs
                .iter()
                .position(|(der, _)| matches_key(der))
                .ok_or(CertError::NoCertificate)?,
        };
        let (cert_der, _) = decoded.certs.remove(leaf_at);
        if !matches_key(&cert_der) {
            return Err(CertError::NoCertificate);
        }
        let info = cert_info(&cert_der)?;
        let chain_der = decoded.certs.into_iter().map(|(der, _)| der).collect();
        Ok(Credentials {
            key_pkcs8: key,
            cert_der,
            chain_der,
            info,
        })
    }

    /// The leaf certificate's facts.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// An e-CF signer with this key and leaf certificate (the certificate
    /// goes into every signature's `KeyInfo`). Builds ring's `RsaKeyPair`,
    /// whose private components cannot be wiped (module doc): keep the
    /// signer for as long as it signs, no longer.
    pub fn signer(&self) -> Result<super::xmldsig::Signer, CertError> {
        super::xmldsig::Signer::new(&self.key_pkcs8, self.cert_der.clone())
            .map_err(|e| CertError::Key(e.to_string()))
    }

    /// The private key, PKCS#8 `PrivateKeyInfo` DER (RSA).
    pub fn key_pkcs8(&self) -> &[u8] {
        &self.key_pkcs8
    }

    /// The leaf certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The other certificates of the file (intermediates, maybe the root), DER.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain_der
    }

    /// The certificate's expiry state at `now_ms`.
    pub fn validity(&self, now_ms: i64) -> Validity {
        validity(&self.info, now_ms)
    }

    /// Builds credentials from their parts, with the same checks as
    /// [`Credentials::from_pkcs12`] (an RSA key ring accepts, the leaf
    /// certificate's public key is the key's).
    pub fn from_parts(
        key_pkcs8: Zeroizing<Vec<u8>>,
        cert_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
    ) -> Result<Credentials, CertError> {
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&key_pkcs8)
            .map_err(|e| CertError::Key(e.to_string()))?;
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        drop(pair);
        let cert = parse(&cert_der)?;
        if cert.public_key().subject_public_key.data.as_ref() != public.as_slice() {
            return Err(CertError::NoCertificate);
        }
        let info = info_of(&cert);
        for der in &chain_der {
            parse(der)?;
        }
        Ok(Credentials {
            key_pkcs8,
            cert_der,
            chain_der,
            info,
        })
    }

    /// The credentials as one byte string for an owner-only file: the DER
    /// encodings of the PKCS#8 key, the leaf certificate and the chain,
    /// concatenated (each is self-delimiting). Read back with
    /// [`Credentials::from_bundle`].
    pub fn to_bundle(&self) -> Zeroizing<Vec<u8>> {
        let len = self.key_pkcs8.len()
            + self.cert_der.len()
            + self.chain_der.iter().map(Vec::len).sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.extend_from_slice(&self.key_pkcs8);
        out.extend_from_slice(&self.cert_der);
        for der in &self.chain_der {
            out.extend_from_slice(der);
        }
        out
    }

    /// Reads what [`Credentials::to_bundle`] wrote.
    pub fn from_bundle(bundle: &[u8]) -> Result<Credentials, CertError> {
        let bad = |what: &str| CertError::Certificate(format!("credentials bundle: {what}"));
        let mut rest = bundle;
        let mut parts: Vec<&[u8]> = Vec::new();
        while !rest.is_empty() {
            if parts.len() > MAX_CHAIN_DEPTH + 1 {
                return Err(bad("too many parts"));
            }
            let len = der_len(rest).ok_or_else(|| bad("not a sequence of DER values"))?;
            let (part, tail) = rest.split_at(len);
            parts.push(part);
            rest = tail;
        }
        let [key, cert, chain @ ..] = parts.as_slice() else {
            return Err(bad("a key and a certificate are required"));
        };
        Credentials::from_parts(
            Zeroizing::new(key.to_vec()),
            cert.to_vec(),
            chain.iter().map(|c| c.to_vec()).collect(),
        )
    }
}

/// The length of the DER SEQUENCE at the start of `bytes` (header included),
/// if it is one and fits.
fn der_len(bytes: &[u8]) -> Option<usize> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (header, body) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = rest
            .get(..n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, len)
    };
    let total = header.checked_add(body)?;
    (total <= bytes.len()).then_some(total)
}

/// The certification authorities whose certificates are trusted as chain
/// roots (for e-CF: the Dominican CAs, configured by head office).
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    cas: Vec<Vec<u8>>,
}

impl TrustStore {
    /// Reads every `CERTIFICATE` block of a PEM file; other blocks are
    /// ignored. At least one certificate is required and each must parse.
    pub fn from_pem(bytes: &[u8]) -> Result<TrustStore, CertError> {
        let mut cas = Vec::new();
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|e| CertError::Pem(e.to_string()))?;
            if pem.label != "CERTIFICATE" {
                continue;
            }
            parse(&pem.contents).map_err(|e| {
                CertError::Pem(format!("certificate {} of the file: {e}", cas.len() + 1))
            })?;
            cas.push(pem.contents);
            if cas.len() > MAX_TRUSTED {
                return Err(CertError::Pem(format!(
                    "more than {MAX_TRUSTED} certificates"
                )));
            }
        }
        if cas.is_empty() {
            return Err(CertError::EmptyTrustStore);
        }
        Ok(TrustStore { cas })
    }

    /// The trusted CA certificates, DER.
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.cas
    }

    /// The trusted CAs' facts.
    pub fn infos(&self) -> Vec<CertInfo> {
        self.cas
            .iter()
            .filter_map(|der| cert_info(der).ok())
            .collect()
    }
}

fn check_time(cert: &X509Certificate<'_>, at_ms: i64) -> Result<(), CertError> {
    let info = info_of(cert);
    match validity(&info, at_ms) {
        Validity::Expired => Err(CertError::Expired {
            subject: info.subject,
            not_after_ms: info.not_after_ms,
        }),
        Validity::NotYetValid => Err(CertError::NotYetValid {
            subject: info.subject,
            not_before_ms: info.not_before_ms,
        }),
        Validity::Valid { .. } | Validity::ExpiresSoon { .. } => Ok(()),
    }
}

/// Checks that `leaf_der` chains to a CA of `trust` at `at_ms` (Unix ms UTC):
/// each link's issuer name equals the next certificate's subject and its
/// signature verifies with that certificate's key (ring); every certificate
/// of the path (the trusted CA included) is within its validity period; each
/// intermediate is a CA (basicConstraints). `intermediates` may hold
/// unrelated certificates; they are only candidates. Returns the leaf's facts.
///
/// Not checked (guessed not needed for a signer delegated at DGII): key usage,
/// name constraints, path-length limits, revocation (CRL/OCSP need the
/// network; DGII checks revocation itself when it receives a document).
pub fn verify_chain(
    leaf_der: &[u8],
    intermediates: &[Vec<u8>],
    trust: &TrustStore,
    at_ms: i64,
) -> Result<CertInfo, CertError> {
    let leaf = parse(leaf_der)?;
    let leaf_info = info_of(&leaf);
    check_time(&leaf, at_ms)?;
    let anchors: Vec<X509Certificate<'_>> =
        trust.cas.iter().filter_map(|der| parse(der).ok()).collect();
    let candidates: Vec<X509Certificate<'_>> = intermediates
        .iter()
        .filter_map(|der| parse(der).ok())
        .collect();
    let issued = |child: &X509Certificate<'_>, parent: &X509Certificate<'_>| {
        child.issuer().as_raw() == parent.subject().as_raw()
            && child.verify_signature(Some(parent.public_key())).is_ok()
    };
    let mut current = leaf;
    // Each candidate is used once on the path (a self-signed root among the
    // intermediates would otherwise issue itself forever).
    let mut used = vec![false; candidates.len()];
    for _ in 0..MAX_CHAIN_DEPTH {
        if let Some(anchor) = anchors.iter().find(|a| issued(&current, a)) {
            check_time(anchor, at_ms)?;
            return Ok(leaf_info);
        }
        let found = candidates
            .iter()
            .enumerate()
            .find(|(i, c)| !used.get(*i).copied().unwrap_or(true) && issued(&current, c));
        let Some((at, next)) = found else {
            return Err(CertError::Untrusted {
                subject: current.subject().to_string(),
                issuer: current.issuer().to_string(),
            });
        };
        if !next.is_ca() {
            return Err(CertError::NotACa {
                subject: next.subject().to_string(),
            });
        }
        check_time(next, at_ms)?;
        if let Some(u) = used.get_mut(at) {
            *u = true;
        }
        current = next.clone();
    }
    Err(CertError::ChainTooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(not_before_ms: i64, not_after_ms: i64) -> CertInfo {
        CertInfo {
            subject: "CN=x".into(),
            issuer: "CN=ca".into(),
            serial_hex: "01".into(),
            not_before_ms,
            not_after_ms,
            subject_tax_id: None,
        }
    }

    #[test]
    fn expiry_classification_table() {
        let nb = 1_000 * DAY_MS;
        let na = 2_000 * DAY_MS;
        let c = info(nb, na);
        let cases = [
            (nb - 1, Validity::NotYetValid),
            (nb, Validity::Valid { days_left: 1_000 }),
            (na - 31 * DAY_MS, Validity::Valid { days_left: 31 }),
            (
                na - 31 * DAY_MS + 1,
                Validity::ExpiresSoon { days_left: 30 },
            ),
            (na - 30 * DAY_MS, Validity::ExpiresSoon { days_left: 30 }),
            (na - 1, Validity::ExpiresSoon { days_left: 0 }),
            (na, Validity::ExpiresSoon { days_left: 0 }),
            (na + 1, Validity::Expired),
        ];
        for (now, want) in cases {
            assert_eq!(validity(&c, now), want, "at {now}");
        }
        assert!(!Validity::Expired.usable());
        assert!(Validity::ExpiresSoon { days_left: 0 }.usable());
        assert_eq!(Validity::NotYetValid.as_str(), "not_yet_valid");
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        for bytes in [&b""[..], b"\x30\x03\x02\x01\x03", b"not a p12 at all"] {
            let err = Credentials::from_pkcs12(bytes, "x").unwrap_err();
            assert!(matches!(err, CertError::Pkcs12Format(_)), "{err:?}");
        }
        assert!(matches!(
            cert_info(b"\x30\x00"),
            Err(CertError::Certificate(_))
        ));
        assert_eq!(
            TrustStore::from_pem(b"no pem here").unwrap_err(),
            CertError::EmptyTrustStore
        );
    }
}
