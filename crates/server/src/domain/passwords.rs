//! Password hashing: Argon2id (RFC 9106) with at least the OWASP minimum parameters
//! (m = 19456 KiB, t = 2, p = 1), run on the blocking pool behind a semaphore so a burst of
//! logins can neither stall the async executor nor exhaust memory.

use std::sync::Arc;

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
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    const UNMAPPED_ON_FREE: usize = (32 << 20) / Block::SIZE + 1;
    let mut memory: Vec<Block> = Vec::with_capacity(blocks.max(UNMAPPED_ON_FREE));
    memory.resize(blocks, Block::default());
    f(&mut memory)
}

fn hash_blocking(params: &Params, password: &[u8]) -> DomainResult<String> {
    let internal = |e: &dyn std::fmt::Display| DomainError::Internal(format!("argon2 hash: {e}"));
    let salt_bytes = crate::crypto::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| DomainError::Internal(format!("salt: {e}")))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(params.block_count(), |memory| {
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
fn verify_blocking(password: &[u8], phc: &PasswordHash<'_>) -> bool {
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
    with_memory(blocks, |memory| {
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
        };
        let random = Zeroizing::new(crate::crypto::random_token()?);
        hasher.dummy = Arc::new(hasher.hash(&random).await?);
        Ok(hasher)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Params) -> T + Send + 'static,
    ) -> DomainResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DomainError::Internal("password hasher closed".into()))?;
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || f(&params))
            .await
            .map_err(|e| DomainError::Internal(format!("password task: {e}")))
    }

    /// Hashes a password into PHC format.
    pub async fn hash(&self, password: &str) -> DomainResult<String> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        self.run(move |params| hash_blocking(params, &password))
            .await?
    }

    /// Verifies a password against a stored PHC hash. A malformed stored hash is `false`
    /// (logged), never an error the caller could distinguish.
    pub async fn verify(&self, password: &str, phc: &str) -> DomainResult<bool> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let phc = phc.to_string();
        self.run(move |_| match PasswordHash::new(&phc) {
            Ok(parsed) => verify_blocking(&password, &parsed),
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
        let ours = hash_blocking(&params, b"correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(verify_blocking(b"correct horse", &parsed));
        assert!(!verify_blocking(b"correct horsf", &parsed));
        assert!(argon2(&params)
            .verify_password(b"correct horse", &parsed)
            .is_ok());

        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let theirs = argon2(&params)
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        let parsed = PasswordHash::new(&theirs).unwrap();
        assert!(verify_blocking(b"battery staple", &parsed));
        assert!(!verify_blocking(b"battery stapl", &parsed));
        // Different parameters in the stored hash are honoured, not replaced by ours.
        let small = Params::new(8, 1, 1, None).unwrap();
        let old = argon2(&small)
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify_blocking(
            b"battery staple",
            &PasswordHash::new(&old).unwrap()
        ));
    }
}
