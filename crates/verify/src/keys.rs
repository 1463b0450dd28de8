//! The issuer's signing keys: fetched from `jwks_uri`, cached per `Cache-Control: max-age`,
//! refetched early when a token names an unknown `kid` — at most once per interval, and
//! single-flight, so a flood of made-up `kid`s cannot become a flood of fetches.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_jwt::KeySet;

use crate::http_util::{read_capped, retry_delay};
use crate::verifier::Shared;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Freshness when the JWKS response has no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Bounds on an honoured `max-age`: a zero would make us poll in a loop, a huge value would
/// keep a withdrawn key forever.
const MIN_MAX_AGE: Duration = Duration::from_secs(1);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Key state shared by the verifier and its refresh task.
#[derive(Debug)]
pub(crate) struct Keys {
    pub jwks_uri: String,
    pub current: RwLock<Arc<KeySet>>,
    kids: RwLock<HashSet<String>>,
    /// Incremented after every successful fetch; lets waiters see that one happened.
    pub generation: AtomicU64,
    /// Monotonic ms (see `Shared::mono_ms`) of the last successful fetch.
    pub fetched_at: AtomicU64,
    /// Current freshness lifetime in ms.
    pub max_age_ms: AtomicU64,
    /// Monotonic ms of the last fetch triggered by an unknown `kid` (0: never).
    last_unknown_kid_fetch: AtomicU64,
    /// Total JWKS requests sent (for health and tests).
    pub fetches: AtomicU64,
    /// Single flight: one fetch at a time.
    fetch_lock: tokio::sync::Mutex<()>,
    pub unknown_kid_interval: Duration,
}

/// A fetched JWKS.
pub(crate) struct Fetched {
    set: KeySet,
    kids: HashSet<String>,
    max_age: Duration,
}

impl Keys {
    pub(crate) fn new(jwks_uri: String, first: Fetched, now_ms: u64, interval: Duration) -> Self {
        Self {
            jwks_uri,
            current: RwLock::new(Arc::new(first.set)),
            kids: RwLock::new(first.kids),
            generation: AtomicU64::new(1),
            fetched_at: AtomicU64::new(now_ms),
            max_age_ms: AtomicU64::new(ms(first.max_age)),
            last_unknown_kid_fetch: AtomicU64::new(0),
            fetches: AtomicU64::new(1),
            fetch_lock: tokio::sync::Mutex::new(()),
            unknown_kid_interval: interval,
        }
    }

    /// The current key set.
    pub(crate) fn get(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `Cache-Control` → freshness lifetime (RFC 9111 §5.2.2.1 `max-age`; `no-cache`/`no-store`
/// mean "revalidate every time", which we bound by `MIN_MAX_AGE`).
pub(crate) fn max_age(headers: &http::HeaderMap) -> Duration {
    let mut out = None;
    for v in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(v) = v.to_str() else { continue };
        for d in v.split(',') {
            let d = d.trim().to_ascii_lowercase();
            if d == "no-cache" || d == "no-store" {
                out = Some(Duration::ZERO);
            } else if let Some(n) = d.strip_prefix("max-age=") {
                if let Ok(n) = n.trim_matches('"').parse::<u64>() {
                    out = Some(out.map_or(Duration::from_secs(n), |o: Duration| {
                        o.min(Duration::from_secs(n))
                    }));
                }
            }
        }
    }
    out.unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

/// Fetches and parses the JWKS at `uri`.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    uri: &str,
    timeout: Duration,
) -> Result<Fetched, String> {
    let resp = http
        .get(uri)
        .header(http::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("JWKS request failed: {e}"))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("JWKS request answered {}", resp.status()));
    }
    let max_age = max_age(resp.headers());
    let body = read_capped(resp, MAX_JWKS_BYTES).await?;
    let set = KeySet::from_jwks_json(&body).map_err(|e| format!("invalid JWKS: {e}"))?;
    // The kids, to notice a key being withdrawn (then cached verifications must go).
    let kids = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("keys").and_then(|k| k.as_array()).map(|keys| {
                keys.iter()
                    .filter_map(|k| k.get("kid").and_then(|x| x.as_str()).map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default();
    Ok(Fetched { set, kids, max_age })
}

/// Fetches and installs a new key set. Caller holds `fetch_lock`.
async fn refetch(shared: &Shared) -> Result<(), String> {
    let keys = &shared.keys;
    keys.fetches.fetch_add(1, Ordering::Relaxed);
    let f = fetch(&shared.http, &keys.jwks_uri, shared.http_timeout).await?;
    let withdrawn = {
        let mut kids = keys.kids.write().unwrap_or_else(|e| e.into_inner());
        let withdrawn = kids.iter().any(|k| !f.kids.contains(k));
        *kids = f.kids;
        withdrawn
    };
    *keys.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(f.set);
    keys.max_age_ms.store(ms(f.max_age), Ordering::Relaxed);
    keys.fetched_at.store(shared.mono_ms(), Ordering::Relaxed);
    keys.generation.fetch_add(1, Ordering::Release);
    if withdrawn {
        // A withdrawn key may have been withdrawn because it leaked: stop trusting what it
        // signed at once instead of serving cached verifications until they expire.
        shared.cache.clear();
    }
    Ok(())
}

/// Called when a token names an unknown `kid`. Returns true if the key set changed since
/// `seen_generation` (so verification is worth retrying once).
pub(crate) async fn refresh_for_unknown_kid(shared: &Shared, seen_generation: u64) -> bool {
    let keys = &shared.keys;
    let interval = ms(keys.unknown_kid_interval);
    let allowed = |now: u64| {
        let last = keys.last_unknown_kid_fetch.load(Ordering::Relaxed);
        last == 0 || now.saturating_sub(last) >= interval
    };
    if keys.generation.load(Ordering::Acquire) != seen_generation {
        return true;
    }
    // Cheap early rejection: under a flood, nobody even queues for the lock.
    if !allowed(shared.mono_ms()) && keys.fetch_lock.try_lock().is_ok() {
        return false;
    }
    let _flight = keys.fetch_lock.lock().await;
    if keys.generation.load(Ordering::Acquire) != seen_generation {
        // Someone fetched while we waited: use their result.
        return true;
    }
    let now = shared.mono_ms();
    if !allowed(now) {
        return false;
    }
    keys.last_unknown_kid_fetch.store(now, Ordering::Relaxed);
    match refetch(shared).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "JWKS refetch for an unknown kid failed");
            false
        }
    }
}

/// Background task: refetches the key set when its `max-age` has passed; on failure keeps
/// the old keys (stale keys beat no keys while the issuer is down) and retries with backoff.
pub(crate) async fn refresh_task(shared: std::sync::Weak<Shared>) {
    let mut failures = 0u32;
    loop {
        let wait = {
            let Some(s) = shared.upgrade() else { return };
            let due = s.keys.fetched_at.load(Ordering::Relaxed)
                + s.keys.max_age_ms.load(Ordering::Relaxed);
            let wait = Duration::from_millis(due.saturating_sub(s.mono_ms()));
            if failures > 0 {
                wait.max(retry_delay(
                    failures,
                    Duration::from_secs(1),
                    Duration::from_secs(60),
                ))
            } else {
                wait
            }
        };
        tokio::time::sleep(wait).await;
        let Some(s) = shared.upgrade() else { return };
        let due =
            s.keys.fetched_at.load(Ordering::Relaxed) + s.keys.max_age_ms.load(Ordering::Relaxed);
        if s.mono_ms() < due && failures == 0 {
            continue; // an unknown-kid fetch refreshed the keys meanwhile
        }
        let _flight = s.keys.fetch_lock.lock().await;
        match refetch(&s).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "scheduled JWKS refresh failed; keeping cached keys");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &[&str]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for v in v {
            m.append(http::header::CACHE_CONTROL, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn cache_control_parsing() {
        assert_eq!(max_age(&h(&[])), DEFAULT_MAX_AGE);
        assert_eq!(
            max_age(&h(&["public, max-age=60"])),
            Duration::from_secs(60)
        );
        assert_eq!(
            max_age(&h(&["Max-Age=7", "max-age=9"])),
            Duration::from_secs(7)
        );
        assert_eq!(max_age(&h(&["no-store"])), MIN_MAX_AGE);
        assert_eq!(max_age(&h(&["max-age=99999999"])), MAX_MAX_AGE);
        assert_eq!(max_age(&h(&["max-age=abc"])), DEFAULT_MAX_AGE);
    }
}
