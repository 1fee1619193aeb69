//! S1: what Alliance adds to an app's download — the size of the stripped `liballiance_ffi.so`
//! built with the `mobile` profile for each ARM ABI. `scripts/bench` cross-builds the libraries
//! and names them in `ALLIANCE_BENCH_FFI_LIBS` (`abi=path` pairs separated by commas).

use crate::fixture::Result;
use crate::report::{Row, Unit};

/// The budget for the 64-bit library (aarch64, Android's arm64-v8a), in bytes: 5 MB, what
/// comparable uniffi libraries ship per ABI.
pub const AARCH64_BUDGET: f64 = 5_000_000.0;

/// One row per library named in `ALLIANCE_BENCH_FFI_LIBS`: aarch64 against its budget, the
/// others reported with aarch64 as their baseline. Errors when the variable is missing or a
/// library cannot be read.
pub fn rows() -> Result<Vec<Row>> {
    let libs = std::env::var("ALLIANCE_BENCH_FFI_LIBS")
        .map_err(|_| "S1 needs ALLIANCE_BENCH_FFI_LIBS (scripts/bench sets it)")?;
    let mut sizes = Vec::new();
    for pair in libs.split(',').filter(|p| !p.trim().is_empty()) {
        let (abi, path) = pair
            .split_once('=')
            .ok_or_else(|| format!("ALLIANCE_BENCH_FFI_LIBS: `{pair}` is not abi=path"))?;
        let bytes = std::fs::metadata(path)
            .map_err(|e| format!("S1: cannot read {path}: {e}"))?
            .len();
        sizes.push((abi.trim().to_owned(), bytes as f64));
    }
    let aarch64 = sizes
        .iter()
        .find(|(abi, _)| abi == "aarch64")
        .map(|(_, bytes)| *bytes);
    Ok(sizes
        .iter()
        .map(|(abi, bytes)| {
            let measure = format!("stripped liballiance_ffi.so, {abi} (profile mobile)");
            if abi == "aarch64" {
                Row::limit("S1", &measure, Unit::Bytes, *bytes, AARCH64_BUDGET)
            } else {
                Row::info("S1", &measure, Unit::Bytes, *bytes, aarch64)
            }
        })
        .collect())
}
