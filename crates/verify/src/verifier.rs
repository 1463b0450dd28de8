//! The [`Verifier`]: discovery, construction, the verification hot path and health.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::{key_of, Entry, Key, TokenCache};
use crate::error::{BuildError, VerifyError};
use crate::extract::{RequireAuthLayer, VerifierExtensionLayer};
use crate::feed::{self, FeedAuth, FeedConfig, FeedStatus};
use crate::http_util::read_capped;
use crate::keys::{self, Keys};
use crate::local;
use crate::revocation::{FeedEvent, RevocationState};
use crate::{token, AccessClaims};

/// Largest token accepted (docs: 8 KiB), checked before hashing or decoding anything.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Largest metadata document accepted.
const MAX_METADATA_BYTES: usize = 256 * 1024;

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// RFC 8414 metadata, the members we use.
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    revocation_feed_endpoint: Option<String>,
}

/// Configures and builds a [`Verifier`]; from [`Verifier::builder`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    auth: Option<FeedAuth>,
    feed: bool,
    leeway: Duration,
    unknown_kid_interval: Duration,
    cache_capacity: usize,
    fail_closed_after: Option<Duration>,
    backoff_min: Duration,
    backoff_max: Duration,
    idle_timeout: Duration,
    http_timeout: Duration,
    max_event_bytes: usize,
    prune_interval: Duration,
}

impl VerifierBuilder {
    /// The audience this resource server accepts (`aud` must contain it). Default `api`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Authenticate to the revocation feed with HTTP Basic and the credentials of a client
    /// whose scope includes `revocations:read`.
    pub fn client_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.auth = Some(FeedAuth::Basic {
            id: id.into(),
            secret: secret.into(),
        });
        self
    }

    /// Authenticate to the revocation feed with a static bearer token (`TESSERA_FEED_TOKEN`).
    pub fn feed_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(FeedAuth::Bearer(token.into()));
        self
    }

    /// Do not follow the revocation feed at all: logout and other revocations are then only
    /// effective when tokens expire. Only for issuers without a feed.
    pub fn without_revocation_feed(mut self) -> Self {
        self.feed = false;
        self
    }

    /// Clock-skew leeway for `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Minimum time between two JWKS fetches triggered by tokens with an unknown `kid`
    /// (default 10 s). Scheduled refreshes (`Cache-Control: max-age`) are not limited by it.
    pub fn unknown_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }

    /// How many verified tokens to remember so repeat requests skip the signature check
    /// (default 10 000; 0 disables the cache).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Fail closed: reject every token (503) once the revocation feed has been silent for
    /// longer than `after`. Keep-alives count as activity; the server sends one every 15 s, so
    /// `after` should be comfortably above that. Default: keep verifying and report staleness
    /// through [`Verifier::health`].
    pub fn fail_closed_after(mut self, after: Duration) -> Self {
        self.fail_closed_after = Some(after);
        self
    }

    /// Reconnect backoff bounds for the feed (default 250 ms .. 30 s, with jitter).
    pub fn feed_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_min);
        self
    }

    /// Drop and reconnect the feed when nothing (not even a keep-alive) arrived for this long
    /// (default 45 s, three keep-alive periods).
    pub fn feed_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How often expired revocation entries are pruned while the feed is connected (default
    /// 10 s).
    pub fn revocation_prune_interval(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Largest revocation snapshot, SSE line or SSE event accepted from the feed (default
    /// 32 MiB, about 300 000 live revocations in a snapshot). Anything larger is a malformed
    /// feed: the verifier fails closed until a snapshot within the limit arrives.
    pub fn feed_max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes.max(1024);
        self
    }

    /// Timeout of metadata, JWKS and snapshot requests (default 10 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Discovers the issuer's metadata, fetches its keys and the revocation snapshot, and
    /// starts following the feed in the background. Must be called inside a Tokio runtime.
    ///
    /// Fails if the issuer is unreachable, its metadata does not name exactly the configured
    /// issuer (RFC 8414 §3.3), the JWKS is invalid, or the feed refuses the credentials.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        if self.feed && self.auth.is_none() {
            return Err(BuildError::Config(
                "the revocation feed needs client_credentials or feed_token \
                 (or without_revocation_feed)",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Credentials are sent to the URLs the metadata names and nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError::Config(leak_free(&e)))?;
        let md_url = metadata_url(&self.issuer)?;
        let md = fetch_metadata(&http, &md_url, self.http_timeout).await?;
        if md.issuer != self.issuer {
            return Err(BuildError::Metadata(format!(
                "metadata issuer {:?} differs from the configured issuer {:?}",
                md.issuer, self.issuer
            )));
        }
        check_url(&md.jwks_uri)?;
        let fetched = keys::fetch(&http, &md.jwks_uri, self.http_timeout)
            .await
            .map_err(|reason| BuildError::Http {
                url: md.jwks_uri.clone(),
                reason,
            })?;
        let epoch = Instant::now();
        let feed_cfg = if self.feed {
            let snapshot_url = match md.revocation_feed_endpoint {
                Some(u) => u,
                None => format!("{}/revocations", self.issuer.trim_end_matches('/')),
            };
            check_url(&snapshot_url)?;
            Some(FeedConfig {
                stream_url: format!("{}/stream", snapshot_url.trim_end_matches('/')),
                snapshot_url,
                auth: self.auth.clone(),
                backoff_min: self.backoff_min,
                backoff_max: self.backoff_max,
                idle_timeout: self.idle_timeout,
                max_line: self.max_event_bytes,
                max_event: self.max_event_bytes,
                prune_interval: self.prune_interval,
            })
        } else {
            None
        };
        let shared = Arc::new(Shared {
            validation: token::validation(&self.issuer, &self.audience, self.leeway),
            leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            issuer: self.issuer,
            audience: self.audience,
            keys: Keys::new(md.jwks_uri, fetched, 1, self.unknown_kid_interval),
            http,
            http_timeout: self.http_timeout,
            cache: TokenCache::new(self.cache_capacity),
            revocations: RwLock::new(RevocationState::default()),
            revocation_gen: AtomicU64::new(0),
            feed: FeedStatus::default(),
            feed_enabled: feed_cfg.is_some(),
            fail_closed_after: self.fail_closed_after,
            epoch,
            id: NEXT_VERIFIER_ID.fetch_add(1, Ordering::Relaxed),
        });
        let mut tasks =
            vec![tokio::spawn(keys::refresh_task(Arc::downgrade(&shared))).abort_handle()];
        if let Some(cfg) = feed_cfg {
            feed::sync_snapshot(&shared, &cfg)
                .await
                .map_err(BuildError::Feed)?;
            tasks.push(tokio::spawn(feed::run(Arc::downgrade(&shared), cfg)).abort_handle());
        }
        Ok(Verifier {
            inner: Arc::new(Inner { shared, tasks }),
        })
    }
}

fn leak_free(_e: &reqwest::Error) -> &'static str {
    "could not build the HTTP client"
}

fn check_url(u: &str) -> Result<reqwest::Url, BuildError> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err(BuildError::InvalidUrl(u.to_owned())),
    }
}

/// RFC 8414 §3.1: the well-known suffix goes between the host and any path of the issuer.
fn metadata_url(issuer: &str) -> Result<String, BuildError> {
    let mut url = check_url(issuer)?;
    if url.query().is_some() || url.fragment().is_some() {
        // RFC 8414 §2: the issuer has no query or fragment.
        return Err(BuildError::InvalidUrl(issuer.to_owned()));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Ok(url.to_string())
}

async fn fetch_metadata(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Metadata, BuildError> {
    let err = |reason: String| BuildError::Http {
        url: url.to_owned(),
        reason,
    };
    let resp = http
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(err(format!("status {}", resp.status())));
    }
    let body = read_capped(resp, MAX_METADATA_BYTES).await.map_err(err)?;
    serde_json::from_slice(&body).map_err(|e| BuildError::Metadata(e.to_string()))
}

/// State shared by the verifier handles and its background tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    issuer: String,
    audience: String,
    validation: tessera_jwt::Validation,
    leeway: i64,
    pub keys: Keys,
    pub http: reqwest::Client,
    pub http_timeout: Duration,
    pub cache: TokenCache,
    revocations: RwLock<RevocationState>,
    /// Bumped after every change of `revocations`. A cached token checked against generation
    /// G need not be checked again while the generation is still G: the state has not changed.
    revocation_gen: AtomicU64,
    pub feed: FeedStatus,
    feed_enabled: bool,
    fail_closed_after: Option<Duration>,
    epoch: Instant,
    /// Unique in the process: tags this verifier's per-thread cache slots (`local.rs`).
    id: u64,
}

/// The next [`Shared::id`].
static NEXT_VERIFIER_ID: AtomicU64 = AtomicU64::new(1);

impl Shared {
    /// Monotonic milliseconds since the verifier was built, plus one (so 0 can mean "never").
    pub(crate) fn mono_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    pub(crate) fn revocations_cursor(&self) -> Option<u64> {
        self.revocations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .cursor()
    }

    pub(crate) fn replace_revocations(&self, cursor: u64, events: &[FeedEvent]) {
        let mut s = self.revocations.write().unwrap_or_else(|e| e.into_inner());
        s.replace(cursor, events);
        s.prune(unix_now(), self.leeway);
        drop(s);
        self.revocation_gen.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn apply_revocation(&self, e: &FeedEvent) -> bool {
        let applied = self
            .revocations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply(e);
        if applied {
            self.revocation_gen.fetch_add(1, Ordering::Release);
        }
        applied
    }

    pub(crate) fn prune_revocations(&self) {
        let n = self
            .revocations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .prune(unix_now(), self.leeway);
        // Pruning drops only entries whose tokens are all past `exp + leeway`, so no cached
        // verification can change: no generation bump.
        if n > 0 {
            tracing::debug!(pruned = n, "pruned expired revocations");
        }
    }

    fn silent_for(&self) -> Duration {
        let last = self.feed.last_activity.load(Ordering::Relaxed);
        Duration::from_millis(self.mono_ms().saturating_sub(last))
    }

    /// Checks the revocation state for `claims`; `gen` is the generation read *before*.
    fn check_revoked(&self, claims: &AccessClaims) -> Result<(), VerifyError> {
        let s = self.revocations.read().unwrap_or_else(|e| e.into_inner());
        match s.check(
            claims.sid.as_deref(),
            claims.jti.as_deref(),
            &claims.sub,
            // A token without `iat` cannot prove it postdates a cutoff.
            claims.iat.unwrap_or(i64::MIN),
        ) {
            Some(r) => Err(VerifyError::Revoked(r)),
            None => Ok(()),
        }
    }

    /// What every cache hit checks again: the lifetime always, the revocation state when it
    /// moved since the hit was last checked (`checked_gen`; `gen` is the generation now).
    /// `Ok(true)` when the revocation state was checked again, at `gen`.
    fn recheck(
        &self,
        claims: &AccessClaims,
        now: i64,
        checked_gen: u64,
        gen: u64,
    ) -> Result<bool, VerifyError> {
        self.check_time(claims, now)?;
        if checked_gen == gen {
            return Ok(false);
        }
        self.check_revoked(claims)?;
        Ok(true)
    }

    /// A cache hit that failed [`recheck`](Self::recheck). Revocation is final: its cache
    /// entry is freed.
    fn rejected(&self, key: &Key, e: VerifyError) -> Cached {
        if matches!(e, VerifyError::Revoked(_)) {
            self.cache.remove(key);
        }
        Cached::Rejected(e)
    }

    fn check_time(&self, claims: &AccessClaims, now: i64) -> Result<(), VerifyError> {
        if claims.exp.saturating_add(self.leeway) < now {
            return Err(VerifyError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(self.leeway) > now)
        {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }

    fn verify_signature(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let keys = self.keys.get();
        token::verify(token, &keys, &self.validation)
    }
}

/// What [`Verifier::verify_cached`] found.
#[derive(Debug)]
pub(crate) enum Cached {
    /// A cached token, still within its lifetime and not revoked.
    Hit(Arc<AccessClaims>),
    /// Rejected without a signature check (fail-closed, too large, expired or revoked).
    Rejected(VerifyError),
    /// Not cached: [`Verifier::verify_uncached`] with this key and time.
    Miss { key: Key, now: i64 },
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop the feed and key refresh tasks.
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Verifies Tessera access tokens locally: cached keys, a followed revocation feed, no
/// per-request call to the auth server. Cheap to clone (one `Arc`); clones share everything.
/// Background tasks stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

/// A point-in-time report on the verifier's freshness; from [`Verifier::health`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Whether the revocation feed stream is connected now.
    pub feed_connected: bool,
    /// The feed position the local revocation state reflects.
    pub cursor: Option<u64>,
    /// Unix time of the last revocation event applied, if any.
    pub last_event_at: Option<i64>,
    /// Unix time the feed last showed life (event, keep-alive or snapshot).
    pub last_synced_at: Option<i64>,
    /// Milliseconds since the feed last showed life.
    pub feed_silent_ms: u64,
    /// Whether `verify` currently rejects everything: because of `fail_closed_after`, or
    /// because the state is desynced (`revocations_desynced`).
    pub failing_closed: bool,
    /// Whether the feed sent an event that could not be applied and no snapshot has resynced
    /// the state since (every token is rejected meanwhile).
    pub revocations_desynced: bool,
    /// Times the feed connection ended and was retried.
    pub feed_reconnects: u64,
    /// The last feed error, cleared on reconnect.
    pub feed_error: Option<String>,
    /// Milliseconds since the key set was last fetched.
    pub keys_age_ms: u64,
    /// JWKS requests made so far.
    pub jwks_fetches: u64,
    /// Live revocation entries held.
    pub revocations: usize,
    /// Verified tokens cached.
    pub cached_tokens: usize,
}

impl Verifier {
    /// Starts configuring a verifier for tokens of `issuer` (its exact issuer URL, for
    /// instance `https://auth.example.com`).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: "api".to_owned(),
            auth: None,
            feed: true,
            leeway: Duration::from_secs(30),
            unknown_kid_interval: Duration::from_secs(10),
            cache_capacity: 10_000,
            fail_closed_after: None,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(45),
            http_timeout: Duration::from_secs(10),
            max_event_bytes: 32 * 1024 * 1024,
            prune_interval: Duration::from_secs(10),
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Verifies a bearer token: signature (key chosen by `kid`, algorithm bound to the key),
    /// `typ: at+jwt`, `iss`, `aud`, `exp`/`nbf` with leeway, then the revocation state (session,
    /// token id, user cutoff).
    ///
    /// A token verified before is found in a bounded cache by its SHA-256 and skips the
    /// signature; its lifetime and revocation are still checked on every call. A token naming
    /// an unknown `kid` triggers at most one rate-limited JWKS refetch.
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, VerifyError> {
        match self.verify_cached(token.as_bytes()) {
            Cached::Hit(claims) => Ok(claims),
            Cached::Rejected(e) => Err(e),
            Cached::Miss { key, now } => self.verify_uncached(token, key, now).await,
        }
    }

    /// The synchronous part of [`verify`](Self::verify): the fail-closed checks, the size cap
    /// and the cache lookup (with `exp`/`nbf` and the revocation state checked on a hit).
    /// The layer calls it before boxing anything, so a repeat token costs no allocation.
    pub(crate) fn verify_cached(&self, token: &[u8]) -> Cached {
        let s = self.shared();
        // A known gap in the revocation state: refuse everything until it is resynced.
        if s.feed_enabled && s.feed.desynced.load(Ordering::Acquire) {
            return Cached::Rejected(VerifyError::FeedDesynced);
        }
        if let Some(max) = s.fail_closed_after {
            let silent_for = s.silent_for();
            if s.feed_enabled && silent_for > max {
                return Cached::Rejected(VerifyError::FeedStale { silent_for });
            }
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Cached::Rejected(VerifyError::Invalid(tessera_jwt::Error::TokenTooLarge {
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            }));
        }
        let now = unix_now();
        let key = key_of(token);
        // Both read before any lookup whose result is kept: a clear or a revocation after this
        // point makes what is kept look stale, never fresh.
        let epoch = s.cache.epoch();
        let gen = s.revocation_gen.load(Ordering::Acquire);
        if let Some((claims, checked_gen)) = local::get(s.id, &key, epoch) {
            return match s.recheck(&claims, now, checked_gen, gen) {
                Ok(rechecked) => {
                    if rechecked {
                        local::checked(s.id, &key, gen);
                    }
                    Cached::Hit(claims)
                }
                Err(e) => {
                    local::forget(s.id, &key);
                    s.rejected(&key, e)
                }
            };
        }
        let hit = s.cache.with(&key, |entry| {
            let checked_gen = entry.checked_gen.load(Ordering::Relaxed);
            if s.recheck(&entry.claims, now, checked_gen, gen)? {
                entry.checked_gen.store(gen, Ordering::Relaxed);
            }
            local::offer(s.id, &key, &entry.claims, gen, epoch);
            Ok(Arc::clone(&entry.claims))
        });
        match hit {
            Some(Ok(claims)) => Cached::Hit(claims),
            Some(Err(e)) => s.rejected(&key, e),
            None => Cached::Miss { key, now },
        }
    }

    /// The rest of [`verify`](Self::verify) after a cache miss: signature and claims, the
    /// revocation state, then the cache insert.
    pub(crate) async fn verify_uncached(
        &self,
        token: &str,
        key: Key,
        now: i64,
    ) -> Result<Arc<AccessClaims>, VerifyError> {
        let s = self.shared();
        let seen_keys = s.keys.generation.load(Ordering::Acquire);
        let claims = match s.verify_signature(token) {
            Err(VerifyError::UnknownKey) => {
                if keys::refresh_for_unknown_kid(s, seen_keys).await {
                    s.verify_signature(token)?
                } else {
                    return Err(VerifyError::UnknownKey);
                }
            }
            r => r?,
        };
        s.check_time(&claims, now)?;
        let gen = s.revocation_gen.load(Ordering::Acquire);
        s.check_revoked(&claims)?;
        let claims = Arc::new(claims);
        s.cache
            .insert(key, Entry::new(Arc::clone(&claims), gen), now);
        Ok(claims)
    }

    /// When the revocation state was last known to be current: the last time the feed showed
    /// life (an event, a keep-alive or a snapshot). `None` without a feed.
    pub fn last_synced(&self) -> Option<SystemTime> {
        let s = self.shared();
        if !s.feed_enabled || s.feed.last_activity.load(Ordering::Relaxed) == 0 {
            return None;
        }
        SystemTime::now().checked_sub(s.silent_for())
    }

    /// A report on feed connectivity, cursor, staleness and key age.
    pub fn health(&self) -> Health {
        let s = self.shared();
        let silent = s.silent_for();
        let (cursor, revocations) = {
            let r = s.revocations.read().unwrap_or_else(|e| e.into_inner());
            (r.cursor(), r.len())
        };
        let last_event = s.feed.last_event_unix.load(Ordering::Relaxed);
        let desynced = s.feed_enabled && s.feed.desynced.load(Ordering::Acquire);
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Health {
            feed_connected: s.feed.connected.load(Ordering::Relaxed),
            cursor,
            last_event_at: (last_event != 0).then_some(last_event),
            last_synced_at: self.last_synced().map(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            }),
            feed_silent_ms: ms(silent),
            failing_closed: s.feed_enabled
                && (desynced || s.fail_closed_after.is_some_and(|m| silent > m)),
            revocations_desynced: desynced,
            feed_reconnects: s.feed.reconnects.load(Ordering::Relaxed),
            feed_error: s
                .feed
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            keys_age_ms: s
                .mono_ms()
                .saturating_sub(s.keys.fetched_at.load(Ordering::Relaxed)),
            jwks_fetches: s.keys.fetches.load(Ordering::Relaxed),
            revocations,
            cached_tokens: s.cache.len(),
        }
    }

    /// The issuer this verifier accepts tokens from.
    pub fn issuer(&self) -> &str {
        &self.shared().issuer
    }

    /// The audience this verifier requires.
    pub fn audience(&self) -> &str {
        &self.shared().audience
    }

    /// A tower layer rejecting requests without a valid token (RFC 6750 responses) and
    /// passing [`Authenticated`](crate::Authenticated) claims to handlers.
    pub fn layer(&self) -> RequireAuthLayer {
        RequireAuthLayer::new(self.clone())
    }

    /// A tower layer that only makes this verifier available to the
    /// [`Authenticated`](crate::Authenticated) extractor, for routers that mix public and
    /// protected handlers.
    pub fn extension_layer(&self) -> VerifierExtensionLayer {
        VerifierExtensionLayer::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_follows_rfc8414() {
        assert_eq!(
            metadata_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://a.example/tenant/1").unwrap(),
            "https://a.example/.well-known/oauth-authorization-server/tenant/1"
        );
        assert!(metadata_url("ftp://x").is_err());
        assert!(metadata_url("https://x/?q=1").is_err());
        assert!(metadata_url("not a url").is_err());
    }
}
