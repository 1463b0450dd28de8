//! Prometheus metrics of one server instance, served at `GET /metrics` (`http/ops.rs`).
//!
//! The recorder (`metrics-exporter-prometheus`) is owned by the [`AppState`]
//! (`crate::state::AppState`) and is never installed as the process-global `metrics`
//! recorder: several servers in one process (the integration tests) each count their own
//! requests. Every update therefore runs inside [`metrics::with_local_recorder`], which is
//! synchronous and so never spans an `.await`.
//!
//! Latency samples are not aggregated when recorded: the recorder appends each one to a
//! per-histogram queue and folds the queue into the fixed buckets only on upkeep. `render`
//! (every scrape) runs upkeep, but a server that is never scraped would keep every sample it
//! ever recorded (measured: heap floor 26 → 118 MB over a 10-minute soak). So
//! [`Metrics::upkeep_until`] runs upkeep every [`UPKEEP_INTERVAL`] in a task spawned with the
//! server (`crate::spawn`) and stopped with it; with it the same soak stayed at 9.4 → 10.1 MB.
//!
//! No label ever carries a token, an email or a raw path: HTTP requests are labelled with
//! the *matched route* (`/admin/users/{id}`), so the label set stays bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::sync::watch;

/// How often the server folds recorded latency samples into the histogram buckets when no
/// scrape does it (the exporter crate's own default upkeep interval).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Upper bounds (seconds) of the request-latency histogram buckets.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Total HTTP requests by method, matched route and status.
pub const HTTP_REQUESTS: &str = "tessera_http_requests_total";
/// Request latency (until the response headers) by method and matched route.
pub const HTTP_DURATION: &str = "tessera_http_request_duration_seconds";
/// Password checks (first-party login and the OAuth `password` grant) by result.
pub const LOGINS: &str = "tessera_logins_total";
/// Successful refresh-token rotations (cookie refresh and `grant_type=refresh_token`).
pub const REFRESHES: &str = "tessera_refreshes_total";
/// Refresh tokens presented again after rotation (the session was revoked).
pub const REUSE_DETECTED: &str = "tessera_refresh_reuse_detected_total";
/// Revocation events appended by this instance, by kind (`session`, `user`, `token`).
pub const REVOCATIONS: &str = "tessera_revocations_total";
/// Signing-key rotations performed by this instance (scheduled and immediate).
pub const KEY_ROTATIONS: &str = "tessera_key_rotations_total";
/// Access tokens issued at `/oauth/token`, by grant type.
pub const OAUTH_TOKENS: &str = "tessera_oauth_tokens_issued_total";
/// Active access-token introspection answers by how they were found: `hit` (from the cache),
/// `miss` (from the store, then cached), `bypass` (from the store; the cache was not
/// trustworthy at that moment).
pub const INTROSPECTION_CACHE: &str = "tessera_introspection_cache_total";

/// The method labels of [`HTTP_REQUESTS`]: the standard methods, `OTHER` for the rest
/// (arbitrary methods would grow the label set).
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER",
];

/// The number of method labels: [`method_index`] is below it.
pub const METHOD_COUNT: usize = METHODS.len();

/// The index of `method` in [`METHODS`].
pub fn method_index(method: &axum::http::Method) -> usize {
    use axum::http::Method;
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The metric handles of one (method, matched route): its latency histogram and one request
/// counter per status seen so far. The edge layer asks [`Metrics::http_route`] once per
/// (route, method) and keeps the handles in a slot of its route table
/// (`http::edge::RouteTable`); the registry is only asked (and labels built) the first time.
pub struct HttpRoute {
    /// The recorder only (not the [`Metrics`], which holds this: no reference cycle).
    recorder: Arc<PrometheusRecorder>,
    method: &'static str,
    route: Box<str>,
    duration: Histogram,
    /// The request counter of each status seen so far, in the order first seen; read
    /// without a lock (a route sees a handful of statuses). Filled under `adding`.
    by_status: [OnceLock<(u16, Counter)>; STATUS_SLOTS],
    /// Statuses beyond [`STATUS_SLOTS`] (locked on every request with such a status).
    more_statuses: RwLock<Vec<(u16, Counter)>>,
    adding: Mutex<()>,
}

/// Statuses per (method, route) whose counters are found without a lock.
const STATUS_SLOTS: usize = 8;

impl HttpRoute {
    /// The method label (`GET`, …, `other`).
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The route label: the matched pattern, or `unmatched`.
    pub fn route(&self) -> &str {
        &self.route
    }
}

impl std::fmt::Debug for HttpRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRoute")
            .field("method", &self.method)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl HttpRoute {
    /// Records one request of this method and route.
    pub fn record(&self, status: u16, seconds: f64) {
        self.duration.record(seconds);
        if self.increment(status) {
            return;
        }
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        if self.increment(status) {
            return;
        }
        let (method, route) = (self.method, self.route.to_string());
        let counter = metrics::with_local_recorder(self.recorder.as_ref(), || {
            metrics::counter!(
                HTTP_REQUESTS,
                "method" => method,
                "route" => route,
                "status" => status.to_string()
            )
        });
        counter.increment(1);
        // Under `adding`: the first empty slot stays empty until it is set here.
        match self.by_status.iter().find(|slot| slot.get().is_none()) {
            Some(slot) => {
                let _ = slot.set((status, counter));
            }
            None => self
                .more_statuses
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .push((status, counter)),
        }
    }

    /// Counts one request with `status` if its counter is registered.
    fn increment(&self, status: u16) -> bool {
        for slot in &self.by_status {
            match slot.get() {
                Some((s, c)) if *s == status => {
                    c.increment(1);
                    return true;
                }
                Some(_) => {}
                // Slots fill in order, and `more_statuses` only once they are all set.
                None => return false,
            }
        }
        let more = self
            .more_statuses
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match more.iter().find(|(s, _)| *s == status) {
            Some((_, c)) => {
                c.increment(1);
                true
            }
            None => false,
        }
    }
}

/// Per route, the handles of each method (indexed as [`METHODS`]).
type HttpRoutes = HashMap<Box<str>, [Option<Arc<HttpRoute>>; METHODS.len()]>;

/// The metrics registry of one server instance. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Upkeep runs so far (by [`Metrics::upkeep_until`] and by [`Metrics::render`]).
    upkeeps: Arc<AtomicU64>,
    /// Handles of the HTTP request metrics by matched route and method. Bounded: routes are
    /// the router's patterns (or `unmatched`), methods the eight labels.
    http: Arc<RwLock<HttpRoutes>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric described (so `/metrics` lists them at zero).
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // The bucket list is a non-empty constant, so this cannot fail; fall back to the
        // summary form rather than panic if it ever did.
        let builder = match builder.set_buckets(LATENCY_BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = Arc::new(builder.build_recorder());
        let handle = recorder.handle();
        let m = Self {
            recorder,
            handle,
            upkeeps: Arc::new(AtomicU64::new(0)),
            http: Arc::default(),
        };
        m.with(|| {
            metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
            metrics::describe_histogram!(
                HTTP_DURATION,
                metrics::Unit::Seconds,
                "HTTP request latency until the response headers"
            );
            metrics::describe_counter!(LOGINS, "Password checks by result (ok, failed)");
            metrics::describe_counter!(REFRESHES, "Successful refresh-token rotations");
            metrics::describe_counter!(REUSE_DETECTED, "Refresh-token reuse detections");
            metrics::describe_counter!(REVOCATIONS, "Revocation events appended, by kind");
            metrics::describe_counter!(KEY_ROTATIONS, "Signing-key rotations");
            metrics::describe_counter!(OAUTH_TOKENS, "Access tokens issued at /oauth/token");
            metrics::describe_counter!(
                INTROSPECTION_CACHE,
                "Active access-token introspection answers by cache outcome (hit, miss, bypass)"
            );
            // Register the domain counters at zero so dashboards see them before the first
            // event.
            metrics::counter!(LOGINS, "result" => "ok").absolute(0);
            metrics::counter!(LOGINS, "result" => "failed").absolute(0);
            metrics::counter!(REFRESHES).absolute(0);
            metrics::counter!(REUSE_DETECTED).absolute(0);
            metrics::counter!(KEY_ROTATIONS).absolute(0);
        });
        m
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self.recorder.as_ref(), f)
    }

    /// The metric handles of requests with method number `method` ([`method_index`]) to
    /// `route` (a matched route pattern, or `unmatched`).
    pub fn http_route(&self, method: usize, route: &str) -> Arc<HttpRoute> {
        let method = method.min(METHODS.len() - 1);
        if let Some(h) = self
            .http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .and_then(|by_method| by_method[method].clone())
        {
            return h;
        }
        let mut http = self.http.write().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut http.entry(route.into()).or_default()[method];
        if let Some(h) = slot {
            return h.clone();
        }
        let label = METHODS[method];
        let owned = route.to_string();
        let duration =
            self.with(|| metrics::histogram!(HTTP_DURATION, "method" => label, "route" => owned));
        let h = Arc::new(HttpRoute {
            recorder: self.recorder.clone(),
            method: label,
            route: route.into(),
            duration,
            by_status: Default::default(),
            more_statuses: RwLock::new(Vec::new()),
            adding: Mutex::new(()),
        });
        *slot = Some(h.clone());
        h
    }

    /// Records one HTTP request (`method` one of the standard methods or `OTHER`).
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let index = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1);
        self.http_route(index, route).record(status, seconds);
    }

    /// Records one password check.
    pub fn login(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.with(|| metrics::counter!(LOGINS, "result" => result).increment(1));
    }

    /// Records one successful refresh-token rotation.
    pub fn refresh(&self) {
        self.with(|| metrics::counter!(REFRESHES).increment(1));
    }

    /// Records one detected refresh-token reuse.
    pub fn reuse_detected(&self) {
        self.with(|| metrics::counter!(REUSE_DETECTED).increment(1));
    }

    /// Records one appended revocation event of `kind`.
    pub fn revocation(&self, kind: &'static str) {
        self.with(|| metrics::counter!(REVOCATIONS, "kind" => kind).increment(1));
    }

    /// Sets the rotation count (kept by the key manager, which has no access to the state).
    pub fn set_key_rotations(&self, total: u64) {
        self.with(|| metrics::counter!(KEY_ROTATIONS).absolute(total));
    }

    /// Records one access token issued at `/oauth/token` through `grant`.
    pub fn oauth_token(&self, grant: &'static str) {
        self.with(|| metrics::counter!(OAUTH_TOKENS, "grant_type" => grant).increment(1));
    }

    /// Records how one access-token introspection used the cache.
    pub fn introspection_cache(&self, outcome: crate::domain::introspection::Outcome) {
        let result = outcome.as_str();
        self.with(|| metrics::counter!(INTROSPECTION_CACHE, "result" => result).increment(1));
    }

    /// Folds the latency samples recorded since the last upkeep into the histogram buckets
    /// and frees them.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
        self.upkeeps.fetch_add(1, Ordering::Relaxed);
    }

    /// How many upkeeps have run (scrapes included).
    pub fn upkeeps(&self) -> u64 {
        self.upkeeps.load(Ordering::Relaxed)
    }

    /// Runs [`Metrics::run_upkeep`] every `interval` until `stop` turns true (or its sender
    /// is dropped). Spawned with the server, so memory stays bounded without scrapes.
    pub async fn upkeep_until(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once; there is nothing to fold yet.
        tick.tick().await;
        loop {
            tokio::select! {
                changed = stop.wait_for(|stop| *stop) => {
                    let _ = changed;
                    return;
                }
                _ = tick.tick() => self.run_upkeep(),
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.run_upkeep();
        self.handle.render()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Resident set size of this process, in bytes (`/proc/self/statm`, 4 KiB pages).
    fn rss() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// Each status gets its own counter, past the lock-free slots too, and a status seen
    /// again counts into the counter it got first.
    #[test]
    fn request_counters_by_status_past_the_lock_free_slots() {
        let m = Metrics::new();
        let statuses = 200..200 + STATUS_SLOTS as u16 + 4;
        for _ in 0..3 {
            for status in statuses.clone() {
                m.http_route(0, "/x").record(status, 0.001);
            }
        }
        let text = m.render();
        for status in statuses {
            let line =
                format!("{HTTP_REQUESTS}{{method=\"GET\",route=\"/x\",status=\"{status}\"}} 3\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
    }

    /// Records `n` latency samples into one histogram, in chunks with a yield between them
    /// (so a running upkeep task gets its turns, as it does between real requests).
    async fn record(m: &Metrics, n: usize) {
        for _ in 0..n / 50_000 {
            m.with(|| {
                let h = metrics::histogram!(HTTP_DURATION, "method" => "GET", "route" => "/x");
                for i in 0..50_000 {
                    h.record(f64::from(i % 100) / 1000.0);
                }
            });
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The recorder queues every sample until an upkeep: without one, 4 M samples cost tens
    /// of MB (the measurement sees the leak); with the upkeep task running, the same 4 M cost
    /// a small fraction of that and the samples still reach the buckets.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upkeep_task_keeps_unscraped_histograms_bounded() {
        const N: usize = 4_000_000;
        let m = Metrics::new();
        // Warm up label and allocator state outside the measurements.
        record(&m, 100_000).await;
        m.run_upkeep();

        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(m.clone().upkeep_until(Duration::from_millis(5), rx));
        let before = rss();
        record(&m, N).await;
        let with_upkeep = rss().saturating_sub(before);
        stop.send_replace(true);
        task.await.unwrap();
        let upkeeps = m.upkeeps();
        assert!(upkeeps >= 10, "upkeep ran only {upkeeps} times");

        let before = rss();
        record(&m, N).await;
        let without_upkeep = rss().saturating_sub(before);
        assert_eq!(m.upkeeps(), upkeeps, "the stopped task still ran");

        assert!(
            without_upkeep > 16 << 20,
            "unfolded samples should cost > 16 MB, measured {without_upkeep} B"
        );
        assert!(
            with_upkeep * 4 < without_upkeep,
            "with upkeep {with_upkeep} B, without {without_upkeep} B"
        );
        // The samples reach the buckets. Not necessarily every one: metrics-util's lock-free
        // bucket can drop a sample pushed while a drain detaches the block it landed in (seen:
        // 19,073 of 8,100,000 at load average 15), so the count must be within 1 %.
        let text = m.render();
        let sent = 100_000 + 2 * N;
        let counted = text
            .lines()
            .filter(|l| l.starts_with(HTTP_DURATION) && l.contains("_count"))
            .find_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
            .unwrap_or(0);
        assert!(
            counted <= sent && counted * 100 >= sent * 99,
            "{counted} of {sent} samples counted: {text}"
        );
    }
}
