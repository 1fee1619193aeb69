-- A device's own changes that it took out of a plan (docs/design.md, Nothing lost): a fork of
-- its own history after a restored or copied store was used, or a change a peer refused. The
-- original bytes stay here, so no edit an app once acknowledged is gone; `replayed_as` names
-- the new change that carries the same operations, when there is one.
CREATE TABLE set_aside_changes (
    doc_id TEXT NOT NULL,
    change_hash TEXT NOT NULL,
    bytes BLOB NOT NULL,
    reason TEXT NOT NULL,
    replayed_as TEXT,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (doc_id, change_hash)
);
