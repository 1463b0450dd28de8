//! The store contract, tested against both engines: every test body runs once on a fresh
//! SQLite file and once on a fresh PostgreSQL schema (skipped loudly when PostgreSQL is not
//! reachable, failing instead when `TESSERA_REQUIRE_POSTGRES=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tessera_store::postgres::PostgresStore;
use tessera_store::testing::{TestSchema, DEFAULT_TEST_POSTGRES_URL};
use tessera_store::*;

/// A migrated store plus whatever keeps its database alive.
struct Harness {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<TestSchema>,
}

async fn sqlite_harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Harness {
        store,
        _dir: Some(dir),
        _schema: None,
    }
}

async fn postgres_harness() -> Option<Harness> {
    let schema = TestSchema::create().await?;
    // Through the public URL form, so `connect()` and the `options` parameter are tested too.
    let store = connect(&schema.url()).await.unwrap();
    store.migrate().await.unwrap();
    Some(Harness {
        store,
        _dir: None,
        _schema: Some(schema),
    })
}

/// Runs each named `async fn(Arc<dyn Store>)` against both engines.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = super::sqlite_harness().await;
                    assert_eq!(h.store.engine(), "sqlite");
                    super::$name(h.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = super::postgres_harness().await else { return };
                    assert_eq!(h.store.engine(), "postgres");
                    super::$name(h.store.clone()).await;
                }
            )*
        }
    };
}

store_tests!(
    migrate_twice_and_ping,
    users_create_lookup_and_conflict,
    list_users_search_and_paging,
    update_user_fields_and_cutoff_is_max,
    delete_user_cascades,
    create_session_is_atomic,
    live_sessions_filter_and_order,
    rotate_semantics,
    rotate_as_checks_the_client_and_returns_the_user,
    rotate_idle_expiry_capped_by_absolute,
    rotate_session_inactive,
    rotate_concurrent_exactly_one_winner,
    revoke_session_idempotent,
    revoke_user_sessions_with_keep,
    prune_sessions_removes_dead_sessions_and_tokens,
    revocation_cursors_and_filtering,
    revocation_cursors_concurrent_appenders,
    signing_keys_schedule,
    clients_crud,
    throttle_window_restart,
    throttle_concurrent_hits_not_lost,
    lease_one_holder_at_a_time,
    audit_filter_and_paging,
    notices_on_revocation_and_keys,
    revocation_cursor_never_visible_before_predecessor,
    import_refuses_non_empty_target,
    rotate_racing_revocation_is_all_or_nothing,
);

// ---- fixtures -----------------------------------------------------------------------------------

const T0: i64 = 1_700_000_000;
const IDLE: i64 = 14 * 86_400;
const ABS: i64 = 30 * 86_400;

fn new_user(id: &str, email: &str) -> NewUser {
    NewUser {
        id: id.to_string(),
        email: email.to_string(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${id}"),
        roles: vec!["user".to_string()],
        created_at: T0,
    }
}

fn new_session(id: &str, user_id: &str, created_at: i64) -> NewSession {
    NewSession {
        id: id.to_string(),
        user_id: user_id.to_string(),
        client_id: "tessera".to_string(),
        user_agent: Some("test-agent".to_string()),
        ip: Some("127.0.0.1".to_string()),
        created_at,
        idle_expires_at: created_at + IDLE,
        absolute_expires_at: created_at + ABS,
    }
}

fn h(label: &str) -> Vec<u8> {
    // Stands in for SHA-256 output: 32 bytes, distinct per label.
    let mut out = vec![0u8; 32];
    for (i, b) in label.bytes().enumerate() {
        out[i % 32] ^= b.wrapping_add(i as u8);
    }
    out[31] = label.len() as u8;
    out
}

async fn user(s: &Arc<dyn Store>, id: &str) -> User {
    s.create_user(&new_user(id, &format!("{id}@example.com")))
        .await
        .unwrap()
}

async fn session(s: &Arc<dyn Store>, id: &str, user_id: &str, at: i64, token: &str) -> Session {
    s.create_session(&new_session(id, user_id, at), &h(token))
        .await
        .unwrap()
}

fn revocation(kind: RevocationKind, subject: &str, expires_at: i64) -> NewRevocation {
    NewRevocation {
        kind,
        subject: subject.to_string(),
        cutoff: (kind == RevocationKind::User).then_some(T0),
        created_at: T0,
        expires_at,
    }
}

fn key(kid: &str, created_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_string(),
        alg: "EdDSA".to_string(),
        private_enc: vec![1, 2, 3, kid.len() as u8],
        public_jwk: format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"AAAA"}}"#),
        created_at,
        activate_at: created_at + 3600,
        retire_at: None,
        remove_at: None,
    }
}

fn client(id: &str, created_at: i64) -> Client {
    Client {
        client_id: id.to_string(),
        name: format!("client {id}"),
        secret_hash: h(id),
        roles: vec!["service".to_string(), "reader".to_string()],
        scope: "revocations:read notes".to_string(),
        created_at,
    }
}

// ---- tests --------------------------------------------------------------------------------------

async fn migrate_twice_and_ping(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    s.migrate().await.unwrap();
    s.ping().await.unwrap();
    // Migrating again kept the data.
    assert_eq!(s.count_users().await.unwrap(), 1);
}

async fn users_create_lookup_and_conflict(s: Arc<dyn Store>) {
    assert_eq!(s.count_users().await.unwrap(), 0);
    let mut nu = new_user("u1", "alice@example.com");
    nu.roles = vec!["admin".to_string(), "user".to_string()];
    let u = s.create_user(&nu).await.unwrap();
    assert_eq!(u.id, "u1");
    assert_eq!(u.email, "alice@example.com");
    assert_eq!(u.password_hash, nu.password_hash);
    assert_eq!(u.roles, vec!["admin", "user"]);
    assert!(!u.disabled);
    assert_eq!(u.token_cutoff, None);
    assert_eq!((u.created_at, u.updated_at), (T0, T0));

    assert_eq!(s.user_by_id("u1").await.unwrap(), Some(u.clone()));
    assert_eq!(
        s.user_by_email("alice@example.com").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(s.user_by_id("nope").await.unwrap(), None);
    assert_eq!(s.user_by_email("bob@example.com").await.unwrap(), None);

    // Same email, other id: Conflict, and nothing written.
    let dup = s.create_user(&new_user("u2", "alice@example.com")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // Same id, other email: Conflict too.
    let dup = s.create_user(&new_user("u1", "other@example.com")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(s.count_users().await.unwrap(), 1);
    assert_eq!(s.user_by_id("u2").await.unwrap(), None);

    // Empty role list round-trips as empty.
    let mut nu = new_user("u3", "carol@example.com");
    nu.roles = vec![];
    assert!(s.create_user(&nu).await.unwrap().roles.is_empty());
    assert_eq!(s.count_users().await.unwrap(), 2);
}

async fn list_users_search_and_paging(s: Arc<dyn Store>) {
    for (id, email) in [
        ("u1", "zed@example.com"),
        ("u2", "alice@example.com"),
        ("u3", "bob@other.org"),
        ("u4", "carol@example.com"),
    ] {
        s.create_user(&new_user(id, email)).await.unwrap();
    }
    let emails = |v: Vec<User>| v.into_iter().map(|u| u.email).collect::<Vec<_>>();
    assert_eq!(
        emails(s.list_users(None, 100, 0).await.unwrap()),
        [
            "alice@example.com",
            "bob@other.org",
            "carol@example.com",
            "zed@example.com"
        ]
    );
    assert_eq!(
        emails(s.list_users(None, 2, 1).await.unwrap()),
        ["bob@other.org", "carol@example.com"]
    );
    assert!(s.list_users(None, 10, 10).await.unwrap().is_empty());
    // Case-insensitive substring.
    assert_eq!(
        emails(s.list_users(Some("EXAMPLE"), 100, 0).await.unwrap()),
        ["alice@example.com", "carol@example.com", "zed@example.com"]
    );
    assert_eq!(
        emails(s.list_users(Some("Example"), 1, 1).await.unwrap()),
        ["carol@example.com"]
    );
    assert_eq!(
        emails(s.list_users(Some("other"), 100, 0).await.unwrap()),
        ["bob@other.org"]
    );
    // LIKE wildcards are plain characters here.
    assert!(s.list_users(Some("%"), 100, 0).await.unwrap().is_empty());
    assert!(s.list_users(Some("_"), 100, 0).await.unwrap().is_empty());
}

async fn update_user_fields_and_cutoff_is_max(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    user(&s, "u2").await;
    let u = s
        .update_user(
            "u1",
            &UserUpdate {
                password_hash: Some("$argon2id$new".to_string()),
                roles: Some(vec!["admin".to_string()]),
                disabled: Some(true),
                token_cutoff: Some(T0 + 100),
                updated_at: T0 + 5,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.password_hash, "$argon2id$new");
    assert_eq!(u.roles, vec!["admin"]);
    assert!(u.disabled);
    assert_eq!(u.token_cutoff, Some(T0 + 100));
    assert_eq!(u.updated_at, T0 + 5);
    assert_eq!(u.created_at, T0);
    assert_eq!(s.user_by_id("u1").await.unwrap(), Some(u.clone()));

    // An older cutoff does not move it back; absent fields stay.
    let u = s
        .update_user(
            "u1",
            &UserUpdate {
                token_cutoff: Some(T0 + 50),
                updated_at: T0 + 6,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.token_cutoff, Some(T0 + 100));
    assert_eq!(u.password_hash, "$argon2id$new");
    assert_eq!(u.roles, vec!["admin"]);
    assert!(u.disabled);
    assert_eq!(u.updated_at, T0 + 6);

    // A newer one does; `None` leaves it.
    let u = s
        .update_user(
            "u1",
            &UserUpdate {
                token_cutoff: Some(T0 + 200),
                disabled: Some(false),
                updated_at: T0 + 7,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.token_cutoff, Some(T0 + 200));
    assert!(!u.disabled);
    let u = s
        .update_user(
            "u1",
            &UserUpdate {
                roles: Some(vec![]),
                updated_at: T0 + 8,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.token_cutoff, Some(T0 + 200));
    assert!(u.roles.is_empty());

    // The other user is untouched; an unknown id is None.
    let other = s.user_by_id("u2").await.unwrap().unwrap();
    assert_eq!(other.token_cutoff, None);
    assert_eq!(other.roles, vec!["user"]);
    assert_eq!(
        s.update_user("nope", &UserUpdate::default()).await.unwrap(),
        None
    );
}

async fn delete_user_cascades(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    user(&s, "u2").await;
    session(&s, "s1", "u1", T0, "t1").await;
    session(&s, "s2", "u2", T0, "t2").await;
    assert!(matches!(
        s.rotate_refresh_token(&h("t1"), &h("t1b"), T0 + 1, IDLE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));

    assert!(s.delete_user("u1").await.unwrap());
    assert_eq!(s.user_by_id("u1").await.unwrap(), None);
    assert_eq!(s.session_by_id("s1").await.unwrap(), None);
    assert_eq!(s.refresh_token_session(&h("t1")).await.unwrap(), None);
    assert_eq!(s.refresh_token_session(&h("t1b")).await.unwrap(), None);
    assert_eq!(
        s.rotate_refresh_token(&h("t1b"), &h("t1c"), T0 + 2, IDLE)
            .await
            .unwrap(),
        Rotation::NotFound
    );
    // The email is free again.
    s.create_user(&new_user("u3", "u1@example.com"))
        .await
        .unwrap();
    // Deleting again reports it did not exist; the other user's data stays.
    assert!(!s.delete_user("u1").await.unwrap());
    assert!(s.session_by_id("s2").await.unwrap().is_some());
    assert!(s.refresh_token_session(&h("t2")).await.unwrap().is_some());
}

async fn create_session_is_atomic(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    let sess = session(&s, "s1", "u1", T0, "t1").await;
    assert_eq!(sess.id, "s1");
    assert_eq!(sess.user_id, "u1");
    assert_eq!(sess.client_id, "tessera");
    assert_eq!(sess.user_agent.as_deref(), Some("test-agent"));
    assert_eq!(sess.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(sess.created_at, T0);
    assert_eq!(sess.last_used_at, T0);
    assert_eq!(sess.idle_expires_at, T0 + IDLE);
    assert_eq!(sess.absolute_expires_at, T0 + ABS);
    assert_eq!(sess.revoked_at, None);
    assert_eq!(s.session_by_id("s1").await.unwrap(), Some(sess.clone()));
    assert_eq!(s.refresh_token_session(&h("t1")).await.unwrap(), Some(sess));
    assert_eq!(s.refresh_token_session(&h("zz")).await.unwrap(), None);

    // A duplicate refresh hash fails the whole call: no session s2 is left behind.
    let dup = s
        .create_session(&new_session("s2", "u1", T0), &h("t1"))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(s.session_by_id("s2").await.unwrap(), None);
    // A duplicate session id fails too, and its refresh token is not stored.
    let dup = s
        .create_session(&new_session("s1", "u1", T0), &h("t3"))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(s.refresh_token_session(&h("t3")).await.unwrap(), None);
    // A session for a user that does not exist is refused.
    let orphan = s
        .create_session(&new_session("s4", "ghost", T0), &h("t4"))
        .await;
    assert!(orphan.is_err(), "{orphan:?}");
    assert_eq!(s.session_by_id("s4").await.unwrap(), None);
    // Optional fields may be absent.
    let mut ns = new_session("s5", "u1", T0);
    ns.user_agent = None;
    ns.ip = None;
    let s5 = s.create_session(&ns, &h("t5")).await.unwrap();
    assert_eq!((s5.user_agent, s5.ip), (None, None));
}

async fn live_sessions_filter_and_order(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    user(&s, "u2").await;
    session(&s, "a", "u1", T0, "ta").await;
    session(&s, "b", "u1", T0 + 10, "tb").await;
    session(&s, "c", "u1", T0 + 20, "tc").await;
    session(&s, "other", "u2", T0 + 30, "to").await;
    // d: idle-expired at now; e: absolute-expired at now; f: revoked.
    let mut d = new_session("d", "u1", T0 + 40);
    d.idle_expires_at = T0 + 100;
    s.create_session(&d, &h("td")).await.unwrap();
    let mut e = new_session("e", "u1", T0 + 50);
    e.absolute_expires_at = T0 + 99;
    s.create_session(&e, &h("te")).await.unwrap();
    session(&s, "f", "u1", T0 + 60, "tf").await;
    s.revoke_session("f", T0 + 61, "logout").await.unwrap();

    let ids = |v: Vec<Session>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.live_sessions("u1", T0 + 100).await.unwrap()),
        ["c", "b", "a"]
    );
    // One second earlier d and e were still live.
    assert_eq!(
        ids(s.live_sessions("u1", T0 + 98).await.unwrap()),
        ["e", "d", "c", "b", "a"]
    );
    assert_eq!(
        ids(s.live_sessions("u2", T0 + 100).await.unwrap()),
        ["other"]
    );
    assert!(s.live_sessions("u1", T0 + ABS).await.unwrap().is_empty());
    assert!(s.live_sessions("ghost", T0).await.unwrap().is_empty());
}

/// `rotate_refresh_token_as`: another client's token is `OtherClient` whatever its state,
/// with nothing changed; the right client (or none given) gets what `rotate_refresh_token`
/// gives, with the session's user read alongside.
async fn rotate_as_checks_the_client_and_returns_the_user(s: Arc<dyn Store>) {
    let u = user(&s, "u1").await;
    let before = session(&s, "s1", "u1", T0, "t0").await;
    let rot = |old: &'static str, new: &'static str, at: i64, client: Option<&'static str>| {
        let s = s.clone();
        async move {
            s.rotate_refresh_token_as(&h(old), &h(new), at, IDLE, client)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        rot("unknown", "x", T0 + 1, Some("tessera")).await,
        Refresh::Rotation(Rotation::NotFound, None)
    );
    // Another client: refused before anything changes.
    assert_eq!(
        rot("t0", "t1", T0 + 10, Some("other")).await,
        Refresh::OtherClient(before.clone())
    );
    assert_eq!(s.session_by_id("s1").await.unwrap(), Some(before));
    assert_eq!(s.refresh_token_session(&h("t1")).await.unwrap(), None);
    // The session's own client rotates it and gets the user with it.
    let Refresh::Rotation(Rotation::Rotated(sess), Some(got)) =
        rot("t0", "t1", T0 + 20, Some("tessera")).await
    else {
        panic!("expected Rotated with the user");
    };
    assert_eq!((sess.id.as_str(), sess.last_used_at), ("s1", T0 + 20));
    assert_eq!(got, u);
    // Rotated already: still OtherClient for another client, AlreadyRotated (with the
    // user) for the right one or without a client.
    assert!(matches!(
        rot("t0", "t1", T0 + 21, Some("other")).await,
        Refresh::OtherClient(_)
    ));
    for client in [Some("tessera"), None] {
        match rot("t0", "t1", T0 + 22, client).await {
            Refresh::Rotation(
                Rotation::AlreadyRotated {
                    rotated_at,
                    successor_hash,
                    successor_used: false,
                    ..
                },
                Some(got),
            ) => {
                assert_eq!((rotated_at, successor_hash), (T0 + 20, h("t1")));
                assert_eq!(got, u);
            }
            other => panic!("expected AlreadyRotated, got {other:?}"),
        }
    }
    // A dead session: OtherClient first, then SessionInactive with the user.
    s.revoke_session("s1", T0 + 30, "test").await.unwrap();
    assert!(matches!(
        rot("t1", "t2", T0 + 31, Some("other")).await,
        Refresh::OtherClient(_)
    ));
    assert!(matches!(
        rot("t1", "t2", T0 + 31, Some("tessera")).await,
        Refresh::Rotation(Rotation::SessionInactive(_), Some(_))
    ));
    assert_eq!(s.refresh_token_session(&h("t2")).await.unwrap(), None);
}

async fn rotate_semantics(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    session(&s, "s1", "u1", T0, "t0").await;
    assert_eq!(
        s.rotate_refresh_token(&h("unknown"), &h("x"), T0 + 1, IDLE)
            .await
            .unwrap(),
        Rotation::NotFound
    );

    let Rotation::Rotated(sess) = s
        .rotate_refresh_token(&h("t0"), &h("t1"), T0 + 60, IDLE)
        .await
        .unwrap()
    else {
        panic!("expected Rotated");
    };
    assert_eq!(sess.id, "s1");
    assert_eq!(sess.last_used_at, T0 + 60);
    assert_eq!(sess.idle_expires_at, T0 + 60 + IDLE);
    assert_eq!(sess.absolute_expires_at, T0 + ABS);
    assert_eq!(s.session_by_id("s1").await.unwrap(), Some(sess.clone()));
    assert_eq!(
        s.refresh_token_session(&h("t1")).await.unwrap(),
        Some(sess.clone())
    );

    // The old token again: AlreadyRotated, successor not used yet; nothing changes.
    match s
        .rotate_refresh_token(&h("t0"), &h("t1-retry"), T0 + 65, IDLE)
        .await
        .unwrap()
    {
        Rotation::AlreadyRotated {
            rotated_at,
            successor_hash,
            successor_used,
            session,
        } => {
            assert_eq!(rotated_at, T0 + 60);
            assert_eq!(successor_hash, h("t1"));
            assert!(!successor_used);
            assert_eq!(session, sess);
        }
        other => panic!("expected AlreadyRotated, got {other:?}"),
    }
    // The retry did not store its proposed successor.
    assert_eq!(s.refresh_token_session(&h("t1-retry")).await.unwrap(), None);

    // Rotate the successor; the old token now reports successor_used.
    let Rotation::Rotated(sess2) = s
        .rotate_refresh_token(&h("t1"), &h("t2"), T0 + 120, IDLE)
        .await
        .unwrap()
    else {
        panic!("expected Rotated");
    };
    assert_eq!(sess2.last_used_at, T0 + 120);
    match s
        .rotate_refresh_token(&h("t0"), &h("t9"), T0 + 130, IDLE)
        .await
        .unwrap()
    {
        Rotation::AlreadyRotated {
            rotated_at,
            successor_hash,
            successor_used,
            session,
        } => {
            assert_eq!(rotated_at, T0 + 60);
            assert_eq!(successor_hash, h("t1"));
            assert!(successor_used);
            assert_eq!(session, sess2);
        }
        other => panic!("expected AlreadyRotated, got {other:?}"),
    }
    // A successor hash that already exists is a conflict and changes nothing.
    let clash = s
        .rotate_refresh_token(&h("t2"), &h("t1"), T0 + 140, IDLE)
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert!(matches!(
        s.rotate_refresh_token(&h("t2"), &h("t3"), T0 + 150, IDLE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
}

async fn rotate_idle_expiry_capped_by_absolute(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    session(&s, "s1", "u1", T0, "t0").await;
    // Near the absolute end, the idle expiry cannot extend past it.
    let now = T0 + ABS - 100;
    let mut last = h("t0");
    let mut at = T0;
    // Keep it alive on the way (refresh before each idle expiry).
    while at + IDLE / 2 < now {
        at += IDLE / 2;
        let next = h(&format!("t{at}"));
        assert!(matches!(
            s.rotate_refresh_token(&last, &next, at, IDLE)
                .await
                .unwrap(),
            Rotation::Rotated(_)
        ));
        last = next;
    }
    let Rotation::Rotated(sess) = s
        .rotate_refresh_token(&last, &h("final"), now, IDLE)
        .await
        .unwrap()
    else {
        panic!("expected Rotated");
    };
    assert_eq!(sess.idle_expires_at, T0 + ABS);
    assert_eq!(sess.last_used_at, now);
}

async fn rotate_session_inactive(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    // Revoked.
    session(&s, "rev", "u1", T0, "r0").await;
    s.revoke_session("rev", T0 + 10, "logout").await.unwrap();
    match s
        .rotate_refresh_token(&h("r0"), &h("r1"), T0 + 20, IDLE)
        .await
        .unwrap()
    {
        Rotation::SessionInactive(sess) => {
            assert_eq!(sess.id, "rev");
            assert_eq!(sess.revoked_at, Some(T0 + 10));
            assert_eq!(sess.revoked_reason.as_deref(), Some("logout"));
        }
        other => panic!("expected SessionInactive, got {other:?}"),
    }
    assert_eq!(s.refresh_token_session(&h("r1")).await.unwrap(), None);

    // A revoked session also stops an already-rotated token (no AlreadyRotated leak).
    session(&s, "rev2", "u1", T0, "q0").await;
    assert!(matches!(
        s.rotate_refresh_token(&h("q0"), &h("q1"), T0 + 1, IDLE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    s.revoke_session("rev2", T0 + 2, "reuse_detected")
        .await
        .unwrap();
    assert!(matches!(
        s.rotate_refresh_token(&h("q0"), &h("q2"), T0 + 3, IDLE)
            .await
            .unwrap(),
        Rotation::SessionInactive(_)
    ));

    // Idle-expired: at exactly idle_expires_at it is over; a second before it still works
    // (proving the inactive answer changed nothing).
    let mut idle = new_session("idle", "u1", T0);
    idle.idle_expires_at = T0 + 100;
    s.create_session(&idle, &h("i0")).await.unwrap();
    match s
        .rotate_refresh_token(&h("i0"), &h("i1"), T0 + 100, IDLE)
        .await
        .unwrap()
    {
        Rotation::SessionInactive(sess) => {
            assert_eq!(sess.id, "idle");
            assert_eq!(sess.revoked_at, None);
            assert_eq!(sess.last_used_at, T0);
        }
        other => panic!("expected SessionInactive, got {other:?}"),
    }
    assert_eq!(s.refresh_token_session(&h("i1")).await.unwrap(), None);
    assert!(matches!(
        s.rotate_refresh_token(&h("i0"), &h("i1"), T0 + 99, IDLE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));

    // Absolute-expired, even though the idle expiry is far away.
    let mut abs = new_session("abs", "u1", T0);
    abs.absolute_expires_at = T0 + 50;
    s.create_session(&abs, &h("a0")).await.unwrap();
    assert!(matches!(
        s.rotate_refresh_token(&h("a0"), &h("a1"), T0 + 50, IDLE)
            .await
            .unwrap(),
        Rotation::SessionInactive(ref x) if x.id == "abs"
    ));
    assert!(matches!(
        s.rotate_refresh_token(&h("a0"), &h("a1"), T0 + 10_000, IDLE)
            .await
            .unwrap(),
        Rotation::SessionInactive(_)
    ));
}

async fn rotate_concurrent_exactly_one_winner(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    session(&s, "s1", "u1", T0, "old").await;
    warm_up(&s).await;
    let n = 50;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let s = s.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.rotate_refresh_token(&h("old"), &h("new"), T0 + 5, IDLE)
                .await
        }));
    }
    let (mut rotated, mut already) = (0, 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Rotation::Rotated(sess) => {
                rotated += 1;
                assert_eq!(sess.last_used_at, T0 + 5);
            }
            Rotation::AlreadyRotated {
                successor_hash,
                rotated_at,
                successor_used,
                ..
            } => {
                already += 1;
                assert_eq!(successor_hash, h("new"));
                assert_eq!(rotated_at, T0 + 5);
                assert!(!successor_used);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((rotated, already), (1, 49));
    // Exactly one successor exists and it is usable.
    assert!(matches!(
        s.rotate_refresh_token(&h("new"), &h("newer"), T0 + 6, IDLE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
}

async fn rotate_racing_revocation_is_all_or_nothing(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    warm_up(&s).await;
    let (mut rotated, mut inactive) = (0, 0);
    for i in 0..20 {
        let sid = format!("s{i}");
        let old = h(&format!("old{i}"));
        let new = h(&format!("new{i}"));
        s.create_session(&new_session(&sid, "u1", T0), &old)
            .await
            .unwrap();
        let (a, b) = (s.clone(), s.clone());
        let (old2, new2, sid2) = (old.clone(), new.clone(), sid.clone());
        let rot =
            tokio::spawn(async move { a.rotate_refresh_token(&old2, &new2, T0 + 1, IDLE).await });
        let rev = tokio::spawn(async move { b.revoke_session(&sid2, T0 + 1, "logout").await });
        let rot = rot.await.unwrap().unwrap();
        assert!(
            rev.await.unwrap().unwrap().is_some(),
            "revocation always lands"
        );
        // Rotated <=> the successor exists; the session ends revoked either way.
        let successor = s.refresh_token_session(&new).await.unwrap();
        match rot {
            Rotation::Rotated(_) => {
                rotated += 1;
                assert!(successor.is_some());
            }
            Rotation::SessionInactive(_) => {
                inactive += 1;
                assert!(successor.is_none());
            }
            other => panic!("unexpected {other:?}"),
        }
        let stored = s.session_by_id(&sid).await.unwrap().unwrap();
        assert_eq!(stored.revoked_at, Some(T0 + 1));
        assert!(matches!(
            s.rotate_refresh_token(&old, &h("x"), T0 + 2, IDLE)
                .await
                .unwrap(),
            Rotation::SessionInactive(_)
        ));
    }
    assert_eq!(rotated + inactive, 20);
}

/// Opens the pool's connections ahead of a race, so the racers really overlap instead of
/// queueing behind connection setup.
async fn warm_up(s: &Arc<dyn Store>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                for _ in 0..5 {
                    s.ping().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn revoke_session_idempotent(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    session(&s, "s1", "u1", T0, "t1").await;
    let first = s
        .revoke_session("s1", T0 + 10, "logout")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, "s1");
    assert_eq!(first.revoked_at, Some(T0 + 10));
    assert_eq!(first.revoked_reason.as_deref(), Some("logout"));
    // Second call: None, and the first revocation's time and reason stay.
    assert_eq!(
        s.revoke_session("s1", T0 + 20, "admin").await.unwrap(),
        None
    );
    let stored = s.session_by_id("s1").await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(T0 + 10));
    assert_eq!(stored.revoked_reason.as_deref(), Some("logout"));
    assert!(!stored.is_live(T0 + 11));
    assert_eq!(s.revoke_session("ghost", T0, "logout").await.unwrap(), None);
    // An expired session was not live: None.
    let mut e = new_session("e", "u1", T0);
    e.idle_expires_at = T0 + 5;
    s.create_session(&e, &h("te")).await.unwrap();
    assert_eq!(s.revoke_session("e", T0 + 5, "logout").await.unwrap(), None);
}

async fn revoke_user_sessions_with_keep(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    user(&s, "u2").await;
    session(&s, "a", "u1", T0, "ta").await;
    session(&s, "b", "u1", T0 + 1, "tb").await;
    session(&s, "c", "u1", T0 + 2, "tc").await;
    session(&s, "x", "u2", T0, "tx").await;
    s.revoke_session("c", T0 + 3, "logout").await.unwrap();

    let revoked = s
        .revoke_user_sessions("u1", Some("b"), T0 + 10, "password_change")
        .await
        .unwrap();
    let ids: BTreeSet<_> = revoked.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["a"]));
    assert!(revoked
        .iter()
        .all(|x| x.revoked_at == Some(T0 + 10)
            && x.revoked_reason.as_deref() == Some("password_change")));
    let live: Vec<_> = s
        .live_sessions("u1", T0 + 11)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(live, ["b"]);
    // c kept its earlier reason.
    assert_eq!(
        s.session_by_id("c")
            .await
            .unwrap()
            .unwrap()
            .revoked_reason
            .as_deref(),
        Some("logout")
    );
    // Without keep, the rest goes; then nothing is left to revoke.
    let revoked = s
        .revoke_user_sessions("u1", None, T0 + 20, "logout_all")
        .await
        .unwrap();
    assert_eq!(
        revoked.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert!(s
        .revoke_user_sessions("u1", None, T0 + 30, "logout_all")
        .await
        .unwrap()
        .is_empty());
    // The other user was untouched.
    assert_eq!(s.live_sessions("u2", T0 + 30).await.unwrap().len(), 1);
}

async fn prune_sessions_removes_dead_sessions_and_tokens(s: Arc<dyn Store>) {
    user(&s, "u1").await;
    // idle-expired at T0+100, absolute at T0+200, revoked at T0+50, live.
    let mut a = new_session("idle", "u1", T0);
    a.idle_expires_at = T0 + 100;
    s.create_session(&a, &h("ta")).await.unwrap();
    let mut b = new_session("abs", "u1", T0);
    b.absolute_expires_at = T0 + 200;
    s.create_session(&b, &h("tb")).await.unwrap();
    session(&s, "rev", "u1", T0, "tc").await;
    assert!(matches!(
        s.rotate_refresh_token(&h("tc"), &h("tc2"), T0 + 10, IDLE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    s.revoke_session("rev", T0 + 50, "logout").await.unwrap();
    session(&s, "live", "u1", T0, "td").await;

    // Before T0+50 nothing ended yet.
    assert_eq!(s.prune_sessions(T0 + 50).await.unwrap(), 0);
    assert_eq!(s.prune_sessions(T0 + 101).await.unwrap(), 2);
    assert_eq!(s.session_by_id("idle").await.unwrap(), None);
    assert_eq!(s.session_by_id("rev").await.unwrap(), None);
    assert_eq!(s.refresh_token_session(&h("ta")).await.unwrap(), None);
    assert_eq!(s.refresh_token_session(&h("tc")).await.unwrap(), None);
    assert_eq!(s.refresh_token_session(&h("tc2")).await.unwrap(), None);
    assert!(s.session_by_id("abs").await.unwrap().is_some());
    assert_eq!(s.prune_sessions(T0 + 201).await.unwrap(), 1);
    assert!(s.session_by_id("live").await.unwrap().is_some());
    assert!(s.refresh_token_session(&h("td")).await.unwrap().is_some());
}

async fn revocation_cursors_and_filtering(s: Arc<dyn Store>) {
    assert_eq!(s.latest_revocation_cursor().await.unwrap(), 0);
    assert_eq!(s.oldest_revocation_cursor().await.unwrap(), None);
    assert!(s.revocations_since(0, T0, 100).await.unwrap().is_empty());

    let a = s
        .append_revocation(&revocation(RevocationKind::Session, "s1", T0 + 100))
        .await
        .unwrap();
    let b = s
        .append_revocation(&revocation(RevocationKind::User, "u1", T0 + 1000))
        .await
        .unwrap();
    let c = s
        .append_revocation(&revocation(RevocationKind::Token, "jti-1", T0 + 500))
        .await
        .unwrap();
    assert!(a.cursor > 0 && a.cursor < b.cursor && b.cursor < c.cursor);
    assert_eq!(a.kind, RevocationKind::Session);
    assert_eq!(a.subject, "s1");
    assert_eq!(a.cutoff, None);
    assert_eq!(b.cutoff, Some(T0));
    assert_eq!((c.created_at, c.expires_at), (T0, T0 + 500));
    assert_eq!(s.latest_revocation_cursor().await.unwrap(), c.cursor);
    assert_eq!(s.oldest_revocation_cursor().await.unwrap(), Some(a.cursor));

    assert_eq!(
        s.revocations_since(0, T0, 100).await.unwrap(),
        vec![a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(
        s.revocations_since(a.cursor, T0, 100).await.unwrap(),
        vec![b.clone(), c.clone()]
    );
    assert_eq!(
        s.revocations_since(0, T0, 2).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(s
        .revocations_since(c.cursor, T0, 100)
        .await
        .unwrap()
        .is_empty());
    // Expired events are not served (a expires at T0+100).
    assert_eq!(
        s.revocations_since(0, T0 + 101, 100).await.unwrap(),
        vec![b.clone(), c.clone()]
    );

    // Single-token revocation (RFC 7009).
    assert!(s.is_token_revoked("jti-1", T0).await.unwrap());
    assert!(!s.is_token_revoked("jti-2", T0).await.unwrap());
    assert!(!s.is_token_revoked("s1", T0).await.unwrap()); // a session, not a token
    assert!(!s.is_token_revoked("jti-1", T0 + 501).await.unwrap());

    // Pruning removes only expired events; cursors are never reused afterwards.
    assert_eq!(s.prune_revocations(T0 + 100).await.unwrap(), 0);
    assert_eq!(s.prune_revocations(T0 + 600).await.unwrap(), 2);
    assert_eq!(s.oldest_revocation_cursor().await.unwrap(), Some(b.cursor));
    assert_eq!(s.prune_revocations(T0 + 2000).await.unwrap(), 1);
    assert_eq!(s.oldest_revocation_cursor().await.unwrap(), None);
    assert_eq!(s.latest_revocation_cursor().await.unwrap(), c.cursor);
    let d = s
        .append_revocation(&revocation(RevocationKind::Session, "s2", T0 + 5000))
        .await
        .unwrap();
    assert!(d.cursor > c.cursor);
    assert_eq!(s.latest_revocation_cursor().await.unwrap(), d.cursor);
    assert_eq!(
        s.revocations_since(0, T0 + 2000, 10).await.unwrap(),
        vec![d]
    );
}

async fn revocation_cursors_concurrent_appenders(s: Arc<dyn Store>) {
    warm_up(&s).await;
    let n = 40;
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.append_revocation(&revocation(
                RevocationKind::Session,
                &format!("s{i}"),
                T0 + 100,
            ))
            .await
            .unwrap()
            .cursor
        }));
    }
    let mut cursors = BTreeSet::new();
    for t in tasks {
        assert!(cursors.insert(t.await.unwrap()), "duplicate cursor");
    }
    assert_eq!(cursors.len(), n);
    let latest = s.latest_revocation_cursor().await.unwrap();
    assert_eq!(Some(&latest), cursors.last());
    let feed = s.revocations_since(0, T0, 1000).await.unwrap();
    let fed: Vec<i64> = feed.iter().map(|r| r.cursor).collect();
    assert_eq!(fed, cursors.into_iter().collect::<Vec<_>>());
    assert!(fed.windows(2).all(|w| w[0] < w[1]));
}

async fn signing_keys_schedule(s: Arc<dyn Store>) {
    assert!(s.list_keys().await.unwrap().is_empty());
    let k2 = key("k2", T0 + 10);
    let k1 = key("k1", T0);
    s.insert_key(&k2).await.unwrap();
    s.insert_key(&k1).await.unwrap();
    let dup = s.insert_key(&key("k1", T0 + 99)).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(s.list_keys().await.unwrap(), vec![k1.clone(), k2.clone()]);

    s.update_key_schedule("k1", Some(T0 + 100), None)
        .await
        .unwrap();
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys[0].retire_at, Some(T0 + 100));
    assert_eq!(keys[0].remove_at, None);
    s.update_key_schedule("k1", None, Some(T0 + 200))
        .await
        .unwrap();
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys[0].retire_at, Some(T0 + 100));
    assert_eq!(keys[0].remove_at, Some(T0 + 200));
    assert_eq!(keys[1], k2);
    // Unknown kid: no error, nothing changes.
    s.update_key_schedule("ghost", Some(1), Some(2))
        .await
        .unwrap();
    assert_eq!(s.list_keys().await.unwrap().len(), 2);

    assert_eq!(s.prune_keys(T0 + 200).await.unwrap(), 0);
    assert_eq!(s.prune_keys(T0 + 201).await.unwrap(), 1);
    assert_eq!(s.list_keys().await.unwrap(), vec![k2]);
}

async fn clients_crud(s: Arc<dyn Store>) {
    let b = client("svc-b", T0);
    let a = client("svc-a", T0 + 5);
    s.create_client(&a).await.unwrap();
    s.create_client(&b).await.unwrap();
    let dup = s.create_client(&client("svc-a", T0)).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(s.client_by_id("svc-a").await.unwrap(), Some(a.clone()));
    assert_eq!(s.client_by_id("nope").await.unwrap(), None);
    assert_eq!(s.list_clients().await.unwrap(), vec![b.clone(), a.clone()]);
    assert!(s.delete_client("svc-b").await.unwrap());
    assert!(!s.delete_client("svc-b").await.unwrap());
    assert_eq!(s.list_clients().await.unwrap(), vec![a]);
}

async fn throttle_window_restart(s: Arc<dyn Store>) {
    let k = "acct:alice@example.com";
    assert_eq!(s.throttle_get(k).await.unwrap(), None);
    let t = s.throttle_hit(k, T0, 300).await.unwrap();
    assert_eq!(
        t,
        Throttle {
            failures: 1,
            window_start: T0,
            locked_until: 0
        }
    );
    let t = s.throttle_hit(k, T0 + 100, 300).await.unwrap();
    assert_eq!((t.failures, t.window_start), (2, T0));
    // Exactly at the window's edge it still counts.
    let t = s.throttle_hit(k, T0 + 300, 300).await.unwrap();
    assert_eq!((t.failures, t.window_start), (3, T0));
    s.throttle_lock(k, T0 + 360).await.unwrap();
    assert_eq!(
        s.throttle_get(k).await.unwrap(),
        Some(Throttle {
            failures: 3,
            window_start: T0,
            locked_until: T0 + 360
        })
    );
    // Past the window: restart at 1 with a new window start.
    let t = s.throttle_hit(k, T0 + 301, 300).await.unwrap();
    assert_eq!((t.failures, t.window_start), (1, T0 + 301));
    // Other keys are independent.
    let other = s.throttle_hit("ip:10.0.0.1", T0, 300).await.unwrap();
    assert_eq!(other.failures, 1);
    s.throttle_clear(k).await.unwrap();
    assert_eq!(s.throttle_get(k).await.unwrap(), None);
    assert!(s.throttle_get("ip:10.0.0.1").await.unwrap().is_some());
    // Locking a key with no state creates it.
    s.throttle_lock("ip:10.0.0.2", T0 + 5).await.unwrap();
    assert_eq!(
        s.throttle_get("ip:10.0.0.2")
            .await
            .unwrap()
            .unwrap()
            .locked_until,
        T0 + 5
    );
    s.throttle_clear("never-seen").await.unwrap();
}

async fn throttle_concurrent_hits_not_lost(s: Arc<dyn Store>) {
    warm_up(&s).await;
    let n = 20;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.throttle_hit("ip:1.2.3.4", T0, 300)
                .await
                .unwrap()
                .failures
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(seen, (1..=n).collect::<BTreeSet<i64>>());
}

async fn lease_one_holder_at_a_time(s: Arc<dyn Store>) {
    // Free: taken. Held: refused to others, renewed by the holder. Expired: taken over.
    assert!(s.try_lease("job", "a", T0, 60).await.unwrap());
    assert!(!s.try_lease("job", "b", T0 + 59, 60).await.unwrap());
    assert!(s.try_lease("job", "a", T0 + 30, 60).await.unwrap());
    assert!(!s.try_lease("job", "b", T0 + 89, 60).await.unwrap());
    assert!(s.try_lease("job", "b", T0 + 90, 60).await.unwrap());
    assert!(!s.try_lease("job", "a", T0 + 100, 60).await.unwrap());
    assert!(s.try_lease("other", "a", T0 + 100, 60).await.unwrap());
    // Racing claimants of a free lease: exactly one wins.
    warm_up(&s).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.try_lease("race", &format!("node{i}"), T0, 60)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn audit_filter_and_paging(s: Arc<dyn Store>) {
    let ev = |at: i64, event: &str, actor: Option<&str>, subject: Option<&str>| NewAuditEvent {
        at,
        event: event.to_string(),
        actor: actor.map(str::to_string),
        subject: subject.map(str::to_string),
        ip: Some("10.0.0.1".to_string()),
        detail: serde_json::json!({ "n": at - T0, "nested": { "ok": true } }),
    };
    s.audit(&ev(T0, "login", Some("u1"), Some("s1")))
        .await
        .unwrap();
    s.audit(&ev(T0 + 1, "login_failed", None, Some("u2")))
        .await
        .unwrap();
    s.audit(&ev(
        T0 + 2,
        "admin.user_disabled",
        Some("admin"),
        Some("u1"),
    ))
    .await
    .unwrap();
    s.audit(&ev(T0 + 3, "login", Some("u2"), Some("s2")))
        .await
        .unwrap();
    let mut e = ev(T0 + 4, "refresh_reuse", None, None);
    e.ip = None;
    e.detail = serde_json::json!({});
    s.audit(&e).await.unwrap();

    let all = s
        .list_audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].event, "refresh_reuse");
    assert_eq!((all[0].actor.clone(), all[0].ip.clone()), (None, None));
    assert_eq!(all[0].detail, serde_json::json!({}));
    assert_eq!(all[4].event, "login");
    assert_eq!(all[4].at, T0);
    assert_eq!(
        all[4].detail,
        serde_json::json!({ "n": 0, "nested": { "ok": true } })
    );
    assert_eq!(all[4].actor.as_deref(), Some("u1"));
    assert_eq!(all[4].subject.as_deref(), Some("s1"));
    assert_eq!(all[4].ip.as_deref(), Some("10.0.0.1"));

    let events = |v: &[AuditEvent]| v.iter().map(|e| e.event.clone()).collect::<Vec<_>>();
    // By user: as actor or as subject.
    let u1 = s
        .list_audit(&AuditFilter {
            user: Some("u1".to_string()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events(&u1), ["admin.user_disabled", "login"]);
    let u2 = s
        .list_audit(&AuditFilter {
            user: Some("u2".to_string()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events(&u2), ["login", "login_failed"]);
    // By event, and both filters together.
    let logins = s
        .list_audit(&AuditFilter {
            event: Some("login".to_string()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        logins.iter().map(|e| e.at).collect::<Vec<_>>(),
        [T0 + 3, T0]
    );
    let both = s
        .list_audit(&AuditFilter {
            user: Some("u2".to_string()),
            event: Some("login".to_string()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].at, T0 + 3);

    // Paging: pages of 2 via before_id walk the whole log exactly once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .list_audit(&AuditFilter {
                before_id: before,
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        before = page.last().map(|e| e.id);
        seen.extend(page);
    }
    assert_eq!(seen, all);
    // Paging combined with a filter.
    let page = s
        .list_audit(&AuditFilter {
            event: Some("login".to_string()),
            before_id: Some(logins[0].id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page, vec![logins[1].clone()]);
}

async fn notices_on_revocation_and_keys(s: Arc<dyn Store>) {
    let mut rx = s.subscribe();
    let r = s
        .append_revocation(&revocation(RevocationKind::Session, "s1", T0 + 100))
        .await
        .unwrap();
    wait_for(&mut rx, StoreNotice::Revocation(r.cursor)).await;
    s.insert_key(&key("k1", T0)).await.unwrap();
    wait_for(&mut rx, StoreNotice::KeysChanged).await;
    s.update_key_schedule("k1", Some(T0 + 1), None)
        .await
        .unwrap();
    wait_for(&mut rx, StoreNotice::KeysChanged).await;
    // A second subscriber sees later events too.
    let mut rx2 = s.subscribe();
    let r2 = s
        .append_revocation(&revocation(RevocationKind::Token, "j", T0 + 100))
        .await
        .unwrap();
    wait_for(&mut rx, StoreNotice::Revocation(r2.cursor)).await;
    wait_for(&mut rx2, StoreNotice::Revocation(r2.cursor)).await;
}

/// Receives until `want` arrives (other notices, e.g. a listener's resync, are skipped).
async fn wait_for(rx: &mut tokio::sync::broadcast::Receiver<StoreNotice>, want: StoreNotice) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(n)) if n == want => return,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("notice channel: {e}"),
            Err(_) => panic!("no {want:?} within 10 s"),
        }
    }
}

async fn revocation_cursor_never_visible_before_predecessor(s: Arc<dyn Store>) {
    warm_up(&s).await;
    // Writers append concurrently while readers keep reading the feed: every read must be a
    // gap-free prefix 1..=k, i.e. no reader ever saw cursor N+1 without N.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    s.append_revocation(&revocation(
                        RevocationKind::Session,
                        &format!("w{w}-{i}"),
                        T0 + 100,
                    ))
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut reads = 0;
                loop {
                    let feed = s.revocations_since(0, T0, 1000).await.unwrap();
                    for (i, r) in feed.iter().enumerate() {
                        assert_eq!(r.cursor, i as i64 + 1, "gap in the feed");
                    }
                    reads += 1;
                    if feed.len() == 100 {
                        return reads;
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for r in readers {
        assert!(r.await.unwrap() >= 1);
    }
    assert_eq!(s.latest_revocation_cursor().await.unwrap(), 100);
}

async fn import_refuses_non_empty_target(s: Arc<dyn Store>) {
    // An empty snapshot into an empty store is fine and changes nothing.
    s.import(&Snapshot::default()).await.unwrap();
    assert_eq!(s.export().await.unwrap(), Snapshot::default());
    let mut snap = Snapshot::default();
    snap.users.push(
        s.create_user(&new_user("u1", "a@example.com"))
            .await
            .unwrap(),
    );
    // Non-empty target: Conflict, nothing written (u2 would be new).
    let mut other = Snapshot::default();
    other.users.push(User {
        id: "u2".to_string(),
        ..snap.users[0].clone()
    });
    other.users[0].email = "b@example.com".to_string();
    let err = s.import(&other).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    assert_eq!(s.user_by_id("u2").await.unwrap(), None);
    assert_eq!(s.export().await.unwrap(), snap);
}

// ---- moving an installation between engines ------------------------------------------------------

/// Fills a store with one of everything, including rotated, revoked and pruned state.
async fn populate(s: &Arc<dyn Store>) {
    user(s, "u1").await;
    let mut nu = new_user("u2", "admin@example.com");
    nu.roles = vec!["admin".to_string(), "user".to_string()];
    s.create_user(&nu).await.unwrap();
    s.update_user(
        "u1",
        &UserUpdate {
            token_cutoff: Some(T0 + 5),
            disabled: Some(true),
            updated_at: T0 + 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    session(s, "s1", "u2", T0, "t0").await;
    assert!(matches!(
        s.rotate_refresh_token(&h("t0"), &h("t1"), T0 + 10, IDLE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    let mut ns = new_session("s2", "u2", T0 + 1);
    ns.user_agent = None;
    s.create_session(&ns, &h("r0")).await.unwrap();
    s.revoke_session("s2", T0 + 2, "logout").await.unwrap();
    s.insert_key(&key("k1", T0)).await.unwrap();
    s.insert_key(&key("k2", T0 + 50)).await.unwrap();
    s.update_key_schedule("k1", Some(T0 + 60), Some(T0 + 9000))
        .await
        .unwrap();
    s.create_client(&client("svc", T0)).await.unwrap();
    s.append_revocation(&revocation(RevocationKind::Token, "j0", T0 + 1))
        .await
        .unwrap();
    s.append_revocation(&revocation(RevocationKind::Session, "s2", T0 + 5000))
        .await
        .unwrap();
    s.append_revocation(&revocation(RevocationKind::User, "u1", T0 + 5000))
        .await
        .unwrap();
    // Cursor 1 pruned: the target must still continue after 3, not after the rows it got.
    assert_eq!(s.prune_revocations(T0 + 2).await.unwrap(), 1);
    for (i, e) in ["login", "session_revoked", "admin.user_disabled"]
        .iter()
        .enumerate()
    {
        s.audit(&NewAuditEvent {
            at: T0 + i as i64,
            event: e.to_string(),
            actor: Some("u2".to_string()),
            subject: Some("u1".to_string()),
            ip: None,
            detail: serde_json::json!({ "i": i }),
        })
        .await
        .unwrap();
    }
}

async fn copy_and_continue(from: Arc<dyn Store>, to: Arc<dyn Store>) {
    populate(&from).await;
    let counts = copy_all(&*from, &*to).await.unwrap();
    assert_eq!(
        counts,
        SnapshotCounts {
            users: 2,
            sessions: 2,
            refresh_tokens: 3,
            keys: 2,
            clients: 1,
            revocations: 2,
            audit: 3
        }
    );
    let source = from.export().await.unwrap();
    assert_eq!(to.export().await.unwrap(), source);
    assert_eq!(source.latest_revocation_cursor, 3);

    // Nobody was logged out: the copied refresh token rotates on the target, and reuse of
    // the already-rotated one is still recognised.
    match to
        .rotate_refresh_token(&h("t1"), &h("t2"), T0 + 20, IDLE)
        .await
        .unwrap()
    {
        Rotation::Rotated(sess) => assert_eq!(sess.id, "s1"),
        other => panic!("expected Rotated, got {other:?}"),
    }
    match to
        .rotate_refresh_token(&h("t0"), &h("tx"), T0 + 21, IDLE)
        .await
        .unwrap()
    {
        Rotation::AlreadyRotated {
            successor_hash,
            successor_used,
            rotated_at,
            ..
        } => {
            assert_eq!(successor_hash, h("t1"));
            assert!(successor_used);
            assert_eq!(rotated_at, T0 + 10);
        }
        other => panic!("expected AlreadyRotated, got {other:?}"),
    }
    assert!(matches!(
        to.rotate_refresh_token(&h("r0"), &h("r1"), T0 + 22, IDLE)
            .await
            .unwrap(),
        Rotation::SessionInactive(_)
    ));
    // Cursors and audit ids continue where the source stopped.
    let next = to
        .append_revocation(&revocation(RevocationKind::Session, "s9", T0 + 5000))
        .await
        .unwrap();
    assert_eq!(next.cursor, 4);
    to.audit(&NewAuditEvent {
        at: T0 + 99,
        event: "after_copy".to_string(),
        actor: None,
        subject: None,
        ip: None,
        detail: serde_json::json!({}),
    })
    .await
    .unwrap();
    let newest = to
        .list_audit(&AuditFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(newest[0].event, "after_copy");
    assert!(newest[0].id > source.audit.iter().map(|a| a.id).max().unwrap());
    // Unique constraints came along: the copied email is taken on the target.
    assert!(matches!(
        to.create_user(&new_user("u9", "u1@example.com")).await,
        Err(StoreError::Conflict(_))
    ));
    // A second copy into the now non-empty target is refused.
    assert!(matches!(
        copy_all(&*from, &*to).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_sqlite_to_postgres() {
    let from = sqlite_harness().await;
    let Some(to) = postgres_harness().await else {
        return;
    };
    copy_and_continue(from.store.clone(), to.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_postgres_to_sqlite() {
    let Some(from) = postgres_harness().await else {
        return;
    };
    let to = sqlite_harness().await;
    copy_and_continue(from.store.clone(), to.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_sqlite_to_sqlite() {
    let from = sqlite_harness().await;
    let to = sqlite_harness().await;
    copy_and_continue(from.store.clone(), to.store.clone()).await;
}

// ---- engine-specific behaviour ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notices_reach_other_nodes_only_in_their_schema() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let a = schema.store().await.unwrap();
    a.migrate().await.unwrap();
    let b = schema.store().await.unwrap(); // a second node on the same database
    let Some(other_schema) = TestSchema::create().await else {
        return;
    };
    let c = other_schema.store().await.unwrap();
    c.migrate().await.unwrap();

    let mut rx = a.subscribe();
    // The listener announces itself with a resync notice (nothing appended yet: cursor 0);
    // from then on every notice is live and in commit order.
    wait_for(&mut rx, StoreNotice::Revocation(0)).await;
    let r = b
        .append_revocation(&revocation(RevocationKind::Session, "s1", T0 + 100))
        .await
        .unwrap();
    b.append_revocation(&revocation(RevocationKind::Session, "s2", T0 + 100))
        .await
        .unwrap();
    wait_for(&mut rx, StoreNotice::Revocation(r.cursor + 1)).await;
    // Another installation's cursor 1 must not reach this one.
    c.append_revocation(&revocation(RevocationKind::Session, "x", T0 + 100))
        .await
        .unwrap();
    b.insert_key(&key("k1", T0)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(StoreNotice::KeysChanged)) => break,
            Ok(Ok(StoreNotice::Revocation(n))) => {
                assert!(n > r.cursor, "foreign or stale notice {n}")
            }
            other => panic!("no KeysChanged: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_reconnects_after_connection_loss() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let a = schema.store().await.unwrap();
    a.migrate().await.unwrap();
    let b = schema.store().await.unwrap();
    let mut rx = a.subscribe();
    let r1 = b
        .append_revocation(&revocation(RevocationKind::Session, "s1", T0 + 100))
        .await
        .unwrap();
    wait_for(&mut rx, StoreNotice::Revocation(r1.cursor)).await;
    // Kill every LISTEN connection (other tests' listeners reconnect and resync too).
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()",
    )
    .fetch_all(b.pool())
    .await
    .unwrap();
    assert!(!killed.is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r2 = b
        .append_revocation(&revocation(RevocationKind::Session, "s2", T0 + 100))
        .await
        .unwrap();
    // Either the live notice or the resync after reconnecting carries cursor 2.
    wait_for(&mut rx, StoreNotice::Revocation(r2.cursor)).await;
    let r3 = b
        .append_revocation(&revocation(RevocationKind::Session, "s3", T0 + 100))
        .await
        .unwrap();
    wait_for(&mut rx, StoreNotice::Revocation(r3.cursor)).await;
}

#[tokio::test]
async fn unreachable_or_closed_databases_are_unavailable() {
    let err = connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = connect("mysql://x").await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let s = tessera_store::sqlite::SqliteStore::connect(&url)
        .await
        .unwrap();
    s.migrate().await.unwrap();
    s.pool().close().await;
    let err = s.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // A directory that does not exist cannot hold the database file.
    let err = connect(&format!(
        "sqlite://{}",
        dir.path().join("missing/dir/s.db").display()
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Database(_)),
        "{err:?}"
    );

    if let Some(schema) = TestSchema::create().await {
        let p = schema.store().await.unwrap();
        p.pool().close().await;
        let err = p.ping().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let err = PostgresStore::connect_with_schema(DEFAULT_TEST_POSTGRES_URL, "bad;name")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    }
}

#[tokio::test]
async fn sqlite_in_memory_works_on_one_connection() {
    let s = connect("sqlite::memory:").await.unwrap();
    s.migrate().await.unwrap();
    user(&s, "u1").await;
    session(&s, "s1", "u1", T0, "t0").await;
    // Every statement must see the same in-memory database (one pooled connection).
    for _ in 0..5 {
        assert!(s.user_by_id("u1").await.unwrap().is_some());
    }
    assert!(matches!(
        s.rotate_refresh_token(&h("t0"), &h("t1"), T0 + 1, IDLE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
}

/// The WAL checkpoint task of a SQLite file (SQLite's own commit checkpoints are off): under
/// steady writes the WAL is restarted (cut back to the restart length) instead of growing
/// without bound, once idle it is truncated to nothing, and the task stops with the store
/// (when every connection, its own included, has closed, SQLite deletes the WAL file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_checkpoint_task_bounds_truncates_and_stops() {
    use tessera_store::sqlite::{SqliteStore, WalCheckpoint};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("wal.db").display());
    let wal = dir.path().join("wal.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let config = WalCheckpoint {
        interval: Duration::from_millis(50),
        restart_frames: 64,
    };
    let store = SqliteStore::connect_with_checkpoint(&url, config)
        .await
        .unwrap();
    let s: Arc<dyn Store> = Arc::new(store.clone());
    s.migrate().await.unwrap();
    user(&s, "u1").await;

    // Rotation chains from 4 tasks until 4,000 rotations are done (several pages each).
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, done) = (s.clone(), done.clone());
        writers.push(tokio::spawn(async move {
            let sid = format!("s{w}");
            session(&s, &sid, "u1", T0, &format!("{w}-0")).await;
            for i in 0.. {
                if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 4000 {
                    break;
                }
                let r = s
                    .rotate_refresh_token(
                        &h(&format!("{w}-{i}")),
                        &h(&format!("{w}-{}", i + 1)),
                        T0 + 1,
                        IDLE,
                    )
                    .await
                    .unwrap();
                assert!(matches!(r, Rotation::Rotated(_)), "{r:?}");
            }
        }));
    }
    // Unbounded, the WAL would hold every page written (4,000 rotations of 4+ pages, over
    // 64 MiB) and never shrink. Bounded, it is cut back at every restart. How long it gets
    // in between depends on the disk (writes go on during a checkpoint's fsync), so only the
    // restarts are counted, not a size.
    let (mut max, mut restarts, mut last) = (0, 0, 0);
    while writers.iter().any(|w| !w.is_finished()) {
        let len = wal_len();
        restarts += usize::from(len < last);
        (max, last) = (max.max(len), len);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        restarts >= 2,
        "the WAL restarted {restarts} times (max {max} bytes)"
    );
    // Idle for an interval: truncated.
    let mut waited = 0;
    while wal_len() > 0 {
        assert!(
            waited < 100,
            "WAL not truncated when idle: {} bytes",
            wal_len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    // Everything written is in the database file.
    assert_eq!(s.count_users().await.unwrap(), 1);
    assert!(s.session_by_id("s3").await.unwrap().is_some());

    // Dropping the last handle stops the task and every connection closes: no file of the
    // database is open any more. (Whether SQLite then deletes the WAL is not asserted: the
    // last connection deletes it only if it gets the exclusive lock, and connections closing
    // at the same time on their worker threads can each still see the other's lock.)
    drop(s);
    drop(store);
    let mut waited = 0;
    loop {
        let open = open_files_under(dir.path());
        if open.is_empty() {
            break;
        }
        assert!(
            waited < 500,
            "connections stayed open after the store was dropped: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    // And what was written is there for the next process.
    let store = SqliteStore::connect(&url).await.unwrap();
    assert!(store.session_by_id("s3").await.unwrap().is_some());
}

/// The files under `dir` this process has open (`/proc/self/fd`; Linux, where the tests run).
fn open_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .collect()
}

/// A write transaction whose caller goes away (a client disconnecting mid-request drops the
/// handler's future) must never leave the write lock behind: sqlx acknowledges a custom
/// `BEGIN IMMEDIATE` before it checks the connection is in a transaction, and a future
/// dropped in between left the transaction open on the writer connection, so every later
/// write failed with `database is locked` after the busy timeout (seen after `wrk` ended a
/// refresh round, on main too: the logins of the next round failed with 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cancelled_write_transactions_release_the_write_lock() {
    let h_ = sqlite_harness().await;
    let s = h_.store.clone();
    for i in 0..3000u64 {
        // A rotation (of an unknown token: still BEGIN IMMEDIATE first) cut off after
        // 0-60 µs.
        let cut = Duration::from_micros(i % 61);
        let (old, new) = (h(&format!("c-{i}")), h(&format!("d-{i}")));
        let fut = s.rotate_refresh_token(&old, &new, T0 + 1, IDLE);
        if let Ok(r) = tokio::time::timeout(cut, fut).await {
            assert_eq!(r.unwrap(), Rotation::NotFound);
        }
        if i % 100 == 99 {
            // A write outside the writer pool gets the write lock within 2 s, and so does a
            // write transaction on the writer.
            let r = tokio::time::timeout(Duration::from_secs(2), s.throttle_hit("ip:test", T0, 60))
                .await;
            assert!(
                matches!(r, Ok(Ok(_))),
                "write lock left held after {i}: {r:?}"
            );
            let r = s.rotate_refresh_token(&old, &new, T0 + 1, IDLE).await;
            assert_eq!(r.unwrap(), Rotation::NotFound);
        }
    }
}
