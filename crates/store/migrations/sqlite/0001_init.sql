-- Tessera store, SQLite engine. Times are Unix seconds; hashes are raw SHA-256 bytes.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY NOT NULL,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    roles         TEXT    NOT NULL DEFAULT '[]', -- JSON array of role names
    disabled      INTEGER NOT NULL DEFAULT 0,
    token_cutoff  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id                  TEXT    PRIMARY KEY NOT NULL,
    user_id             TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id           TEXT    NOT NULL,
    user_agent          TEXT,
    ip                  TEXT,
    created_at          INTEGER NOT NULL,
    last_used_at        INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER,
    revoked_reason      TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_idle_expires_at ON sessions (idle_expires_at);
CREATE INDEX sessions_absolute_expires_at ON sessions (absolute_expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);

CREATE TABLE refresh_tokens (
    hash           BLOB    PRIMARY KEY NOT NULL,
    session_id     TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    rotated_at     INTEGER,
    successor_hash BLOB
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- One-row counter handing out revocation cursors inside the appending transaction, so a
-- cursor is never reused after pruning and N+1 is never committed before N.
CREATE TABLE revocation_counter (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO revocation_counter (id, n) VALUES (1, 0);

CREATE TABLE revocations (
    cursor     INTEGER PRIMARY KEY NOT NULL,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    cutoff     INTEGER,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revocations_expires_at ON revocations (expires_at);
CREATE INDEX revocations_kind_subject ON revocations (kind, subject);

CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY NOT NULL,
    alg         TEXT    NOT NULL,
    private_enc BLOB    NOT NULL,
    public_jwk  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    activate_at INTEGER NOT NULL,
    retire_at   INTEGER,
    remove_at   INTEGER
);

CREATE TABLE clients (
    client_id   TEXT    PRIMARY KEY NOT NULL,
    name        TEXT    NOT NULL,
    secret_hash BLOB    NOT NULL,
    roles       TEXT    NOT NULL DEFAULT '[]', -- JSON array of role names
    scope       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE throttle (
    key          TEXT    PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    event   TEXT    NOT NULL,
    actor   TEXT,
    subject TEXT,
    ip      TEXT,
    detail  TEXT    NOT NULL DEFAULT '{}' -- JSON object
);
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_subject ON audit (subject, id);
CREATE INDEX audit_event ON audit (event, id);
