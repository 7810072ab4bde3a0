//! PKCS#12 files and certificate chains made by the `openssl` command line
//! (the throwaway PKI of `tests/src/pki.rs`) read by
//! `caja_shared::ecf::certificate`: OpenSSL 3's default and `-legacy`
//! formats, a wrong password, expiry and chains (good, other CA, expired).

#[path = "../../tests/src/pki.rs"]
mod pki;

mod ecf_support;

use caja_shared::ecf::certificate::{
    cert_info, validity, verify_chain, CertError, Credentials, TrustStore, Validity,
};
use pki::{Pki, P12_PASSWORD, SIGNER_RNC};

/// The PKI is made when the tests run, so "now" is taken from the
/// certificate's own dates (a day after it starts).
fn now_of(c: &Credentials) -> i64 {
    c.info().not_before_ms + 86_400_000
}

fn open(path: &std::path::Path) -> Credentials {
    Credentials::from_pkcs12(&Pki::read(path), P12_PASSWORD)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn default_and_legacy_pkcs12_decode_to_the_same_key_and_certificate() {
    let Some(pki) = Pki::get() else { return };
    let modern = open(&pki.leaf_p12);
    let legacy = open(&pki.leaf_legacy_p12);
    assert_eq!(modern.key_pkcs8(), legacy.key_pkcs8());
    assert_eq!(modern.cert_der(), legacy.cert_der());
    assert_eq!(modern.cert_der(), pki.der_of(&pki.leaf_pem).as_slice());
    assert_eq!(modern.chain_der(), &[pki.der_of(&pki.ca_pem)][..]);
    // The key is the one openssl generated (PKCS#8 DER of leaf.pk8.pem).
    let pem = String::from_utf8(Pki::read(&pki.leaf_key_pem)).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let out = pki.dir.join("leaf.pk8.der");
    pki::openssl(
        &pki.dir,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "leaf.key",
            "-outform",
            "DER",
            "-out",
            &out.to_string_lossy(),
        ],
    )
    .unwrap();
    assert!(!b64.is_empty());
    assert_eq!(modern.key_pkcs8(), Pki::read(&out).as_slice());
    let info = modern.info();
    assert!(
        info.subject.contains("Juan Perez Firmante"),
        "{}",
        info.subject
    );
    assert!(info.issuer.contains("Caja Test CA"), "{}", info.issuer);
    assert_eq!(info.subject_tax_id.as_deref(), Some(SIGNER_RNC));
    assert!(info.not_after_ms - info.not_before_ms >= 364 * 86_400_000);
    assert!(!info.serial_hex.is_empty());
    assert!(format!("{modern:?}").contains("redacted"));
}

#[test]
fn wrong_password_is_a_clear_error_for_both_formats() {
    let Some(pki) = Pki::get() else { return };
    for p in [&pki.leaf_p12, &pki.leaf_legacy_p12] {
        let err = Credentials::from_pkcs12(&Pki::read(p), "otra-clave").unwrap_err();
        assert_eq!(err, CertError::WrongPassword, "{}", p.display());
        assert_eq!(err.to_string(), "wrong password for the PKCS#12 file");
    }
}

#[test]
fn a_cut_file_is_a_format_error() {
    let Some(pki) = Pki::get() else { return };
    let bytes = Pki::read(&pki.leaf_p12);
    let err = Credentials::from_pkcs12(&bytes[..bytes.len() / 2], P12_PASSWORD).unwrap_err();
    assert!(matches!(err, CertError::Pkcs12Format(_)), "{err:?}");
}

#[test]
fn expiry_of_the_generated_certificates() {
    let Some(pki) = Pki::get() else { return };
    let leaf = open(&pki.leaf_p12);
    let soon = open(&pki.soon_p12);
    let expired = open(&pki.expired_p12);
    let now = now_of(&leaf);
    assert!(matches!(leaf.validity(now), Validity::Valid { days_left } if days_left >= 360));
    assert!(matches!(soon.validity(now), Validity::ExpiresSoon { days_left } if days_left <= 10));
    assert_eq!(expired.validity(now), Validity::Expired);
    assert_eq!(
        validity(leaf.info(), leaf.info().not_before_ms - 1),
        Validity::NotYetValid
    );
    let e = cert_info(expired.cert_der()).unwrap();
    assert_eq!(e.not_after_ms, 1_609_459_200_000, "2021-01-01T00:00:00Z");
}

#[test]
fn chains_good_other_ca_expired() {
    let Some(pki) = Pki::get() else { return };
    let trust = TrustStore::from_pem(&Pki::read(&pki.ca_pem)).unwrap();
    let leaf = open(&pki.leaf_p12);
    let now = now_of(&leaf);
    // Good: issued by the trusted CA, within its validity.
    let info = verify_chain(leaf.cert_der(), &[], &trust, now).unwrap();
    assert_eq!(info.subject_tax_id.as_deref(), Some(SIGNER_RNC));
    // The chain from the file is only a candidate list: still good.
    verify_chain(leaf.cert_der(), leaf.chain_der(), &trust, now).unwrap();
    // Issued by another CA.
    let foreign = open(&pki.foreign_p12);
    let err = verify_chain(foreign.cert_der(), foreign.chain_der(), &trust, now).unwrap_err();
    assert!(matches!(err, CertError::Untrusted { .. }), "{err:?}");
    // Expired (and checked at a time when the leaf had not started yet).
    let expired = open(&pki.expired_p12);
    let err = verify_chain(expired.cert_der(), &[], &trust, now).unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err:?}");
    let err =
        verify_chain(leaf.cert_der(), &[], &trust, leaf.info().not_before_ms - 1).unwrap_err();
    assert!(matches!(err, CertError::NotYetValid { .. }), "{err:?}");
    // A store with both CAs accepts both; the other CA alone refuses ours.
    let mut both = Pki::read(&pki.ca_pem);
    both.extend(Pki::read(&pki.other_ca_pem));
    let both = TrustStore::from_pem(&both).unwrap();
    assert_eq!(both.certificates().len(), 2);
    verify_chain(foreign.cert_der(), &[], &both, now).unwrap();
    let other = TrustStore::from_pem(&Pki::read(&pki.other_ca_pem)).unwrap();
    assert!(verify_chain(leaf.cert_der(), &[], &other, now).is_err());
    // A leaf is not a CA: it cannot stand in as an intermediate.
    let err = verify_chain(foreign.cert_der(), &[leaf.cert_der().to_vec()], &trust, now);
    assert!(err.is_err());
}

#[test]
fn bundle_round_trip_and_mismatched_parts() {
    let Some(pki) = Pki::get() else { return };
    let c = open(&pki.leaf_legacy_p12);
    let back = Credentials::from_bundle(&c.to_bundle()).unwrap();
    assert_eq!(back.key_pkcs8(), c.key_pkcs8());
    assert_eq!(back.cert_der(), c.cert_der());
    assert_eq!(back.chain_der(), c.chain_der());
    assert_eq!(back.info(), c.info());
    // A key with another key's certificate is refused.
    let other = open(&pki.foreign_p12);
    let err = Credentials::from_parts(
        zeroize::Zeroizing::new(c.key_pkcs8().to_vec()),
        other.cert_der().to_vec(),
        vec![],
    )
    .unwrap_err();
    assert_eq!(err, CertError::NoCertificate);
    let bundle = c.to_bundle();
    assert!(Credentials::from_bundle(&bundle[..bundle.len() - 1]).is_err());
    assert!(Credentials::from_bundle(&bundle[..c.key_pkcs8().len()]).is_err());
}

/// A document signed with the key of a PKCS#12 file (both formats) verifies
/// with `xmlsec1` trusting only the test CA: `KeyInfo` carries the signer's
/// certificate and it chains to the CA. Another CA is refused. Caja's own
/// verifier plus `verify_chain` (what the hub does) agree.
#[test]
fn documents_signed_with_the_p12_key_verify_with_xmlsec1_against_the_ca() {
    let Some(pki) = Pki::get() else { return };
    let Some(xmlsec1) = ecf_support::tool("xmlsec1") else {
        return;
    };
    let trust = TrustStore::from_pem(&Pki::read(&pki.ca_pem)).unwrap();
    let issuer = ecf_support::issuer();
    for (n, p12) in [&pki.leaf_p12, &pki.leaf_legacy_p12]
        .into_iter()
        .enumerate()
    {
        let creds = open(p12);
        let signer = creds.signer().expect("signer");
        assert_eq!(signer.certificate_der(), creds.cert_der());
        let sale = ecf_support::small_sale(&format!("E3200000001{n:02}"));
        let issued =
            caja_shared::ecf::issue::issue_sale(&sale, &ecf_support::ctx(&issuer, None), &signer)
                .expect("issue");
        assert!(!issued.documents.is_empty());
        for (i, doc) in issued.documents.iter().enumerate() {
            let file = pki.dir.join(format!("signed-{n}-{i}.xml"));
            std::fs::write(&file, &doc.xml).unwrap();
            let run = |ca: &std::path::Path| {
                std::process::Command::new(&xmlsec1)
                    .args([
                        "--verify",
                        "--enabled-reference-uris",
                        "empty",
                        "--trusted-pem",
                    ])
                    .arg(ca)
                    .arg(&file)
                    .output()
                    .expect("xmlsec1 runs")
            };
            let out = run(&pki.ca_pem);
            assert!(
                out.status.success(),
                "xmlsec1 refuses {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let out = run(&pki.other_ca_pem);
            assert!(!out.status.success(), "another CA must not verify it");
            let v = caja_shared::ecf::xmldsig::verify(&doc.xml).expect("own verify");
            assert_eq!(v.certificate_der, creds.cert_der());
            let now = creds.info().not_before_ms + 86_400_000;
            verify_chain(&v.certificate_der, &[], &trust, now).expect("chain");
        }
    }
}
