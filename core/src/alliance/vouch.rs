//! The relay's token binding, checked in the transaction that stores a pushed message: a plan
//! may newly list only the tokens its pusher can vouch for (see
//! [`crate::sync::TokenVoucher`]), so no device plants plans on someone else's token and a
//! plan that does not list its pusher under open enrollment is never stored.

use super::Inner;
use crate::error::{Error, Result};
use crate::model::PlanId;
use crate::store;
use crate::sync::TokenVoucher;

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
        {
            return Err(Error::not_allowed(
                "a plan lists a relay token that its pusher cannot vouch for",
            ));
        }
    }
    let listed = devices
        .iter()
        .any(|d| !d.revoked && d.token_hash.as_deref() == Some(voucher.token_hash.as_str()));
    if voucher.must_be_listed && !listed {
        return Err(Error::not_allowed(
            "a new plan must list the token that pushes it",
        ));
    }
    Ok(())
}
