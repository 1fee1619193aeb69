//! The enrollment payload: a device id and its public key as one string, the code a counselor
//! scans in person (`alliance whoami --enrollment`, `Alliance::enrollment` in the shells).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::model::DeviceId;

use super::{PublicKey, PUBLIC_KEY_LEN};

/// What a string starts with: says what it is to a person reading it.
const PREFIX: &str = "alliance-device:";
/// The payload's version byte.
const VERSION: u8 = 1;
/// Version, device id, public key.
const PAYLOAD_LEN: usize = 1 + 16 + PUBLIC_KEY_LEN;

/// A device to enroll: its id and public key. As a string
/// `alliance-device:<base58check of version 1, 16 id bytes, 32 key bytes>` (about 90
/// characters): the checksum catches a mistyped or cut-off code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enrollment {
    pub device: DeviceId,
    pub public_key: PublicKey,
}

impl Enrollment {
    /// Parses and checks an enrollment string: prefix, checksum, version, lengths and a usable
    /// public key, each failure a typed [`Error::InvalidInput`] naming no input.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::invalid("enrollment code", reason);
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| invalid("does not start with alliance-device:"))?;
        let bytes = bs58::decode(body)
            .with_check(None)
            .into_vec()
            .map_err(|_| invalid("damaged or mistyped (its checksum does not match)"))?;
        if bytes.len() != PAYLOAD_LEN {
            return Err(invalid("has the wrong length"));
        }
        if bytes[0] != VERSION {
            return Err(invalid("is of an unknown version"));
        }
        let device = DeviceId::from_actor(&automerge::ActorId::from(&bytes[1..17]))
            .ok_or_else(|| invalid("holds no device id"))?;
        let public_key = PublicKey::from_bytes(&bytes[17..])
            .map_err(|_| invalid("holds no usable public key"))?;
        Ok(Self { device, public_key })
    }
}

impl fmt::Display for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.push(VERSION);
        payload.extend_from_slice(self.device.as_bytes());
        payload.extend_from_slice(self.public_key.as_bytes());
        write!(
            f,
            "{PREFIX}{}",
            bs58::encode(payload).with_check().into_string()
        )
    }
}

impl FromStr for Enrollment {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorship::DeviceKey;

    #[test]
    fn an_enrollment_round_trips_and_damage_is_refused() {
        let enrollment = Enrollment {
            device: DeviceId::new(),
            public_key: DeviceKey::generate().unwrap().public_key(),
        };
        let text = enrollment.to_string();
        assert_eq!(Enrollment::parse(&text).unwrap(), enrollment);
        assert_eq!(
            Enrollment::parse(&format!("  {text}\n")).unwrap(),
            enrollment
        );
        // One character changed, cut short, no prefix, another payload: each refused.
        let mut typo: Vec<char> = text.chars().collect();
        let at = typo.len() - 5;
        typo[at] = if typo[at] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        for bad in [
            typo.as_str(),
            &text[..text.len() - 3],
            &text[PREFIX.len()..],
            "alliance-device:",
        ] {
            assert!(
                matches!(Enrollment::parse(bad), Err(Error::InvalidInput { .. })),
                "{bad}"
            );
        }
        let short = bs58::encode([VERSION; 10]).with_check().into_string();
        assert!(Enrollment::parse(&format!("{PREFIX}{short}")).is_err());
        let mut other_version = vec![2u8];
        other_version.extend_from_slice(&[0; PAYLOAD_LEN - 1]);
        let other = bs58::encode(other_version).with_check().into_string();
        assert!(Enrollment::parse(&format!("{PREFIX}{other}")).is_err());
    }
}
