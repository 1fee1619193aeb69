//! A known plan for the export tests: every part a plan has — goals in three states, SMART
//! objectives, interventions, GAS scales, agreements current and stale, check-ins with a
//! correction — built through the public API by a counselor and a client.

use alliance_core::{
    CheckInId, GasEdit, GoalEdit, GoalId, GoalStatus, NewCheckIn, NewIntervention, NewObjective,
    PlanId,
};

use crate::{client, counselor, plan_with_client, Device};

/// The plan and the ids the tests look things up by.
pub struct KnownPlan {
    pub counselor: Device,
    pub client: Device,
    pub plan: PlanId,
    /// Active, agreed by both, rated -1, 0, then 2 corrected to 1 (improving).
    pub sleep: GoalId,
    /// Proposed by the counselor and agreed by both (accepted), never rated.
    pub drinking: GoalId,
    /// On hold; the counselor agreed, then the client changed the words (stale); rated 0, 0.
    pub work: GoalId,
    /// The sleep goal's check-in that was corrected, and its correction.
    pub corrected: CheckInId,
    pub correction: CheckInId,
}

fn day(date: &str, offset_min: i32) -> NewCheckIn {
    NewCheckIn {
        local_date: Some(date.into()),
        tz_offset_min: Some(offset_min),
        ..Default::default()
    }
}

/// Builds the known plan on two in-memory devices, synced.
pub fn known_plan() -> KnownPlan {
    let (dana, sam) = (counselor(), client());
    let plan = plan_with_client(&dana, &sam);
    let (c, s) = (&dana.store, &sam.store);
    c.set_title(plan, "Sam's recovery plan").expect("title");
    c.set_review_on(plan, "2026-09-01").expect("review date");

    let sleep = s
        .propose_goal(plan, "I want to sleep through the night")
        .expect("propose");
    let drinking = c
        .propose_goal(plan, "Fewer drinks at weekends")
        .expect("propose");
    let work = s.propose_goal(plan, "Go back to work").expect("propose");
    dana.sync(&sam);

    c.edit_goal(
        plan,
        sleep,
        &GoalEdit {
            clinical_statement: Some("Client will keep a regular sleep schedule.".into()),
            life_area: Some("Emotional, behavioral or cognitive conditions".into()),
            status: Some(GoalStatus::Active),
            ..Default::default()
        },
    )
    .expect("edit");
    c.add_objective(
        plan,
        sleep,
        &NewObjective {
            text: "In bed by 23:00 on weeknights".into(),
            measure: Some("Weeknights in bed by 23:00".into()),
            target: Some(5.0),
            unit: Some("nights per week".into()),
            due_on: Some("2026-06-30".into()),
        },
    )
    .expect("objective");
    c.add_objective(
        plan,
        sleep,
        &NewObjective {
            text: "Keep a sleep diary".into(),
            ..Default::default()
        },
    )
    .expect("objective");
    c.add_intervention(
        plan,
        sleep,
        &NewIntervention {
            text: "Sleep hygiene psychoeducation".into(),
            owner: Some(dana.me.member_id),
            frequency: Some("weekly, 30 minutes".into()),
        },
    )
    .expect("intervention");
    c.add_intervention(
        plan,
        sleep,
        &NewIntervention {
            text: "Wind-down routine".into(),
            owner: Some(sam.me.member_id),
            frequency: Some("nightly".into()),
        },
    )
    .expect("intervention");
    for (level, text) in [
        (-2, "Awake most nights"),
        (-1, "Awake three or more nights a week"),
        (0, "Sleeps through five nights a week"),
        (1, "Sleeps through six nights a week"),
    ] {
        c.set_gas(
            plan,
            sleep,
            &GasEdit::Level {
                level,
                text: text.into(),
            },
        )
        .expect("gas level");
    }
    c.set_gas(plan, sleep, &GasEdit::Weight(2.0))
        .expect("weight");
    c.set_gas(plan, sleep, &GasEdit::Baseline(-1))
        .expect("baseline");
    dana.sync(&sam);
    s.set_gas(
        plan,
        sleep,
        &GasEdit::Level {
            level: 2,
            text: "Sleeps through every night".into(),
        },
    )
    .expect("client's gas level");
    c.edit_goal(
        plan,
        work,
        &GoalEdit {
            status: Some(GoalStatus::OnHold),
            life_area: Some("Employment".into()),
            ..Default::default()
        },
    )
    .expect("edit");
    dana.sync(&sam);

    for goal in [sleep, drinking, work] {
        c.agree(plan, goal).expect("counselor agrees");
    }
    dana.sync(&sam);
    s.agree(plan, sleep).expect("client agrees");
    s.agree(plan, drinking).expect("client agrees");
    s.edit_goal(
        plan,
        work,
        &GoalEdit {
            client_words: Some("Go back to work part-time".into()),
            ..Default::default()
        },
    )
    .expect("client rewords");

    let mut first = day("2026-03-01", -300);
    first.gas_level = Some(-1);
    first.mood = Some(4);
    first.craving = Some(6);
    first.note = "Rough night".into();
    s.check_in(plan, sleep, &first).expect("check-in");
    let mut second = day("2026-03-02", -300);
    second.gas_level = Some(0);
    second.value = Some(4.0);
    s.check_in(plan, sleep, &second).expect("check-in");
    let mut third = day("2026-03-03", 60);
    third.gas_level = Some(2);
    let corrected = s.check_in(plan, sleep, &third).expect("check-in");
    let correction = s
        .check_in(
            plan,
            sleep,
            &NewCheckIn {
                gas_level: Some(1),
                corrects: Some(corrected),
                ..Default::default()
            },
        )
        .expect("correction");
    for date in ["2026-03-02", "2026-03-03"] {
        let mut checkin = day(date, 60);
        checkin.gas_level = Some(0);
        s.check_in(plan, work, &checkin).expect("check-in");
    }
    dana.sync(&sam);
    KnownPlan {
        counselor: dana,
        client: sam,
        plan,
        sleep,
        drinking,
        work,
        corrected,
        correction,
    }
}
