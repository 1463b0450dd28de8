//! Arbitrary method, path, headers and body through the server's complete router (every
//! extractor, the body limit, the JSON/form decoders, the bearer-token path), in process,
//! on a real SQLite store in a temporary directory, with live credentials substituted for
//! the placeholders of `fuzz/common/http_request.rs`. Property: never a panic, never a 5xx.
//! As in `tessera_server::spawn`, a task folds the recorded latency samples every
//! `UPKEEP_INTERVAL`, so a long run does not accumulate them.
#![no_main]

#[path = "../common/http_request.rs"]
mod http_request;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

struct Harness {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    state: tessera_server::AppState,
    admin: tessera_store::User,
    /// Keeps the metrics upkeep task running (it stops when this is dropped).
    _upkeep: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = tessera_server::Config {
            data_dir: dir.path().join("data"),
            issuer: Some("http://tessera.test".into()),
            ..Default::default()
        };
        let state = rt
            .block_on(tessera_server::build_state(
                config,
                tessera_server::Clock::system(),
            ))
            .expect("state");
        let admin = rt.block_on(http_request::create_admin(&state));
        let app = tessera_server::http::router(state.clone());
        let (upkeep, stop) = tokio::sync::watch::channel(false);
        rt.spawn(
            state
                .metrics
                .clone()
                .upkeep_until(tessera_server::metrics::UPKEEP_INTERVAL, stop),
        );
        Harness {
            rt,
            app,
            state,
            admin,
            _upkeep: upkeep,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    h.rt.block_on(async {
        let data = http_request::with_credentials(&h.state, &h.admin, data).await;
        let Some(req) = http_request::request_from_bytes(&data) else {
            return;
        };
        let res = h.app.clone().oneshot(req).await.expect("infallible");
        http_request::check_status(res.status().as_u16(), &data);
    });
});
