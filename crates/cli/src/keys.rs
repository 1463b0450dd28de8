//! `tessera keys`: generate a key pair, or rotate the server's signing key.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use tessera_jwt::{Algorithm, SigningKey};

use crate::Failure;

/// Key management.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a signing key: the private key goes to a file (mode 0600), the public key to
    /// stdout.
    ///
    /// Example: `tessera keys generate --alg EdDSA --out signing.jwk > public.jwk`
    Generate(GenerateArgs),
    /// Rotate the server's signing key now (the new key is published at once and signs after
    /// the JWKS max-age, so no verifier with a cached key set ever sees an unknown key).
    ///
    /// Example: `tessera keys rotate --config tessera.toml`
    Rotate(crate::serve::ServeArgs),
}

/// Output format of `keys generate`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// JSON Web Key (RFC 7517), kid = RFC 7638 thumbprint.
    Jwk,
    /// PEM: PKCS#8 private key, SPKI public key (not for HMAC).
    Pem,
}

/// Arguments of `keys generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Algorithm: EdDSA, ES256, ES384, RS256..RS512, PS256..PS512, HS256..HS512.
    #[arg(long, default_value = "EdDSA")]
    alg: Algorithm,
    /// Where to write the private key (refuses to overwrite).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jwk")]
    format: Format,
}

pub(crate) fn run(cmd: KeysCommand) -> Result<(), Failure> {
    match cmd {
        KeysCommand::Generate(args) => generate(args),
        KeysCommand::Rotate(args) => rotate(args),
    }
}

fn generate(args: GenerateArgs) -> Result<(), Failure> {
    let key = SigningKey::generate(args.alg)
        .map_err(|e| Failure::Runtime(format!("key generation failed: {e}")))?;
    let kid = key.thumbprint();
    let key = key.with_kid(kid.clone());
    let is_hmac = matches!(
        args.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    );
    let (private, public) = match args.format {
        Format::Jwk => {
            let private = serde_json::to_string_pretty(&key.to_jwk())
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            let public = if is_hmac {
                None
            } else {
                Some(
                    serde_json::to_string_pretty(&key.verifying_key().to_jwk())
                        .map_err(|e| Failure::Runtime(e.to_string()))?,
                )
            };
            (zeroize_string(private), public)
        }
        Format::Pem => {
            if is_hmac {
                return Err(Failure::Usage(
                    "HMAC keys have no PEM form; use --format jwk".to_string(),
                ));
            }
            let private = key
                .to_pem()
                .map_err(|e| Failure::Runtime(format!("cannot encode key: {e}")))?;
            let public = key
                .verifying_key()
                .to_pem()
                .map_err(|e| Failure::Runtime(format!("cannot encode key: {e}")))?;
            (private, Some(public))
        }
    };
    let ext = match args.format {
        Format::Jwk => "jwk",
        Format::Pem => "pem",
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("tessera-{}.{ext}", args.alg)));
    write_private(&out, private.as_bytes())?;
    eprintln!(
        "private key written to {} (mode 0600), kid {kid}",
        out.display()
    );
    match public {
        Some(public) => println!("{public}"),
        None => eprintln!("HMAC keys are secret: there is no public key to print"),
    }
    Ok(())
}

fn zeroize_string(s: String) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(s)
}

/// Creates the file with mode 0600 from the start (never world-readable, even briefly) and
/// refuses to overwrite an existing file.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(path)
        .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", path.display())))
}

fn rotate(args: crate::serve::ServeArgs) -> Result<(), Failure> {
    let config = crate::serve::load_config(&args)?;
    let rt = crate::runtime()?;
    let kid = rt
        .block_on(tessera_server::commands::rotate_keys(&config))
        .map_err(|e| Failure::Runtime(format!("key rotation failed: {e}")))?;
    println!("new signing key {kid} published; it signs once the JWKS max-age has passed");
    Ok(())
}
