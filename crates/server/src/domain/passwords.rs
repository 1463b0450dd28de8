//! Password hashing: Argon2id (RFC 9106) with at least the OWASP minimum parameters
//! (m = 19456 KiB, t = 2, p = 1), run on dedicated threads (one per core) fed from a queue, so
//! a burst of logins can neither stall the async executor nor exhaust memory.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;
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
    params: Params,
    /// A hash of a random password, verified against when the account does not exist, so an
    /// unknown email costs the same time as a wrong password.
    dummy: Arc<String>,
    workers: Arc<Workers>,
}

/// How long a hashing thread keeps Argon2's working memory after its last hash.
const MEMORY_IDLE: Duration = Duration::from_secs(5);

/// The hashing threads, stopped when the last [`PasswordHasher`] clone drops this.
///
/// Each thread takes the next queued hash as soon as it finishes one, and keeps its 19 MiB of
/// working memory while hashes keep coming ([`MEMORY_IDLE`]). Before these threads, hashes ran
/// on Tokio's blocking pool behind a semaphore: between two hashes the permit went back
/// through the async side (the finished task woken on a worker, the next waiter woken on a
/// worker, `spawn_blocking` waking a pool thread), and under a login load both cores were idle
/// 5 % of the time and logins ran at 0.87-0.89 of raw Argon2id (bench/README.md, "System").
/// Before that, mapping a fresh 19 MiB per hash made the kernel zero-fill it on ~4,900 page
/// faults: 39 % of the server's CPU, logins at 0.52.
struct Workers {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// How long an idle thread keeps its working memory.
    memory_idle: Duration,
    /// Threads holding working memory (for tests and `Debug`).
    buffers: AtomicUsize,
    /// Threads running.
    threads: AtomicUsize,
    /// Jobs run (a job whose caller went away before it started is skipped, not counted).
    ran: AtomicU64,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// A queued hash: gets the thread's working memory; returns whether it ran.
type Job = Box<dyn FnOnce(&mut Vec<Block>) -> bool + Send>;

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.shared.threads.load(Ordering::Relaxed))
            .field("buffers", &self.shared.buffers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs never run under the lock, so a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next job; `None` once closed and drained. Frees `memory` after an idle interval.
    fn next(&self, memory: &mut Vec<Block>) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if let Some(job) = q.jobs.pop_front() {
                return Some(job);
            }
            if q.closed {
                return None;
            }
            if memory.capacity() == 0 {
                q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let (guard, waited) = self
                .wake
                .wait_timeout(q, self.memory_idle)
                .unwrap_or_else(|e| e.into_inner());
            q = guard;
            if waited.timed_out() && q.jobs.is_empty() {
                // Idle: return the memory to the OS (unmapped outside the lock).
                drop(q);
                *memory = Vec::new();
                self.buffers.fetch_sub(1, Ordering::Relaxed);
                q = self.lock();
            }
        }
    }

    fn run(&self) {
        let mut memory: Vec<Block> = Vec::new();
        while let Some(job) = self.next(&mut memory) {
            let had = memory.capacity() > 0;
            // A panicking hash must not take a thread (a core's worth of logins) down with it;
            // its caller sees its result channel close.
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
            if ran.unwrap_or(true) {
                self.ran.fetch_add(1, Ordering::Relaxed);
            }
            if !had && memory.capacity() > 0 {
                self.buffers.fetch_add(1, Ordering::Relaxed);
            }
        }
        if memory.capacity() > 0 {
            self.buffers.fetch_sub(1, Ordering::Relaxed);
        }
        self.threads.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    fn start(threads: usize, memory_idle: Duration) -> DomainResult<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            memory_idle,
            buffers: AtomicUsize::new(0),
            threads: AtomicUsize::new(0),
            ran: AtomicU64::new(0),
        });
        let workers = Self {
            shared: Arc::clone(&shared),
        };
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            shared.threads.fetch_add(1, Ordering::Relaxed);
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-argon2-{i}"))
                .spawn(move || shared.run());
            if let Err(e) = spawned {
                workers.shared.threads.fetch_sub(1, Ordering::Relaxed);
                // `workers` drops here and stops the threads already started.
                return Err(DomainError::Internal(format!("password thread: {e}")));
            }
        }
        Ok(workers)
    }

    fn submit(&self, job: Job) -> DomainResult<()> {
        let mut q = self.shared.lock();
        if q.closed {
            return Err(DomainError::Internal("password hasher closed".into()));
        }
        q.jobs.push_back(job);
        drop(q);
        self.shared.wake.notify_one();
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Queued jobs still run (their callers are waiting), then the threads exit.
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
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
/// `memory` is the hashing thread's buffer (see [`Workers`]) or empty; it is grown when the
/// hash needs more blocks. Argon2 writes every block before it reads it, so a reused buffer's
/// old contents do not matter.
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
    /// A hasher with the production parameters, one hashing thread per CPU core.
    pub async fn new() -> DomainResult<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(cores, MEMORY_IDLE).await
    }

    async fn with_threads(threads: usize, memory_idle: Duration) -> DomainResult<Self> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
            .map_err(|e| DomainError::Internal(format!("argon2 params: {e}")))?;
        // The dummy is hashed with memory of its own, freed at once: the hashing threads start
        // without any, so an idle server stays small until logins come (bench/README.md,
        // "System": 32 MB idle when a thread kept the dummy's 19 MiB, 13 MB without).
        let random = Zeroizing::new(crate::crypto::random_token()?.into_bytes());
        let dummy_params = params.clone();
        let dummy = tokio::task::spawn_blocking(move || {
            hash_blocking(&dummy_params, &random, &mut Vec::new())
        })
        .await
        .map_err(|e| DomainError::Internal(format!("password task: {e}")))??;
        Ok(Self {
            params,
            dummy: Arc::new(dummy),
            workers: Arc::new(Workers::start(threads, memory_idle)?),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Params, &mut Vec<Block>) -> T + Send + 'static,
    ) -> DomainResult<T> {
        let (tx, rx) = oneshot::channel();
        let params = self.params.clone();
        self.workers.submit(Box::new(move |memory| {
            // The caller went away while this waited (client gone, request timed out): skip
            // the hash, so the next caller's starts now.
            if tx.is_closed() {
                return false;
            }
            let _ = tx.send(f(&params, memory));
            true
        }))?;
        rx.await
            .map_err(|_| DomainError::Internal("password hash failed".into()))
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

    /// Each thread keeps its working memory between hashes and frees it once idle; dropping
    /// the last hasher clone stops the threads.
    #[tokio::test]
    async fn working_memory_is_kept_then_released_when_idle() {
        let idle = Duration::from_millis(300);
        let hasher = PasswordHasher::with_threads(2, idle).await.unwrap();
        let shared = Arc::clone(&hasher.workers.shared);
        assert_eq!(shared.threads.load(Ordering::Relaxed), 2);
        assert_eq!(
            shared.buffers.load(Ordering::Relaxed),
            0,
            "the dummy hash's memory is not kept"
        );
        let phc = hasher.hash("correct horse battery").await.unwrap();
        assert!(hasher.verify("correct horse battery", &phc).await.unwrap());
        assert!(!hasher.verify("correct horse batterz", &phc).await.unwrap());
        // (Counted just after a hash's result is sent.)
        let mut waited = 0;
        while shared.buffers.load(Ordering::Relaxed) == 0 {
            assert!(waited < 500, "no buffer held after three hashes");
            tokio::time::sleep(Duration::from_millis(1)).await;
            waited += 1;
        }
        let held = shared.buffers.load(Ordering::Relaxed);
        assert!((1..=2).contains(&held), "{held} buffers held");
        // Idle: returned to the OS, and hashing still works after.
        let mut waited = Duration::ZERO;
        while shared.buffers.load(Ordering::Relaxed) > 0 {
            assert!(waited < idle * 10, "memory still held after {waited:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
        assert!(hasher.verify("correct horse battery", &phc).await.unwrap());

        let clone = hasher.clone();
        drop(hasher);
        assert!(clone.verify("correct horse battery", &phc).await.unwrap());
        drop(clone);
        let mut waited = Duration::ZERO;
        while shared.threads.load(Ordering::Relaxed) > 0 {
            assert!(waited < Duration::from_secs(10), "threads still running");
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
        assert_eq!(shared.buffers.load(Ordering::Relaxed), 0);
    }

    /// A caller that goes away while its hash is queued (client disconnected, request timed
    /// out) costs no hash.
    #[tokio::test]
    async fn abandoned_hashes_are_skipped() {
        let hasher = PasswordHasher::with_threads(1, MEMORY_IDLE).await.unwrap();
        let shared = Arc::clone(&hasher.workers.shared);
        let phc = hasher.hash("correct horse battery").await.unwrap();
        let before = shared.ran.load(Ordering::Relaxed);
        // A job holds the only thread until released; five hashes queue behind it.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (entered, started) = std::sync::mpsc::channel::<()>();
        hasher
            .workers
            .submit(Box::new(move |_| {
                let _ = entered.send(());
                let _ = gate.recv();
                true
            }))
            .unwrap();
        started.recv().unwrap();
        let mut abandoned = Vec::new();
        for _ in 0..5 {
            let h = hasher.clone();
            abandoned.push(tokio::spawn(async move { h.hash("abandoned pass").await }));
        }
        while shared.lock().jobs.len() < 5 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for task in &abandoned {
            task.abort();
        }
        for task in abandoned {
            assert!(task.await.unwrap_err().is_cancelled());
        }
        release.send(()).unwrap();
        // The five are skipped, not hashed: the next hash is the only one that runs.
        assert!(hasher.verify("correct horse battery", &phc).await.unwrap());
        // (A job is counted just after its result is sent: wait for the count to catch up.)
        let mut waited = 0;
        while shared.ran.load(Ordering::Relaxed) - before < 2 {
            assert!(waited < 500, "the verify was not counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert_eq!(shared.ran.load(Ordering::Relaxed) - before, 2);
        assert!(shared.lock().jobs.is_empty());
    }
}
