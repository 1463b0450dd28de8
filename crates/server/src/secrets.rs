//! The master key file and the secrets derived from it.
//!
//! `master.key` holds 32 random bytes (mode 0600; the server refuses to start if the file is
//! readable by group or others). Purpose-specific keys are derived from it with HMAC-SHA256
//! and a fixed label, so one key is never used for two purposes.

use std::io::Write as _;
use std::path::Path;

use zeroize::Zeroizing;

use crate::crypto;

/// Label for the key that encrypts private signing keys at rest (AES-256-GCM).
const KEY_ENCRYPTION_LABEL: &[u8] = b"tessera/v1/signing-key-encryption";
/// Label for the key that derives refresh-token successors (HMAC-SHA256).
const REFRESH_LABEL: &[u8] = b"tessera/v1/refresh-successor";

/// Why the master key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    /// File system error.
    #[error("master key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is readable by group or others.
    #[error("master key {0} is readable by group or others; run `chmod 600 {0}`")]
    Permissions(String),
    /// The file does not hold exactly 32 bytes.
    #[error("master key {0} is not 32 bytes")]
    Length(String),
    /// The CSPRNG failed.
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}

/// Keys derived from the master key. Zeroized on drop, redacted in `Debug`.
pub struct Secrets {
    key_encryption: Zeroizing<[u8; 32]>,
    refresh: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

impl Secrets {
    /// Derives the purpose keys from a master key.
    pub fn derive(master: &[u8; 32]) -> Self {
        Self {
            key_encryption: Zeroizing::new(crypto::hmac_sha256(master, KEY_ENCRYPTION_LABEL)),
            refresh: Zeroizing::new(crypto::hmac_sha256(master, REFRESH_LABEL)),
        }
    }

    /// AES-256-GCM key for private signing keys at rest.
    pub fn key_encryption(&self) -> &[u8; 32] {
        &self.key_encryption
    }

    /// HMAC key deriving refresh-token successors.
    pub fn refresh(&self) -> &[u8; 32] {
        &self.refresh
    }
}

/// Loads `path`, or creates it with 32 random bytes (mode 0600) when it does not exist.
pub fn load_or_create_master_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, MasterKeyError> {
    let shown = path.display().to_string();
    let io = |source| MasterKeyError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(MasterKeyError::Permissions(shown));
                }
            }
            #[cfg(not(unix))]
            let _ = meta;
            let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| MasterKeyError::Length(shown.clone()))?;
            Ok(Zeroizing::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Zeroizing::new(crypto::random_bytes::<32>()?);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            let mut file = opts.open(path).map_err(io)?;
            file.write_all(key.as_ref()).map_err(io)?;
            file.sync_all().map_err(io)?;
            // The directory entry too: private keys sealed under this key are about to be
            // stored, and a crash must not keep them while losing the only key that opens them.
            #[cfg(unix)]
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io)?;
            }
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zeroize-on-drop cannot be observed without `unsafe` (it would mean reading freed
    /// memory), so the types are held to it instead: every place that keeps secret material
    /// must be of a type whose drop zeroizes. Replacing one with a plain array or `String`
    /// stops this test from compiling.
    #[test]
    fn secret_material_lives_in_types_that_zeroize_on_drop() {
        fn zeroizes<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        fn field<S, T: zeroize::ZeroizeOnDrop>(_: fn(&S) -> &T) {}
        let dir = tempfile::tempdir().unwrap();
        zeroizes(&load_or_create_master_key(&dir.path().join("master.key")).unwrap());
        field(|s: &Secrets| &s.key_encryption);
        field(|s: &Secrets| &s.refresh);
        field(|s: &crate::config::SecretString| s);
        field(|i: &crate::domain::sessions::Issued| &i.refresh_token);
        field(|r: &crate::domain::clients::Registered| &r.secret);
        let key = [9u8; 32];
        let sealed = crypto::seal(&key, b"kid", b"private key bytes").unwrap();
        zeroizes(&crypto::open(&key, b"kid", &sealed).unwrap());
        fn returns<T: zeroize::ZeroizeOnDrop>(_: fn(&crate::state::AppState, &str) -> T) {}
        returns(crate::domain::sessions::successor_of);
    }

    #[test]
    fn creates_then_reloads_and_refuses_open_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = load_or_create_master_key(&path).unwrap();
        let b = load_or_create_master_key(&path).unwrap();
        assert_eq!(*a, *b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                load_or_create_master_key(&path),
                Err(MasterKeyError::Permissions(_))
            ));
        }
    }
}
