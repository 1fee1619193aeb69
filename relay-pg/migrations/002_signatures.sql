-- Each stored change's author signature (Ed25519 over its hash; docs/sync.md, "Signed
-- changes"), kept apart from `chunks` so that compacting them into the snapshot keeps it. An
-- instance passes them on with the changes, as a SQLite relay does from change_signatures.
CREATE TABLE change_signatures (
    plan        text NOT NULL,
    change_hash bytea NOT NULL,
    signature   bytea NOT NULL,
    PRIMARY KEY (plan, change_hash)
);
