//! Persistence for Tessera.
//!
//! One [`Store`] trait, two engines: SQLite (embedded, the default) and PostgreSQL
//! (to scale out over several server nodes). The server only ever sees
//! `Arc<dyn Store>`; it never knows which engine it runs on.
//!
//! Conventions shared by every method:
//! - times are Unix seconds (`i64`), always passed in by the caller (the store never reads a
//!   clock, so tests can inject time);
//! - secrets are never stored: refresh tokens and client secrets arrive already hashed
//!   (`Vec<u8>`, SHA-256), private signing keys arrive already encrypted;
//! - uniqueness is enforced by constraints and reported as [`StoreError::Conflict`];
//! - an unreachable database is [`StoreError::Unavailable`] (the server answers 503).
//!
//! # Usage
//!
//! ```no_run
//! # async fn run() -> tessera_store::Result<()> {
//! let store = tessera_store::connect("sqlite://./tessera-data/tessera.db").await?;
//! store.migrate().await?;
//! let users = store.count_users().await?;
//! # let _ = users; Ok(()) }
//! ```
//!
//! # Concurrency guarantees (both engines, tested under load)
//!
//! - [`Store::rotate_refresh_token`]: concurrent calls with the same old token produce
//!   exactly one `Rotated`; the rest see `AlreadyRotated` with the same successor. A
//!   rotation racing a revocation is all or nothing. This is what makes refresh-token reuse
//!   detection (RFC 9700 §4.14.2) sound.
//! - [`Store::append_revocation`]: cursors increase strictly, are never reused (not even
//!   after pruning or [`copy_all`]), and a reader never sees cursor N+1 before N, so a
//!   verifier following the feed by cursor cannot skip an event.
//! - [`Store::throttle_hit`]: concurrent failures are all counted.
//!
//! # Engines
//!
//! - [`sqlite::SqliteStore`]: one file, WAL, foreign keys, every multi-statement write in
//!   `BEGIN IMMEDIATE`. Change notices are local to the process.
//! - [`postgres::PostgresStore`]: any number of nodes on one database; notices cross nodes
//!   via LISTEN/NOTIFY. A schema can be chosen per store (tests use one per test, see
//!   [`testing`]).
//!
//! Migrations live in `migrations/sqlite` and `migrations/postgres`, numbered alike.

#![warn(missing_docs)]

mod error;
mod model;
pub mod postgres;
pub mod sqlite;
pub mod testing;

pub use error::StoreError;
pub use model::*;

use std::sync::Arc;

/// Capacity of the change-notification channel ([`Store::subscribe`]).
pub(crate) const NOTICE_CAPACITY: usize = 1024;

/// Result type of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The persistence interface of the auth server.
///
/// Every method is one atomic operation: either all of its writes happen or none.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Applies pending migrations. Idempotent.
    async fn migrate(&self) -> Result<()>;
    /// Cheap round trip to the database, for `/readyz`.
    async fn ping(&self) -> Result<()>;
    /// The engine's name, for logs and metrics only (`"sqlite"` or `"postgres"`).
    fn engine(&self) -> &'static str;
    /// Change notifications for this process: a [`StoreNotice`] after every committed
    /// revocation and key change, including those written by other server nodes sharing the
    /// same PostgreSQL database (LISTEN/NOTIFY). Notices are wake-up hints, not data: they
    /// can repeat or arrive out of order (after a reconnection the PostgreSQL listener sends
    /// `KeysChanged` and the latest cursor, since notices sent meanwhile were lost), so read
    /// the store from your own cursor on each one. A receiver that falls behind gets
    /// `RecvError::Lagged` and should do the same.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreNotice>;
    /// How current this process's knowledge of other nodes' changes is ([`PeerChanges`]).
    /// Cheap (atomic loads): meant to be asked on every cache lookup. SQLite answers
    /// [`PeerChanges::Local`]; PostgreSQL counts the notices its listener received and proves
    /// the listener alive with a heartbeat: a `NOTIFY` to itself every 250 ms, whose arrival
    /// shows that every notice committed before it was sent has arrived too (PostgreSQL
    /// delivers notifications in commit order).
    fn peer_changes(&self) -> PeerChanges {
        PeerChanges::Local
    }

    // ---- users ----------------------------------------------------------------------------

    /// Inserts a user. `Conflict` when the (already normalized) email exists.
    async fn create_user(&self, user: &NewUser) -> Result<User>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: &str) -> Result<Option<User>>;
    /// Looks a user up by normalized email.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// Number of users (first-run setup is offered while it is zero).
    async fn count_users(&self) -> Result<u64>;
    /// Lists users ordered by email, optionally filtered by a case-insensitive substring of
    /// the email.
    async fn list_users(&self, search: Option<&str>, limit: u32, offset: u32) -> Result<Vec<User>>;
    /// Applies the present fields of `update`. When `update.token_cutoff` is set the stored
    /// cutoff becomes the maximum of the old and the new value. Returns the updated user, or
    /// `None` when no such user exists.
    async fn update_user(&self, id: &str, update: &UserUpdate) -> Result<Option<User>>;
    /// Deletes a user with their sessions and refresh tokens. Returns whether it existed.
    async fn delete_user(&self, id: &str) -> Result<bool>;

    // ---- sessions and refresh tokens --------------------------------------------------------

    /// Creates a session and its first refresh token (by hash) in one transaction.
    async fn create_session(&self, session: &NewSession, refresh_hash: &[u8]) -> Result<Session>;
    /// Looks a session up by id (revoked or not).
    async fn session_by_id(&self, id: &str) -> Result<Option<Session>>;
    /// Sessions of a user that are neither revoked nor expired at `now`, newest first.
    async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>>;
    /// Atomically rotates the refresh token `old_hash` to `new_hash`.
    ///
    /// - `old_hash` unknown: [`Rotation::NotFound`].
    /// - `old_hash` not yet rotated and its session live at `now` (not revoked, idle and
    ///   absolute expiry in the future): marks it rotated at `now` with successor `new_hash`,
    ///   inserts `new_hash`, sets the session's `last_used_at = now` and
    ///   `idle_expires_at = min(now + idle_secs, absolute_expires_at)`; returns
    ///   [`Rotation::Rotated`] with the updated session.
    /// - already rotated: returns [`Rotation::AlreadyRotated`] with when, its successor's hash,
    ///   whether that successor has itself been rotated, and the session. The caller decides
    ///   between the grace window and reuse detection.
    /// - session revoked or expired: [`Rotation::SessionInactive`], whether or not the token
    ///   was rotated before (a dead session ends the whole chain; nothing is changed).
    /// - `new_hash` already stored (a 2^-256 accident or a caller bug): `Conflict`, nothing
    ///   changed.
    ///
    /// Concurrent calls with the same `old_hash` must yield exactly one `Rotated`; the
    /// others see `AlreadyRotated` (SQLite: `BEGIN IMMEDIATE` serializes them; PostgreSQL:
    /// the row lock of `UPDATE ... WHERE rotated_at IS NULL`).
    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: i64,
        idle_secs: i64,
    ) -> Result<Rotation> {
        match self
            .rotate_refresh_token_as(old_hash, new_hash, now, idle_secs, None)
            .await?
        {
            Refresh::Rotation(rotation, _) => Ok(rotation),
            Refresh::OtherClient(_) => Err(StoreError::Database(
                "client mismatch without a client to check".to_string(),
            )),
        }
    }
    /// The server's refresh step: [`Store::rotate_refresh_token`] of a token presented by
    /// `client_id`, reading the session's user in the same transaction (one round trip on
    /// PostgreSQL when the token rotates).
    ///
    /// - `client_id` given and the token's session belongs to another client:
    ///   [`Refresh::OtherClient`], whatever the token's or the session's state, and nothing
    ///   is changed (so a client can never burn another client's token);
    /// - otherwise [`Refresh::Rotation`] with exactly what [`Store::rotate_refresh_token`]
    ///   returns (the same concurrency guarantees) and the session's user.
    async fn rotate_refresh_token_as(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: i64,
        idle_secs: i64,
        client_id: Option<&str>,
    ) -> Result<Refresh>;
    /// Finds the session a refresh token (by hash) belongs to, without changing anything.
    async fn refresh_token_session(&self, hash: &[u8]) -> Result<Option<Session>>;
    /// Revokes one session (idempotent). Returns the session (as revoked) if it existed and
    /// was live before this call, so the caller records one revocation event only. A session
    /// that already expired is left as it is and gives `None`: its tokens are dead anyway.
    async fn revoke_session(&self, id: &str, now: i64, reason: &str) -> Result<Option<Session>>;
    /// Revokes every live session of a user except `keep` (if any). Returns the sessions
    /// that this call revoked.
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
        reason: &str,
    ) -> Result<Vec<Session>>;
    /// Deletes sessions (and their refresh tokens) that expired or were revoked before
    /// `before`. Returns how many went.
    async fn prune_sessions(&self, before: i64) -> Result<u64>;

    // ---- revocation feed ---------------------------------------------------------------------

    /// Appends a revocation event and returns it with its cursor. Cursors increase strictly
    /// and are visible to readers in cursor order (no reader may see cursor N+1 before N).
    async fn append_revocation(&self, event: &NewRevocation) -> Result<Revocation>;
    /// Events with `cursor > since` that have not expired at `now` (`expires_at >= now`, the
    /// complement of [`Store::prune_revocations`]), in cursor order, at most `limit`.
    async fn revocations_since(&self, since: i64, now: i64, limit: u32) -> Result<Vec<Revocation>>;
    /// The smallest cursor still stored (events before it were pruned), if any.
    async fn oldest_revocation_cursor(&self) -> Result<Option<i64>>;
    /// The largest cursor ever handed out (0 when none).
    async fn latest_revocation_cursor(&self) -> Result<i64>;
    /// Is the single token `jti` revoked (RFC 7009)?
    async fn is_token_revoked(&self, jti: &str, now: i64) -> Result<bool>;
    /// Deletes events whose `expires_at < now`. Returns how many went.
    async fn prune_revocations(&self, now: i64) -> Result<u64>;

    // ---- signing keys ------------------------------------------------------------------------

    /// Inserts a signing key. `Conflict` on a duplicate kid.
    async fn insert_key(&self, key: &SigningKeyRecord) -> Result<()>;
    /// Every stored key, oldest first.
    async fn list_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Sets the retirement and removal times of a key (`None` leaves a field unchanged).
    /// An unknown kid changes nothing and is not an error.
    async fn update_key_schedule(
        &self,
        kid: &str,
        retire_at: Option<i64>,
        remove_at: Option<i64>,
    ) -> Result<()>;
    /// Deletes keys whose `remove_at` is before `now`.
    async fn prune_keys(&self, now: i64) -> Result<u64>;

    // ---- OAuth clients -----------------------------------------------------------------------

    /// Inserts a client. `Conflict` on a duplicate client id.
    async fn create_client(&self, client: &Client) -> Result<()>;
    /// Looks a client up by id.
    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>>;
    /// Every client, by creation time.
    async fn list_clients(&self) -> Result<Vec<Client>>;
    /// Deletes a client. Returns whether it existed.
    async fn delete_client(&self, client_id: &str) -> Result<bool>;

    // ---- brute-force throttling ---------------------------------------------------------------

    /// Current throttle state of a key (`acct:<email>`, `ip:<addr>`), if any.
    async fn throttle_get(&self, key: &str) -> Result<Option<Throttle>>;
    /// Records one failure atomically: when the stored state's `window_start` is older than
    /// `now - window_secs` (or there is none) the counter restarts at 1 with
    /// `window_start = now`, otherwise it increments. Returns the new state; the caller
    /// computes the delay from `failures` and stores it with [`Store::throttle_lock`].
    async fn throttle_hit(&self, key: &str, now: i64, window_secs: i64) -> Result<Throttle>;
    /// Sets `locked_until` of a key (after [`Store::throttle_hit`]); creates the state
    /// (no failures) when the key has none.
    async fn throttle_lock(&self, key: &str, locked_until: i64) -> Result<()>;
    /// Forgets a key (after a successful login).
    async fn throttle_clear(&self, key: &str) -> Result<()>;

    // ---- leases (one node does a periodic job) -------------------------------------------

    /// Claims the lease `name` for `holder` until `now + ttl_secs`, atomically: succeeds
    /// (`true`) when nobody holds it, when the previous holder's lease expired
    /// (`expires_at <= now`), or when `holder` already holds it (renewal). Of several nodes
    /// racing for the same free lease exactly one gets `true`. Used so that only one of
    /// several server nodes performs a scheduled key rotation.
    async fn try_lease(&self, name: &str, holder: &str, now: i64, ttl_secs: i64) -> Result<bool>;

    // ---- audit log ---------------------------------------------------------------------------

    /// Appends an audit event.
    async fn audit(&self, event: &NewAuditEvent) -> Result<()>;
    /// Audit events newest first, filtered by actor/subject user id and event name, paged by
    /// `before_id` (exclusive; `None` for the newest page).
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;

    // ---- moving an installation (`tessera migrate`) --------------------------------------------

    /// Reads every row [`Snapshot`] carries, from one consistent read snapshot of the
    /// database. Used by [`copy_all`]; the server does not call it.
    async fn export(&self) -> Result<Snapshot>;
    /// Writes a snapshot into this store in one transaction, keeping ids, hashes, cursors
    /// and audit ids as they were, so every session and refresh token keeps working.
    /// The store must be migrated and empty (no users, sessions, keys, clients, revocations
    /// or audit events, and no cursor handed out yet); otherwise `Conflict` and nothing is
    /// written. Subscribers get `KeysChanged` and the latest revocation cursor afterwards.
    async fn import(&self, snapshot: &Snapshot) -> Result<()>;
}

/// Copies a whole installation from one store to another (e.g. SQLite to PostgreSQL) so
/// that nobody is logged out: [`Store::export`] from `from`, [`Store::import`] into `to`.
/// `to` is migrated here and must be empty; `from` must already be migrated (it is only
/// read). Stop the servers using `from` first, or writes made
/// during the copy are lost.
pub async fn copy_all(from: &dyn Store, to: &dyn Store) -> Result<SnapshotCounts> {
    to.migrate().await?;
    let snapshot = from.export().await?;
    to.import(&snapshot).await?;
    Ok(snapshot.counts())
}

/// Opens the store named by a database URL: `sqlite://path` (created when missing) or
/// `postgres://...` / `postgresql://...` (which may pick a schema with
/// `?options=-csearch_path%3Dname`). Does not migrate; call [`Store::migrate`].
/// An unreachable database is [`StoreError::Unavailable`] at once, without waiting for it
/// to come up: a caller starting together with its database retries.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url).await?))
    } else {
        Err(StoreError::Config(
            "unsupported database URL scheme (expected sqlite:// or postgres://)".to_string(),
        ))
    }
}
