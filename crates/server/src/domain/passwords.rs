//! Password hashing: Argon2id (RFC 9106) with at least the OWASP minimum parameters
//! (m = 19456 KiB, t = 2, p = 1), run on the blocking pool behind a semaphore so a burst of
//! logins can neither stall the async executor nor exhaust memory.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
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

fn hash_blocking(params: &Params, password: &[u8]) -> DomainResult<String> {
    let salt_bytes = crate::crypto::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| DomainError::Internal(format!("salt: {e}")))?;
    argon2(params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::Internal(format!("argon2 hash: {e}")))
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
        self.run(move |params| match PasswordHash::new(&phc) {
            Ok(parsed) => argon2(params).verify_password(&password, &parsed).is_ok(),
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
