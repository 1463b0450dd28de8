//! `tessera`: the command-line tool of the Tessera auth system.
//!
//! One file per subcommand: `serve`, `keys`, `token`, `user`, `migrate`. Usage errors exit
//! with 2 (clap's convention); a token that fails verification exits with 1; a bad key or
//! file prints one clear line and exits with 2.

mod keyfile;
mod keys;
mod migrate;
mod serve;
mod token;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tessera: JWT authentication with revocation, rotation and sessions.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the auth server (SQLite in ./tessera-data by default).
    Serve(serve::ServeArgs),
    /// Generate signing keys, or rotate the server's key.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Sign, verify and decode tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage users of the server's store.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Apply store migrations, or copy an installation to another database.
    Migrate(migrate::MigrateArgs),
}

/// How a subcommand failed: the message is printed on one line.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad input: unreadable file, bad key, bad JSON (exit 2).
    Usage(String),
    /// The token was rejected (exit 1).
    Rejected(String),
    /// Anything else (exit 1).
    Runtime(String),
}

impl Failure {
    fn exit(self) -> ExitCode {
        let (code, msg) = match self {
            Failure::Usage(m) => (2, m),
            Failure::Rejected(m) => (1, m),
            Failure::Runtime(m) => (1, m),
        };
        eprintln!("tessera: {msg}");
        ExitCode::from(code)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(cmd) => keys::run(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::User(cmd) => user::run(cmd),
        Command::Migrate(args) => migrate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

/// A multi-threaded runtime for the store- and server-backed subcommands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))
}
