//! The revocation feed (docs/api.md, "Revocation feed"): what resource servers read to learn
//! of logouts, cutoffs and revoked tokens without a per-request lookup.
//!
//! Events are appended by [`super::revocation::revoke`] (and client deletion); this module
//! only reads them back from the store, in cursor order. The store guarantees that cursors
//! become visible in order (no reader sees N+1 before N), so "everything after my last
//! cursor" is always a complete answer: a reader that resumes from the last cursor it sent
//! can neither skip nor repeat an event.
//!
//! Pruning of expired events and ended sessions is done by the server's periodic
//! maintenance task (`lib.rs`, every 5 s): an event is only pruned after `expires_at`, when no
//! token it could match is valid any more.

use tessera_store::Revocation;

use super::DomainResult;
use crate::state::AppState;

/// Largest page read from the store at once.
pub const PAGE: u32 = 1000;

/// What a reader should do with the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `true` when `events` is the whole live set and the reader must replace its state.
    pub snapshot: bool,
    /// The position to resume from.
    pub cursor: i64,
    /// The events, in cursor order.
    pub events: Vec<Revocation>,
    /// `false` when more events may follow right away (an incremental page was full).
    pub complete: bool,
}

/// Whether a reader at `since` must start over from a snapshot: it has no position, its
/// position is from the future (another database), or events after it were pruned.
pub async fn needs_snapshot(state: &AppState, since: Option<i64>) -> DomainResult<bool> {
    let Some(since) = since else { return Ok(true) };
    if since < 0 {
        return Ok(true);
    }
    if since > state.store.latest_revocation_cursor().await? {
        return Ok(true);
    }
    // Events `since+1 .. oldest-1` are gone: the reader may have missed some.
    Ok(match state.store.oldest_revocation_cursor().await? {
        Some(oldest) => since < oldest - 1,
        None => false,
    })
}

/// The whole live set of events and the cursor to resume from.
pub async fn snapshot(state: &AppState) -> DomainResult<Batch> {
    // Every event up to `latest` is committed and visible (the counter and the row commit
    // together), so resuming from max(latest, last seen) skips nothing.
    let latest = state.store.latest_revocation_cursor().await?;
    let now = state.now();
    let mut events: Vec<Revocation> = Vec::new();
    let mut pos = 0;
    loop {
        let page = state.store.revocations_since(pos, now, PAGE).await?;
        let full = page.len() == PAGE as usize;
        if let Some(last) = page.last() {
            pos = last.cursor;
        }
        events.extend(page);
        if !full {
            break;
        }
    }
    Ok(Batch {
        snapshot: true,
        cursor: latest.max(pos),
        events,
        complete: true,
    })
}

/// Events after `since` (at most one page).
pub async fn since(state: &AppState, since: i64) -> DomainResult<Batch> {
    let latest = state.store.latest_revocation_cursor().await?;
    let events = state
        .store
        .revocations_since(since, state.now(), PAGE)
        .await?;
    let complete = events.len() < PAGE as usize;
    let last = events.last().map_or(since, |e| e.cursor);
    // A short page means everything up to `latest` (read before it) was seen; expired
    // events in between need not be read again.
    let cursor = if complete { last.max(latest) } else { last };
    Ok(Batch {
        snapshot: false,
        cursor,
        events,
        complete,
    })
}

/// The answer for a reader at `since`: a snapshot when needed, else the events after it.
pub async fn read(state: &AppState, from: Option<i64>) -> DomainResult<Batch> {
    match from {
        Some(n) if !needs_snapshot(state, Some(n)).await? => since(state, n).await,
        _ => snapshot(state).await,
    }
}
