//! A hub whose state the test holds (the real router over loopback HTTP, no
//! background task), and a workload of enrolled registers on it: for tests
//! that reach into the storage (`AppState::store`) between requests.

use std::sync::Arc;

use caja_hub::admin_client::{install_crypto_provider, AdminClient};
use caja_hub::config::HubConfig;
use caja_hub::http::AppState;
use caja_hub::system::{OsRandom, SystemClock};
use caja_hub::workload::Workload;
use caja_shared::event::Event;

use super::{now_ms, TestHub, ADMIN_TOKEN};

/// The real router over loopback HTTP, with no background task (no
/// pruning, no periodic tree heads), so every writer job counted is a
/// request's. `TestHub`'s helpers work on it.
pub async fn router_hub(cfg: HubConfig) -> (TestHub, Arc<AppState>) {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let (d, c) = (hub_dir.clone(), cfg.clone());
    let state = tokio::task::spawn_blocking(move || {
        caja_hub::datadir::init(&d, c.clone(), &mut OsRandom::new(), &SystemClock).unwrap();
        caja_hub::server::open_state(
            &d,
            c,
            Arc::new(SystemClock),
            Box::new(OsRandom::new()),
            [7; 32],
        )
        .unwrap()
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = caja_hub::http::router(state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let hub = TestHub {
        admin: AdminClient::new(&url, ADMIN_TOKEN).unwrap(),
        http: reqwest::Client::new(),
        url,
        dir,
        cfg,
        hub: None,
    };
    (hub, state)
}

/// A store with `n` enrolled registers, as a workload.
pub async fn registers(hub: &TestHub, seed: u64, n: usize) -> Workload {
    let store = hub.create_store("Colmado La Esquina").await;
    let mut regs = Vec::new();
    for _ in 0..n {
        regs.push(hub.enroll(store).await.0);
    }
    Workload::new(seed, store, regs)
}

/// The next `n` events of register `r`.
pub fn events(w: &mut Workload, r: usize, n: usize) -> Vec<Event> {
    (0..n).map(|_| w.next(r, now_ms())).collect()
}
