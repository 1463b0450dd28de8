//! First-run setup (`POST /auth/setup`) and the public client configuration
//! (`GET /auth/config`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiResult;
use super::extract::{ApiJson, ClientInfo};
use super::Routes;
use crate::domain::{passwords, setup};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .route("/auth/setup", post(complete_setup))
        .route("/auth/config", get(client_config))
}

#[derive(Deserialize)]
struct SetupRequest {
    token: String,
    email: String,
    password: String,
}

#[derive(Serialize)]
struct IdResponse {
    id: String,
}

async fn complete_setup(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<SetupRequest>,
) -> ApiResult<(StatusCode, Json<IdResponse>)> {
    let id = setup::complete(
        &state,
        &req.token,
        &req.email,
        &req.password,
        client.ip.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(IdResponse { id })))
}

#[derive(Serialize)]
struct ClientConfig {
    registration_open: bool,
    setup_required: bool,
    password_min_length: usize,
}

async fn client_config(State(state): State<AppState>) -> ApiResult<Json<ClientConfig>> {
    let setup_required = state.setup.pending() && state.store.count_users().await? == 0;
    Ok(Json(ClientConfig {
        registration_open: state.config.registration_open,
        setup_required,
        password_min_length: passwords::MIN_LENGTH,
    }))
}
