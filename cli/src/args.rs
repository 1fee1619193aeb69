//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "alliance",
    version,
    about = "Goal plans a counselor and a client write together, offline first"
)]
pub struct Cli {
    /// The store (SQLite file) of this device.
    #[arg(
        long,
        global = true,
        env = "ALLIANCE_DB",
        default_value = "./alliance.db"
    )]
    pub db: PathBuf,
    /// A file holding the store's key, exactly 32 raw bytes: the store is encrypted at rest
    /// (SQLCipher) with it. Without --key-file the store is NOT encrypted — plaintext on disk,
    /// for trying Alliance out; never keep real clients' plans that way.
    #[arg(long, global = true, env = "ALLIANCE_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Make this store a device of a new person, or of an existing one (--member).
    Init {
        #[arg(long)]
        name: String,
        /// client or counselor
        #[arg(long)]
        role: String,
        /// An existing member id: this store becomes another device of that person.
        #[arg(long)]
        member: Option<String>,
    },
    /// Who this device belongs to.
    Whoami {
        #[arg(long)]
        json: bool,
        /// Print only this device's enrollment code (device id and public key as one string,
        /// for a QR code): what a counselor gives `device add --device` or
        /// `plan new --client-device`.
        #[arg(long, conflicts_with = "json")]
        enrollment: bool,
    },
    /// Create, list and change plans.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Enroll devices in a plan.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Show a plan: goals, agreement, objectives, GAS, check-ins, conflicts.
    Show {
        plan: String,
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// text (default), json, or markdown: a summary fit to print and sign.
        #[arg(long, value_enum)]
        format: Option<ShowFormat>,
    },
    /// Every change of a plan with its author and time.
    History {
        plan: String,
        #[arg(long)]
        json: bool,
    },
    /// Propose, edit and agree to goals.
    #[command(subcommand)]
    Goal(GoalCommand),
    /// Add SMART objectives to a goal.
    #[command(subcommand)]
    Objective(ObjectiveCommand),
    /// Add interventions (strategies) to a goal.
    #[command(subcommand)]
    Intervention(InterventionCommand),
    /// Describe GAS levels, or set a goal's GAS weight or baseline.
    #[command(subcommand)]
    Gas(GasCommand),
    /// Record a check-in (or a correction of one) on a goal.
    Checkin(CheckinArgs),
    /// Sync plans with a relay (--server), or with another store on this machine (--with).
    Sync(SyncArgs),
    /// Run a relay: an always-on peer that stores every plan devices sync through it
    /// (`alliance relay audit` lists its audit trail).
    Relay(RelayArgs),
    /// Write a consistent copy of this store (a device's or a relay's) to --out while it is in
    /// use, encrypted with the same key.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Put a backup (made by `alliance backup`) in place of this store. Stop whatever has the
    /// store open first: it is refused while the store is in use.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Re-encrypt this store under a new key; open it with --key-file (the current key).
    Rekey {
        /// A file holding the new key, exactly 32 raw bytes.
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
    /// Check the store file for damage: SQLite's integrity check and, for an encrypted store,
    /// every page's authentication code. Prints `ok`, or each problem found and exits 1.
    Check,
    /// Changes from peers that the role rules refused: when, which peer, device, rule.
    Peers {
        /// Only this plan's refusals.
        plan: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a counselor and a client through a whole plan, in a temporary folder.
    Demo,
    /// Export a plan: FHIR R4 (a Bundle for EHRs, with the review report attached) or JSON
    /// (the plan with its whole history).
    Export {
        plan: String,
        #[arg(long, value_enum, default_value = "fhir")]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// FHIR without the review report (no DocumentReference).
        #[arg(long)]
        no_report: bool,
    },
    /// The review report: one self-contained HTML file (charts included, no scripts, no
    /// external resources) to print on A4 or US Letter or attach to an EHR.
    Report {
        plan: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a plan from a JSON file made by `alliance export --format json`.
    Import { file: PathBuf },
    /// A plan's progress: GAS levels and trends per goal, check-in days, T-score over time.
    Progress {
        plan: String,
        /// How many of the latest GAS ratings a trend looks at.
        #[arg(long, default_value_t = 3)]
        window: usize,
        #[arg(long)]
        json: bool,
    },
}

/// `alliance relay`: serve, or act on a relay's store.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RelayArgs {
    #[command(subcommand)]
    pub action: Option<RelayAction>,
    /// A TOML file of settings (see deploy/relay.toml): ALLIANCE_RELAY_* variables win over
    /// it, and flags over both.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store in this PostgreSQL database (postgres://user@host:port/db) instead of the SQLite
    /// file; several relays may share one (docs/operations.md).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Address to listen on, e.g. 127.0.0.1:8420 (port 0 picks a free one); 127.0.0.1:8420
    /// by default.
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve anyone who connects, without tokens (loopback tests only).
    #[arg(long)]
    pub no_auth: bool,
    /// Accept the first push of a plan this relay does not hold from a token that plan
    /// lists (how counselors' new plans arrive). See docs/sync.md, Authentication.
    #[arg(long, conflicts_with = "no_auth")]
    pub open_enrollment: bool,
    /// Serve wss:// with this PEM certificate chain (needs --tls-key). SIGHUP reloads it.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address, e.g.
    /// 127.0.0.1:9420 (off by default; keep it off the public network).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// text (default) or json: one JSON object per log line on stderr.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// On SIGTERM or SIGINT, how long syncs in flight may take to finish (30 by default).
    #[arg(long, value_name = "SECONDS")]
    pub drain_grace_secs: Option<String>,
    /// Check the settings (file, environment, flags) and exit: `configuration ok`, or the
    /// first problem, naming its key, with exit status 1.
    #[arg(long)]
    pub check_config: bool,
}

#[derive(Subcommand, Debug)]
pub enum RelayAction {
    /// Print the relay's public key (made on first use), for counselors to pin in their plans
    /// (`alliance plan set PLAN --relay-key KEY`).
    Key {
        /// The relay's settings file: its `db` and `key_file` (or `store`) name the store
        /// (unless --db, --key-file or --store are given).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The relay's PostgreSQL database (postgres://…): one key for every instance over it.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// The relay's audit trail: who reached which plan, when, from where, and how it went.
    Audit {
        /// The relay's settings file: its `db` and `key_file` name the store (unless --db
        /// or --key-file are given).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only entries about this plan.
        #[arg(long)]
        plan: Option<String>,
        /// Only entries about this device.
        #[arg(long)]
        device: Option<String>,
        /// Only entries at or after this time: YYYY-MM-DD (UTC) or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
        /// Walk the hash chain instead: prints `ok` and the head hash, or each break found
        /// (a removed or altered entry) and exits 1.
        #[arg(long, conflicts_with_all = ["plan", "device", "since"])]
        verify: bool,
    },
}

/// What `alliance export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Fhir,
    Json,
}

/// How `alliance show` prints a plan.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShowFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("peer").required(true).args(["with", "server"])))]
pub struct SyncArgs {
    /// Another store's SQLite file: sync every shared plan with it, in process.
    #[arg(long = "with")]
    pub with: Option<PathBuf>,
    /// A relay (or automerge-repo server) URL, ws://HOST:PORT: sync every plan of this device
    /// with it until all are up to date, then exit.
    #[arg(long)]
    pub server: Option<String>,
    /// With --server: keep syncing until stopped, printing progress.
    #[arg(long, requires = "server", conflicts_with = "with")]
    pub watch: bool,
    /// With --server: this device's relay token (prefer the ALLIANCE_TOKEN variable: a
    /// command line is visible to other users of the machine).
    #[arg(
        long,
        env = "ALLIANCE_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    pub token: Option<String>,
    /// With a wss:// server: a PEM certificate to trust besides the built-in roots (a
    /// clinic's own CA or a self-signed relay certificate).
    #[arg(long, value_name = "PEM", requires = "server")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Start a plan (counselor); prints its id.
    New {
        #[arg(long)]
        title: String,
        #[arg(long)]
        client_name: String,
        /// The client's member id, when they already use Alliance.
        #[arg(long)]
        client_member: Option<String>,
        /// The client's device, to enroll it right away: its enrollment code
        /// (`alliance whoami --enrollment`, which records its key) or, for a device that
        /// cannot sign, its id.
        #[arg(long)]
        client_device: Option<String>,
    },
    /// List plans on this device.
    List {
        #[arg(long)]
        json: bool,
        /// Only plans due for review (overdue, due today, or with no review date).
        #[arg(long)]
        due: bool,
        /// With --due: also plans due within this many days.
        #[arg(long, requires = "due")]
        within: Option<u32>,
    },
    /// Rename a plan, set its review date, or pin its relay's key (counselor).
    Set {
        plan: String,
        #[arg(long)]
        title: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        review_on: Option<String>,
        /// The relay's public key (`alliance relay key` on the relay prints it): the relay
        /// then vouches for devices enrolled without a key, and nothing else does.
        #[arg(long, value_name = "KEY")]
        relay_key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Enroll a device of a member (a counselor: anyone's; a client: their own).
    Add {
        plan: String,
        #[arg(long)]
        member: String,
        /// The device's enrollment code (`alliance whoami --enrollment`: its key is recorded,
        /// so only changes it signed are accepted as its own) or, for a device that cannot
        /// sign, its id.
        #[arg(long)]
        device: String,
        /// The member's name, when the member is new to the plan.
        #[arg(long)]
        name: Option<String>,
        /// The member's role, when the member is new to the plan.
        #[arg(long)]
        role: Option<String>,
        /// What to call the device.
        #[arg(long, default_value = "device")]
        label: String,
    },
    /// Issue a relay token for an enrolled device (counselor); prints it once.
    Token {
        plan: String,
        #[arg(long)]
        device: String,
        /// Store the hash of a token the device already holds instead of making a new one
        /// (one token for all of a device's plans).
        #[arg(long, env = "ALLIANCE_REUSE_TOKEN", hide_env_values = true)]
        reuse: Option<String>,
    },
    /// Revoke an enrolled device (counselor): relays refuse its token for this plan.
    Revoke {
        plan: String,
        #[arg(long)]
        device: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GoalCommand {
    /// Propose a goal in your own words; prints the goal id.
    Propose {
        plan: String,
        #[arg(long)]
        words: String,
    },
    /// Change a goal's words, clinical statement, life area or status.
    Edit {
        plan: String,
        goal: String,
        #[arg(long)]
        words: Option<String>,
        #[arg(long)]
        clinical: Option<String>,
        #[arg(long)]
        life_area: Option<String>,
        /// proposed, active, on_hold, achieved or discontinued
        #[arg(long)]
        status: Option<String>,
    },
    /// Agree to the goal as it stands now.
    Agree { plan: String, goal: String },
}

#[derive(Subcommand, Debug)]
pub enum ObjectiveCommand {
    /// Add a SMART objective; prints its id.
    Add {
        plan: String,
        goal: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        measure: Option<String>,
        #[arg(long, allow_negative_numbers = true)]
        target: Option<f64>,
        #[arg(long)]
        unit: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        due: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum InterventionCommand {
    /// Add an intervention; prints its id.
    Add {
        plan: String,
        goal: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        frequency: Option<String>,
        /// The member who carries it out.
        #[arg(long)]
        owner: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum GasCommand {
    /// `--level L --text T` describes a level; `--weight W` or `--baseline L` (counselor).
    Set(GasSetArgs),
}

#[derive(Args, Debug)]
pub struct GasSetArgs {
    pub plan: String,
    pub goal: String,
    /// -2..2
    #[arg(long, allow_negative_numbers = true, requires = "text", conflicts_with_all = ["weight", "baseline"])]
    pub level: Option<i64>,
    #[arg(long, requires = "level")]
    pub text: Option<String>,
    #[arg(long, allow_negative_numbers = true, conflicts_with = "baseline")]
    pub weight: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub baseline: Option<i64>,
}

#[derive(Args, Debug)]
pub struct CheckinArgs {
    pub plan: String,
    pub goal: String,
    /// GAS level reached, -2..2
    #[arg(long, allow_negative_numbers = true)]
    pub level: Option<i64>,
    #[arg(long, allow_negative_numbers = true)]
    pub value: Option<f64>,
    /// 0..10
    #[arg(long, allow_negative_numbers = true)]
    pub mood: Option<i64>,
    /// 0..10
    #[arg(long, allow_negative_numbers = true)]
    pub craving: Option<i64>,
    #[arg(long, default_value = "")]
    pub note: String,
    /// The day you mean (YYYY-MM-DD); today on this device's clock by default.
    #[arg(long)]
    pub date: Option<String>,
    /// Correct an earlier check-in of yours (its id).
    #[arg(long)]
    pub corrects: Option<String>,
}
