-- Relay authentication: each enrolled device's token hash (hex SHA-256, from the plan's
-- `devices.<id>.token_hash`) and whether a counselor revoked it. Rows of plans indexed before
-- this migration get theirs the next time the plan changes.
ALTER TABLE plan_devices ADD COLUMN token_hash TEXT;
ALTER TABLE plan_devices ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;

CREATE INDEX plan_devices_by_token ON plan_devices (token_hash);
