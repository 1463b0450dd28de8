//! Server configuration: built-in defaults, overridden by a TOML file, overridden by
//! `TESSERA_*` environment variables. Every option is documented in `docs/configuration.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// An environment variable has a value of the wrong type.
    #[error("invalid value for {var}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// A value is out of range or inconsistent with another one.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The token signing algorithm (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SigningAlgorithm {
    /// Ed25519 (the default).
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys).
    RS256,
    /// HMAC-SHA256 shared-secret mode: no JWKS is published, only services holding the
    /// secret can verify.
    HS256,
}

impl SigningAlgorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::HS256 => "HS256",
        }
    }
}

/// A secret string from the configuration; redacted in `Debug`, zeroized on drop.
#[derive(Clone, PartialEq, Eq, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// The complete server configuration. Times are in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address (`TESSERA_BIND`).
    pub bind: SocketAddr,
    /// Issuer URL put in `iss` and the metadata (`TESSERA_ISSUER`); default `http://<bind>`.
    pub issuer: Option<String>,
    /// Audiences put in `aud` (`TESSERA_AUDIENCE`, comma-separated).
    pub audiences: Vec<String>,
    /// Directory for the master key and the SQLite database (`TESSERA_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Database URL (`TESSERA_DATABASE_URL`); default `sqlite://<data_dir>/tessera.db`.
    pub database_url: Option<String>,
    /// Access-token lifetime.
    pub access_token_ttl: i64,
    /// A session ends when not refreshed for this long.
    pub refresh_idle_ttl: i64,
    /// A session ends this long after login whatever happens.
    pub refresh_absolute_ttl: i64,
    /// A rotated refresh token presented again within this window returns the same
    /// successor instead of counting as reuse; 0 turns the grace off.
    pub refresh_grace: i64,
    /// Clock-skew leeway for `exp`/`nbf`/`iat`, also added to key and revocation lifetimes.
    pub leeway: i64,
    /// `Cache-Control: max-age` of the JWKS; a new key is published this long before it signs.
    pub jwks_max_age: i64,
    /// Automatic signing-key rotation interval; 0 disables automatic rotation.
    pub key_rotation_interval: i64,
    /// Signing algorithm for new keys.
    pub algorithm: SigningAlgorithm,
    /// Whether `POST /auth/register` is open.
    pub registration_open: bool,
    /// Whether the OAuth `password` grant is enabled.
    pub password_grant: bool,
    /// Whether the refresh cookie carries `Secure` (turn off only for plain-HTTP development).
    pub cookie_secure: bool,
    /// Name of the refresh cookie.
    pub cookie_name: String,
    /// Throttle window: failures older than this are forgotten.
    pub throttle_window: i64,
    /// Failed logins per account allowed in a window before delays start.
    pub throttle_account_free: i64,
    /// Failed logins per client IP allowed in a window before delays start.
    pub throttle_ip_free: i64,
    /// Registrations per client IP allowed in a window before delays start.
    pub throttle_register_free: i64,
    /// Longest delay imposed by throttling.
    pub throttle_max_delay: i64,
    /// Static bearer token admitting a verifier to the revocation feed (`TESSERA_FEED_TOKEN`).
    pub feed_token: Option<SecretString>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Per-request timeout (until the response headers).
    pub request_timeout: u64,
    /// Most connections served at once (`TESSERA_MAX_CONNECTIONS`); one more is answered 503
    /// `Retry-After: 1` and closed.
    pub max_connections: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`TESSERA_TRUSTED_PROXIES`,
    /// comma-separated IPs). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            audiences: vec!["api".to_string()],
            data_dir: PathBuf::from("./tessera-data"),
            database_url: None,
            access_token_ttl: 600,
            refresh_idle_ttl: 14 * 86_400,
            refresh_absolute_ttl: 30 * 86_400,
            refresh_grace: 10,
            leeway: 30,
            jwks_max_age: 300,
            key_rotation_interval: 30 * 86_400,
            algorithm: SigningAlgorithm::EdDSA,
            registration_open: true,
            password_grant: true,
            cookie_secure: true,
            cookie_name: "tessera_refresh".to_string(),
            throttle_window: 900,
            throttle_account_free: 5,
            throttle_ip_free: 20,
            throttle_register_free: 20,
            throttle_max_delay: 900,
            feed_token: None,
            body_limit: 64 * 1024,
            request_timeout: 30,
            max_connections: 4096,
            trusted_proxies: Vec::new(),
        }
    }
}

/// How an environment variable's text becomes a TOML value.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

/// Every option with its environment variable. The TOML key is the lowercase name without
/// the prefix, except `audiences` (`TESSERA_AUDIENCE`).
const OPTIONS: &[(&str, &str, Kind)] = &[
    ("bind", "TESSERA_BIND", Kind::Str),
    ("issuer", "TESSERA_ISSUER", Kind::Str),
    ("audiences", "TESSERA_AUDIENCE", Kind::List),
    ("data_dir", "TESSERA_DATA_DIR", Kind::Str),
    ("database_url", "TESSERA_DATABASE_URL", Kind::Str),
    ("access_token_ttl", "TESSERA_ACCESS_TOKEN_TTL", Kind::Int),
    ("refresh_idle_ttl", "TESSERA_REFRESH_IDLE_TTL", Kind::Int),
    (
        "refresh_absolute_ttl",
        "TESSERA_REFRESH_ABSOLUTE_TTL",
        Kind::Int,
    ),
    ("refresh_grace", "TESSERA_REFRESH_GRACE", Kind::Int),
    ("leeway", "TESSERA_LEEWAY", Kind::Int),
    ("jwks_max_age", "TESSERA_JWKS_MAX_AGE", Kind::Int),
    (
        "key_rotation_interval",
        "TESSERA_KEY_ROTATION_INTERVAL",
        Kind::Int,
    ),
    ("algorithm", "TESSERA_ALGORITHM", Kind::Str),
    ("registration_open", "TESSERA_REGISTRATION_OPEN", Kind::Bool),
    ("password_grant", "TESSERA_PASSWORD_GRANT", Kind::Bool),
    ("cookie_secure", "TESSERA_COOKIE_SECURE", Kind::Bool),
    ("cookie_name", "TESSERA_COOKIE_NAME", Kind::Str),
    ("throttle_window", "TESSERA_THROTTLE_WINDOW", Kind::Int),
    (
        "throttle_account_free",
        "TESSERA_THROTTLE_ACCOUNT_FREE",
        Kind::Int,
    ),
    ("throttle_ip_free", "TESSERA_THROTTLE_IP_FREE", Kind::Int),
    (
        "throttle_register_free",
        "TESSERA_THROTTLE_REGISTER_FREE",
        Kind::Int,
    ),
    (
        "throttle_max_delay",
        "TESSERA_THROTTLE_MAX_DELAY",
        Kind::Int,
    ),
    ("feed_token", "TESSERA_FEED_TOKEN", Kind::Str),
    ("body_limit", "TESSERA_BODY_LIMIT", Kind::Int),
    ("request_timeout", "TESSERA_REQUEST_TIMEOUT", Kind::Int),
    ("max_connections", "TESSERA_MAX_CONNECTIONS", Kind::Int),
    ("trusted_proxies", "TESSERA_TRUSTED_PROXIES", Kind::List),
];

impl Config {
    /// Loads the configuration: defaults, then the TOML file at `path` (if any), then the
    /// `TESSERA_*` environment variables. Unknown TOML keys are an error.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TESSERA_"))
            .collect();
        Self::load_from(path, &vars)
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse(e.to_string()))?
            }
            None => toml::Table::new(),
        };
        for (key, var, kind) in OPTIONS {
            let Some(raw) = env.get(*var) else { continue };
            let value = parse_env(var, raw, *kind)?;
            table.insert((*key).to_string(), value);
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_idle_ttl", self.refresh_idle_ttl),
            ("refresh_absolute_ttl", self.refresh_absolute_ttl),
            ("jwks_max_age", self.jwks_max_age),
            ("throttle_window", self.throttle_window),
            ("throttle_max_delay", self.throttle_max_delay),
        ];
        for (name, v) in positive {
            if v <= 0 {
                return Err(ConfigError::Invalid(format!("{name} must be positive")));
            }
        }
        let non_negative = [
            ("refresh_grace", self.refresh_grace),
            ("leeway", self.leeway),
            ("key_rotation_interval", self.key_rotation_interval),
            ("throttle_account_free", self.throttle_account_free),
            ("throttle_ip_free", self.throttle_ip_free),
            ("throttle_register_free", self.throttle_register_free),
        ];
        for (name, v) in non_negative {
            if v < 0 {
                return Err(ConfigError::Invalid(format!("{name} must not be negative")));
            }
        }
        if self.refresh_idle_ttl > self.refresh_absolute_ttl {
            return Err(ConfigError::Invalid(
                "refresh_idle_ttl must not exceed refresh_absolute_ttl".into(),
            ));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::Invalid(
                "audiences must list at least one non-empty audience".into(),
            ));
        }
        let issuer = self.issuer();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.ends_with('/')
        {
            return Err(ConfigError::Invalid(
                "issuer must be an http(s) URL without a trailing slash".into(),
            ));
        }
        if self.cookie_name.is_empty()
            || !self
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::Invalid(
                "cookie_name must be non-empty and use only letters, digits, _ and -".into(),
            ));
        }
        if self.body_limit < 1024 {
            return Err(ConfigError::Invalid(
                "body_limit must be at least 1024".into(),
            ));
        }
        if self.request_timeout == 0 {
            return Err(ConfigError::Invalid(
                "request_timeout must be positive".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max_connections must be positive".into(),
            ));
        }
        if let Some(token) = &self.feed_token {
            if token.0.len() < 16 {
                return Err(ConfigError::Invalid(
                    "feed_token must be at least 16 characters".into(),
                ));
            }
        }
        Ok(())
    }

    /// The issuer URL (configured, or `http://<bind>`).
    pub fn issuer(&self) -> String {
        match &self.issuer {
            Some(i) => i.clone(),
            None => format!("http://{}", self.bind),
        }
    }

    /// The issuer's origin (`scheme://host[:port]`), compared with a request's `Origin`.
    pub fn issuer_origin(&self) -> String {
        let issuer = self.issuer();
        let after_scheme = issuer.find("://").map_or(0, |i| i + 3);
        match issuer[after_scheme..].find('/') {
            Some(slash) => issuer[..after_scheme + slash].to_string(),
            None => issuer,
        }
    }

    /// The database URL (configured, or SQLite in the data directory).
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}/tessera.db", self.data_dir.display()),
        }
    }

    /// Path of the master key file.
    pub fn master_key_path(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }
}

fn parse_env(var: &str, raw: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    let err = |reason: &str| ConfigError::Env {
        var: var.to_string(),
        reason: reason.to_string(),
    };
    Ok(match kind {
        Kind::Str => toml::Value::String(raw.to_string()),
        Kind::Int => toml::Value::Integer(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| err("expected an integer"))?,
        ),
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(err("expected true or false")),
        },
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer(), "http://127.0.0.1:8080");
        assert_eq!(c.audiences, vec!["api"]);
        assert_eq!(c.database_url(), "sqlite://./tessera-data/tessera.db");
        assert_eq!(c.algorithm, SigningAlgorithm::EdDSA);
        assert!(c.registration_open && c.password_grant && c.cookie_secure);
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:9000\"\naccess_token_ttl = 60\nalgorithm = \"ES256\"\n",
        )
        .unwrap();
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("TESSERA_ACCESS_TOKEN_TTL", "120"),
                ("TESSERA_AUDIENCE", "a, b"),
                ("TESSERA_REGISTRATION_OPEN", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.access_token_ttl, 120);
        assert_eq!(c.audiences, vec!["a", "b"]);
        assert_eq!(c.algorithm, SigningAlgorithm::ES256);
        assert!(!c.registration_open);
        assert_eq!(c.issuer(), "http://0.0.0.0:9000");
    }

    #[test]
    fn unknown_key_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "nope = 1\n").unwrap();
        assert!(Config::load_from(Some(&path), &env(&[])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_LEEWAY", "x")])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_ALGORITHM", "none")])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_ACCESS_TOKEN_TTL", "0")])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_ISSUER", "ftp://x")])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_TRUSTED_PROXIES", "nope")])).is_err());
        let c =
            Config::load_from(None, &env(&[("TESSERA_TRUSTED_PROXIES", "10.0.0.1, ::1")])).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
    }

    #[test]
    fn issuer_origin() {
        let c = Config {
            issuer: Some("https://auth.example.com/tenant".into()),
            ..Config::default()
        };
        assert_eq!(c.issuer_origin(), "https://auth.example.com");
    }
}
