-- The change feed that keeps replicas coherent: every enrolment that added templates and
-- every deletion writes one row here in its own transaction. Replicas apply rows strictly
-- in seq order. Writers take a transaction-level advisory lock just before inserting their
-- row, so seq order is commit order: a replica that has read seq N has seen every change
-- numbered below N (sequence gaps from rolled-back writes are harmless).

CREATE TABLE gallery_changes (
    seq            BIGSERIAL PRIMARY KEY,
    -- 1 templates enrolled, 2 subject deleted, 3 a model's templates deleted
    op             SMALLINT NOT NULL CONSTRAINT change_op CHECK (op IN (1, 2, 3)),
    gallery        TEXT COLLATE "C",
    subject_id     TEXT COLLATE "C",
    -- the model whose templates were added (1) or deleted (3); NULL for 2 (every model's)
    model_id       TEXT,
    -- comma-separated ids of the templates added (1) or deleted (2)
    template_ids   TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    CONSTRAINT change_names_a_subject CHECK ((op = 3) = (gallery IS NULL AND subject_id IS NULL))
);

CREATE INDEX gallery_changes_created ON gallery_changes (created_at_ms);

-- A replica loads (and reloads) a model's templates in pages by template id: one index
-- range scan per page, however large the gallery.
CREATE INDEX templates_model_template ON templates (model_id, template_id);

-- Rows older than the retention window are pruned; pruned_through is the highest seq ever
-- pruned, so a replica that had applied less than that knows it missed changes and reloads.
CREATE TABLE gallery_feed (
    id              SMALLINT PRIMARY KEY CONSTRAINT one_row CHECK (id = 1),
    pruned_through  BIGINT NOT NULL
);
INSERT INTO gallery_feed (id, pruned_through) VALUES (1, 0);

-- Wakes listening replicas at commit (NOTIFY is delivered only when the transaction
-- commits). Payload-free: a replica reads the feed itself, so a lost or merged
-- notification only delays, never loses, a change.
CREATE FUNCTION notify_gallery_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('handmatch_gallery_changes', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER gallery_changes_notify AFTER INSERT ON gallery_changes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_gallery_change();
