//! Per-plan lanes: one plan's message judged slowly holds up neither another plan's sync nor
//! a reader, and a write by another connection meanwhile is kept with what was received.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::*;

/// How long a test waits for a step that must not be blocked (a deadlock guard, not a timing
/// assertion: the step takes milliseconds).
const UNBLOCKED: Duration = Duration::from_secs(60);

struct Gate {
    plan: PlanId,
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

static GATES: Mutex<Vec<Gate>> = Mutex::new(Vec::new());

/// Called by the judge: the first message with changes about a gated plan stops here until
/// the test releases it.
pub(super) fn pass(plan: PlanId, carries_changes: bool) {
    if !carries_changes {
        return;
    }
    let gate = {
        let mut gates = GATES.lock();
        let at = gates.iter().position(|g| g.plan == plan);
        at.map(|at| gates.remove(at))
    };
    if let Some(gate) = gate {
        let _ = gate.entered.send(());
        let _ = gate.release.recv();
    }
}

/// Gates `plan`: returns the signal that the judge entered and the sender that releases it.
fn gate(plan: PlanId) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    GATES.lock().push(Gate {
        plan,
        entered: entered_tx,
        release: release_rx,
    });
    (entered, release)
}

/// Syncs one plan between two stores until neither has a message left.
fn sync_plan(a: &Alliance, b: &Alliance, plan: PlanId) -> Result<()> {
    for _ in 0..100 {
        let to_b = a.generate_sync_message(plan, "b")?;
        if let Some(message) = &to_b {
            b.receive_sync_message(plan, "a", message)?;
        }
        let to_a = b.generate_sync_message(plan, "a")?;
        if let Some(message) = &to_a {
            a.receive_sync_message(plan, "b", message)?;
        }
        if to_b.is_none() && to_a.is_none() {
            return Ok(());
        }
    }
    Err(Error::Malformed(
        "the plan did not converge in 100 rounds".into(),
    ))
}

struct Pair {
    counselor: Arc<Alliance>,
    client: Arc<Alliance>,
    sam: Identity,
}

fn pair(client: Alliance) -> Pair {
    let counselor = Alliance::open_in_memory().unwrap();
    counselor.init("Dana", Role::Counselor, None).unwrap();
    let sam = client.init("Sam", Role::Client, None).unwrap();
    Pair {
        counselor: Arc::new(counselor),
        client: Arc::new(client),
        sam,
    }
}

fn new_plan(p: &Pair, title: &str) -> PlanId {
    let plan = p
        .counselor
        .create_plan(&NewPlan {
            title: title.into(),
            client_name: "Sam".into(),
            client_member: Some(p.sam.member_id),
            client_device: Some(p.sam.device_id),
        })
        .unwrap();
    sync_plan(&p.counselor, &p.client, plan).unwrap();
    plan
}

fn title(store: &Alliance, plan: PlanId) -> String {
    store.plan(plan).unwrap().title
}

#[test]
fn one_plans_sync_and_reads_do_not_wait_behind_another_plans_judge() {
    let p = pair(Alliance::open_in_memory().unwrap());
    let (slow, other) = (new_plan(&p, "Slow"), new_plan(&p, "Other"));
    p.counselor.set_title(slow, "Slow, renamed").unwrap();
    p.counselor.set_title(other, "Other, renamed").unwrap();

    let (entered, release) = gate(slow);
    let (c, k) = (p.counselor.clone(), p.client.clone());
    let held_up = thread::spawn(move || sync_plan(&c, &k, slow));
    entered
        .recv_timeout(UNBLOCKED)
        .expect("the slow plan's change reached the judge");

    // While the slow plan's message is being judged: the other plan syncs whole…
    let (done_tx, done) = mpsc::channel();
    let (c, k) = (p.counselor.clone(), p.client.clone());
    thread::spawn(move || {
        let _ = done_tx.send(sync_plan(&c, &k, other));
    });
    done.recv_timeout(UNBLOCKED)
        .expect("the other plan synced while the slow one was judged")
        .unwrap();
    assert_eq!(title(&p.client, other), "Other, renamed");
    // …and the slow plan reads as stored, without waiting.
    let (read_tx, read) = mpsc::channel();
    let k = p.client.clone();
    thread::spawn(move || {
        let _ = read_tx.send(k.plan(slow).map(|plan| plan.title));
    });
    let seen = read
        .recv_timeout(UNBLOCKED)
        .expect("the slow plan was read while it was judged")
        .unwrap();
    assert_eq!(seen, "Slow");

    release.send(()).unwrap();
    held_up.join().unwrap().unwrap();
    assert_eq!(title(&p.client, slow), "Slow, renamed");
    assert_eq!(title(&p.client, other), "Other, renamed");
}

#[test]
fn a_write_by_another_connection_during_a_judge_is_kept_with_the_received_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.db");
    let p = pair(Alliance::open(&path).unwrap());
    // The same file opened again: the app's widget, or the CLI.
    let widget = Alliance::open(&path).unwrap();
    let plan = new_plan(&p, "Plan");
    let goal = p.client.propose_goal(plan, "Walk every day").unwrap();
    sync_plan(&p.counselor, &p.client, plan).unwrap();
    p.counselor.set_title(plan, "Plan, renamed").unwrap();

    let (entered, release) = gate(plan);
    let (c, k) = (p.counselor.clone(), p.client.clone());
    let held_up = thread::spawn(move || sync_plan(&c, &k, plan));
    entered
        .recv_timeout(UNBLOCKED)
        .expect("the change reached the judge");
    let retries_before = retries();
    let check_in = widget
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                note: "walked".into(),
                ..Default::default()
            },
        )
        .unwrap();
    release.send(()).unwrap();
    held_up.join().unwrap().unwrap();
    assert!(
        retries() > retries_before,
        "the judged message found the plan moved on and was judged again"
    );

    let fresh = Alliance::open(&path).unwrap();
    for store in [&*p.client, &widget, &fresh] {
        let read = store.plan(plan).unwrap();
        assert_eq!(read.title, "Plan, renamed");
        let goal = read.goals.iter().find(|g| g.goal_id == goal).unwrap();
        assert!(goal.checkins.iter().any(|c| c.checkin_id == check_in));
    }
    sync_plan(&p.counselor, &p.client, plan).unwrap();
    let at_counselor = p.counselor.plan(plan).unwrap();
    let goal = at_counselor
        .goals
        .iter()
        .find(|g| g.goal_id == goal)
        .unwrap();
    assert!(goal.checkins.iter().any(|c| c.checkin_id == check_in));
    assert_eq!(p.client.integrity_check().unwrap(), Vec::<String>::new());
}

fn retries() -> usize {
    super::receiving::RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}
