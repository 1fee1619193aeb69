//! Syncs two stores in one process by passing sync messages between them: the same bytes a
//! Bluetooth or local-network transport in a shell would carry.

use crate::alliance::Alliance;
use crate::error::{Error, Result};
use crate::model::PlanId;

/// What one in-process sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSyncReport {
    /// Plans both stores now hold identically.
    pub plans: Vec<PlanId>,
    /// Sync messages exchanged, both directions.
    pub messages: usize,
    /// Bytes of those messages.
    pub bytes: usize,
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
            if let Some(message) = a.generate_sync_message(plan, &b_peer)? {
                quiet = false;
                report.messages += 1;
                report.bytes += message.len();
                b.receive_sync_message(plan, &a_peer, &message)?;
            }
            if let Some(message) = b.generate_sync_message(plan, &a_peer)? {
                quiet = false;
                report.messages += 1;
                report.bytes += message.len();
                a.receive_sync_message(plan, &b_peer, &message)?;
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
