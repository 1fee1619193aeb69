-- Each plan's read model: the plan as `Alliance::plan` reads it (before the reader's clock
-- settles it), kept beside its document so that opening a plan to read it needs no Automerge
-- load (docs/design.md, Read model). `heads` are the document heads it was read from, in the
-- documents.heads encoding; a row is used only while they equal the document's heads and
-- `format` equals the code's, so it is never stale, only missing.
CREATE TABLE plan_read_models (
    doc_id TEXT PRIMARY KEY REFERENCES documents (doc_id) ON DELETE CASCADE,
    heads BLOB NOT NULL,
    format INTEGER NOT NULL,
    model BLOB NOT NULL
);
