//! The introspection cache (`POST /oauth/introspect`, RFC 7662): repeat introspections of the
//! same access token, and repeat authentications of the same introspecting client, answered
//! from memory instead of a signature check and four store reads. See docs/oauth.md.
//!
//! Correctness rests on one rule: **every entry is tagged with the epoch current before the
//! store was read, and is served only while the epoch is unchanged.** The epoch is the sum
//! of three counters that only grow:
//!
//! - this process's own invalidations ([`invalidate`]), called by every path that can make a
//!   token inactive or a client unknown: [`super::revocation::revoke`] (logout, session
//!   revocation, cutoffs on password change, role change and disable, `jti` revocation) and
//!   [`super::clients::delete`], after their store writes and whether or not they succeed;
//! - the store's count of change notices from other nodes ([`PeerChanges::Shared`]);
//! - the key manager's count of changes to the set of verification keys.
//!
//! A revocation committed before an entry's store read is in what was read; one committed
//! after it bumps the epoch (here at once; from another node when its notice arrives), so
//! the entry is never served again. Because a notice from another node can be late, or lost
//! while the store's listener reconnects, the cache is used on PostgreSQL only while the
//! listener has proven, within [`MAX_PEER_STALENESS`], that it had received every notice
//! committed up to then; otherwise every request takes the store path.
//!
//! What time can change is checked on every hit: an entry is served only inside
//! `[nbf - leeway, exp + leeway)` of the token and before its session's idle and absolute
//! expiry as they were read. Inactive answers are never cached.
//!
//! Bounded: at most [`TOKEN_CAPACITY`] tokens (keyed by SHA-256 of the token) and
//! [`CLIENT_CAPACITY`] clients; a full map drops an arbitrary entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use axum::body::Bytes;
use tessera_store::{Client, PeerChanges};

use crate::state::AppState;

/// On PostgreSQL, how long after the last proof that every other node's notice had arrived
/// the cache may still be used. Bounds how late another node's revocation can show in this
/// node's introspection answers.
pub const MAX_PEER_STALENESS: Duration = Duration::from_secs(1);
/// Most access tokens kept.
pub const TOKEN_CAPACITY: usize = 10_000;
/// Most clients kept.
pub const CLIENT_CAPACITY: usize = 1_000;

/// A cached active answer.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// The epoch before the store was read.
    pub epoch: u64,
    /// Served from this time on (`nbf - leeway`).
    pub not_before: i64,
    /// Served before this time (`exp + leeway`, and the session's expiry).
    pub until: i64,
    /// The serialized introspection response.
    pub body: Bytes,
}

#[derive(Debug, Clone)]
struct ClientEntry {
    epoch: u64,
    client: Client,
}

/// The cache of one server instance (in [`AppState`]).
#[derive(Debug, Default)]
pub struct IntrospectionCache {
    invalidations: AtomicU64,
    tokens: RwLock<HashMap<[u8; 32], TokenEntry>>,
    clients: RwLock<HashMap<String, ClientEntry>>,
}

/// How a lookup went (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from memory.
    Hit,
    /// Not cached (or no longer valid): the store path, then cached.
    Miss,
    /// The cache could not be trusted (PostgreSQL listener not current): the store path.
    Bypass,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

/// The current epoch, or `None` when nothing may be served from memory now.
pub fn epoch(state: &AppState) -> Option<u64> {
    let peers = match state.store.peer_changes() {
        PeerChanges::Local => 0,
        PeerChanges::Shared {
            generation,
            heard_until: Some(t),
        } if t.elapsed() <= MAX_PEER_STALENESS => generation,
        PeerChanges::Shared { .. } => return None,
    };
    let own = state.introspection.invalidations.load(Ordering::SeqCst);
    Some(
        own.wrapping_add(peers)
            .wrapping_add(state.keys.key_set_generation()),
    )
}

/// Drops everything: called after every write that can make a token inactive or a client
/// unknown. Entries being computed concurrently carry an older epoch and are never served.
pub fn invalidate(state: &AppState) {
    let cache = &state.introspection;
    cache.invalidations.fetch_add(1, Ordering::SeqCst);
    write(&cache.tokens).clear();
    write(&cache.clients).clear();
}

/// The cached answer for the token with SHA-256 `key`, if it may be served at `now` in
/// `epoch`.
pub fn token(state: &AppState, epoch: u64, key: &[u8; 32], now: i64) -> Option<Bytes> {
    let map = read(&state.introspection.tokens);
    let e = map.get(key)?;
    (e.epoch == epoch && e.not_before <= now && now < e.until).then(|| e.body.clone())
}

/// Remembers an active answer.
pub fn remember_token(state: &AppState, key: [u8; 32], entry: TokenEntry) {
    let mut map = write(&state.introspection.tokens);
    make_room(&mut map, &key, TOKEN_CAPACITY);
    map.insert(key, entry);
}

/// A client authenticated before in `epoch`, by id (the caller still compares the secret).
pub fn client(state: &AppState, epoch: u64, client_id: &str) -> Option<Client> {
    let map = read(&state.introspection.clients);
    map.get(client_id)
        .filter(|e| e.epoch == epoch)
        .map(|e| e.client.clone())
}

/// Remembers a client that just proved its secret.
pub fn remember_client(state: &AppState, epoch: u64, client: &Client) {
    let mut map = write(&state.introspection.clients);
    make_room(&mut map, &client.client_id, CLIENT_CAPACITY);
    map.insert(
        client.client_id.clone(),
        ClientEntry {
            epoch,
            client: client.clone(),
        },
    );
}

fn make_room<K, Q, V>(map: &mut HashMap<K, V>, key: &Q, capacity: usize)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q> + Clone,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if map.len() >= capacity && !map.contains_key(key) {
        if let Some(k) = map.keys().next().cloned() {
            map.remove(k.borrow());
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
