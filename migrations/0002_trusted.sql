-- Nodes the operator trusts, served as a server-signed list at /v1/trusted. Managed with
-- `weft-bootstrap trust add|remove|list`, which may run while the server does (SQLite WAL).
CREATE TABLE trusted (
    peer_id       BLOB PRIMARY KEY NOT NULL,
    note          TEXT NOT NULL DEFAULT '',
    added_unix_ms INTEGER NOT NULL
);
