//! A plan's history: every change with its author (member, device), time and description.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use automerge::{Automerge, Change, ChangeHash};

use super::read::read_plan;
use crate::model::{DeviceId, HistoryEntry};

/// Every change in an order every replica agrees on: a change after the changes it builds on;
/// among changes free to go next, the earlier time first, then the smaller hash. (The order
/// Automerge keeps depends on the order changes arrived, which differs between devices.)
fn in_causal_order(changes: Vec<Change>) -> Vec<Change> {
    let hashes: HashMap<ChangeHash, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash(), i))
        .collect();
    let mut waiting_on = vec![0usize; changes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
    for (i, change) in changes.iter().enumerate() {
        for dep in change.deps() {
            if let Some(&d) = hashes.get(dep) {
                waiting_on[i] += 1;
                dependents[d].push(i);
            }
        }
    }
    let key = |i: usize| Reverse((changes[i].timestamp(), changes[i].hash(), i));
    let mut ready: BinaryHeap<_> = (0..changes.len())
        .filter(|&i| waiting_on[i] == 0)
        .map(key)
        .collect();
    let mut order = Vec::with_capacity(changes.len());
    while let Some(Reverse((_, _, i))) = ready.pop() {
        order.push(i);
        for &next in &dependents[i] {
            waiting_on[next] -= 1;
            if waiting_on[next] == 0 {
                ready.push(key(next));
            }
        }
    }
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

pub fn history(doc: &Automerge) -> Vec<HistoryEntry> {
    let plan = read_plan(doc).ok();
    in_causal_order(doc.get_changes(&[]))
        .iter()
        .map(|change| {
            let actor = change.actor_id();
            let member = DeviceId::from_actor(actor)
                .and_then(|device| plan.as_ref()?.member_of_device(device).cloned());
            let description = match change.message() {
                Some(message) if !message.trim().is_empty() => message.to_owned(),
                _ => format!("a change of {} operations", change.len()),
            };
            HistoryEntry {
                hash: change.hash().to_string(),
                at: change.timestamp(),
                device_id: actor.to_hex_string(),
                member_id: member.as_ref().map(|m| m.member_id),
                author: member
                    .map(|m| m.name)
                    .unwrap_or_else(|| "unknown device".to_owned()),
                description,
                refused: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ROOT};

    fn commit(doc: &mut AutoCommit, key: &str, time: i64) {
        doc.put(ROOT, key, time).unwrap();
        doc.commit_with(automerge::transaction::CommitOptions::default().with_time(time));
    }

    #[test]
    fn replicas_list_history_in_one_order_whatever_the_arrival_order() {
        let mut a = AutoCommit::new().with_actor(ActorId::from(vec![1u8; 16]));
        commit(&mut a, "base", 100);
        let mut b = a.fork().with_actor(ActorId::from(vec![2u8; 16]));
        // Concurrent: b's clock says earlier than a's second change, but arrives later at a.
        commit(&mut a, "a", 300);
        commit(&mut b, "b", 200);
        commit(&mut b, "b2", 50); // a skewed clock: still after the change it builds on
        let mut at_a = a.clone();
        at_a.merge(&mut b).unwrap();
        let mut at_b = b.clone();
        at_b.merge(&mut a).unwrap();
        let order = |doc: &mut AutoCommit| -> Vec<i64> {
            in_causal_order(doc.document().get_changes(&[]))
                .iter()
                .map(|c| c.timestamp())
                .collect()
        };
        assert_eq!(order(&mut at_a), order(&mut at_b));
        assert_eq!(order(&mut at_a), vec![100, 200, 50, 300]);
    }
}
