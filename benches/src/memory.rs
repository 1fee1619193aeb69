//! Peak memory of a device process holding 500 plans: listing them (the catalog, no
//! document loaded) against only opening the store, and against reading every plan.

use std::path::Path;

use alliance_core::Alliance;

use crate::fixture::Result;
use crate::process::{own_peak_kib, report, run_to_end, this_binary};

/// What the child does with the store.
pub fn child(action: &str, db: &Path) -> Result<()> {
    let store = Alliance::open(db)?;
    let plans = match action {
        "open" => 0,
        "list" => store.list_plans()?.len(),
        "read-all" => {
            let ids = store.plan_ids()?;
            for plan in &ids {
                std::hint::black_box(store.plan(*plan)?);
            }
            ids.len()
        }
        other => return Err(format!("unknown memory action {other}").into()),
    };
    report(&[
        ("plans", plans as f64),
        ("peak_kib", own_peak_kib()? as f64),
    ]);
    Ok(())
}

pub struct Peaks {
    pub open: f64,
    pub list: f64,
    pub read_all: f64,
    pub listed: f64,
}

pub fn measure(db: &Path) -> Result<Peaks> {
    let db = db.to_string_lossy();
    let run = |action: &str| run_to_end(this_binary(&["memory", action, &db])?);
    let open = run("open")?.get("peak_kib")?;
    let list = run("list")?;
    let read_all = run("read-all")?.get("peak_kib")?;
    Ok(Peaks {
        open,
        listed: list.get("plans")?,
        list: list.get("peak_kib")?,
        read_all,
    })
}
