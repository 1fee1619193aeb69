//! Syncs two stores in one process by passing sync messages between them: the same bytes a
//! Bluetooth or local-network transport in a shell would carry.

use crate::alliance::Alliance;
use crate::error::{Error, Result};
use crate::model::{DeviceId, PlanId};
use crate::own_refusals;

/// What one in-process sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSyncReport {
    /// Plans both stores now hold identically.
    pub plans: Vec<PlanId>,
    /// Sync messages exchanged, both directions.
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

/// Most rounds one plan may take before we call it a failure to converge.
const MAX_ROUNDS: usize = 64;

/// Syncs every plan the two stores share: plans both hold, and plans one holds in which the
/// other's device is enrolled. Nothing else crosses over.
pub fn sync_stores(a: &Alliance, b: &Alliance) -> Result<LocalSyncReport> {
    let a_me = a.identity().ok_or(Error::NotInitialized)?;
    let b_me = b.identity().ok_or(Error::NotInitialized)?;
    let a_peer = a_me.device_id.to_string();
    let b_peer = b_me.device_id.to_string();
    let mut shared = Vec::new();
    for (from, to_device, to) in [(a, b_me.device_id, b), (b, a_me.device_id, a)] {
        for plan in from.plan_ids()? {
            if shared.contains(&plan) {
                continue;
            }
            if to.has_plan(plan)? || from.plan(plan)?.device(to_device).is_some() {
                shared.push(plan);
            }
        }
    }
    shared.sort();
    let mut report = LocalSyncReport {
        plans: shared.clone(),
        ..Default::default()
    };
    for plan in shared {
        let mut converged = false;
        for _ in 0..MAX_ROUNDS {
            let mut quiet = true;
            for (from, from_me, from_peer, to, to_peer) in [
                (a, &a_me, &a_peer, b, &b_peer),
                (b, &b_me, &b_peer, a, &a_peer),
            ] {
                let Some(message) = from.generate_sync_message(plan, to_peer)? else {
                    continue;
                };
                quiet = false;
                report.messages += 1;
                report.bytes += message.len();
                let receipt = to.receive_sync_message(plan, from_peer, &message)?;
                if receipt.refused.is_empty() {
                    continue;
                }
                // What a relay's refused notice does: the sender sets its own refused changes
                // aside, so its later ones are not refused behind them.
                let refused: Vec<(String, String)> = receipt
                    .refused
                    .into_iter()
                    .map(|r| (r.change_hash, r.rule))
                    .collect();
                for (change_hash, rule) in own_refusals::set_aside(from, plan, &refused)? {
                    report.refused.push(OwnChangeRefused {
                        plan,
                        device: from_me.device_id,
                        change_hash,
                        rule,
                    });
                }
            }
            if quiet {
                converged = true;
                break;
            }
        }
        if !converged {
            return Err(Error::SyncMessage(format!(
                "plan {plan} did not converge in {MAX_ROUNDS} rounds"
            )));
        }
    }
    a.end_sync_session(&b_peer);
    b.end_sync_session(&a_peer);
    Ok(report)
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
}
