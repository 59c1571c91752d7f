-- The audit trail: one row per mutating call (and, with --audit-searches, per search),
-- written in the same transaction as the change it records; a failed call gets its row on
-- its own. Who (the API key's name, else the peer), what (the RPC, gallery, subject, how
-- many templates; for the key RPCs the key's name stands in subject_id) and how it ended (the gRPC code's name). Never images, embeddings or
-- scores. Append-only: the triggers refuse every UPDATE and DELETE.
CREATE TABLE audit_events (
    event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    rpc         TEXT NOT NULL,
    gallery     TEXT,
    subject_id  TEXT,
    result      TEXT NOT NULL,
    templates   INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_events_at ON audit_events (at_ms);
CREATE INDEX audit_events_subject ON audit_events (subject_id, at_ms);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
