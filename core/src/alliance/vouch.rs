//! The relay's token binding, checked in the transaction that stores a pushed message: a plan
//! may newly list only the tokens its pusher can vouch for (see
//! [`crate::token::TokenVoucher`]), so no device plants plans on someone else's token and a
//! plan that does not list its pusher under open enrollment is never stored.

use super::Inner;
use crate::error::{Error, Result};
use crate::model::{PlanId, Role};
use crate::store;
use crate::token::{TokenVoucher, CANNOT_VOUCH, NOT_LISTED};

/// Whether the pushing token (`pusher`) belongs to a counselor device of another plan where
/// `hash` is a client's device: a counselor enrolling her client's phone in a second plan with
/// the token it already holds (`--reuse`). Nobody vouches this way for a counselor's token (a
/// client cannot, nor can a colleague), so no one can flood a counselor with plans.
fn counselor_with(inner: &mut Inner, plan: PlanId, pusher: &str, hash: &str) -> Result<bool> {
    let mine = inner.store.read(|tx| store::plans_of_token(tx, pusher))?;
    for (other, device) in mine {
        if other == plan
            || !inner
                .store
                .read(|tx| store::token_hashes_of_plan(tx, other))?
                .iter()
                .any(|h| h == hash)
        {
            continue;
        }
        let doc = &inner.open(other)?.doc;
        let roles = doc.read_for_edit(None, false)?;
        let role_of = |device| roles.member_of_device(device).map(|m| m.role);
        let theirs = doc
            .device_access()
            .into_iter()
            .filter(|d| d.token_hash.as_deref() == Some(hash))
            .map(|d| d.device_id)
            .collect::<Vec<_>>();
        if role_of(device) == Some(Role::Counselor)
            && !theirs.is_empty()
            && theirs.iter().all(|d| role_of(*d) == Some(Role::Client))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The token hashes `plan` lists now (none when it is not stored here): what a message may
/// keep listing without anyone vouching for them.
pub(super) fn listed(inner: &mut Inner, plan: PlanId) -> Vec<String> {
    let stored = inner
        .store
        .read(|tx| store::token_hashes_of_plan(tx, plan))
        .unwrap_or_default();
    let held = match inner.open(plan) {
        Ok(open) => open
            .doc
            .device_access()
            .into_iter()
            .filter_map(|d| d.token_hash)
            .collect(),
        Err(_) => Vec::new(),
    };
    stored.into_iter().chain(held).collect()
}

/// Refuses (and so rolls back) what `inner` is about to commit for `plan` when the plan now
/// lists a token hash that was not in `listed_before`, is not the pusher's, and another plan
/// already lists; or, with `must_be_listed`, when the stored plan does not list the pusher's
/// token unrevoked.
pub(super) fn check(
    inner: &mut Inner,
    plan: PlanId,
    listed_before: &[String],
    voucher: &TokenVoucher,
) -> Result<()> {
    let Some(open) = inner.docs.get(&plan) else {
        return Ok(());
    };
    if !open.doc.is_plan() {
        // Nothing of the plan is stored yet (its changes are held): nothing to bind.
        return Ok(());
    }
    let devices = open.doc.device_access();
    for device in &devices {
        let Some(hash) = device.token_hash.as_deref() else {
            continue;
        };
        if hash == voucher.token_hash || listed_before.iter().any(|h| h == hash) {
            continue;
        }
        if inner
            .store
            .read(|tx| store::token_listed_elsewhere(tx, hash, plan))?
            && !counselor_with(inner, plan, &voucher.token_hash, hash)?
        {
            return Err(Error::not_allowed(CANNOT_VOUCH));
        }
    }
    let listed = devices
        .iter()
        .any(|d| !d.revoked && d.token_hash.as_deref() == Some(voucher.token_hash.as_str()));
    if voucher.must_be_listed && !listed {
        return Err(Error::not_allowed(NOT_LISTED));
    }
    Ok(())
}
