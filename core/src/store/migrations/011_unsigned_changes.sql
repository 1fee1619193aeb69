-- Changes this device made whose signature is not made yet (SECURITY.md §6, "Signed
-- changes"): a local edit records its change here, in the transaction that stores it, and the
-- first sync message, export or change of identity that needs the signature signs every
-- change waiting in the plan, moving it to `change_signatures` in one transaction. Signing
-- is then off the edit path; a change never leaves the store without its signature.
CREATE TABLE unsigned_changes (
    doc_id TEXT NOT NULL,
    change_hash BLOB NOT NULL,
    PRIMARY KEY (doc_id, change_hash)
) WITHOUT ROWID;
