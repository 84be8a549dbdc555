-- Keys, their secrets (digests only) and users.
CREATE TABLE apikey_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    tech_name    TEXT    NOT NULL UNIQUE,
    user_name    TEXT    NOT NULL,
    group_names  TEXT    NOT NULL DEFAULT '[]',
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    stub         TEXT    NOT NULL,
    expires_at   INTEGER NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NULL
);

CREATE TABLE apikey_secrets (
    digest      BLOB    PRIMARY KEY NOT NULL,
    key_id      INTEGER NOT NULL REFERENCES apikey_keys (id) ON DELETE CASCADE,
    valid_until INTEGER NULL
);
CREATE INDEX apikey_secrets_key_id ON apikey_secrets (key_id);

CREATE TABLE apikey_users (
    name   TEXT    PRIMARY KEY NOT NULL,
    active BOOLEAN NOT NULL
);

-- What changed, for other processes polling `PRAGMA data_version`.
CREATE TABLE apikey_changes (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT    NOT NULL,
    name TEXT    NOT NULL,
    at   INTEGER NOT NULL
);
