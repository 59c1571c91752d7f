-- Retention and consent: the consent reference an enrolment was made under (the
-- operator's record of the subject's written release, e.g. a form id), and when the
-- subject was last enrolled, from which --retention-days counts. Existing subjects count
-- from their newest template (or their creation).
ALTER TABLE subjects ADD COLUMN consent_reference TEXT
    CONSTRAINT consent_reference_length CHECK (length(consent_reference) BETWEEN 1 AND 256);
ALTER TABLE subjects ADD COLUMN last_enrolled_at_ms BIGINT;
UPDATE subjects s SET last_enrolled_at_ms = COALESCE(
    (SELECT MAX(t.created_at_ms) FROM templates t
     WHERE t.gallery = s.gallery AND t.subject_id = s.subject_id),
    s.created_at_ms);
ALTER TABLE subjects ALTER COLUMN last_enrolled_at_ms SET NOT NULL;
CREATE INDEX subjects_last_enrolled ON subjects (last_enrolled_at_ms);
