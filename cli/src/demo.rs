//! `alliance demo`: a counselor and a client, each on their own store, write a plan together.

use std::sync::Arc;

use alliance_core::sync::{
    sync_once_blocking, BackgroundRelay, RelayOptions, SyncOptions, Traffic,
};
use alliance_core::{
    Alliance, GasEdit, GoalEdit, GoalStatus, NewCheckIn, NewObjective, NewPlan, Result, Role,
};

use crate::print;

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

/// Both devices sync through the relay: the counselor's news goes up, the client takes it
/// and sends its own, the counselor takes the client's.
/// Each device presents its relay token (counselor's, client's).
fn sync(
    relay: &BackgroundRelay,
    counselor: &Arc<Alliance>,
    client: &Arc<Alliance>,
    tokens: &(String, String),
) -> Result<()> {
    let url = relay.url();
    let mut traffic = Traffic::default();
    let mut plans = 0;
    for (device, token) in [
        (counselor, &tokens.0),
        (client, &tokens.1),
        (counselor, &tokens.0),
    ] {
        let options = SyncOptions {
            token: Some(token.clone()),
            ..SyncOptions::default()
        };
        let summary = sync_once_blocking(device.clone(), &url, &options)?;
        traffic.add(&summary.traffic);
        plans = plans.max(summary.documents_synced);
    }
    println!(
        "   synced {plans} plan(s) through the relay: {} frames, {} bytes",
        traffic.frames_sent + traffic.frames_received,
        traffic.bytes_sent + traffic.bytes_received
    );
    Ok(())
}

pub fn run() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let counselor = Arc::new(Alliance::open(&folder.path().join("counselor.db"))?);
    let client = Arc::new(Alliance::open(&folder.path().join("client.db"))?);
    let relay_store = Arc::new(Alliance::open(&folder.path().join("relay.db"))?);
    // Tokens required; a counselor's new plan may arrive by its first push.
    let relay_options = RelayOptions {
        require_token: true,
        open_enrollment: true,
        ..RelayOptions::default()
    };
    let relay = BackgroundRelay::start("127.0.0.1:0", relay_store, relay_options)?;
    println!("Alliance demo — stores in {}", folder.path().display());
    println!("   the clinic's relay listens on {}", relay.url());

    step(1, "Each person sets up their own device");
    let dana = counselor.init("Dana Reyes", Role::Counselor, None)?;
    let sam = client.init("Sam", Role::Client, None)?;
    println!("   counselor Dana: device {}", dana.device_id);
    println!(
        "   client Sam:     device {} (shown to Dana as a QR code)",
        sam.device_id
    );

    step(2, "Dana starts a plan and enrolls Sam's phone");
    let plan = counselor.create_plan(&NewPlan {
        title: "Sam's recovery plan".into(),
        client_name: "Sam".into(),
        client_member: Some(sam.member_id),
        client_device: Some(sam.device_id),
    })?;
    counselor.set_review_on(plan, "2027-02-23")?;
    println!("   plan {plan} (Sam's phone is not told its id: the relay offers it)");
    // Relay tokens: only their SHA-256 goes into the plan; Sam's travels with the QR code.
    let tokens = (
        counselor.issue_device_token(plan, dana.device_id, None)?,
        counselor.issue_device_token(plan, sam.device_id, None)?,
    );
    println!("   relay tokens issued to both devices (the plan keeps only their hashes)");
    sync(&relay, &counselor, &client, &tokens)?;

    step(3, "Offline, Sam proposes a goal in their own words");
    let goal = client.propose_goal(plan, "I want to get through weekends without drinking")?;
    client.set_gas(
        plan,
        goal,
        &GasEdit::Level {
            level: 0,
            text: "Sober on 3 of 4 weekends a month".into(),
        },
    )?;
    sync(&relay, &counselor, &client, &tokens)?;

    step(
        4,
        "Offline on both sides: Dana writes the clinical statement and an objective; Sam rewords",
    );
    counselor.edit_goal(
        plan,
        goal,
        &GoalEdit {
            clinical_statement: Some(
                "Client will maintain abstinence from alcohol on weekends (ASAM dimension 5)."
                    .into(),
            ),
            life_area: Some("relapse potential".into()),
            ..Default::default()
        },
    )?;
    counselor.add_objective(
        plan,
        goal,
        &NewObjective {
            text: "Attend a Saturday peer-support meeting".into(),
            measure: Some("meetings attended".into()),
            target: Some(8.0),
            unit: Some("meetings".into()),
            due_on: Some("2027-01-31".into()),
        },
    )?;
    client.edit_goal(
        plan,
        goal,
        &GoalEdit {
            client_words: Some("I want to get through my weekends without drinking".into()),
            ..Default::default()
        },
    )?;
    sync(&relay, &counselor, &client, &tokens)?;

    step(5, "Both agree to the goal as it now stands");
    counselor.agree(plan, goal)?;
    client.agree(plan, goal)?;
    counselor.edit_goal(
        plan,
        goal,
        &GoalEdit {
            status: Some(GoalStatus::Active),
            ..Default::default()
        },
    )?;
    sync(&relay, &counselor, &client, &tokens)?;
    let state = client.plan(plan)?.goal(goal)?.agreement.state;
    println!("   agreement: {}", print::agreement_word(state));

    step(6, "Sam checks in from the phone");
    client.check_in(
        plan,
        goal,
        &NewCheckIn {
            gas_level: Some(0),
            mood: Some(6),
            craving: Some(3),
            note: "Went to the meeting, hard Saturday night".into(),
            ..Default::default()
        },
    )?;
    sync(&relay, &counselor, &client, &tokens)?;

    step(
        7,
        "Dana sharpens the clinical statement: the agreement goes stale",
    );
    counselor.edit_goal(
        plan,
        goal,
        &GoalEdit {
            clinical_statement: Some(
                "Client will maintain abstinence from alcohol on weekends, verified by self-report \
                 at each session (ASAM dimension 5)."
                    .into(),
            ),
            ..Default::default()
        },
    )?;
    sync(&relay, &counselor, &client, &tokens)?;
    let state = client.plan(plan)?.goal(goal)?.agreement.state;
    println!("   agreement: {}", print::agreement_word(state));

    step(8, "The plan on Sam's phone");
    let on_phone = client.plan(plan)?;
    let on_laptop = counselor.plan(plan)?;
    print::plan(&on_phone, &[], false);
    println!(
        "\nBoth devices hold the same plan: {}",
        if on_phone == on_laptop { "yes" } else { "NO" }
    );
    relay.stop();
    Ok(())
}
