//! Relay tokens: the secret a device presents to a relay to sync the plans it is enrolled in.
//! A counselor issues one per enrolled device and hands it over in person; revoking the device
//! makes relays refuse it. Tokens are returned to the shell and never logged or put in an error.

use alliance_core::sync::token::check_token;

use crate::alliance::Alliance;
use crate::error::ApiError;
use crate::inputs::parse;

/// Checks the shape of a token the shell passed (64 hex digits), never echoing it.
pub(crate) fn checked_token(token: String) -> Result<String, ApiError> {
    check_token(&token).map_err(|_| ApiError::InvalidInput {
        reason: "relay token: expected 64 hex digits".into(),
    })?;
    Ok(token)
}

#[uniffi::export]
impl Alliance {
    /// Issues a relay token for a device enrolled in the plan (counselor) and returns it, to be
    /// shown once and handed to the device in person. The plan keeps only its SHA-256.
    /// `reuse_token` records a token the device already holds for its other plans; otherwise a
    /// new one is made. Issuing again replaces the device's token for this plan.
    /// A client is `NotAllowed`; a device not enrolled in the plan is `NotFound`.
    pub async fn issue_device_token(
        &self,
        plan_id: String,
        device_id: String,
        reuse_token: Option<String>,
    ) -> Result<String, ApiError> {
        let (plan, device) = (parse(&plan_id)?, parse(&device_id)?);
        let reuse = reuse_token.map(checked_token).transpose()?;
        self.run(move |store| Ok(store.issue_device_token(plan, device, reuse.as_deref())?))
            .await
    }

    /// Revokes a device enrolled in the plan (counselor): relays refuse its token for this plan
    /// once they receive the change. A client is `NotAllowed`; a device not enrolled in the plan
    /// is `NotFound`.
    pub async fn revoke_device(&self, plan_id: String, device_id: String) -> Result<(), ApiError> {
        let (plan, device) = (parse(&plan_id)?, parse(&device_id)?);
        self.run(move |store| Ok(store.revoke_device(plan, device)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_of_64_hex_digits_passes_and_anything_else_is_invalid_without_an_echo() {
        let token = alliance_core::sync::generate_token();
        assert_eq!(checked_token(token.clone()).unwrap(), token);
        // A non-hex digit in place of the first: always a change (a replace of 'a' was not,
        // for the one token in ~60 that holds no 'a').
        let non_hex = format!("g{}", &token[1..]);
        for bad in ["", "abc", &format!("{token}0"), &non_hex] {
            match checked_token(bad.to_owned()) {
                Err(ApiError::InvalidInput { reason }) => {
                    assert!(bad.is_empty() || !reason.contains(bad), "{reason}")
                }
                other => panic!("expected InvalidInput, got {other:?}"),
            }
        }
    }
}
