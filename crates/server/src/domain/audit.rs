//! Audit events. Details never contain a token, password, cookie or key.

use tessera_store::NewAuditEvent;

use crate::state::AppState;

/// Appends an audit event. A failure to write it is logged, not returned: the action it
/// records has already happened.
pub async fn record(
    state: &AppState,
    event: &str,
    actor: Option<&str>,
    subject: Option<&str>,
    ip: Option<&str>,
    detail: serde_json::Value,
) {
    let ev = NewAuditEvent {
        at: state.now(),
        event: event.to_string(),
        actor: actor.map(str::to_string),
        subject: subject.map(str::to_string),
        ip: ip.map(str::to_string),
        detail,
    };
    if let Err(e) = state.store.audit(&ev).await {
        tracing::error!(error = %e, event, "cannot write audit event");
    }
}
