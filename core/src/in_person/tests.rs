//! In-person sessions joined by an in-memory pipe that can drop and reorder frames.

use std::collections::VecDeque;
use std::sync::Arc;

use super::*;
use crate::model::{GoalEdit, GoalStatus, NewCheckIn, Role};
use crate::NewPlan;

struct Pair {
    counselor: Arc<Alliance>,
    client: Arc<Alliance>,
    plan: PlanId,
    goal: crate::model::GoalId,
}

/// A counselor's store with one plan that enrolls the client's device, and the client's store,
/// which holds nothing yet.
fn pair() -> Pair {
    let counselor = Arc::new(Alliance::open_in_memory().unwrap());
    let client = Arc::new(Alliance::open_in_memory().unwrap());
    counselor.init("Dana", Role::Counselor, None).unwrap();
    let sam = client.init("Sam", Role::Client, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    let goal = counselor
        .propose_goal(plan, "Sleep through the night")
        .unwrap();
    Pair {
        counselor,
        client,
        plan,
        goal,
    }
}

fn check_in(note: &str) -> NewCheckIn {
    NewCheckIn {
        note: note.into(),
        mood: Some(5),
        ..NewCheckIn::default()
    }
}

/// Moves frames between two sessions until neither has anything to send. `deliver(n)` says
/// whether the n-th frame (counting both directions) arrives; `reorder` swaps each pair of
/// waiting frames before delivery. Returns the frames that crossed.
fn run(
    a: &mut InPersonSession,
    b: &mut InPersonSession,
    mut deliver: impl FnMut(usize) -> bool,
    reorder: bool,
) -> usize {
    let mut to_b: VecDeque<Vec<u8>> = a.start().into();
    let mut to_a: VecDeque<Vec<u8>> = b.start().into();
    let mut n = 0;
    let mut lossy = false;
    while !to_a.is_empty() || !to_b.is_empty() {
        assert!(n < 10_000, "the sessions never settle");
        for towards_b in [true, false] {
            let (queue, into) = if towards_b {
                (&mut to_b, &mut *b)
            } else {
                (&mut to_a, &mut *a)
            };
            // Reordering: sync messages of two plans swap places (a `join` still comes first,
            // and one plan's messages keep their order, as on any stream transport).
            let document = |frame: &Vec<u8>| match Message::decode(frame) {
                Ok(Message::Sync(message)) => Some(message.document_id),
                _ => None,
            };
            if reorder && queue.len() >= 2 {
                let (first, second) = (document(&queue[0]), document(&queue[1]));
                if first.is_some() && second.is_some() && first != second {
                    queue.swap(0, 1);
                }
            }
            let Some(frame) = queue.pop_front() else {
                continue;
            };
            n += 1;
            if !deliver(n) {
                lossy = true;
                continue;
            }
            // Over a lossy link a frame may come before the `join` it needs: a typed error,
            // and the link goes on.
            let answer = match into.receive(&frame) {
                Ok(answer) => answer,
                Err(Error::SyncMessage(_)) if lossy => Vec::new(),
                Err(e) => panic!("{e}"),
            };
            if towards_b {
                to_a.extend(answer);
            } else {
                to_b.extend(answer);
            }
        }
        if to_a.is_empty() && to_b.is_empty() && !lossy {
            // Quiet link: each side says whether it has more.
            to_b.extend(a.poll().unwrap());
            to_a.extend(b.poll().unwrap());
        }
    }
    n
}

fn session(store: &Arc<Alliance>) -> InPersonSession {
    InPersonSession::new(store.clone()).unwrap()
}

#[test]
fn a_newly_enrolled_phone_finds_its_plan_and_both_converge() {
    let p = pair();
    p.client
        .plan_ids()
        .unwrap()
        .is_empty()
        .then_some(())
        .unwrap();
    let (mut a, mut b) = (session(&p.counselor), session(&p.client));
    run(&mut a, &mut b, |_| true, false);
    assert!(a.is_settled() && b.is_settled());
    assert_eq!(
        p.client.plan(p.plan).unwrap(),
        p.counselor.plan(p.plan).unwrap()
    );
    assert_eq!(a.report().plans, vec![p.plan]);
    assert_eq!(b.peer(), Some(p.counselor.identity().unwrap().device_id));

    // Offline edits on both sides meet at the next session, in either direction.
    p.client
        .check_in(p.plan, p.goal, &check_in("slept six hours"))
        .unwrap();
    p.counselor
        .edit_goal(
            p.plan,
            p.goal,
            &GoalEdit {
                clinical_statement: Some("Insomnia; sleep hygiene".into()),
                ..GoalEdit::default()
            },
        )
        .unwrap();
    // A second plan, so frames of two plans can pass each other on the link.
    let sam = p.client.identity().unwrap();
    let second = p
        .counselor
        .create_plan(&NewPlan {
            title: "Aftercare".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    let (mut a, mut b) = (session(&p.client), session(&p.counselor));
    run(&mut a, &mut b, |_| true, true);
    assert!(a.is_settled() && b.is_settled());
    assert_eq!(a.report().plans.len(), 2);
    assert_eq!(
        p.client.plan(second).unwrap(),
        p.counselor.plan(second).unwrap()
    );
    let plan = p.counselor.plan(p.plan).unwrap();
    assert_eq!(plan, p.client.plan(p.plan).unwrap());
    let goal = plan.goal(p.goal).unwrap();
    assert_eq!(goal.checkins.len(), 1);
    assert_eq!(goal.clinical_statement, "Insomnia; sleep hygiene");
}

#[test]
fn a_plan_that_does_not_enroll_the_other_device_never_crosses() {
    let p = pair();
    let private = p
        .counselor
        .create_plan(&NewPlan {
            title: "Another client's plan".into(),
            client_name: "Lee".into(),
            client_member: None,
            client_device: None,
        })
        .unwrap();
    let (mut a, mut b) = (session(&p.counselor), session(&p.client));
    run(&mut a, &mut b, |_| true, false);
    assert_eq!(p.client.plan_ids().unwrap(), vec![p.plan]);
    assert!(!a.report().plans.contains(&private));

    // Asked for it by id, the counselor's side says it is unavailable and sends nothing.
    let mut asker = session(&p.client);
    let mut holder = session(&p.counselor);
    for frame in asker.start() {
        holder.receive(&frame).unwrap();
    }
    for frame in holder.start() {
        asker.receive(&frame).unwrap();
    }
    let ask = Message::Sync(DocumentMessage {
        sender_id: PeerId::new(p.client.identity().unwrap().device_id.to_string()),
        target_id: PeerId::new(p.counselor.identity().unwrap().device_id.to_string()),
        document_id: DocumentId::from_uuid(private.as_uuid()),
        data: {
            use automerge::sync::SyncDoc;
            let mut state = automerge::sync::State::new();
            automerge::Automerge::new()
                .generate_sync_message(&mut state)
                .unwrap()
                .encode()
        },
    });
    let answer = holder.receive(&ask.encode()).unwrap();
    assert_eq!(answer.len(), 1);
    assert!(matches!(
        Message::decode(&answer[0]).unwrap(),
        Message::DocUnavailable { .. }
    ));
    assert!(!p.client.has_plan(private).unwrap());
}

#[test]
fn a_refused_change_goes_back_and_is_set_aside_on_the_device_that_made_it() {
    let p = pair();
    run(
        &mut session(&p.counselor),
        &mut session(&p.client),
        |_| true,
        false,
    );
    let status = GoalEdit {
        status: Some(GoalStatus::Active),
        ..GoalEdit::default()
    };
    p.client
        .edit_goal_unchecked(p.plan, p.goal, &status)
        .unwrap();
    p.client
        .check_in(p.plan, p.goal, &check_in("walked"))
        .unwrap();
    let (mut a, mut b) = (session(&p.client), session(&p.counselor));
    run(&mut a, &mut b, |_| true, false);
    let refused = a.report().refused;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].rule, "only a counselor writes a goal's status");
    let on_counselor = p.counselor.plan(p.plan).unwrap();
    assert_eq!(on_counselor, p.client.plan(p.plan).unwrap());
    let goal = on_counselor.goal(p.goal).unwrap();
    assert_eq!(goal.status, GoalStatus::Proposed);
    assert_eq!(goal.checkins.len(), 1, "the honest check-in still arrives");
}

#[test]
fn a_dropped_connection_resumes_and_loses_nothing() {
    let p = pair();
    run(
        &mut session(&p.counselor),
        &mut session(&p.client),
        |_| true,
        false,
    );
    for day in 0..20 {
        p.client
            .check_in(p.plan, p.goal, &check_in(&format!("day {day}")))
            .unwrap();
        p.counselor
            .add_objective(
                p.plan,
                p.goal,
                &crate::model::NewObjective {
                    text: format!("objective {day}"),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    // The link drops after a few frames, and later loses every third one.
    run(
        &mut session(&p.client),
        &mut session(&p.counselor),
        |n| n < 4,
        false,
    );
    run(
        &mut session(&p.client),
        &mut session(&p.counselor),
        |n| n % 3 != 0,
        true,
    );
    // A clean session then finishes the job.
    let (mut a, mut b) = (session(&p.client), session(&p.counselor));
    run(&mut a, &mut b, |_| true, false);
    assert!(a.is_settled() && b.is_settled());
    let plan = p.counselor.plan(p.plan).unwrap();
    assert_eq!(plan, p.client.plan(p.plan).unwrap());
    let goal = plan.goal(p.goal).unwrap();
    assert_eq!(goal.checkins.len(), 20);
    assert_eq!(goal.objectives.len(), 20);
}

#[test]
fn bad_frames_are_typed_errors_and_change_nothing() {
    let p = pair();
    let before = p.counselor.plan(p.plan).unwrap();
    let mut s = session(&p.counselor);
    assert!(matches!(
        s.receive(b"not cbor at all"),
        Err(Error::SyncMessage(_))
    ));
    // A sync message before the other device joined.
    let early = Message::Sync(DocumentMessage {
        sender_id: PeerId::new("x"),
        target_id: PeerId::new("y"),
        document_id: DocumentId::from_uuid(p.plan.as_uuid()),
        data: vec![0x42],
    });
    assert!(matches!(
        s.receive(&early.encode()),
        Err(Error::SyncMessage(_))
    ));
    // A join that names no device, or this one.
    for sender in [
        "relay",
        &p.counselor.identity().unwrap().device_id.to_string(),
    ] {
        let join = Message::Join {
            sender_id: PeerId::new(sender),
            peer_metadata: None,
            supported_protocol_versions: None,
        };
        assert!(matches!(
            s.receive(&join.encode()),
            Err(Error::SyncMessage(_))
        ));
    }
    assert_eq!(p.counselor.plan(p.plan).unwrap(), before);
}

/// Check-ins past the threshold only append; the in-person session that carries them
/// compacts them on both phones when it ends, and nothing is lost.
#[test]
fn a_session_compacts_what_it_carried_when_it_ends() {
    let p = pair();
    let (mut a, mut b) = (session(&p.counselor), session(&p.client));
    run(&mut a, &mut b, |_| true, false);
    a.end();
    b.end();
    let mut made = 0;
    loop {
        p.counselor
            .check_in(p.plan, p.goal, &check_in(&format!("night {made}")))
            .unwrap();
        made += 1;
        let sizes = p.counselor.document_sizes(p.plan).unwrap();
        if sizes.chunk_bytes > sizes.snapshot_len {
            break;
        }
        assert!(made < 400, "400 check-ins never outgrew the snapshot");
    }
    let (mut a, mut b) = (session(&p.counselor), session(&p.client));
    run(&mut a, &mut b, |_| true, false);
    // Not yet: the session compacts when it ends.
    assert!(p.counselor.document_sizes(p.plan).unwrap().chunk_count > 0);
    a.end();
    b.end();
    assert_eq!(p.counselor.document_sizes(p.plan).unwrap().chunk_count, 0);
    let sizes = p.client.document_sizes(p.plan).unwrap();
    assert!(sizes.chunk_bytes <= sizes.snapshot_len, "{sizes:?}");
    let plan = p.counselor.plan_from_document(p.plan).unwrap();
    assert_eq!(plan.goal(p.goal).unwrap().checkins.len(), made);
    assert_eq!(p.client.plan_from_document(p.plan).unwrap(), plan);
}
