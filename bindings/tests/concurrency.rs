//! Many threads calling one `Alliance` at once: no deadlock, no lost edit.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use alliance_ffi::{Alliance, NewCheckIn, PlanObserver};
use support::{block_on, world};

const THREADS: usize = 8;
const ROUNDS: usize = 6;

/// Counts notifications and, like a shell, reads the plan again from inside the callback.
struct Rereader {
    store: Arc<Alliance>,
    heard: Arc<AtomicUsize>,
}

impl PlanObserver for Rereader {
    fn plan_changed(&self, plan_id: String) {
        self.heard.fetch_add(1, Ordering::SeqCst);
        // Re-entrant: must not deadlock with the write that triggered it.
        let _ = block_on(self.store.plan(plan_id));
    }
}

#[test]
fn eight_threads_on_one_alliance_lose_nothing_and_never_deadlock() {
    let w = world();
    let store = w.client.clone();
    let heard = Arc::new(AtomicUsize::new(0));
    let subscription = store
        .observe(Box::new(Rereader {
            store: store.clone(),
            heard: heard.clone(),
        }))
        .unwrap();

    let (done, finished) = mpsc::channel();
    for t in 0..THREADS {
        let store = store.clone();
        let (plan, goal) = (w.plan_id.clone(), w.goal_id.clone());
        let done = done.clone();
        thread::spawn(move || {
            let outcome = block_on(async {
                let mut written = Vec::new();
                for round in 0..ROUNDS {
                    let proposed = store
                        .propose_goal(plan.clone(), format!("goal {t}.{round}"))
                        .await?;
                    let checked = store
                        .check_in(
                            plan.clone(),
                            goal.clone(),
                            NewCheckIn {
                                note: format!("check-in {t}.{round}"),
                                mood: Some((round % 10) as i32),
                                ..Default::default()
                            },
                        )
                        .await?;
                    // Readers interleave with the writers.
                    store.plan(plan.clone()).await?;
                    store.list_plans().await?;
                    written.push((proposed, checked));
                }
                Ok::<_, alliance_ffi::ApiError>(written)
            });
            let _ = done.send(outcome);
        });
    }
    drop(done);

    let mut goals = HashSet::new();
    let mut checkins = HashSet::new();
    for _ in 0..THREADS {
        let written = finished
            .recv_timeout(Duration::from_secs(120))
            .expect("a thread did not finish: deadlock?")
            .expect("a call failed");
        for (goal, checkin) in written {
            goals.insert(goal);
            checkins.insert(checkin);
        }
    }
    assert_eq!(goals.len(), THREADS * ROUNDS);
    assert_eq!(checkins.len(), THREADS * ROUNDS);

    let plan = block_on(store.plan(w.plan_id.clone())).unwrap();
    assert_eq!(plan.goals.len(), 1 + THREADS * ROUNDS, "no goal lost");
    let stored: HashSet<String> = plan.goals.iter().map(|g| g.goal_id.clone()).collect();
    assert!(goals.is_subset(&stored));
    let shared = plan
        .goals
        .iter()
        .find(|g| g.goal_id == w.goal_id)
        .expect("the shared goal");
    let stored: HashSet<String> = shared
        .checkins
        .iter()
        .map(|c| c.checkin_id.clone())
        .collect();
    assert_eq!(stored, checkins, "no check-in lost");
    assert_eq!(heard.load(Ordering::SeqCst), 2 * THREADS * ROUNDS);

    // Everything is also in the other store after a sync, and the subscription ends cleanly.
    block_on(store.sync_with(w.counselor.clone())).unwrap();
    let theirs = block_on(w.counselor.plan(w.plan_id.clone())).unwrap();
    assert_eq!(theirs, block_on(store.plan(w.plan_id.clone())).unwrap());
    subscription.cancel();
    block_on(store.propose_goal(w.plan_id.clone(), "after".into())).unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 2 * THREADS * ROUNDS);
}

#[test]
fn closing_while_threads_call_gives_closed_never_a_crash() {
    let w = world();
    let store = w.client.clone();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let plan = w.plan_id.clone();
            thread::spawn(move || {
                block_on(async {
                    for round in 0.. {
                        let result = store
                            .propose_goal(plan.clone(), format!("goal {t}.{round}"))
                            .await;
                        match result {
                            Ok(_) => continue,
                            Err(alliance_ffi::ApiError::Closed) => return round,
                            Err(other) => panic!("unexpected error {other}"),
                        }
                    }
                    unreachable!()
                })
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    store.close_store();
    for handle in handles {
        handle.join().expect("no panic in a caller");
    }
    assert!(store.is_closed());
}
