//! Relay vouchers (SECURITY.md §6, Peers that cannot sign): a device enrolled without a key (a
//! JS automerge-repo app) cannot sign its changes, so the relay it pushes them to with its own
//! token signs for it. A voucher is the relay's Ed25519 signature over a domain tag, the
//! change hash and the device id; it travels in the change's signature record (the record of
//! a keyless device's change holds its voucher), and devices accept a keyless device's change
//! only with a valid voucher by the relay key their plan pins (`relay_key`).

use automerge::ChangeHash;
use ed25519_dalek::Signer;

use super::{DeviceKey, PublicKey, Signature};
use crate::model::DeviceId;

/// The rule a change is refused for when it names a device without a recorded key, in a plan
/// that pins a relay key, and carries no valid voucher by that key: a forgery.
pub const UNVOUCHED: &str = "is not vouched for by the plan's relay for the device it names";

/// What a voucher signs: a tag no change hash starts with, the change hash (32 bytes) and the
/// device id (16 bytes), so a voucher is never taken for a device's own signature nor moved
/// to another device's change.
fn message(change: &ChangeHash, device: DeviceId) -> [u8; 24 + 32 + 16] {
    const TAG: &[u8; 24] = b"alliance relay voucher 1";
    let mut out = [0u8; 24 + 32 + 16];
    out[..24].copy_from_slice(TAG);
    out[24..56].copy_from_slice(&change.0);
    out[56..].copy_from_slice(device.as_bytes());
    out
}

/// The relay's voucher (with its key `relay`) for `change`, written by `device`.
pub fn vouch(relay: &DeviceKey, change: &ChangeHash, device: DeviceId) -> Signature {
    Signature(relay.0.sign(&message(change, device)).to_bytes())
}

/// Whether `voucher` is `relay`'s voucher for `change` by `device` (strict verification).
pub fn verifies(
    relay: &PublicKey,
    change: &ChangeHash,
    device: DeviceId,
    voucher: &Signature,
) -> bool {
    let signature = ed25519_dalek::Signature::from_bytes(&voucher.0);
    relay
        .0
        .verify_strict(&message(change, device), &signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voucher_holds_only_for_its_relay_change_and_device() {
        let relay = DeviceKey::generate().unwrap();
        let other = DeviceKey::generate().unwrap();
        let (change, device) = (ChangeHash([5; 32]), DeviceId::new());
        let voucher = vouch(&relay, &change, device);
        assert!(verifies(&relay.public_key(), &change, device, &voucher));
        assert!(!verifies(&other.public_key(), &change, device, &voucher));
        assert!(!verifies(
            &relay.public_key(),
            &ChangeHash([6; 32]),
            device,
            &voucher
        ));
        assert!(!verifies(
            &relay.public_key(),
            &change,
            DeviceId::new(),
            &voucher
        ));
        // A device's own signature over the hash is no voucher, nor the other way round.
        let signed = relay.sign(&change);
        assert!(!verifies(&relay.public_key(), &change, device, &signed));
        assert!(!relay.public_key().verifies(&change, &voucher));
    }
}
