//! OAuth 2.0 clients (service accounts): registration, authentication, scopes.
//!
//! A client secret is 256 random bits generated here (never chosen by a person), so it is
//! stored as plain SHA-256: a slow password hash buys nothing against a brute force of a
//! 2^256 space (RFC 6749 §2.3.1 leaves the method to the server; RFC 9700 §2.5 asks for
//! high-entropy secrets). Secrets are compared in constant time, and an unknown client id
//! costs the same hash and comparison as a wrong secret.

use tessera_store::{Client, NewRevocation, RevocationKind};
use zeroize::Zeroizing;

use super::accounts::{normalize_roles, FIRST_PARTY_CLIENT};
use super::{DomainError, DomainResult};
use crate::crypto;
use crate::state::AppState;

/// The scope that admits a client to the revocation feed (docs/api.md).
pub const FEED_SCOPE: &str = "revocations:read";
/// Longest client name accepted.
pub const MAX_NAME_LENGTH: usize = 100;
/// Longest scope string accepted (requested or registered).
pub const MAX_SCOPE_LENGTH: usize = 1024;
/// Longest client id or secret looked at; anything longer cannot be ours.
const MAX_CREDENTIAL_LENGTH: usize = 256;

/// A freshly registered client with its secret (shown once, then only its hash exists).
#[derive(Debug)]
pub struct Registered {
    /// The stored client.
    pub client: Client,
    /// The secret, in clear for this one answer.
    pub secret: Zeroizing<String>,
}

/// Parses a space-delimited scope string (RFC 6749 §3.3): each token is one or more of
/// `%x21 / %x23-5B / %x5D-7E`; order is irrelevant and duplicates are dropped. `None` when
/// a token has a forbidden character.
pub fn parse_scope(scope: &str) -> Option<Vec<String>> {
    if scope.len() > MAX_SCOPE_LENGTH {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        let ok = token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !ok {
            return None;
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_string());
        }
    }
    Some(out)
}

/// Validates a client name: 1-100 characters, no control characters.
fn validate_name(name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_LENGTH
        || name.chars().any(char::is_control)
    {
        return Err(DomainError::InvalidRequest(format!(
            "Client name must be 1-{MAX_NAME_LENGTH} characters without control characters"
        )));
    }
    Ok(name.to_string())
}

/// Registers a client with a generated id and secret.
pub async fn create(
    state: &AppState,
    name: &str,
    roles: &[String],
    scope: Option<&str>,
) -> DomainResult<Registered> {
    let name = validate_name(name)?;
    let roles = normalize_roles(roles)?;
    let scope = parse_scope(scope.unwrap_or(""))
        .ok_or_else(|| DomainError::InvalidRequest("Invalid scope (RFC 6749 §3.3)".into()))?
        .join(" ");
    // 128 random bits are plenty for an identifier; it is not a secret.
    let id_bytes = crypto::random_bytes::<16>()?;
    let client_id = format!("svc_{}", hex(&id_bytes));
    let secret = Zeroizing::new(crypto::random_token()?);
    let client = Client {
        client_id,
        name,
        secret_hash: crypto::sha256(secret.as_bytes()),
        roles,
        scope,
        created_at: state.now(),
    };
    state.store.create_client(&client).await?;
    Ok(Registered { client, secret })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a client's credentials. `Ok(None)` for an unknown id or a wrong secret (the same
/// work either way, so neither shows).
pub async fn authenticate(
    state: &AppState,
    client_id: &str,
    secret: &str,
) -> DomainResult<Option<Client>> {
    if client_id.is_empty()
        || client_id.len() > MAX_CREDENTIAL_LENGTH
        || secret.len() > MAX_CREDENTIAL_LENGTH
    {
        return Ok(None);
    }
    let presented = crypto::sha256(secret.as_bytes());
    match state.store.client_by_id(client_id).await? {
        Some(client) if crypto::ct_eq(&client.secret_hash, &presented) => Ok(Some(client)),
        Some(_) => Ok(None),
        None => {
            // Same comparison against a hash nothing matches.
            let _ = crypto::ct_eq(&[0u8; 32], &presented);
            Ok(None)
        }
    }
}

/// [`authenticate`] for the introspection endpoint: a client that proved this same secret
/// before, in the current cache epoch, is answered from memory (`domain::introspection`;
/// the presented secret is still hashed and compared in constant time). A wrong secret, an
/// unknown id or an old epoch take the store path of [`authenticate`], so a cached client
/// and an unknown one cost the same to anybody without the secret.
pub async fn authenticate_cached(
    state: &AppState,
    client_id: &str,
    secret: &str,
) -> DomainResult<Option<Client>> {
    let epoch = super::introspection::epoch(state);
    if secret.len() <= MAX_CREDENTIAL_LENGTH {
        if let Some(client) = epoch.and_then(|e| super::introspection::client(state, e, client_id))
        {
            let presented = crypto::sha256(secret.as_bytes());
            if crypto::ct_eq(&client.secret_hash, &presented) {
                return Ok(Some(client));
            }
        }
    }
    let found = authenticate(state, client_id, secret).await?;
    if let (Some(e), Some(c)) = (epoch, &found) {
        super::introspection::remember_client(state, e, c);
    }
    Ok(found)
}

/// Whether `client_id` names the first-party (public) client.
pub fn is_first_party(client_id: &str) -> bool {
    client_id == FIRST_PARTY_CLIENT
}

/// The scope to grant a client for a `client_credentials` request (RFC 6749 §3.3): the
/// requested scope when it is a subset of the client's registered scope, the registered
/// scope when none was requested. `Err(())` when a requested scope is malformed or not
/// allowed. `Ok(None)` when the result is empty.
#[allow(clippy::result_unit_err)] // The only failure is "invalid_scope"; the caller names it.
pub fn grant_scope(client: &Client, requested: Option<&str>) -> Result<Option<String>, ()> {
    let allowed = parse_scope(&client.scope).unwrap_or_default();
    let granted = match requested {
        None => allowed,
        Some(req) => {
            let req = parse_scope(req).ok_or(())?;
            if req.iter().any(|s| !allowed.contains(s)) {
                return Err(());
            }
            req
        }
    };
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

/// Whether a client's registered scope includes `scope`.
pub fn has_scope(client: &Client, scope: &str) -> bool {
    parse_scope(&client.scope).is_some_and(|s| s.iter().any(|t| t == scope))
}

/// Every client, by creation time.
pub async fn list(state: &AppState) -> DomainResult<Vec<Client>> {
    Ok(state.store.list_clients().await?)
}

/// Deletes a client. Its access tokens stop working at once here (`authenticate` checks
/// the client exists) and at every verifier through a `user`-kind revocation event for its
/// `sub` (= client id) with a cutoff of now: a service token carries `sub = client_id`, so
/// the cutoff rule covers every token the client was issued. `NotFound` when it does not
/// exist.
pub async fn delete(state: &AppState, client_id: &str) -> DomainResult<()> {
    let deleted = state.store.delete_client(client_id).await;
    // Whatever happened next: the client must not introspect from the cache any more.
    super::introspection::invalidate(state);
    if !deleted? {
        return Err(DomainError::NotFound);
    }
    let now = state.now();
    let ev = NewRevocation {
        kind: RevocationKind::User,
        subject: client_id.to_string(),
        cutoff: Some(now),
        created_at: now,
        // Same lifetime as every other event (domain::revocation): after it no token the
        // event could match is still valid.
        expires_at: now + state.config.access_token_ttl + state.config.leeway,
    };
    let stored = state.store.append_revocation(&ev).await?;
    state.metrics.revocation(stored.kind.as_str());
    let _ = state.revocations.send(stored);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(scope: &str) -> Client {
        Client {
            client_id: "c".into(),
            name: "n".into(),
            secret_hash: vec![],
            roles: vec![],
            scope: scope.into(),
            created_at: 0,
        }
    }

    #[test]
    fn scope_parsing() {
        assert_eq!(parse_scope("a  b a").unwrap(), vec!["a", "b"]);
        assert_eq!(parse_scope("").unwrap(), Vec::<String>::new());
        assert!(parse_scope("a\"b").is_none());
        assert!(parse_scope("a\\b").is_none());
        assert!(parse_scope("caf\u{e9}").is_none());
        assert!(parse_scope("a\tb").is_none());
    }

    #[test]
    fn scope_subset() {
        let c = client("revocations:read notes:write");
        assert_eq!(
            grant_scope(&c, None),
            Ok(Some("revocations:read notes:write".into()))
        );
        assert_eq!(
            grant_scope(&c, Some("notes:write")),
            Ok(Some("notes:write".into()))
        );
        assert_eq!(grant_scope(&c, Some("")), Ok(None));
        assert_eq!(grant_scope(&c, Some("admin")), Err(()));
        assert_eq!(grant_scope(&client(""), None), Ok(None));
        assert!(has_scope(&c, FEED_SCOPE));
        assert!(!has_scope(&client("revocations:readx"), FEED_SCOPE));
    }
}
