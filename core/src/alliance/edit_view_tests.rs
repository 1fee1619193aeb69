//! The members, devices and goal statuses local edits' rules read from memory (`edits::EditView`)
//! are never stale: a status an edit wrote, a peer's revocation and another connection's write
//! all reach the next edit's rules.

use super::tests::world_with;
use super::*;
use crate::local_sync::sync_stores;
use crate::model::GoalStatus;

fn words(text: &str) -> GoalEdit {
    GoalEdit {
        client_words: Some(text.into()),
        ..GoalEdit::default()
    }
}

fn status(status: GoalStatus) -> GoalEdit {
    GoalEdit {
        status: Some(status),
        ..GoalEdit::default()
    }
}

/// Whatever `op` returns, the document and what is stored of it are unchanged.
fn unchanged<T>(store: &Alliance, plan: PlanId, op: impl FnOnce() -> Result<T>) -> Result<T> {
    let heads = store.plan_heads(&[plan]).unwrap();
    let sizes = store.document_sizes(plan).unwrap();
    let out = op();
    assert_eq!(store.plan_heads(&[plan]).unwrap(), heads);
    assert_eq!(store.document_sizes(plan).unwrap(), sizes);
    out
}

/// A counselor rewords a client's goal only while it is proposed: once their own edit made it
/// active, the status the rules read is the new one, and going back to proposed is refused.
#[test]
fn an_edit_that_writes_a_status_is_judged_by_it_next_time() {
    let p = world_with(Alliance::open_in_memory().unwrap());
    let c = &p.counselor;
    c.edit_goal(p.plan, p.goal, &words("Sleep by eleven"))
        .unwrap();
    c.set_gas(
        p.plan,
        p.goal,
        &GasEdit::Level {
            level: 0,
            text: "five nights".into(),
        },
    )
    .unwrap();
    c.edit_goal(p.plan, p.goal, &status(GoalStatus::Active))
        .unwrap();
    let reworded = unchanged(c, p.plan, || {
        c.edit_goal(p.plan, p.goal, &words("Sleep by ten"))
    });
    assert!(
        matches!(reworded, Err(Error::NotAllowed { .. })),
        "{reworded:?}"
    );
    let back = unchanged(c, p.plan, || {
        c.edit_goal(p.plan, p.goal, &status(GoalStatus::Proposed))
    });
    assert!(matches!(back, Err(Error::InvalidInput { .. })), "{back:?}");
    assert_eq!(c.plan(p.plan).unwrap().goals[0].status, GoalStatus::Active);
}

fn mood(mood: u8) -> NewCheckIn {
    NewCheckIn {
        mood: Some(mood),
        ..NewCheckIn::default()
    }
}

/// A client's device revoked on the counselor's side: once the revocation arrives, the
/// client's next check-in is refused, though its previous one was judged before it.
#[test]
fn a_revocation_received_reaches_the_next_edit() {
    let p = world_with(Alliance::open_in_memory().unwrap());
    p.client.check_in(p.plan, p.goal, &mood(3)).unwrap();
    sync_stores(&p.counselor, &p.client).unwrap();
    let device = p.client.identity().unwrap().device_id;
    p.counselor.revoke_device(p.plan, device).unwrap();
    sync_stores(&p.counselor, &p.client).unwrap();
    let refused = unchanged(&p.client, p.plan, || {
        p.client.check_in(p.plan, p.goal, &mood(3))
    });
    assert!(
        matches!(refused, Err(Error::NotAllowed { .. })),
        "{refused:?}"
    );
}

/// Two connections to one store file: what the second writes (a status) reaches the first
/// one's next edit, and both compact (`Alliance::compact_due`) the chunks their edits left.
#[test]
fn another_connections_write_reaches_the_next_edit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let p = world_with(Alliance::open(&path).unwrap());
    let first = &p.counselor;
    let second = Alliance::open(&path).unwrap();
    for n in 0..40 {
        let (store, other) = if n % 3 == 0 {
            (&second, first)
        } else {
            (first, &second)
        };
        store
            .edit_goal(
                p.plan,
                p.goal,
                &words(&format!("Sleep by eleven, take {n}")),
            )
            .unwrap();
        store.compact_due(4).unwrap();
        let sizes = other.document_sizes(p.plan).unwrap();
        assert!(sizes.chunk_bytes <= sizes.snapshot_len, "{n}: {sizes:?}");
    }
    second
        .edit_goal(p.plan, p.goal, &status(GoalStatus::Active))
        .unwrap();
    let reworded = unchanged(first, p.plan, || {
        first.edit_goal(p.plan, p.goal, &words("Sleep by ten"))
    });
    assert!(
        matches!(reworded, Err(Error::NotAllowed { .. })),
        "{reworded:?}"
    );
}
