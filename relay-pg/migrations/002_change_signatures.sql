-- Each stored change's signature by its author's device key (SECURITY.md §6; the SQLite
-- store's `change_signatures`): written with the change, read by every instance that adopts
-- it, so the changes it forwards keep their proof of authorship.
CREATE TABLE change_signatures (
    plan        text NOT NULL REFERENCES documents (plan),
    change_hash bytea NOT NULL,
    signature   bytea NOT NULL,
    PRIMARY KEY (plan, change_hash)
);
