//! `tessera token`: sign, verify and decode tokens.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use tessera_jwt::{Algorithm, Header, Validation};

use crate::keyfile::{self, Keys};
use crate::Failure;

/// Longest token read from stdin: the token core refuses anything over its size cap anyway.
const MAX_STDIN: u64 = 64 * 1024;

/// Token tools.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Sign claims into a compact JWT.
    ///
    /// Example: `tessera token sign --key signing.jwk --claims '{"sub":"u1","roles":["admin"]}' --iss https://auth.example --aud api --ttl 10m`
    Sign(SignArgs),
    /// Verify a token: prints the verified header and claims as JSON and exits 0, or prints
    /// the precise reason to stderr and exits 1.
    ///
    /// Example: `tessera token verify "$TOKEN" --key public.jwk --iss https://auth.example --aud api`
    Verify(VerifyArgs),
    /// Print a token's header and claims WITHOUT verifying anything.
    ///
    /// Example: `tessera token decode "$TOKEN"`
    Decode(DecodeArgs),
}

/// Arguments of `token sign`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// Private key: JWK, PKCS#8 PEM, or a file holding an HMAC secret.
    #[arg(long)]
    key: PathBuf,
    /// Algorithm, when the key file does not say (PEM RSA keys, HMAC secrets).
    #[arg(long)]
    alg: Option<Algorithm>,
    /// Claims as a JSON object, `@FILE` to read a file, or `-` for stdin.
    #[arg(long, default_value = "{}")]
    claims: String,
    /// Lifetime: sets `iat`/`nbf` to now and `exp` to now + TTL (e.g. 10m, 1h, 30s).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Issuer (`iss`).
    #[arg(long)]
    iss: Option<String>,
    /// Audience (`aud`); repeat for several.
    #[arg(long)]
    aud: Vec<String>,
    /// Header `typ` (e.g. at+jwt for access tokens).
    #[arg(long, default_value = "JWT")]
    typ: String,
}

/// Arguments of `token verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The token, or `-` (or nothing) to read it from stdin.
    token: Option<String>,
    /// Key: JWK, JWKS, PEM public key, or a file holding an HMAC secret.
    #[arg(long)]
    key: PathBuf,
    /// Algorithm, when the key file does not say (PEM RSA keys, HMAC secrets).
    #[arg(long)]
    alg: Option<Algorithm>,
    /// Required issuer. Without it `iss` is not checked.
    #[arg(long)]
    iss: Option<String>,
    /// Required audience (any of them). Without it `aud` is not checked.
    #[arg(long)]
    aud: Vec<String>,
    /// Required header `typ` (e.g. at+jwt).
    #[arg(long)]
    typ: Option<String>,
    /// Clock leeway in seconds for exp/nbf/iat.
    #[arg(long, default_value_t = 30)]
    leeway: u64,
    /// Verify only the JWS signature (no claim rules) and print the payload.
    #[arg(long)]
    signature_only: bool,
}

/// Arguments of `token decode`.
#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The token, or `-` (or nothing) to read it from stdin.
    token: Option<String>,
}

pub(crate) fn run(cmd: TokenCommand) -> Result<(), Failure> {
    match cmd {
        TokenCommand::Sign(args) => sign(args),
        TokenCommand::Verify(args) => verify(args),
        TokenCommand::Decode(args) => decode(args),
    }
}

fn read_stdin(what: &str) -> Result<String, Failure> {
    let mut s = String::new();
    std::io::stdin()
        .take(MAX_STDIN)
        .read_to_string(&mut s)
        .map_err(|e| Failure::Usage(format!("cannot read {what} from stdin: {e}")))?;
    Ok(s)
}

fn token_arg(token: Option<String>) -> Result<String, Failure> {
    let raw = match token.as_deref() {
        None | Some("-") => read_stdin("the token")?,
        Some(t) => t.to_string(),
    };
    Ok(raw.trim().to_string())
}

fn sign(args: SignArgs) -> Result<(), Failure> {
    let key = keyfile::signing_key(&args.key, args.alg)?;
    let text = match args.claims.as_str() {
        "-" => read_stdin("the claims")?,
        c if c.starts_with('@') => {
            let path = &c[1..];
            std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("cannot read claims file {path}: {e}")))?
        }
        c => c.to_string(),
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("--claims is not valid JSON: {e}")))?;
    let serde_json::Value::Object(mut claims) = value else {
        return Err(Failure::Usage("--claims must be a JSON object".to_string()));
    };
    let now = tessera_jwt::now();
    let ttl = i64::try_from(args.ttl.as_secs())
        .map_err(|_| Failure::Usage("--ttl is too large".to_string()))?;
    claims.entry("iat").or_insert(now.into());
    claims.entry("nbf").or_insert(now.into());
    claims.insert("exp".to_string(), now.saturating_add(ttl).into());
    if let Some(iss) = args.iss {
        claims.insert("iss".to_string(), iss.into());
    }
    match args.aud.len() {
        0 => {}
        1 => {
            claims.insert("aud".to_string(), args.aud[0].clone().into());
        }
        _ => {
            claims.insert("aud".to_string(), args.aud.clone().into());
        }
    }
    let header = Header::new().typ(&args.typ);
    let token = key
        .sign(&header, &claims)
        .map_err(|e| Failure::Runtime(format!("signing failed: {e}")))?;
    println!("{token}");
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let keys = keyfile::verifying_keys(&args.key, args.alg)?;
    let token = token_arg(args.token)?;
    if args.signature_only {
        let Keys::One(key) = &keys else {
            return Err(Failure::Usage(
                "--signature-only needs a single key, not a JWKS".to_string(),
            ));
        };
        let (header, payload) =
            tessera_jwt::verify_signature_only(&token, key, 8 * 1024).map_err(rejected)?;
        let header = serde_json::to_value(&header).map_err(|e| Failure::Runtime(e.to_string()))?;
        eprintln!("signature valid ({})", header["alg"]);
        println!("{}", String::from_utf8_lossy(&payload));
        return Ok(());
    }
    let mut policy = Validation::new().leeway(args.leeway);
    let mut not_required = Vec::new();
    match &args.iss {
        Some(iss) => policy = policy.issuer(iss),
        None => not_required.push("iss"),
    }
    if args.aud.is_empty() {
        not_required.push("aud");
    } else {
        let auds: Vec<&str> = args.aud.iter().map(String::as_str).collect();
        policy = policy.audience(&auds);
    }
    policy = policy
        .without_required(&not_required)
        .typ(args.typ.as_deref());
    let verified = match &keys {
        Keys::One(key) => tessera_jwt::verify::<serde_json::Value>(&token, key, &policy),
        Keys::Set(set) => tessera_jwt::verify_with_keys::<serde_json::Value>(&token, set, &policy),
    }
    .map_err(rejected)?;
    let out = serde_json::json!({
        "header": verified.header(),
        "claims": verified.claims(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| Failure::Runtime(e.to_string()))?
    );
    Ok(())
}

fn rejected(e: tessera_jwt::Error) -> Failure {
    Failure::Rejected(format!("token rejected: {e}"))
}

fn decode(args: DecodeArgs) -> Result<(), Failure> {
    let token = token_arg(args.token)?;
    let (header, claims) = tessera_jwt::dangerous::decode_unverified(&token)
        .map_err(|e| Failure::Usage(format!("cannot decode token: {e}")))?;
    eprintln!("WARNING: decoded WITHOUT verification; nothing below is trustworthy");
    let out = serde_json::json!({ "verified": false, "header": header, "claims": claims });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| Failure::Runtime(e.to_string()))?
    );
    Ok(())
}
