//! The embedded SQLite engine.
//!
//! One database file in WAL mode (readers never block the writer), foreign keys on (session
//! and refresh-token rows follow their user on delete), and a busy timeout so writers queue
//! instead of failing. Every multi-statement write runs in a `BEGIN IMMEDIATE` transaction:
//! it takes the write lock up front, so two writers can never both hold a read snapshot and
//! then deadlock upgrading it (SQLite would answer `SQLITE_BUSY` without waiting).
//!
//! WAL checkpoints are not left to SQLite's automatic checkpoint, which runs inside whichever
//! commit crosses 1,000 WAL pages and fsyncs the WAL and the database file there, while every
//! queued writer waits (measured under refresh load: 21 such checkpoints in 5 s, 6 to 31 ms
//! of fsync each, all on the writer's thread). A background task checkpoints instead
//! ([`WalCheckpoint`]): see [`Checkpointer`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, Transaction};
use tokio::sync::{broadcast, oneshot};

use crate::error::{db_err, roles_from_json, roles_to_json};
use crate::{
    AuditEvent, AuditFilter, Client, NewAuditEvent, NewRevocation, NewSession, NewUser, Refresh,
    RefreshTokenRecord, Result, Revocation, RevocationKind, Rotation, Session, SigningKeyRecord,
    Snapshot, Store, StoreError, StoreNotice, Throttle, User, UserUpdate,
};

/// How long a writer waits for the write lock before giving up with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Columns of `users`, in the order [`user_from_row`] reads them.
const USER_COLS: &str =
    "id, email, password_hash, roles, disabled, token_cutoff, created_at, updated_at";
/// Columns of `sessions`, in the order [`session_from_row`] reads them.
const SESSION_COLS: &str = "id, user_id, client_id, user_agent, ip, created_at, last_used_at, \
     idle_expires_at, absolute_expires_at, revoked_at, revoked_reason";
/// How many columns [`SESSION_COLS`] names.
const SESSION_COL_COUNT: usize = 11;
/// Columns of `signing_keys`.
const KEY_COLS: &str =
    "kid, alg, private_enc, public_jwk, created_at, activate_at, retire_at, remove_at";
/// Columns of `clients`.
const CLIENT_COLS: &str = "client_id, name, secret_hash, roles, scope, created_at";
/// Columns of `revocations`.
const REVOCATION_COLS: &str = "cursor, kind, subject, cutoff, created_at, expires_at";

/// SQLite implementation of [`crate::Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for `BEGIN IMMEDIATE` transactions: concurrent ones queue in the pool
    /// (woken in order) instead of in SQLite's busy handler, which sleeps in steps of up to
    /// 100 ms. Refresh rotation at concurrency 32: p99 350 ms -> see bench/README.md "System".
    writer: SqlitePool,
    notices: broadcast::Sender<StoreNotice>,
    /// The WAL checkpoint task of a file database (none for `:memory:` or [`Self::from_pool`]);
    /// it stops when the last clone of the store is dropped.
    checkpointer: Option<Arc<Checkpointer>>,
}

/// How the background task checkpoints the WAL of a file database.
///
/// Every `interval` it runs `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own: the
/// WAL's pages are copied into the database file and both are fsynced off the write path,
/// while writers keep appending. A passive checkpoint under steady writes never catches up
/// with the last frame, so SQLite never gets to restart the WAL from its beginning; when the
/// WAL holds `restart_frames` pages or more, the task therefore takes the writer connection
/// (queueing like any writer) and checkpoints again there (PASSIVE: it never waits for
/// readers in SQLite's busy handler), which only has the pages written since the first
/// checkpoint left to copy; with the WAL wholly copied, the next write starts it over. (A
/// RESTART checkpoint there waited for readers and held writers up to 100 ms under load.)
/// So the WAL stays within `restart_frames` plus what is written during one interval and
/// one checkpoint; its file is cut back to `restart_frames` pages when it restarts
/// (`journal_size_limit`), and once nothing was written for a whole interval it is truncated
/// to zero (`wal_checkpoint(TRUNCATE)`, on the writer connection too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalCheckpoint {
    /// Time between two passive checkpoints.
    pub interval: Duration,
    /// WAL length (pages) from which the WAL is restarted.
    pub restart_frames: i64,
}

impl Default for WalCheckpoint {
    /// Every 500 ms; restart from 8,192 pages (32 MiB at SQLite's default 4 KiB pages).
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            restart_frames: 8192,
        }
    }
}

/// Stops the checkpoint task when dropped (the task then closes its connection).
#[derive(Debug)]
struct Checkpointer {
    _stop: oneshot::Sender<()>,
}

/// One `PRAGMA wal_checkpoint(MODE)`: (busy, WAL length in pages, pages checkpointed).
async fn wal_checkpoint(conn: &mut SqliteConnection, mode: &str) -> Result<(i64, i64, i64)> {
    let row = sqlx::query(&format!("PRAGMA wal_checkpoint({mode})"))
        .fetch_one(conn)
        .await
        .map_err(db_err)?;
    Ok((
        row.try_get(0).map_err(db_err)?,
        row.try_get(1).map_err(db_err)?,
        row.try_get(2).map_err(db_err)?,
    ))
}

/// The checkpoint task ([`WalCheckpoint`]): runs until `stop` resolves (its sender dropped).
async fn checkpoint_loop(
    mut conn: SqliteConnection,
    writer: SqlitePool,
    config: WalCheckpoint,
    mut stop: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_frames = 0;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        let (frames, done) = match wal_checkpoint(&mut conn, "PASSIVE").await {
            Ok((_, frames, done)) => (frames, done),
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                continue;
            }
        };
        tracing::debug!(
            frames,
            done,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "WAL checkpoint (passive)"
        );
        // The WAL length only stays the same from one tick to the next when nothing was
        // written (a write either appends or restarts the WAL). Finish the checkpoint when
        // the WAL is long and growing, TRUNCATE when idle: both on the writer connection, so
        // writers queue behind the checkpoint in order instead of sleeping in SQLite's busy
        // handler.
        let idle = frames == last_frames;
        last_frames = frames;
        let mode = if frames > 0 && idle {
            "TRUNCATE"
        } else if frames >= config.restart_frames {
            "PASSIVE"
        } else {
            continue;
        };
        let started = Instant::now();
        let result = async {
            let mut w = writer.acquire().await.map_err(db_err)?;
            wal_checkpoint(&mut w, mode).await
        }
        .await;
        match result {
            Ok((busy, frames, done)) => tracing::debug!(
                mode,
                busy,
                frames,
                done,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "WAL checkpoint on the writer"
            ),
            Err(e) => tracing::warn!(error = %e, mode, "WAL checkpoint failed"),
        }
    }
    let _ = conn.close().await;
}

impl SqliteStore {
    /// Opens (creating when missing) the database named by a `sqlite:` URL, e.g.
    /// `sqlite://./tessera-data/tessera.db` or `sqlite::memory:`. The directory must exist.
    /// Does not migrate.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_checkpoint(url, WalCheckpoint::default()).await
    }

    /// [`Self::connect`] with the WAL checkpoint task configured (tests use short intervals).
    pub async fn connect_with_checkpoint(url: &str, checkpoint: WalCheckpoint) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode except for the last transactions before a power
            // loss, which is the usual trade-off for an auth server's session table.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = if in_memory {
            options
        } else {
            // No commit checkpoints (the task does); a restarted WAL is cut back to the
            // restart length.
            let limit = checkpoint.restart_frames.saturating_mul(4096);
            options
                .pragma("wal_autocheckpoint", "0")
                .pragma("journal_size_limit", limit.to_string())
        };
        let pool_options = if in_memory {
            // Every connection to `:memory:` is its own database: keep exactly one, forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        };
        // sqlx pings a connection before handing it out unless told not to: a round trip to
        // the connection's worker thread for nothing (a SQLite connection cannot be lost the
        // way a network one can), and on the writer inside the serialized section.
        let pool = pool_options
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        let mut store = Self::from_pool(pool);
        if !in_memory {
            store.writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.clone())
                .await
                .map_err(db_err)?;
            let conn = options.connect().await.map_err(db_err)?;
            let (stop, stopped) = oneshot::channel();
            tokio::spawn(checkpoint_loop(
                conn,
                store.writer.clone(),
                checkpoint,
                stopped,
            ));
            store.checkpointer = Some(Arc::new(Checkpointer { _stop: stop }));
        }
        Ok(store)
    }

    /// Wraps an existing pool (which must have foreign keys enabled).
    pub fn from_pool(pool: SqlitePool) -> Self {
        let (notices, _) = broadcast::channel(crate::NOTICE_CAPACITY);
        Self {
            writer: pool.clone(),
            pool,
            notices,
            checkpointer: None,
        }
    }

    /// The underlying pool, for tooling and tests.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Starts a write transaction holding the write lock from its first statement.
    ///
    /// The BEGIN runs in a task of its own, so that it cannot be cancelled half-way: sqlx
    /// acknowledges a custom `BEGIN` and then checks, at another await point, that the
    /// connection is in a transaction; a caller dropped in between (a client disconnecting
    /// mid-request) left the transaction open with no `Transaction` to roll it back, and the
    /// writer connection went back to its pool holding the write lock for good (every later
    /// write failed with "database is locked"). Now a dropped caller's transaction is
    /// finished by the task and dropped there, which rolls it back.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        let writer = self.writer.clone();
        tokio::spawn(async move { writer.begin_with("BEGIN IMMEDIATE").await })
            .await
            .map_err(|e| StoreError::Database(format!("write transaction task: {e}")))?
            .map_err(db_err)
    }

    /// Broadcasts a notice to local subscribers; nobody listening is fine.
    fn notify(&self, notice: StoreNotice) {
        let _ = self.notices.send(notice);
    }
}

// ---- row decoding ---------------------------------------------------------------------------

fn user_from_row(row: &SqliteRow) -> Result<User> {
    user_from_row_at(row, 0)
}

/// Reads the user columns starting at column `o` (for joins).
fn user_from_row_at(row: &SqliteRow, o: usize) -> Result<User> {
    let roles: String = row.try_get(o + 3).map_err(db_err)?;
    Ok(User {
        id: row.try_get(o).map_err(db_err)?,
        email: row.try_get(o + 1).map_err(db_err)?,
        password_hash: row.try_get(o + 2).map_err(db_err)?,
        roles: roles_from_json(&roles)?,
        disabled: row.try_get(o + 4).map_err(db_err)?,
        token_cutoff: row.try_get(o + 5).map_err(db_err)?,
        created_at: row.try_get(o + 6).map_err(db_err)?,
        updated_at: row.try_get(o + 7).map_err(db_err)?,
    })
}

fn session_from_row(row: &SqliteRow) -> Result<Session> {
    session_from_row_at(row, 0)
}

/// Reads the session columns starting at column `o` (for joins).
fn session_from_row_at(row: &SqliteRow, o: usize) -> Result<Session> {
    Ok(Session {
        id: row.try_get(o).map_err(db_err)?,
        user_id: row.try_get(o + 1).map_err(db_err)?,
        client_id: row.try_get(o + 2).map_err(db_err)?,
        user_agent: row.try_get(o + 3).map_err(db_err)?,
        ip: row.try_get(o + 4).map_err(db_err)?,
        created_at: row.try_get(o + 5).map_err(db_err)?,
        last_used_at: row.try_get(o + 6).map_err(db_err)?,
        idle_expires_at: row.try_get(o + 7).map_err(db_err)?,
        absolute_expires_at: row.try_get(o + 8).map_err(db_err)?,
        revoked_at: row.try_get(o + 9).map_err(db_err)?,
        revoked_reason: row.try_get(o + 10).map_err(db_err)?,
    })
}

fn revocation_from_row(row: &SqliteRow) -> Result<Revocation> {
    let kind: String = row.try_get(1).map_err(db_err)?;
    Ok(Revocation {
        cursor: row.try_get(0).map_err(db_err)?,
        kind: RevocationKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("revocation kind {kind:?}")))?,
        subject: row.try_get(2).map_err(db_err)?,
        cutoff: row.try_get(3).map_err(db_err)?,
        created_at: row.try_get(4).map_err(db_err)?,
        expires_at: row.try_get(5).map_err(db_err)?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.try_get(0).map_err(db_err)?,
        alg: row.try_get(1).map_err(db_err)?,
        private_enc: row.try_get(2).map_err(db_err)?,
        public_jwk: row.try_get(3).map_err(db_err)?,
        created_at: row.try_get(4).map_err(db_err)?,
        activate_at: row.try_get(5).map_err(db_err)?,
        retire_at: row.try_get(6).map_err(db_err)?,
        remove_at: row.try_get(7).map_err(db_err)?,
    })
}

fn client_from_row(row: &SqliteRow) -> Result<Client> {
    let roles: String = row.try_get(3).map_err(db_err)?;
    Ok(Client {
        client_id: row.try_get(0).map_err(db_err)?,
        name: row.try_get(1).map_err(db_err)?,
        secret_hash: row.try_get(2).map_err(db_err)?,
        roles: roles_from_json(&roles)?,
        scope: row.try_get(4).map_err(db_err)?,
        created_at: row.try_get(5).map_err(db_err)?,
    })
}

fn refresh_token_from_row(row: &SqliteRow) -> Result<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        hash: row.try_get(0).map_err(db_err)?,
        session_id: row.try_get(1).map_err(db_err)?,
        created_at: row.try_get(2).map_err(db_err)?,
        rotated_at: row.try_get(3).map_err(db_err)?,
        successor_hash: row.try_get(4).map_err(db_err)?,
    })
}

fn throttle_from_row(row: &SqliteRow) -> Result<Throttle> {
    Ok(Throttle {
        failures: row.try_get(0).map_err(db_err)?,
        window_start: row.try_get(1).map_err(db_err)?,
        locked_until: row.try_get(2).map_err(db_err)?,
    })
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditEvent> {
    let detail: String = row.try_get(6).map_err(db_err)?;
    Ok(AuditEvent {
        id: row.try_get(0).map_err(db_err)?,
        at: row.try_get(1).map_err(db_err)?,
        event: row.try_get(2).map_err(db_err)?,
        actor: row.try_get(3).map_err(db_err)?,
        subject: row.try_get(4).map_err(db_err)?,
        ip: row.try_get(5).map_err(db_err)?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| db_err(e.into()))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    fn engine(&self) -> &'static str {
        "sqlite"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreNotice> {
        self.notices.subscribe()
    }

    // ---- users ------------------------------------------------------------------------------

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let sql = format!(
            "INSERT INTO users (id, email, password_hash, roles, disabled, token_cutoff, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 0, NULL, $5, $5) \
             RETURNING {USER_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(roles_to_json(&user.roles)?)
            .bind(user.created_at)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        user_from_row(&row)
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
        let row = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn list_users(&self, search: Option<&str>, limit: u32, offset: u32) -> Result<Vec<User>> {
        // instr() rather than LIKE: a search for `%` or `_` means those characters.
        let sql = format!(
            "SELECT {USER_COLS} FROM users \
             WHERE $1 IS NULL OR instr(lower(email), lower($1)) > 0 \
             ORDER BY email LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&sql)
            .bind(search)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(&self, id: &str, update: &UserUpdate) -> Result<Option<User>> {
        let roles = update.roles.as_deref().map(roles_to_json).transpose()?;
        // The cutoff only ever moves forward: an older cutoff arriving late must not
        // re-validate tokens a newer one already killed.
        let sql = format!(
            "UPDATE users SET \
               password_hash = COALESCE($2, password_hash), \
               roles = COALESCE($3, roles), \
               disabled = COALESCE($4, disabled), \
               token_cutoff = CASE WHEN $5 IS NULL THEN token_cutoff \
                                   WHEN token_cutoff IS NULL THEN $5 \
                                   ELSE MAX(token_cutoff, $5) END, \
               updated_at = $6 \
             WHERE id = $1 RETURNING {USER_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(update.password_hash.as_deref())
            .bind(roles)
            .bind(update.disabled)
            .bind(update.token_cutoff)
            .bind(update.updated_at)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn delete_user(&self, id: &str) -> Result<bool> {
        // Sessions and refresh tokens follow through ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    // ---- sessions and refresh tokens ----------------------------------------------------------

    async fn create_session(&self, session: &NewSession, refresh_hash: &[u8]) -> Result<Session> {
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "INSERT INTO sessions (id, user_id, client_id, user_agent, ip, created_at, \
             last_used_at, idle_expires_at, absolute_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8) RETURNING {SESSION_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(&session.id)
            .bind(&session.user_id)
            .bind(&session.client_id)
            .bind(session.user_agent.as_deref())
            .bind(session.ip.as_deref())
            .bind(session.created_at)
            .bind(session.idle_expires_at)
            .bind(session.absolute_expires_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let created = session_from_row(&row)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(refresh_hash)
        .bind(&session.id)
        .bind(session.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn session_by_id(&self, id: &str) -> Result<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions \
             WHERE user_id = $1 AND revoked_at IS NULL \
               AND idle_expires_at > $2 AND absolute_expires_at > $2 \
             ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn rotate_refresh_token_as(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: i64,
        idle_secs: i64,
        client_id: Option<&str>,
    ) -> Result<Refresh> {
        // BEGIN IMMEDIATE: concurrent rotations queue on the write lock, so the first one
        // rotates and every later one reads the committed result (AlreadyRotated).
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "SELECT rt.rotated_at, rt.successor_hash, \
                    (SELECT nx.rotated_at IS NOT NULL FROM refresh_tokens nx \
                      WHERE nx.hash = rt.successor_hash), \
                    s.{}, u.{} \
             FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
               JOIN users u ON u.id = s.user_id \
             WHERE rt.hash = $1",
            SESSION_COLS.replace(", ", ", s."),
            USER_COLS.replace(", ", ", u.")
        );
        let Some(row) = sqlx::query(&sql)
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
        else {
            return Ok(Refresh::Rotation(Rotation::NotFound, None));
        };
        let session = session_from_row_at(&row, 3)?;
        if client_id.is_some_and(|c| c != session.client_id) {
            return Ok(Refresh::OtherClient(session));
        }
        let user = Some(user_from_row_at(&row, 3 + SESSION_COL_COUNT)?);
        // A dead session ends the chain whatever the token's state (RFC 9700 §4.14.2: the
        // refresh token is bound to the grant; once revoked nothing derived from it works).
        if !session.is_live(now) {
            return Ok(Refresh::Rotation(Rotation::SessionInactive(session), user));
        }
        let rotated_at: Option<i64> = row.try_get(0).map_err(db_err)?;
        if let Some(rotated_at) = rotated_at {
            let successor_hash: Option<Vec<u8>> = row.try_get(1).map_err(db_err)?;
            let successor_used: Option<bool> = row.try_get(2).map_err(db_err)?;
            let rotation = Rotation::AlreadyRotated {
                rotated_at,
                successor_hash: successor_hash.unwrap_or_default(),
                successor_used: successor_used.unwrap_or(false),
                session,
            };
            return Ok(Refresh::Rotation(rotation, user));
        }
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $2, successor_hash = $3 \
             WHERE hash = $1 AND rotated_at IS NULL",
        )
        .bind(old_hash)
        .bind(now)
        .bind(new_hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() != 1 {
            // Cannot happen under the write lock; report it rather than guess.
            return Err(StoreError::Database(
                "refresh token changed under the write lock".to_string(),
            ));
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(new_hash)
        .bind(&session.id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let sql = format!(
            "UPDATE sessions SET last_used_at = $2, \
               idle_expires_at = MIN($2 + $3, absolute_expires_at) \
             WHERE id = $1 RETURNING {SESSION_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(&session.id)
            .bind(now)
            .bind(idle_secs)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let updated = session_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Refresh::Rotation(Rotation::Rotated(updated), user))
    }

    async fn refresh_token_session(&self, hash: &[u8]) -> Result<Option<Session>> {
        let sql = format!(
            "SELECT s.{} FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
             WHERE rt.hash = $1",
            SESSION_COLS.replace(", ", ", s.")
        );
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn revoke_session(&self, id: &str, now: i64, reason: &str) -> Result<Option<Session>> {
        // Only a live session changes, so a second call (or a call on an expired session)
        // returns None and the caller appends exactly one revocation event.
        let sql = format!(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
             WHERE id = $1 AND revoked_at IS NULL \
               AND idle_expires_at > $2 AND absolute_expires_at > $2 \
             RETURNING {SESSION_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(now)
            .bind(reason)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
        reason: &str,
    ) -> Result<Vec<Session>> {
        let sql = format!(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
             WHERE user_id = $1 AND revoked_at IS NULL \
               AND idle_expires_at > $2 AND absolute_expires_at > $2 \
               AND ($4 IS NULL OR id <> $4) \
             RETURNING {SESSION_COLS}"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(now)
            .bind(reason)
            .bind(keep)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn prune_sessions(&self, before: i64) -> Result<u64> {
        // Refresh tokens follow through ON DELETE CASCADE.
        let done = sqlx::query(
            "DELETE FROM sessions \
             WHERE idle_expires_at < $1 OR absolute_expires_at < $1 \
                OR (revoked_at IS NOT NULL AND revoked_at < $1)",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    // ---- revocation feed --------------------------------------------------------------------

    async fn append_revocation(&self, event: &NewRevocation) -> Result<Revocation> {
        // The counter row is bumped inside the same write transaction as the insert, so
        // cursors are gap-free, never reused after pruning, and committed in order.
        let mut tx = self.write_tx().await?;
        let cursor: i64 =
            sqlx::query_scalar("UPDATE revocation_counter SET n = n + 1 WHERE id = 1 RETURNING n")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        let sql = format!(
            "INSERT INTO revocations ({REVOCATION_COLS}) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING {REVOCATION_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(cursor)
            .bind(event.kind.as_str())
            .bind(&event.subject)
            .bind(event.cutoff)
            .bind(event.created_at)
            .bind(event.expires_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let stored = revocation_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        self.notify(StoreNotice::Revocation(stored.cursor));
        Ok(stored)
    }

    async fn revocations_since(&self, since: i64, now: i64, limit: u32) -> Result<Vec<Revocation>> {
        let sql = format!(
            "SELECT {REVOCATION_COLS} FROM revocations \
             WHERE cursor > $1 AND expires_at >= $2 ORDER BY cursor LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(since)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(revocation_from_row).collect()
    }

    async fn oldest_revocation_cursor(&self) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT MIN(cursor) FROM revocations")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn latest_revocation_cursor(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT n FROM revocation_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn is_token_revoked(&self, jti: &str, now: i64) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM revocations \
             WHERE kind = 'token' AND subject = $1 AND expires_at >= $2 LIMIT 1",
        )
        .bind(jti)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(found.is_some())
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM revocations WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    // ---- signing keys -----------------------------------------------------------------------

    async fn insert_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO signing_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        sqlx::query(&sql)
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_enc)
            .bind(&key.public_jwk)
            .bind(key.created_at)
            .bind(key.activate_at)
            .bind(key.retire_at)
            .bind(key.remove_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        self.notify(StoreNotice::KeysChanged);
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let sql = format!("SELECT {KEY_COLS} FROM signing_keys ORDER BY created_at, kid");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn update_key_schedule(
        &self,
        kid: &str,
        retire_at: Option<i64>,
        remove_at: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE signing_keys SET retire_at = COALESCE($2, retire_at), \
               remove_at = COALESCE($3, remove_at) WHERE kid = $1",
        )
        .bind(kid)
        .bind(retire_at)
        .bind(remove_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        self.notify(StoreNotice::KeysChanged);
        Ok(())
    }

    async fn prune_keys(&self, now: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM signing_keys WHERE remove_at IS NOT NULL AND remove_at < $1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        if done.rows_affected() > 0 {
            self.notify(StoreNotice::KeysChanged);
        }
        Ok(done.rows_affected())
    }

    // ---- OAuth clients ----------------------------------------------------------------------

    async fn create_client(&self, client: &Client) -> Result<()> {
        let sql = format!("INSERT INTO clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6)");
        sqlx::query(&sql)
            .bind(&client.client_id)
            .bind(&client.name)
            .bind(&client.secret_hash)
            .bind(roles_to_json(&client.roles)?)
            .bind(&client.scope)
            .bind(client.created_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>> {
        let sql = format!("SELECT {CLIENT_COLS} FROM clients WHERE client_id = $1");
        let row = sqlx::query(&sql)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        let sql = format!("SELECT {CLIENT_COLS} FROM clients ORDER BY created_at, client_id");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    // ---- brute-force throttling -------------------------------------------------------------

    async fn throttle_get(&self, key: &str) -> Result<Option<Throttle>> {
        let row =
            sqlx::query("SELECT failures, window_start, locked_until FROM throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.as_ref().map(throttle_from_row).transpose()
    }

    async fn throttle_hit(&self, key: &str, now: i64, window_secs: i64) -> Result<Throttle> {
        // One upsert statement, so concurrent failures never lose a count. Every CASE reads
        // the row as it was before this statement.
        let row = sqlx::query(
            "INSERT INTO throttle (key, failures, window_start, locked_until) \
             VALUES ($1, 1, $2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN throttle.window_start < $2 - $3 THEN 1 \
                               ELSE throttle.failures + 1 END, \
               window_start = CASE WHEN throttle.window_start < $2 - $3 THEN $2 \
                                   ELSE throttle.window_start END \
             RETURNING failures, window_start, locked_until",
        )
        .bind(key)
        .bind(now)
        .bind(window_secs)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        throttle_from_row(&row)
    }

    async fn throttle_lock(&self, key: &str, locked_until: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO throttle (key, failures, window_start, locked_until) \
             VALUES ($1, 0, 0, $2) \
             ON CONFLICT (key) DO UPDATE SET locked_until = excluded.locked_until",
        )
        .bind(key)
        .bind(locked_until)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn throttle_clear(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    // ---- leases ------------------------------------------------------------------------------

    async fn try_lease(&self, name: &str, holder: &str, now: i64, ttl_secs: i64) -> Result<bool> {
        // One upsert: a concurrent claimant waits for the row (lock or write lock), then
        // re-evaluates the WHERE against the committed row and changes nothing.
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_secs))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    // ---- audit log --------------------------------------------------------------------------

    async fn audit(&self, event: &NewAuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at, event, actor, subject, ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.at)
        .bind(&event.event)
        .bind(event.actor.as_deref())
        .bind(event.subject.as_deref())
        .bind(event.ip.as_deref())
        .bind(event.detail.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        // Built from fixed fragments so each filter can use its index; values are bound.
        let mut qb = sqlx::QueryBuilder::<Sqlite>::new(
            "SELECT id, at, event, actor, subject, ip, detail FROM audit WHERE 1 = 1",
        );
        if let Some(user) = &filter.user {
            qb.push(" AND (actor = ")
                .push_bind(user)
                .push(" OR subject = ")
                .push_bind(user)
                .push(")");
        }
        if let Some(event) = &filter.event {
            qb.push(" AND event = ").push_bind(event);
        }
        if let Some(before) = filter.before_id {
            qb.push(" AND id < ").push_bind(before);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(audit_from_row).collect()
    }

    // ---- moving an installation -------------------------------------------------------------

    async fn export(&self) -> Result<Snapshot> {
        // One deferred transaction: in WAL mode all reads see the snapshot taken by the first.
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let mut out = Snapshot::default();
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users ORDER BY created_at, id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        out.users = rows.iter().map(user_from_row).collect::<Result<_>>()?;
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions ORDER BY created_at, id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        out.sessions = rows.iter().map(session_from_row).collect::<Result<_>>()?;
        let rows = sqlx::query(
            "SELECT hash, session_id, created_at, rotated_at, successor_hash \
             FROM refresh_tokens ORDER BY created_at, hash",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        out.refresh_tokens = rows
            .iter()
            .map(refresh_token_from_row)
            .collect::<Result<_>>()?;
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLS} FROM signing_keys ORDER BY created_at, kid"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        out.keys = rows.iter().map(key_from_row).collect::<Result<_>>()?;
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLS} FROM clients ORDER BY created_at, client_id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        out.clients = rows.iter().map(client_from_row).collect::<Result<_>>()?;
        let rows = sqlx::query(&format!(
            "SELECT {REVOCATION_COLS} FROM revocations ORDER BY cursor"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        out.revocations = rows
            .iter()
            .map(revocation_from_row)
            .collect::<Result<_>>()?;
        out.latest_revocation_cursor =
            sqlx::query_scalar("SELECT n FROM revocation_counter WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        let rows =
            sqlx::query("SELECT id, at, event, actor, subject, ip, detail FROM audit ORDER BY id")
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        out.audit = rows.iter().map(audit_from_row).collect::<Result<_>>()?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn import(&self, snap: &Snapshot) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let used: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM sessions) \
                  + (SELECT COUNT(*) FROM signing_keys) + (SELECT COUNT(*) FROM clients) \
                  + (SELECT COUNT(*) FROM revocations) + (SELECT COUNT(*) FROM audit) \
                  + (SELECT n FROM revocation_counter WHERE id = 1)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if used != 0 {
            return Err(StoreError::Conflict(
                "import target is not empty".to_string(),
            ));
        }
        for u in &snap.users {
            sqlx::query(&format!(
                "INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(&u.id)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(roles_to_json(&u.roles)?)
            .bind(u.disabled)
            .bind(u.token_cutoff)
            .bind(u.created_at)
            .bind(u.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for x in &snap.sessions {
            sqlx::query(&format!(
                "INSERT INTO sessions ({SESSION_COLS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(&x.id)
            .bind(&x.user_id)
            .bind(&x.client_id)
            .bind(x.user_agent.as_deref())
            .bind(x.ip.as_deref())
            .bind(x.created_at)
            .bind(x.last_used_at)
            .bind(x.idle_expires_at)
            .bind(x.absolute_expires_at)
            .bind(x.revoked_at)
            .bind(x.revoked_reason.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for t in &snap.refresh_tokens {
            sqlx::query(
                "INSERT INTO refresh_tokens \
                 (hash, session_id, created_at, rotated_at, successor_hash) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&t.hash)
            .bind(&t.session_id)
            .bind(t.created_at)
            .bind(t.rotated_at)
            .bind(t.successor_hash.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for k in &snap.keys {
            sqlx::query(&format!(
                "INSERT INTO signing_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.private_enc)
            .bind(&k.public_jwk)
            .bind(k.created_at)
            .bind(k.activate_at)
            .bind(k.retire_at)
            .bind(k.remove_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for c in &snap.clients {
            sqlx::query(&format!(
                "INSERT INTO clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .bind(&c.client_id)
            .bind(&c.name)
            .bind(&c.secret_hash)
            .bind(roles_to_json(&c.roles)?)
            .bind(&c.scope)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let mut latest = snap.latest_revocation_cursor;
        for r in &snap.revocations {
            latest = latest.max(r.cursor);
            sqlx::query(&format!(
                "INSERT INTO revocations ({REVOCATION_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .bind(r.cursor)
            .bind(r.kind.as_str())
            .bind(&r.subject)
            .bind(r.cutoff)
            .bind(r.created_at)
            .bind(r.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        // Verifiers following the feed hold cursors from the source: never hand them out again.
        sqlx::query("UPDATE revocation_counter SET n = $1 WHERE id = 1")
            .bind(latest)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for a in &snap.audit {
            // Explicit ids also advance AUTOINCREMENT's sqlite_sequence.
            sqlx::query(
                "INSERT INTO audit (id, at, event, actor, subject, ip, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(a.id)
            .bind(a.at)
            .bind(&a.event)
            .bind(a.actor.as_deref())
            .bind(a.subject.as_deref())
            .bind(a.ip.as_deref())
            .bind(a.detail.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        self.notify(StoreNotice::KeysChanged);
        self.notify(StoreNotice::Revocation(latest));
        Ok(())
    }
}
