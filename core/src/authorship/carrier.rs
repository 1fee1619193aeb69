//! How change signatures travel beside an Automerge sync message (`docs/sync.md`, Signed
//! changes). Inside Alliance a sync message is an *envelope*: a mark byte no Automerge sync
//! message starts with, a version, the signature records, then the Automerge message unchanged.
//! `generate_sync_message` returns envelopes and `receive_sync_message` takes them (or a plain
//! Automerge message, from a peer that signs nothing), so in-process sync and the shells' own
//! transports carry signatures as they are. On the WebSocket protocol the envelope is split:
//! `data` holds the Automerge message alone and `allianceSignatures` the records, a field
//! automerge-repo peers ignore.
//!
//! A record is 96 bytes: the change hash (32) and the author's Ed25519 signature over it (64).

use automerge::sync;
use automerge::ChangeHash;
use sha2::{Digest, Sha256};

use super::{Signature, SIGNATURE_LEN};
use crate::error::{Error, Result};
use crate::plan::chunks;

/// The first byte of an envelope (Automerge sync messages start with 0x42 or 0x43).
const MARK: u8 = 0xA5;
const VERSION: u8 = 1;
/// Mark, version, record count (u32, big-endian).
const HEADER_LEN: usize = 6;
/// Bytes in one record: a change hash and its signature.
pub const RECORD_LEN: usize = 32 + SIGNATURE_LEN;

/// One change's signature, as carried.
pub type Record = (ChangeHash, Signature);

/// `message` with `signatures` beside it; the message unchanged when there are none.
pub fn wrap(message: Vec<u8>, signatures: &[Record]) -> Vec<u8> {
    if signatures.is_empty() {
        return message;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + signatures.len() * RECORD_LEN + message.len());
    out.push(MARK);
    out.push(VERSION);
    out.extend_from_slice(&(signatures.len() as u32).to_be_bytes());
    out.extend_from_slice(&encode_records(signatures));
    out.extend_from_slice(&message);
    out
}

/// The signature records and the Automerge message of `bytes` (an envelope, or a plain
/// message with no records). A damaged envelope is [`Error::SyncMessage`].
pub fn split(bytes: &[u8]) -> Result<(Vec<Record>, &[u8])> {
    let (records, message) = split_raw(bytes)?;
    Ok((decode_records(records)?, message))
}

/// [`split`] without decoding the records: their bytes, and the message.
pub fn split_raw(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    if bytes.first() != Some(&MARK) {
        return Ok((&[], bytes));
    }
    let damaged = || Error::SyncMessage("a damaged signature envelope".into());
    if bytes.get(1) != Some(&VERSION) {
        return Err(Error::SyncMessage(
            "a signature envelope of an unknown version".into(),
        ));
    }
    let count = bytes
        .get(2..HEADER_LEN)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(damaged)?;
    let end = (count as usize)
        .checked_mul(RECORD_LEN)
        .and_then(|len| len.checked_add(HEADER_LEN))
        .filter(|end| *end <= bytes.len())
        .ok_or_else(damaged)?;
    Ok((&bytes[HEADER_LEN..end], &bytes[end..]))
}

/// An envelope from record bytes (as `allianceSignatures` carries them) and a message.
pub fn join(records: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    if records.is_empty() {
        return Ok(message.to_vec());
    }
    let records = decode_records(records)?;
    Ok(wrap(message.to_vec(), &records))
}

/// Records back to back.
pub fn encode_records(signatures: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(signatures.len() * RECORD_LEN);
    for (hash, signature) in signatures {
        out.extend_from_slice(&hash.0);
        out.extend_from_slice(&signature.0);
    }
    out
}

/// Records from their bytes; bytes that are not whole records are [`Error::SyncMessage`].
pub fn decode_records(bytes: &[u8]) -> Result<Vec<Record>> {
    if !bytes.len().is_multiple_of(RECORD_LEN) {
        return Err(Error::SyncMessage(
            "signature records are not whole records".into(),
        ));
    }
    Ok(bytes
        .chunks_exact(RECORD_LEN)
        .filter_map(|record| {
            let hash = ChangeHash::try_from(&record[..32]).ok()?;
            Some((hash, Signature::from_slice(&record[32..])?))
        })
        .collect())
}

/// What changes an Automerge sync message carries, so the sender can put their signatures
/// beside it.
#[derive(Debug, PartialEq, Eq)]
pub enum Carried {
    /// These changes (uncompressed change chunks, read from their headers).
    Changes(Vec<ChangeHash>),
    /// A whole document or a bundle: every change the sender holds may be in it.
    Everything,
}

/// The changes `message` carries.
pub fn carried(message: &sync::Message) -> Carried {
    let mut hashes = Vec::new();
    for blob in message.changes.iter() {
        let Ok(parts) = chunks::split(blob) else {
            return Carried::Everything;
        };
        for chunk in parts {
            match chunk.get(chunks::TYPE_AT) {
                // A change's hash is SHA-256 over its chunk from the type byte on.
                Some(&chunks::CHANGE) => {
                    let digest = Sha256::digest(&chunk[chunks::TYPE_AT..]);
                    match ChangeHash::try_from(digest.as_slice()) {
                        Ok(hash) => hashes.push(hash),
                        Err(_) => return Carried::Everything,
                    }
                }
                _ => return Carried::Everything,
            }
        }
    }
    Carried::Changes(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    #[test]
    fn an_envelope_round_trips_and_a_plain_message_passes() {
        let records = vec![
            (ChangeHash([1; 32]), Signature([2; 64])),
            (ChangeHash([3; 32]), Signature([4; 64])),
        ];
        let message = vec![0x42, 9, 9, 9];
        let wrapped = wrap(message.clone(), &records);
        assert_eq!(split(&wrapped).unwrap(), (records.clone(), &message[..]));
        assert_eq!(split(&message).unwrap(), (Vec::new(), &message[..]));
        assert_eq!(wrap(message.clone(), &[]), message);
        let (raw, rest) = split_raw(&wrapped).unwrap();
        assert_eq!(join(raw, rest).unwrap(), wrapped);
        // Cut inside the records, an unknown version, records not whole: refused.
        assert!(split(&wrapped[..HEADER_LEN + 10]).is_err());
        let mut version = wrapped.clone();
        version[1] = 2;
        assert!(split(&version).is_err());
        assert!(decode_records(&[0; RECORD_LEN + 1]).is_err());
    }

    #[test]
    fn the_changes_a_message_carries_are_named_by_their_hashes() {
        let mut doc = Automerge::new();
        let mut hashes = Vec::new();
        for n in 0..3i64 {
            let mut tx = doc.transaction();
            tx.put(ROOT, "n", n).unwrap();
            hashes.push(tx.commit().0.unwrap());
        }
        let message = sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: doc
                .get_changes(&[])
                .into_iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect::<Vec<_>>()
                .into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        assert_eq!(carried(&message), Carried::Changes(hashes));
    }
}
