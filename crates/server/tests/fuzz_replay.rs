//! Replays every committed fuzz corpus once on stable Rust (`fuzz/replay.sh` runs this):
//! each target's corpus through the very code and property the target runs
//! (`fuzz/common/<target>.rs`): `http_request` through the server's router with its
//! decoder and credential placeholders (never a 5xx), `token_verify` and `jwk_parse` through
//! `tessera-jwt` (never a panic, never an accepted forgery, keys re-import). Seconds, not
//! minutes: each input runs once.
// Test support: a failed setup step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/common/http_request.rs"]
mod http_request;
#[path = "../../../fuzz/common/jwk_parse.rs"]
mod jwk_parse;
#[path = "../../../fuzz/common/token_verify.rs"]
mod token_verify;

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
    // Named (hand-written) seeds first, then the fuzzer's finds (named by their SHA-1), so a
    // find cannot change what a seed meets (e.g. create the user a seed creates).
    let found = |p: &Path| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
    };
    files.sort_by(|(a, _), (b, _)| (found(a), a).cmp(&(found(b), b)));
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
    let admin = http_request::create_admin(&state).await;
    let app = tessera_server::http::router(state.clone());
    let mut delivered = 0;
    let mut statuses = std::collections::BTreeMap::<String, u16>::new();
    for (path, data) in &inputs {
        let data = http_request::with_credentials(&state, &admin, data).await;
        let Some(req) = http_request::request_from_bytes(&data) else {
            continue;
        };
        delivered += 1;
        let res = app.clone().oneshot(req).await.unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        eprintln!("{name} -> {}", res.status());
        http_request::check_status(res.status().as_u16(), &data);
        statuses.insert(name, res.status().as_u16());
    }
    assert!(delivered >= 5, "most seeds no longer decode");
    // The seeds that carry live credentials must get past the bearer/client check into the
    // handler's own decoders and logic: a 401 there means the harness lost its credentials.
    for (seed, want) in [
        ("auth_me", 200),
        ("admin_create_user_json", 201),
        ("admin_patch_self_json", 200),
        ("admin_list_users_query", 200),
        ("admin_audit_query", 200),
        ("delete_own_session", 204),
        ("refresh_cookie_live", 200),
        ("token_refresh_form_live", 200),
        ("token_client_credentials_live", 200),
        ("introspect_live", 200),
        ("revocations_live", 200),
        ("revoke_form_live", 200),
        ("logout_cookie_live", 204),
        ("delete_other_sessions", 204),
        ("admin_delete_client", 204),
        ("token_client_secret_post", 200),
    ] {
        assert_eq!(statuses.get(seed), Some(&want), "seed {seed}: {statuses:?}");
    }
}

#[test]
fn token_verify_corpus_replays_without_panic_or_forgery() {
    let inputs = corpus("token_verify");
    assert!(inputs.len() >= 5, "the token_verify corpus is missing");
    for (_, data) in &inputs {
        token_verify::run(data);
    }
}

#[test]
fn jwk_parse_corpus_replays_without_panic() {
    let inputs = corpus("jwk_parse");
    assert!(inputs.len() >= 5, "the jwk_parse corpus is missing");
    for (_, data) in &inputs {
        jwk_parse::run(data);
    }
}

#[test]
fn every_fuzz_target_has_a_replayed_corpus() {
    let targets =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect::<std::collections::BTreeSet<_>>();
    let replayed = ["http_request", "jwk_parse", "token_verify"]
        .map(String::from)
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(targets, replayed, "a fuzz target without a replay here");
}
