//! A relay on 127.0.0.1 over an in-memory store, for the Kotlin and Swift binding tests:
//! prints its `ws://` URL on the first line of stdout, then serves until it is killed.

use std::error::Error;
use std::io::Write;
use std::sync::Arc;

use alliance_core::sync::{Relay, RelayOptions};
use alliance_core::Alliance;

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let store = Arc::new(Alliance::open_in_memory()?);
    runtime.block_on(async {
        let relay = Relay::bind("127.0.0.1:0", store, RelayOptions::default()).await?;
        let mut out = std::io::stdout();
        writeln!(out, "{}", relay.url())?;
        out.flush()?;
        relay.run().await;
        Ok(())
    })
}
