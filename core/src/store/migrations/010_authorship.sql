-- Authenticated authorship (SECURITY.md §6). `device_key` holds this device's Ed25519 signing
-- key (32 secret bytes; SQLCipher encrypts it with the store), made with its identity, or on
-- the first open of a store made before this migration. `change_signatures` holds, beside the
-- plans' documents, each change's signature by its author's key (written in the transaction
-- that stores the change), so they travel on with the change to every peer.
CREATE TABLE device_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    secret BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE change_signatures (
    doc_id TEXT NOT NULL,
    change_hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (doc_id, change_hash)
) WITHOUT ROWID;
