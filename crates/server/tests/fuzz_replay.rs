//! Replays every committed fuzz corpus once on stable Rust (`fuzz/replay.sh` runs this):
//! `fuzz/corpus/http_request/*` through the server's router with the very decoder and
//! property the `http_request` fuzz target uses, and the token-core corpora
//! (`token_verify`, `jwk_parse`, when present) through `tessera-jwt`'s public parsers,
//! which must not panic. Seconds, not minutes: each input runs once.
// Test support: a failed setup step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/common/http_request.rs"]
mod http_request;

use std::path::{Path, PathBuf};

use tower::ServiceExt as _;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn http_request_corpus_replays_without_5xx() {
    let inputs = corpus("http_request");
    assert!(inputs.len() >= 5, "the http_request seed corpus is missing");
    let dir = tempfile::tempdir().unwrap();
    let config = tessera_server::Config {
        data_dir: dir.path().join("data"),
        issuer: Some("http://tessera.test".into()),
        ..Default::default()
    };
    let state = tessera_server::build_state(config, tessera_server::Clock::system())
        .await
        .unwrap();
    let app = tessera_server::http::router(state);
    let mut delivered = 0;
    for (path, data) in &inputs {
        let Some(req) = http_request::request_from_bytes(data) else {
            continue;
        };
        delivered += 1;
        let res = app.clone().oneshot(req).await.unwrap();
        eprintln!("{} -> {}", path.display(), res.status());
        http_request::check_status(res.status().as_u16(), data);
    }
    assert!(delivered >= 5, "most seeds no longer decode");
}

#[test]
fn token_core_corpora_replay_without_panics() {
    let key = tessera_jwt::SigningKey::generate(tessera_jwt::Algorithm::EdDSA).unwrap();
    let keys = tessera_jwt::KeySet::from_keys([key.verifying_key().with_kid("k")]).unwrap();
    let policy = tessera_jwt::Validation::access_token("http://tessera.test", &["api"]);
    for (_, data) in corpus("token_verify") {
        let text = String::from_utf8_lossy(&data);
        let _ = tessera_jwt::verify_with_keys::<serde_json::Value>(&text, &keys, &policy);
        let _ = tessera_jwt::dangerous::decode_unverified(&text);
    }
    for (_, data) in corpus("jwk_parse") {
        let _ = tessera_jwt::Jwk::from_json(&data);
        let _ = tessera_jwt::KeySet::from_jwks_json(&data);
    }
}
