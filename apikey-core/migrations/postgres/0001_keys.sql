-- Keys, their secrets (digests only) and users.
CREATE TABLE apikey_keys (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT      NOT NULL UNIQUE,
    tech_name    TEXT      NOT NULL UNIQUE,
    user_name    TEXT      NOT NULL,
    group_names  TEXT      NOT NULL DEFAULT '[]',
    active       BOOLEAN   NOT NULL DEFAULT TRUE,
    stub         TEXT      NOT NULL,
    expires_at   BIGINT    NULL,
    created_at   BIGINT    NOT NULL,
    last_used_at BIGINT    NULL
);

CREATE TABLE apikey_secrets (
    digest      BYTEA  PRIMARY KEY,
    key_id      BIGINT NOT NULL REFERENCES apikey_keys (id) ON DELETE CASCADE,
    valid_until BIGINT NULL
);
CREATE INDEX apikey_secrets_key_id ON apikey_secrets (key_id);

CREATE TABLE apikey_users (
    name   TEXT    PRIMARY KEY,
    active BOOLEAN NOT NULL
);
