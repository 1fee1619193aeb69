//! P1 and P5, authorship's share: signing one change hash (what every durable edit adds) and
//! verifying one signature (what every change a device or relay accepts from a peer adds),
//! with this build's Ed25519 (`alliance_core::authorship`).

use std::time::{Duration, Instant};

use alliance_core::authorship::DeviceKey;
use automerge::ChangeHash;

use crate::fixture::Result;

const SAMPLES: usize = 2_000;

pub struct SigningCost {
    pub sign: Vec<Duration>,
    pub verify: Vec<Duration>,
}

/// Times `SAMPLES` signatures and verifications of distinct change hashes.
pub fn measure() -> Result<SigningCost> {
    let key = DeviceKey::generate()?;
    let public = key.public_key();
    let mut cost = SigningCost {
        sign: Vec::with_capacity(SAMPLES),
        verify: Vec::with_capacity(SAMPLES),
    };
    for n in 0..SAMPLES {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
        let change = ChangeHash(bytes);
        let started = Instant::now();
        let signature = key.sign(&change);
        cost.sign.push(started.elapsed());
        let started = Instant::now();
        let valid = public.verifies(&change, &signature);
        cost.verify.push(started.elapsed());
        if !valid {
            return Err("a signature did not verify".into());
        }
    }
    Ok(cost)
}
