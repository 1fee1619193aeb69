//! Syncs two stores in one process: two in-person sessions (`in_person.rs`) passing frames
//! through memory, the same bytes a Bluetooth or local-network transport in a shell carries.

use std::collections::VecDeque;

use crate::alliance::Alliance;
use crate::error::{Error, Result};
use crate::in_person::InPersonSession;
use crate::model::{DeviceId, PlanId};

/// What one in-process sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSyncReport {
    /// Plans both stores now hold identically.
    pub plans: Vec<PlanId>,
    /// Automerge sync messages exchanged, both directions.
    pub messages: usize,
    /// Bytes of those messages.
    pub bytes: usize,
    /// Own changes of either store that the other one's rules refused, now set aside by the
    /// store that made them (see `Alliance::own_changes_refused`).
    pub refused: Vec<OwnChangeRefused>,
}

/// One of a device's own changes that the other store refused: out of the plan on the device
/// that made it, kept in its `set_aside_changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnChangeRefused {
    pub plan: PlanId,
    /// The device whose change it was.
    pub device: DeviceId,
    /// The change's hash, in hex.
    pub change_hash: String,
    /// The rule it broke, in words without personal data ("builds on a refused change" for a
    /// later change that could not be replayed without it).
    pub rule: String,
}

/// Most frames one in-process sync may take before we call it a failure to converge.
const MAX_FRAMES: usize = 100_000;

/// Syncs every plan one store holds that enrolls the other's device, both ways: two
/// [`InPersonSession`]s joined by an in-memory pipe, the session a shell runs over Bluetooth.
/// Nothing else crosses over.
///
/// Errors: store errors as they come; [`Error::SyncMessage`] when the stores do not converge
/// within a bound of frames (a fault, not a state the data can reach).
pub fn sync_stores(a: &Alliance, b: &Alliance) -> Result<LocalSyncReport> {
    let mut sessions = [InPersonSession::new(a)?, InPersonSession::new(b)?];
    // waiting[i]: frames on their way to sessions[i].
    let mut waiting: [VecDeque<Vec<u8>>; 2] = [VecDeque::new(), VecDeque::new()];
    waiting[1].extend(sessions[0].start());
    waiting[0].extend(sessions[1].start());
    let mut frames = 0usize;
    loop {
        if waiting.iter().all(VecDeque::is_empty) {
            // A quiet link: each side says whether it has more.
            waiting[1].extend(sessions[0].poll()?);
            waiting[0].extend(sessions[1].poll()?);
            if waiting.iter().all(VecDeque::is_empty) {
                break;
            }
        }
        for to in [0, 1] {
            if let Some(frame) = waiting[to].pop_front() {
                frames += 1;
                let answer = sessions[to].receive(&frame)?;
                waiting[1 - to].extend(answer);
            }
        }
        if frames > MAX_FRAMES {
            return Err(Error::SyncMessage(format!(
                "the stores did not converge in {MAX_FRAMES} frames"
            )));
        }
    }
    let [first, second] = sessions.map(|s| s.report());
    let messages = first.sync_messages_sent + second.sync_messages_sent;
    let bytes = first.sync_bytes_sent + second.sync_bytes_sent;
    let mut plans = first.plans;
    plans.extend(second.plans);
    plans.sort();
    plans.dedup();
    let mut refused = first.refused;
    refused.extend(second.refused);
    Ok(LocalSyncReport {
        plans,
        messages,
        bytes,
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GoalEdit, GoalStatus, NewCheckIn, Role};
    use crate::NewPlan;

    fn check_in(note: &str) -> NewCheckIn {
        NewCheckIn {
            note: note.into(),
            mood: Some(5),
            ..NewCheckIn::default()
        }
    }

    #[test]
    fn refusals_go_back_to_the_sender_which_sets_them_aside_and_syncs_on() {
        let counselor = Alliance::open_in_memory().unwrap();
        let client = Alliance::open_in_memory().unwrap();
        counselor.init("Dana", Role::Counselor, None).unwrap();
        let sam = client.init("Sam", Role::Client, None).unwrap();
        let plan = counselor
            .create_plan(&NewPlan {
                title: "Plan".into(),
                client_name: "Sam".into(),
                client_member: Some(sam.member_id),
                client_device: Some(sam.device_id),
            })
            .unwrap();
        let goal = counselor.propose_goal(plan, "Sleep").unwrap();
        assert!(sync_stores(&counselor, &client).unwrap().refused.is_empty());
        let status = GoalEdit {
            status: Some(GoalStatus::Active),
            ..GoalEdit::default()
        };
        client.edit_goal_unchecked(plan, goal, &status).unwrap();
        client.check_in(plan, goal, &check_in("walked")).unwrap();

        // Either store may start: the client's change is reported, as the client's.
        let report = sync_stores(&counselor, &client).unwrap();
        assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
        let refused = &report.refused[0];
        assert_eq!((refused.plan, refused.device), (plan, sam.device_id));
        assert_eq!(refused.rule, "only a counselor writes a goal's status");
        assert_eq!(client.set_aside_changes(plan).unwrap().len(), 2);
        let on_counselor = counselor.plan(plan).unwrap();
        assert_eq!(on_counselor, client.plan(plan).unwrap());
        let goal_there = on_counselor.goal(goal).unwrap();
        assert_eq!(goal_there.status, GoalStatus::Proposed);
        assert_eq!(goal_there.checkins.len(), 1);
        // Told once; later edits flow.
        client.check_in(plan, goal, &check_in("slept")).unwrap();
        let again = sync_stores(&client, &counselor).unwrap();
        assert!(again.refused.is_empty(), "{:?}", again.refused);
        assert_eq!(
            counselor
                .plan(plan)
                .unwrap()
                .goal(goal)
                .unwrap()
                .checkins
                .len(),
            2
        );
        assert_eq!(counselor.plan(plan).unwrap(), client.plan(plan).unwrap());
    }

    /// Both devices edit one goal offline, then sync: every edit of both is in both stores,
    /// whatever the random ids make of the Bloom filters. About one round in a hundred once
    /// lost the counselor's objective on both stores: a change sent ahead of its dependency
    /// lost its signature while it waited, and was refused as unsigned.
    #[test]
    fn concurrent_offline_edits_of_one_goal_all_arrive_every_time() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..100 {
            // Half in memory, half in files, as the bindings' suites open them.
            let (counselor, client) = if round % 2 == 0 {
                (
                    Alliance::open_in_memory().unwrap(),
                    Alliance::open_in_memory().unwrap(),
                )
            } else {
                let path = |who: &str| dir.path().join(format!("{who}-{round}.db"));
                (
                    Alliance::open(&path("counselor")).unwrap(),
                    Alliance::open(&path("client")).unwrap(),
                )
            };
            counselor.init("Dana", Role::Counselor, None).unwrap();
            let sam = client.init("Sam", Role::Client, None).unwrap();
            let plan = counselor
                .create_plan(&NewPlan {
                    title: "Sleep and work".into(),
                    client_name: "Sam".into(),
                    client_member: Some(sam.member_id),
                    client_device: None,
                })
                .unwrap();
            counselor
                .enroll_device(
                    plan,
                    &crate::alliance::NewDevice {
                        device: sam.device_id,
                        member: sam.member_id,
                        new_member: None,
                        label: "Sam's phone".into(),
                    },
                )
                .unwrap();
            sync_stores(&counselor, &client).unwrap();
            let goal = client.propose_goal(plan, "Asleep before midnight").unwrap();
            sync_stores(&client, &counselor).unwrap();

            let statement = GoalEdit {
                clinical_statement: Some("Delayed sleep phase".into()),
                ..GoalEdit::default()
            };
            counselor.edit_goal(plan, goal, &statement).unwrap();
            let objective = crate::model::NewObjective {
                text: "Lights out by 23:30".into(),
                measure: Some("nights".into()),
                target: Some(5.0),
                ..crate::model::NewObjective::default()
            };
            counselor.add_objective(plan, goal, &objective).unwrap();
            counselor.set_review_on(plan, "2026-04-01").unwrap();
            let rated = NewCheckIn {
                gas_level: Some(1),
                note: "good night".into(),
                ..NewCheckIn::default()
            };
            client.check_in(plan, goal, &rated).unwrap();
            let level = crate::model::GasEdit::Level {
                level: 0,
                text: "Asleep by midnight 4 nights a week".into(),
            };
            client.set_gas(plan, goal, &level).unwrap();

            let report = sync_stores(&client, &counselor).unwrap();
            assert!(
                report.refused.is_empty(),
                "round {round}: {:?}",
                report.refused
            );
            let on_counselor = counselor.plan(plan).unwrap();
            assert_eq!(on_counselor, client.plan(plan).unwrap(), "round {round}");
            let there = on_counselor.goal(goal).unwrap();
            assert_eq!(there.objectives.len(), 1, "round {round}");
            assert_eq!(there.checkins.len(), 1, "round {round}");
            assert_eq!(
                on_counselor.review_on.as_deref(),
                Some("2026-04-01"),
                "round {round}"
            );
        }
    }
}
