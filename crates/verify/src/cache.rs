//! A bounded cache of tokens whose signature and static claims were already verified.
//!
//! Keyed by SHA-256 of the whole compact token: a collision would need a second pre-image, so no
//! presented token can alias a cached one (a non-cryptographic or unkeyed hash could be forced
//! into a collision and borrow another token's verification). Holding only the digest also
//! means the cache never keeps bearer tokens in memory.
//!
//! The cache only skips the signature check and claim parsing; `exp`/`nbf` and revocation are
//! checked on every hit by the caller. Reads take one shard's `RwLock` for reading, briefly, so
//! concurrent requests do not contend; eviction is a second-chance sweep (CLOCK-like) run only on
//! insert into a full shard. `local.rs` keeps per-thread copies of the hottest entries in
//! front of it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::claims::AccessClaims;

/// Number of shards; a power of two.
const SHARDS: usize = 16;

/// The cache key: SHA-256 of the token.
pub(crate) type Key = [u8; 32];

/// Computes the cache key of a token.
pub(crate) fn key_of(token: &[u8]) -> Key {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

/// A cached verification result.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The verified claims.
    pub claims: Arc<AccessClaims>,
    /// The revocation generation this entry was last checked against (see `Verifier`).
    pub checked_gen: AtomicU64,
    referenced: AtomicBool,
}

impl Entry {
    pub(crate) fn new(claims: Arc<AccessClaims>, gen: u64) -> Self {
        Self {
            claims,
            checked_gen: AtomicU64::new(gen),
            referenced: AtomicBool::new(false),
        }
    }
}

/// The key is already a uniform cryptographic digest: hashing it again would be wasted work,
/// so the map hasher just takes its first eight bytes.
#[derive(Debug, Clone, Copy, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*b) << (8 * i);
        }
    }
}

impl BuildHasher for DigestHasher {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

type Shard = HashMap<Key, Entry, DigestHasher>;

/// A shard's lock on cache lines of its own: readers of one shard write its lock word, which
/// must not share a line with (and so slow down) the neighbouring shard's readers. 128 bytes
/// covers the adjacent-line prefetcher of x86 and the 128-byte lines of some ARM cores.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(RwLock<Shard>);

/// The cache.
#[derive(Debug)]
pub(crate) struct TokenCache {
    shards: Box<[Padded]>,
    per_shard: usize,
    /// Bumped after every [`clear`](Self::clear): what was looked up under an older epoch
    /// (the per-thread copies of `local.rs`) is void.
    epoch: AtomicU64,
}

impl TokenCache {
    /// A cache holding about `capacity` tokens (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        let shards = (0..SHARDS)
            .map(|_| Padded(RwLock::new(HashMap::with_hasher(DigestHasher(0)))))
            .collect();
        Self {
            shards,
            per_shard,
            epoch: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &Key) -> &RwLock<Shard> {
        // Byte 8 is independent of the bytes the map hashes on.
        &self.shards[usize::from(key[8]) % SHARDS].0
    }

    /// Looks a token up and runs `f` on its entry under the shard's read lock (no reference
    /// count is touched on the hot path, so concurrent hits on one token share nothing but
    /// the lock word).
    pub(crate) fn with<R>(&self, key: &Key, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        if self.per_shard == 0 {
            return None;
        }
        // A poisoned lock only means another thread panicked mid-operation on a map of
        // self-contained entries; the data is still consistent, so keep using it.
        let shard = self.shard(key).read().unwrap_or_else(|e| e.into_inner());
        let e = shard.get(key)?;
        if !e.referenced.load(Ordering::Relaxed) {
            e.referenced.store(true, Ordering::Relaxed);
        }
        Some(f(e))
    }

    /// Inserts a verified token, evicting if the shard is full. `now` lets expired entries go
    /// first.
    pub(crate) fn insert(&self, key: Key, entry: Entry, now: i64) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&key).write().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            // Second chance: drop expired and unreferenced entries, clear the bit of the rest.
            shard.retain(|_, e| e.claims.exp >= now && e.referenced.swap(false, Ordering::Relaxed));
            if shard.len() >= self.per_shard {
                // Everything was hot: drop an arbitrary half so inserts stay amortised O(1).
                let drop: Vec<Key> = shard.keys().take(self.per_shard / 2 + 1).copied().collect();
                for k in drop {
                    shard.remove(&k);
                }
            }
        }
        shard.insert(key, entry);
    }

    /// Removes a token (it was found revoked).
    pub(crate) fn remove(&self, key: &Key) {
        if self.per_shard == 0 {
            return;
        }
        self.shard(key)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Drops everything (the key set changed).
    pub(crate) fn clear(&self) {
        for s in self.shards.iter() {
            s.0.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// The number of [`clear`](Self::clear)s so far. Read it before a lookup whose result is
    /// kept elsewhere.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Number of cached tokens.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            exp,
            ..AccessClaims::default()
        })
    }

    #[test]
    fn bounded_and_keeps_referenced_entries() {
        let cache = TokenCache::new(160);
        let hot = key_of(b"hot-token");
        cache.insert(hot, Entry::new(claims(1000), 0), 0);
        for i in 0..5000 {
            assert!(
                cache.with(&hot, |_| ()).is_some(),
                "hot entry evicted at {i}"
            );
            let k = key_of(format!("token-{i}").as_bytes());
            cache.insert(k, Entry::new(claims(1000), 0), 0);
            assert!(cache.len() <= 160 + SHARDS);
        }
        assert!(cache.with(&key_of(b"token-4999"), |_| ()).is_some());
        cache.remove(&hot);
        assert!(cache.with(&hot, |_| ()).is_none());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn different_tokens_have_different_keys() {
        assert_ne!(key_of(b"a.b.c"), key_of(b"a.b.d"));
        assert_eq!(key_of(b"a.b.c"), key_of(b"a.b.c"));
    }
}
