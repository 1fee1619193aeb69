-- Each document's current heads (32-byte change hashes back to back, sorted), rewritten in the
-- same transaction as every write of the document, so a sync can compare heads without loading
-- documents (docs/sync.md, Heads digest). Rows written before this migration hold NULL until
-- their document is next written or read for a sync.
ALTER TABLE documents ADD COLUMN heads BLOB;

-- Covers (doc_id, heads): reading heads never walks a snapshot's overflow pages.
CREATE INDEX documents_heads ON documents (doc_id, heads);
