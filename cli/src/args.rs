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
        #[arg(long)]
        json: bool,
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
    /// Sync every shared plan with another store on this machine.
    Sync {
        /// The other store's SQLite file.
        #[arg(long = "with")]
        with: PathBuf,
    },
    /// Changes from peers that the role rules refused: when, which peer, device, rule.
    Peers {
        /// Only this plan's refusals.
        plan: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a counselor and a client through a whole plan, in a temporary folder.
    Demo,
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
        /// The client's device id, to enroll it right away.
        #[arg(long)]
        client_device: Option<String>,
    },
    /// List plans on this device.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Rename a plan or set its review date (counselor).
    Set {
        plan: String,
        #[arg(long)]
        title: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        review_on: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Enroll a device of a member (a counselor: anyone's; a client: their own).
    Add {
        plan: String,
        #[arg(long)]
        member: String,
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
