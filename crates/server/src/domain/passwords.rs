//! Password hashing: Argon2id (RFC 9106) with at least the OWASP minimum parameters
//! (m = 19456 KiB, t = 2, p = 1), run on the blocking pool behind a semaphore so a burst of
//! logins can neither stall the async executor nor exhaust memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::{DomainError, DomainResult};

/// Argon2id memory cost in KiB (OWASP password storage cheat sheet minimum).
pub const MEMORY_KIB: u32 = 19_456;
/// Argon2id iterations.
pub const ITERATIONS: u32 = 2;
/// Argon2id lanes.
pub const PARALLELISM: u32 = 1;
/// Shortest accepted password, in characters.
pub const MIN_LENGTH: usize = 8;
/// Longest accepted password, in bytes (bounds hashing work per request).
pub const MAX_LENGTH: usize = 1024;

/// Hashes and verifies passwords with bounded concurrency.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    params: Params,
    /// A hash of a random password, verified against when the account does not exist, so an
    /// unknown email costs the same time as a wrong password.
    dummy: Arc<String>,
    /// Working memory kept between hashes (at most one buffer per permit).
    pool: Arc<MemoryPool>,
}

/// How long the pool keeps Argon2's working memory after the last hash.
const POOL_IDLE: Duration = Duration::from_secs(5);

/// Argon2's working memory, reused while hashes keep coming and returned to the OS once none
/// ran for [`POOL_IDLE`]. Mapping a fresh 19 MiB per hash made the kernel zero-fill it on
/// ~4,900 page faults and unmap it after: 39 % of the server's CPU under a login load, and
/// login at 0.52 of raw Argon2id (bench/README.md, "System"). Holding the buffers only while
/// logins arrive keeps the idle process at its small resident size.
#[derive(Default)]
struct MemoryPool {
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    free: Vec<Vec<Block>>,
    last_used: Option<Instant>,
}

impl std::fmt::Debug for MemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPool")
            .field("free", &self.lock().free.len())
            .finish()
    }
}

impl MemoryPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A buffer to hash with (empty when none is pooled: `with_memory` allocates it).
    fn take(&self) -> Vec<Block> {
        let mut st = self.lock();
        st.last_used = Some(Instant::now());
        st.free.pop().unwrap_or_default()
    }

    fn put(&self, memory: Vec<Block>) {
        let mut st = self.lock();
        st.last_used = Some(Instant::now());
        st.free.push(memory);
    }

    /// Frees every pooled buffer if none was taken or returned since `now - POOL_IDLE`.
    fn trim_idle_at(&self, now: Instant) {
        let mut st = self.lock();
        if st
            .last_used
            .is_none_or(|t| now.saturating_duration_since(t) >= POOL_IDLE)
        {
            st.free = Vec::new();
        }
    }

    #[cfg(test)]
    fn pooled(&self) -> usize {
        self.lock().free.len()
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Argon2's working memory is allocated here (not inside the argon2 crate) with a capacity
/// past glibc's largest dynamic mmap threshold (32 MiB on 64-bit), so the allocator always maps
/// it fresh and unmaps it on free. The crate's own 19 MiB `Vec` falls under that threshold as
/// soon as the first one is freed, after which every blocking-pool thread's malloc arena keeps
/// one: RSS went from 13 MB to 365 MB after 24 logins and stayed there (bench/README.md,
/// "System"); with this it returns to ~15 MB. Only `blocks` blocks are written.
///
/// `memory` is a pooled buffer (see [`MemoryPool`]) or empty; it is grown when the hash needs
/// more blocks. Argon2 writes every block before it reads it, so a reused buffer's old contents
/// do not matter.
fn with_memory<T>(memory: &mut Vec<Block>, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    const UNMAPPED_ON_FREE: usize = (32 << 20) / Block::SIZE + 1;
    if memory.len() < blocks {
        let mut fresh: Vec<Block> = Vec::with_capacity(blocks.max(UNMAPPED_ON_FREE));
        fresh.resize(blocks, Block::default());
        *memory = fresh;
    }
    f(&mut memory[..blocks])
}

fn hash_blocking(
    params: &Params,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> DomainResult<String> {
    let internal = |e: &dyn std::fmt::Display| DomainError::Internal(format!("argon2 hash: {e}"));
    let salt_bytes = crate::crypto::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| DomainError::Internal(format!("salt: {e}")))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(memory, params.block_count(), |memory| {
        argon2(params).hash_password_into_with_memory(password, &salt_bytes, &mut out, memory)
    })
    .map_err(|e| internal(&e))?;
    // The same PHC string `PasswordHasher::hash_password` produces.
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| internal(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
    };
    Ok(phc.to_string())
}

/// `PasswordVerifier::verify_password` with the memory from [`with_memory`]: the algorithm,
/// version and parameters come from the stored hash, the comparison is constant-time.
fn verify_blocking(password: &[u8], phc: &PasswordHash<'_>, memory: &mut Vec<Block>) -> bool {
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(phc.algorithm) else {
        return false;
    };
    let Ok(version) = phc
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(phc) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    with_memory(memory, blocks, |memory| {
        argon.hash_password_into_with_memory(password, salt, &mut out, memory)
    })
    .is_ok()
        && crate::crypto::ct_eq(expected.as_bytes(), &out)
}

impl PasswordHasher {
    /// A hasher with the production parameters, as many concurrent hashes as CPU cores.
    pub async fn new() -> DomainResult<Self> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
            .map_err(|e| DomainError::Internal(format!("argon2 params: {e}")))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut hasher = Self {
            permits: Arc::new(Semaphore::new(cores)),
            params,
            dummy: Arc::new(String::new()),
            pool: Arc::new(MemoryPool::default()),
        };
        let random = Zeroizing::new(crate::crypto::random_token()?);
        hasher.dummy = Arc::new(hasher.hash(&random).await?);
        // Start small: no buffer is kept for a login that may not come for a while.
        hasher.pool.trim_idle_at(Instant::now() + POOL_IDLE);
        Ok(hasher)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Params, &mut Vec<Block>) -> T + Send + 'static,
    ) -> DomainResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DomainError::Internal("password hasher closed".into()))?;
        let params = self.params.clone();
        let mut memory = self.pool.take();
        let (out, memory) = tokio::task::spawn_blocking(move || {
            let out = f(&params, &mut memory);
            (out, memory)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("password task: {e}")))?;
        self.pool.put(memory);
        let pool = Arc::clone(&self.pool);
        tokio::spawn(async move {
            tokio::time::sleep(POOL_IDLE).await;
            pool.trim_idle_at(Instant::now());
        });
        Ok(out)
    }

    /// Hashes a password into PHC format.
    pub async fn hash(&self, password: &str) -> DomainResult<String> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        self.run(move |params, memory| hash_blocking(params, &password, memory))
            .await?
    }

    /// Verifies a password against a stored PHC hash. A malformed stored hash is `false`
    /// (logged), never an error the caller could distinguish.
    pub async fn verify(&self, password: &str, phc: &str) -> DomainResult<bool> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let phc = phc.to_string();
        self.run(move |_, memory| match PasswordHash::new(&phc) {
            Ok(parsed) => verify_blocking(&password, &parsed, memory),
            Err(_) => {
                tracing::error!("stored password hash is not a valid PHC string");
                false
            }
        })
        .await
    }

    /// Spends the same work as [`PasswordHasher::verify`] for an account that does not exist.
    pub async fn verify_dummy(&self, password: &str) -> DomainResult<()> {
        let dummy = Arc::clone(&self.dummy);
        self.verify(password, &dummy).await.map(|_| ())
    }
}

/// Checks a new password's length (NIST SP 800-63B §5.1.1.2: at least 8 characters, allow
/// long passphrases; the upper bound only caps hashing work).
pub fn validate_new_password(password: &str) -> DomainResult<()> {
    if password.chars().count() < MIN_LENGTH {
        return Err(DomainError::InvalidRequest(format!(
            "Password must be at least {MIN_LENGTH} characters"
        )));
    }
    if password.len() > MAX_LENGTH {
        return Err(DomainError::InvalidRequest(format!(
            "Password must be at most {MAX_LENGTH} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    /// The hand-built hash/verify interoperate with the argon2 crate's own PHC functions in
    /// both directions (hashes stored before and after the change keep verifying).
    #[test]
    fn interoperates_with_the_argon2_crate() {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap();
        // One buffer reused across every call below, dirty from the previous one.
        let mut mem = Vec::new();
        let ours = hash_blocking(&params, b"correct horse", &mut mem).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(verify_blocking(b"correct horse", &parsed, &mut mem));
        assert!(!verify_blocking(b"correct horsf", &parsed, &mut mem));
        assert!(argon2(&params)
            .verify_password(b"correct horse", &parsed)
            .is_ok());

        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let theirs = argon2(&params)
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        let parsed = PasswordHash::new(&theirs).unwrap();
        assert!(verify_blocking(b"battery staple", &parsed, &mut mem));
        assert!(!verify_blocking(b"battery stapl", &parsed, &mut mem));
        // Different parameters in the stored hash are honoured, not replaced by ours.
        let small = Params::new(8, 1, 1, None).unwrap();
        let old = argon2(&small)
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify_blocking(
            b"battery staple",
            &PasswordHash::new(&old).unwrap(),
            &mut mem
        ));
    }

    /// Buffers are reused between hashes (one per permit at most) and freed once idle.
    #[tokio::test]
    async fn working_memory_is_reused_then_released_when_idle() {
        let hasher = PasswordHasher::new().await.unwrap();
        assert_eq!(
            hasher.pool.pooled(),
            0,
            "the dummy hash's buffer is not kept"
        );
        let phc = hasher.hash("correct horse battery").await.unwrap();
        assert!(hasher.verify("correct horse battery", &phc).await.unwrap());
        assert!(!hasher.verify("correct horse batterz", &phc).await.unwrap());
        // new() keeps no buffer; three hashes one at a time: one buffer, reused.
        assert_eq!(hasher.pool.pooled(), 1);
        hasher.pool.trim_idle_at(Instant::now());
        assert_eq!(hasher.pool.pooled(), 1, "not idle yet");
        hasher.pool.trim_idle_at(Instant::now() + POOL_IDLE);
        assert_eq!(hasher.pool.pooled(), 0, "idle: returned to the OS");
        // And hashing still works from an empty pool.
        assert!(hasher.verify("correct horse battery", &phc).await.unwrap());
    }
}
