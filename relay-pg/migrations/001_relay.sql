-- The relay's store on PostgreSQL (relay-pg/, docs/operations.md). Ids are text: plan ids
-- as UUIDs, change hashes and token hashes in hex, as the SQLite store writes them.

CREATE TABLE relay_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- A plan's document: a snapshot (Automerge `save()`, covering every change up to
-- snapshot_seq) and the changes stored since, one row each, numbered per plan.
CREATE TABLE documents (
    plan         text PRIMARY KEY,
    snapshot     bytea,
    snapshot_seq bigint NOT NULL DEFAULT 0,
    last_seq     bigint NOT NULL DEFAULT 0,
    -- Hex change hashes, sorted, comma-separated: the heads of everything stored.
    heads        text NOT NULL,
    -- From relay_change_seq at each write: which plans changed since an instance last looked.
    changed      bigint NOT NULL,
    updated_at   bigint NOT NULL
);
CREATE SEQUENCE relay_change_seq;
CREATE INDEX documents_changed ON documents (changed);

CREATE TABLE chunks (
    plan   text NOT NULL REFERENCES documents (plan),
    seq    bigint NOT NULL,
    change bytea NOT NULL,
    PRIMARY KEY (plan, seq)
);

-- Each change's signature by its author's key (SECURITY.md §6), stored with the change so it
-- travels on with it from every instance.
CREATE TABLE change_signatures (
    plan        text NOT NULL,
    change_hash text NOT NULL,
    signature   bytea NOT NULL,
    PRIMARY KEY (plan, change_hash)
);

-- The devices each plan lists, from its document: what a token opens.
CREATE TABLE plan_devices (
    plan       text NOT NULL,
    device_id  text NOT NULL,
    token_hash text,
    revoked    boolean NOT NULL,
    member_id  text,
    PRIMARY KEY (plan, device_id)
);
CREATE INDEX plan_devices_token ON plan_devices (token_hash);
CREATE INDEX plan_devices_device ON plan_devices (device_id);

-- Automerge sync state per plan and peer key (its `encode()`).
CREATE TABLE sync_states (
    plan  text NOT NULL,
    peer  text NOT NULL,
    state bytea NOT NULL,
    PRIMARY KEY (plan, peer)
);
CREATE INDEX sync_states_peer ON sync_states (peer);

-- Changes the role rules refused: recorded, never stored.
CREATE TABLE refusals (
    id          bigserial PRIMARY KEY,
    plan        text NOT NULL,
    change_hash text NOT NULL,
    peer        text NOT NULL,
    device_id   text NOT NULL,
    member_id   text,
    rule        text NOT NULL,
    change_at   bigint NOT NULL,
    recorded_at bigint NOT NULL
);
CREATE INDEX refusals_plan ON refusals (plan);

-- Who did what through the relay (as `audit` in the SQLite store, without its hash chain).
CREATE TABLE audit (
    id        bigserial PRIMARY KEY,
    at        bigint NOT NULL,
    kind      text NOT NULL,
    outcome   text NOT NULL,
    device_id text,
    member_id text,
    plan      text,
    remote    text,
    detail    text
);
