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

-- Chunks keyed by their primary key alone (WITHOUT ROWID): appending one writes one B-tree
-- page, where a rowid table wrote its row and, apart, the index of its key. A chunk a local
-- edit appends lists its changes that wait for their signature in `unsigned` (32-byte change
-- hashes back to back; NULL when none), so the edit writes no row elsewhere for them;
-- compaction moves the hashes of the chunks it merges to `unsigned_changes` (migration 011).
CREATE TABLE chunks_by_key (
    doc_id   TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    bytes    BLOB NOT NULL,
    unsigned BLOB,
    PRIMARY KEY (doc_id, seq)
) WITHOUT ROWID;

INSERT INTO chunks_by_key (doc_id, seq, bytes) SELECT doc_id, seq, bytes FROM chunks;
DROP TABLE chunks;
ALTER TABLE chunks_by_key RENAME TO chunks;
