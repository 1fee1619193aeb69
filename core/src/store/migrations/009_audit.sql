-- The relay's audit trail (docs/operations.md, SECURITY.md §Audit trail): who reached which
-- plan, when, from where, and how it went. Entries hold ids, times, addresses and outcomes;
-- never a token, a token hash or plan content.
--
-- Append-only: triggers refuse UPDATE and DELETE. Each row holds the hash of the row before it
-- and its own hash (SHA-256 over its fields and that previous hash), and `store_meta` keeps the
-- last row's number and hash, so a removed, altered or truncated row breaks the chain
-- (`alliance relay audit --verify`).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    device_id  TEXT,
    member_id  TEXT,
    plan_id    TEXT,
    remote     TEXT,
    detail     TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE INDEX audit_log_by_plan ON audit_log (plan_id, seq);
CREATE INDEX audit_log_by_device ON audit_log (device_id, seq);
CREATE INDEX audit_log_by_time ON audit_log (at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

-- Whose device is whose: the member each enrolled device belongs to, so audit entries name
-- the member without loading the plan. Rows of plans indexed before this migration get theirs
-- the next time the plan changes.
ALTER TABLE plan_devices ADD COLUMN member_id TEXT;
