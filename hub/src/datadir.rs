//! The hub's state directory (`--data-dir`, env `CAJA_HUB_DATA_DIR`):
//!
//! ```text
//! hub.db     SQLite (WAL): events, audit log, devices, projections — unless
//!            hub.toml names a PostgreSQL database (`database = "postgres://…"`)
//! hub.key    the hub's Ed25519 seed, lowercase hex, mode 0600
//! hub.toml   configuration (admin token inside), mode 0600
//! ```
//!
//! Secrets are written as tmp + fsync + rename + fsync of the directory, so a
//! crash leaves either no file or the whole file, never half a key.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::KeyId;
use caja_shared::key::{HubPublicKey, HubSigningKey};

use crate::config::{HubConfig, CONFIG_FILE};
use crate::hubchain::hub_key_id;
use crate::storage::{self, StorageError};

/// The database file name.
pub const DB_FILE: &str = "hub.db";
/// The key file name.
pub const KEY_FILE: &str = "hub.key";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `init` on a directory that already holds a hub.
    #[error("{0} already holds a hub (hub.key exists); refusing to overwrite it")]
    AlreadyInitialized(PathBuf),
    /// The key file is missing (not initialized).
    #[error("{0} has no hub.key; run `caja-hub init` first")]
    NotInitialized(PathBuf),
    /// The key file is readable by others.
    #[error("{path} is readable by group or others (mode {mode:o}); chmod 600 it")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The key file does not hold a key.
    #[error("{0} does not hold a 64-character hex Ed25519 seed")]
    BadKey(PathBuf),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `contents` to `path` with mode 0600: tmp file, fsync, rename, fsync
/// of the directory.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), DataDirError> {
    let tmp = path.with_extension("tmp");
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// What `caja-hub init` made.
#[derive(Debug)]
pub struct InitReport {
    /// The hub's public key.
    pub public_key: HubPublicKey,
    /// Its key id.
    pub key_id: KeyId,
    /// The configuration written.
    pub config: HubConfig,
}

/// Creates a hub in `dir`: the directory (0700), `hub.key`, `hub.toml` (with a
/// fresh admin token unless `config` has one) and the migrated `hub.db`.
pub fn init(
    dir: &Path,
    mut config: HubConfig,
    rng: &mut impl RandomSource,
    clock: &impl Clock,
) -> Result<InitReport, DataDirError> {
    let key_path = dir.join(KEY_FILE);
    if key_path.exists() {
        return Err(DataDirError::AlreadyInitialized(dir.to_owned()));
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    if config.admin_token.is_empty() {
        config.admin_token = rng.random_hex(32);
    }
    let key = HubSigningKey::generate(rng);
    let public_key = key.public_key();
    let key_id = hub_key_id(&public_key);
    let conn = storage::open_offline(&config.database(dir))?;
    storage::record_hub_key(&conn, &key_id, &public_key.to_hex(), clock.now_ms())?;
    drop(conn);
    write_private(&dir.join(CONFIG_FILE), config.to_toml().as_bytes())?;
    let mut text = key.to_hex();
    text.push('\n');
    write_private(&key_path, text.as_bytes())?;
    Ok(InitReport {
        public_key,
        key_id,
        config,
    })
}

/// Writes a self-signed TLS pair where `hub.toml` of `caja-hub init
/// --tls-self-signed` points (`tls/` 0700, both files owner-only).
pub fn write_tls(dir: &Path, made: &crate::tls::SelfSigned) -> Result<(), DataDirError> {
    let tls_dir = dir.join("tls");
    fs::create_dir_all(&tls_dir).map_err(io(&tls_dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tls_dir, fs::Permissions::from_mode(0o700)).map_err(io(&tls_dir))?;
    }
    write_private(
        &dir.join(crate::tls::SELF_SIGNED_KEY),
        made.key_pem.as_bytes(),
    )?;
    write_private(
        &dir.join(crate::tls::SELF_SIGNED_CERT),
        made.cert_pem.as_bytes(),
    )
}

/// The database of the hub in `dir`: `database` from its `hub.toml`, or
/// `CAJA_HUB_DATABASE`, else `hub.db` in `dir` (for the offline commands:
/// rebuild, audit export).
pub fn database(dir: &Path) -> Result<storage::Database, DataDirError> {
    check_config_file(dir)?;
    let path = dir.join(CONFIG_FILE);
    let mut cfg = match fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<HubConfig>(&text).map_err(|e| DataDirError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HubConfig::default(),
        Err(source) => return Err(DataDirError::Io { path, source }),
    };
    if let Ok(d) = std::env::var("CAJA_HUB_DATABASE") {
        cfg.database = d;
    }
    Ok(cfg.database(dir))
}

/// Refuses a secret file that group or others may read or write (the error
/// names the file and says to `chmod 600` it).
pub fn check_private_file(path: &Path) -> Result<(), DataDirError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(DataDirError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Refuses a `hub.toml` (admin token, webhook secrets, database password)
/// that group or others may read, like `hub.key`; a data directory without
/// one passes (every setting has a default and the environment).
pub fn check_config_file(dir: &Path) -> Result<(), DataDirError> {
    let path = dir.join(CONFIG_FILE);
    if !path.exists() {
        return Ok(());
    }
    check_private_file(&path)
}

/// Reads the hub key, refusing a file others can read.
pub fn load_key(dir: &Path) -> Result<HubSigningKey, DataDirError> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        return Err(DataDirError::NotInitialized(dir.to_owned()));
    }
    check_private_file(&path)?;
    let text = zeroize::Zeroizing::new(fs::read_to_string(&path).map_err(io(&path))?);
    HubSigningKey::from_hex(text.trim()).map_err(|_| DataDirError::BadKey(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::clock::ManualClock;
    use caja_shared::entropy::SeededRandom;

    #[test]
    fn init_writes_owner_only_secrets_and_refuses_twice() {
        let dir = tempfile::tempdir().unwrap();
        let hub = dir.path().join("hub");
        let mut rng = SeededRandom::new(1);
        let clock = ManualClock::new(1_763_880_000_000);
        let report = init(&hub, HubConfig::default(), &mut rng, &clock).unwrap();
        assert_eq!(report.config.admin_token.len(), 64);
        let key = load_key(&hub).unwrap();
        assert_eq!(key.public_key(), report.public_key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [KEY_FILE, CONFIG_FILE] {
                let mode = fs::metadata(hub.join(f)).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{f}");
            }
            fs::set_permissions(hub.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                load_key(&hub),
                Err(DataDirError::Permissions { .. })
            ));
        }
        assert!(matches!(
            init(&hub, HubConfig::default(), &mut rng, &clock),
            Err(DataDirError::AlreadyInitialized(_))
        ));
        let loaded = HubConfig::load(&hub, |_| None).unwrap();
        assert_eq!(loaded.admin_token, report.config.admin_token);
    }
}
