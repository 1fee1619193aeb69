//! Authenticated authorship (SECURITY.md §6): every device signs the changes it makes with an
//! Ed25519 key that never leaves its store, and a change attributed to a device whose public
//! key a plan records is accepted only with that key's signature over its change hash.
//!
//! - [`DeviceKey`] / [`PublicKey`] / [`Signature`]: the key pair and what it makes;
//! - [`Enrollment`]: the device id and public key as one string (the QR code a counselor scans);
//! - [`carrier`]: how signatures travel beside an Automerge sync message;
//! - [`voucher`]: the relay's signature for the changes of a device that cannot sign.

pub mod carrier;
mod enrollment;
pub mod voucher;

use std::fmt;

use automerge::ChangeHash;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub use enrollment::Enrollment;

/// The rule a change is refused for when it names an enrolled device with a registered key
/// but carries no valid signature by that key: a forgery.
pub const FORGED: &str = "is not signed by the key of the device it names";

/// Whether a change was refused for lacking its proof (its author's signature, or the relay's
/// voucher), which says nothing of the change itself: the same change may come again with its
/// proof and is then let in. Such refusals are recorded but not kept against the change, and
/// what builds on it waits for it instead of being refused with it (SECURITY.md §6).
pub fn lacks_proof(rule: &str) -> bool {
    rule == FORGED || rule == voucher::UNVOUCHED
}

/// Bytes in a public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes in a signature.
pub const SIGNATURE_LEN: usize = 64;

/// A device's signing key: 32 secret bytes, made when its identity is made and kept only in its
/// store. `Debug` shows no bytes; the bytes are wiped when it is dropped.
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut())
            .map_err(|e| Error::Malformed(format!("no randomness for a device key: {e}")))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key from its 32 stored bytes; other lengths are [`Error::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            bytes
                .try_into()
                .map_err(|_| Error::Malformed("a stored device key is not 32 bytes".into()))?,
        );
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The 32 secret bytes, for the store only.
    pub(crate) fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public half, recorded in the plans that enroll this device.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs a change by its hash.
    pub fn sign(&self, change: &ChangeHash) -> Signature {
        Signature(self.0.sign(&change.0).to_bytes())
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(…)")
    }
}

/// A device's public key, written in plans as 64 lowercase hex digits
/// (`devices.<id>.public_key`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// A key from its 32 bytes; bytes that are not a usable Ed25519 key (not a curve point, or
    /// a weak one of small order) are [`Error::InvalidInput`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::invalid("public key", "expected 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| Error::invalid("public key", "not an Ed25519 public key"))?;
        if key.is_weak() {
            return Err(Error::invalid("public key", "a weak key"));
        }
        Ok(Self(key))
    }

    /// Parses 64 hex digits (the form plans hold).
    pub fn parse(text: &str) -> Result<Self> {
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| Error::invalid("public key", "expected 64 hex digits"))?;
        Self::from_bytes(&bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// Whether `signature` is this key's over `change` (strict verification: no malleable or
    /// small-order forms).
    pub fn verifies(&self, change: &ChangeHash, signature: &Signature) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0.verify_strict(&change.0, &signature).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// A device's Ed25519 signature over one change hash: 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Signature {
    /// A signature from its 64 bytes; other lengths are None.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_and_change() {
        let key = DeviceKey::generate().unwrap();
        let other = DeviceKey::generate().unwrap();
        let change = ChangeHash([7; 32]);
        let signature = key.sign(&change);
        assert!(key.public_key().verifies(&change, &signature));
        assert!(!other.public_key().verifies(&change, &signature));
        assert!(!key.public_key().verifies(&ChangeHash([8; 32]), &signature));
        let mut flipped = signature;
        flipped.0[3] ^= 1;
        assert!(!key.public_key().verifies(&change, &flipped));
        let again = DeviceKey::from_bytes(key.to_bytes().as_ref()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(format!("{key:?}"), "DeviceKey(…)");
    }

    #[test]
    fn public_keys_parse_from_hex_and_refuse_garbage() {
        let key = DeviceKey::generate().unwrap().public_key();
        assert_eq!(PublicKey::parse(&key.to_string()).unwrap(), key);
        assert!(PublicKey::parse("abcd").is_err());
        assert!(PublicKey::parse(&"zz".repeat(32)).is_err());
        // The identity point has small order: a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::from_bytes(&identity).is_err());
    }
}
