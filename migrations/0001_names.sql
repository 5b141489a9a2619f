-- Names: one row per live (or not yet pruned) name. The owner-signed record is kept whole, so
-- answers carry the owner's signature; addr/net64/net48 are the quota buckets it is charged to.
CREATE TABLE names (
    name            TEXT PRIMARY KEY NOT NULL,
    value           BLOB NOT NULL,
    owner           BLOB NOT NULL,
    seq             INTEGER NOT NULL,
    unix_ms         INTEGER NOT NULL,
    signature       BLOB NOT NULL,
    addr            BLOB NOT NULL,
    net64           BLOB,
    net48           BLOB,
    expires_unix_ms INTEGER NOT NULL
);
CREATE INDEX names_addr ON names (addr, expires_unix_ms);
CREATE INDEX names_net64 ON names (net64, expires_unix_ms);
CREATE INDEX names_net48 ON names (net48, expires_unix_ms);
CREATE INDEX names_expiry ON names (expires_unix_ms);
