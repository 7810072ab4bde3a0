//! `caja-hub backup` and `caja-hub restore` (docs/backup-restore.md), and
//! the `admin restore` actions' argument types.
//!
//! A backup is the database only (`VACUUM INTO`: one consistent snapshot
//! taken while the hub serves; it holds the device keys, so keep it as
//! private as the secrets); `--secrets-out` writes the separate secrets
//! bundle (the hub key, `hub.toml` with the admin token, the TLS files),
//! owner-only, to be kept offline. A restore copies a backup into a data
//! directory that has no database yet (its secrets restored from the bundle
//! or put there by hand), then records a new restore epoch: the `restored`
//! audit entry and a signed head over the tree it restarted from.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use caja_hub::datadir;
use caja_hub::storage;
use caja_shared::clock::Clock;
use clap::Subcommand;

/// The secrets bundle's format name.
const SECRETS_FORMAT: &str = "caja-hub-secrets/v1";

/// Files of a data directory the secrets bundle carries (when present).
const SECRET_FILES: &[&str] = &[
    datadir::KEY_FILE,
    caja_hub::config::CONFIG_FILE,
    caja_hub::tls::SELF_SIGNED_CERT,
    caja_hub::tls::SELF_SIGNED_KEY,
];

/// The file beside the database recording the last backup's time (UTC ms),
/// read by the metrics.
pub const BACKUP_STAMP: &str = "backup-stamp";

/// `caja-hub backup`'s arguments.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The hub's state directory.
    #[arg(long, env = "CAJA_HUB_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The backup file to write (must not exist), e.g. on another disk:
    /// /var/backups/caja/hub-YYYYMMDD.db.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the secrets bundle (hub key, hub.toml, TLS files) to this
    /// file, owner-only; keep it offline, apart from the backups.
    #[arg(long)]
    pub secrets_out: Option<PathBuf>,
}

/// `caja-hub restore`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file (`caja-hub backup --out`).
    #[arg(required_unless_present = "mark_only")]
    pub file: Option<PathBuf>,
    /// The data directory to restore into: empty with --secrets, else
    /// holding the hub key and hub.toml but no database.
    #[arg(long, env = "CAJA_HUB_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The secrets bundle (`caja-hub backup --secrets-out`).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Only start the new restore epoch on a database already restored by
    /// other means (PostgreSQL point-in-time recovery).
    #[arg(long, conflicts_with_all = ["file", "secrets"])]
    pub mark_only: bool,
}

/// Runs `caja-hub backup`.
pub fn run_backup(a: &BackupArgs) -> anyhow::Result<()> {
    backup(&a.data_dir, a.out.as_deref(), a.secrets_out.as_deref())
}

/// Runs `caja-hub restore`.
pub fn run_restore(a: &RestoreArgs) -> anyhow::Result<()> {
    match &a.file {
        Some(file) if !a.mark_only => restore(file, &a.data_dir, a.secrets.as_deref()),
        _ => {
            let key = datadir::load_key(&a.data_dir)?;
            mark(&datadir::database(&a.data_dir)?, &key)
        }
    }
}

/// Head office's restore actions.
#[derive(Debug, Subcommand)]
pub enum RestoreAction {
    /// The latest restore and, per store, the registers still to report.
    Status,
    /// Acknowledge the latest restore: registers stop showing the warning.
    Ack {
        /// Who acknowledges.
        #[arg(long)]
        by: String,
        /// Why, what was checked (kept in the audit log).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Let a store get grants and hub events before all its registers
    /// reported (a register that will never sync again: write it off
    /// instead when you can).
    Override {
        /// The store id.
        #[arg(long)]
        store: String,
        /// Who decides.
        #[arg(long)]
        by: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        note: String,
    },
}

/// The admin API call of a restore action: method path and body.
pub fn admin_call(action: RestoreAction) -> (&'static str, Option<serde_json::Value>) {
    match action {
        RestoreAction::Status => ("/v1/admin/restore", None),
        RestoreAction::Ack { by, note } => (
            "/v1/admin/restore/ack",
            Some(serde_json::json!({ "by": by, "note": note })),
        ),
        RestoreAction::Override { store, by, note } => (
            "/v1/admin/restore/override",
            Some(serde_json::json!({ "store": store, "by": by, "note": note })),
        ),
    }
}

/// `caja-hub backup`.
pub fn backup(
    data_dir: &Path,
    out: Option<&Path>,
    secrets_out: Option<&Path>,
) -> anyhow::Result<()> {
    if out.is_none() && secrets_out.is_none() {
        bail!("nothing to do: give --out FILE, --secrets-out FILE or both");
    }
    if let Some(out) = out {
        let database = datadir::database(data_dir)?;
        let entries = storage::restore::backup_sqlite(&database, out)?;
        let now = caja_hub::system::SystemClock.now_ms();
        datadir::write_private(&data_dir.join(BACKUP_STAMP), format!("{now}\n").as_bytes())?;
        println!("backup written: {}", out.display());
        println!("audit entries in the backup: {entries}");
    }
    if let Some(path) = secrets_out {
        if path.exists() {
            bail!("{} exists already: choose a new file", path.display());
        }
        let mut files = serde_json::Map::new();
        for name in SECRET_FILES {
            let p = data_dir.join(name);
            match fs::read(&p) {
                Ok(bytes) => {
                    files.insert((*name).to_owned(), hex::encode(bytes).into());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| p.display().to_string()),
            }
        }
        let bundle = serde_json::json!({ "format": SECRETS_FORMAT, "files": files });
        let text = zeroize::Zeroizing::new(serde_json::to_vec(&bundle)?);
        datadir::write_private(path, &text)?;
        println!(
            "secrets bundle written (owner-only; keep it offline, apart from the backups): {}",
            path.display()
        );
    }
    Ok(())
}

fn unpack_secrets(bundle: &Path, data_dir: &Path) -> anyhow::Result<()> {
    datadir::check_private_file(bundle)?;
    let text = zeroize::Zeroizing::new(
        fs::read(bundle).with_context(|| format!("--secrets {}", bundle.display()))?,
    );
    let v: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("--secrets {}: not a secrets bundle", bundle.display()))?;
    if v.get("format").and_then(|f| f.as_str()) != Some(SECRETS_FORMAT) {
        bail!(
            "--secrets {}: not a {SECRETS_FORMAT} bundle",
            bundle.display()
        );
    }
    let files = v
        .get("files")
        .and_then(|f| f.as_object())
        .context("the secrets bundle has no files")?;
    for (name, hexed) in files {
        if !SECRET_FILES.contains(&name.as_str()) {
            bail!("the secrets bundle names an unexpected file {name}");
        }
        let bytes = zeroize::Zeroizing::new(
            hex::decode(hexed.as_str().unwrap_or_default())
                .with_context(|| format!("secrets bundle file {name}"))?,
        );
        let target = data_dir.join(name);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        datadir::write_private(&target, &bytes)?;
    }
    Ok(())
}

/// `caja-hub restore`.
pub fn restore(file: &Path, data_dir: &Path, secrets: Option<&Path>) -> anyhow::Result<()> {
    if let Some(bundle) = secrets {
        if data_dir.exists() && fs::read_dir(data_dir)?.next().is_some() {
            bail!(
                "{} is not empty: restore with --secrets onto an empty data directory",
                data_dir.display()
            );
        }
        fs::create_dir_all(data_dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))?;
        }
        unpack_secrets(bundle, data_dir)?;
    }
    let key = datadir::load_key(data_dir).with_context(|| {
        format!(
            "{} needs the hub key: restore its secrets bundle with --secrets FILE",
            data_dir.display()
        )
    })?;
    let database = datadir::database(data_dir)?;
    let storage::Database::Sqlite(target) = &database else {
        bail!("the hub database is PostgreSQL: restore it with PostgreSQL's own tools (pg_basebackup, point-in-time recovery), then run `caja-hub restore --mark-only` (docs/backup-restore.md)");
    };
    if target.exists() {
        bail!(
            "{} exists: a restore goes onto a data directory without a database (move it away first)",
            target.display()
        );
    }
    // Copy beside, then rename: a half-copied file is never the database.
    let tmp: PathBuf = target.with_extension("restoring");
    fs::copy(file, &tmp).with_context(|| format!("copying {}", file.display()))?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, target)?;
    mark(&database, &key)
}

/// Records the restore epoch on a database restored by other means (a
/// PostgreSQL point-in-time recovery) or just copied.
pub fn mark(
    database: &storage::Database,
    key: &caja_shared::key::HubSigningKey,
) -> anyhow::Result<()> {
    let conn = storage::open_offline(database).context("cannot open the restored database")?;
    let public = key.public_key();
    let now = caja_hub::system::SystemClock.now_ms();
    storage::record_hub_key(
        &conn,
        &caja_hub::hubchain::hub_key_id(&public),
        &public.to_hex(),
        now,
    )
    .context("the backup does not belong to this hub key")?;
    let info = storage::restore::record_restore(&conn, key, now)?;
    println!("restored: epoch {}", info.epoch);
    println!(
        "audit log restarted from {} entries, root {}",
        info.tree_size,
        info.root.to_hex()
    );
    println!("registers push back what the hub lacks at their next sync; until every register of a store has, the store gets no new grant (`caja-hub admin restore status`)");
    Ok(())
}
