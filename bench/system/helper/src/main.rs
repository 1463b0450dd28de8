//! Baselines for `bench/run.sh` (the "System" section of `bench/README.md`), measured in the
//! same run as the Tessera figures they are compared with:
//!
//! * `hello ADDR` — a minimal axum server: `GET /hello` → `hello`. The ceiling of an axum
//!   endpoint on this machine, to compare `GET /.well-known/jwks.json` with.
//! * `argon2 THREADS SECONDS` — raw Argon2id (m=19456 KiB, t=2, p=1, the server's
//!   parameters) hashes per second on THREADS threads, to compare password login with.
//! * `sessions ADDR DATABASE_URL N IDS_FILE` — the stateful alternative to a JWT: creates N
//!   sessions in a fresh `bench_sessions` table, writes their ids to IDS_FILE, and serves
//!   `GET /notes` that looks the `sid` cookie up in the database (one indexed SELECT per
//!   request) and `GET /open/notes` with no check at all (same body).

// A benchmark binary: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sqlx::any::AnyPoolOptions;

const NOTES_BODY: &str = r#"{"notes":[]}"#;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("hello") => hello(&args[2]).await,
        Some("argon2") => {
            let threads: usize = args[2].parse().unwrap();
            let secs: f64 = args[3].parse().unwrap();
            argon2_rate(threads, secs);
        }
        Some("sessions") => sessions(&args[2], &args[3], args[4].parse().unwrap(), &args[5]).await,
        _ => {
            eprintln!("usage: tessera-system-bench hello ADDR | argon2 THREADS SECONDS | sessions ADDR DATABASE_URL N IDS_FILE");
            std::process::exit(2);
        }
    }
}

async fn hello(addr: &str) {
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

/// Hashes/s of Argon2id at the server's parameters, THREADS hashing at once for SECONDS.
fn argon2_rate(threads: usize, secs: f64) {
    let params = Params::new(19_456, 2, 1, Some(32)).unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let params = params.clone();
            std::thread::spawn(move || {
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let salt = [i as u8; 16];
                let mut out = [0u8; 32];
                let mut n = 0u64;
                while Instant::now() < deadline {
                    argon
                        .hash_password_into(b"correct horse battery staple", &salt, &mut out)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = start.elapsed().as_secs_f64();
    println!("{:.2}", total as f64 / elapsed);
}

#[derive(Clone)]
struct Db {
    pool: sqlx::AnyPool,
    postgres: bool,
}

async fn sessions(addr: &str, url: &str, n: usize, ids_file: &str) {
    sqlx::any::install_default_drivers();
    let postgres = url.starts_with("postgres");
    let pool = AnyPoolOptions::new()
        .max_connections(if postgres { 8 } else { 4 })
        .connect(url)
        .await
        .unwrap();
    if !postgres {
        // The same durability trade-off a production SQLite deployment would make.
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("DROP TABLE IF EXISTS bench_sessions")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE bench_sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, \
         expires_at BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let now = unix_now();
    let mut ids = String::new();
    let mut tx = pool.begin().await.unwrap();
    for i in 0..n {
        // 32 random-looking hex chars, like a 128-bit session id.
        let id = format!(
            "{:016x}{:016x}",
            splitmix(i as u64),
            splitmix(i as u64 ^ 0xdead_beef)
        );
        let q = if postgres {
            "INSERT INTO bench_sessions (id, user_id, expires_at) VALUES ($1, $2, $3)"
        } else {
            "INSERT INTO bench_sessions (id, user_id, expires_at) VALUES (?, ?, ?)"
        };
        sqlx::query(q)
            .bind(id.clone())
            .bind(format!("user-{i}"))
            .bind(now + 86_400)
            .execute(&mut *tx)
            .await
            .unwrap();
        ids.push_str(&id);
        ids.push('\n');
    }
    tx.commit().await.unwrap();
    std::fs::write(ids_file, ids).unwrap();
    let app = Router::new()
        .route("/notes", get(lookup))
        .route("/open/notes", get(|| async { json(NOTES_BODY) }))
        .with_state(Db { pool, postgres });
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

fn json(body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn lookup(State(db): State<Db>, headers: HeaderMap) -> axum::response::Response {
    let sid = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split("; ").find_map(|kv| kv.strip_prefix("sid=")));
    let Some(sid) = sid else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let q = if db.postgres {
        "SELECT user_id FROM bench_sessions WHERE id = $1 AND revoked = 0 AND expires_at > $2"
    } else {
        "SELECT user_id FROM bench_sessions WHERE id = ? AND revoked = 0 AND expires_at > ?"
    };
    match sqlx::query(q)
        .bind(sid.to_owned())
        .bind(unix_now())
        .fetch_optional(&db.pool)
        .await
    {
        Ok(Some(_)) => json(NOTES_BODY).into_response(),
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
