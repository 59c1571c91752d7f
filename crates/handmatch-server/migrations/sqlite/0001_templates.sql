-- Subjects and their templates (one L2-normalised embedding per enrolled image and model).
-- Raw images are never stored: image_sha256 only makes re-enrolment idempotent.
--
-- STRICT tables, so SQLite enforces the column types the Postgres schema declares
-- (SMALLINT/BIGINT are INTEGER here). Foreign keys are switched on per connection by the store.

CREATE TABLE subjects (
    subject_id    TEXT PRIMARY KEY NOT NULL
                  CONSTRAINT subject_id_length CHECK (length(subject_id) BETWEEN 1 AND 128),
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE templates (
    template_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id    TEXT NOT NULL REFERENCES subjects (subject_id) ON DELETE CASCADE,
    model_id      TEXT NOT NULL
                  CONSTRAINT model_id_length CHECK (length(model_id) BETWEEN 1 AND 128),
    -- 1 dorsal, 2 palmar
    aspect        INTEGER NOT NULL CONSTRAINT aspect_code CHECK (aspect IN (1, 2)),
    -- 0 unknown, 1 left, 2 right
    side          INTEGER NOT NULL CONSTRAINT side_code CHECK (side IN (0, 1, 2)),
    image_sha256  TEXT NOT NULL
                  CONSTRAINT image_sha256_hex CHECK (length(image_sha256) = 64 AND image_sha256 NOT GLOB '*[^0-9a-f]*'),
    -- little-endian f32
    embedding     BLOB NOT NULL
                  CONSTRAINT embedding_f32 CHECK (length(embedding) > 0 AND length(embedding) % 4 = 0),
    created_at_ms INTEGER NOT NULL,
    CONSTRAINT templates_identity UNIQUE (subject_id, image_sha256, model_id)
) STRICT;

-- Leads with model_id for per-model loads and counts; subject_id second serves the keyset
-- pagination of list_subjects without a sort.
CREATE INDEX templates_model_subject ON templates (model_id, subject_id);
