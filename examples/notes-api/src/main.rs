//! `notes-api`: runs the example resource server.
//!
//! Configuration (environment):
//! `NOTES_BIND` (default `127.0.0.1:8081`), `NOTES_ISSUER` (the auth server's issuer URL,
//! default `http://127.0.0.1:8080`), `NOTES_AUDIENCE` (default `api`), `NOTES_CLIENT_ID` and
//! `NOTES_CLIENT_SECRET` (an OAuth client with scope `revocations:read`, for the revocation
//! feed) or `NOTES_FEED_TOKEN` (the auth server's static `TESSERA_FEED_TOKEN`).

use std::process::ExitCode;

use tessera_verify::Verifier;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let bind = env_or("NOTES_BIND", "127.0.0.1:8081");
    let issuer = env_or("NOTES_ISSUER", "http://127.0.0.1:8080");
    let audience = env_or("NOTES_AUDIENCE", "api");
    let mut builder = Verifier::builder(&issuer).audience(audience);
    match (
        std::env::var("NOTES_CLIENT_ID"),
        std::env::var("NOTES_CLIENT_SECRET"),
        std::env::var("NOTES_FEED_TOKEN"),
    ) {
        (Ok(id), Ok(secret), _) => builder = builder.client_credentials(id, secret),
        (_, _, Ok(token)) => builder = builder.feed_token(token),
        _ => {
            eprintln!(
                "notes-api: set NOTES_CLIENT_ID and NOTES_CLIENT_SECRET (a client with scope \
                 revocations:read), or NOTES_FEED_TOKEN"
            );
            return ExitCode::from(2);
        }
    }
    let verifier = match builder.build().await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("notes-api: cannot set up token verification against {issuer}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("notes-api: cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%bind, %issuer, "notes-api listening");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = notes_api::serve(
        listener,
        notes_api::app(verifier),
        notes_api::HEADER_READ_TIMEOUT,
        shutdown,
    )
    .await
    {
        eprintln!("notes-api: server error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
