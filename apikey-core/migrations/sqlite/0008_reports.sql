-- Secret scanning reports already processed, by the SHA-256 of their body: a replay within the
-- window changes nothing, on any instance sharing the store.
CREATE TABLE apikey_reports (
    digest BLOB  PRIMARY KEY,
    at     BIGINT NOT NULL
);
CREATE INDEX apikey_reports_at ON apikey_reports (at);
