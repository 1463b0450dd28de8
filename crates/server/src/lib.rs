//! # tessera-server: the Tessera auth server
//!
//! An axum HTTP API (docs/api.md) over a [`tessera_store::Store`], issuing tokens with
//! [`tessera_jwt`]. Layout: [`config`] (defaults ← TOML ← `TESSERA_*`), [`domain`] (no HTTP,
//! no SQL), [`http`] (one module per resource, each with `router()`), [`state`] (what every
//! handler gets), [`clock`] (the only source of time), [`crypto`] (the only crypto seam).
//! See `crates/server/ARCHITECTURE.md`.
//!
//! Entry points: [`serve`] for `tessera serve`, [`spawn`]/[`spawn_for_test`] to run a server
//! in-process, and [`commands`] for the CLI's store commands.
//!
//! ## Security
//! - Tokens, passwords, cookies and keys never reach a log line or an audit detail; request
//!   tracing records method and path only.
//! - Private signing keys are sealed at rest (AES-256-GCM under the master key, kid as AAD);
//!   the master key file must be mode 0600.
//! - Refresh tokens and setup tokens are stored only as SHA-256; secrets compare in constant
//!   time.

#![forbid(unsafe_code)]

pub mod clock;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod secrets;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_store::{StoreError, StoreNotice};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use config::{Config, ConfigError};
pub use state::AppState;

use domain::keys::KeyManager;
use domain::passwords::PasswordHasher;
use domain::setup::SetupToken;
use domain::throttle::Throttler;
use domain::DomainError;
use secrets::{MasterKeyError, Secrets};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The master key could not be loaded or created.
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A domain operation failed.
    #[error("{0}")]
    Domain(#[from] DomainError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

/// Opens the store named by the configuration and applies migrations.
pub async fn open_store(
    config: &Config,
) -> Result<std::sync::Arc<dyn tessera_store::Store>, ServerError> {
    if config.database_url.is_none() {
        create_data_dir(config)?;
    }
    let store = tessera_store::connect(&config.database_url()).await?;
    store.migrate().await?;
    Ok(store)
}

fn create_data_dir(config: &Config) -> Result<(), ServerError> {
    let dir = &config.data_dir;
    let err = |source| ServerError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // The directory holds the master key and (by default) the database: owner only.
        let mode = std::fs::metadata(dir).map_err(err)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    Ok(())
}

/// Builds the application state: data directory, master key, store (migrated), signing
/// keys (the first one generated on first run), password hasher.
pub async fn build_state(config: Config, clock: Clock) -> Result<AppState, ServerError> {
    config.validate()?;
    create_data_dir(&config)?;
    let master = secrets::load_or_create_master_key(&config.master_key_path())?;
    let secrets = Secrets::derive(&master);
    drop(master);
    let store = open_store(&config).await?;
    let keys = KeyManager::init(
        store.clone(),
        clock.clone(),
        &config,
        secrets.key_encryption(),
    )
    .await?;
    let passwords = PasswordHasher::new().await?;
    let throttle = Throttler::new(store.clone(), clock.clone(), &config);
    let (revocations, _) = broadcast::channel(state::REVOCATION_CHANNEL_CAPACITY);
    Ok(AppState::new(state::Inner {
        config,
        store,
        clock,
        keys,
        revocations,
        passwords,
        throttle,
        secrets,
        setup: SetupToken::none(),
        metrics: metrics::Metrics::new(),
        introspection: domain::introspection::IntrospectionCache::default(),
        stopping: watch::channel(false).0,
    }))
}

/// A server running in this process.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The state the server runs with (tests reach the store, keys and clock through it).
    pub state: AppState,
    /// The one-time setup token, when no user existed at start.
    pub setup_token: Option<String>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<(), ServerError>>,
    background: JoinHandle<()>,
    metrics_upkeep: JoinHandle<()>,
}

impl Running {
    /// The base URL (`http://addr`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's clock (tests advance it).
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// The setup link to print on first run.
    pub fn setup_link(&self) -> Option<String> {
        self.setup_token
            .as_ref()
            .map(|t| format!("{}/setup#token={t}", self.state.config.issuer()))
    }

    /// Stops accepting connections, lets in-flight requests finish (at most 10 s), stops the
    /// background tasks.
    pub async fn stop(self) -> Result<(), ServerError> {
        // End the SSE streams first: graceful shutdown waits for open responses.
        self.state.stopping.send_replace(true);
        let _ = self.shutdown.send(true);
        let mut server = self.server;
        let result = match tokio::time::timeout(Duration::from_secs(10), &mut server).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(ServerError::Serve(std::io::Error::other(join.to_string()))),
            Err(_) => {
                server.abort();
                Ok(())
            }
        };
        self.background.abort();
        let _ = self.background.await;
        // Ends at the shutdown signal sent above.
        let _ = self.metrics_upkeep.await;
        result
    }

    /// Waits until the server stops by itself (an I/O error) — normally never.
    async fn wait(&mut self) -> Result<(), ServerError> {
        match (&mut self.server).await {
            Ok(r) => r,
            Err(join) => Err(ServerError::Serve(std::io::Error::other(join.to_string()))),
        }
    }
}

/// Starts the server on `listener` with `clock`. When the configuration names no issuer,
/// the issuer is `http://<bound address>`.
pub async fn spawn(
    mut config: Config,
    clock: Clock,
    listener: TcpListener,
) -> Result<Running, ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    if config.issuer.is_none() {
        config.issuer = Some(format!("http://{addr}"));
    }
    let state = build_state(config, clock).await?;
    let setup_token = if state.store.count_users().await? == 0 {
        Some(state.setup.generate()?)
    } else {
        None
    };
    let (shutdown, mut rx) = watch::channel(false);
    let background = tokio::spawn(background_tasks(state.clone(), shutdown.subscribe()));
    let metrics_upkeep = tokio::spawn(
        state
            .metrics
            .clone()
            .upkeep_until(metrics::UPKEEP_INTERVAL, shutdown.subscribe()),
    );
    let app = http::router(state.clone());
    let header_timeout = Duration::from_secs(state.config.request_timeout.max(1));
    let max_connections = state.config.max_connections.max(1);
    let server = tokio::spawn(async move {
        serve_connections(listener, app, header_timeout, max_connections, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
        .await
    });
    Ok(Running {
        addr,
        state,
        setup_token,
        shutdown,
        server,
        background,
        metrics_upkeep,
    })
}

/// The accept loop. Unlike `axum::serve`, it gives hyper a timer and a header read timeout,
/// so a client that trickles its request head byte by byte (slowloris) is disconnected
/// after `header_timeout` instead of holding a connection and a task forever; the
/// per-request time limit (`http::edge`) only starts once the head has been read. Each request gets
/// the peer address as `ConnectInfo`, like `into_make_service_with_connect_info`.
///
/// At most `max_connections` are served at once; a connection over the cap gets a 503 and
/// is closed at once, rather than waiting unanswered in the listen backlog or taking the
/// process to its file-descriptor limit.
async fn serve_connections(
    listener: TcpListener,
    app: impl http::App,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let (closing, _) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            conns.spawn(refuse_connection(stream));
            continue;
        };
        let svc =
            app.clone()
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req.map(axum::body::Body::new)
                });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let mut closing = closing.subscribe();
        conns.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    // Graceful shutdown: no new connections; in-flight requests finish.
    drop(listener);
    let _ = closing.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Answers a connection over `max_connections` with 503 and closes it, within a second. The
/// request is not read; what the client already sent is drained briefly after the answer,
/// so that closing does not reset the connection before the client has read the 503.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const BODY: &str =
        r#"{"error":"temporarily_unavailable","error_description":"Too many connections"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Binds `127.0.0.1:0` and starts a server for tests, with its own clock (advance it with
/// [`Clock::advance`] through [`Running::clock`]).
pub async fn spawn_for_test(config: Config) -> Result<Running, ServerError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    spawn(config, Clock::system(), listener).await
}

/// Runs the server until SIGINT or SIGTERM (`tessera serve`). Prints the listening address
/// and, on first run, the one-time setup link to stdout (not through tracing, so the link
/// never lands in JSON logs).
pub async fn serve(config: Config) -> Result<(), ServerError> {
    let addr = config.bind;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let mut running = spawn(config, Clock::system(), listener).await?;
    println!("Tessera listening on http://{}", running.addr);
    println!("Issuer: {}", running.state.config.issuer());
    if let Some(link) = running.setup_link() {
        println!();
        println!("No user exists yet. Create the first admin account (one-time link):");
        println!("  {link}");
        println!();
    }
    tracing::info!(addr = %running.addr, "listening");
    tokio::select! {
        r = running.wait() => return r,
        () = shutdown_signal() => {}
    }
    tracing::info!("shutting down");
    running.stop().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// How often the background task checks key rotation and prunes.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

/// Key upkeep (reload on change notices, rotation when due, pruning) and pruning of expired
/// sessions and revocation events.
async fn background_tasks(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut notices = state.store.subscribe();
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                if let Err(e) = state.keys.maintain().await {
                    tracing::error!(error = %e, "key maintenance failed");
                }
                let now = state.now();
                if let Err(e) = state.store.prune_revocations(now).await {
                    tracing::warn!(error = %e, "pruning revocations failed");
                }
                // Keep ended sessions a day for the admin's and user's view, then drop them.
                if let Err(e) = state.store.prune_sessions(now - 86_400).await {
                    tracing::warn!(error = %e, "pruning sessions failed");
                }
            }
            notice = notices.recv() => match notice {
                Ok(StoreNotice::KeysChanged) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = state.keys.reload().await {
                        tracing::error!(error = %e, "key reload failed");
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    // No more notices; keep the periodic upkeep.
                    notices = state.store.subscribe();
                    tokio::time::sleep(MAINTENANCE_INTERVAL).await;
                }
            },
        }
    }
}
