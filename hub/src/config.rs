//! The hub's configuration: one struct, read in one place ([`HubConfig::load`])
//! from `hub.toml` in the data directory, then overridden by `CAJA_HUB_*`
//! environment variables. Every field has a default that works.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::caps::Caps;
use crate::ratelimit::RateLimit;

/// The file name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "hub.toml";

/// The SQLite file of a hub configured without `database`.
pub const DEFAULT_DATABASE: &str = "hub.db";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The tax authority the outbox workers submit fiscal documents to
/// (`[tax_authority]` in `hub.toml`). Without this section the outbox still
/// fills (every electronic document is queued at ingest) but nothing is
/// sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct TaxAuthorityConfig {
    /// The gateway: `dgii` (the only one so far).
    pub gateway: String,
    /// Base of the e-CF services, e.g. `https://ecf.dgii.gov.do/testecf`
    /// (or the emulator's `…/ecf`).
    pub ecf_base_url: String,
    /// Base of the consumer-invoice services, e.g.
    /// `https://fc.dgii.gov.do/testecf` (or the emulator's `…/fc`).
    pub fc_base_url: String,
    /// The issuer's RNC (9 digits) or cédula (11).
    pub rnc: String,
    /// The issuer's legal name, as registered.
    pub legal_name: String,
    /// The issuer's address (printed in full e-CF documents when given).
    pub address: Option<String>,
    /// Outbox workers in this instance (0: this instance only queues; the
    /// documents are sent by other instances).
    pub workers: usize,
    /// A worker's lease on a document; must outlive a call several times.
    pub lease_ms: i64,
    /// Deadline of one call to the authority.
    pub request_timeout_ms: u64,
    /// Pause between status queries while the authority is checking.
    pub poll_interval_ms: i64,
    /// First retry after a failed call (doubles, capped, jittered).
    pub retry_base_ms: i64,
    /// Longest pause between retries.
    pub retry_cap_ms: i64,
    /// Pause of an idle worker before it looks for due documents again.
    pub idle_poll_ms: u64,
    /// PEM file of the trusted Dominican certification authorities
    /// (relative to the data directory): registers' signing certificates
    /// must chain to one of them. Read at start; a bad file stops the hub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<String>,
}

impl Default for TaxAuthorityConfig {
    fn default() -> TaxAuthorityConfig {
        TaxAuthorityConfig {
            gateway: "dgii".into(),
            ecf_base_url: "https://ecf.dgii.gov.do/testecf".into(),
            fc_base_url: "https://fc.dgii.gov.do/testecf".into(),
            rnc: String::new(),
            legal_name: String::new(),
            address: None,
            workers: 2,
            lease_ms: crate::outbox::DEFAULT_LEASE_MS,
            request_timeout_ms: 30_000,
            poll_interval_ms: 5_000,
            retry_base_ms: 1_000,
            retry_cap_ms: 300_000,
            idle_poll_ms: 1_000,
            trusted_ca: None,
        }
    }
}

impl TaxAuthorityConfig {
    /// Checks the section; errors name `tax_authority.<field>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if self.gateway != "dgii" {
            return bad("tax_authority.gateway", "the only gateway is dgii");
        }
        for (field, url) in [
            ("tax_authority.ecf_base_url", &self.ecf_base_url),
            ("tax_authority.fc_base_url", &self.fc_base_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return bad(field, "must be an http(s) address");
            }
        }
        if !matches!(self.rnc.len(), 9 | 11) || !self.rnc.bytes().all(|b| b.is_ascii_digit()) {
            return bad("tax_authority.rnc", "must be 9 digits (RNC) or 11 (cédula)");
        }
        if self.legal_name.trim().is_empty() {
            return bad("tax_authority.legal_name", "must not be empty");
        }
        if self.address.as_deref().is_none_or(|a| a.trim().is_empty()) {
            return bad(
                "tax_authority.address",
                "must be set: every full e-CF carries the issuer's address (DireccionEmisor)",
            );
        }
        let issuer = caja_shared::ecf::issuer::Issuer::new(
            &self.rnc,
            &self.legal_name,
            self.address.as_deref().unwrap_or(""),
            None,
        );
        if let Err(e) = issuer {
            let message = e.to_string();
            let field = if message.starts_with("issuer.address") {
                "tax_authority.address"
            } else if message.starts_with("issuer.legal_name") {
                "tax_authority.legal_name"
            } else {
                "tax_authority.rnc"
            };
            return bad(field, &message);
        }
        if self.workers > 64 {
            return bad("tax_authority.workers", "at most 64");
        }
        if self.request_timeout_ms == 0 {
            return bad("tax_authority.request_timeout_ms", "must be positive");
        }
        let timeout = i64::try_from(self.request_timeout_ms).unwrap_or(i64::MAX);
        if self.lease_ms < timeout.saturating_mul(3) {
            return bad(
                "tax_authority.lease_ms",
                "must be at least three times request_timeout_ms (a lease outlives the calls of a step)",
            );
        }
        if self.poll_interval_ms <= 0
            || self.retry_base_ms <= 0
            || self.retry_cap_ms < self.retry_base_ms
        {
            return bad(
                "tax_authority.retry_cap_ms",
                "poll_interval_ms and retry_base_ms must be positive, retry_cap_ms at least retry_base_ms",
            );
        }
        if self.idle_poll_ms == 0 {
            return bad("tax_authority.idle_poll_ms", "must be positive");
        }
        if self
            .trusted_ca
            .as_ref()
            .is_some_and(|f| f.trim().is_empty())
        {
            return bad(
                "tax_authority.trusted_ca",
                "must name a PEM file of CA certificates",
            );
        }
        Ok(())
    }
}

/// Everything `caja-hub serve` can be told.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The database: an SQLite file (relative to the data directory;
    /// default `hub.db`) or a PostgreSQL URL (`postgres://user@host/db`),
    /// which several hub instances may share. A server on another machine
    /// only over verified TLS: `?sslmode=verify-full&sslrootcert=/path/ca.pem`
    /// (`storage::pg_tls`); its password never appears in `Debug`, logs or
    /// errors.
    pub database: String,
    /// Bearer token for the admin API, `/v1/health` and `/metrics`.
    pub admin_token: String,
    /// Largest request body accepted (413 beyond).
    pub body_limit_bytes: usize,
    /// Writer jobs that may wait before requests get 429.
    pub ingest_queue: usize,
    /// Most jobs committed in one writer transaction.
    pub max_batch_jobs: usize,
    /// Requests handled at once before new ones get 429.
    pub max_concurrent_requests: usize,
    /// Read-only SQLite connections.
    pub read_connections: usize,
    /// Most events in one push.
    pub max_events_per_push: usize,
    /// Most events in one pull or own page.
    pub max_page: usize,
    /// How long a rotated device key stays valid.
    pub key_grace_ms: i64,
    /// Default lifetime of an enrollment token.
    pub token_ttl_ms: i64,
    /// Lifetime of a fiscal block (capped by its series' valid-until date).
    pub fiscal_block_ttl_ms: i64,
    /// Lifetime of an escrow quota grant.
    pub escrow_quota_ttl_ms: i64,
    /// Per-device request rate limit.
    pub rate_limit: RateLimit,
    /// Log format.
    pub log_format: LogFormat,
    /// Payment providers that may send webhooks, by name (`[a-z0-9_-]`, as in
    /// `/v1/payments/webhooks/{provider}`), each with its webhook signing
    /// secret (at least 16 characters). In `hub.toml`:
    /// `[payment_providers]` then `azul = "…"`; in the environment:
    /// `CAJA_HUB_PAYMENT_PROVIDERS=azul=…,cardnet=…`.
    pub payment_providers: std::collections::BTreeMap<String, String>,
    /// How long after a sale a card payment recorded with a terminal
    /// reference may wait for the provider's capture before it becomes a
    /// `manual` conflict.
    pub payment_confirm_deadline_ms: i64,
    /// How often the reconciliation of card payments runs.
    pub payment_reconcile_interval_ms: i64,
    /// A register that has not pushed for this long is shown without contact
    /// (`circuit: open` in the health report, "sin contacto" in the
    /// dashboard).
    pub register_silent_ms: i64,
    /// Whether the dashboard's cookies carry the `Secure` flag (sent over
    /// HTTPS only). Leave it on behind the TLS proxy; turn it off only to
    /// use the dashboard over plain HTTP on a loopback address.
    pub ui_secure_cookie: bool,
    /// How long a dashboard session lasts after login.
    pub ui_session_ttl_ms: i64,
    /// Login attempts per client address (burst, then per minute). All
    /// clients together get six times this.
    pub ui_login_limit: RateLimit,
    /// The tax authority of the fiscal-document outbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_authority: Option<TaxAuthorityConfig>,
    // — NET limits —
    /// Open connections at once; more are closed on arrival.
    pub max_connections: usize,
    /// Open connections at once from one IPv4 address or IPv6 /64. Behind a
    /// TLS proxy every client has the proxy's address: raise it to
    /// `max_connections` there.
    pub max_connections_per_ip: usize,
    /// A TLS handshake and a request's headers must arrive within this; a
    /// keep-alive connection idle this long is closed.
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this (the concurrency permit is
    /// taken only after it has).
    pub body_timeout_ms: u64,
    /// From a request's headers to the start of its answer.
    pub request_timeout_ms: u64,
    /// Request-body bytes held in memory while bodies arrive, in all; a body
    /// that would go over gets 429 `overloaded` (the concurrency permit
    /// comes only after the body, so this bounds what slow senders hold).
    pub max_buffered_body_bytes: usize,
    /// The same from one IPv4 address or IPv6 /64; at least
    /// `body_limit_bytes`, so one largest push always fits.
    pub max_buffered_body_bytes_per_ip: usize,
    /// Wrong admin tokens per client address (burst, then per minute) on the
    /// endpoints that take it; then 429 until the bucket refills.
    pub admin_guess_limit: RateLimit,
    /// The hub's TLS certificate chain, PEM (relative to the data directory).
    /// With `tls_key`, the hub serves HTTPS only; reloaded on SIGHUP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// The private key of `tls_cert`, PEM, owner-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    // — CAPS limits —
    /// Largest canonical event a push may carry (413 `too_large` naming
    /// `events[i]`). Default 1 MiB: the largest event a register makes, a
    /// 500-line sale with 200-character names, discounts and overrides on
    /// every line, is about 330 KB (measured in `hub/tests/caps.rs`).
    pub max_event_bytes: usize,
    /// Largest signed document (e-CF or RFCE XML, decoded) a push may carry
    /// (413 naming `documents[j].xml`). Default 1 MiB: the signed e-CF of
    /// the largest 500-line sale is about 210 KB (measured in
    /// `hub/tests/caps.rs`).
    pub max_document_bytes: usize,
    /// Most event bytes in one pull or own page: a page stops before it
    /// would exceed this, and always holds at least one event. Default
    /// 4 MiB, the register's own push bound.
    pub max_page_bytes: usize,
    /// Per-device volume limit on pushes, in weight units (one per event
    /// plus one per `push_bytes_per_unit` body bytes): burst, then per
    /// minute. 429 `overloaded` with `Retry-After` beyond. Default burst
    /// 100,000 and 1,800,000 a minute (30,000 a second): above one
    /// register's full-speed catch-up (about 16,000 events/s of ~700 bytes,
    /// 1.35 units each), far below what the request limit alone let through
    /// (1,200 pushes a minute of 5,000 events and 8 MiB each).
    pub push_rate_limit: RateLimit,
    /// Body bytes that weigh as much as one event in `push_rate_limit`.
    pub push_bytes_per_unit: usize,
    /// Fiscal numbers granted to one device and not yet used or released,
    /// per series prefix, beyond which a range request answers 429. Default
    /// 5,000: a register holds less than two of its blocks (block size at
    /// most 1,000, low-water mark at most the block size).
    pub max_outstanding_fiscal: u64,
    /// Held events of one device beyond which head office is alerted and the
    /// health report degrades (held events are stored, never refused).
    pub held_alert_threshold: u64,
    /// A used enrollment token presented again gets the same refusal each
    /// time but one audit entry and alert per token in this window.
    pub enroll_replay_window_ms: i64,
    // — RECV —
    /// Lifetime of a token of the DGII receiver services' own
    /// authentication (`/fe/autenticacion/…`). Default one hour, as DGII's.
    pub receiver_token_ttl_ms: i64,
    /// Whether `/fe/recepcion` and `/fe/aprobacioncomercial` demand a token
    /// of `/fe/autenticacion` (`Authorization: Bearer`). Default true.
    pub receiver_require_token: bool,
    /// Calls to the `/fe/…` services per client address: burst, then per
    /// minute (429 with `Retry-After` beyond).
    pub receiver_rate_limit: RateLimit,
    /// Deliver every E31 the registers issue to its buyer's URL Recepción
    /// when DGII's directory lists the buyer (its ARECF kept). Default true.
    pub receiver_deliver_e31: bool,
    // — COUNTER —
    /// Where each payment provider's API takes the hub's refund requests
    /// (`POST <url>/v1/refunds`, signed with the provider's webhook secret),
    /// by provider name. In `hub.toml`: `[payment_provider_urls]` then
    /// `azul = "https://…"`; in the environment:
    /// `CAJA_HUB_PAYMENT_PROVIDER_URLS=azul=https://…`. A provider without
    /// one cannot be asked for refunds (its own refunds still arrive as
    /// webhooks).
    pub payment_provider_urls: std::collections::BTreeMap<String, String>,
    // — SIMWORK —
    /// PBKDF2 rounds for the PINs head office sets, in test builds only (the
    /// simulation's cheap hash); never read from a file or the environment,
    /// and absent from release builds, which always hash with
    /// `caja_shared::pin::ITERATIONS`.
    #[cfg(feature = "testkit")]
    #[serde(skip)]
    pub test_pin_iterations: Option<u32>,
    // — HUBCKPT —
    /// SQLite: WAL frames (pages) waiting to be copied into the database
    /// that start a checkpoint. Default 1000 (SQLite's own).
    pub wal_checkpoint_pages: u32,
    /// SQLite: WAL frames after a commit from which the writer completes the
    /// checkpoint itself, so the WAL stays about this size. Default 16000
    /// (64 MiB of 4 KiB pages); at least `wal_checkpoint_pages`.
    pub wal_limit_pages: u32,
    /// SQLite: checkpoints run on a thread of their own, beside the writer.
    /// `false`: the writer runs them after answering its batch (one thread
    /// writes the files, in a fixed order: the deterministic simulation).
    /// Default false (the thread measured slower on a 2-core machine).
    pub wal_checkpoint_thread: bool,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("listen", &self.listen)
            .field(
                "database",
                &crate::storage::Database::parse(&self.database, Path::new("")),
            )
            .field("admin_token", &"<redacted>")
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("ingest_queue", &self.ingest_queue)
            .field("max_batch_jobs", &self.max_batch_jobs)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("read_connections", &self.read_connections)
            .field("max_events_per_push", &self.max_events_per_push)
            .field("max_page", &self.max_page)
            .field("key_grace_ms", &self.key_grace_ms)
            .field("token_ttl_ms", &self.token_ttl_ms)
            .field("fiscal_block_ttl_ms", &self.fiscal_block_ttl_ms)
            .field("escrow_quota_ttl_ms", &self.escrow_quota_ttl_ms)
            .field("rate_limit", &self.rate_limit)
            .field("log_format", &self.log_format)
            .field(
                "payment_providers",
                &self.payment_providers.keys().collect::<Vec<_>>(),
            )
            .field(
                "payment_confirm_deadline_ms",
                &self.payment_confirm_deadline_ms,
            )
            .field(
                "payment_reconcile_interval_ms",
                &self.payment_reconcile_interval_ms,
            )
            .field("register_silent_ms", &self.register_silent_ms)
            .field("ui_secure_cookie", &self.ui_secure_cookie)
            .field("ui_session_ttl_ms", &self.ui_session_ttl_ms)
            .field("ui_login_limit", &self.ui_login_limit)
            .field("tax_authority", &self.tax_authority)
            // — NET limits —
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("header_timeout_ms", &self.header_timeout_ms)
            .field("body_timeout_ms", &self.body_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_buffered_body_bytes", &self.max_buffered_body_bytes)
            .field(
                "max_buffered_body_bytes_per_ip",
                &self.max_buffered_body_bytes_per_ip,
            )
            .field("admin_guess_limit", &self.admin_guess_limit)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("max_document_bytes", &self.max_document_bytes)
            .field("max_page_bytes", &self.max_page_bytes)
            .field("push_rate_limit", &self.push_rate_limit)
            .field("push_bytes_per_unit", &self.push_bytes_per_unit)
            .field("max_outstanding_fiscal", &self.max_outstanding_fiscal)
            .field("held_alert_threshold", &self.held_alert_threshold)
            .field("enroll_replay_window_ms", &self.enroll_replay_window_ms)
            .field("receiver_token_ttl_ms", &self.receiver_token_ttl_ms)
            .field("receiver_require_token", &self.receiver_require_token)
            .field("payment_provider_urls", &self.payment_provider_urls)
            .field("receiver_rate_limit", &self.receiver_rate_limit)
            .field("receiver_deliver_e31", &self.receiver_deliver_e31)
            // — HUBCKPT —
            .field("wal_checkpoint_pages", &self.wal_checkpoint_pages)
            .field("wal_limit_pages", &self.wal_limit_pages)
            .field("wal_checkpoint_thread", &self.wal_checkpoint_thread)
            .finish()
    }
}

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            database: DEFAULT_DATABASE.to_owned(),
            admin_token: String::new(),
            body_limit_bytes: 8 * 1024 * 1024,
            ingest_queue: 256,
            max_batch_jobs: 64,
            max_concurrent_requests: 256,
            read_connections: 4,
            max_events_per_push: 5000,
            max_page: 1000,
            key_grace_ms: 24 * 3_600_000,
            token_ttl_ms: 24 * 3_600_000,
            fiscal_block_ttl_ms: 7 * 24 * 3_600_000,
            escrow_quota_ttl_ms: 24 * 3_600_000,
            rate_limit: RateLimit {
                burst: 120,
                per_minute: 1200,
            },
            log_format: LogFormat::Text,
            payment_providers: std::collections::BTreeMap::new(),
            payment_confirm_deadline_ms: 24 * 3_600_000,
            payment_reconcile_interval_ms: 60_000,
            register_silent_ms: 15 * 60_000,
            ui_secure_cookie: true,
            ui_session_ttl_ms: 8 * 3_600_000,
            ui_login_limit: RateLimit {
                burst: 5,
                per_minute: 5,
            },
            tax_authority: None,
            // — NET limits —
            max_connections: 2048,
            max_connections_per_ip: 256,
            header_timeout_ms: 15_000,
            body_timeout_ms: 60_000,
            request_timeout_ms: 120_000,
            max_buffered_body_bytes: 512 * 1024 * 1024,
            max_buffered_body_bytes_per_ip: 64 * 1024 * 1024,
            admin_guess_limit: RateLimit {
                burst: 10,
                per_minute: 10,
            },
            tls_cert: None,
            tls_key: None,
            // — CAPS limits —
            max_event_bytes: Caps::DEFAULT.max_event_bytes,
            max_document_bytes: Caps::DEFAULT.max_document_bytes,
            max_page_bytes: Caps::DEFAULT.max_page_bytes,
            push_rate_limit: Caps::DEFAULT.push_rate_limit,
            push_bytes_per_unit: Caps::DEFAULT.push_bytes_per_unit,
            max_outstanding_fiscal: Caps::DEFAULT.max_outstanding_fiscal,
            held_alert_threshold: Caps::DEFAULT.held_alert_threshold,
            enroll_replay_window_ms: Caps::DEFAULT.enroll_replay_window_ms,
            // — RECV —
            receiver_token_ttl_ms: 3_600_000,
            receiver_require_token: true,
            receiver_rate_limit: RateLimit {
                burst: 120,
                per_minute: 600,
            },
            receiver_deliver_e31: true,
            // — COUNTER —
            payment_provider_urls: std::collections::BTreeMap::new(),
            // — SIMWORK —
            #[cfg(feature = "testkit")]
            test_pin_iterations: None,
            // — HUBCKPT —
            wal_checkpoint_pages: crate::storage::WalPolicy::DEFAULT.checkpoint_pages,
            wal_limit_pages: crate::storage::WalPolicy::DEFAULT.limit_pages,
            wal_checkpoint_thread: crate::storage::WalPolicy::DEFAULT.thread,
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("configuration {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn env_parse<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    target: &mut T,
) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(v) = env(name) {
        *target = v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
            name,
            message: e.to_string(),
        })?;
    }
    Ok(())
}

impl HubConfig {
    /// PBKDF2 rounds for a new PIN: `caja_shared::pin::ITERATIONS`, except in
    /// a test build told otherwise (`test_pin_iterations`).
    pub fn pin_iterations(&self) -> u32 {
        #[cfg(feature = "testkit")]
        if let Some(n) = self.test_pin_iterations {
            return n;
        }
        caja_shared::pin::ITERATIONS
    }

    /// Reads `hub.toml` from `data_dir` (defaults when absent), applies the
    /// `CAJA_HUB_*` variables that `env` returns, and validates.
    pub fn load(
        data_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<HubConfig, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let mut cfg = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HubConfig::default(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        env_parse(&env, "CAJA_HUB_LISTEN", &mut cfg.listen)?;
        if let Some(d) = env("CAJA_HUB_DATABASE") {
            cfg.database = d;
        }
        if let Some(t) = env("CAJA_HUB_ADMIN_TOKEN") {
            cfg.admin_token = t;
        }
        env_parse(&env, "CAJA_HUB_BODY_LIMIT_BYTES", &mut cfg.body_limit_bytes)?;
        env_parse(&env, "CAJA_HUB_INGEST_QUEUE", &mut cfg.ingest_queue)?;
        env_parse(&env, "CAJA_HUB_MAX_BATCH_JOBS", &mut cfg.max_batch_jobs)?;
        env_parse(
            &env,
            "CAJA_HUB_MAX_CONCURRENT_REQUESTS",
            &mut cfg.max_concurrent_requests,
        )?;
        env_parse(&env, "CAJA_HUB_READ_CONNECTIONS", &mut cfg.read_connections)?;
        env_parse(
            &env,
            "CAJA_HUB_MAX_EVENTS_PER_PUSH",
            &mut cfg.max_events_per_push,
        )?;
        env_parse(&env, "CAJA_HUB_MAX_PAGE", &mut cfg.max_page)?;
        env_parse(&env, "CAJA_HUB_KEY_GRACE_MS", &mut cfg.key_grace_ms)?;
        env_parse(&env, "CAJA_HUB_TOKEN_TTL_MS", &mut cfg.token_ttl_ms)?;
        env_parse(
            &env,
            "CAJA_HUB_FISCAL_BLOCK_TTL_MS",
            &mut cfg.fiscal_block_ttl_ms,
        )?;
        env_parse(
            &env,
            "CAJA_HUB_ESCROW_QUOTA_TTL_MS",
            &mut cfg.escrow_quota_ttl_ms,
        )?;
        env_parse(&env, "CAJA_HUB_RATE_LIMIT_BURST", &mut cfg.rate_limit.burst)?;
        env_parse(
            &env,
            "CAJA_HUB_RATE_LIMIT_PER_MINUTE",
            &mut cfg.rate_limit.per_minute,
        )?;
        if let Some(v) = env("CAJA_HUB_LOG_FORMAT") {
            cfg.log_format = match v.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::Env {
                        name: "CAJA_HUB_LOG_FORMAT",
                        message: format!("expected text or json, got {other:?}"),
                    })
                }
            };
        }
        // — COUNTER —
        if let Some(v) = env("CAJA_HUB_PAYMENT_PROVIDER_URLS") {
            cfg.payment_provider_urls.clear();
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, url) = pair.split_once('=').ok_or(ConfigError::Env {
                    name: "CAJA_HUB_PAYMENT_PROVIDER_URLS",
                    message: "expected name=url,name=url".into(),
                })?;
                cfg.payment_provider_urls
                    .insert(name.trim().to_owned(), url.trim().to_owned());
            }
        }
        if let Some(v) = env("CAJA_HUB_PAYMENT_PROVIDERS") {
            cfg.payment_providers.clear();
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, secret) = pair.split_once('=').ok_or(ConfigError::Env {
                    name: "CAJA_HUB_PAYMENT_PROVIDERS",
                    message: "expected name=secret,name=secret".into(),
                })?;
                cfg.payment_providers
                    .insert(name.trim().to_owned(), secret.trim().to_owned());
            }
        }
        env_parse(
            &env,
            "CAJA_HUB_PAYMENT_CONFIRM_DEADLINE_MS",
            &mut cfg.payment_confirm_deadline_ms,
        )?;
        env_parse(
            &env,
            "CAJA_HUB_PAYMENT_RECONCILE_INTERVAL_MS",
            &mut cfg.payment_reconcile_interval_ms,
        )?;
        env_parse(
            &env,
            "CAJA_HUB_REGISTER_SILENT_MS",
            &mut cfg.register_silent_ms,
        )?;
        env_parse(&env, "CAJA_HUB_UI_SECURE_COOKIE", &mut cfg.ui_secure_cookie)?;
        env_parse(
            &env,
            "CAJA_HUB_UI_SESSION_TTL_MS",
            &mut cfg.ui_session_ttl_ms,
        )?;
        if let Some(t) = cfg.tax_authority.as_mut() {
            env_parse(&env, "CAJA_HUB_TAX_WORKERS", &mut t.workers)?;
        }
        // — NET limits —
        env_parse(&env, "CAJA_HUB_MAX_CONNECTIONS", &mut cfg.max_connections)?;
        env_parse(
            &env,
            "CAJA_HUB_MAX_CONNECTIONS_PER_IP",
            &mut cfg.max_connections_per_ip,
        )?;
        env_parse(
            &env,
            "CAJA_HUB_HEADER_TIMEOUT_MS",
            &mut cfg.header_timeout_ms,
        )?;
        env_parse(&env, "CAJA_HUB_BODY_TIMEOUT_MS", &mut cfg.body_timeout_ms)?;
        env_parse(
            &env,
            "CAJA_HUB_REQUEST_TIMEOUT_MS",
            &mut cfg.request_timeout_ms,
        )?;
        // — HUBCKPT —
        env_parse(
            &env,
            "CAJA_HUB_WAL_CHECKPOINT_PAGES",
            &mut cfg.wal_checkpoint_pages,
        )?;
        env_parse(&env, "CAJA_HUB_WAL_LIMIT_PAGES", &mut cfg.wal_limit_pages)?;
        env_parse(
            &env,
            "CAJA_HUB_WAL_CHECKPOINT_THREAD",
            &mut cfg.wal_checkpoint_thread,
        )?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The resource caps of these settings (the `— CAPS limits —` block).
    pub fn caps(&self) -> Caps {
        Caps {
            max_event_bytes: self.max_event_bytes,
            max_document_bytes: self.max_document_bytes,
            max_page_bytes: self.max_page_bytes,
            push_rate_limit: self.push_rate_limit,
            push_bytes_per_unit: self.push_bytes_per_unit,
            max_outstanding_fiscal: self.max_outstanding_fiscal,
            held_alert_threshold: self.held_alert_threshold,
            enroll_replay_window_ms: self.enroll_replay_window_ms,
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if self.admin_token.len() < 16 {
            return bad(
                "admin_token",
                "must be at least 16 characters (caja-hub init generates one)",
            );
        }
        if self.database.trim().is_empty() {
            return bad("database", "must be an SQLite file or a postgres:// URL");
        }
        if let crate::storage::Database::Postgres(url) =
            crate::storage::Database::parse(&self.database, Path::new(""))
        {
            // The TLS rules too: a server on another machine only over
            // verified TLS (`storage::pg_tls`); the message never holds the
            // password.
            if let Err(e) = crate::storage::pg_tls::target(&url) {
                return Err(ConfigError::Invalid {
                    field: "database",
                    message: e.0,
                });
            }
        }
        if self.body_limit_bytes < 1024 {
            return bad("body_limit_bytes", "must be at least 1024");
        }
        for (field, v) in [
            ("ingest_queue", self.ingest_queue),
            ("max_batch_jobs", self.max_batch_jobs),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("read_connections", self.read_connections),
            ("max_events_per_push", self.max_events_per_push),
            ("max_page", self.max_page),
        ] {
            if v == 0 {
                return bad(field, "must be at least 1");
            }
        }
        if self.key_grace_ms < 0 || self.token_ttl_ms <= 0 {
            return bad("key_grace_ms", "durations must be positive");
        }
        if self.escrow_quota_ttl_ms <= 0 {
            return bad("escrow_quota_ttl_ms", "must be positive");
        }
        if self.fiscal_block_ttl_ms <= 0 {
            return bad("fiscal_block_ttl_ms", "must be positive");
        }
        if self.rate_limit.burst == 0 {
            return bad("rate_limit.burst", "must be at least 1");
        }
        // — CAPS limits —
        for (field, v) in [
            ("max_event_bytes", self.max_event_bytes),
            ("max_document_bytes", self.max_document_bytes),
            ("max_page_bytes", self.max_page_bytes),
            ("push_bytes_per_unit", self.push_bytes_per_unit),
        ] {
            if v < 1024 {
                return bad(field, "must be at least 1024");
            }
        }
        if self.push_rate_limit.burst == 0 {
            return bad("push_rate_limit.burst", "must be at least 1");
        }
        if self.max_outstanding_fiscal == 0 {
            return bad("max_outstanding_fiscal", "must be at least 1");
        }
        if self.enroll_replay_window_ms < 0 {
            return bad("enroll_replay_window_ms", "must not be negative");
        }
        for (name, secret) in &self.payment_providers {
            if !crate::payments::valid_provider_name(name) {
                return bad(
                    "payment_providers",
                    "provider names are [a-z0-9_-], 1 to 32",
                );
            }
            if secret.len() < 16 {
                return bad(
                    "payment_providers",
                    "a provider's webhook secret must be at least 16 characters",
                );
            }
        }
        // — COUNTER —
        for (name, url) in &self.payment_provider_urls {
            if !self.payment_providers.contains_key(name) {
                return bad(
                    "payment_provider_urls",
                    "a provider's URL needs the provider in payment_providers",
                );
            }
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return bad("payment_provider_urls", "a URL is http:// or https://");
            }
        }
        if self.payment_confirm_deadline_ms <= 0 {
            return bad("payment_confirm_deadline_ms", "must be positive");
        }
        if self.payment_reconcile_interval_ms < 1000 {
            return bad("payment_reconcile_interval_ms", "must be at least 1000");
        }
        if self.register_silent_ms < 1000 {
            return bad("register_silent_ms", "must be at least 1000");
        }
        if self.ui_session_ttl_ms < 60_000 {
            return bad("ui_session_ttl_ms", "must be at least 60000");
        }
        if self.ui_login_limit.burst == 0 {
            return bad("ui_login_limit.burst", "must be at least 1");
        }
        if let Some(t) = &self.tax_authority {
            t.validate()?;
        }
        self.validate_net()?;
        // — HUBCKPT —
        if self.wal_checkpoint_pages == 0 {
            return bad("wal_checkpoint_pages", "must be at least 1");
        }
        if self.wal_limit_pages < self.wal_checkpoint_pages {
            return bad("wal_limit_pages", "must be at least wal_checkpoint_pages");
        }
        Ok(())
    }

    /// How the SQLite WAL is checkpointed (the `— HUBCKPT —` block).
    pub fn wal_policy(&self) -> crate::storage::WalPolicy {
        crate::storage::WalPolicy {
            checkpoint_pages: self.wal_checkpoint_pages,
            limit_pages: self.wal_limit_pages,
            thread: self.wal_checkpoint_thread,
        }
    }

    /// Checks the serve loop's limits and the TLS pair.
    fn validate_net(&self) -> Result<(), ConfigError> {
        let bad = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.max_connections_per_ip == 0 || self.max_connections_per_ip > self.max_connections {
            return bad(
                "max_connections_per_ip",
                "must be from 1 to max_connections",
            );
        }
        for (field, v) in [
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if v < 100 {
                return bad(field, "must be at least 100");
            }
        }
        if self.request_timeout_ms < self.body_timeout_ms {
            return bad(
                "request_timeout_ms",
                "must be at least body_timeout_ms (the body arrives within the request)",
            );
        }
        if self.max_buffered_body_bytes_per_ip < self.body_limit_bytes
            || self.max_buffered_body_bytes < self.max_buffered_body_bytes_per_ip
        {
            return bad(
                "max_buffered_body_bytes_per_ip",
                "must be from body_limit_bytes to max_buffered_body_bytes",
            );
        }
        if self.admin_guess_limit.burst == 0 {
            return bad("admin_guess_limit.burst", "must be at least 1");
        }
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(()),
            (Some(c), _) if c.trim().is_empty() => bad("tls_cert", "must name a PEM file"),
            (_, Some(k)) if k.trim().is_empty() => bad("tls_key", "must name a PEM file"),
            (Some(_), Some(_)) => Ok(()),
            (Some(_), None) => bad(
                "tls_key",
                "must be set with tls_cert (the certificate's private key, PEM)",
            ),
            (None, Some(_)) => bad(
                "tls_cert",
                "must be set with tls_key (the certificate chain, PEM)",
            ),
        }
    }

    /// The TLS certificate and key files, relative paths taken from
    /// `data_dir`; `None` when the hub serves plain HTTP.
    pub fn tls_files(&self, data_dir: &Path) -> Option<(PathBuf, PathBuf)> {
        let (c, k) = (self.tls_cert.as_ref()?, self.tls_key.as_ref()?);
        Some((data_dir.join(c), data_dir.join(k)))
    }

    /// The database, with a relative SQLite path taken from `data_dir`.
    pub fn database(&self, data_dir: &Path) -> crate::storage::Database {
        crate::storage::Database::parse(&self.database, data_dir)
    }

    /// The file text `caja-hub init` writes.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_validation() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HubConfig {
            admin_token: "a".repeat(32),
            ..HubConfig::default()
        };
        std::fs::write(dir.path().join(CONFIG_FILE), cfg.to_toml()).unwrap();
        let loaded = HubConfig::load(dir.path(), |_| None).unwrap();
        assert_eq!(loaded, cfg);
        let env = |k: &str| match k {
            "CAJA_HUB_LISTEN" => Some("127.0.0.1:0".to_owned()),
            "CAJA_HUB_RATE_LIMIT_BURST" => Some("3".to_owned()),
            _ => None,
        };
        let loaded = HubConfig::load(dir.path(), env).unwrap();
        assert_eq!(loaded.listen.port(), 0);
        assert_eq!(loaded.rate_limit.burst, 3);
        let with_providers = HubConfig {
            payment_providers: [("azul".to_owned(), "s".repeat(20))].into(),
            ..cfg.clone()
        };
        std::fs::write(dir.path().join(CONFIG_FILE), with_providers.to_toml()).unwrap();
        assert_eq!(
            HubConfig::load(dir.path(), |_| None).unwrap(),
            with_providers
        );
        assert!(!format!("{with_providers:?}").contains("ssss"));
        let from_env = HubConfig::load(dir.path(), |k| {
            (k == "CAJA_HUB_PAYMENT_PROVIDERS").then(|| "cardnet=0123456789abcdef0".into())
        })
        .unwrap();
        assert_eq!(
            from_env.payment_providers.keys().collect::<Vec<_>>(),
            ["cardnet"]
        );
        assert!(matches!(
            HubConfig::load(dir.path(), |k| {
                (k == "CAJA_HUB_PAYMENT_PROVIDERS").then(|| "cardnet=short".into())
            }),
            Err(ConfigError::Invalid {
                field: "payment_providers",
                ..
            })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), cfg.to_toml()).unwrap();
        let err = HubConfig::load(dir.path(), |k| {
            (k == "CAJA_HUB_INGEST_QUEUE").then(|| "x".into())
        });
        assert!(matches!(
            err,
            Err(ConfigError::Env {
                name: "CAJA_HUB_INGEST_QUEUE",
                ..
            })
        ));
        let with_tax = HubConfig {
            tax_authority: Some(TaxAuthorityConfig {
                rnc: "131880738".into(),
                legal_name: "Colmado SRL".into(),
                address: Some("Calle 1, Santo Domingo".into()),
                ..TaxAuthorityConfig::default()
            }),
            ..cfg.clone()
        };
        std::fs::write(dir.path().join(CONFIG_FILE), with_tax.to_toml()).unwrap();
        assert_eq!(HubConfig::load(dir.path(), |_| None).unwrap(), with_tax);
        let one = HubConfig::load(dir.path(), |k| {
            (k == "CAJA_HUB_TAX_WORKERS").then(|| "0".into())
        })
        .unwrap();
        assert_eq!(one.tax_authority.unwrap().workers, 0);
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            with_tax
                .to_toml()
                .replace("rnc = \"131880738\"", "rnc = \"12-3\""),
        )
        .unwrap();
        assert!(matches!(
            HubConfig::load(dir.path(), |_| None),
            Err(ConfigError::Invalid {
                field: "tax_authority.rnc",
                ..
            })
        ));
        // No issuer address: a configuration error, not a dropped element.
        let no_address = HubConfig {
            tax_authority: with_tax
                .tax_authority
                .clone()
                .map(|t| TaxAuthorityConfig { address: None, ..t }),
            ..with_tax.clone()
        };
        std::fs::write(dir.path().join(CONFIG_FILE), no_address.to_toml()).unwrap();
        assert!(matches!(
            HubConfig::load(dir.path(), |_| None),
            Err(ConfigError::Invalid {
                field: "tax_authority.address",
                ..
            })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), "colour = 1\n").unwrap();
        assert!(matches!(
            HubConfig::load(dir.path(), |_| None),
            Err(ConfigError::Parse { .. })
        ));
        assert!(!format!("{cfg:?}").contains("aaaa"));
    }

    #[test]
    fn dashboard_settings_from_the_environment_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HubConfig {
            admin_token: "a".repeat(32),
            ..HubConfig::default()
        };
        assert!(cfg.ui_secure_cookie, "Secure cookies unless turned off");
        std::fs::write(dir.path().join(CONFIG_FILE), cfg.to_toml()).unwrap();
        assert_eq!(HubConfig::load(dir.path(), |_| None).unwrap(), cfg);
        let loaded = HubConfig::load(dir.path(), |k| match k {
            "CAJA_HUB_UI_SECURE_COOKIE" => Some("false".into()),
            "CAJA_HUB_REGISTER_SILENT_MS" => Some("5000".into()),
            _ => None,
        })
        .unwrap();
        assert!(!loaded.ui_secure_cookie);
        assert_eq!(loaded.register_silent_ms, 5000);
        for (name, value, field) in [
            ("CAJA_HUB_UI_SECURE_COOKIE", "nope", None),
            (
                "CAJA_HUB_REGISTER_SILENT_MS",
                "10",
                Some("register_silent_ms"),
            ),
            ("CAJA_HUB_UI_SESSION_TTL_MS", "5", Some("ui_session_ttl_ms")),
        ] {
            let err = HubConfig::load(dir.path(), |k| (k == name).then(|| value.to_owned()));
            match (err, field) {
                (Err(ConfigError::Env { name: n, .. }), None) => assert_eq!(n, name),
                (Err(ConfigError::Invalid { field: f, .. }), Some(want)) => assert_eq!(f, want),
                (other, _) => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    // — COUNTER —
    #[test]
    fn provider_urls_name_a_configured_provider_and_are_http() {
        let dir = tempfile::tempdir().unwrap();
        let base = HubConfig {
            admin_token: "a".repeat(32),
            payment_providers: [("azul".to_owned(), "s".repeat(20))].into(),
            ..HubConfig::default()
        };
        std::fs::write(dir.path().join(CONFIG_FILE), base.to_toml()).unwrap();
        let load = |v: &str| {
            let v = v.to_owned();
            HubConfig::load(dir.path(), move |k| {
                (k == "CAJA_HUB_PAYMENT_PROVIDER_URLS").then(|| v.clone())
            })
        };
        let ok = load("azul=http://127.0.0.1:9000").unwrap();
        assert_eq!(
            ok.payment_provider_urls.get("azul").map(String::as_str),
            Some("http://127.0.0.1:9000")
        );
        std::fs::write(dir.path().join(CONFIG_FILE), ok.to_toml()).unwrap();
        assert_eq!(HubConfig::load(dir.path(), |_| None).unwrap(), ok);
        std::fs::write(dir.path().join(CONFIG_FILE), base.to_toml()).unwrap();
        for bad in ["cardnet=https://x", "azul=ftp://x"] {
            match load(bad) {
                Err(ConfigError::Invalid { field, .. }) => {
                    assert_eq!(field, "payment_provider_urls", "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(load("azul"), Err(ConfigError::Env { .. })));
    }
}
