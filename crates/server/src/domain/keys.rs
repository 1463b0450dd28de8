//! Signing keys: generation, encryption at rest, staged rotation, the published key set.
//!
//! Keys live in the store, their private part sealed with AES-256-GCM under a key derived
//! from the master key, with the kid as AAD. The [`KeyManager`] keeps every stored key
//! decrypted in memory and reloads on change (store notices) and periodically.
//!
//! Staged rotation (zero failed requests): a new key is inserted with
//! `activate_at = now + jwks_max_age`, so every cached JWKS already holds it before it signs
//! anything; the old key gets `retire_at = new.activate_at` and
//! `remove_at = retire_at + access_ttl + leeway`, so it stays published until the last token
//! it signed has expired. `rotate_now` (the admin endpoint) activates at once, for a key
//! believed compromised.

use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::http::HeaderValue;
use serde::Serialize;
use tessera_jwt::{Algorithm, JwkSet, KeySet, SigningKey};
use tessera_store::{SigningKeyRecord, Store};
use zeroize::Zeroizing;

use super::{DomainError, DomainResult};
use crate::clock::Clock;
use crate::config::{Config, SigningAlgorithm};
use crate::crypto;

/// A loaded key: its schedule and the decrypted signing key.
#[derive(Debug, Clone)]
struct LoadedKey {
    record: SigningKeyRecord,
    key: Arc<SigningKey>,
}

#[derive(Debug, Default)]
struct Loaded {
    keys: Vec<LoadedKey>,
    verify: KeySet,
    /// The JWK Set as served, serialized once per reload: one body per span of time between
    /// key removals, as `(until, body)` sorted by `until` (exclusive; the last is `i64::MAX`).
    /// The published set only changes when a key is added (a reload) or passes its
    /// `remove_at`, so `GET /.well-known/jwks.json` never builds or serializes anything.
    jwks: Vec<(i64, Bytes)>,
}

impl Loaded {
    fn new(keys: Vec<LoadedKey>, verify: KeySet) -> DomainResult<Self> {
        let published = || keys.iter().filter(|k| !k.key.algorithm().is_hmac());
        let mut bounds: Vec<i64> = published().filter_map(|k| k.record.remove_at).collect();
        bounds.push(i64::MAX);
        bounds.sort_unstable();
        bounds.dedup();
        let jwks = bounds
            .into_iter()
            .map(|until| {
                // Published throughout `[previous bound, until)` exactly when not removed
                // before `until` (removal times are themselves bounds).
                let set = JwkSet {
                    keys: published()
                        .filter(|k| k.record.remove_at.is_none_or(|r| r >= until))
                        .map(|k| k.key.verifying_key().to_jwk())
                        .collect(),
                };
                serde_json::to_vec(&set)
                    .map(|body| (until, Bytes::from(body)))
                    .map_err(|e| DomainError::Internal(format!("JWKS serialization: {e}")))
            })
            .collect::<DomainResult<_>>()?;
        Ok(Self { keys, verify, jwks })
    }

    fn jwks_at(&self, now: i64) -> Bytes {
        self.jwks
            .iter()
            .find(|(until, _)| now < *until)
            .map(|(_, body)| body.clone())
            .unwrap_or_else(|| Bytes::from_static(br#"{"keys":[]}"#))
    }
}

/// A key's public schedule, for `GET /admin/keys`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// JWS algorithm.
    pub alg: String,
    /// `pending` (published, not signing yet), `active` (signing) or `retired` (published,
    /// no longer signing).
    pub state: &'static str,
    /// Creation (publication) time.
    pub created_at: i64,
    /// Signs from then on.
    pub activate_at: i64,
    /// Stops signing then.
    pub retire_at: Option<i64>,
    /// Leaves the JWKS then.
    pub remove_at: Option<i64>,
}

/// Holds the signing keys and the published key set; performs rotation.
pub struct KeyManager {
    store: Arc<dyn Store>,
    clock: Clock,
    kek: Zeroizing<[u8; 32]>,
    alg: Algorithm,
    jwks_max_age: i64,
    jwks_cache_control: HeaderValue,
    access_ttl: i64,
    leeway: i64,
    rotation_interval: i64,
    loaded: RwLock<Arc<Loaded>>,
    /// Rotations performed by this instance (read by `/metrics`).
    rotations: std::sync::atomic::AtomicU64,
    /// Bumped whenever a reload changes the set of verification keys (kids), so caches of
    /// verified tokens (domain::introspection) drop what a removed key signed.
    key_set_generation: std::sync::atomic::AtomicU64,
    /// Serializes rotations in this process (the background task and an admin request must
    /// not both start one).
    rotating: tokio::sync::Mutex<()>,
    /// Random id of this instance, the holder name of the scheduled-rotation lease.
    node_id: String,
}

/// Name of the store lease that admits one node to a scheduled rotation.
const ROTATION_LEASE: &str = "key-rotation";
/// How long the rotation lease is held: far longer than a rotation takes, far shorter than
/// the rotation interval, so every node has reloaded (and sees the new pending key) long
/// before the lease could be taken again.
const ROTATION_LEASE_SECS: i64 = 60;

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("alg", &self.alg)
            .field("keys", &self.read().keys.len())
            .finish_non_exhaustive()
    }
}

fn jwt_alg(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::HS256 => Algorithm::HS256,
    }
}

fn jwt_err(e: tessera_jwt::Error) -> DomainError {
    DomainError::Internal(format!("key material: {e}"))
}

impl KeyManager {
    /// Loads the stored keys; creates the first one (active at once) when none is usable.
    pub async fn init(
        store: Arc<dyn Store>,
        clock: Clock,
        config: &Config,
        kek: &[u8; 32],
    ) -> DomainResult<Self> {
        let km = Self {
            store,
            clock,
            kek: Zeroizing::new(*kek),
            alg: jwt_alg(config.algorithm),
            jwks_max_age: config.jwks_max_age,
            jwks_cache_control: HeaderValue::from_str(&format!(
                "public, max-age={}",
                config.jwks_max_age
            ))
            .unwrap_or(HeaderValue::from_static("no-cache")),
            access_ttl: config.access_token_ttl,
            leeway: config.leeway,
            rotation_interval: config.key_rotation_interval,
            loaded: RwLock::new(Arc::new(Loaded::default())),
            rotations: std::sync::atomic::AtomicU64::new(0),
            key_set_generation: std::sync::atomic::AtomicU64::new(0),
            rotating: tokio::sync::Mutex::new(()),
            node_id: crypto::random_token()?,
        };
        km.reload().await?;
        let now = km.clock.now();
        if km.signing_key_at(now).is_err() {
            km.insert_new(now).await?;
        }
        Ok(km)
    }

    fn read(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads every key from the store (after a change by this or another node).
    pub async fn reload(&self) -> DomainResult<()> {
        let records = self.store.list_keys().await?;
        let mut keys = Vec::with_capacity(records.len());
        for record in records {
            let alg: Algorithm = record.alg.parse().map_err(|_| {
                DomainError::Internal(format!("stored key {} has unknown alg", record.kid))
            })?;
            let secret = crypto::open(&self.kek, record.kid.as_bytes(), &record.private_enc)
                .map_err(|_| {
                    DomainError::Internal(format!(
                        "cannot decrypt signing key {} (wrong master key?)",
                        record.kid
                    ))
                })?;
            let key = SigningKey::from_secret_bytes(alg, &secret)
                .map_err(jwt_err)?
                .with_kid(record.kid.clone());
            keys.push(LoadedKey {
                record,
                key: Arc::new(key),
            });
        }
        let verify =
            KeySet::from_keys(keys.iter().map(|k| k.key.verifying_key())).map_err(jwt_err)?;
        let loaded = Arc::new(Loaded::new(keys, verify)?);
        let mut guard = match self.loaded.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let kids = |l: &Loaded| {
            l.keys
                .iter()
                .map(|k| k.record.kid.clone())
                .collect::<Vec<_>>()
        };
        if kids(&guard) != kids(&loaded) {
            self.key_set_generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        *guard = loaded;
        Ok(())
    }

    /// Changes whenever the set of verification keys changes (a key added or removed).
    pub fn key_set_generation(&self) -> u64 {
        self.key_set_generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The key that signs at `now`: among keys whose `activate_at <= now` and not yet
    /// retired, the most recently activated.
    fn signing_key_at(&self, now: i64) -> DomainResult<Arc<SigningKey>> {
        let loaded = self.read();
        loaded
            .keys
            .iter()
            .filter(|k| k.record.activate_at <= now && k.record.retire_at.is_none_or(|r| now < r))
            .max_by_key(|k| (k.record.activate_at, k.record.created_at))
            .map(|k| Arc::clone(&k.key))
            .ok_or_else(|| DomainError::Internal("no active signing key".into()))
    }

    /// The key to sign with now.
    pub fn signing_key(&self) -> DomainResult<Arc<SigningKey>> {
        self.signing_key_at(self.clock.now())
    }

    /// Every stored key, for verifying tokens this server issued.
    pub fn verification_keys(&self) -> KeySet {
        self.read().verify.clone()
    }

    /// Whether tokens are HMAC-signed (shared-secret mode: nothing is published).
    pub fn is_shared_secret(&self) -> bool {
        self.alg.is_hmac()
    }

    /// The public JWK Set: every non-HMAC key not yet due for removal (pending keys
    /// included: that is the point of publishing ahead). HMAC keys are never published.
    pub fn jwks(&self) -> JwkSet {
        let now = self.clock.now();
        let loaded = self.read();
        JwkSet {
            keys: loaded
                .keys
                .iter()
                .filter(|k| !k.key.algorithm().is_hmac())
                .filter(|k| k.record.remove_at.is_none_or(|r| now < r))
                .map(|k| k.key.verifying_key().to_jwk())
                .collect(),
        }
    }

    /// [`jwks`](Self::jwks) as served: the JSON serialized when the keys were loaded, for the
    /// current time (a shared buffer, nothing built per call).
    pub fn jwks_json(&self) -> Bytes {
        self.read().jwks_at(self.clock.now())
    }

    /// The JWKS response's `Cache-Control` value (`public, max-age=N`), built once.
    pub fn jwks_cache_control(&self) -> HeaderValue {
        self.jwks_cache_control.clone()
    }

    /// Every key with its state at the current time.
    pub fn list(&self) -> Vec<KeyInfo> {
        let now = self.clock.now();
        let loaded = self.read();
        let active = self
            .signing_key_at(now)
            .ok()
            .and_then(|k| k.kid().map(str::to_string));
        loaded
            .keys
            .iter()
            .map(|k| {
                let r = &k.record;
                let state = if Some(&r.kid) == active.as_ref() {
                    "active"
                } else if r.activate_at > now {
                    "pending"
                } else {
                    "retired"
                };
                KeyInfo {
                    kid: r.kid.clone(),
                    alg: r.alg.clone(),
                    state,
                    created_at: r.created_at,
                    activate_at: r.activate_at,
                    retire_at: r.retire_at,
                    remove_at: r.remove_at,
                }
            })
            .collect()
    }

    /// Generates, encrypts and stores a new key that signs from `activate_at`; schedules the
    /// retirement of every key that would still sign after it. Returns the new kid.
    async fn insert_new(&self, activate_at: i64) -> DomainResult<String> {
        let now = self.clock.now();
        let key = SigningKey::generate(self.alg).map_err(jwt_err)?;
        // An HMAC key's thumbprint is a hash of the secret; use a random kid instead.
        let kid = if self.alg.is_hmac() {
            crypto::random_token()?.chars().take(22).collect()
        } else {
            key.thumbprint()
        };
        let key = key.with_kid(kid.clone());
        let secret = key.to_secret_bytes();
        let private_enc = crypto::seal(&self.kek, kid.as_bytes(), &secret)?;
        let public_jwk = if self.alg.is_hmac() {
            String::new()
        } else {
            serde_json::to_string(&key.verifying_key().to_jwk())
                .map_err(|e| DomainError::Internal(format!("jwk: {e}")))?
        };
        let existing = self.store.list_keys().await?;
        self.store
            .insert_key(&SigningKeyRecord {
                kid: kid.clone(),
                alg: self.alg.as_str().to_string(),
                private_enc,
                public_jwk,
                created_at: now,
                activate_at,
                retire_at: None,
                remove_at: None,
            })
            .await?;
        for old in existing {
            if old.retire_at.is_none_or(|r| r > activate_at) {
                let retire = activate_at;
                self.store
                    .update_key_schedule(
                        &old.kid,
                        Some(retire),
                        Some(retire + self.access_ttl + self.leeway),
                    )
                    .await?;
            }
        }
        self.reload().await?;
        Ok(kid)
    }

    /// Staged rotation: the new key is published now and signs after `jwks_max_age`.
    pub async fn rotate_staged(&self) -> DomainResult<String> {
        let _guard = self.rotating.lock().await;
        let now = self.clock.now();
        let kid = self.insert_new(now + self.jwks_max_age).await?;
        self.rotations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(kid)
    }

    /// How many rotations (staged or immediate) this instance has performed.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Immediate rotation (`POST /admin/keys/rotate`): the new key signs at once; the old key
    /// stays published until its tokens expire. Verifiers with a cached JWKS refetch on the
    /// unknown kid.
    pub async fn rotate_now(&self) -> DomainResult<String> {
        let _guard = self.rotating.lock().await;
        let now = self.clock.now();
        let kid = self.insert_new(now).await?;
        self.rotations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(kid)
    }

    /// Whether a scheduled rotation is due at `now` by the loaded keys: rotation is enabled,
    /// no key is pending, and the newest key activated at least one interval ago.
    fn rotation_due(&self, now: i64) -> bool {
        if self.rotation_interval <= 0 {
            return false;
        }
        let loaded = self.read();
        let pending = loaded.keys.iter().any(|k| k.record.activate_at > now);
        let newest_activation = loaded.keys.iter().map(|k| k.record.activate_at).max();
        !pending && newest_activation.is_some_and(|a| a + self.rotation_interval <= now)
    }

    /// Periodic upkeep: reload, start a staged rotation when the active key is older than the
    /// rotation interval (and none is pending; with several nodes, only the one that wins the
    /// store's rotation lease), prune keys past `remove_at`.
    pub async fn maintain(&self) -> DomainResult<()> {
        let _guard = self.rotating.lock().await;
        self.reload().await?;
        let now = self.clock.now();
        // Several nodes may share the store and all run this: only the holder of the
        // rotation lease rotates, and it reloads after winning the lease, because another
        // node may have rotated between our reload and the lease (then nothing is due).
        if self.rotation_due(now)
            && self
                .store
                .try_lease(ROTATION_LEASE, &self.node_id, now, ROTATION_LEASE_SECS)
                .await?
        {
            self.reload().await?;
            if self.rotation_due(now) {
                let kid = self.insert_new(now + self.jwks_max_age).await?;
                tracing::info!(kid = %kid, "automatic key rotation: new key published");
            }
        }
        if self.store.prune_keys(now).await? > 0 {
            self.reload().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// See `secrets::tests::secret_material_lives_in_types_that_zeroize_on_drop`.
    #[test]
    fn the_key_encryption_key_zeroizes_on_drop() {
        fn field<S, T: zeroize::ZeroizeOnDrop>(_: fn(&S) -> &T) {}
        field(|m: &super::KeyManager| &m.kek);
    }
}
