-- Subjects and their templates (one L2-normalised embedding per enrolled image and model).
-- Raw images are never stored: image_sha256 only makes re-enrolment idempotent.
--
-- subject_id uses the "C" collation so keyset pagination orders bytewise, exactly as SQLite
-- does, whatever the database's default locale.

CREATE TABLE subjects (
    subject_id    TEXT COLLATE "C" PRIMARY KEY
                  CONSTRAINT subject_id_length CHECK (char_length(subject_id) BETWEEN 1 AND 128),
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE templates (
    template_id   BIGSERIAL PRIMARY KEY,
    subject_id    TEXT COLLATE "C" NOT NULL REFERENCES subjects (subject_id) ON DELETE CASCADE,
    model_id      TEXT NOT NULL
                  CONSTRAINT model_id_length CHECK (char_length(model_id) BETWEEN 1 AND 128),
    -- 1 dorsal, 2 palmar
    aspect        SMALLINT NOT NULL CONSTRAINT aspect_code CHECK (aspect IN (1, 2)),
    -- 0 unknown, 1 left, 2 right
    side          SMALLINT NOT NULL CONSTRAINT side_code CHECK (side IN (0, 1, 2)),
    image_sha256  TEXT NOT NULL CONSTRAINT image_sha256_hex CHECK (image_sha256 ~ '^[0-9a-f]{64}$'),
    -- little-endian f32
    embedding     BYTEA NOT NULL
                  CONSTRAINT embedding_f32 CHECK (octet_length(embedding) > 0 AND octet_length(embedding) % 4 = 0),
    created_at_ms BIGINT NOT NULL,
    CONSTRAINT templates_identity UNIQUE (subject_id, image_sha256, model_id)
);

-- Leads with model_id for per-model loads and counts; subject_id second serves the keyset
-- pagination of list_subjects without a sort.
CREATE INDEX templates_model_subject ON templates (model_id, subject_id);
