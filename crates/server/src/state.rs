//! Shared application state, handed to every handler and domain function.

use std::sync::Arc;

use tessera_store::{Revocation, Store};
use tokio::sync::broadcast;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::keys::KeyManager;
use crate::domain::passwords::PasswordHasher;
use crate::domain::setup::SetupToken;
use crate::domain::throttle::Throttler;
use crate::secrets::Secrets;

/// Capacity of the in-process revocation broadcast (a lagging SSE subscriber resyncs from the
/// store).
pub const REVOCATION_CHANNEL_CAPACITY: usize = 4096;

/// Everything a request needs. Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The fields of [`AppState`] (reached through `Deref`).
#[derive(Debug)]
pub struct Inner {
    /// The loaded configuration.
    pub config: Config,
    /// The store (SQLite or PostgreSQL).
    pub store: Arc<dyn Store>,
    /// The injectable clock: the only source of "now".
    pub clock: Clock,
    /// Signing keys, the published key set, rotation.
    pub keys: KeyManager,
    /// Every revocation event this process appends, right after it is stored (for the SSE
    /// feed). Events appended by other nodes arrive through `store.subscribe()` instead.
    pub revocations: broadcast::Sender<Revocation>,
    /// Argon2id hashing with bounded concurrency.
    pub passwords: PasswordHasher,
    /// Brute-force throttling.
    pub throttle: Throttler,
    /// Secrets derived from the master key.
    pub secrets: Secrets,
    /// The one-time first-run setup token, while no user exists.
    pub setup: SetupToken,
    /// Prometheus metrics of this instance (`GET /metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Verified introspection answers and authenticated introspecting clients
    /// (`domain::introspection`).
    pub introspection: crate::domain::introspection::IntrospectionCache,
    /// Flips to `true` when the server stops, so endless responses (the SSE revocation feed)
    /// end and graceful shutdown does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// Wraps the parts into a state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Current time from the injectable clock.
    pub fn now(&self) -> i64 {
        self.0.clock.now()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
