-- Each document's snapshot in a row of its own, apart from its moving state (docs/design.md,
-- Storage). A write that appends a chunk changes only the document's heads, chunk sizes and
-- time; with the snapshot in the same record, SQLite read and rewrote the whole record (about
-- 20 KB for a year plan) to change them. The covering index on heads, which let heads be read
-- without the snapshot, has nothing left to spare and goes with it.
CREATE TABLE document_snapshots (
    doc_id TEXT PRIMARY KEY REFERENCES documents (doc_id) ON DELETE CASCADE,
    snapshot BLOB NOT NULL,
    snapshot_heads BLOB NOT NULL
);

INSERT INTO document_snapshots (doc_id, snapshot, snapshot_heads)
    SELECT doc_id, snapshot, snapshot_heads FROM documents;

DROP INDEX documents_heads;
ALTER TABLE documents DROP COLUMN snapshot;
ALTER TABLE documents DROP COLUMN snapshot_heads;
