//! PKCS#12 (RFC 7292) decoding: the PFX's integrity MAC, the encrypted safes and
//! the shrouded key bag, decrypted into buffers this module owns and zeroizes.
//!
//! Invariant: every buffer that ever holds the plaintext private key (or a key
//! or IV derived from the password) is a [`Zeroizing`] owned here, and the
//! password is passed on only by reference. Supported: PBES2 with PBKDF2 and
//! AES-CBC (OpenSSL 3's default: PBKDF2-HMAC-SHA256, AES-256-CBC, MAC
//! HMAC-SHA256) and the PKCS#12 PBEs `pbeWithSHAAnd3-KeyTripleDES-CBC` and
//! `pbeWithSHAAnd40BitRC2-CBC` (`openssl pkcs12 -legacy`; MAC HMAC-SHA1).
//! Source: RFC 7292 §4–§5 and appendix B (the KDF), RFC 8018 §6.2 (PBES2).

use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use der::asn1::{ContextSpecific, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use pkcs12::cert_type::CertBag;
use pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::pfx::Pfx;
use pkcs12::safe_bag::SafeBag;
// `spki` through `cms`'s re-export, so no extra dependency is named.
use cms::cert::x509::spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::CertError;

const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const OID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");

/// Upper bound on the PBE iteration counts accepted (OpenSSL writes 2,048;
/// other tools up to a few hundred thousand). Bounds the work a hostile file
/// can cause.
const MAX_ITERATIONS: i64 = 10_000_000;

/// Largest PKCS#12 file accepted (a real one is a few KiB).
pub const MAX_PKCS12_BYTES: usize = 1 << 20;

/// Bytes with the `localKeyId` attribute of their bag, if it had one.
pub(super) type WithKeyId<T> = (T, Option<Vec<u8>>);

/// What a PFX holds once decrypted.
pub(super) struct Decoded {
    /// The private keys (PKCS#8 `PrivateKeyInfo` DER), each with its
    /// `localKeyId` attribute if it had one.
    pub keys: Vec<WithKeyId<Zeroizing<Vec<u8>>>>,
    /// The certificates (DER), each with its `localKeyId` if it had one, in
    /// file order.
    pub certs: Vec<WithKeyId<Vec<u8>>>,
}

fn format(what: &str) -> impl Fn(der::Error) -> CertError + '_ {
    move |e| CertError::Pkcs12Format(format!("{what}: {e}"))
}

/// Decodes `p12`, checks its MAC with `password` and decrypts every safe and
/// key bag.
pub(super) fn decode(p12: &[u8], password: &str) -> Result<Decoded, CertError> {
    if p12.len() > MAX_PKCS12_BYTES {
        return Err(CertError::Pkcs12Format(format!(
            "the file has {} bytes, more than the {MAX_PKCS12_BYTES} a PKCS#12 file may have",
            p12.len()
        )));
    }
    let pfx = Pfx::from_der(p12).map_err(format("not a PKCS#12 (PFX) structure"))?;
    if pfx.auth_safe.content_type != OID_DATA {
        return Err(CertError::Pkcs12Format(
            "the PFX is not password-integrity protected (public-key mode is not supported)".into(),
        ));
    }
    let auth_safe_der = pfx
        .auth_safe
        .content
        .to_der()
        .map_err(format("authSafe content"))?;
    let auth_safe = OctetString::from_der(&auth_safe_der).map_err(format("authSafe content"))?;
    match &pfx.mac_data {
        Some(mac) => verify_mac(mac, password, auth_safe.as_bytes())?,
        None => {
            // Without a MAC a wrong password shows as a decryption failure.
        }
    }
    let safes =
        Vec::<ContentInfo>::from_der(auth_safe.as_bytes()).map_err(format("AuthenticatedSafe"))?;
    let mut out = Decoded {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    for safe in &safes {
        let content = safe.content.to_der().map_err(format("safe content"))?;
        let contents: Zeroizing<Vec<u8>> = if safe.content_type == OID_DATA {
            Zeroizing::new(
                OctetString::from_der(&content)
                    .map_err(format("safe content"))?
                    .into_bytes(),
            )
        } else if safe.content_type == OID_ENCRYPTED_DATA {
            let enc = EncryptedData::from_der(&content).map_err(format("EncryptedData"))?;
            match &enc.enc_content_info.encrypted_content {
                Some(ct) => decrypt(
                    &enc.enc_content_info.content_enc_alg,
                    ct.as_bytes(),
                    password,
                )?,
                None => continue,
            }
        } else {
            return Err(CertError::Pkcs12Format(format!(
                "unsupported safe content type {}",
                safe.content_type
            )));
        };
        let bags = Vec::<SafeBag>::from_der(&contents).map_err(format("SafeContents"))?;
        for bag in &bags {
            read_bag(bag, password, &mut out)?;
        }
    }
    Ok(out)
}

fn local_key_id(bag: &SafeBag) -> Option<Vec<u8>> {
    let attrs = bag.bag_attributes.as_ref()?;
    let attr = attrs.iter().find(|a| a.oid == OID_LOCAL_KEY_ID)?;
    let value = attr.values.iter().next()?;
    let der = value.to_der().ok()?;
    OctetString::from_der(&der)
        .ok()
        .map(OctetString::into_bytes)
}

fn read_bag(bag: &SafeBag, password: &str, out: &mut Decoded) -> Result<(), CertError> {
    if bag.bag_id == pkcs12::PKCS_12_CERT_BAG_OID {
        let cs: ContextSpecific<CertBag> =
            ContextSpecific::from_der(&bag.bag_value).map_err(format("CertBag"))?;
        if cs.value.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
            out.certs
                .push((cs.value.cert_value.into_bytes(), local_key_id(bag)));
        }
    } else if bag.bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
        let cs: ContextSpecific<EncryptedPrivateKeyInfo> =
            ContextSpecific::from_der(&bag.bag_value).map_err(format("PKCS8ShroudedKeyBag"))?;
        let key = decrypt(
            &cs.value.encryption_algorithm,
            cs.value.encrypted_data.as_bytes(),
            password,
        )?;
        out.keys.push((key, local_key_id(bag)));
    } else if bag.bag_id == pkcs12::PKCS_12_KEY_BAG_OID {
        // An unencrypted key (`-keypbe NONE`) would have passed through
        // decoder buffers that are not zeroized; such a file is refused.
        return Err(CertError::UnencryptedKey);
    }
    // CRL, secret and nested bags carry nothing Caja uses.
    Ok(())
}

fn check_iterations(n: i64) -> Result<u32, CertError> {
    if !(1..=MAX_ITERATIONS).contains(&n) {
        return Err(CertError::Pkcs12Format(format!(
            "iteration count {n} is outside 1..={MAX_ITERATIONS}"
        )));
    }
    u32::try_from(n).map_err(|_| CertError::Pkcs12Format(format!("iteration count {n}")))
}

fn verify_mac(
    mac: &pkcs12::mac_data::MacData,
    password: &str,
    data: &[u8],
) -> Result<(), CertError> {
    let iterations = check_iterations(i64::from(mac.iterations))?;
    let rounds = i32::try_from(iterations).unwrap_or(i32::MAX);
    let salt = mac.mac_salt.as_bytes();
    let (alg, key) = if mac.mac.algorithm.oid == OID_SHA256 {
        (
            ring::hmac::HMAC_SHA256,
            derive_key_utf8::<sha2::Sha256>(password, salt, Pkcs12KeyType::Mac, rounds, 32),
        )
    } else if mac.mac.algorithm.oid == OID_SHA1 {
        (
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            derive_key_utf8::<sha1::Sha1>(password, salt, Pkcs12KeyType::Mac, rounds, 20),
        )
    } else {
        return Err(CertError::UnsupportedAlgorithm(format!(
            "MAC digest {}",
            mac.mac.algorithm.oid
        )));
    };
    let key = Zeroizing::new(key.map_err(format("password as BMPString"))?);
    let key = ring::hmac::Key::new(alg, &key);
    ring::hmac::verify(&key, data, mac.mac.digest.as_bytes()).map_err(|_| CertError::WrongPassword)
}

/// Decrypts `ciphertext` (PBES2 or a PKCS#12 PBE) into a zeroizing buffer.
fn decrypt(
    alg: &AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    password: &str,
) -> Result<Zeroizing<Vec<u8>>, CertError> {
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| CertError::Pkcs12Format(format!("{} without parameters", alg.oid)))?
        .to_der()
        .map_err(format("encryption parameters"))?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let len = if alg.oid == OID_PBES2 {
        let params =
            pkcs5::pbes2::Parameters::from_der(&params).map_err(format("PBES2 parameters"))?;
        if let pkcs5::pbes2::Kdf::Pbkdf2(p) = &params.kdf {
            check_iterations(i64::from(p.iteration_count))?;
        }
        params
            .decrypt_in_place(password.as_bytes(), &mut buffer)
            .map_err(|e| match e {
                pkcs5::Error::DecryptFailed => CertError::WrongPassword,
                other => CertError::UnsupportedAlgorithm(format!("PBES2: {other}")),
            })?
            .len()
    } else if alg.oid == pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC {
        pbe_legacy::<des::TdesEde3>(&params, 24, password, &mut buffer)?
    } else if alg.oid == pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC {
        pbe_legacy::<rc2::Rc2>(&params, 5, password, &mut buffer)?
    } else {
        return Err(CertError::UnsupportedAlgorithm(format!(
            "encryption scheme {}",
            alg.oid
        )));
    };
    buffer.truncate(len);
    Ok(buffer)
}

/// PKCS#12 PBE (RFC 7292 appendix B.2, C): key and IV from the password with
/// SHA-1, then CBC with PKCS#7 padding, in place.
fn pbe_legacy<C>(
    params: &[u8],
    key_len: usize,
    password: &str,
    buffer: &mut [u8],
) -> Result<usize, CertError>
where
    C: cbc::cipher::BlockCipher + cbc::cipher::BlockDecrypt + cbc::cipher::KeyInit,
{
    let params = Pkcs12PbeParams::from_der(params).map_err(format("PBE parameters"))?;
    let rounds = i32::try_from(check_iterations(i64::from(params.iterations))?).unwrap_or(i32::MAX);
    let salt = params.salt.as_bytes();
    let bmp = format("password as BMPString");
    let key = Zeroizing::new(
        derive_key_utf8::<sha1::Sha1>(
            password,
            salt,
            Pkcs12KeyType::EncryptionKey,
            rounds,
            key_len,
        )
        .map_err(&bmp)?,
    );
    let iv = Zeroizing::new(
        derive_key_utf8::<sha1::Sha1>(password, salt, Pkcs12KeyType::Iv, rounds, 8)
            .map_err(&bmp)?,
    );
    let cipher = cbc::Decryptor::<C>::new_from_slices(&key, &iv)
        .map_err(|_| CertError::UnsupportedAlgorithm("PBE key or IV length".into()))?;
    // Without a MAC, a bad padding is the only sign of a wrong password.
    let plain = cipher
        .decrypt_padded_mut::<Pkcs7>(buffer)
        .map_err(|_| CertError::WrongPassword)?;
    Ok(plain.len())
}
