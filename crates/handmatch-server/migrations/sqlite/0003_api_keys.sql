-- API keys. Only the SHA-256 of each key's secret is stored: the secret is 256 random bits,
-- so the hash cannot be inverted or guessed, and a slow password hash would add nothing but
-- latency to every request. Revoked keys keep their row (and name) as a record.

CREATE TABLE api_keys (
    name             TEXT PRIMARY KEY NOT NULL
                     CONSTRAINT key_name CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^A-Za-z0-9._-]*'),
    -- the public part of the key, which finds the row
    key_id           TEXT NOT NULL UNIQUE
                     CONSTRAINT key_id_hex CHECK (length(key_id) = 16 AND key_id NOT GLOB '*[^0-9a-f]*'),
    secret_sha256    TEXT NOT NULL
                     CONSTRAINT secret_sha256_hex CHECK (length(secret_sha256) = 64 AND secret_sha256 NOT GLOB '*[^0-9a-f]*'),
    -- comma-separated: enroll, identify, verify, delete, read, admin
    scopes           TEXT NOT NULL,
    -- comma-separated gallery names, or "*" for every gallery
    galleries        TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    last_used_at_ms  INTEGER,
    revoked_at_ms    INTEGER
) STRICT;
