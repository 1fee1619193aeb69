//! Document ids of automerge-repo: bs58check of a plan's 16 UUID bytes, and `automerge:` URLs.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::error::SyncError;

/// The prefix of an automerge-repo document URL.
pub const URL_PREFIX: &str = "automerge:";

/// The id automerge-repo gives a document: 16 bytes, written as bs58check.
///
/// A plan's document id is its plan UUID's bytes, so `automerge:<id>` URLs open plans in any
/// automerge-repo peer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId([u8; 16]);

impl DocumentId {
    /// The document id of a plan (or any document named by a UUID).
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(*uuid.as_bytes())
    }

    /// The UUID these 16 bytes spell.
    pub fn as_uuid(&self) -> Uuid {
        Uuid::from_bytes(self.0)
    }

    /// A document id from its raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the bs58check form (what travels in `documentId` fields).
    pub fn parse(text: &str) -> Result<Self, SyncError> {
        if text.is_empty() {
            return Err(SyncError::InvalidDocumentId("empty"));
        }
        // 16 bytes + 4 check bytes never need more than 28 base58 digits.
        if text.len() > 28 {
            return Err(SyncError::InvalidDocumentId("too long"));
        }
        let bytes =
            bs58::decode(text)
                .with_check(None)
                .into_vec()
                .map_err(|error| match error {
                    bs58::decode::Error::InvalidChecksum { .. } => {
                        SyncError::InvalidDocumentId("checksum mismatch")
                    }
                    bs58::decode::Error::NoChecksum => SyncError::InvalidDocumentId("too short"),
                    _ => SyncError::InvalidDocumentId("not base58"),
                })?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| SyncError::InvalidDocumentId("not 16 bytes"))?;
        Ok(Self(bytes))
    }

    /// Parses an `automerge:<document id>` URL. URLs pinned to heads (`#…`) are refused: a plan
    /// is always opened at its newest version.
    pub fn from_url(url: &str) -> Result<Self, SyncError> {
        let rest = url
            .trim()
            .strip_prefix(URL_PREFIX)
            .ok_or(SyncError::InvalidUrl("does not start with `automerge:`"))?;
        if rest.contains('#') {
            return Err(SyncError::InvalidUrl(
                "URLs pinned to heads are not supported",
            ));
        }
        Self::parse(rest).map_err(|_| SyncError::InvalidUrl("bad document id"))
    }

    /// Parses either a bare document id or an `automerge:` URL.
    pub fn from_id_or_url(text: &str) -> Result<Self, SyncError> {
        let text = text.trim();
        if text.starts_with(URL_PREFIX) {
            Self::from_url(text)
        } else {
            Self::parse(text)
        }
    }

    /// The `automerge:<document id>` URL.
    pub fn to_url(&self) -> String {
        format!("{URL_PREFIX}{self}")
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.0).with_check().into_string())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl FromStr for DocumentId {
    type Err = SyncError;
    fn from_str(s: &str) -> Result<Self, SyncError> {
        Self::parse(s)
    }
}

impl From<Uuid> for DocumentId {
    fn from(uuid: Uuid) -> Self {
        Self::from_uuid(uuid)
    }
}

impl From<DocumentId> for Uuid {
    fn from(id: DocumentId) -> Self {
        id.as_uuid()
    }
}

/// The `automerge:` URL of the plan with this UUID.
pub fn plan_url(plan: Uuid) -> String {
    DocumentId::from_uuid(plan).to_url()
}

/// The plan UUID named by an `automerge:` URL.
pub fn parse_plan_url(url: &str) -> Result<Uuid, SyncError> {
    DocumentId::from_url(url).map(|id| id.as_uuid())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed with automerge-repo 2.5.6's `stringifyAutomergeUrl` (bs58check) in node.
    const UUID: &str = "9b2f4c1e-8d3a-4f6b-a1c2-3d4e5f607182";
    const JS_ID: &str = "3APv7dCA4yNK5y5HxwTGR7VpRu3D";

    #[test]
    fn matches_automerge_repo_encoding() {
        let uuid = Uuid::parse_str(UUID).unwrap();
        let id = DocumentId::from_uuid(uuid);
        assert_eq!(id.to_string(), JS_ID);
        assert_eq!(id.to_url(), format!("automerge:{JS_ID}"));
        assert_eq!(DocumentId::parse(JS_ID).unwrap().as_uuid(), uuid);
        assert_eq!(parse_plan_url(&plan_url(uuid)).unwrap(), uuid);
    }

    #[test]
    fn round_trips_random_ids() {
        for _ in 0..200 {
            let uuid = Uuid::new_v4();
            let id = DocumentId::from(uuid);
            assert_eq!(id.to_string().parse::<DocumentId>().unwrap(), id);
            assert_eq!(DocumentId::from_id_or_url(&id.to_url()).unwrap(), id);
            assert_eq!(DocumentId::from_id_or_url(&id.to_string()).unwrap(), id);
        }
    }

    #[test]
    fn refuses_bad_ids() {
        let mut corrupted = JS_ID.to_string();
        corrupted.replace_range(0..1, "4");
        assert!(matches!(
            DocumentId::parse(&corrupted),
            Err(SyncError::InvalidDocumentId("checksum mismatch"))
        ));
        assert!(matches!(
            DocumentId::parse("0OIl"),
            Err(SyncError::InvalidDocumentId("not base58"))
        ));
        assert!(matches!(
            DocumentId::parse(""),
            Err(SyncError::InvalidDocumentId("empty"))
        ));
        // bs58check of 8 bytes: valid checksum, wrong length.
        let short = bs58::encode([1u8; 8]).with_check().into_string();
        assert!(matches!(
            DocumentId::parse(&short),
            Err(SyncError::InvalidDocumentId("not 16 bytes"))
        ));
        let long = bs58::encode([1u8; 32]).with_check().into_string();
        assert!(DocumentId::parse(&long).is_err());
    }

    #[test]
    fn refuses_bad_urls() {
        assert!(matches!(
            DocumentId::from_url(JS_ID),
            Err(SyncError::InvalidUrl(_))
        ));
        assert!(matches!(
            DocumentId::from_url(&format!("automerge:{JS_ID}#abc")),
            Err(SyncError::InvalidUrl(_))
        ));
        assert!(matches!(
            DocumentId::from_url("automerge:nope"),
            Err(SyncError::InvalidUrl(_))
        ));
        assert!(matches!(
            DocumentId::from_url("https://example.org"),
            Err(SyncError::InvalidUrl(_))
        ));
    }
}
