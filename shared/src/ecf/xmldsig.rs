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
//! Signing: Caja writes documents in their canonical form ([`super::xml`])
//! with a root that declares no namespace (DGII's schemas have no target
//! namespace), so the canonical form of the document without its signature
//! is the root's bytes without the `Signature` element, and the canonical
//! `SignedInfo` is its bytes with the inherited default namespace declared
//! on it; [`sign`] accepts only documents in that serialization.
//!
//! Verifying: [`verify`] accepts any serialization another program signed
//! (whitespace, attribute order and quotes, namespace declarations and
//! prefixes, `<a/>`, character references, CRLF, an XML declaration): it
//! reads the document with [`super::c14n`], finds the root's `Signature` in
//! the XMLDSig namespace, checks the profile (one `Reference URI=""`, the
//! enveloped-signature transform optionally followed by a C14N transform,
//! SHA-256, RSA-SHA256, C14N 1.0 inclusive or exclusive without comments),
//! digests the canonical document without that `Signature` and verifies
//! the canonical `SignedInfo` (with the namespaces it inherits) with the
//! certificate's key. The certificate's chain is checked elsewhere
//! ([`super`]'s certificate module).
//!
//! ring's `RsaKeyPair::sign` takes a random source; PKCS#1 v1.5 padding is
//! deterministic and never reads it (ring's `rsa::padding::pkcs1`), so
//! signing here passes a fixed source and reads no OS state: the same
//! document signed twice gives the same bytes (tested).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{self, KeyPair as _, RsaKeyPair, UnparsedPublicKey};

use super::c14n;
use super::xml::{self, Element};

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
    /// Not readable as XML (any serialization).
    #[error("not readable XML: {0}")]
    Xml(c14n::C14nError),
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
        // PKCS#1 v1.5 padding is deterministic and never reads its random
        // source (see the module doc); ring's random-source trait is sealed,
        // so the only source that is not the OS's is ring's fixed one. When
        // ring removes it, take an injected source here instead.
        #[allow(deprecated)]
        let rng = ring::test::rand::FixedByteRandom { byte: 0 };
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
    sign_with_value(unsigned, signer).map(|(signed, _)| signed)
}

/// [`sign`], also returning the `SignatureValue` written (base64), whose
/// first characters are the document's security code.
pub fn sign_with_value(unsigned: &[u8], signer: &Signer) -> Result<(Vec<u8>, String), SignError> {
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
    let value = B64.encode(signer.sign_bytes(signed_info(&digest_b64, true).as_bytes())?);
    let sig = signature_element(&digest_b64, &value, &B64.encode(&signer.cert_der));
    let end = format!("</{}>", root.name);
    let body = canonical
        .strip_suffix(&end)
        .ok_or_else(|| SignError::Document("no end tag".into()))?;
    let mut out = String::with_capacity(xml::DECLARATION.len() + canonical.len() + sig.len());
    out.push_str(xml::DECLARATION);
    out.push_str(body);
    out.push_str(&sig);
    out.push_str(&end);
    Ok((out.into_bytes(), value))
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

/// Verifies a signed document in any serialization (see the module doc):
/// the signature profile, the digest of the canonical document without its
/// signature, and the signature value over the canonical `SignedInfo` with
/// the embedded certificate's key. Does NOT check the certificate's chain
/// or validity dates.
pub fn verify(signed: &[u8]) -> Result<Verified, VerifyError> {
    let root = c14n::parse(signed).map_err(VerifyError::Xml)?;
    let is_sig = |e: &c14n::Elem| e.ns == DSIG_NS && e.local == "Signature";
    let sigs: Vec<&c14n::Elem> = root.elems().filter(|e| is_sig(e)).collect();
    let sig = match sigs.as_slice() {
        [one] => *one,
        [] => return Err(VerifyError::Profile("no Signature as a child of the root")),
        _ => return Err(VerifyError::Profile("more than one Signature")),
    };
    let ds =
        |e: &'_ c14n::Elem, name: &str| -> Option<c14n::Elem> { e.child(DSIG_NS, name).cloned() };
    let profile = |what: &'static str| VerifyError::Profile(what);
    let signed_info = ds(sig, "SignedInfo").ok_or(profile("no SignedInfo"))?;
    let alg_of = |e: &c14n::Elem| e.attr("Algorithm").map(str::to_owned);
    let c14n_method = ds(&signed_info, "CanonicalizationMethod")
        .and_then(|e| alg_of(&e))
        .and_then(|u| c14n::Algorithm::from_uri(&u))
        .ok_or(profile(
            "CanonicalizationMethod is not C14N 1.0 or exclusive C14N without comments",
        ))?;
    if ds(&signed_info, "SignatureMethod")
        .and_then(|e| alg_of(&e))
        .as_deref()
        != Some(ALG_RSA_SHA256)
    {
        return Err(profile("SignatureMethod is not RSA-SHA256"));
    }
    let refs: Vec<&c14n::Elem> = signed_info
        .elems()
        .filter(|e| e.ns == DSIG_NS && e.local == "Reference")
        .collect();
    let [reference] = refs.as_slice() else {
        return Err(profile("not exactly one Reference"));
    };
    if reference.attr("URI") != Some("") {
        return Err(profile(
            "the Reference URI is not \"\" (the whole document)",
        ));
    }
    let transforms: Vec<String> = match ds(reference, "Transforms") {
        Some(t) => t
            .elems()
            .filter(|e| e.ns == DSIG_NS && e.local == "Transform")
            .map(|e| alg_of(e).unwrap_or_default())
            .collect(),
        None => Vec::new(),
    };
    let digest_c14n = match transforms
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [ALG_ENVELOPED] => c14n::Algorithm::Inclusive,
        [ALG_ENVELOPED, other] => c14n::Algorithm::from_uri(other).ok_or(profile(
            "a transform other than enveloped-signature and C14N",
        ))?,
        _ => {
            return Err(profile(
                "the transforms are not enveloped-signature (+ C14N)",
            ))
        }
    };
    if ds(reference, "DigestMethod")
        .and_then(|e| alg_of(&e))
        .as_deref()
        != Some(ALG_SHA256)
    {
        return Err(profile("DigestMethod is not SHA-256"));
    }
    let b64_text = |e: Option<c14n::Elem>, what: &'static str| -> Result<String, VerifyError> {
        let e = e.ok_or(profile(what))?;
        Ok(e.text()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect())
    };
    let digest_b64 = b64_text(ds(reference, "DigestValue"), "no DigestValue")?;
    let value_b64 = b64_text(ds(sig, "SignatureValue"), "no SignatureValue")?;
    let cert_b64 = b64_text(
        ds(sig, "KeyInfo")
            .and_then(|k| ds(&k, "X509Data"))
            .and_then(|d| ds(&d, "X509Certificate")),
        "no X509Certificate",
    )?;
    let digest = B64
        .decode(&digest_b64)
        .map_err(|_| VerifyError::Base64("DigestValue"))?;
    let value = B64
        .decode(&value_b64)
        .map_err(|_| VerifyError::Base64("SignatureValue"))?;
    let cert = B64
        .decode(&cert_b64)
        .map_err(|_| VerifyError::Base64("X509Certificate"))?;
    // The enveloped-signature transform removes the Signature holding this
    // Reference (it is a child of the root, the only one).
    let unsigned = c14n::canonicalize(&root, &c14n::Context::default(), digest_c14n, &|e| {
        std::ptr::eq(e, sig)
    });
    let actual = ring::digest::digest(&ring::digest::SHA256, unsigned.as_bytes());
    if actual.as_ref() != digest.as_slice() {
        return Err(VerifyError::Digest);
    }
    let above = c14n::Context::default().below(&root).below(sig);
    let canonical_si = c14n::canonicalize(&signed_info, &above, c14n_method, &|_| false);
    let key = der::rsa_public_key(&cert).map_err(VerifyError::Certificate)?;
    UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(canonical_si.as_bytes(), &value)
        .map_err(|_| VerifyError::Signature)?;
    Ok(Verified {
        certificate_der: cert,
        signature_value: value_b64,
        root: root.local.clone(),
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

    proptest::proptest! {
        /// Arbitrary damage to a document is an error, never a panic.
        #[test]
        fn damaged_documents_are_errors_not_panics(
            cut in 0usize..400,
            flips in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 0..6),
        ) {
            let doc = "<?xml version=\"1.0\" encoding=\"utf-8\"?><ECF><A>x &amp; ñ</A><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo><DigestValue>AAAA</DigestValue></SignedInfo><SignatureValue>QUJD</SignatureValue><KeyInfo><X509Data><X509Certificate>MIIB</X509Certificate></X509Data></KeyInfo></Signature></ECF>";
            let mut bytes = doc.as_bytes().to_vec();
            for (at, b) in flips {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            bytes.truncate(cut.max(1));
            let _ = verify(&bytes);
            let _ = security_code(&bytes);
            let _ = xml::parse(&bytes);
            let _ = der::rsa_public_key(&bytes);
        }
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
