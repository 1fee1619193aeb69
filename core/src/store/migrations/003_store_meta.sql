-- Facts about this store itself. `store_id`: a stable random id, announced to peers as the
-- store's `storageId` when the store has no identity (a relay), made once when the store is.
CREATE TABLE store_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

INSERT INTO store_meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
