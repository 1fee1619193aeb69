//! A plan's history: every change with its author (member, device), time and description.

use automerge::Automerge;

use super::read::read_plan;
use crate::model::{DeviceId, HistoryEntry};

pub fn history(doc: &Automerge) -> Vec<HistoryEntry> {
    let plan = read_plan(doc).ok();
    doc.get_changes(&[])
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
