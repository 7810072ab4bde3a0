//! A register's data directory: its paths (database, device key,
//! configuration) and what is done to the directory as a whole — creating it
//! (`init`, or from an enrollment answer), backing the database up and
//! restoring a backup.
//!
//! Invariant: nothing here makes an event or touches the projections; a
//! restored database keeps its backup mark until it has synced, so it issues
//! no fiscal number and sells no escrowed stock before then.

use std::path::{Path, PathBuf};

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::ids::{DeviceId, StoreId};
use caja_shared::key::{DeviceKey, HubPublicKey};

use crate::db::{self, Db, DB_FILE_NAME};
use crate::error::OpError;
use crate::journal::{self, DeviceRecord, Journal, JournalError};
use crate::keyfile::{self, KEY_FILE_NAME};

fn invalid(field: &'static str, reason: impl Into<String>) -> OpError {
    OpError::invalid(field, reason)
}

/// Paths of a node's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.root.join(DB_FILE_NAME)
    }

    /// The device key file.
    pub fn key_path(&self) -> PathBuf {
        self.root.join(KEY_FILE_NAME)
    }
}

/// What `init` sets up.
#[derive(Debug, Clone)]
pub struct InitParams {
    /// The store this register belongs to.
    pub store: StoreId,
    /// The device id; a fresh UUID v7 when `None`.
    pub device: Option<DeviceId>,
    /// The hub's public key, to verify hub events; `None` until enrollment.
    pub hub_public_key: Option<HubPublicKey>,
}

/// Creates a register's data directory: the database, the device row and a new
/// device key (owner-only file). Refuses a directory already initialized.
pub fn init(
    dir: &DataDir,
    params: &InitParams,
    clock: &impl Clock,
    rng: &mut impl RandomSource,
) -> Result<DeviceRecord, OpError> {
    std::fs::create_dir_all(dir.root()).map_err(|e| {
        invalid(
            "data_dir",
            format!("cannot create {}: {e}", dir.root().display()),
        )
    })?;
    let mut db = Db::open(dir.db_path())?;
    if let Some(existing) = journal::load_device(db.conn())? {
        return Err(JournalError::AlreadyInitialized(existing.device).into());
    }
    let now = clock.now_ms();
    let device = match params.device {
        Some(d) => d,
        None => DeviceId::new_v7(now, rng).map_err(|e| invalid("device", e.to_string()))?,
    };
    let record = DeviceRecord {
        store: params.store,
        device,
        key_id: "k1".parse().map_err(|_| invalid("key_id", "bad default"))?,
        hub_public_key: params.hub_public_key,
        created_at_ms: now,
        restored_from_backup: false,
    };
    let key = DeviceKey::generate(rng);
    keyfile::write_key_file(&dir.key_path(), &key)?;
    let tx = db.write_tx()?;
    journal::insert_device(&tx, &record)?;
    tx.commit()?;
    Ok(record)
}

/// What enrollment with a hub gave this register.
#[derive(Debug, Clone)]
pub struct Adopted {
    /// The store.
    pub store: StoreId,
    /// The device id.
    pub device: DeviceId,
    /// The key id.
    pub key_id: caja_shared::ids::KeyId,
    /// The device key.
    pub key: DeviceKey,
    /// The hub's public key.
    pub hub_public_key: HubPublicKey,
    /// The hub's URL, written into `config.toml`.
    pub hub_url: String,
}

/// Creates a register's data directory from an enrollment answer: the database
/// with the device row, the key file (0600) and `config.toml` with the hub URL.
pub fn adopt_enrollment(dir: &DataDir, a: &Adopted, now_ms: i64) -> Result<DeviceRecord, OpError> {
    std::fs::create_dir_all(dir.root()).map_err(|e| {
        invalid(
            "data_dir",
            format!("cannot create {}: {e}", dir.root().display()),
        )
    })?;
    let mut db = Db::open(dir.db_path())?;
    if let Some(existing) = journal::load_device(db.conn())? {
        return Err(JournalError::AlreadyInitialized(existing.device).into());
    }
    let record = DeviceRecord {
        store: a.store,
        device: a.device,
        key_id: a.key_id.clone(),
        hub_public_key: Some(a.hub_public_key),
        created_at_ms: now_ms,
        restored_from_backup: false,
    };
    keyfile::write_key_file(&dir.key_path(), &a.key)?;
    let config = dir.root().join(crate::config::CONFIG_FILE_NAME);
    if !config.exists() {
        let text = format!("hub_url = {}\n", toml::Value::String(a.hub_url.clone()));
        std::fs::write(&config, text).map_err(|e| {
            invalid(
                "data_dir",
                format!("cannot write {}: {e}", config.display()),
            )
        })?;
    }
    let tx = db.write_tx()?;
    journal::insert_device(&tx, &record)?;
    tx.commit()?;
    Ok(record)
}

/// Installs the key head office gave this register (`caja-hub admin rotate
/// DEVICE --no-grace`), for a register whose key the hub lost (restored from
/// an older backup) or a register restored on new hardware: the key file
/// (0600) and the device row's key id. Returns the device.
pub fn rekey(
    dir: &DataDir,
    key_id: &caja_shared::ids::KeyId,
    key: &caja_shared::key::DeviceKey,
) -> Result<caja_shared::ids::DeviceId, OpError> {
    let db = Db::open(dir.db_path())?;
    let device = journal::load_device(db.conn())?.ok_or(JournalError::NotInitialized)?;
    keyfile::write_key_file(&dir.key_path(), key)?;
    journal::set_key_id(db.conn(), key_id)?;
    Ok(device.device)
}

/// Copies the live database to `dest` with SQLite's online backup API (a
/// consistent snapshot even while the node sells), then marks the copy as a
/// backup: once restored it issues no fiscal number and sells no escrowed stock
/// until it has synced with the hub (DESIGN "Fiscal number ranges"). The device
/// key file is not copied; a restore needs the register's key file (or a new
/// enrollment).
pub fn backup(dir: &DataDir, dest: &Path) -> Result<u64, OpError> {
    if dest.exists() {
        return Err(invalid("out", format!("{} already exists", dest.display())));
    }
    let src = Db::open(dir.db_path())?;
    journal::load_device(src.conn())?.ok_or(JournalError::NotInitialized)?;
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    db::snapshot_to(src.conn(), &tmp)?;
    let copy = Db::open(&tmp)?;
    journal::set_restored_from_backup(copy.conn(), true)?;
    let head = Journal::head(copy.conn())?;
    // Leave a single self-contained file (no -wal beside it).
    db::make_self_contained(copy.conn())?;
    drop(copy);
    std::fs::rename(&tmp, dest)
        .map_err(|e| invalid("out", format!("cannot write {}: {e}", dest.display())))?;
    Ok(head.seq)
}

/// Replaces the data directory's database with a backup file. The current
/// database, if any, is kept beside it as `<name>.before-restore-<ms>`; the key
/// file stays. The restored copy keeps its backup mark until it has synced.
///
/// The key file goes with the key id of the database it was installed for
/// (`rekey` writes both): when the current database is the same register's
/// and names another key id (the key was rotated after the backup), the
/// restored copy takes that key id, else it would check its checkpoints and
/// sign its requests under a key id whose key is gone.
pub fn restore(dir: &DataDir, from: &Path, now_ms: i64) -> Result<u64, OpError> {
    let probe = Db::open(from)?;
    let device = journal::load_device(probe.conn())?.ok_or(JournalError::NotInitialized)?;
    if !device.restored_from_backup {
        return Err(invalid(
            "from",
            format!(
                "{} is not a Caja backup (make one with `caja-node backup`)",
                from.display()
            ),
        ));
    }
    let head = Journal::head(probe.conn())?;
    drop(probe);
    std::fs::create_dir_all(dir.root()).map_err(|e| {
        invalid(
            "data_dir",
            format!("cannot create {}: {e}", dir.root().display()),
        )
    })?;
    let db = dir.db_path();
    // The installed key's id, from the current database if it opens (a
    // broken one is a reason to restore: then the backup's stays).
    let installed = db
        .exists()
        .then(|| Db::open(&db).ok())
        .flatten()
        .and_then(|d| journal::load_device(d.conn()).ok().flatten())
        .filter(|d| d.device == device.device && d.key_id != device.key_id)
        .map(|d| d.key_id);
    if db.exists() {
        let kept = db.with_extension(format!("before-restore-{now_ms}"));
        // Fold the WAL into the file first so the kept copy is complete.
        db::fold_wal(&db);
        std::fs::rename(&db, &kept).map_err(|e| {
            invalid(
                "data_dir",
                format!("cannot move the current database aside: {e}"),
            )
        })?;
    }
    for suffix in ["-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::copy(from, &db)
        .map_err(|e| invalid("from", format!("cannot copy {}: {e}", from.display())))?;
    if let Some(key_id) = installed {
        let restored = Db::open(&db)?;
        journal::set_key_id(restored.conn(), &key_id)?;
    }
    Ok(head.seq)
}
