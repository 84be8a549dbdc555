-- Where a key came from: NULL for keys made here (CLI, admin page, services), 'import' for keys
-- an import created. An import only ever brings in line the keys it created.
ALTER TABLE apikey_keys ADD COLUMN origin TEXT NULL;

-- Keys imported before this column existed: those whose first audit entry is an import.
UPDATE apikey_keys SET origin = 'import'
WHERE (SELECT a.action FROM apikey_audit a WHERE a.name = apikey_keys.name ORDER BY a.id LIMIT 1) = 'import';
