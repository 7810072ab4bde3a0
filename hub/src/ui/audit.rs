//! `/ui/audit`: the audit log's latest signed tree head and the hub's public
//! key; "Verificar" exports the log (the same export `caja-hub audit export`
//! writes, into a temporary directory in the data directory) and verifies it
//! as an auditor would (`audit_export::verify`: every entry re-hashed, the
//! RFC 9162 root compared with the signed head, the Ed25519 signature
//! checked), then deletes it; "Firmar" signs a fresh head; "Descargar" streams
//! the export as a tar archive (`entries.jsonl`, `sth.json`, `hub_pubkey`,
//! `leaf_hashes.txt` under `caja-audit-<tree size>/`) in constant memory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use maud::html;

use crate::audit_export::{self, ENTRIES_FILE, LEAF_HASHES_FILE, PUBKEY_FILE, STH_FILE};
use crate::system::OsRandom;
use crate::ui::layout::{self, error, html_response, redirect, Nav};
use crate::ui::session::{self, Operator};
use crate::ui::state::{notice, UiState, HEAD_OFFICE_OFFSET};
use crate::ui::tar;
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// The files of an export, in archive order.
const FILES: [&str; 4] = [STH_FILE, PUBKEY_FILE, ENTRIES_FILE, LEAF_HASHES_FILE];
/// Bytes read per chunk of the download.
const CHUNK: usize = 64 * 1024;

/// A fresh, not yet existing directory in the data directory for one export.
fn scratch_dir(data_dir: &Path) -> PathBuf {
    let name = session::new_secret(&mut OsRandom::new());
    data_dir.join(format!("ui-audit-{}", &name[..16]))
}

fn remove(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "dashboard: could not remove an audit export");
        }
    }
}

/// `GET /ui/audit`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap, uri: Uri) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let sth = match ui.app.store.audit_latest_sth().await {
        Ok(s) => s,
        Err(e) => return ui.failure(Some(&op), e),
    };
    html_response(
        StatusCode::OK,
        audit_page(&ui, &op, sth.as_ref(), notice(uri.query()), None),
    )
}

fn audit_page(
    ui: &UiState,
    op: &Operator,
    sth: Option<&caja_shared::merkle::SignedTreeHead>,
    notice: Option<&str>,
    verdict: Option<maud::Markup>,
) -> maud::Markup {
    let content = html! {
        @if let Some(v) = verdict { (v) }
        section aria-labelledby="cabeza" {
            h2 id="cabeza" { (text::STH_TITLE) }
            @match sth {
                None => { p { (text::NO_STH) } }
                Some(s) => {
                    dl {
                        dt { (text::STH_SIZE) } dd id="sth-size" { (s.tree_size) }
                        dt { (text::STH_ROOT) } dd { code { (s.root) } }
                        dt { (text::STH_AT) } dd { (layout::when(s.at_ms, HEAD_OFFICE_OFFSET)) }
                        dt { (text::STH_KEY_ID) } dd { code { (s.key_id) } }
                        dt { (text::STH_SIGNATURE) } dd { code { (s.signature.to_hex()) } }
                    }
                }
            }
            p { (text::HUB_KEY) " " code { (ui.app.hub_key.public_key().to_hex()) } }
            p class="muted" { (text::HUB_KEY_NOTE) }
        }
        section aria-labelledby="acciones" {
            h2 id="acciones" { (text::AUDIT_ACTIONS) }
            form class="inline" method="post" action="/ui/audit/verify" {
                (layout::csrf(op))
                button type="submit" { (text::VERIFY_BUTTON) }
            }
            " "
            form class="inline" method="post" action="/ui/audit/sign" {
                (layout::csrf(op))
                button type="submit" class="secondary" { (text::SIGN_BUTTON) }
            }
            " "
            form class="inline" method="post" action="/ui/audit/export" {
                (layout::csrf(op))
                button type="submit" class="secondary" { (text::EXPORT_BUTTON) }
            }
            p class="muted" { (text::EXPORT_NOTE) }
        }
    };
    layout::page(op, Nav::Audit, text::AUDIT_TITLE, notice, content)
}

/// `POST /ui/audit/verify`.
pub(crate) async fn verify(
    State(ui): Ui,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, _) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let data_dir = ui.data_dir.clone();
    let now = ui.app.store.now_ms();
    let expected_key = ui.app.hub_key.public_key().to_hex();
    let outcome = tokio::task::spawn_blocking(move || {
        let dir = scratch_dir(&data_dir);
        let result = audit_export::export(&data_dir, &dir, now)
            .map_err(|e| e.to_string())
            .and_then(|_| audit_export::verify(&dir).map_err(|e| e.to_string()));
        remove(&dir);
        result
    })
    .await;
    let verdict = match outcome {
        Ok(Ok(report)) if report.public_key == expected_key => {
            tracing::info!(operator = %op.name, entries = report.entries, "dashboard: audit log verified");
            html! { p class="notice" role="status" id="verificacion" data-verified="true" {
                (text::verified(report.entries, &report.root.to_hex()))
            } }
        }
        Ok(Ok(_)) => {
            html! { p class="error" role="alert" id="verificacion" data-verified="false" { (text::VERIFY_WRONG_KEY) } }
        }
        Ok(Err(why)) => {
            tracing::error!(operator = %op.name, reason = %why, "dashboard: audit log does NOT verify");
            html! { p class="error" role="alert" id="verificacion" data-verified="false" { (text::verify_failed(&why)) } }
        }
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&op),
                text::STORAGE_FAILED,
            )
        }
    };
    let sth = match ui.app.store.audit_latest_sth().await {
        Ok(s) => s,
        Err(e) => return ui.failure(Some(&op), e),
    };
    html_response(
        StatusCode::OK,
        audit_page(&ui, &op, sth.as_ref(), None, Some(verdict)),
    )
}

/// `POST /ui/audit/sign`: a fresh signed tree head.
pub(crate) async fn sign(
    State(ui): Ui,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, _) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match ui
        .app
        .store
        .audit_sign_head(ui.app.hub_key.clone(), true)
        .await
    {
        Ok(sth) => {
            tracing::info!(operator = %op.name, tree_size = sth.tree_size, "dashboard: tree head signed");
            redirect("/ui/audit?ok=signed")
        }
        Err(e) => ui.failure(Some(&op), e),
    }
}

/// The chunks of a download, from the thread that reads the files.
struct Chunks(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Writes the archive of `dir`'s files to `tx`, then removes `dir`.
fn stream_archive(
    dir: &Path,
    prefix: &str,
    mtime_s: u64,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), std::io::Error> {
    let send = |b: Bytes| {
        tx.blocking_send(Ok(b))
            .map_err(|_| std::io::Error::other("the download was abandoned"))
    };
    for name in FILES {
        let path = dir.join(name);
        let mut file = std::fs::File::open(&path)?;
        let size = file.metadata()?.len();
        let header = tar::header(&format!("{prefix}/{name}"), size, mtime_s)
            .map_err(std::io::Error::other)?;
        send(Bytes::copy_from_slice(&header))?;
        let mut sent = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sent += n as u64;
            send(Bytes::copy_from_slice(&buf[..n]))?;
        }
        if sent != size {
            return Err(std::io::Error::other(format!("{name} changed while read")));
        }
        send(Bytes::from(vec![0u8; tar::padding(size)]))?;
    }
    send(Bytes::from_static(&tar::END))
}

fn archive_len(dir: &Path) -> Option<u64> {
    let mut total = tar::END.len() as u64;
    for name in FILES {
        let size = std::fs::metadata(dir.join(name)).ok()?.len();
        total += tar::BLOCK as u64 + size + tar::padding(size) as u64;
    }
    Some(total)
}

/// `POST /ui/audit/export`: the export as a tar archive.
pub(crate) async fn export(
    State(ui): Ui,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, _) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let data_dir = ui.data_dir.clone();
    let now = ui.app.store.now_ms();
    let made = tokio::task::spawn_blocking(move || {
        let dir = scratch_dir(&data_dir);
        match audit_export::export(&data_dir, &dir, now) {
            Ok(report) => Ok((dir, report)),
            Err(e) => {
                remove(&dir);
                Err(e.to_string())
            }
        }
    })
    .await;
    let (dir, report) = match made {
        Ok(Ok(x)) => x,
        Ok(Err(why)) => {
            tracing::error!(operator = %op.name, reason = %why, "dashboard: audit export failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&op),
                &text::export_failed(&why),
            );
        }
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&op),
                text::STORAGE_FAILED,
            )
        }
    };
    let Some(len) = archive_len(&dir) else {
        remove(&dir);
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&op),
            text::STORAGE_FAILED,
        );
    };
    tracing::info!(operator = %op.name, entries = report.entries, "dashboard: audit log exported");
    let prefix = format!("caja-audit-{}", report.sth.tree_size);
    let mtime_s = u64::try_from(now / 1000).unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let p = prefix.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = stream_archive(&dir, &p, mtime_s, &tx) {
            tracing::warn!(error = %e, "dashboard: audit export download interrupted");
            let _ = tx.blocking_send(Err(e));
        }
        remove(&dir);
    });
    let mut r = Response::new(Body::from_stream(Chunks(rx)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{prefix}.tar\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
