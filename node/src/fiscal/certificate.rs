//! The register's e-CF signing certificate on disk: installed from a PKCS#12
//! file, loaded by the sale path, summarized for `status`.
//!
//! How the key survives an unattended restart: `install` opens the PKCS#12
//! with its password once and writes the decrypted credentials (PKCS#8 key,
//! certificate, chain; [`Credentials::to_bundle`]) to
//! `<data dir>/ecf/signer.der`, mode 0600 in a 0700 directory, the same
//! protection as the device key (`keyfile`). The password is not stored: a
//! password kept beside the file would protect nothing a 0600 file does not,
//! and the register must sign at 6 a.m. with nobody to type it. The PKCS#12
//! file itself is not copied (the person keeps it to install it elsewhere).
//!
//! Invariants: nothing is written unless the file opens with its password,
//! holds a usable RSA key and a certificate that has not expired; the file is
//! written atomically (temporary file 0600, fsync, rename, directory fsync)
//! so a crash leaves the old credentials or the new, never a torn file;
//! loading refuses a file or directory that group or others may access; the
//! PKCS#12 bytes, the password and every buffer holding the key are
//! `Zeroizing` (see `caja_shared::ecf::certificate` for what ring's key type
//! allows). Unix only, like the device key.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use caja_shared::ecf::certificate::{CertError, CertInfo, Credentials, Validity};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::datadir::DataDir;

/// The directory of the signing credentials inside the data directory.
pub const CERT_DIR_NAME: &str = "ecf";
/// The credentials file inside [`CERT_DIR_NAME`].
pub const CERT_FILE_NAME: &str = "signer.der";
/// Mode of the credentials file.
pub const CERT_FILE_MODE: u32 = crate::keyfile::KEY_FILE_MODE;
/// Mode of its directory.
pub const CERT_DIR_MODE: u32 = 0o700;
/// Largest credentials file read (a key and a few certificates are < 20 KiB).
pub const MAX_CERT_FILE_BYTES: u64 = 256 * 1024;

/// Why the certificate cannot be installed or loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertStoreError {
    /// The PKCS#12 file or the stored credentials are unusable.
    #[error("{path}: {source}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: CertError,
    },
    /// The certificate had expired when it was being installed.
    #[error("{path}: the certificate expired ({subject}); install a current one")]
    Expired {
        /// The PKCS#12 file.
        path: PathBuf,
        /// Its subject.
        subject: String,
    },
    /// An IO step failed.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Group or others may access it.
    #[error(
        "{path} has mode {mode:04o}: group or others may access it; the signing key must be \
         treated as exposed. If it is not, restrict it with `chmod {want:o} {path}`"
    )]
    TooOpen {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode it should have.
        want: u32,
    },
    /// Not a regular file (or directory), or too large.
    #[error("{path}: {what}")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
}

fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> CertStoreError + 'a {
    move |source| CertStoreError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The credentials file of a data directory.
pub fn cert_path(dir: &DataDir) -> PathBuf {
    dir.root().join(CERT_DIR_NAME).join(CERT_FILE_NAME)
}

/// Opens `p12` (the bytes of `source`, named in errors) with `password` and
/// stores its credentials owner-only in `dir`, replacing any before. Refuses
/// an expired certificate (at `now_ms`); nothing is written on any error.
pub fn install(
    dir: &DataDir,
    source: &Path,
    p12: &[u8],
    password: &str,
    now_ms: i64,
) -> Result<CertInfo, CertStoreError> {
    let creds = Credentials::from_pkcs12(p12, password).map_err(|e| CertStoreError::Cert {
        path: source.to_path_buf(),
        source: e,
    })?;
    if creds.validity(now_ms) == Validity::Expired {
        return Err(CertStoreError::Expired {
            path: source.to_path_buf(),
            subject: creds.info().subject.clone(),
        });
    }
    let path = cert_path(dir);
    let cert_dir = dir.root().join(CERT_DIR_NAME);
    fs::create_dir_all(&cert_dir).map_err(io_err(&cert_dir, "create"))?;
    fs::set_permissions(&cert_dir, fs::Permissions::from_mode(CERT_DIR_MODE))
        .map_err(io_err(&cert_dir, "set permissions"))?;
    write_owner_only(&path, &creds.to_bundle())?;
    Ok(creds.info().clone())
}

/// Loads the installed credentials: `None` when no certificate was
/// installed. The sale path calls this (a missing or expired certificate
/// refuses an e-CF sale there).
pub fn load(dir: &DataDir) -> Result<Option<Credentials>, CertStoreError> {
    let cert_dir = dir.root().join(CERT_DIR_NAME);
    match fs::metadata(&cert_dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(CertStoreError::NotAFile {
                    path: cert_dir,
                    what: "is not a directory",
                });
            }
            check_mode(&cert_dir, meta.mode(), CERT_DIR_MODE)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&cert_dir, "stat")(e)),
    }
    let path = cert_path(dir);
    let bytes = match read_owner_only(&path) {
        Ok(b) => b,
        Err(CertStoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Credentials::from_bundle(&bytes)
        .map(Some)
        .map_err(|source| CertStoreError::Cert { path, source })
}

/// What `status` and `fiscal certificate show` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Whether a certificate is installed.
    pub present: bool,
    /// Its subject.
    pub subject: Option<String>,
    /// Its issuer.
    pub issuer: Option<String>,
    /// Its serial number (hex).
    pub serial_hex: Option<String>,
    /// The taxpayer id in its subject, if any.
    pub subject_tax_id: Option<String>,
    /// Start of validity, Unix ms UTC.
    pub not_before_ms: Option<i64>,
    /// End of validity, Unix ms UTC.
    pub not_after_ms: Option<i64>,
    /// Whole days left (negative: expired that many days ago).
    pub days_left: Option<i64>,
    /// `valid`, `expires_soon`, `expired`, `not_yet_valid` or `missing`.
    pub status: &'static str,
}

impl CertSummary {
    /// The summary of `info` at `now_ms`.
    pub fn of(info: &CertInfo, now_ms: i64) -> CertSummary {
        let v = caja_shared::ecf::certificate::validity(info, now_ms);
        let days_left = match v {
            Validity::Valid { days_left } | Validity::ExpiresSoon { days_left } => days_left,
            Validity::Expired | Validity::NotYetValid => {
                (info.not_after_ms - now_ms).div_euclid(86_400_000)
            }
        };
        CertSummary {
            present: true,
            subject: Some(info.subject.clone()),
            issuer: Some(info.issuer.clone()),
            serial_hex: Some(info.serial_hex.clone()),
            subject_tax_id: info.subject_tax_id.clone(),
            not_before_ms: Some(info.not_before_ms),
            not_after_ms: Some(info.not_after_ms),
            days_left: Some(days_left),
            status: v.as_str(),
        }
    }

    /// No certificate installed.
    pub fn missing() -> CertSummary {
        CertSummary {
            present: false,
            subject: None,
            issuer: None,
            serial_hex: None,
            subject_tax_id: None,
            not_before_ms: None,
            not_after_ms: None,
            days_left: None,
            status: "missing",
        }
    }
}

/// The installed certificate's summary at `now_ms`.
pub fn summary(dir: &DataDir, now_ms: i64) -> Result<CertSummary, CertStoreError> {
    Ok(match load(dir)? {
        Some(c) => CertSummary::of(c.info(), now_ms),
        None => CertSummary::missing(),
    })
}

fn check_mode(path: &Path, mode: u32, want: u32) -> Result<(), CertStoreError> {
    let mode = mode & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CertStoreError::TooOpen {
            path: path.to_path_buf(),
            mode,
            want,
        });
    }
    Ok(())
}

/// Reads a secret file that only its owner may access (checked on the opened
/// file), into a zeroizing buffer. Used for the credentials and for
/// `--password-file`.
pub fn read_owner_only(path: &Path) -> Result<Zeroizing<Vec<u8>>, CertStoreError> {
    let mut file = File::open(path).map_err(io_err(path, "open"))?;
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    if !meta.is_file() {
        return Err(CertStoreError::NotAFile {
            path: path.to_path_buf(),
            what: "is not a regular file",
        });
    }
    check_mode(path, meta.mode(), CERT_FILE_MODE)?;
    if meta.len() > MAX_CERT_FILE_BYTES {
        return Err(CertStoreError::NotAFile {
            path: path.to_path_buf(),
            what: "is too large",
        });
    }
    let len = usize::try_from(meta.len()).unwrap_or(0);
    // Allocated once at the final size: no reallocation leaves copies behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(len.saturating_add(1)));
    (&mut file)
        .take(MAX_CERT_FILE_BYTES)
        .read_to_end(&mut buf)
        .map_err(io_err(path, "read"))?;
    Ok(buf)
}

/// The atomic owner-only write of the device key file, for the credentials.
fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), CertStoreError> {
    crate::keyfile::write_owner_only(path, bytes).map_err(|e| CertStoreError::Io {
        path: e.path,
        action: e.action,
        source: e.source,
    })
}
