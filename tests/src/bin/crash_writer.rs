//! The writer the crash-safety test kills: makes edits to one plan through the Alliance API
//! and prints each one on stdout, flushed, only after the API returned — an acknowledged edit.
//!
//! `crash_writer DB PLAN_ID RUN [KEY_FILE]` writes until killed. Lines:
//! `goal GOAL_ID WORDS`, `checkin GOAL_ID CHECKIN_ID NOTE`, `title TEXT`.

use std::io::Write;
use std::path::Path;

use alliance_core::{Alliance, NewCheckIn, PlanId, StoreKey};

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, plan, run, rest @ ..] = args.as_slice() else {
        return Err("usage: crash_writer DB PLAN_ID RUN [KEY_FILE]".into());
    };
    let plan = PlanId::parse(plan)?;
    let store = match rest.first() {
        Some(key_file) => {
            let key = StoreKey::from_slice(&std::fs::read(key_file)?)?;
            Alliance::open_encrypted(Path::new(db), &key)?
        }
        None => Alliance::open(Path::new(db))?,
    };
    let mut out = std::io::stdout().lock();
    let mut goal = None;
    for step in 0u64.. {
        let tag = format!("{run}-{step}");
        match (step % 3, goal) {
            (1, Some(goal)) => {
                let note = format!("crash-note-{tag}");
                let checkin = NewCheckIn {
                    note: note.clone(),
                    ..NewCheckIn::default()
                };
                let id = store.check_in(plan, goal, &checkin)?;
                writeln!(out, "checkin {goal} {id} {note}")?;
            }
            (2, _) => {
                let title = format!("crash-title-{tag}");
                store.set_title(plan, &title)?;
                writeln!(out, "title {title}")?;
            }
            _ => {
                let words = format!("crash-goal-{tag}");
                let id = store.propose_goal(plan, &words)?;
                goal = Some(id);
                writeln!(out, "goal {id} {words}")?;
            }
        }
        out.flush()?;
    }
    Ok(())
}
