-- The networks a key is accepted from, comma-separated CIDRs (`10.0.0.0/8,2001:db8::/32`);
-- NULL: from anywhere.
ALTER TABLE apikey_keys ADD COLUMN allow_ip TEXT NULL;
