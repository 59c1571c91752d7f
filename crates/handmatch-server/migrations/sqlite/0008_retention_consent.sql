-- Retention and consent: the consent reference an enrolment was made under (the
-- operator's record of the subject's written release, e.g. a form id), and when the
-- subject was last enrolled, from which --retention-days counts. Existing subjects count
-- from their newest template (or their creation). (SQLite cannot add a NOT NULL column
-- without a default; every insert sets it.)
ALTER TABLE subjects ADD COLUMN consent_reference TEXT
    CONSTRAINT consent_reference_length CHECK (length(consent_reference) BETWEEN 1 AND 256);
ALTER TABLE subjects ADD COLUMN last_enrolled_at_ms INTEGER;
UPDATE subjects SET last_enrolled_at_ms = COALESCE(
    (SELECT MAX(t.created_at_ms) FROM templates t
     WHERE t.gallery = subjects.gallery AND t.subject_id = subjects.subject_id),
    subjects.created_at_ms);
CREATE INDEX subjects_last_enrolled ON subjects (last_enrolled_at_ms);
