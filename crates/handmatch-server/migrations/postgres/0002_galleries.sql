-- Galleries: every subject belongs to one named gallery, and a subject id is unique only
-- within its gallery. Existing subjects move to "default", the gallery of requests that name
-- none. The name rule (1 to 64 of A-Z a-z 0-9 . _ -) is also checked by the service.

ALTER TABLE templates DROP CONSTRAINT templates_subject_id_fkey;
ALTER TABLE templates DROP CONSTRAINT templates_identity;
DROP INDEX templates_model_subject;

ALTER TABLE subjects ADD COLUMN gallery TEXT COLLATE "C" NOT NULL DEFAULT 'default'
    CONSTRAINT gallery_name CHECK (gallery ~ '^[A-Za-z0-9._-]{1,64}$');
ALTER TABLE subjects ALTER COLUMN gallery DROP DEFAULT;
ALTER TABLE subjects DROP CONSTRAINT subjects_pkey;
ALTER TABLE subjects ADD PRIMARY KEY (gallery, subject_id);

ALTER TABLE templates ADD COLUMN gallery TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE templates ALTER COLUMN gallery DROP DEFAULT;
ALTER TABLE templates ADD CONSTRAINT templates_subject
    FOREIGN KEY (gallery, subject_id) REFERENCES subjects (gallery, subject_id) ON DELETE CASCADE;
ALTER TABLE templates ADD CONSTRAINT templates_identity
    UNIQUE (gallery, subject_id, image_sha256, model_id);

-- Per-model loads and counts, then the keyset pagination of one gallery's subjects.
CREATE INDEX templates_model_gallery_subject ON templates (model_id, gallery, subject_id);
