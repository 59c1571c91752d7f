-- Galleries: every subject belongs to one named gallery, and a subject id is unique only
-- within its gallery. Existing subjects move to "default", the gallery of requests that name
-- none. The name rule (1 to 64 of A-Z a-z 0-9 . _ -) is also checked by the service.
--
-- SQLite cannot change a primary key in place, so both tables are rebuilt and renamed
-- (a rename also rewrites the foreign key that refers to the table). The AUTOINCREMENT
-- counter is carried over, so a deleted template's id is never handed out again.

CREATE TABLE subjects_v2 (
    gallery       TEXT NOT NULL
                  CONSTRAINT gallery_name CHECK (length(gallery) BETWEEN 1 AND 64 AND gallery NOT GLOB '*[^A-Za-z0-9._-]*'),
    subject_id    TEXT NOT NULL
                  CONSTRAINT subject_id_length CHECK (length(subject_id) BETWEEN 1 AND 128),
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (gallery, subject_id)
) STRICT;

CREATE TABLE templates_v2 (
    template_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    gallery       TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
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
    FOREIGN KEY (gallery, subject_id) REFERENCES subjects_v2 (gallery, subject_id) ON DELETE CASCADE,
    CONSTRAINT templates_identity UNIQUE (gallery, subject_id, image_sha256, model_id)
) STRICT;

INSERT INTO subjects_v2 (gallery, subject_id, created_at_ms)
    SELECT 'default', subject_id, created_at_ms FROM subjects;
INSERT INTO templates_v2
    (template_id, gallery, subject_id, model_id, aspect, side, image_sha256, embedding, created_at_ms)
    SELECT template_id, 'default', subject_id, model_id, aspect, side, image_sha256, embedding, created_at_ms
    FROM templates;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'templates_v2', seq FROM sqlite_sequence
    WHERE name = 'templates' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'templates_v2');
UPDATE sqlite_sequence
    SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'templates'))
    WHERE name = 'templates_v2' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'templates');

DROP TABLE templates;
DROP TABLE subjects;
ALTER TABLE subjects_v2 RENAME TO subjects;
ALTER TABLE templates_v2 RENAME TO templates;

-- Per-model loads and counts, then the keyset pagination of one gallery's subjects.
CREATE INDEX templates_model_gallery_subject ON templates (model_id, gallery, subject_id);
