-- Changes from peers that the role rules refused: never stored, only recorded.
CREATE TABLE refusals (
    doc_id       TEXT NOT NULL,
    change_hash  TEXT NOT NULL,
    peer_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    member_id    TEXT,
    rule         TEXT NOT NULL,
    change_at    INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    PRIMARY KEY (doc_id, change_hash)
);
