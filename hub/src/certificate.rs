//! The hub's own e-CF signing certificate (head office signs DGII's seed,
//! `ANECF` cancellations and corrections with it) and the trusted Dominican
//! certification authorities the hub checks registers' signatures against.
//!
//! The certificate is installed with `caja-hub fiscal certificate install
//! FILE.p12` (password from `--password-file`, owner-only; the environment
//! variable `CAJA_CERT_PASSWORD`; or a prompt on the terminal — never an
//! argument). As on the register, the PKCS#12 is opened once and the
//! decrypted credentials ([`Credentials::to_bundle`]) are written to
//! `<data dir>/ecf/signer.der`, mode 0600 in a 0700 directory, so a restarted
//! hub signs without anyone typing a password; the password is not stored
//! (beside the file it would protect nothing a 0600 file does not). The
//! trusted CAs are a PEM file named by `[tax_authority] trusted_ca` in
//! `hub.toml` (relative to the data directory), read at start.
//!
//! Invariants: nothing is written unless the PKCS#12 opens with its password
//! and its certificate has not expired; writes are tmp + fsync + rename +
//! directory fsync; a credentials file or directory that group or others may
//! access is refused on load; the PKCS#12 bytes, the password and the key
//! buffers are `Zeroizing`. This module imports nothing of the hub (a leaf:
//! storage, health and the dashboard may all use it). Unix only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use caja_shared::ecf::certificate::{
    validity, CertError, CertInfo, Credentials, TrustStore, Validity,
};
use serde::Serialize;
use zeroize::Zeroizing;

/// The directory of the signing credentials inside the data directory.
pub const CERT_DIR_NAME: &str = "ecf";
/// The credentials file inside it.
pub const CERT_FILE_NAME: &str = "signer.der";
/// Largest credentials, password or trusted-CA file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a certificate or the trusted CAs cannot be installed or read.
#[derive(Debug, thiserror::Error)]
pub enum CertStoreError {
    /// The PKCS#12 file, the stored credentials or the CA file are unusable.
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
    /// Group or others may access a secret file or its directory.
    #[error(
        "{path} has mode {mode:04o}: group or others may access it; restrict it with \
         `chmod {want:o} {path}`"
    )]
    TooOpen {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode it should have.
        want: u32,
    },
    /// Not a regular file or directory, or too large.
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

/// The credentials file of the hub in `data_dir`.
pub fn cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CERT_DIR_NAME).join(CERT_FILE_NAME)
}

/// Opens `p12` (read from `source`) with `password` and stores the hub's
/// credentials owner-only in `data_dir`, replacing any. Refuses an expired
/// certificate; writes nothing on any error.
pub fn install(
    data_dir: &Path,
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
    let dir = data_dir.join(CERT_DIR_NAME);
    fs::create_dir_all(&dir).map_err(io_err(&dir, "create"))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(&dir, "set permissions"))?;
    write_owner_only(&dir, &cert_path(data_dir), &creds.to_bundle())?;
    Ok(creds.info().clone())
}

/// The hub's own signing credentials, `None` when none was installed (for
/// the outbox's ANECF, seed and corrections).
pub fn load_credentials(data_dir: &Path) -> Result<Option<Credentials>, CertStoreError> {
    let dir = data_dir.join(CERT_DIR_NAME);
    match fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => check_mode(&dir, meta.mode(), 0o700)?,
        Ok(_) => {
            return Err(CertStoreError::NotAFile {
                path: dir,
                what: "is not a directory",
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&dir, "stat")(e)),
    }
    let path = cert_path(data_dir);
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

/// Reads the trusted CAs of `[tax_authority] trusted_ca` (`file`, relative
/// to `data_dir` unless absolute).
pub fn trust_store(data_dir: &Path, file: &str) -> Result<TrustStore, CertStoreError> {
    let path = data_dir.join(file);
    let meta = fs::metadata(&path).map_err(io_err(&path, "stat"))?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(CertStoreError::NotAFile {
            path,
            what: "is not a regular file of at most 1 MiB",
        });
    }
    let bytes = fs::read(&path).map_err(io_err(&path, "read"))?;
    TrustStore::from_pem(&bytes).map_err(|source| CertStoreError::Cert { path, source })
}

/// The hub's certificate as the health report and the dashboard see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CertificateState {
    /// None installed.
    #[default]
    Missing,
    /// Installed; its facts.
    Installed(CertInfo),
    /// Installed but unreadable (permissions, damaged file).
    Unreadable(String),
}

/// The `fiscal.certificate` section of the health report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateHealth {
    /// Whether a certificate is installed.
    pub present: bool,
    /// Its subject.
    pub subject: Option<String>,
    /// End of validity, Unix ms UTC.
    pub not_after_ms: Option<i64>,
    /// Whole days left (negative once expired).
    pub days_left: Option<i64>,
    /// `valid`, `expires_soon`, `expired`, `not_yet_valid`, `missing` or
    /// `unreadable`.
    pub status: &'static str,
    /// Why it is unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CertificateState {
    /// Reads the installed certificate's state from `data_dir`.
    pub fn read(data_dir: &Path) -> CertificateState {
        match load_credentials(data_dir) {
            Ok(Some(c)) => CertificateState::Installed(c.info().clone()),
            Ok(None) => CertificateState::Missing,
            Err(e) => CertificateState::Unreadable(e.to_string()),
        }
    }

    /// Its health section at `now_ms`.
    pub fn health(&self, now_ms: i64) -> CertificateHealth {
        match self {
            CertificateState::Missing => CertificateHealth {
                present: false,
                subject: None,
                not_after_ms: None,
                days_left: None,
                status: "missing",
                error: None,
            },
            CertificateState::Unreadable(e) => CertificateHealth {
                present: true,
                subject: None,
                not_after_ms: None,
                days_left: None,
                status: "unreadable",
                error: Some(e.clone()),
            },
            CertificateState::Installed(info) => {
                let v = validity(info, now_ms);
                let days_left = match v {
                    Validity::Valid { days_left } | Validity::ExpiresSoon { days_left } => {
                        days_left
                    }
                    Validity::Expired | Validity::NotYetValid => {
                        (info.not_after_ms - now_ms).div_euclid(86_400_000)
                    }
                };
                CertificateHealth {
                    present: true,
                    subject: Some(info.subject.clone()),
                    not_after_ms: Some(info.not_after_ms),
                    days_left: Some(days_left),
                    status: v.as_str(),
                    error: None,
                }
            }
        }
    }
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

/// Reads a secret file only its owner may access (checked on the opened
/// file) into a zeroizing buffer: the credentials, `--password-file`.
pub fn read_owner_only(path: &Path) -> Result<Zeroizing<Vec<u8>>, CertStoreError> {
    let mut file = File::open(path).map_err(io_err(path, "open"))?;
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    if !meta.is_file() {
        return Err(CertStoreError::NotAFile {
            path: path.to_path_buf(),
            what: "is not a regular file",
        });
    }
    check_mode(path, meta.mode(), 0o600)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(CertStoreError::NotAFile {
            path: path.to_path_buf(),
            what: "is too large",
        });
    }
    let len = usize::try_from(meta.len()).unwrap_or(0);
    let mut buf = Zeroizing::new(Vec::with_capacity(len.saturating_add(1)));
    (&mut file)
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut buf)
        .map_err(io_err(path, "read"))?;
    Ok(buf)
}

fn write_owner_only(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), CertStoreError> {
    let tmp = dir.join(format!(".{CERT_FILE_NAME}.tmp-{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tmp, "remove a stale temporary file")(e)),
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp, "create"))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(&tmp, "set permissions"))?;
        file.write_all(bytes).map_err(io_err(&tmp, "write"))?;
        file.sync_all().map_err(io_err(&tmp, "fsync"))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io_err(path, "rename the temporary file into place"))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir, "fsync the directory"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
