//! Plain data carried in and out of the store. No behaviour lives here.

use serde::{Deserialize, Serialize};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Opaque id (UUID), the `sub` of the user's tokens.
    pub id: String,
    /// Normalized (trimmed, lowercased) email, unique.
    pub email: String,
    /// PHC-format Argon2id hash.
    pub password_hash: String,
    /// Role names, sorted and deduplicated.
    pub roles: Vec<String>,
    /// A disabled user cannot log in and has no valid tokens.
    pub disabled: bool,
    /// Tokens of this user with `iat <= token_cutoff` are invalid.
    pub token_cutoff: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change time.
    pub updated_at: i64,
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Opaque id chosen by the caller.
    pub id: String,
    /// Normalized email.
    pub email: String,
    /// PHC-format Argon2id hash.
    pub password_hash: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Creation time.
    pub created_at: i64,
}

/// Fields of a user to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New password hash.
    pub password_hash: Option<String>,
    /// New role set.
    pub roles: Option<Vec<String>>,
    /// New disabled flag.
    pub disabled: Option<bool>,
    /// Raise the token cutoff to at least this value.
    pub token_cutoff: Option<i64>,
    /// Time of the change.
    pub updated_at: i64,
}

/// A login session: owns a chain of refresh tokens and every access token issued from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Opaque id, the `sid` claim.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// The OAuth client the session was created through (first-party: `tessera`).
    pub client_id: String,
    /// User-Agent at login (truncated by the caller).
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last refresh.
    pub last_used_at: i64,
    /// The session ends if not refreshed before this.
    pub idle_expires_at: i64,
    /// The session ends at this time whatever happens.
    pub absolute_expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Why it was revoked (`logout`, `logout_all`, `password_change`, `reuse_detected`, ...).
    pub revoked_reason: Option<String>,
}

impl Session {
    /// Neither revoked nor expired at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }
}

/// A session to insert.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Opaque id chosen by the caller.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Client id.
    pub client_id: String,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Creation time (also the first `last_used_at`).
    pub created_at: i64,
    /// Idle expiry.
    pub idle_expires_at: i64,
    /// Absolute expiry.
    pub absolute_expires_at: i64,
}

/// Outcome of [`crate::Store::rotate_refresh_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// No such refresh token.
    NotFound,
    /// This call rotated it; the session as updated.
    Rotated(Session),
    /// It had been rotated before.
    AlreadyRotated {
        /// When it was rotated.
        rotated_at: i64,
        /// Hash of its successor.
        successor_hash: Vec<u8>,
        /// Whether the successor has been rotated in turn.
        successor_used: bool,
        /// The session.
        session: Session,
    },
    /// The session is revoked or expired.
    SessionInactive(Session),
}

/// Outcome of [`crate::Store::rotate_refresh_token_as`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The token's session belongs to another client than the one presenting it; nothing
    /// was changed.
    OtherClient(Session),
    /// What [`crate::Store::rotate_refresh_token`] would have returned, and the session's
    /// user (`None` only with [`Rotation::NotFound`]).
    Rotation(Rotation, Option<User>),
}

/// What a revocation event targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// Every token with this `sid`.
    Session,
    /// Every token of this `sub` with `iat <= cutoff`.
    User,
    /// The single token with this `jti`.
    Token,
}

impl RevocationKind {
    /// Stable name stored in the database and sent on the feed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::User => "user",
            Self::Token => "token",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session" => Some(Self::Session),
            "user" => Some(Self::User),
            "token" => Some(Self::Token),
            _ => None,
        }
    }
}

/// A revocation event to append.
#[derive(Debug, Clone)]
pub struct NewRevocation {
    /// Target kind.
    pub kind: RevocationKind,
    /// The `sid`, `sub` or `jti`.
    pub subject: String,
    /// For `User`: tokens with `iat <= cutoff` are revoked.
    pub cutoff: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// After this no token it could match is valid; the event may be pruned.
    pub expires_at: i64,
}

/// A stored revocation event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Strictly increasing position in the feed.
    pub cursor: i64,
    /// Target kind.
    pub kind: RevocationKind,
    /// The `sid`, `sub` or `jti`.
    pub subject: String,
    /// For `User`: tokens with `iat <= cutoff` are revoked.
    pub cutoff: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Prunable after this time.
    pub expires_at: i64,
}

/// A signing key as stored: the private part encrypted under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// JWS algorithm name (`EdDSA`, `ES256`, `RS256`, `HS256`).
    pub alg: String,
    /// Private key, encrypted (AEAD) under the master key. Never stored in clear.
    pub private_enc: Vec<u8>,
    /// Public JWK as JSON (empty for HMAC keys, which are never published).
    pub public_jwk: String,
    /// Creation time; the key is published in the JWKS from then on.
    pub created_at: i64,
    /// The key signs from this time on (after it has been published long enough).
    pub activate_at: i64,
    /// The key stops signing at this time (a newer key took over).
    pub retire_at: Option<i64>,
    /// The key leaves the JWKS at this time (its last token has expired).
    pub remove_at: Option<i64>,
}

/// An OAuth 2.0 client (service account or first-party app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Public identifier.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// SHA-256 of the secret (the secret has 256 bits of entropy, so a fast hash is right).
    pub secret_hash: Vec<u8>,
    /// Roles put in the client's own tokens (`client_credentials`).
    pub roles: Vec<String>,
    /// Space-separated scopes the client may request.
    pub scope: String,
    /// Creation time.
    pub created_at: i64,
}

/// Brute-force throttling state of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Failures in the current window.
    pub failures: i64,
    /// Start of the current window.
    pub window_start: i64,
    /// No attempt is accepted before this time.
    pub locked_until: i64,
}

/// An audit event to append.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// Time.
    pub at: i64,
    /// Event name: `login`, `login_failed`, `refresh_reuse`, `session_revoked`, `admin.*`...
    pub event: String,
    /// Who did it (user id or client id), if known.
    pub actor: Option<String>,
    /// Whom or what it concerns (user id, session id, client id, kid), if any.
    pub subject: Option<String>,
    /// Client IP, if known.
    pub ip: Option<String>,
    /// Extra detail as a JSON object (never a secret).
    pub detail: serde_json::Value,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Increasing id.
    pub id: i64,
    /// Time.
    pub at: i64,
    /// Event name.
    pub event: String,
    /// Actor.
    pub actor: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Extra detail.
    pub detail: serde_json::Value,
}

/// Filter and page of [`crate::Store::list_audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events whose actor or subject is this id.
    pub user: Option<String>,
    /// Events with this name.
    pub event: Option<String>,
    /// Only events with `id < before_id`.
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// What this process knows of changes that other processes sharing the database made, for a
/// caller that keeps the results of store reads in memory (the auth server's introspection
/// cache) and must drop them when another node revokes something. See
/// [`crate::Store::peer_changes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChanges {
    /// No other process writes this database (SQLite: one server process per file): every
    /// change is this process's own, so a cache that this process invalidates on its own
    /// writes is never stale.
    Local,
    /// Other nodes may write the database (PostgreSQL).
    Shared {
        /// Changes whenever a change notice (revocation or key change) from any node has
        /// been received, and whenever the notice listener (re)connects. Never decreases.
        generation: u64,
        /// Every change notice committed (by any node) before this instant has been received
        /// and counted in `generation`. `None` while the notice listener is not connected or
        /// has not yet proven its connection: then nothing read from the store may be
        /// trusted beyond the moment it was read.
        heard_until: Option<std::time::Instant>,
    },
}

/// A change another part of the system must react to, from [`crate::Store::subscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreNotice {
    /// A revocation event with this cursor was committed: push the feed.
    Revocation(i64),
    /// Signing keys were inserted, rescheduled or pruned: reload them and the JWKS.
    KeysChanged,
}

/// A stored refresh token (by hash), as moved by [`crate::Store::export`] /
/// [`crate::Store::import`].
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
    /// The session it belongs to.
    pub session_id: String,
    /// Issue time.
    pub created_at: i64,
    /// When it was rotated, if it was.
    pub rotated_at: Option<i64>,
    /// Hash of its successor, once rotated.
    pub successor_hash: Option<Vec<u8>>,
}

impl std::fmt::Debug for RefreshTokenRecord {
    // Hashes of live bearer credentials stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenRecord")
            .field("session_id", &self.session_id)
            .field("created_at", &self.created_at)
            .field("rotated_at", &self.rotated_at)
            .finish_non_exhaustive()
    }
}

/// Everything an installation needs to move to another store without logging anyone out:
/// users, sessions, refresh tokens, signing keys, clients, revocation events (with their
/// cursors and the cursor high-water mark) and the audit log (with its ids). Throttling
/// state is deliberately left behind: it is short-lived and rebuilt by the next failures.
///
/// Held in memory: fine for the user counts an embedded SQLite installation reaches.
#[derive(Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Users.
    pub users: Vec<User>,
    /// Sessions, revoked ones included.
    pub sessions: Vec<Session>,
    /// Refresh tokens, rotated ones included (reuse detection needs them).
    pub refresh_tokens: Vec<RefreshTokenRecord>,
    /// Signing keys (private parts still encrypted under the master key).
    pub keys: Vec<SigningKeyRecord>,
    /// OAuth clients.
    pub clients: Vec<Client>,
    /// Revocation events still stored.
    pub revocations: Vec<Revocation>,
    /// The largest cursor ever handed out, so the target never reuses one a verifier saw.
    pub latest_revocation_cursor: i64,
    /// Audit events.
    pub audit: Vec<AuditEvent>,
}

impl Snapshot {
    /// Row counts per kind, for progress output.
    pub fn counts(&self) -> SnapshotCounts {
        SnapshotCounts {
            users: self.users.len(),
            sessions: self.sessions.len(),
            refresh_tokens: self.refresh_tokens.len(),
            keys: self.keys.len(),
            clients: self.clients.len(),
            revocations: self.revocations.len(),
            audit: self.audit.len(),
        }
    }
}

impl std::fmt::Debug for Snapshot {
    // Counts only: the rows carry password hashes, token hashes and encrypted keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("counts", &self.counts())
            .field("latest_revocation_cursor", &self.latest_revocation_cursor)
            .finish()
    }
}

/// Row counts of a [`Snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCounts {
    /// Users.
    pub users: usize,
    /// Sessions.
    pub sessions: usize,
    /// Refresh tokens.
    pub refresh_tokens: usize,
    /// Signing keys.
    pub keys: usize,
    /// OAuth clients.
    pub clients: usize,
    /// Revocation events.
    pub revocations: usize,
    /// Audit events.
    pub audit: usize,
}
