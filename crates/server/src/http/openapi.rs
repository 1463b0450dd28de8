//! `GET /openapi.json` (owned by the second server engineer; see ARCHITECTURE.md).

use axum::Router;

use crate::state::AppState;

/// Routes of this module, merged by [`crate::http::router`].
pub fn router() -> Router<AppState> {
    Router::new()
}
