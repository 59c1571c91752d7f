-- Secrets the replicas of one database share, made once by the first server that needs
-- them: 'image-fingerprint' keys the HMAC that GetSubject shows instead of an image's
-- SHA-256 (which anyone holding the photo could compute and so test for membership).
CREATE TABLE server_secrets (
    name    TEXT PRIMARY KEY NOT NULL,
    secret  BLOB NOT NULL
) STRICT;
