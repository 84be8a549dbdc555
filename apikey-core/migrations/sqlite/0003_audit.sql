-- Every admin change, written in the transaction that makes it. Never a secret or a digest.
CREATE TABLE apikey_audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    summary TEXT    NOT NULL
);
CREATE INDEX apikey_audit_name ON apikey_audit (name, at);
CREATE INDEX apikey_audit_at ON apikey_audit (at);
