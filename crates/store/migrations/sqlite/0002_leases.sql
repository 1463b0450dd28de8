-- Named, time-limited leases (Store::try_lease): lets one of several server nodes claim a
-- periodic job (scheduled key rotation) without the nodes talking to each other.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY NOT NULL,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
