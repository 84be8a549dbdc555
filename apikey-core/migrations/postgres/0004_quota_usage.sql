-- Optional per-key quota, e.g. '10000/30days'.
ALTER TABLE apikey_keys ADD COLUMN quota TEXT NULL;

-- Quota uses per key and window (the window's index since the epoch), when no Redis counts them.
CREATE TABLE apikey_quota (
    tech_name    TEXT    NOT NULL,
    window_index BIGINT NOT NULL,
    used         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tech_name, window_index)
);

-- Requests per key and day (days since the epoch, UTC).
CREATE TABLE apikey_usage (
    tech_name TEXT    NOT NULL,
    day       BIGINT NOT NULL,
    accepted  BIGINT NOT NULL DEFAULT 0,
    forbidden BIGINT NOT NULL DEFAULT 0,
    limited   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tech_name, day)
);
