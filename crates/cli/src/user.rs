//! `tessera user`: manage users directly in the store (for the first admin, or scripts).

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};

use crate::serve::ServeArgs;
use crate::Failure;

/// User management.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user. The password is read from stdin (first line) or prompted without echo.
    ///
    /// Example: `echo 'correct horse battery' | tessera user add --email admin@example.com --role admin`
    Add(AddArgs),
}

/// Arguments of `user add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Email address (the login name).
    #[arg(long)]
    email: String,
    /// Role to grant; repeat for several.
    #[arg(long = "role")]
    roles: Vec<String>,
    #[command(flatten)]
    server: ServeArgs,
}

pub(crate) fn run(cmd: UserCommand) -> Result<(), Failure> {
    match cmd {
        UserCommand::Add(args) => add(args),
    }
}

fn read_password() -> Result<zeroize::Zeroizing<String>, Failure> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| Failure::Usage(format!("cannot read password: {e}")))?;
        let again = rpassword::prompt_password("Password (again): ")
            .map_err(|e| Failure::Usage(format!("cannot read password: {e}")))?;
        if first != again {
            return Err(Failure::Usage("passwords do not match".to_string()));
        }
        Ok(zeroize::Zeroizing::new(first))
    } else {
        let mut line = zeroize::Zeroizing::new(String::new());
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Usage(format!("cannot read password from stdin: {e}")))?;
        Ok(zeroize::Zeroizing::new(
            line.trim_end_matches(['\r', '\n']).to_string(),
        ))
    }
}

fn add(args: AddArgs) -> Result<(), Failure> {
    let config = crate::serve::load_config(&args.server)?;
    let password = read_password()?;
    let rt = crate::runtime()?;
    let id = rt
        .block_on(tessera_server::commands::add_user(
            &config,
            &args.email,
            &password,
            &args.roles,
        ))
        .map_err(|e| Failure::Runtime(format!("cannot add user: {e}")))?;
    println!("{id}");
    Ok(())
}
