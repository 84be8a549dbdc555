-- What a key may do (a JSON array of scopes, sorted), words for people about it, and metadata
-- handed to handlers (a JSON object of strings; NULL: none).
ALTER TABLE apikey_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE apikey_keys ADD COLUMN description TEXT NULL;
ALTER TABLE apikey_keys ADD COLUMN meta TEXT NULL;
