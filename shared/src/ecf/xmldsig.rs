//! Enveloped XMLDSig signatures of the documents Caja writes, signed and
//! verified with ring (RSA PKCS#1 v1.5 SHA-256, SHA-256 digest), and the
//! security code.
//!
//! Profile (DGII "Firmado de e-CF" and DESIGN "Electronic fiscal documents"):
//! one `Reference URI=""` whose only transform is enveloped-signature,
//! C14N 1.0 inclusive without comments, the signer's certificate in
//! `KeyInfo/X509Data/X509Certificate`, an unprefixed `Signature` in the
//! XMLDSig namespace as the root's last child, no whitespace anywhere. The
//! security code printed on receipts is the first 6 characters of
//! `SignatureValue` (DGII "Representación Impresa").
//!
//! No general canonicalization: Caja writes documents in their canonical
//! form ([`super::xml`]) with a root that declares no namespace (DGII's
//! schemas have no target namespace), so the canonical form of the document
//! without its signature is the root's bytes without the `Signature`
//! element, and the canonical `SignedInfo` is its bytes with the inherited
//! default namespace declared on it. [`verify`] therefore accepts only
//! documents in Caja's own serialization: it parses, re-serializes, and
//! refuses anything that is not byte for byte the same — a document signed
//! by another program in another (equally valid) serialization is refused,
//! stated, not mis-verified. It checks digest and signature with the
//! certificate's key; the certificate's chain is checked elsewhere
//! ([`super`]'s certificate module).
//!
//! ring's `RsaKeyPair::sign` takes a random source; PKCS#1 v1.5 padding is
//! deterministic and never reads it, so signing here reads no OS state.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{self, KeyPair as _, RsaKeyPair, UnparsedPublicKey};

use super::xml::{self, Content, Element};

/// The XMLDSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// C14N 1.0 inclusive, without comments.
pub const ALG_C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
/// RSA PKCS#1 v1.5 with SHA-256.
pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// The enveloped-signature transform.
pub const ALG_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// SHA-256 digest.
pub const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// Length of the security code.
pub const SECURITY_CODE_CHARS: usize = 6;

/// A signing key and its certificate.
pub struct Signer {
    key: RsaKeyPair,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert_der_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// Why a document cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The key is not an RSA PKCS#8 key ring accepts (2048–4096 bits).
    #[error("the private key is not an RSA PKCS#8 key of 2048 to 4096 bits: {0}")]
    Key(String),
    /// The certificate cannot be read.
    #[error("the certificate cannot be read: {0}")]
    Certificate(&'static str),
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// The document is not in Caja's serialization, or already signed.
    #[error("the document cannot be signed: {0}")]
    Document(String),
    /// ring failed to sign.
    #[error("signing failed")]
    Crypto,
}

/// Why a signed document does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not parseable as Caja's XML.
    #[error("not a document in Caja's serialization: {0}")]
    Parse(#[from] xml::ParseError),
    /// Parsed, but not byte for byte Caja's canonical serialization.
    #[error("the document is not in Caja's canonical serialization")]
    NotCanonical,
    /// No signature, or not exactly the expected profile.
    #[error("signature: {0}")]
    Profile(&'static str),
    /// Base64 that does not decode.
    #[error("{0} is not base64")]
    Base64(&'static str),
    /// The certificate cannot be read.
    #[error("the certificate cannot be read: {0}")]
    Certificate(&'static str),
    /// The digest does not match the document.
    #[error("the digest does not match the document")]
    Digest,
    /// The signature value does not verify with the certificate's key.
    #[error("the signature value does not verify with the certificate's key")]
    Signature,
}

impl Signer {
    /// A signer from a PKCS#8 RSA key (DER) and its X.509 certificate (DER);
    /// refuses a key that is not the certificate's.
    pub fn new(key_pkcs8_der: &[u8], cert_der: Vec<u8>) -> Result<Signer, SignError> {
        let key =
            RsaKeyPair::from_pkcs8(key_pkcs8_der).map_err(|e| SignError::Key(e.to_string()))?;
        let cert_key = der::rsa_public_key(&cert_der).map_err(SignError::Certificate)?;
        if key.public_key().as_ref() != cert_key {
            return Err(SignError::KeyMismatch);
        }
        Ok(Signer { key, cert_der })
    }

    /// The certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    fn sign_bytes(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        // PKCS#1 v1.5 does not read the random source (see the module doc).
        let rng = ring::rand::SystemRandom::new();
        self.key
            .sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .map_err(|_| SignError::Crypto)?;
        Ok(sig)
    }
}

/// `SignedInfo` for a digest, as written inside `Signature` (`with_ns`
/// false) or as canonicalized alone (`with_ns` true: the default namespace
/// inherited from `Signature` is declared on it).
fn signed_info(digest_b64: &str, with_ns: bool) -> String {
    let mut s = String::new();
    if with_ns {
        xml::open(&mut s, "SignedInfo", &[("xmlns", DSIG_NS)]);
    } else {
        xml::open(&mut s, "SignedInfo", &[]);
    }
    for (name, alg) in [
        ("CanonicalizationMethod", ALG_C14N),
        ("SignatureMethod", ALG_RSA_SHA256),
    ] {
        xml::open(&mut s, name, &[("Algorithm", alg)]);
        xml::close(&mut s, name);
    }
    xml::open(&mut s, "Reference", &[("URI", "")]);
    xml::open(&mut s, "Transforms", &[]);
    xml::open(&mut s, "Transform", &[("Algorithm", ALG_ENVELOPED)]);
    xml::close(&mut s, "Transform");
    xml::close(&mut s, "Transforms");
    xml::open(&mut s, "DigestMethod", &[("Algorithm", ALG_SHA256)]);
    xml::close(&mut s, "DigestMethod");
    xml::open(&mut s, "DigestValue", &[]);
    s.push_str(digest_b64);
    xml::close(&mut s, "DigestValue");
    xml::close(&mut s, "Reference");
    xml::close(&mut s, "SignedInfo");
    s
}

/// The whole `Signature` element.
fn signature_element(digest_b64: &str, value_b64: &str, cert_b64: &str) -> String {
    let mut s = String::new();
    xml::open(&mut s, "Signature", &[("xmlns", DSIG_NS)]);
    s.push_str(&signed_info(digest_b64, false));
    xml::open(&mut s, "SignatureValue", &[]);
    s.push_str(value_b64);
    xml::close(&mut s, "SignatureValue");
    xml::open(&mut s, "KeyInfo", &[]);
    xml::open(&mut s, "X509Data", &[]);
    xml::open(&mut s, "X509Certificate", &[]);
    s.push_str(cert_b64);
    xml::close(&mut s, "X509Certificate");
    xml::close(&mut s, "X509Data");
    xml::close(&mut s, "KeyInfo");
    xml::close(&mut s, "Signature");
    s
}

/// Parses a document and checks that it is in Caja's serialization; returns
/// the root and the canonical root bytes.
fn parse_canonical(doc: &[u8]) -> Result<(Element, String), VerifyError> {
    let root = xml::parse(doc)?;
    let canonical = root.to_canonical();
    if canonical.as_bytes() != &doc[xml::DECLARATION.len()..] {
        return Err(VerifyError::NotCanonical);
    }
    Ok((root, canonical))
}

/// Signs an unsigned document Caja wrote: appends `Signature` as the root's
/// last child. The document must be in Caja's serialization, its root
/// without attributes, and not yet signed.
pub fn sign(unsigned: &[u8], signer: &Signer) -> Result<Vec<u8>, SignError> {
    let (root, canonical) =
        parse_canonical(unsigned).map_err(|e| SignError::Document(e.to_string()))?;
    if !root.attrs.is_empty() {
        return Err(SignError::Document(
            "the root element has attributes (namespace declarations would change the canonical SignedInfo)".into(),
        ));
    }
    if root.elements().any(|e| e.name == "Signature") {
        return Err(SignError::Document("already signed".into()));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    let digest_b64 = B64.encode(digest.as_ref());
    let value = signer.sign_bytes(signed_info(&digest_b64, true).as_bytes())?;
    let sig = signature_element(
        &digest_b64,
        &B64.encode(value),
        &B64.encode(&signer.cert_der),
    );
    let end = format!("</{}>", root.name);
    let body = canonical
        .strip_suffix(&end)
        .ok_or_else(|| SignError::Document("no end tag".into()))?;
    let mut out = String::with_capacity(xml::DECLARATION.len() + canonical.len() + sig.len());
    out.push_str(xml::DECLARATION);
    out.push_str(body);
    out.push_str(&sig);
    out.push_str(&end);
    Ok(out.into_bytes())
}

/// What a verified document carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer's certificate (DER), for the chain check.
    pub certificate_der: Vec<u8>,
    /// `SignatureValue` (base64, as written).
    pub signature_value: String,
    /// The root element's name (`ECF`, `RFCE`, `ANECF`, …).
    pub root: String,
}

fn only_text<'a>(e: &'a Element, path: &str, what: &'static str) -> Result<&'a str, VerifyError> {
    e.text_at(path).ok_or(VerifyError::Profile(what))
}

/// Verifies a signed document: Caja's serialization, the exact signature
/// profile, the digest of the document without its signature, and the
/// signature value with the embedded certificate's key. Does NOT check the
/// certificate's chain or validity dates.
pub fn verify(signed: &[u8]) -> Result<Verified, VerifyError> {
    let (mut root, _) = parse_canonical(signed)?;
    if !root.attrs.is_empty() {
        return Err(VerifyError::Profile("the root element has attributes"));
    }
    let sig = match root.children.pop() {
        Some(Content::Element(e)) if e.name == "Signature" => e,
        _ => {
            return Err(VerifyError::Profile(
                "no Signature as the root's last child",
            ))
        }
    };
    let digest_b64 = only_text(&sig, "SignedInfo/Reference/DigestValue", "no DigestValue")?;
    let value_b64 = only_text(&sig, "SignatureValue", "no SignatureValue")?;
    let cert_b64 = only_text(
        &sig,
        "KeyInfo/X509Data/X509Certificate",
        "no X509Certificate",
    )?;
    // The whole element must be exactly the profile Caja writes.
    if sig.to_canonical() != signature_element(digest_b64, value_b64, cert_b64) {
        return Err(VerifyError::Profile(
            "not exactly the profile (one Reference URI=\"\", enveloped-signature, C14N, RSA-SHA256, SHA-256, X509Certificate)",
        ));
    }
    if root
        .children
        .iter()
        .any(|c| matches!(c, Content::Element(e) if e.name == "Signature"))
    {
        return Err(VerifyError::Profile("more than one Signature"));
    }
    let digest = B64
        .decode(digest_b64)
        .map_err(|_| VerifyError::Base64("DigestValue"))?;
    let value = B64
        .decode(value_b64)
        .map_err(|_| VerifyError::Base64("SignatureValue"))?;
    let cert = B64
        .decode(cert_b64)
        .map_err(|_| VerifyError::Base64("X509Certificate"))?;
    let unsigned = root.to_canonical();
    let actual = ring::digest::digest(&ring::digest::SHA256, unsigned.as_bytes());
    if actual.as_ref() != digest.as_slice() {
        return Err(VerifyError::Digest);
    }
    let key = der::rsa_public_key(&cert).map_err(VerifyError::Certificate)?;
    UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(signed_info(digest_b64, true).as_bytes(), &value)
        .map_err(|_| VerifyError::Signature)?;
    Ok(Verified {
        certificate_der: cert,
        signature_value: value_b64.to_owned(),
        root: root.name,
    })
}

/// The security code of a signed document: the first 6 characters of its
/// `SignatureValue`, after verifying the document.
pub fn security_code(signed: &[u8]) -> Result<String, VerifyError> {
    let v = verify(signed)?;
    Ok(code_of(&v.signature_value))
}

/// The first 6 characters of a `SignatureValue`.
pub fn code_of(signature_value_b64: &str) -> String {
    signature_value_b64
        .chars()
        .take(SECURITY_CODE_CHARS)
        .collect()
}

/// Just enough DER to find an X.509 certificate's RSA public key.
mod der {
    /// rsaEncryption, 1.2.840.113549.1.1.1.
    const RSA_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

    /// One TLV: (tag, content, rest).
    fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
        let (&tag, rest) = input.split_first().ok_or("truncated")?;
        let (&len0, rest) = rest.split_first().ok_or("truncated")?;
        let (len, rest) = if len0 < 0x80 {
            (usize::from(len0), rest)
        } else {
            let n = usize::from(len0 & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return Err("bad length");
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err("truncated");
        }
        Ok((tag, &rest[..len], &rest[len..]))
    }

    fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), &'static str> {
        let (t, content, rest) = tlv(input)?;
        if t != tag {
            return Err("unexpected structure");
        }
        Ok((content, rest))
    }

    /// The RSAPublicKey (PKCS#1 DER) in a certificate's
    /// subjectPublicKeyInfo.
    pub fn rsa_public_key(cert: &[u8]) -> Result<&[u8], &'static str> {
        let (certificate, _) = expect(cert, 0x30)?;
        let (tbs, _) = expect(certificate, 0x30)?;
        let mut rest = tbs;
        if rest.first() == Some(&0xA0) {
            rest = tlv(rest)?.2; // version
        }
        for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
            // serial, signature, issuer, validity, subject
            rest = expect(rest, tag)?.1;
        }
        let (spki, _) = expect(rest, 0x30)?;
        let (alg, rest) = expect(spki, 0x30)?;
        let (oid, _) = expect(alg, 0x06)?;
        if oid != RSA_OID {
            return Err("the public key is not RSA");
        }
        let (bits, _) = expect(rest, 0x03)?;
        match bits.split_first() {
            Some((0, key)) => Ok(key),
            _ => Err("bad public key bit string"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_info_is_the_profile() {
        assert_eq!(
            signed_info("AAAA", true),
            "<SignedInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"></CanonicalizationMethod><SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"></SignatureMethod><Reference URI=\"\"><Transforms><Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"></Transform></Transforms><DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"></DigestMethod><DigestValue>AAAA</DigestValue></Reference></SignedInfo>"
        );
        assert_eq!(code_of("gQyXO0FFDG"), "gQyXO0");
    }

    #[test]
    fn unreadable_inputs_are_errors() {
        assert!(matches!(
            Signer::new(b"nope", vec![1, 2]),
            Err(SignError::Key(_))
        ));
        assert!(der::rsa_public_key(&[0x30, 0x82, 0xFF]).is_err());
        assert!(der::rsa_public_key(&[]).is_err());
        for bad in [
            &b""[..],
            b"<a></a>",
            b"<?xml version=\"1.0\" encoding=\"utf-8\"?><a></a>",
        ] {
            assert!(verify(bad).is_err());
        }
    }
}
