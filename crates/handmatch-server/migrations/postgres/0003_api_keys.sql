-- API keys. Only the SHA-256 of each key's secret is stored: the secret is 256 random bits,
-- so the hash cannot be inverted or guessed, and a slow password hash would add nothing but
-- latency to every request. Revoked keys keep their row (and name) as a record.

CREATE TABLE api_keys (
    name             TEXT COLLATE "C" PRIMARY KEY
                     CONSTRAINT key_name CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    -- the public part of the key, which finds the row
    key_id           TEXT NOT NULL UNIQUE CONSTRAINT key_id_hex CHECK (key_id ~ '^[0-9a-f]{16}$'),
    secret_sha256    TEXT NOT NULL CONSTRAINT secret_sha256_hex CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    -- comma-separated: enroll, identify, verify, delete, read, admin
    scopes           TEXT NOT NULL,
    -- comma-separated gallery names, or "*" for every gallery
    galleries        TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    last_used_at_ms  BIGINT,
    revoked_at_ms    BIGINT
);
