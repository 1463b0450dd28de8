//! `tessera migrate --from sqlite://... --to postgres://...`: an installation that outgrew the
//! embedded store moves to PostgreSQL without logging anyone out.
//!
//! The SQLite installation is made by the real server over real HTTP; the copy is made by
//! the real `tessera` binary; the copied installation is then served from a fresh
//! PostgreSQL schema (skipped loudly when PostgreSQL is unreachable, failed when
//! `TESSERA_REQUIRE_POSTGRES=1`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on a broken precondition"
)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use tessera_server::Config;
use tessera_store::testing::TestSchema;

const ISSUER: &str = "http://tessera.test";
const PASSWORD: &str = "correct horse battery staple";

fn migrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("migrate")
        .args(args)
        .stdin(Stdio::null())
        // The configured database must not matter to a copy.
        .env_remove("TESSERA_DATABASE_URL")
        .output()
        .expect("run tessera")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn config(data_dir: &Path, database_url: Option<String>) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        issuer: Some(ISSUER.to_string()),
        database_url,
        ..Config::default()
    }
}

/// What a user holds after logging in on the old installation.
struct Held {
    user_id: String,
    access: String,
    refresh: String,
    session_id: String,
}

/// Registers a user on the SQLite installation in `data_dir` through the real server, logs
/// in natively (refresh token in the body), rotates once, and stops the server.
async fn sqlite_installation(data_dir: &Path) -> Held {
    let running = tessera_server::spawn_for_test(config(data_dir, None))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = running.url();
    let r = http
        .post(format!("{url}/auth/register"))
        .json(&json!({"email": "moving@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let login: Value = http
        .post(format!("{url}/auth/login"))
        .json(&json!({"email": "moving@example.com", "password": PASSWORD, "native": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // One rotation first, so the copy carries a chain (rotated token + live successor).
    let r = http
        .post(format!("{url}/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", login["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    running.stop().await.unwrap();
    Held {
        user_id,
        access: rotated["access_token"].as_str().unwrap().to_string(),
        refresh: rotated["refresh_token"].as_str().unwrap().to_string(),
        session_id: login["session_id"].as_str().unwrap().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_installation_moves_to_postgres_without_logging_anyone_out() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let held = sqlite_installation(&data).await;
    let from = format!("sqlite://{}", data.join("tessera.db").display());
    let to = schema.url();

    let o = migrate(&["--from", &from, "--to", &to]);
    assert!(o.status.success(), "migrate: {}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("from SQLite to PostgreSQL") && out.contains("1 users, 1 sessions"),
        "{out}"
    );
    assert!(out.contains("2 refresh tokens"), "{out}");

    // The same installation (same master key in the data dir) served from PostgreSQL.
    let running = tessera_server::spawn_for_test(config(&data, Some(to.clone())))
        .await
        .unwrap();
    assert_eq!(running.state.store.engine(), "postgres");
    let http = reqwest::Client::new();
    let url = running.url();
    // The access token issued on SQLite still verifies (same keys, same session).
    let me = http
        .get(format!("{url}/auth/me"))
        .bearer_auth(&held.access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], held.user_id.as_str());
    assert_eq!(me["session_id"], held.session_id.as_str());
    // The refresh token issued on SQLite rotates on PostgreSQL, in the same session.
    let r = http
        .post(format!("{url}/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", held.refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the SQLite refresh token works on PostgreSQL"
    );
    let next: Value = r.json().await.unwrap();
    let me: Value = http
        .get(format!("{url}/auth/me"))
        .bearer_auth(next["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["session_id"], held.session_id.as_str());
    // And the password still logs in.
    let r = http
        .post(format!("{url}/auth/login"))
        .json(&json!({"email": "moving@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    running.stop().await.unwrap();

    // A second copy into the now non-empty target is refused and changes nothing.
    let users_before = count_users(&to).await;
    let o = migrate(&["--from", &from, "--to", &to]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("not empty"), "{}", text(&o.stderr));
    assert_eq!(count_users(&to).await, users_before);
}

async fn count_users(url: &str) -> u64 {
    tessera_store::connect(url)
        .await
        .unwrap()
        .count_users()
        .await
        .unwrap()
}

#[test]
fn bad_copy_arguments_are_usage_errors_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let target = dir.path().join("target.db");
    let from = format!("sqlite://{}", missing.display());
    let to = format!("sqlite://{}", target.display());

    // A source that does not exist: exit 2, and no file appears at either path.
    let o = migrate(&["--from", &from, "--to", &to]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no SQLite database"));
    assert!(!missing.exists() && !target.exists());

    // --from without --to (clap's usage error), an unknown scheme, the same database twice.
    assert_eq!(migrate(&["--from", &from]).status.code(), Some(2));
    let o = migrate(&["--from", "mysql://x/y", "--to", &to]);
    assert_eq!(o.status.code(), Some(2));
    let o = migrate(&["--from", &to, "--to", &to]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!target.exists());

    // A password in a URL never reaches the output.
    let o = migrate(&[
        "--from",
        "postgres://tessera:hunter2secret@127.0.0.1:1/db",
        "--to",
        &to,
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!text(&o.stderr).contains("hunter2secret"));
    assert!(!text(&o.stdout).contains("hunter2secret"));
}

#[test]
fn sqlite_to_sqlite_copy_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt.block_on(sqlite_installation(&data));
    let from = format!("sqlite://{}", data.join("tessera.db").display());
    let to = format!("sqlite://{}", dir.path().join("copy.db").display());
    let o = migrate(&["--from", &from, "--to", &to]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    rt.block_on(async {
        let copy = tessera_store::connect(&to).await.unwrap();
        let s = copy.session_by_id(&held.session_id).await.unwrap().unwrap();
        assert_eq!(s.user_id, held.user_id);
        assert!(s.revoked_at.is_none());
        assert_eq!(copy.list_keys().await.unwrap().len(), 1);
    });
}
