//! `caja-hub`: head office's service and its admin command-line interface.
//!
//! `init` creates a data directory (key, configuration, database), `serve` runs
//! the service until SIGTERM or ctrl-c, `rebuild` recomputes the projections
//! from the event store, `audit export|verify` writes and checks the audit log
//! export, `admin …` calls the admin API over HTTP. `dev …` (the DGII
//! emulator) exists only in builds with the `testkit` feature.
//!
//! Exit codes: 0 success, 1 runtime failure (database, network, refused call),
//! 2 usage error (clap), 3 configuration or data-directory error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use caja_hub::admin_client::AdminClient;
use caja_hub::config::{HubConfig, LogFormat};
use caja_hub::datadir;
use caja_hub::server;
use caja_hub::system::{OsRandom, SystemClock};
use clap::{Parser, Subcommand};

mod cli_certificate;
mod cli_restore;

/// Caja hub: receives every register's events exactly once and in causal order,
/// resolves conflicts, accounts for fiscal numbers and keeps a verifiable audit log.
#[derive(Debug, Parser)]
#[command(name = "caja-hub", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of this binary and of the formats it speaks.
    Version,
    /// DGII certification: run DGII's data-test set (CSV) against the
    /// configured environment and report each case.
    Dgii {
        #[command(subcommand)]
        action: DgiiAction,
    },
    /// Create a hub: data directory, Ed25519 key (mode 0600), hub.toml, hub.db.
    Init {
        /// The hub's state directory.
        #[arg(long, env = "CAJA_HUB_DATA_DIR")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// A file holding the admin token (one line, owner-only). Else the
        /// environment variable CAJA_HUB_ADMIN_TOKEN; else one is generated.
        /// Never an argument: arguments show in `ps`.
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        /// Make a self-signed TLS certificate (tls/cert.pem, tls/key.pem,
        /// owner-only), serve HTTPS with it, and print its SHA-256 for
        /// registers to pin.
        #[arg(long)]
        tls_self_signed: bool,
        /// A DNS name or IP address registers reach the hub at, added to the
        /// certificate beside localhost and 127.0.0.1 (repeat).
        #[arg(long = "tls-name", requires = "tls_self_signed")]
        tls_names: Vec<String>,
        /// The database: an SQLite file (default hub.db in the data
        /// directory) or a PostgreSQL URL, postgres://user@host/db.
        #[arg(long, env = "CAJA_HUB_DATABASE", hide_env_values = true)]
        database: Option<String>,
    },
    /// Run the service until SIGTERM or ctrl-c.
    Serve {
        /// The hub's state directory.
        #[arg(long, env = "CAJA_HUB_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Recompute the projections from the event store (stop the service first).
    Rebuild {
        /// The hub's state directory.
        #[arg(long, env = "CAJA_HUB_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Back up the database while the hub serves (one consistent
    /// snapshot), and/or write the secrets bundle (docs/backup-restore.md).
    Backup(cli_restore::BackupArgs),
    /// Restore a backup onto a data directory without a database and start
    /// a new restore epoch (docs/backup-restore.md).
    Restore(cli_restore::RestoreArgs),
    /// Export or verify the audit log (RFC 9162 Merkle tree, signed head).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Call the admin API of a running hub.
    Admin {
        /// The hub's base URL.
        #[arg(long, env = "CAJA_HUB_URL", default_value = "http://127.0.0.1:7878")]
        url: String,
        /// A file holding the admin token (one line, owner-only). Else the
        /// environment variable CAJA_HUB_ADMIN_TOKEN. Never an argument:
        /// arguments show in `ps`.
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        /// PEM file of the certificate (or CA) to trust for an `https://`
        /// hub with a certificate of its own, e.g. the data directory's
        /// tls/cert.pem after `init --tls-self-signed`.
        #[arg(long, env = "CAJA_HUB_CA")]
        hub_ca: Option<PathBuf>,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Fiscal number series of a running hub: load, list, account, export;
    /// and the hub's e-CF signing certificate (in the data directory).
    Fiscal {
        /// The hub's base URL.
        #[arg(long, env = "CAJA_HUB_URL", default_value = "http://127.0.0.1:7878")]
        url: String,
        /// A file holding the admin token (one line, owner-only), for every
        /// action but `certificate`. Else the environment variable
        /// CAJA_HUB_ADMIN_TOKEN. Never an argument: arguments show in `ps`.
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        /// PEM file of the certificate (or CA) to trust for an `https://`
        /// hub with a certificate of its own, e.g. the data directory's
        /// tls/cert.pem after `init --tls-self-signed`.
        #[arg(long, env = "CAJA_HUB_CA")]
        hub_ca: Option<PathBuf>,
        #[command(subcommand)]
        action: FiscalAction,
    },
    /// Development tools (not for production).
    // Only in builds with the `testkit` feature.
    #[cfg(feature = "testkit")]
    Dev {
        #[command(subcommand)]
        action: DevAction,
    },
}

#[cfg(feature = "testkit")]
#[derive(Debug, Subcommand)]
enum DevAction {
    /// Run a DGII e-CF emulator (seed, token, reception, status, trackIds,
    /// summaries, cancellations) with faults on demand, until ctrl-c. Point
    /// `[tax_authority]` `ecf_base_url` / `fc_base_url` at the two bases it
    /// prints. With `--xsd-dir` every document is validated with `xmllint`;
    /// with `--check-signatures` unsigned or badly signed ones are refused.
    DgiiEmulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// The issuer's RNC it accepts documents of.
        #[arg(long)]
        rnc: String,
        /// Of every 1000 calls, how many never answer in time.
        #[arg(long, default_value_t = 0)]
        timeout_per_mille: u32,
        /// Of every 1000 calls, how many answer 503.
        #[arg(long, default_value_t = 0)]
        error_per_mille: u32,
        /// Added to every answer, ms.
        #[arg(long, default_value_t = 0)]
        slow_ms: u64,
        /// How long a "timeout" holds the connection, ms.
        #[arg(long, default_value_t = 35_000)]
        hang_ms: u64,
        /// Status queries answered "En Proceso" before the verdict.
        #[arg(long, default_value_t = 0)]
        in_process_polls: u32,
        /// Token lifetime, ms.
        #[arg(long, default_value_t = 3_600_000)]
        token_ttl_ms: i64,
        /// A number to reject (repeat).
        #[arg(long = "reject")]
        reject: Vec<String>,
        /// A number to accept with conditions (repeat).
        #[arg(long = "conditional")]
        conditional: Vec<String>,
        /// Seed of the fault choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// DGII's XSD directory: validate every document with `xmllint`.
        #[arg(long)]
        xsd_dir: Option<PathBuf>,
        /// Refuse documents (and seeds) whose XMLDSig signature does not
        /// verify.
        #[arg(long)]
        check_signatures: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CertificateAction {
    /// Install the hub's e-CF signing certificate from a PKCS#12 file
    /// (.p12/.pfx). The password comes from --password-file, else the
    /// environment variable CAJA_CERT_PASSWORD, else a prompt on the
    /// terminal; never an argument. The key is stored owner-only.
    Install {
        /// The PKCS#12 file.
        file: PathBuf,
        /// A file holding the password (one line), readable by its owner only.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Show the installed certificate: subject, issuer, expiry.
    Show,
}

#[derive(Debug, Subcommand)]
enum DgiiAction {
    /// Build, sign and send every case of the set; print each verdict.
    Certification {
        /// The hub's data directory (hub.toml, installed certificate).
        #[arg(long, env = "CAJA_HUB_DATA_DIR")]
        data_dir: PathBuf,
        /// The set: CSV `caso,encf,rnc_comprador,nombre_comprador,descripcion,cantidad_milesimas,precio_centavos,itbis_bp`.
        #[arg(long)]
        set: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum FiscalAction {
    /// The hub's own e-CF signing certificate (works on the data directory;
    /// no running hub or token needed).
    Certificate {
        /// The hub's state directory.
        #[arg(long, env = "CAJA_HUB_DATA_DIR")]
        data_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: CertificateAction,
    },
    /// Load a series authorized by the tax authority (e.g. B02 1..100000).
    LoadSeries {
        /// Prefix: a capital letter and two digits (B01, B02, E31, …).
        #[arg(long)]
        prefix: String,
        /// Digits after the prefix (8 for NCF, 10 for e-CF).
        #[arg(long)]
        digits: u8,
        /// First number.
        #[arg(long)]
        first: u64,
        /// Last number.
        #[arg(long)]
        last: u64,
        /// Last day of use, yyyy-mm-dd (store time).
        #[arg(long)]
        valid_until: String,
        /// A store it serves (repeat; none = every store).
        #[arg(long = "store")]
        stores: Vec<String>,
    },
    /// List the series.
    Series,
    /// Account for every number: used, voided, released unused, written off,
    /// outstanding on a register, never allocated; totals and duplicates.
    Report {
        /// The prefix (all series when absent).
        #[arg(long)]
        series: Option<String>,
        /// json or csv.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// The DGII 607 sales report of a store for a month (pipe-separated text).
    Dgii607 {
        /// The store id.
        #[arg(long)]
        store: String,
        /// The month, yyyy-mm (store time).
        #[arg(long)]
        month: String,
        /// The taxpayer's RNC for the header.
        #[arg(long)]
        rnc: String,
        /// Print the sums of the consumer invoices under RD$250,000 (JSON,
        /// typed into the Oficina Virtual) instead of the file.
        #[arg(long)]
        consumer_summary: bool,
    },
    /// The DGII 608 report of a store for a month: voided documents.
    Dgii608 {
        /// The store id.
        #[arg(long)]
        store: String,
        /// The month, yyyy-mm (store time).
        #[arg(long)]
        month: String,
        /// The taxpayer's RNC for the header.
        #[arg(long)]
        rnc: String,
    },
    /// Export every signed e-CF, RFCE and ANECF the hub holds as its exact
    /// bytes, one file per document (`{e-NCF}.{kind}.xml`), with `index.csv`
    /// (e-NCF, type, kind, security code, state, trackId), for an auditor.
    Documents {
        /// Directory to write (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// First day, yyyy-mm-dd (Santo Domingo time, by signing time).
        #[arg(long)]
        from: Option<String>,
        /// Last day, yyyy-mm-dd (inclusive).
        #[arg(long)]
        to: Option<String>,
    },
    /// Write the printed representation (PDF) of a signed e-CF.
    Representation {
        /// The e-NCF (`E31…`).
        #[arg(long)]
        encf: String,
        /// The PDF file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a register off (lost, stolen, dead): its key is revoked and the
    /// fiscal numbers it held are never issued again.
    WriteOff {
        /// The device id.
        device: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Correct a summary (RFCE) the tax authority rejected: the hub rebuilds
    /// it from the e-CF it holds, signs it with its own certificate and
    /// submits it as a new attempt of the same e-NCF (audited; resolves the
    /// rejection's conflict). Refused for anything but a rejected RFCE.
    CorrectSummary {
        /// The e-NCF (e.g. E320000000051).
        document: String,
        /// Who decides.
        #[arg(long)]
        by: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        note: String,
    },
    /// Cancel the number of a document refused before sending (its signed
    /// bytes failed the checks, its receipt was printed): an ANECF of that
    /// one number signed with the hub's certificate; the document is never
    /// sent (audited; resolves its conflict).
    CancelRefused {
        /// The e-NCF.
        document: String,
        /// Who decides.
        #[arg(long)]
        by: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Write entries.jsonl, sth.json and hub_pubkey into a new directory,
    /// signing a head of the current tree (safe while the hub runs).
    Export {
        /// The hub's state directory.
        #[arg(long, env = "CAJA_HUB_DATA_DIR")]
        data_dir: PathBuf,
        /// The directory to write (must not hold an export already).
        out: PathBuf,
    },
    /// Verify an export: every entry, the Merkle root and the Ed25519
    /// signature. Needs only the export directory.
    Verify {
        /// The export directory.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Create a store (and its hub chain).
    CreateStore {
        /// Its name.
        name: String,
        /// IANA time zone (default America/Santo_Domingo).
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// List stores.
    Stores,
    /// Create a one-time enrollment token for a register of a store.
    CreateToken {
        /// The store id.
        store: String,
        /// The register's name.
        name: String,
        /// Lifetime in ms (default from hub.toml).
        #[arg(long)]
        ttl_ms: Option<i64>,
    },
    /// List devices, of one store or all.
    Devices {
        /// The store id.
        #[arg(long)]
        store: Option<String>,
    },
    /// Revoke a device: every key refused from now on.
    Revoke {
        /// The device id.
        device: String,
        /// Why (kept in the audit log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Rotate a device's key; prints the new key once. The old key stays
    /// valid for the grace period (`key_grace_ms`) unless `--no-grace`.
    Rotate {
        /// The device id.
        device: String,
        /// The old key is compromised: refuse every old key at once (the
        /// register stops syncing until the new key is installed on it).
        #[arg(long)]
        no_grace: bool,
    },
    /// Load catalog items and prices from a JSON file
    /// `{"stores"?: [..], "items"?: [..], "prices"?: [..]}` (docs/catalog.md),
    /// or a CSV file (`.csv`: code, name, price, itbis, sold_by), checked
    /// whole before anything is sent.
    LoadCatalog {
        /// The file.
        file: PathBuf,
        /// Load into this store only (repeat; default: every store, or the
        /// JSON file's `stores`).
        #[arg(long = "store")]
        stores: Vec<String>,
    },
    /// List alerts.
    Alerts,
    /// List conflicts with their candidates, state and strategy.
    Conflicts {
        /// `open`, `resolved` or `all`.
        #[arg(long, default_value = "all")]
        state: String,
    },
    /// Resolve a manual conflict: a `ConflictResolved` hub event that reaches
    /// the registers, and an audit entry.
    Resolve {
        /// The conflict id.
        conflict: String,
        /// The winning candidate event, when one wins.
        #[arg(long)]
        winner: Option<String>,
        /// What was decided and why (kept in the audit log).
        #[arg(long)]
        note: String,
        /// Who decided.
        #[arg(long)]
        by: String,
    },
    /// List quarantined devices.
    Quarantined,
    /// Release a device's quarantine after review.
    Release {
        /// The device id.
        device: String,
        /// Review note (kept in the audit log).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Print the health report.
    Health,
    /// List fiscal documents of the tax-authority outbox with their state.
    Outbox {
        /// pending, submitted, accepted, accepted_conditional, rejected or all.
        #[arg(long, default_value = "all")]
        state: String,
        /// Most documents listed (newest first).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Supplier e-CF received at URL Recepción (newest first), or with
    /// `--decide approve|reject` head office's commercial decision on one
    /// (the hub signs its ACECF).
    Purchases(caja_hub::cli_purchases::PurchasesArgs),
    /// Sign a head of the audit log's Merkle tree now and print it (sth.json).
    SignTreeHead,
    /// After a restore: status, acknowledge, override a store's gate.
    Restore {
        #[command(subcommand)]
        action: cli_restore::RestoreAction,
    },
    /// Create or change a member of staff (the PIN is hashed at the hub and
    /// reaches the registers only as a hash).
    Staff {
        /// Name.
        #[arg(long)]
        name: String,
        /// cashier, supervisor or manager.
        #[arg(long)]
        role: String,
        /// PIN, 4 to 8 digits.
        #[arg(long)]
        pin: String,
        /// Change this member instead of creating one.
        #[arg(long)]
        staff_id: Option<String>,
        /// A store they work at (repeat; none = every store).
        #[arg(long = "store")]
        stores: Vec<String>,
        /// They may no longer sign in.
        #[arg(long)]
        inactive: bool,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn config_error(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 3,
        error: e.into(),
    }
}

fn runtime_error(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: e.into(),
    }
}

/// The admin token: the first line of `--admin-token-file` (refused when
/// group or others may read it), else `CAJA_HUB_ADMIN_TOKEN`; `None` when
/// neither is given. Never from an argument, which `ps` shows.
fn admin_token(
    file: Option<&std::path::Path>,
) -> Result<Option<zeroize::Zeroizing<String>>, Failure> {
    if let Some(path) = file {
        datadir::check_private_file(path).map_err(config_error)?;
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("--admin-token-file {}", path.display()))
                .map_err(config_error)?,
        );
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(config_error(anyhow::anyhow!(
                "--admin-token-file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(zeroize::Zeroizing::new(token.to_owned())));
    }
    Ok(std::env::var("CAJA_HUB_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| zeroize::Zeroizing::new(t.trim().to_owned())))
}

/// [`admin_token`] for commands that cannot work without it.
fn required_token(file: Option<&std::path::Path>) -> Result<zeroize::Zeroizing<String>, Failure> {
    admin_token(file)?.ok_or_else(|| {
        config_error(anyhow::anyhow!(
            "the admin token is required: --admin-token-file FILE or CAJA_HUB_ADMIN_TOKEN"
        ))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("caja-hub: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAJA_HUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Text lines escape every field's control characters (log forging);
    // JSON escapes them itself.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.fmt_fields(caja_hub::logsafe::fields()).try_init(),
    };
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(runtime_error)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Version => {
            println!("{}", caja_hub::version_text());
            Ok(())
        }
        Command::Init {
            data_dir,
            listen,
            admin_token_file,
            database,
            tls_self_signed,
            tls_names,
        } => {
            let mut cfg = HubConfig::default();
            if let Some(d) = database {
                cfg.database = d;
            }
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(t) = admin_token(admin_token_file.as_deref())? {
                cfg.admin_token = t.to_string();
            }
            let tls = if tls_self_signed {
                let made = caja_hub::tls::self_signed(&tls_names).map_err(config_error)?;
                cfg.tls_cert = Some(caja_hub::tls::SELF_SIGNED_CERT.to_owned());
                cfg.tls_key = Some(caja_hub::tls::SELF_SIGNED_KEY.to_owned());
                Some(made)
            } else {
                None
            };
            let report = datadir::init(&data_dir, cfg, &mut OsRandom::new(), &SystemClock)
                .map_err(config_error)?;
            if let Some(made) = &tls {
                datadir::write_tls(&data_dir, made).map_err(config_error)?;
            }
            report.config.validate().map_err(config_error)?;
            println!("initialized hub in {}", data_dir.display());
            println!("hub public key: {}", report.public_key.to_hex());
            println!("hub key id:     {}", report.key_id);
            println!("listen:         {}", report.config.listen);
            println!(
                "admin token:    in {} (owner-only)",
                data_dir.join(caja_hub::config::CONFIG_FILE).display()
            );
            if let Some(made) = &tls {
                println!(
                    "TLS certificate: {}",
                    data_dir.join(caja_hub::tls::SELF_SIGNED_CERT).display()
                );
                // Tests and operators read this exact line to pin the certificate.
                println!("TLS certificate SHA-256: {}", made.fingerprint);
            }
            Ok(())
        }
        Command::Serve { data_dir } => {
            datadir::check_config_file(&data_dir).map_err(config_error)?;
            let cfg =
                HubConfig::load(&data_dir, |k| std::env::var(k).ok()).map_err(config_error)?;
            init_logs(cfg.log_format);
            let rt = runtime()?;
            rt.block_on(async move {
                let hub = server::start(&data_dir, cfg).await.map_err(|e| match e {
                    server::ServeError::DataDir(_)
                    | server::ServeError::TrustedCa(_)
                    | server::ServeError::Tls(_) => config_error(e),
                    other => runtime_error(other),
                })?;
                // Tests and scripts read this line to learn a port picked by the OS.
                println!("caja-hub listening on {}", hub.addr);
                // systemd `Type=notify` (packaging/): ready once serving.
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                server::shutdown_signal().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                tracing::info!("shutting down: finishing in-flight requests");
                hub.stop().await.map_err(runtime_error)
            })
        }
        Command::Rebuild { data_dir } => {
            init_logs(LogFormat::Text);
            let database = datadir::database(&data_dir).map_err(config_error)?;
            let conn = caja_hub::storage::open_offline(&database)
                .context("cannot open the hub database")
                .map_err(config_error)?;
            let before = caja_hub::storage::digest(&conn).map_err(runtime_error)?;
            let n = caja_hub::storage::rebuild(&conn).map_err(runtime_error)?;
            let after = caja_hub::storage::digest(&conn).map_err(runtime_error)?;
            println!("rebuilt projections from {n} applied events");
            println!("digest before: {before}");
            println!("digest after:  {after}");
            Ok(())
        }
        Command::Dgii {
            action: DgiiAction::Certification { data_dir, set },
        } => {
            init_logs(LogFormat::Text);
            let rt = runtime()?;
            let results = rt
                .block_on(caja_hub::certification::run_from_data_dir(&data_dir, &set))
                .map_err(config_error)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&results).unwrap_or_default()
            );
            if results.iter().any(|r| r.result != "accepted") {
                return Err(runtime_error(anyhow::anyhow!(
                    "not every case was accepted"
                )));
            }
            Ok(())
        }
        Command::Audit { action } => audit(action),
        Command::Backup(args) => cli_restore::run_backup(&args).map_err(config_error),
        Command::Restore(args) => cli_restore::run_restore(&args).map_err(config_error),
        Command::Admin {
            url,
            admin_token_file,
            hub_ca,
            action,
        } => {
            let token = required_token(admin_token_file.as_deref())?;
            let client = admin_client(&url, &token, hub_ca.as_deref())?;
            let rt = runtime()?;
            rt.block_on(admin(client, action))
        }
        Command::Fiscal {
            action:
                FiscalAction::Certificate {
                    data_dir,
                    json,
                    action,
                },
            ..
        } => match action {
            CertificateAction::Install {
                file,
                password_file,
            } => cli_certificate::install(&data_dir, &file, password_file.as_deref(), json),
            CertificateAction::Show => cli_certificate::show(&data_dir, json),
        }
        .map_err(runtime_error),
        Command::Fiscal {
            url,
            admin_token_file,
            hub_ca,
            action,
        } => {
            let token = required_token(admin_token_file.as_deref())?;
            let client = admin_client(&url, &token, hub_ca.as_deref())?;
            let rt = runtime()?;
            rt.block_on(fiscal(client, action))
        }
        #[cfg(feature = "testkit")]
        Command::Dev { action } => dev(action),
    }
}

#[cfg(feature = "testkit")]
fn dev(action: DevAction) -> Result<(), Failure> {
    match action {
        DevAction::DgiiEmulator {
            listen,
            rnc,
            timeout_per_mille,
            error_per_mille,
            slow_ms,
            hang_ms,
            in_process_polls,
            token_ttl_ms,
            reject,
            conditional,
            seed,
            xsd_dir,
            check_signatures,
        } => {
            init_logs(LogFormat::Text);
            if timeout_per_mille + error_per_mille > 1000 {
                return Err(config_error(anyhow::anyhow!(
                    "--timeout-per-mille plus --error-per-mille must be at most 1000"
                )));
            }
            if token_ttl_ms <= 0 {
                return Err(config_error(anyhow::anyhow!(
                    "--token-ttl-ms must be positive"
                )));
            }
            let faults = caja_hub::dgii_emulator::Faults {
                timeout_per_mille,
                error_per_mille,
                slow_ms,
                hang_ms,
                in_process_polls,
                token_ttl_ms,
                stall_submissions_ms: 0,
                reject: reject.into_iter().collect(),
                conditional: conditional.into_iter().collect(),
            };
            let rt = runtime()?;
            rt.block_on(async move {
                let checks = caja_hub::dgii_emulator::Checks {
                    xsd_dir,
                    signatures: check_signatures,
                };
                let emu = caja_hub::dgii_emulator::Emulator::start_checked(
                    listen, &rnc, faults, seed, checks,
                )
                .await
                    .with_context(|| format!("cannot listen on {listen}"))
                    .map_err(runtime_error)?;
                println!("dgii emulator listening on {}", emu.addr());
                println!("ecf_base_url = \"{}\"", emu.ecf_base_url());
                println!("fc_base_url = \"{}\"", emu.fc_base_url());
                server::shutdown_signal().await;
                let t = emu.totals();
                let received: u64 = t.per_number.values().map(|c| u64::from(c.received)).sum();
                let duplicates: u64 = t.per_number.values().map(|c| u64::from(c.duplicates)).sum();
                println!(
                    "documents received {received}, identical resubmissions {duplicates}, lookups {}, faults {}",
                    t.lookups, t.faults
                );
                emu.stop().await;
                Ok(())
            })
        }
    }
}

fn audit(action: AuditAction) -> Result<(), Failure> {
    use caja_hub::audit_export::{self, ExportError};
    use caja_shared::clock::Clock;
    match action {
        AuditAction::Export { data_dir, out } => {
            init_logs(LogFormat::Text);
            let report = audit_export::export(&data_dir, &out, SystemClock.now_ms()).map_err(
                |e| match e {
                    ExportError::DataDir(_) | ExportError::Exists(_) => config_error(e),
                    other => runtime_error(other),
                },
            )?;
            println!(
                "exported {} audit entries to {}",
                report.entries,
                out.display()
            );
            println!("tree size: {}", report.sth.tree_size);
            println!("root:      {}", report.sth.root);
            println!(
                "signed at: {} ms UTC by {}",
                report.sth.at_ms, report.sth.key_id
            );
            Ok(())
        }
        AuditAction::Verify { dir } => {
            let report = audit_export::verify(&dir)
                .with_context(|| {
                    format!("the audit log export in {} does not verify", dir.display())
                })
                .map_err(runtime_error)?;
            println!("OK: {} entries lead to the signed root", report.entries);
            println!("root:       {}", report.root);
            println!("signed at:  {} ms UTC", report.at_ms);
            println!("public key: {}", report.public_key);
            Ok(())
        }
    }
}

/// The admin API client: trusting only `hub_ca` when given.
fn admin_client(
    url: &str,
    token: &str,
    hub_ca: Option<&std::path::Path>,
) -> Result<AdminClient, Failure> {
    match hub_ca {
        None => AdminClient::new(url, token).map_err(runtime_error),
        Some(file) => {
            let pem = std::fs::read(file)
                .with_context(|| format!("--hub-ca {}", file.display()))
                .map_err(config_error)?;
            AdminClient::with_ca(url, token, &pem)
                .with_context(|| format!("--hub-ca {}", file.display()))
                .map_err(config_error)
        }
    }
}

async fn admin(c: AdminClient, action: AdminAction) -> Result<(), Failure> {
    let out = match action {
        AdminAction::CreateStore { name, time_zone } => {
            c.create_store(&name, time_zone.as_deref()).await
        }
        AdminAction::Stores => c.get("/v1/admin/stores").await,
        AdminAction::CreateToken {
            store,
            name,
            ttl_ms,
        } => c.create_token(&store, &name, ttl_ms).await,
        AdminAction::Devices { store } => c.devices(store.as_deref()).await,
        AdminAction::Revoke { device, reason } => c.revoke(&device, &reason).await,
        AdminAction::Rotate { device, no_grace } => c.rotate_with(&device, no_grace).await,
        AdminAction::LoadCatalog { file, stores } => {
            let bytes = std::fs::read(&file)
                .with_context(|| format!("cannot read {}", file.display()))
                .map_err(config_error)?;
            let csv = file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let mut body: serde_json::Value = if csv {
                caja_hub::catalog_csv::parse(&bytes)
                    .with_context(|| format!("{}: nothing loaded", file.display()))
                    .map_err(config_error)?
                    .to_load_body(&[])
            } else {
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not JSON", file.display()))
                    .map_err(config_error)?
            };
            if !stores.is_empty() {
                let Some(obj) = body.as_object_mut() else {
                    return Err(config_error(anyhow::anyhow!(
                        "{} is not a JSON object",
                        file.display()
                    )));
                };
                obj.insert("stores".into(), serde_json::json!(stores));
            }
            c.load_catalog(&body).await
        }
        AdminAction::Alerts => c.get("/v1/admin/alerts").await,
        AdminAction::Quarantined => c.get("/v1/admin/quarantine").await,
        AdminAction::Conflicts { state } => {
            c.get(&format!("/v1/admin/conflicts?state={state}")).await
        }
        AdminAction::Purchases(args) => caja_hub::cli_purchases::run(&c, args).await,
        AdminAction::Outbox { state, limit } => {
            c.get(&format!("/v1/admin/outbox?state={state}&limit={limit}"))
                .await
        }
        AdminAction::Resolve {
            conflict,
            winner,
            note,
            by,
        } => {
            let mut body = serde_json::json!({ "note": note, "by": by });
            if let Some(w) = winner {
                body["winner"] = serde_json::Value::String(w);
            }
            c.post(&format!("/v1/admin/conflicts/{conflict}/resolve"), &body)
                .await
        }
        AdminAction::Release { device, note } => c.release(&device, &note).await,
        AdminAction::Health => c.get("/v1/health").await,
        AdminAction::Staff {
            name,
            role,
            pin,
            staff_id,
            stores,
            inactive,
        } => {
            let mut body = serde_json::json!({
                "name": name, "role": role, "pin": pin, "active": !inactive, "stores": stores,
            });
            if let Some(id) = staff_id {
                body["staff_id"] = id.into();
            }
            c.post("/v1/admin/staff", &body).await
        }
        AdminAction::SignTreeHead => c.sign_tree_head().await,
        AdminAction::Restore { action } => match cli_restore::admin_call(action) {
            (path, None) => c.get(path).await,
            (path, Some(body)) => c.post(path, &body).await,
        },
    }
    .map_err(runtime_error)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
    );
    Ok(())
}

async fn fiscal(c: AdminClient, action: FiscalAction) -> Result<(), Failure> {
    if let FiscalAction::Documents { out, from, to } = &action {
        let mut path = "/v1/admin/fiscal/documents?".to_owned();
        for (k, v) in [("from", from), ("to", to)] {
            if let Some(v) = v {
                path.push_str(&format!("{k}={v}&"));
            }
        }
        let v = c
            .get(path.trim_end_matches(['&', '?']))
            .await
            .map_err(runtime_error)?;
        let n = caja_hub::admin_client::write_documents(out, &v).map_err(runtime_error)?;
        println!("{n} documents written to {}", out.display());
        return Ok(());
    }
    if let FiscalAction::Representation { encf, out } = &action {
        let v = c
            .get(&format!("/v1/admin/fiscal/representation/{encf}"))
            .await
            .map_err(runtime_error)?;
        caja_hub::cli_purchases::write_pdf(&v, out).map_err(runtime_error)?;
        println!("{} written", out.display());
        return Ok(());
    }
    let out = match action {
        FiscalAction::Documents { .. } | FiscalAction::Representation { .. } => {
            unreachable!("handled above")
        }
        FiscalAction::LoadSeries {
            prefix,
            digits,
            first,
            last,
            valid_until,
            stores,
        } => {
            let body = serde_json::json!({
                "prefix": prefix, "digits": digits, "first": first, "last": last,
                "valid_until": valid_until, "stores": stores,
            });
            c.call(
                reqwest::Method::POST,
                "/v1/admin/fiscal/series",
                Some(&body),
            )
            .await
        }
        FiscalAction::Series => c.get("/v1/admin/fiscal/series").await,
        FiscalAction::Report { series, format } => {
            let mut path = format!("/v1/admin/fiscal/report?format={format}");
            if let Some(s) = series {
                path.push_str(&format!("&series={s}"));
            }
            c.get(&path).await
        }
        FiscalAction::Dgii607 {
            store,
            month,
            rnc,
            consumer_summary,
        } => {
            let part = if consumer_summary { "consumer" } else { "file" };
            c.get(&format!(
                "/v1/admin/fiscal/607?store={store}&month={month}&rnc={rnc}&part={part}"
            ))
            .await
        }
        FiscalAction::Dgii608 { store, month, rnc } => {
            c.get(&format!(
                "/v1/admin/fiscal/608?store={store}&month={month}&rnc={rnc}"
            ))
            .await
        }
        FiscalAction::WriteOff { device, reason } => {
            let body = serde_json::json!({ "reason": reason });
            c.call(
                reqwest::Method::POST,
                &format!("/v1/admin/devices/{device}/write-off"),
                Some(&body),
            )
            .await
        }
        FiscalAction::CancelRefused { document, by, note } => {
            let body = serde_json::json!({ "by": by, "note": note });
            c.call(
                reqwest::Method::POST,
                &format!("/v1/admin/outbox/{document}/cancel"),
                Some(&body),
            )
            .await
        }
        FiscalAction::CorrectSummary { document, by, note } => {
            let body = serde_json::json!({ "by": by, "note": note });
            c.call(
                reqwest::Method::POST,
                &format!("/v1/admin/outbox/{document}/correct-summary"),
                Some(&body),
            )
            .await
        }
        FiscalAction::Certificate { .. } => {
            // Handled in `run` on the data directory, never over HTTP.
            return Err(config_error(anyhow::anyhow!(
                "fiscal certificate works on --data-dir, not on a running hub"
            )));
        }
    }
    .map_err(runtime_error)?;
    match out {
        serde_json::Value::String(text) => print!("{text}"),
        v => println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        ),
    }
    Ok(())
}
