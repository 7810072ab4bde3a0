//! `outbox`: fiscal documents per second through the hub's tax-authority
//! outbox against the DGII emulator, beside the emulator alone, in the same
//! run.
//!
//! Baseline: the same number of consumer-invoice summaries (RFCE), built in
//! memory, submitted straight through the DGII gateway (`DgiiGateway::submit`,
//! HTTP to the emulator on loopback, one token) by `workers` concurrent tasks:
//! what the emulator and the HTTP client cost.
//!
//! Feature: a real hub (in process) holding `documents` e-CF sales pushed by a
//! register with their signed documents beside them, and an outbox worker
//! pool of `workers` on its database: every document claimed with a lease,
//! its register-signed bytes checked (signature, issuer, number) before the
//! first submission, submitted unchanged, and its verdict recorded with its
//! hub event, audit entry and lease release — each step a durable SQLite
//! transaction (`synchronous=FULL`). Timed from the pool's start to an empty
//! backlog. No goal is set for it (README's goal table does not list it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caja_hub::admin_client::{install_crypto_provider, AdminClient};
use caja_hub::config::HubConfig;
use caja_hub::dgii_emulator::{Emulator, Faults};
use caja_hub::outbox::{Claimed, DocState, RetryPolicy};
use caja_hub::outbox_worker::{PoolConfig, WorkerPool};
use caja_hub::ratelimit::RateLimit;
use caja_hub::storage::{Storage, StorageConfig};
use caja_hub::system::{OsRandom, SystemClock};
use caja_hub::taxgw::dgii::DgiiConfig;
use caja_hub::taxgw::dgii_http::DgiiGateway;
use caja_hub::taxgw::{DocumentSource, SourceBody, Submitted, TaxGateway};
use caja_hub::workload::Register;
use caja_shared::checkpoint::Checkpoint;
use caja_shared::clock::Clock;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{SaleId, StoreId};
use caja_shared::kind::{
    EventBody, FiscalDocType, FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine,
};
use caja_shared::localtime::UtcOffset;
use caja_shared::money::{line_tax, Money, QtyMilli, TaxRateBp};
use caja_shared::request::SignedHeaders;
use serde_json::json;

const TOKEN: &str = "bench-admin-token-0123456789abcdef";
const RNC: &str = "131880738";

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Documents on each side.
    pub documents: u64,
    /// Baseline rate.
    pub gateway_per_s: u64,
    /// Outbox rate.
    pub outbox_per_s: u64,
}

fn rate(n: u64, d: Duration) -> u64 {
    u64::try_from(u128::from(n) * 1_000_000 / d.as_micros().max(1)).unwrap_or(u64::MAX)
}

fn sale(number: String, seed: u64) -> SaleCreated {
    let total = Money(9_500);
    let tax =
        line_tax(total, TaxRateBp::new(1800).unwrap_or(TaxRateBp::ZERO)).unwrap_or(Money::ZERO);
    SaleCreated {
        sale_id: SaleId::new_v7(SystemClock.now_ms(), &mut SeededRandom::new(seed))
            .unwrap_or_else(|e| unreachable!("{e}")),
        cashier: "ana".into(),
        shift_id: None,
        customer: None,
        fiscal: Some(FiscalRef {
            series: "E32".into(),
            number,
            valid_until: Some("2099-12-31".into()),
            buyer_tax_id: None,
            buyer_name: None,
            modifies: None,
        }),
        lines: vec![SaleLine {
            product: "soda-2l".parse().unwrap_or_else(|e| unreachable!("{e:?}")),
            name: "Refresco 2 L".into(),
            qty_milli: QtyMilli(1000),
            unit_price: total,
            tax_bp: TaxRateBp::new(1800).unwrap_or(TaxRateBp::ZERO),
            discount: None,
            total,
            tax,
            beyond_quota_milli: None,
            price_override: None,
        }],
        total,
        tax,
        payments: vec![Payment {
            method: PaymentMethod::Cash,
            amount: total,
            reference: None,
        }],
        change: Money(0),
        approval: None,
    }
}

fn gateway(emu: &Emulator) -> anyhow::Result<Arc<DgiiGateway>> {
    Ok(Arc::new(
        DgiiGateway::new(
            DgiiConfig {
                ecf_base_url: emu.ecf_base_url(),
                fc_base_url: emu.fc_base_url(),
                rnc: RNC.into(),
                legal_name: "Colmado SRL".into(),
                address: Some("Calle 1, Santo Domingo".into()),
            },
            10_000,
            Arc::new(SystemClock),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    ))
}

/// Runs both sides with `documents` each and `workers` concurrent workers.
pub fn run(documents: u64, workers: usize) -> anyhow::Result<Summary> {
    install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let s = rt.block_on(measure(documents, workers.max(1)))?;
    println!("outbox: {documents} consumer-invoice summaries (RFCE) to the DGII emulator, {workers} workers");
    println!(
        "  bare gateway (build in memory, HTTP submit):                        {:>6} documents/s",
        s.gateway_per_s
    );
    println!(
        "  outbox workers (claim, check signature, submit, verdict + hub event):  {:>6} documents/s",
        s.outbox_per_s
    );
    let milli = s.outbox_per_s * 1000 / s.gateway_per_s.max(1);
    println!(
        "  ratio outbox/gateway: {}.{:03}x",
        milli / 1000,
        milli % 1000
    );
    Ok(s)
}

/// A self-signed RSA-2048 certificate and its key, made with the `openssl`
/// command line in `dir`, as a signer.
fn throwaway_signer(dir: &std::path::Path) -> anyhow::Result<caja_shared::ecf::xmldsig::Signer> {
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let st = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .context("openssl (needed to sign the benchmark's documents)")?;
        anyhow::ensure!(st.success(), "openssl {args:?} failed");
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-subj",
        "/CN=caja-bench",
        "-days",
        "2",
    ])?;
    run(&[
        "pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in", "key.pem", "-out", "key.der",
    ])?;
    run(&[
        "x509", "-outform", "DER", "-in", "cert.pem", "-out", "cert.der",
    ])?;
    caja_shared::ecf::xmldsig::Signer::new(
        &std::fs::read(dir.join("key.der"))?,
        std::fs::read(dir.join("cert.der"))?,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn measure(documents: u64, workers: usize) -> anyhow::Result<Summary> {
    let emu = Emulator::start("127.0.0.1:0".parse()?, RNC, Faults::default(), 1).await?;

    // Baseline: numbers above the block the register gets.
    let gw = gateway(&emu)?;
    let store: StoreId = "01935f4e-8a00-7000-8000-000000000001".parse()?;
    let device = "01935f4e-8a00-7000-8000-0000000000b1".parse()?;
    let mut docs = Vec::new();
    for i in 0..documents {
        let n = 500_000 + i;
        let number = format!("E32{n:010}");
        let src = DocumentSource {
            doc_key: number.clone(),
            doc_type: FiscalDocType::Invoice,
            series: "E32".into(),
            body: SourceBody::Sale(sale(number.clone(), n)),
            issued_ms: SystemClock.now_ms(),
            offset: UtcOffset::SANTO_DOMINGO,
            modified_issued_ms: None,
            built_ms: SystemClock.now_ms(),
            modified: None,
        };
        let prepared = gw.build(&src).map_err(|e| anyhow::anyhow!("{e}"))?;
        docs.push(Claimed {
            doc_id: i64::try_from(i)?,
            doc_key: number,
            doc_type: FiscalDocType::Invoice,
            series: "E32".into(),
            store,
            device,
            event_id: None,
            range: None,
            created_ms: 0,
            state: DocState::Pending,
            prepared: Some(prepared),
            track_id: None,
            in_doubt: true,
            attempts: 0,
            corrections: 0,
        });
    }
    let docs = Arc::new(docs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (gw, docs, next) = (gw.clone(), docs.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(d) = docs.get(i) else {
                        return Ok::<(), anyhow::Error>(());
                    };
                    match gw.submit(d).await {
                        Ok(Submitted::Decided(_)) => {}
                        other => bail!("baseline submission of {}: {other:?}", d.doc_key),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let gateway_time = started.elapsed();

    // Feature: a hub with the sales, and a worker pool on its database.
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("hub");
    let cfg = HubConfig {
        listen: "127.0.0.1:0".parse()?,
        admin_token: TOKEN.into(),
        rate_limit: RateLimit {
            burst: 100_000,
            per_minute: 1_000_000,
        },
        ..HubConfig::default()
    };
    caja_hub::datadir::init(&dir, cfg.clone(), &mut OsRandom::new(), &SystemClock)?;
    let hub = caja_hub::server::start(&dir, cfg.clone()).await?;
    let url = hub.url();
    let admin = AdminClient::new(&url, TOKEN)?;
    let v = admin.create_store("bench", None).await?;
    let store: StoreId = v["store"].as_str().context("store")?.parse()?;
    admin
        .call(
            reqwest::Method::POST,
            "/v1/admin/fiscal/series",
            Some(&json!({"prefix":"E32","digits":10,"first":1,"last":400_000,"valid_until":"2099-12-31"})),
        )
        .await?;
    let t = admin.create_token(&store.to_string(), "caja", None).await?;
    let http = reqwest::Client::new();
    let e: serde_json::Value = http
        .post(format!("{url}/v1/devices/enroll"))
        .json(&json!({ "token": t["token"] }))
        .send()
        .await?
        .json()
        .await?;
    let mut reg = Register::new(
        e["device"].as_str().context("device")?.parse()?,
        caja_shared::key::DeviceKey::from_hex(e["key"].as_str().context("key")?)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        e["key_id"].as_str().context("key id")?.parse()?,
    );
    let signed = |reg: &Register, method: &str, path: &str, body: &[u8]| {
        SignedHeaders::sign(
            &reg.key,
            reg.device,
            reg.key_id.clone(),
            method,
            path,
            body,
            SystemClock.now_ms(),
            &mut OsRandom::new(),
        )
    };
    let body = serde_json::to_vec(&json!({
        "request_id": "019aaf70-0000-7000-8000-000000000001", "series": "E32", "count": documents
    }))?;
    let mut req = http
        .post(format!("{url}/v1/fiscal/ranges"))
        .body(body.clone());
    for (k, v) in signed(&reg, "POST", "/v1/fiscal/ranges", &body).pairs() {
        req = req.header(k, v);
    }
    let grant: serde_json::Value = req.send().await?.json().await?;
    let g = Event::from_json(grant["events"][0].to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let EventBody::FiscalRangeGranted(g) = g.body().map_err(|e| anyhow::anyhow!("{e}"))? else {
        bail!("no grant: {grant}");
    };
    // Each sale with its signed documents beside it, as a register pushes
    // them, signed with a throwaway certificate.
    let signer = throwaway_signer(tmp.path())?;
    let issuer = caja_shared::ecf::issuer::Issuer::new(
        RNC,
        "Colmado & Hijos SRL",
        "Calle 1, Santo Domingo",
        None,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut batches: Vec<(Vec<Event>, Vec<caja_shared::push::PushDocument>)> = Vec::new();
    let numbers: Vec<u64> = (g.first..=g.last).collect();
    for part in numbers.chunks(250) {
        let mut events = Vec::new();
        let mut docs = Vec::new();
        for n in part {
            let s = sale(format!("E32{n:010}"), *n);
            let (issued, signed) = caja_hub::workload::signed_sale_documents(
                &s,
                &issuer,
                &signer,
                SystemClock.now_ms(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let e = reg.append(
                store,
                EventBody::SaleCreated(s),
                vec![],
                SystemClock.now_ms(),
                &mut OsRandom::new(),
            );
            let i = reg.append(
                store,
                EventBody::FiscalDocumentIssued(issued),
                vec![e.id()],
                SystemClock.now_ms(),
                &mut OsRandom::new(),
            );
            events.extend([e, i]);
            docs.extend(signed);
        }
        docs.sort_by_key(|d| d.sha256);
        batches.push((events, docs));
    }
    for (chunk, docs) in &batches {
        let last = chunk.last().context("empty chunk")?;
        let cp = Checkpoint::sign(
            &reg.key,
            reg.key_id.clone(),
            reg.device,
            last.seq(),
            last.hash(),
        );
        let body = caja_shared::push::push_body(reg.device, chunk, docs, &cp, 0)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut req = http.post(format!("{url}/v1/sync/push")).body(body.clone());
        for (k, v) in signed(&reg, "POST", "/v1/sync/push", &body).pairs() {
            req = req.header(k, v);
        }
        let r = req.send().await?;
        if !r.status().is_success() {
            bail!("push refused: {}", r.text().await?);
        }
    }
    let store = Storage::open(
        StorageConfig {
            database: cfg.database(&dir),
            queue_capacity: 1024,
            max_batch_jobs: 64,
            read_connections: 4,
            key_grace_ms: 0,
            rate_limit: cfg.rate_limit,
            caps: cfg.caps(),
        },
        Arc::new(SystemClock),
        Box::new(OsRandom::new()),
    )?;
    let queued = store.outbox_health().await?.backlog;
    if queued != documents {
        bail!("{queued} documents queued, {documents} expected");
    }
    let started = Instant::now();
    let pool = WorkerPool::spawn(
        store.clone(),
        gateway(&emu)?,
        PoolConfig {
            workers,
            lease_ms: 60_000,
            idle_poll_ms: 5,
            policy: RetryPolicy {
                base_ms: 20,
                cap_ms: 200,
                poll_ms: 20,
            },
            name: "bench".into(),
        },
        None,
    );
    loop {
        let h = store.outbox_health().await?;
        if h.backlog == 0 {
            if h.by_state.get("accepted").copied() != Some(documents) {
                bail!("not all accepted: {:?}", h.by_state);
            }
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("outbox not drained: {h:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let outbox_time = started.elapsed();
    pool.stop().await;
    let t = emu.totals();
    let received: u64 = t.per_number.values().map(|c| u64::from(c.received)).sum();
    if received != 2 * documents || t.per_number.values().any(|c| c.received != 1) {
        bail!(
            "the emulator received {received} documents, {} expected once each",
            2 * documents
        );
    }
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    hub.stop().await?;
    emu.stop().await;
    Ok(Summary {
        documents,
        gateway_per_s: rate(documents, gateway_time),
        outbox_per_s: rate(documents, outbox_time),
    })
}

#[cfg(test)]
mod tests {
    /// A short run under `cargo test` (debug build): both sides finish and
    /// every document reaches the emulator once.
    #[test]
    fn a_short_run_submits_every_document_once() {
        let s = super::run(60, 4).expect("runs");
        assert_eq!(s.documents, 60);
        assert!(s.gateway_per_s > 0 && s.outbox_per_s > 0, "{s:?}");
    }
}
