-- When the key last got a new secret (unix seconds; NULL: never rotated). A key's rotation of
-- itself is decided against it under the key's lock, counting every rotation, whoever made it.
ALTER TABLE apikey_keys ADD COLUMN rotated_at BIGINT NULL;

UPDATE apikey_keys SET rotated_at =
    (SELECT MAX(a.at) FROM apikey_audit a WHERE a.name = apikey_keys.name AND a.action = 'rotate');

-- Imported keys changed here since their last import ('import-changed'): a later import leaves
-- them as they are instead of undoing the change.
UPDATE apikey_keys SET origin = 'import-changed'
WHERE origin = 'import' AND EXISTS (
    SELECT 1 FROM apikey_audit a
    WHERE ((a.name = apikey_keys.name
            AND a.action IN ('revoke', 'activate', 'rotate', 'groups', 'rate-limit', 'quota',
                             'allow-ip'))
           OR (a.name = apikey_keys.user_name AND a.action = 'user-enable'))
      AND a.id > (SELECT MAX(b.id) FROM apikey_audit b
                  WHERE b.name = apikey_keys.name AND b.action = 'import'));
