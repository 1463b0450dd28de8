//! Brute-force throttling, kept in the store so every server node sees the same counters.
//!
//! Keys are `acct:<email>` (per account), `ip:<addr>` (failed logins per client IP) and
//! `reg:<addr>` (registrations per client IP). The first `free` failures in a window cost
//! nothing; each further one locks the key for an exponentially growing delay
//! (1 s, 2 s, 4 s, ... capped). While locked, requests are refused with the remaining time
//! and the password is not even checked.

use std::sync::Arc;

use tessera_store::Store;

use super::{DomainError, DomainResult};
use crate::clock::Clock;
use crate::config::Config;

/// Throttle policy plus the store that holds the counters.
#[derive(Debug, Clone)]
pub struct Throttler {
    store: Arc<dyn Store>,
    clock: Clock,
    window: i64,
    max_delay: i64,
}

/// Delay after `failures` failures when `free` are allowed: 0, then 1, 2, 4, ... seconds.
pub fn delay_for(failures: i64, free: i64, max_delay: i64) -> i64 {
    if failures <= free {
        return 0;
    }
    let exp = (failures - free - 1).clamp(0, 30) as u32;
    (1i64 << exp).min(max_delay)
}

impl Throttler {
    /// A throttler over `store` with the configured window and cap.
    pub fn new(store: Arc<dyn Store>, clock: Clock, config: &Config) -> Self {
        Self {
            store,
            clock,
            window: config.throttle_window,
            max_delay: config.throttle_max_delay,
        }
    }

    /// Refuses with [`DomainError::Throttled`] when any of `keys` is locked now.
    pub async fn check(&self, keys: &[&str]) -> DomainResult<()> {
        let now = self.clock.now();
        let mut wait = 0;
        for key in keys {
            if let Some(t) = self.store.throttle_get(key).await? {
                wait = wait.max(t.locked_until - now);
            }
        }
        if wait > 0 {
            return Err(DomainError::Throttled(wait));
        }
        Ok(())
    }

    /// Records one failure (or one counted attempt) of `key`, locking it when more than
    /// `free` happened in the window. Returns the imposed delay in seconds.
    pub async fn hit(&self, key: &str, free: i64) -> DomainResult<i64> {
        let now = self.clock.now();
        let state = self.store.throttle_hit(key, now, self.window).await?;
        let delay = delay_for(state.failures, free, self.max_delay);
        if delay > 0 {
            self.store.throttle_lock(key, now + delay).await?;
        }
        Ok(delay)
    }

    /// Forgets a key (after a successful login).
    pub async fn clear(&self, key: &str) -> DomainResult<()> {
        self.store.throttle_clear(key).await?;
        Ok(())
    }
}

/// Throttle key of an account.
pub fn account_key(email: &str) -> String {
    format!("acct:{email}")
}

/// Throttle key of a client IP for failed logins.
pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// Throttle key of a client IP for registrations.
pub fn register_key(ip: &str) -> String {
    format!("reg:{ip}")
}

#[cfg(test)]
mod tests {
    use super::delay_for;

    #[test]
    fn delays_grow_and_cap() {
        assert_eq!(delay_for(5, 5, 900), 0);
        assert_eq!(delay_for(6, 5, 900), 1);
        assert_eq!(delay_for(7, 5, 900), 2);
        assert_eq!(delay_for(8, 5, 900), 4);
        assert_eq!(delay_for(100, 5, 900), 900);
    }
}
