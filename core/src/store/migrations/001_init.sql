-- This device's identity: who uses it, and its Automerge actor id.
CREATE TABLE identity (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    member_id   TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('client', 'counselor')),
    created_at  INTEGER NOT NULL
);

-- One Automerge document per row: a snapshot plus incremental chunks appended by each write.
CREATE TABLE documents (
    doc_id          TEXT PRIMARY KEY,
    snapshot        BLOB NOT NULL,
    snapshot_heads  BLOB NOT NULL,
    chunk_bytes     INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE chunks (
    doc_id  TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    bytes   BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
);

-- The catalog: enough to list plans without loading any document.
CREATE TABLE plans (
    plan_id      TEXT PRIMARY KEY REFERENCES documents (doc_id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    review_on    TEXT,
    client_name  TEXT,
    goal_count   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Automerge sync state per (document, peer), so reconnecting sends only what is new.
CREATE TABLE sync_state (
    doc_id   TEXT NOT NULL,
    peer_id  TEXT NOT NULL,
    state    BLOB NOT NULL,
    PRIMARY KEY (doc_id, peer_id)
);
