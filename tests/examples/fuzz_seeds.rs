//! Writes the seed corpus of the cargo-fuzz targets in `fuzz/`: valid protocol frames, a
//! plan's whole sync conversation, hostile sync messages (a change bomb, a held-change chain),
//! and saved plan documents, made through the public API.
//!
//! `cargo run -p alliance-tests --example fuzz_seeds -- fuzz/corpus`

use std::path::PathBuf;

use alliance_tests::fuzz_inputs::{frames, hostile_sync_inputs, sync_input, sync_scene};

fn main() -> std::io::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fuzz/corpus"));
    let scene = sync_scene();
    let mut sync = vec![sync_input(
        scene.plan,
        scene.base.iter().chain(&scene.client),
    )];
    sync.push(sync_input(scene.plan, &scene.base));
    for message in &scene.client {
        sync.push(sync_input(scene.plan, scene.base.iter().chain([message])));
    }
    // A change bomb and a held-change chain: refused within the budgets.
    sync.extend(hostile_sync_inputs(&scene));
    let targets = [
        ("sync_frame", frames(&scene)),
        ("sync_message", sync),
        ("plan_load", scene.documents.clone()),
    ];
    for (target, seeds) in targets {
        let folder = root.join(target);
        std::fs::create_dir_all(&folder)?;
        for (index, seed) in seeds.iter().enumerate() {
            std::fs::write(folder.join(format!("seed-{index:02}")), seed)?;
        }
        println!("{}: {} seeds", folder.display(), seeds.len());
    }
    Ok(())
}
