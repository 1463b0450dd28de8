//! The revocation state a verifier holds: what the feed has said is revoked and is still live.
//!
//! Three maps, each entry carrying the `expires_at` after which no token it affects can still
//! pass the `exp` check, so it can be pruned: memory is bounded by the *live* revocation set,
//! not by history.

use std::collections::HashMap;

use serde::Deserialize;

/// One revocation event as the feed sends it (docs/api.md, "Revocation feed").
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct FeedEvent {
    /// Position in the feed; strictly increasing.
    pub cursor: u64,
    /// `session`, `user` or `token`. Any other kind is refused by [`FeedEvent::check`]: an
    /// event the verifier does not understand may be a revocation it would miss.
    pub kind: String,
    /// The sid, sub or jti the event is about.
    pub subject: String,
    /// For `user` events: tokens of `subject` with `iat <= cutoff` are revoked.
    #[serde(default)]
    pub cutoff: Option<i64>,
    /// When the last token this event affects expires (Unix seconds).
    pub expires_at: i64,
}

/// Longest `subject` accepted (ids are UUIDs; this only bounds what a broken feed can make us
/// keep).
pub(crate) const MAX_SUBJECT_LEN: usize = 1024;

impl FeedEvent {
    /// Whether the verifier can apply this event exactly: a known kind, a non-empty subject,
    /// a cutoff for `user` events. The reason names no subject (safe to log).
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        match self.kind.as_str() {
            "session" | "token" => {}
            "user" if self.cutoff.is_none() => return Err("user event without cutoff"),
            "user" => {}
            _ => return Err("unknown revocation kind"),
        }
        if self.subject.is_empty() {
            return Err("event with an empty subject");
        }
        if self.subject.len() > MAX_SUBJECT_LEN {
            return Err("event subject too long");
        }
        Ok(())
    }
}

/// The body of `GET /revocations` and of the SSE `snapshot` event.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FeedPage {
    /// The position to resume from.
    pub cursor: u64,
    /// The events.
    #[serde(default)]
    pub events: Vec<FeedEvent>,
}

/// Why a token was found revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revoked {
    /// Its session was revoked (logout, session ended from another device, refresh reuse).
    Session,
    /// The token itself was revoked (RFC 7009).
    Token,
    /// It was issued at or before its user's cutoff (password change, logout-all, disable,
    /// role change).
    UserCutoff,
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Revoked::Session => "session revoked",
            Revoked::Token => "token revoked",
            Revoked::UserCutoff => "issued before the user's revocation cutoff",
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Cutoff {
    cutoff: i64,
    expires_at: i64,
}

/// The local copy of the live revocation set.
#[derive(Debug, Default)]
pub(crate) struct RevocationState {
    sessions: HashMap<String, i64>,
    tokens: HashMap<String, i64>,
    users: HashMap<String, Cutoff>,
    cursor: Option<u64>,
}

impl FeedPage {
    /// [`FeedEvent::check`] for every event: a snapshot is installed whole or not at all.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        self.events.iter().try_for_each(FeedEvent::check)
    }
}

impl RevocationState {
    /// The feed position this state reflects.
    pub(crate) fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// Number of live entries (sessions + tokens + users).
    pub(crate) fn len(&self) -> usize {
        self.sessions.len() + self.tokens.len() + self.users.len()
    }

    /// Replaces the whole state with a snapshot.
    pub(crate) fn replace(&mut self, cursor: u64, events: &[FeedEvent]) {
        self.sessions.clear();
        self.tokens.clear();
        self.users.clear();
        for e in events {
            self.insert(e);
        }
        self.cursor = Some(cursor);
    }

    /// Applies one incremental event if it is newer than the state; returns whether it was
    /// applied. An event at or below the cursor was already seen (a replay after reconnect)
    /// and is ignored, so nothing is applied twice.
    pub(crate) fn apply(&mut self, e: &FeedEvent) -> bool {
        if self.cursor.is_some_and(|c| e.cursor <= c) {
            return false;
        }
        self.insert(e);
        self.cursor = Some(e.cursor);
        true
    }

    fn insert(&mut self, e: &FeedEvent) {
        let subject = e.subject.clone();
        match e.kind.as_str() {
            "session" => {
                let x = self.sessions.entry(subject).or_insert(e.expires_at);
                *x = (*x).max(e.expires_at);
            }
            "token" => {
                let x = self.tokens.entry(subject).or_insert(e.expires_at);
                *x = (*x).max(e.expires_at);
            }
            "user" => {
                // `FeedEvent::check` refused these before they got here (feed.rs).
                let Some(cutoff) = e.cutoff else {
                    return;
                };
                // Cutoffs only move forward: the later one covers the earlier one.
                let x = self.users.entry(subject).or_insert(Cutoff {
                    cutoff,
                    expires_at: e.expires_at,
                });
                x.cutoff = x.cutoff.max(cutoff);
                x.expires_at = x.expires_at.max(e.expires_at);
            }
            _ => {}
        }
    }

    /// Drops every entry whose affected tokens have all expired by `now` (with `leeway`, the
    /// same leeway `exp` is checked with). Returns how many were dropped.
    pub(crate) fn prune(&mut self, now: i64, leeway: i64) -> usize {
        let before = self.len();
        let live = |expires_at: i64| expires_at.saturating_add(leeway) >= now;
        self.sessions.retain(|_, e| live(*e));
        self.tokens.retain(|_, e| live(*e));
        self.users.retain(|_, c| live(c.expires_at));
        before - self.len()
    }

    /// Whether a token with these claims is revoked.
    pub(crate) fn check(
        &self,
        sid: Option<&str>,
        jti: Option<&str>,
        sub: &str,
        iat: i64,
    ) -> Option<Revoked> {
        if let Some(sid) = sid {
            if self.sessions.contains_key(sid) {
                return Some(Revoked::Session);
            }
        }
        if let Some(jti) = jti {
            if self.tokens.contains_key(jti) {
                return Some(Revoked::Token);
            }
        }
        // Exact rule from docs/api.md: `iat <= cutoff` is revoked, no same-second loophole.
        match self.users.get(sub) {
            Some(c) if iat <= c.cutoff => Some(Revoked::UserCutoff),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(cursor: u64, kind: &str, subject: &str, cutoff: Option<i64>, exp: i64) -> FeedEvent {
        FeedEvent {
            cursor,
            kind: kind.into(),
            subject: subject.into(),
            cutoff,
            expires_at: exp,
        }
    }

    #[test]
    fn apply_check_replay_and_snapshot() {
        let mut s = RevocationState::default();
        assert!(s.apply(&ev(1, "session", "s1", None, 100)));
        assert!(s.apply(&ev(2, "token", "j1", None, 100)));
        assert!(s.apply(&ev(3, "user", "u1", Some(50), 100)));
        assert!(
            !s.apply(&ev(3, "session", "s2", None, 100)),
            "replay ignored"
        );
        assert!(
            !s.apply(&ev(2, "session", "s2", None, 100)),
            "older ignored"
        );
        assert_eq!(s.cursor(), Some(3));
        assert_eq!(
            s.check(Some("s1"), Some("x"), "u", 1),
            Some(Revoked::Session)
        );
        assert_eq!(
            s.check(Some("s2"), Some("j1"), "u", 1),
            Some(Revoked::Token)
        );
        assert_eq!(s.check(None, None, "u1", 50), Some(Revoked::UserCutoff));
        assert_eq!(s.check(None, None, "u1", 51), None, "iat after the cutoff");
        assert_eq!(s.check(Some("s2"), Some("j2"), "u2", 1), None);

        s.replace(10, &[ev(9, "session", "s9", None, 100)]);
        assert_eq!(s.cursor(), Some(10));
        assert_eq!(s.check(Some("s1"), None, "u", 1), None, "snapshot replaced");
        assert_eq!(s.check(Some("s9"), None, "u", 1), Some(Revoked::Session));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn check_refuses_what_cannot_be_applied_exactly() {
        assert_eq!(ev(1, "session", "s", None, 1).check(), Ok(()));
        assert_eq!(ev(1, "token", "j", None, 1).check(), Ok(()));
        assert_eq!(ev(1, "user", "u", Some(5), 1).check(), Ok(()));
        assert!(ev(1, "user", "u", None, 1).check().is_err());
        assert!(ev(1, "device", "d", None, 1).check().is_err());
        assert!(ev(1, "Session", "s", None, 1).check().is_err());
        assert!(ev(1, "session", "", None, 1).check().is_err());
        let long = "x".repeat(MAX_SUBJECT_LEN + 1);
        assert!(ev(1, "session", &long, None, 1).check().is_err());
        let page = FeedPage {
            cursor: 2,
            events: vec![
                ev(1, "session", "s", None, 1),
                ev(2, "device", "d", None, 1),
            ],
        };
        assert!(
            page.check().is_err(),
            "one bad event refuses the whole snapshot"
        );
    }

    #[test]
    fn cutoffs_only_move_forward_and_prune_drops_expired() {
        let mut s = RevocationState::default();
        s.apply(&ev(1, "user", "u", Some(80), 200));
        s.apply(&ev(2, "user", "u", Some(60), 150));
        assert_eq!(s.check(None, None, "u", 80), Some(Revoked::UserCutoff));
        s.apply(&ev(3, "session", "a", None, 100));
        s.apply(&ev(4, "token", "b", None, 300));
        assert_eq!(s.prune(105, 10), 0);
        assert_eq!(s.prune(110, 10), 0, "within leeway");
        assert_eq!(s.prune(111, 10), 1);
        assert_eq!(s.prune(250, 0), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.check(None, Some("b"), "x", 0), Some(Revoked::Token));
    }
}
