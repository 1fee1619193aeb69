//! Typed identifiers: UUIDs for plans, members, goals and entries; 16-byte hex for devices.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(into = "String", try_from = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
            /// Parses the hyphenated or simple UUID form.
            pub fn parse(text: &str) -> Result<Self> {
                Uuid::parse_str(text.trim())
                    .map(Self)
                    .map_err(|_| Error::invalid($field, "not a valid id"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::parse(&s)
            }
        }
    };
}

uuid_id!(
    /// One goal plan (one Automerge document).
    PlanId,
    "plan id"
);
uuid_id!(
    /// A person: a client or a counselor, across all their devices.
    MemberId,
    "member id"
);
uuid_id!(
    /// A goal inside a plan.
    GoalId,
    "goal id"
);
uuid_id!(
    /// A SMART objective of a goal.
    ObjectiveId,
    "objective id"
);
uuid_id!(
    /// An intervention (strategy) of a goal.
    InterventionId,
    "intervention id"
);
uuid_id!(
    /// One check-in entry.
    CheckInId,
    "check-in id"
);

/// A device: 16 random bytes, written as 32 lowercase hex digits. It is also the device's
/// Automerge actor id, so every change names the device that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DeviceId([u8; 16]);

impl DeviceId {
    /// A fresh random device id.
    pub fn new() -> Self {
        Self(*Uuid::new_v4().as_bytes())
    }
    /// Parses 32 hex digits.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let mut bytes = [0u8; 16];
        if text.len() != 32 {
            return Err(Error::invalid("device id", "expected 32 hex digits"));
        }
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| Error::invalid("device id", "expected 32 hex digits"))?;
        Ok(Self(bytes))
    }
    /// The raw bytes (the Automerge actor id).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
    /// The device as an Automerge actor.
    pub fn actor(&self) -> automerge::ActorId {
        automerge::ActorId::from(&self.0[..])
    }
    /// The device an Automerge actor stands for, when it has the device shape.
    pub fn from_actor(actor: &automerge::ActorId) -> Option<Self> {
        <[u8; 16]>::try_from(actor.to_bytes()).ok().map(Self)
    }
}

impl Default for DeviceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for DeviceId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for DeviceId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let plan = PlanId::new();
        assert_eq!(PlanId::parse(&plan.to_string()).unwrap(), plan);
        assert!(matches!(
            PlanId::parse("nope"),
            Err(Error::InvalidInput {
                field: "plan id",
                ..
            })
        ));
        let device = DeviceId::new();
        assert_eq!(device.to_string().len(), 32);
        assert_eq!(DeviceId::parse(&device.to_string()).unwrap(), device);
        assert_eq!(DeviceId::from_actor(&device.actor()), Some(device));
        assert!(DeviceId::parse("abc").is_err());
        assert!(DeviceId::parse(&"zz".repeat(16)).is_err());
    }
}
