//! The server's one source of time.
//!
//! Every domain function takes "now" from a [`Clock`] instead of reading the system time, so
//! tests can move time forward (session expiry, key rotation, throttling) without sleeping.
//! This file is the only place in the server that calls `SystemTime::now()`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in Unix seconds plus an adjustable offset (zero in production).
///
/// Cloning shares the offset: advancing one clone advances every clone, which is how a test
/// moves the clock of a running server.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
    /// When set, time stands still (tests): `now()` is the offset alone.
    frozen: bool,
}

impl Clock {
    /// A clock that follows the system time.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands still at `t` until [`Clock::advance`] moves it (tests that need
    /// two events in exactly the same second).
    pub fn frozen_at(t: i64) -> Self {
        Self {
            offset: Arc::new(AtomicI64::new(t)),
            frozen: true,
        }
    }

    /// Current time in Unix seconds (system time + offset, or the frozen time).
    pub fn now(&self) -> i64 {
        if self.frozen {
            return self.offset.load(Ordering::SeqCst);
        }
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        real.saturating_add(self.offset.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `secs` seconds (tests only; production never calls it).
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }

    /// The current offset from the system time (the time itself when frozen), in seconds.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }
}
