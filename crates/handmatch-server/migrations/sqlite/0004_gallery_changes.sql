-- The change feed that keeps replicas coherent (see the Postgres migration of the same
-- number). SQLite has one writer at a time, so seq order is commit order without a lock;
-- replicas sharing a SQLite file poll it (there is no NOTIFY).

CREATE TABLE gallery_changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 1 templates enrolled, 2 subject deleted, 3 a model's templates deleted
    op             INTEGER NOT NULL CONSTRAINT change_op CHECK (op IN (1, 2, 3)),
    gallery        TEXT,
    subject_id     TEXT,
    -- the model whose templates were added (1) or deleted (3); NULL for 2 (every model's)
    model_id       TEXT,
    -- comma-separated ids of the templates added (1) or deleted (2)
    template_ids   TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    CONSTRAINT change_names_a_subject CHECK ((op = 3) = (gallery IS NULL AND subject_id IS NULL))
) STRICT;

CREATE INDEX gallery_changes_created ON gallery_changes (created_at_ms);

-- A replica loads (and reloads) a model's templates in pages by template id: one index
-- range scan per page, however large the gallery.
CREATE INDEX templates_model_template ON templates (model_id, template_id);

CREATE TABLE gallery_feed (
    id              INTEGER PRIMARY KEY CONSTRAINT one_row CHECK (id = 1),
    pruned_through  INTEGER NOT NULL
) STRICT;
INSERT INTO gallery_feed (id, pruned_through) VALUES (1, 0);
