//! Test support shared by every crate that tests against a real database.
//!
//! PostgreSQL tests use `postgres://postgres@127.0.0.1:5432/test` (override with
//! `TESSERA_TEST_POSTGRES_URL`), one fresh schema per test. When the server is not reachable
//! they are skipped with a loud line on stderr, unless `TESSERA_REQUIRE_POSTGRES=1`, which
//! turns the skip into a failure (CI sets it so a missing database cannot pass silently).
//!
//! ```no_run
//! # async fn t() {
//! use tessera_store::testing::TestSchema;
//! let Some(schema) = TestSchema::create().await else { return }; // skipped
//! let url = schema.url(); // a database URL for tessera_store::connect()
//! # }
//! ```

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;

use crate::postgres::PostgresStore;
use crate::Result;

/// The database the test suites use unless `TESSERA_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL URL for tests, or `None` (after printing why) when the server is not
/// reachable and the tests should be skipped.
///
/// # Panics
///
/// When the server is unreachable and `TESSERA_REQUIRE_POSTGRES=1` is set: the test must fail.
#[allow(clippy::panic)] // Test support: a database the run requires must fail the test.
pub fn postgres_url_or_skip() -> Option<String> {
    let url = std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_string());
    match reachable(&url) {
        Ok(()) => Some(url),
        Err(why) => {
            if std::env::var("TESSERA_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL required (TESSERA_REQUIRE_POSTGRES=1) but {why}");
            }
            // Straight to the process's stderr (not eprintln!, which the test harness
            // captures and hides for passing tests), once per process.
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPING PostgreSQL tests: {why} (set TESSERA_REQUIRE_POSTGRES=1 to fail)"
                );
            });
            None
        }
    }
}

fn reachable(url: &str) -> std::result::Result<(), String> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| format!("invalid test database URL: {e}"))?;
    let target = format!("{}:{}", options.get_host(), options.get_port());
    let addrs = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {target}: {e}"))?;
    for addr in addrs {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
    }
    Err(format!("{target} is not reachable"))
}

/// A fresh, uniquely named schema (`t_<random>`) in the test database, dropped with
/// everything in it when this value is dropped (even when the test panics).
#[derive(Debug)]
pub struct TestSchema {
    base_url: String,
    name: String,
}

impl TestSchema {
    /// Creates the schema, or returns `None` when PostgreSQL tests are skipped (see
    /// [`postgres_url_or_skip`]).
    ///
    /// # Panics
    ///
    /// When the server is reachable but the schema cannot be created.
    #[allow(clippy::panic)] // Test support: a broken test database must fail the test.
    pub async fn create() -> Option<Self> {
        let base_url = postgres_url_or_skip()?;
        let name = unique_name();
        let result = async {
            let mut conn = base_url
                .parse::<PgConnectOptions>()
                .map_err(crate::error::db_err)?
                .connect()
                .await
                .map_err(crate::error::db_err)?;
            sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
                .execute(&mut conn)
                .await
                .map_err(crate::error::db_err)?;
            Ok::<_, crate::StoreError>(())
        }
        .await;
        if let Err(e) = result {
            panic!("cannot create test schema {name}: {e}");
        }
        Some(Self { base_url, name })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A database URL whose connections use this schema (via the libpq `options` startup
    /// parameter), suitable for [`crate::connect`].
    pub fn url(&self) -> String {
        let sep = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{sep}options=-csearch_path%3D{}",
            self.base_url, self.name
        )
    }

    /// A store on this schema (not migrated yet).
    pub async fn store(&self) -> Result<PostgresStore> {
        PostgresStore::connect_with_schema(&self.base_url, &self.name).await
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs inside (or outside) an async runtime; a short-lived thread with its own
        // runtime can block on the cleanup either way.
        let url = self.base_url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(options) = url.parse::<PgConnectOptions>() else {
                    return;
                };
                let Ok(mut conn) = options.connect().await else {
                    return;
                };
                // The schema's own server may still hold a lock in it: its tasks live on
                // the runtime whose thread is blocked in this very drop, so a transaction
                // it had open (key maintenance, say) can never finish, and an unbounded
                // DROP would wait for it forever. Wait briefly, then end the backends that
                // hold locks on the schema's relations and try again.
                let _ = sqlx::query("SET lock_timeout = '2s'")
                    .execute(&mut conn)
                    .await;
                for _ in 0..5 {
                    let dropped = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .execute(&mut conn)
                        .await;
                    if dropped.is_ok() {
                        return;
                    }
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                         JOIN pg_class c ON c.oid = l.relation \
                         JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE n.nspname = $1 AND l.pid <> pg_backend_pid() \
                         GROUP BY l.pid",
                    )
                    .bind(&name)
                    .execute(&mut conn)
                    .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `t_` followed by 16 hex digits, unique within the process and very likely across runs.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mix = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // A final avalanche so names from close timestamps do not share prefixes.
    let mut x = mix;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    format!("t_{x:016x}")
}
