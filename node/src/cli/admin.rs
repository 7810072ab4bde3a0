//! The commands that manage the register as a whole: version, init, status,
//! the scale, verify, export, backup and restore, rebuild, the sample
//! catalog, enrollment, sync, the long-running node and its screen, and hub
//! pages — one function each.
//!
//! Invariant: no sale-level rule here; storage is reached through the
//! library (`datadir`, `journal`, `register`, `sync`).

use std::io::IsTerminal;

use caja_node::datadir::{DataDir, InitParams};
use caja_node::devices;
use caja_node::error::OpError;
use caja_node::journal::Journal;
use caja_node::keyfile;
use caja_node::messages;
use caja_node::system::SystemClock;
use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::clock::Clock;
use caja_shared::event::Event;
use caja_shared::ids::{DeviceId, StoreId};
use caja_shared::key::HubPublicKey;

use super::args::{
    BackupArgs, EnrollArgs, ExportArgs, HubImportArgs, InitArgs, RestoreArgs, SampleCatalogArgs,
    ScaleVirtualArgs, UiArgs,
};
use super::common::{
    device_failure, emit, hub_url, open, os_random, print_report, refused, scale_settings,
    sync_engine, sync_failure, Ctx, Failure, EXIT_REFUSED, EXIT_STORAGE,
};

/// `caja-node version`.
pub(crate) fn version(cx: &Ctx) -> Result<(), Failure> {
    let json = cx.json;
    emit(json, &caja_node::version_text(), Clone::clone)
}

/// `caja-node init`.
pub(crate) fn init(cx: &Ctx, args: InitArgs) -> Result<(), Failure> {
    let InitArgs {
        store,
        device,
        hub_key,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let hub_public_key = hub_key
        .map(|h| HubPublicKey::from_hex(&h))
        .transpose()
        .map_err(|e| {
            refused(format!(
                "Llave pública de la oficina central inválida: {e}."
            ))
        })?;
    let rec = caja_node::datadir::init(
        dir,
        &InitParams {
            store,
            device,
            hub_public_key,
        },
        &SystemClock,
        &mut os_random()?,
    )?;
    let v = serde_json::json!({"store": rec.store, "device": rec.device, "data_dir": dir.root()});
    emit(json, &v, |_| {
        format!(
            "Caja inicializada: tienda {}, caja {}, datos en {}.",
            rec.store,
            rec.device,
            dir.root().display()
        )
    })
}

/// `caja-node status`.
pub(crate) fn status(cx: &Ctx) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    let node = open(dir)?;
    let s = node.status()?;
    let scale = scale_settings(&node)?.map(|sc| devices::scale_report(&sc));
    let printer = node
        .printer_settings()?
        .map(|p| devices::printer_report(&p));
    let cert = caja_node::fiscal::certificate::summary(dir, SystemClock.now_ms());
    if json {
        let mut v = serde_json::to_value(&s).map_err(|e| refused(e.to_string()))?;
        v["scale_reading"] = serde_json::to_value(&scale).map_err(|e| refused(e.to_string()))?;
        v["printer_state"] = serde_json::to_value(&printer).map_err(|e| refused(e.to_string()))?;
        v["certificate"] = match &cert {
            Ok(c) => serde_json::to_value(c).map_err(|e| refused(e.to_string()))?,
            Err(e) => {
                serde_json::json!({"present": true, "status": "unreadable", "error": e.to_string()})
            }
        };
        emit(json, &v, |_| String::new())
    } else {
        let cert_line = match &cert {
            Ok(c) => messages::certificate::state(c),
            Err(e) => messages::certificate::unreadable(&messages::certificate::store_error(e)),
        };
        let printer_line = printer
            .as_ref()
            .map(|p| format!("\n{}", messages::printer_state(p)))
            .unwrap_or_default();
        emit(json, &s, |s| match &scale {
            Some(r) => format!(
                "{}{printer_line}\n{cert_line}\n{}",
                messages::status(s),
                messages::scale_report(r)
            ),
            None => format!("{}{printer_line}\n{cert_line}", messages::status(s)),
        })
    }
}

/// `caja-node scale read`.
pub(crate) fn scale_read(cx: &Ctx) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    let node = open(dir)?;
    let scale =
        scale_settings(&node)?.ok_or_else(|| device_failure(&devices::DeviceError::NoScale))?;
    let r = devices::scale_report(&scale);
    if r.sellable {
        emit(json, &r, messages::scale_report)
    } else {
        // Not a weight that may be sold: said once, as the refusal.
        Err(Failure {
            code: EXIT_REFUSED,
            error: "scale",
            message: messages::scale_report(&r),
        })
    }
}

/// `caja-node scale virtual`.
pub(crate) fn scale_virtual(cx: &Ctx, args: ScaleVirtualArgs) -> Result<(), Failure> {
    let ScaleVirtualArgs {
        protocol,
        weight_file,
        link,
    } = args;
    let json = cx.json;
    virtual_scale(&protocol, &weight_file, link.as_deref(), json)
}

/// `caja-node verify`.
pub(crate) fn verify(cx: &Ctx) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    verify_journal(dir, json)
}

/// `caja-node export`.
pub(crate) fn export(cx: &Ctx, args: ExportArgs) -> Result<(), Failure> {
    let ExportArgs { out } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let db = caja_node::db::Db::open(dir.db_path()).map_err(OpError::from)?;
    let n = match out {
        Some(path) => {
            let f = std::fs::File::create(&path)
                .map_err(|e| refused(format!("No se pudo crear {}: {e}.", path.display())))?;
            Journal::export_jsonl(db.conn(), std::io::BufWriter::new(f)).map_err(OpError::from)?
        }
        None => {
            Journal::export_jsonl(db.conn(), std::io::stdout().lock()).map_err(OpError::from)?
        }
    };
    if json {
        Ok(())
    } else {
        eprintln!("{n} eventos exportados.");
        Ok(())
    }
}

/// `caja-node backup`.
pub(crate) fn backup(cx: &Ctx, args: BackupArgs) -> Result<(), Failure> {
    let BackupArgs { out } = args;
    let dir = &cx.dir;
    let json = cx.json;
    // A directory (a second disk, a USB path a timer writes to): a new file
    // in it named by the time.
    let out = if out.is_dir() {
        out.join(format!("caja-node-{}.db", SystemClock.now_ms()))
    } else {
        out
    };
    let seq = caja_node::datadir::backup(dir, &out)?;
    let v = serde_json::json!({"backup": out, "head_seq": seq});
    emit(json, &v, |_| {
        format!(
            "Respaldo creado en {} (hasta el evento #{seq}).",
            out.display()
        )
    })
}

/// `caja-node restore`.
pub(crate) fn restore(cx: &Ctx, args: RestoreArgs) -> Result<(), Failure> {
    let RestoreArgs { from } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let seq = caja_node::datadir::restore(dir, &from, SystemClock.now_ms())?;
    // On new hardware the key file is not there: head office gives a new
    // key (`caja-node rekey`) before the register opens.
    if !dir.key_path().exists() {
        let v = serde_json::json!({"restored_from": from, "head_seq": seq, "needs_key": true});
        return emit(json, &v, |_| messages::restored_needs_key(seq));
    }
    open(dir)?;
    let v = serde_json::json!({"restored_from": from, "head_seq": seq});
    emit(json, &v, |_| {
        format!(
                    "Respaldo restaurado (hasta el evento #{seq}). Sincronice con la oficina central antes de emitir comprobantes fiscales."
                )
    })
}

/// `caja-node rebuild`.
pub(crate) fn rebuild(cx: &Ctx) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    let (before, after) = open(dir)?.rebuild()?;
    let v = serde_json::json!({"before": before, "after": after, "equal": before == after});
    emit(json, &v, |_| {
        if before == after {
            format!(
                "Proyecciones reconstruidas: idénticas ({}).",
                &after.to_hex()[..12]
            )
        } else {
            format!(
                "Proyecciones reconstruidas: diferían ({} → {}).",
                &before.to_hex()[..12],
                &after.to_hex()[..12]
            )
        }
    })
}

/// `caja-node sample-catalog`.
pub(crate) fn sample_catalog(cx: &Ctx, args: SampleCatalogArgs) -> Result<(), Failure> {
    let SampleCatalogArgs { store, out } = args;
    let json = cx.json;
    write_sample_catalog(store, &out, json)
}

/// `caja-node enroll`.
pub(crate) fn enroll(cx: &Ctx, args: EnrollArgs) -> Result<(), Failure> {
    let EnrollArgs {
        hub,
        token,
        hub_ca,
        hub_cert_sha256,
    } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let given = match (hub_ca, hub_cert_sha256) {
        (Some(ca), _) => {
            let ca = std::path::absolute(&ca).unwrap_or(ca);
            Some(("hub_ca", ca.display().to_string()))
        }
        (None, Some(pin)) => Some(("hub_cert_sha256", pin)),
        (None, None) => None,
    };
    enroll_with(dir, &hub, &token, given, json)
}

/// `caja-node sync`.
pub(crate) fn sync(cx: &Ctx) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    let mut engine = sync_engine(dir)?;
    let (r, _) = engine.tick();
    let r = r.map_err(sync_failure)?;
    let v = serde_json::json!({
        "recovered": r.recovered, "pushed": r.pushed, "duplicates": r.duplicates,
        "held": r.held, "hub_events": r.hub_events, "peer_events": r.peer_events,
        "skew_ms": engine.skew_ms(),
    });
    emit(json, &v, |_| {
        format!(
                    "Sincronizado: {} eventos enviados ({} ya estaban), {} de la oficina central, {} de otras cajas{}.",
                    r.pushed,
                    r.duplicates,
                    r.hub_events,
                    r.peer_events,
                    if r.recovered > 0 { format!(", {} propios recuperados", r.recovered) } else { String::new() }
                )
    })
}

/// `caja-node run`.
pub(crate) fn run(cx: &Ctx) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    run_node(dir, json, None, false)
}

/// `caja-node ui`.
pub(crate) fn ui(cx: &Ctx, args: UiArgs) -> Result<(), Failure> {
    let UiArgs { listen } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let cfg = caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
        .map_err(|e| Failure::from(OpError::from(e)))?;
    let text = listen
        .or(cfg.ui_listen)
        .unwrap_or_else(|| caja_node::config::DEFAULT_UI_LISTEN.to_owned());
    let addr =
        caja_node::config::parse_ui_listen(&text).map_err(|e| Failure::from(OpError::from(e)))?;
    run_node(dir, json, Some(addr), true)
}

/// `caja-node hub import`.
pub(crate) fn hub_import(cx: &Ctx, args: HubImportArgs) -> Result<(), Failure> {
    let HubImportArgs { file } = args;
    let dir = &cx.dir;
    let json = cx.json;
    let text = std::fs::read(&file)
        .map_err(|e| refused(format!("No se pudo leer {}: {e}.", file.display())))?;
    let page: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| refused(format!("Página inválida: {e}.")))?;
    let events = page["events"]
        .as_array()
        .ok_or_else(|| refused("La página no tiene «events»."))?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            caja_shared::canonical::Value::from_serde(e.clone())
                .map_err(|err| refused(format!("events[{i}]: {err}")))
                .and_then(|v| {
                    Event::from_value(v).map_err(|err| refused(format!("events[{i}].{err}")))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cp: HubCheckpoint = serde_json::from_value(page["hub_checkpoint"].clone())
        .map_err(|e| refused(format!("hub_checkpoint inválido: {e}.")))?;
    let n = open(dir)?.import_hub_events(&events, &cp)?;
    let v = serde_json::json!({"imported": n});
    emit(json, &v, |_| {
        format!("{n} eventos de la oficina central importados.")
    })
}

/// `caja-node hub trust-log`.
pub(crate) fn hub_trust_log(cx: &Ctx) -> Result<(), Failure> {
    let dir = &cx.dir;
    let json = cx.json;
    let node = open(dir)?;
    caja_node::sync::engine::reset_hub_trust(node.conn()).map_err(|e| Failure {
        code: EXIT_STORAGE,
        error: "storage",
        message: format!("No se pudo guardar: {e}."),
    })?;
    let v = serde_json::json!({"hub_log": "unverified"});
    emit(json, &v, |_| {
        "Registro de auditoría de la oficina central: se verificará de nuevo desde la próxima sincronización.".into()
    })
}

/// The long-running node: the sync engine (unless `hub_optional` and no hub
/// is configured), the printer thread, and the cashier's screen on `ui` (or
/// on `ui_listen` of config.toml), until the process is stopped.
pub(crate) fn run_node(
    dir: &DataDir,
    json: bool,
    ui: Option<std::net::SocketAddr>,
    hub_optional: bool,
) -> Result<(), Failure> {
    let cfg = caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
        .map_err(|e| Failure::from(OpError::from(e)))?;
    let ui = match ui {
        Some(a) => Some(a),
        None => cfg
            .ui_address()
            .map_err(|e| Failure::from(OpError::from(e)))?,
    };
    let mut engine = if cfg.hub_url.is_none() && hub_optional {
        None
    } else {
        let engine = sync_engine(dir)?;
        eprintln!(
            "Caja en marcha: sincronizando con {} (Ctrl-C para detener).",
            hub_url(dir)?
        );
        Some(engine)
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Receipts print on their own thread and database connection: a
    // slow or absent printer never holds up sync, nor sales.
    let mut printing = open(dir)?;
    let mut ui_failed = None;
    std::thread::scope(|scope| {
        let stop_ref: &std::sync::atomic::AtomicBool = &stop;
        scope.spawn(|| {
            devices::print_loop(&mut printing, stop_ref, devices::PRINT_POLL, |r| {
                print_report(r, json);
            });
        });
        let screen = ui.map(|addr| {
            let stop = stop.clone();
            scope.spawn(move || {
                let r = caja_node::ui::serve(dir, addr, stop.clone(), |bound| {
                    eprintln!("{}", messages::ui_serving(&bound.to_string()));
                    // systemd `Type=notify` (packaging/): ready once the screen serves.
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                });
                // The screen could not be served: the node stops with it.
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                r
            })
        });
        if screen.is_none() {
            // No screen: ready once the sync and print threads run.
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        }
        match engine.as_mut() {
            Some(engine) => engine.run(stop_ref, |r| match r {
                Ok(r) if r.pushed + r.hub_events + r.peer_events + r.recovered > 0 => {
                    let v = serde_json::json!({"pushed": r.pushed, "hub_events": r.hub_events, "peer_events": r.peer_events, "recovered": r.recovered});
                    let _ = emit(json, &v, |_| format!(
                        "Sincronizado: {} enviados, {} de la oficina central, {} de otras cajas.",
                        r.pushed, r.hub_events, r.peer_events
                    ));
                }
                Ok(_) => {}
                Err(e) => match messages::hub::trust_failure(e) {
                    Some(sentence) => eprintln!("{sentence}"),
                    None => eprintln!("Sin conexión con la oficina central: {e}"),
                },
            }),
            None => {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        if let Some(h) = screen {
            if let Ok(Err(e)) = h.join() {
                ui_failed = Some(e);
            }
        }
    });
    match ui_failed {
        Some(e) => Err(Failure {
            code: 1,
            error: "failed",
            message: messages::ui_failed(&e.to_string()),
        }),
        None => Ok(()),
    }
}

/// Enrolls over the trust given on the command line (`key`, `value` of
/// config.toml) or, without one, the trust config.toml already names; the
/// given one is written to config.toml for sync.
fn enroll_with(
    dir: &DataDir,
    hub: &str,
    token: &str,
    given: Option<(&'static str, String)>,
    json: bool,
) -> Result<(), Failure> {
    let mut cfg = caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
        .map_err(|e| Failure::from(OpError::from(e)))?;
    if let Some((key, value)) = &given {
        if cfg.hub_ca.is_some() || cfg.hub_cert_sha256.is_some() {
            return Err(Failure::from(OpError::from(
                caja_node::config::ConfigError::Invalid {
                    key,
                    message: "config.toml already sets hub_ca or hub_cert_sha256: remove it or drop the option".into(),
                },
            )));
        }
        match *key {
            "hub_ca" => cfg.hub_ca = Some(value.clone()),
            _ => cfg.hub_cert_sha256 = Some(value.clone()),
        }
    }
    let trust = cfg
        .hub_trust(dir.root())
        .map_err(|e| Failure::from(OpError::from(e)))?;
    let client = caja_node::sync::client::HubClient::with_trust(
        hub,
        caja_node::sync::client::DEFAULT_TIMEOUT_MS,
        true,
        &trust,
    )
    .map_err(|e| sync_failure(e.into()))?;
    let e = client.enroll(token).map_err(|e| sync_failure(e.into()))?;
    let rec = caja_node::datadir::adopt_enrollment(
        dir,
        &caja_node::datadir::Adopted {
            store: e.store,
            device: e.device,
            key_id: e.key_id.clone(),
            key: e.key.clone(),
            hub_public_key: e.hub_key,
            hub_url: hub.to_owned(),
        },
        SystemClock.now_ms(),
    )?;
    if let Some((key, value)) = &given {
        caja_node::config::record_setting(dir.root(), key, value)
            .map_err(|e| Failure::from(OpError::from(e)))?;
    }
    let v = serde_json::json!({"store": rec.store, "device": rec.device, "hub": hub});
    emit(json, &v, |_| {
        format!(
            "Caja inscrita en la oficina central {hub}: tienda {}, caja {}.",
            rec.store, rec.device
        )
    })
}

fn write_sample_catalog(store: StoreId, out: &std::path::Path, json: bool) -> Result<(), Failure> {
    let mut rng = os_random()?;
    let key = caja_shared::key::HubSigningKey::generate(&mut rng);
    let chain =
        DeviceId::new_v7(SystemClock.now_ms(), &mut rng).map_err(|e| refused(e.to_string()))?;
    let key_id = "sample-hub".parse().map_err(|_| refused("key id"))?;
    let (events, cp) = caja_node::testkit::hub_chain_page(
        &key,
        &key_id,
        store,
        chain,
        1,
        caja_shared::digest::Hash256::ZERO,
        SystemClock.now_ms(),
        caja_node::testkit::sample_catalog_bodies(),
        &mut rng,
    )
    .map_err(|e| refused(e.to_string()))?;
    let cp = cp.ok_or_else(|| refused("empty catalog"))?;
    let page = caja_node::testkit::page_json(&events, &cp);
    let bytes = serde_json::to_vec_pretty(&page).map_err(|e| refused(e.to_string()))?;
    std::fs::write(out, bytes)
        .map_err(|e| refused(format!("No se pudo escribir {}: {e}.", out.display())))?;
    let public = key.public_key().to_hex();
    let v = serde_json::json!({"page": out, "hub_key": public, "events": events.len()});
    emit(json, &v, |_| {
        format!(
            "Catálogo de ejemplo ({} eventos) escrito en {}.\nLlave pública de la oficina central de ejemplo (para `init --hub-key`):\n{public}",
            events.len(),
            out.display()
        )
    })
}

/// `caja-node scale virtual`: serves a simulated scale until killed.
pub(crate) fn virtual_scale(
    protocol: &str,
    weight_file: &std::path::Path,
    link: Option<&std::path::Path>,
    json: bool,
) -> Result<(), Failure> {
    let protocol = caja_hardware::scale::Protocol::parse(protocol).ok_or_else(|| {
        refused(format!(
            "Protocolo de balanza desconocido: {protocol} (toledo o cas)."
        ))
    })?;
    let scale = devices::VirtualScale::start(protocol, weight_file, link).map_err(|e| Failure {
        code: 1,
        error: "failed",
        message: format!("No se pudo crear la balanza virtual: {e}."),
    })?;
    let port = link.map_or_else(|| scale.path().to_owned(), |l| l.display().to_string());
    // The port alone on stdout (scripts read it); the explanation on stderr.
    emit(
        json,
        &serde_json::json!({"port": port, "pty": scale.path(), "protocol": protocol.name()}),
        |_| port.clone(),
    )?;
    eprintln!("{}", messages::virtual_scale_started(&port, weight_file));
    let stop = std::sync::atomic::AtomicBool::new(false);
    devices::run_virtual_scale(&scale, &stop);
    Ok(())
}

fn verify_journal(dir: &DataDir, json: bool) -> Result<(), Failure> {
    let db = caja_node::db::Db::open(dir.db_path()).map_err(OpError::from)?;
    let key = keyfile::read_key_file(&dir.key_path()).map_err(OpError::from)?;
    let tty = std::io::stderr().is_terminal() && !json;
    let head = Journal::verify(db.conn(), &key, None, |done, total| {
        if tty && total > 0 {
            let pct = done.saturating_mul(100) / total;
            let filled = usize::try_from(pct / 5).unwrap_or(20);
            eprint!(
                "\rverificando [{}{}] {done}/{total} ({pct}%)",
                "#".repeat(filled),
                " ".repeat(20 - filled.min(20))
            );
        }
    })
    .map_err(OpError::from)?;
    if tty {
        eprintln!();
    }
    let v = serde_json::json!({"ok": true, "head_seq": head.seq, "head_hash": head.hash});
    emit(json, &v, |_| {
        format!(
            "Diario íntegro: {} eventos, último hash {}.",
            head.seq,
            &head.hash.to_hex()[..16]
        )
    })
}
