//! Key names of the plan document (see `docs/design.md`, "The plan document").

pub const SCHEMA: &str = "schema";
pub const SCHEMA_VERSION: i64 = 1;
pub const PLAN_ID: &str = "plan_id";
pub const CREATED_AT: &str = "created_at";
pub const TITLE: &str = "title";
pub const REVIEW_ON: &str = "review_on";
pub const MEMBERS: &str = "members";
pub const DEVICES: &str = "devices";
pub const GOALS: &str = "goals";
/// The Ed25519 public key (64 hex digits) of the relay that vouches for the changes of this
/// plan's devices without a key (`crate::authorship::voucher`); counselor-written.
pub const RELAY_KEY: &str = "relay_key";

pub const ROLE: &str = "role";
pub const NAME: &str = "name";
pub const ADDED_AT: &str = "added_at";
pub const MEMBER_ID: &str = "member_id";
pub const LABEL: &str = "label";
/// Hex SHA-256 of the relay token issued to the device (counselor-written).
pub const TOKEN_HASH: &str = "token_hash";
/// When a counselor revoked the device (ms since the epoch); its token opens nothing then.
pub const REVOKED_AT: &str = "revoked_at";
/// The device's Ed25519 public key, 64 hex digits: written once, when it is enrolled; its
/// changes are then accepted only with that key's signature (`crate::authorship`).
pub const PUBLIC_KEY: &str = "public_key";

pub const PROPOSED_BY: &str = "proposed_by";
pub const RANK: &str = "rank";
pub const CLIENT_WORDS: &str = "client_words";
pub const CLINICAL_STATEMENT: &str = "clinical_statement";
pub const LIFE_AREA: &str = "life_area";
pub const STATUS: &str = "status";
pub const OBJECTIVES: &str = "objectives";
pub const INTERVENTIONS: &str = "interventions";
pub const GAS: &str = "gas";
pub const AGREEMENTS: &str = "agreements";
pub const CHECKINS: &str = "checkins";

pub const TEXT: &str = "text";
pub const MEASURE: &str = "measure";
pub const TARGET: &str = "target";
pub const UNIT: &str = "unit";
pub const DUE_ON: &str = "due_on";
pub const OWNER: &str = "owner";
pub const FREQUENCY: &str = "frequency";

pub const LEVELS: &str = "levels";
pub const WEIGHT: &str = "weight";
pub const BASELINE: &str = "baseline";

pub const CONTENT_HASH: &str = "content_hash";
pub const AT: &str = "at";

pub const BY: &str = "by";
pub const LOCAL_DATE: &str = "local_date";
pub const TZ_OFFSET_MIN: &str = "tz_offset_min";
pub const GAS_LEVEL: &str = "gas_level";
pub const VALUE: &str = "value";
pub const MOOD: &str = "mood";
pub const CRAVING: &str = "craving";
pub const NOTE: &str = "note";
pub const CORRECTS: &str = "corrects";

/// The GAS level keys, from much less to much more than expected.
pub const GAS_LEVEL_KEYS: [&str; 5] = ["-2", "-1", "0", "1", "2"];
