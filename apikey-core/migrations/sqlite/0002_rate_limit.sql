-- Optional per-key rate limit, e.g. '100/1m'.
ALTER TABLE apikey_keys ADD COLUMN rate_limit TEXT NULL;

-- Which store instance wrote a change, so it does not announce its own changes twice.
ALTER TABLE apikey_changes ADD COLUMN origin TEXT NOT NULL DEFAULT '';
