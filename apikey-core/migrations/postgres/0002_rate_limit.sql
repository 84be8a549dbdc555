-- Optional per-key rate limit, e.g. '100/1m'.
ALTER TABLE apikey_keys ADD COLUMN rate_limit TEXT NULL;
