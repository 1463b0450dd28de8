//! The PostgreSQL engine, for several server nodes sharing one database.
//!
//! Concurrency rests on row locks under READ COMMITTED: two rotations of the same refresh
//! token both `UPDATE ... WHERE rotated_at IS NULL`; the second waits for the first's row lock,
//! re-evaluates the condition against the committed row and updates nothing. Revocation
//! cursors come from a one-row counter bumped in the appending transaction, which serializes
//! appenders: cursor N+1 cannot be handed out before N is committed or rolled back.
//!
//! Change notices travel over `pg_notify('tessera', ...)` in the writing transaction (so they
//! are delivered only on commit) and reach every node's [`Store::subscribe`] through one
//! `LISTEN` connection per process, started on the first subscription. The same connection
//! also listens on a channel of its own, to which the store sends a heartbeat every 250 ms:
//! PostgreSQL delivers notifications in commit order, so a heartbeat's arrival proves that
//! every notice committed before it was sent has arrived ([`Store::peer_changes`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Postgres, Row};
use tokio::sync::broadcast;

use crate::error::db_err;
use crate::{
    AuditEvent, AuditFilter, Client, NewAuditEvent, NewRevocation, NewSession, NewUser,
    PeerChanges, Refresh, RefreshTokenRecord, Result, Revocation, RevocationKind, Rotation,
    Session, SigningKeyRecord, Snapshot, Store, StoreError, StoreNotice, Throttle, User,
    UserUpdate,
};

/// The LISTEN/NOTIFY channel carrying [`StoreNotice`]s between nodes.
pub const NOTIFY_CHANNEL: &str = "tessera";

const USER_COLS: &str =
    "id, email, password_hash, roles, disabled, token_cutoff, created_at, updated_at";
const SESSION_COLS: &str = "id, user_id, client_id, user_agent, ip, created_at, last_used_at, \
     idle_expires_at, absolute_expires_at, revoked_at, revoked_reason";
/// How many columns [`SESSION_COLS`] names.
const SESSION_COL_COUNT: usize = 11;
const KEY_COLS: &str =
    "kid, alg, private_enc, public_jwk, created_at, activate_at, retire_at, remove_at";
const CLIENT_COLS: &str = "client_id, name, secret_hash, roles, scope, created_at";
const REVOCATION_COLS: &str = "cursor, kind, subject, cutoff, created_at, expires_at";

/// Aborts the listener task when the store goes away.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the listener sends itself a heartbeat notification.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);

/// How long a request waits for a pooled connection (see `connect_with`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A pooled connection idle this long is pinged before use (see `connect_with`).
const IDLE_PING: Duration = Duration::from_secs(1);

/// How long [`Store::ping`] (readiness) waits for the database.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The origin of heartbeat timestamps (monotonic nanoseconds since this instant, taken once
/// per process).
fn heartbeat_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// What the listener knows of other nodes' changes ([`PeerChanges::Shared`]), shared between
/// the listener task and [`Store::peer_changes`].
#[derive(Debug, Default)]
struct PeerWatch {
    /// Bumped for every notice received and on every (re)connection.
    generation: AtomicU64,
    /// Send time of the latest heartbeat received back, as nanoseconds since
    /// [`heartbeat_origin`] plus one; 0 = none on the current connection.
    heard_until: AtomicU64,
}

impl PeerWatch {
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn heard(&self, sent_nanos: u64) {
        self.heard_until
            .fetch_max(sent_nanos.saturating_add(1), Ordering::SeqCst);
    }

    fn lost(&self) {
        self.heard_until.store(0, Ordering::SeqCst);
        self.changed();
    }

    fn snapshot(&self) -> PeerChanges {
        // Heard-until first: a generation read after it is at least as new, so a change
        // counted before the heartbeat arrived is never missed.
        let heard = self.heard_until.load(Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst);
        let heard_until = heard
            .checked_sub(1)
            .map(|n| heartbeat_origin() + Duration::from_nanos(n));
        PeerChanges::Shared {
            generation,
            heard_until,
        }
    }
}

/// PostgreSQL implementation of [`crate::Store`].
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    notices: broadcast::Sender<StoreNotice>,
    listener: Mutex<Option<AbortOnDrop>>,
    watch: Arc<PeerWatch>,
}

/// Is `name` a plain SQL identifier we can use as a schema name without quoting tricks?
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

impl PostgresStore {
    /// Connects to the database named by a `postgres://` or `postgresql://` URL. The URL may
    /// select a schema through libpq startup options, e.g. `?options=-csearch_path%3Dtessera`.
    /// Does not migrate.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = parse_url(url)?;
        Self::connect_with(options).await
    }

    /// Connects with every connection's `search_path` set to `schema`, creating the schema
    /// when missing. Tests use it to give each test its own schema in one database; a
    /// deployment can use it to keep Tessera's tables apart. `schema` must be a plain
    /// identifier (letters, digits, `_`).
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self> {
        if !valid_schema_name(schema) {
            return Err(StoreError::Config(format!(
                "invalid schema name {schema:?}"
            )));
        }
        let options = parse_url(url)?;
        let mut conn = options.connect().await.map_err(db_err)?;
        // The name was checked above to be a plain identifier, so quoting it is enough.
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut conn)
            .await
            .map_err(db_err)?;
        drop(conn);
        Self::connect_with(options.options([("search_path", schema)])).await
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        // One direct attempt first: the pool would retry a refused connection until its
        // acquire timeout, and an operator with a wrong URL deserves an answer now.
        // Callers that start together with the database retry on `Unavailable`.
        options
            .connect()
            .await
            .map_err(db_err)?
            .close()
            .await
            .map_err(db_err)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            // sqlx pings every connection it hands out (a round trip of its own before each
            // statement) and again when it comes back; only the first is optional. Ping only
            // a connection that sat idle, which is where a restarted database shows.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_PING {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            // While the database is down the pool retries a refused connection until this
            // timeout, and the request waits that long for its 503: keep it short, so a node
            // without its database answers within seconds (a connection free within 3 s
            // otherwise means the node is overloaded, and a 503 is the right answer too).
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db_err)?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        let (notices, _) = broadcast::channel(crate::NOTICE_CAPACITY);
        Self {
            pool,
            notices,
            listener: Mutex::new(None),
            watch: Arc::new(PeerWatch::default()),
        }
    }

    /// The underlying pool, for tooling and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts the LISTEN task once (needs a Tokio runtime; without one, notices stay local).
    fn ensure_listener(&self) {
        let Ok(mut slot) = self.listener.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let task = handle.spawn(listen_loop(
            self.pool.clone(),
            self.notices.clone(),
            Arc::clone(&self.watch),
        ));
        *slot = Some(AbortOnDrop(task));
    }
}

fn parse_url(url: &str) -> Result<PgConnectOptions> {
    url.parse::<PgConnectOptions>()
        .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))
}

/// Payload of a notice: the schema scopes it, so several installations (or test schemas)
/// sharing a database do not hear each other.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    schema: String,
    notice: StoreNotice,
}

/// Sends a notice inside the caller's transaction; PostgreSQL delivers it on commit only.
async fn pg_notify(conn: &mut PgConnection, notice: StoreNotice) -> Result<()> {
    let notice =
        serde_json::to_string(&notice).map_err(|e| StoreError::Database(format!("notice: {e}")))?;
    sqlx::query(
        "SELECT pg_notify($1, json_build_object('schema', current_schema(), \
                                              'notice', $2::json)::text)",
    )
    .bind(NOTIFY_CHANNEL)
    .bind(notice)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Rebroadcasts notifications to local subscribers, reconnecting with capped exponential
/// backoff. After every (re)connection it sends a resync pair (`KeysChanged` and the latest
/// revocation cursor), since notices sent while disconnected are lost.
async fn listen_loop(pool: PgPool, tx: broadcast::Sender<StoreNotice>, watch: Arc<PeerWatch>) {
    let mut backoff = Duration::from_millis(100);
    // This store's own heartbeat channel: unique per store (several stores may share a
    // process, as the tests' nodes do), so no other node hears it.
    static STORES: AtomicU64 = AtomicU64::new(0);
    let channel = format!(
        "tessera_hb_{}_{}_{}",
        std::process::id(),
        STORES.fetch_add(1, Ordering::Relaxed),
        heartbeat_origin().elapsed().as_nanos()
    );
    loop {
        let result = listen_once(&pool, &tx, &watch, &channel, &mut backoff).await;
        // Whatever was in flight on the lost connection is gone: no longer sure of anything.
        watch.lost();
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "store notification listener lost; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Sends a heartbeat to `channel` every [`HEARTBEAT_INTERVAL`]: its payload is the send time
/// (nanoseconds since [`heartbeat_origin`]), taken before the statement runs.
async fn heartbeat_loop(pool: PgPool, channel: String) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sent = u64::try_from(heartbeat_origin().elapsed().as_nanos()).unwrap_or(u64::MAX);
        let r = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&channel)
            .bind(sent.to_string())
            .execute(&pool)
            .await;
        if let Err(e) = r {
            // The listener notices a dead database by itself; a missed beat only makes
            // `peer_changes` report an older horizon.
            tracing::debug!(error = %e, "store heartbeat failed");
        }
    }
}

async fn listen_once(
    pool: &PgPool,
    tx: &broadcast::Sender<StoreNotice>,
    watch: &PeerWatch,
    channel: &str,
    backoff: &mut Duration,
) -> Result<()> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    let mut listener = PgListener::connect_with(pool).await.map_err(db_err)?;
    // Reconnection is ours to schedule (so we can resync), not the driver's.
    listener.ignore_pool_close_event(true);
    listener
        .listen_all([NOTIFY_CHANNEL, channel])
        .await
        .map_err(db_err)?;
    // Notices committed while we were not listening are lost: count a change, so whatever
    // was read from the store before now is treated as stale.
    watch.changed();
    let latest: i64 = sqlx::query_scalar("SELECT n FROM revocation_counter WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(db_err)?
        .unwrap_or(0);
    *backoff = Duration::from_millis(100);
    let _ = tx.send(StoreNotice::KeysChanged);
    let _ = tx.send(StoreNotice::Revocation(latest));
    let _beat = AbortOnDrop(tokio::spawn(heartbeat_loop(
        pool.clone(),
        channel.to_string(),
    )));
    loop {
        let Some(n) = listener.try_recv().await.map_err(db_err)? else {
            return Err(StoreError::Unavailable(
                "notification connection closed".to_string(),
            ));
        };
        if n.channel() == channel {
            if let Ok(sent) = n.payload().parse::<u64>() {
                watch.heard(sent);
            }
            continue;
        }
        match serde_json::from_str::<Payload>(n.payload()) {
            Ok(p) if p.schema == schema => {
                // Counted before anyone is woken, and before any later heartbeat is read.
                watch.changed();
                let _ = tx.send(p.notice);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring malformed store notification"),
        }
    }
}

// ---- row decoding ---------------------------------------------------------------------------

fn user_from_row(row: &PgRow) -> Result<User> {
    user_from_row_at(row, 0)
}

fn user_from_row_at(row: &PgRow, o: usize) -> Result<User> {
    Ok(User {
        id: row.try_get(o).map_err(db_err)?,
        email: row.try_get(o + 1).map_err(db_err)?,
        password_hash: row.try_get(o + 2).map_err(db_err)?,
        roles: row.try_get(o + 3).map_err(db_err)?,
        disabled: row.try_get(o + 4).map_err(db_err)?,
        token_cutoff: row.try_get(o + 5).map_err(db_err)?,
        created_at: row.try_get(o + 6).map_err(db_err)?,
        updated_at: row.try_get(o + 7).map_err(db_err)?,
    })
}

fn session_from_row(row: &PgRow) -> Result<Session> {
    session_from_row_at(row, 0)
}

fn session_from_row_at(row: &PgRow, o: usize) -> Result<Session> {
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

fn revocation_from_row(row: &PgRow) -> Result<Revocation> {
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

fn key_from_row(row: &PgRow) -> Result<SigningKeyRecord> {
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

fn client_from_row(row: &PgRow) -> Result<Client> {
    Ok(Client {
        client_id: row.try_get(0).map_err(db_err)?,
        name: row.try_get(1).map_err(db_err)?,
        secret_hash: row.try_get(2).map_err(db_err)?,
        roles: row.try_get(3).map_err(db_err)?,
        scope: row.try_get(4).map_err(db_err)?,
        created_at: row.try_get(5).map_err(db_err)?,
    })
}

fn refresh_token_from_row(row: &PgRow) -> Result<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        hash: row.try_get(0).map_err(db_err)?,
        session_id: row.try_get(1).map_err(db_err)?,
        created_at: row.try_get(2).map_err(db_err)?,
        rotated_at: row.try_get(3).map_err(db_err)?,
        successor_hash: row.try_get(4).map_err(db_err)?,
    })
}

fn throttle_from_row(row: &PgRow) -> Result<Throttle> {
    Ok(Throttle {
        failures: row.try_get(0).map_err(db_err)?,
        window_start: row.try_get(1).map_err(db_err)?,
        locked_until: row.try_get(2).map_err(db_err)?,
    })
}

fn audit_from_row(row: &PgRow) -> Result<AuditEvent> {
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

/// A refresh token's rotation state with its session and the session's user.
struct TokenState {
    rotated_at: Option<i64>,
    successor_hash: Option<Vec<u8>>,
    successor_used: bool,
    session: Session,
    user: User,
}

impl TokenState {
    fn already_rotated(self, rotated_at: i64) -> Refresh {
        let rotation = Rotation::AlreadyRotated {
            rotated_at,
            successor_hash: self.successor_hash.unwrap_or_default(),
            successor_used: self.successor_used,
            session: self.session,
        };
        Refresh::Rotation(rotation, Some(self.user))
    }
}

async fn token_state(conn: &mut PgConnection, hash: &[u8]) -> Result<Option<TokenState>> {
    let sql = format!(
        "SELECT rt.rotated_at, rt.successor_hash, \
                COALESCE((SELECT nx.rotated_at IS NOT NULL FROM refresh_tokens nx \
                           WHERE nx.hash = rt.successor_hash), FALSE), \
                s.{}, u.{} \
         FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
           JOIN users u ON u.id = s.user_id \
         WHERE rt.hash = $1",
        SESSION_COLS.replace(", ", ", s."),
        USER_COLS.replace(", ", ", u.")
    );
    let Some(row) = sqlx::query(&sql)
        .bind(hash)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?
    else {
        return Ok(None);
    };
    Ok(Some(TokenState {
        rotated_at: row.try_get(0).map_err(db_err)?,
        successor_hash: row.try_get(1).map_err(db_err)?,
        successor_used: row.try_get(2).map_err(db_err)?,
        session: session_from_row_at(&row, 3)?,
        user: user_from_row_at(&row, 3 + SESSION_COL_COUNT)?,
    }))
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<()> {
        // sqlx's own migration lock is keyed by the database name, so every schema of one
        // database queues on it, and it stays held on a pooled connection when a migration
        // fails, blocking every later migrator. Lock per schema instead, on a connection
        // that is closed afterwards: the lock can never outlive this call.
        let mut conn = self.pool.acquire().await.map_err(db_err)?.detach();
        let result = async {
            sqlx::query(
                "SELECT pg_advisory_lock(hashtext('tessera.migrate.' || current_schema()))",
            )
            .execute(&mut conn)
            .await?;
            let mut migrator = sqlx::migrate!("migrations/postgres");
            migrator.set_locking(false);
            migrator.run_direct(&mut conn).await?;
            Ok::<(), sqlx::Error>(())
        }
        .await;
        // Closing ends the session, which releases the advisory lock even after an error.
        let _ = sqlx::Connection::close(conn).await;
        result.map_err(db_err)
    }

    async fn ping(&self) -> Result<()> {
        // Readiness must fail fast when the database is away, not after the pool's acquire
        // timeout: a load balancer's health check gives up long before.
        match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await
        {
            Ok(r) => r.map(|_| ()).map_err(db_err),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {PING_TIMEOUT:?}"
            ))),
        }
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreNotice> {
        let rx = self.notices.subscribe();
        self.ensure_listener();
        rx
    }

    fn peer_changes(&self) -> PeerChanges {
        let snapshot = self.watch.snapshot();
        if matches!(
            snapshot,
            PeerChanges::Shared {
                heard_until: None,
                ..
            }
        ) {
            // Nobody subscribed yet: start the listener, so the horizon starts moving.
            self.ensure_listener();
        }
        snapshot
    }

    // ---- users ------------------------------------------------------------------------------

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let sql = format!(
            "INSERT INTO users (id, email, password_hash, roles, disabled, token_cutoff, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, FALSE, NULL, $5, $5) \
             RETURNING {USER_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(&user.roles)
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
        // strpos() rather than LIKE: a search for `%` or `_` means those characters.
        let sql = format!(
            "SELECT {USER_COLS} FROM users \
             WHERE $1::text IS NULL OR strpos(lower(email), lower($1::text)) > 0 \
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
        // GREATEST ignores NULL, so a first cutoff is simply set; later ones only move it
        // forward.
        let sql = format!(
            "UPDATE users SET \
               password_hash = COALESCE($2::text, password_hash), \
               roles = COALESCE($3::text[], roles), \
               disabled = COALESCE($4::boolean, disabled), \
               token_cutoff = GREATEST(token_cutoff, $5::bigint), \
               updated_at = $6 \
             WHERE id = $1 RETURNING {USER_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(update.password_hash.as_deref())
            .bind(update.roles.as_deref())
            .bind(update.disabled)
            .bind(update.token_cutoff)
            .bind(update.updated_at)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn delete_user(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    // ---- sessions and refresh tokens ----------------------------------------------------------

    async fn create_session(&self, session: &NewSession, refresh_hash: &[u8]) -> Result<Session> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
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
        // The common case (a live session of the presenting client, a fresh token) is one
        // statement and one round trip, committed on its own, the user read with it: refresh
        // is bound by a single store round trip.
        //
        // `live` locks the session row (FOR UPDATE re-checks liveness against the latest
        // committed row after waiting), so a concurrent revocation either wins and nothing is
        // rotated, or waits for this rotation. `upd` then takes the token's row lock; a
        // concurrent rotation of the same token that committed first makes READ COMMITTED
        // re-check `rotated_at IS NULL` on the new row version, and this one updates nothing.
        // A duplicate `new_hash` fails the whole statement (Conflict), changing nothing.
        let sql = format!(
            "WITH live AS ( \
               SELECT s.id FROM sessions s \
               WHERE s.id = (SELECT session_id FROM refresh_tokens WHERE hash = $1) \
                 AND s.revoked_at IS NULL \
                 AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2 \
                 AND ($5::text IS NULL OR s.client_id = $5::text) \
               FOR UPDATE \
             ), upd AS ( \
               UPDATE refresh_tokens SET rotated_at = $2, successor_hash = $3 \
               WHERE hash = $1 AND rotated_at IS NULL \
                 AND session_id IN (SELECT id FROM live) \
               RETURNING session_id \
             ), ins AS ( \
               INSERT INTO refresh_tokens (hash, session_id, created_at) \
               SELECT $3, session_id, $2 FROM upd \
             ), ses AS ( \
               UPDATE sessions SET last_used_at = $2, \
                 idle_expires_at = LEAST($2 + $4, absolute_expires_at) \
               WHERE id IN (SELECT session_id FROM upd) \
               RETURNING {SESSION_COLS} \
             ) \
             SELECT ses.*, u.{} FROM ses JOIN users u ON u.id = ses.user_id",
            USER_COLS.replace(", ", ", u.")
        );
        // Otherwise the state is read back to say why nothing was rotated. If it shows a
        // fresh token of a live session again, a racer that held the locks rolled back:
        // try again (bounded).
        for _ in 0..3 {
            let row = sqlx::query(&sql)
                .bind(old_hash)
                .bind(now)
                .bind(new_hash)
                .bind(idle_secs)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            if let Some(row) = row {
                let session = session_from_row(&row)?;
                let user = user_from_row_at(&row, SESSION_COL_COUNT)?;
                return Ok(Refresh::Rotation(Rotation::Rotated(session), Some(user)));
            }
            let mut conn = self.pool.acquire().await.map_err(db_err)?;
            match token_state(&mut conn, old_hash).await? {
                None => return Ok(Refresh::Rotation(Rotation::NotFound, None)),
                Some(st) if client_id.is_some_and(|c| c != st.session.client_id) => {
                    return Ok(Refresh::OtherClient(st.session))
                }
                Some(st) if !st.session.is_live(now) => {
                    let user = Some(st.user);
                    return Ok(Refresh::Rotation(
                        Rotation::SessionInactive(st.session),
                        user,
                    ));
                }
                Some(st) => {
                    if let Some(at) = st.rotated_at {
                        return Ok(st.already_rotated(at));
                    }
                }
            }
        }
        Err(StoreError::Unavailable(
            "refresh token rotation kept conflicting; retry".to_string(),
        ))
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
               AND ($4::text IS NULL OR id <> $4::text) \
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
        // The counter row's lock is held until commit, so appenders on every node queue
        // here and commit in cursor order: no reader sees N+1 before N.
        let mut tx = self.pool.begin().await.map_err(db_err)?;
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
        pg_notify(&mut tx, StoreNotice::Revocation(stored.cursor)).await?;
        tx.commit().await.map_err(db_err)?;
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
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM revocations \
             WHERE kind = 'token' AND subject = $1 AND expires_at >= $2)",
        )
        .bind(jti)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
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
        let mut tx = self.pool.begin().await.map_err(db_err)?;
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
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        pg_notify(&mut tx, StoreNotice::KeysChanged).await?;
        tx.commit().await.map_err(db_err)
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
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "UPDATE signing_keys SET retire_at = COALESCE($2::bigint, retire_at), \
               remove_at = COALESCE($3::bigint, remove_at) WHERE kid = $1",
        )
        .bind(kid)
        .bind(retire_at)
        .bind(remove_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        pg_notify(&mut tx, StoreNotice::KeysChanged).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn prune_keys(&self, now: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done =
            sqlx::query("DELETE FROM signing_keys WHERE remove_at IS NOT NULL AND remove_at < $1")
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if done.rows_affected() > 0 {
            pg_notify(&mut tx, StoreNotice::KeysChanged).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    // ---- OAuth clients ----------------------------------------------------------------------

    async fn create_client(&self, client: &Client) -> Result<()> {
        let sql = format!("INSERT INTO clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6)");
        sqlx::query(&sql)
            .bind(&client.client_id)
            .bind(&client.name)
            .bind(&client.secret_hash)
            .bind(&client.roles)
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
        // One upsert: concurrent failures serialize on the row and never lose a count.
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
             VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
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
        let mut qb = sqlx::QueryBuilder::<Postgres>::new(
            "SELECT id, at, event, actor, subject, ip, detail::text FROM audit WHERE TRUE",
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
        // One REPEATABLE READ transaction: every read sees the same snapshot.
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
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
        let rows = sqlx::query(
            "SELECT id, at, event, actor, subject, ip, detail::text FROM audit ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        out.audit = rows.iter().map(audit_from_row).collect::<Result<_>>()?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn import(&self, snap: &Snapshot) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Nothing else may write while the emptiness check and the copy run.
        sqlx::query("LOCK TABLE users, sessions, refresh_tokens, signing_keys, clients, revocations, revocation_counter, audit IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
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
            .bind(&u.roles)
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
            .bind(&c.roles)
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
            sqlx::query(
                "INSERT INTO audit (id, at, event, actor, subject, ip, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
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
        // Explicit ids do not advance the identity sequence; move it past them.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('audit', 'id'), \
                           (SELECT COALESCE(MAX(id), 0) + 1 FROM audit), false)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        pg_notify(&mut tx, StoreNotice::KeysChanged).await?;
        pg_notify(&mut tx, StoreNotice::Revocation(latest)).await?;
        tx.commit().await.map_err(db_err)
    }
}
