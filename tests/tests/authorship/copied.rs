//! A copied identity (SECURITY.md §6; `docs/design.md`, "A copied identity"): one store on two
//! phones (a backup restored on a second phone, a copied device), both used. Every replica
//! keeps the first change of each change number and refuses the second; the device whose
//! edits lost learns it is a copy (a typed error and [`Alliance::copied_identity`]), takes a
//! new device id and key, is enrolled again by a counselor from its new code, and then replays
//! its edits as new changes of its new device. Both devices end with every edit; the original
//! keeps its identity.

use super::*;
use alliance_core::{CopiedIdentity, Error, Identity};

/// The client's phone copied: `copy` opens a backup of the client's store.
struct Copied {
    w: World,
    copy: Arc<Alliance>,
    /// The identity both phones had when the store was copied.
    before: Identity,
    _dir: tempfile::TempDir,
}

fn copied() -> Copied {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db");
    w.client.store.backup_to(&file).unwrap();
    let copy = Arc::new(Alliance::open(&file).unwrap());
    let before = w.client.store.identity().unwrap();
    assert_eq!(copy.identity().unwrap(), before);
    Copied {
        w,
        copy,
        before,
        _dir: dir,
    }
}

fn check_in(store: &Alliance, w: &World, note: &str) {
    store
        .check_in(
            w.plan,
            w.goal,
            &NewCheckIn {
                mood: Some(5),
                note: note.into(),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
}

/// The notes of the goal's check-ins on `store`, sorted.
fn notes(store: &Alliance, w: &World) -> Vec<String> {
    notes_in(store, w.plan, w.goal)
}

fn notes_in(store: &Alliance, plan: PlanId, goal: GoalId) -> Vec<String> {
    let mut notes: Vec<String> = store
        .plan(plan)
        .unwrap()
        .goal(goal)
        .unwrap()
        .checkins
        .iter()
        .map(|c| c.note.clone())
        .collect();
    notes.sort();
    notes
}

/// Both phones write with the same actor and change numbers: the original a check-in, the
/// copy two (each signed with the one key they share).
fn both_used(c: &Copied) {
    check_in(&c.w.client.store, &c.w, "from the original");
    check_in(&c.copy, &c.w, "from the copy");
    check_in(&c.copy, &c.w, "from the copy, later");
}

/// The copy knows it is one: a new device id and key, the former id named, the plan listed
/// as not enrolling it and as holding its waiting edits; writing to the plan is the typed
/// error carrying its new enrollment code. The original keeps its identity.
fn assert_copy_knows(c: &Copied) -> CopiedIdentity {
    let me = c.copy.identity().unwrap();
    assert_ne!(
        me.device_id, c.before.device_id,
        "the copy has a new device id"
    );
    assert_eq!(
        (me.member_id, &me.name, me.role),
        (c.before.member_id, &c.before.name, c.before.role),
        "the same member"
    );
    assert_eq!(
        c.w.client.store.identity().unwrap(),
        c.before,
        "the original keeps its id"
    );
    let old_key = c.w.client.store.enrollment().unwrap().public_key;
    let enrollment = c.copy.enrollment().unwrap();
    assert_eq!(enrollment.device, me.device_id);
    assert_ne!(enrollment.public_key, old_key, "the copy has a new key");
    let known = c.copy.copied_identity().unwrap().expect("the copy knows");
    assert_eq!(known.former_device, c.before.device_id);
    assert_eq!(known.enrollment, enrollment);
    assert_eq!(known.not_enrolled, vec![c.w.plan]);
    assert_eq!(known.waiting, vec![c.w.plan]);
    assert!(c.w.client.store.copied_identity().unwrap().is_none());
    match c.copy.propose_goal(c.w.plan, "Read more") {
        Err(Error::CopiedIdentity { enrollment: code }) => {
            assert_eq!(code, enrollment.to_string())
        }
        other => panic!("expected a copied identity, got {other:?}"),
    }
    known
}

/// The counselor enrolls the copy's new device, for the same member, from its code.
fn enroll_again(c: &Copied, known: &CopiedIdentity) {
    let code = alliance_core::authorship::Enrollment::parse(&known.enrollment.to_string()).unwrap();
    c.w.counselor
        .store
        .enroll_with_key(
            c.w.plan,
            &NewDevice {
                device: code.device,
                member: c.before.member_id,
                new_member: None,
                label: "Sam's second phone".into(),
            },
            code.public_key,
        )
        .unwrap();
}

/// The counselor enrolls the copy again and they sync in person, then the counselor and the
/// original: every edit everywhere.
fn enrolled_again_in_person(c: &Copied, known: &CopiedIdentity) {
    enroll_again(c, known);
    sync_stores(&c.w.counselor.store, &c.copy).unwrap();
    sync_stores(&c.w.counselor.store, &c.w.client.store).unwrap();
    assert_every_edit_everywhere(
        c,
        &[
            ("original", &c.w.client.store),
            ("copy", &c.copy),
            ("counselor", &c.w.counselor.store),
        ],
    );
}

/// Every replica holds every edit and reads the same plan; the copy's edits were replayed as
/// changes of its new device, which no replica refused; the copy knows of nothing waiting.
fn assert_every_edit_everywhere(c: &Copied, replicas: &[(&str, &Alliance)]) {
    let want = vec![
        "from the copy".to_owned(),
        "from the copy, later".to_owned(),
        "from the original".to_owned(),
    ];
    let new_device = c.copy.identity().unwrap().device_id;
    for (who, store) in replicas {
        assert_eq!(notes(store, &c.w), want, "{who}");
        assert_eq!(
            store.plan(c.w.plan).unwrap(),
            c.copy.plan(c.w.plan).unwrap(),
            "{who}"
        );
        let refused = store.refused_changes(Some(c.w.plan)).unwrap();
        assert!(
            refused
                .iter()
                .all(|(_, r)| r.device_id != new_device.actor().to_hex_string()),
            "{who}: {refused:?}"
        );
        let by_new: Vec<_> = store
            .history(c.w.plan)
            .unwrap()
            .into_iter()
            .filter(|h| h.device_id == new_device.actor().to_hex_string() && !h.refused)
            .collect();
        assert_eq!(by_new.len(), 2, "{who}: the two replayed check-ins");
    }
    let set_aside = c.copy.set_aside_changes(c.w.plan).unwrap();
    assert_eq!(set_aside.len(), 2, "{set_aside:?}");
    assert!(
        set_aside.iter().all(|s| s.replayed_as.is_some()),
        "{set_aside:?}"
    );
    let known = c.copy.copied_identity().unwrap().unwrap();
    assert!(
        known.not_enrolled.is_empty() && known.waiting.is_empty(),
        "{known:?}"
    );
    // The copy writes again, as its new device.
    check_in(&c.copy, &c.w, "after enrolling");
}

#[test]
fn a_copied_phone_used_in_person_gets_a_new_identity_and_every_edit_lands_everywhere() {
    let c = copied();
    // Another process on the copied store (a widget), open before the copy finds out.
    let widget = Alliance::open(&c._dir.path().join("copy.db")).unwrap();
    assert_eq!(widget.identity().unwrap(), c.before);
    both_used(&c);
    // The original meets the counselor first; then the copy does, and finds it is a copy.
    sync_stores(&c.w.client.store, &c.w.counselor.store).unwrap();
    let report = sync_stores(&c.copy, &c.w.counselor.store).unwrap();
    let known = assert_copy_knows(&c);
    // The widget writes no more under the identity left to the original.
    let written = widget.check_in(
        c.w.plan,
        c.w.goal,
        &NewCheckIn {
            mood: Some(3),
            ..NewCheckIn::default()
        },
    );
    assert!(
        matches!(written, Err(Error::CopiedIdentity { .. })),
        "{written:?}"
    );
    assert_eq!(widget.identity().unwrap(), c.copy.identity().unwrap());
    assert!(
        report
            .refused
            .iter()
            .all(|r| r.device == c.before.device_id),
        "{report:?}"
    );
    // Until it is enrolled again its edits wait: the counselor holds only the original's.
    assert_eq!(notes(&c.w.counselor.store, &c.w), vec!["from the original"]);
    assert_eq!(notes(&c.copy, &c.w), vec!["from the original"]);
    enrolled_again_in_person(&c, &known);
    sync_stores(&c.copy, &c.w.counselor.store).unwrap();
    sync_stores(&c.w.counselor.store, &c.w.client.store).unwrap();
    assert!(notes(&c.w.client.store, &c.w).contains(&"after enrolling".to_owned()));
}

/// One sync through the relay with `token`.
fn sync_with(relay: &Relay, w: &World, store: &Arc<Alliance>, token: &str) -> SyncSummary {
    relay
        .relay
        .sync_once(
            store.clone(),
            &SyncOptions {
                token: Some(token.to_owned()),
                handshake_timeout: Duration::from_secs(20),
                ..options(&[w.plan])
            },
        )
        .unwrap()
}

#[test]
fn a_copied_phone_used_through_the_relay_gets_a_new_identity_and_every_edit_lands_everywhere() {
    let c = copied();
    let relay = relay_for(&c.w);
    both_used(&c);
    relay.sync(&c.w, &c.w.client);
    // The copy holds the original's token too (it came with the store's copy).
    sync_with(&relay, &c.w, &c.copy, &relay.client_token);
    let known = assert_copy_knows(&c);
    assert_eq!(notes(&c.copy, &c.w), vec!["from the original"]);
    // The counselor enrolls the new device and gives it a token of its own.
    relay.sync(&c.w, &c.w.counselor);
    enroll_again(&c, &known);
    let token =
        c.w.counselor
            .store
            .issue_device_token(c.w.plan, known.enrollment.device, None)
            .unwrap();
    relay.sync(&c.w, &c.w.counselor);
    let summary = sync_with(&relay, &c.w, &c.copy, &token);
    assert!(summary.refused.is_empty(), "{summary:?}");
    sync_with(&relay, &c.w, &c.copy, &token);
    relay.sync(&c.w, &c.w.counselor);
    relay.sync(&c.w, &c.w.client);
    assert_every_edit_everywhere(
        &c,
        &[
            ("original", &c.w.client.store),
            ("copy", &c.copy),
            ("counselor", &c.w.counselor.store),
            ("relay", &relay.store),
        ],
    );
}

/// The copy may learn it from a peer's refusal instead (a relay that already holds the
/// original's change refuses the copy's as a copied identity, and says so in its notice):
/// the refused change and the later one built on it wait for the new identity just the same.
#[test]
fn a_copy_told_by_a_refused_notice_gets_a_new_identity_and_every_edit_lands_everywhere() {
    let c = copied();
    both_used(&c);
    let mine = Automerge::load(&c.copy.saved_document(c.w.plan).unwrap()).unwrap();
    let first_of_mine = mine
        .get_changes(&[])
        .into_iter()
        .filter(|ch| ch.actor_id() == &c.before.device_id.actor())
        .max_by_key(|ch| ch.seq())
        .map(|ch| ch.deps()[0])
        .unwrap();
    let notice = vec![
        (
            first_of_mine.to_string(),
            alliance_core::rules::remote::COPIED_IDENTITY.to_owned(),
        ),
        (
            last_change(&c.copy, c.w.plan).to_string(),
            alliance_core::rules::remote::BUILDS_ON_REFUSED.to_owned(),
        ),
    ];
    let set_aside = c.copy.own_changes_refused(c.w.plan, &notice).unwrap();
    assert_eq!(set_aside.len(), 2, "{set_aside:?}");
    assert!(set_aside.iter().all(|s| s.reason == alliance_core::COPIED));
    sync_stores(&c.w.client.store, &c.w.counselor.store).unwrap();
    let known = assert_copy_knows(&c);
    enrolled_again_in_person(&c, &known);
}

/// A counselor's device copied: the copy cannot enroll its own new identity (the plan does not
/// know it), so the counselor enrolls it from her other device — the original, which kept its
/// identity — and the copy's objective, which only a counselor may write, lands everywhere.
#[test]
fn a_counselors_copied_device_is_enrolled_again_from_her_original_and_loses_nothing() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("laptop.db");
    w.counselor.store.backup_to(&file).unwrap();
    let copy = Alliance::open(&file).unwrap();
    let before = w.counselor.store.identity().unwrap();
    let objective = |store: &Alliance, text: &str| {
        store
            .add_objective(
                w.plan,
                w.goal,
                &NewObjective {
                    text: text.into(),
                    ..NewObjective::default()
                },
            )
            .unwrap();
    };
    objective(&w.counselor.store, "Walk 20 minutes a day");
    objective(&copy, "Lights out by eleven");
    sync_stores(&w.counselor.store, &w.client.store).unwrap();
    sync_stores(&copy, &w.client.store).unwrap();
    let known = copy.copied_identity().unwrap().expect("the copy knows");
    assert_eq!(known.former_device, before.device_id);
    assert_eq!(w.counselor.store.identity().unwrap(), before);
    // The copy cannot enroll its new device itself.
    let new = NewDevice {
        device: known.enrollment.device,
        member: before.member_id,
        new_member: None,
        label: "Dana's laptop".into(),
    };
    assert!(matches!(
        copy.enroll_with_key(w.plan, &new, known.enrollment.public_key),
        Err(alliance_core::Error::CopiedIdentity { .. })
    ));
    w.counselor
        .store
        .enroll_with_key(w.plan, &new, known.enrollment.public_key)
        .unwrap();
    sync_stores(&w.counselor.store, &w.client.store).unwrap();
    sync_stores(&w.client.store, &copy).unwrap();
    sync_stores(&w.counselor.store, &w.client.store).unwrap();
    for (who, store) in [
        ("original", w.counselor.store.as_ref()),
        ("copy", &copy),
        ("client", w.client.store.as_ref()),
    ] {
        let plan = store.plan(w.plan).unwrap();
        let mut texts: Vec<&str> = plan
            .goal(w.goal)
            .unwrap()
            .objectives
            .iter()
            .map(|o| o.text.as_str())
            .collect();
        texts.sort();
        assert_eq!(
            texts,
            ["Lights out by eleven", "Walk 20 minutes a day"],
            "{who}"
        );
        assert_eq!(plan, copy.plan(w.plan).unwrap(), "{who}");
    }
}

/// A shell that carries sync messages itself hears of it in the receipt of the message that
/// brought the other copy's change: `SyncReceipt::copied_identity`.
#[test]
fn the_receipt_of_the_message_that_shows_the_copy_says_so() {
    let c = copied();
    both_used(&c);
    sync_stores(&c.w.client.store, &c.w.counselor.store).unwrap();
    let (counselor, plan) = (&c.w.counselor.store, c.w.plan);
    let mut told = Vec::new();
    for _ in 0..10 {
        if let Some(m) = counselor.generate_sync_message(plan, "copy").unwrap() {
            told.push(
                c.copy
                    .receive_sync_message(plan, "counselor", &m)
                    .unwrap()
                    .copied_identity,
            );
        }
        if let Some(m) = c.copy.generate_sync_message(plan, "counselor").unwrap() {
            counselor.receive_sync_message(plan, "copy", &m).unwrap();
        }
    }
    assert_eq!(
        told.iter().filter(|t| **t).count(),
        1,
        "told once: {told:?}"
    );
    assert_copy_knows(&c);
}

/// The copy wrote in two plans: it finds the copy in the first plan the sync reaches, and in
/// the second the other copy's change now names its former identity; its edits there wait
/// too, and each plan replays them once the counselor enrolls the new device in it.
#[test]
fn a_copy_with_edits_in_two_plans_loses_none_of_them() {
    let w = world();
    let client_key = w.client.store.enrollment().unwrap().public_key;
    let me = w.client.me.clone();
    let second = w
        .counselor
        .store
        .create_plan_with_key(
            &NewPlan {
                title: "Work plan".into(),
                client_name: "Sam".into(),
                client_member: Some(me.member_id),
                client_device: Some(me.device_id),
            },
            Some(client_key),
        )
        .unwrap();
    let second_goal = w
        .counselor
        .store
        .propose_goal(second, "Leave on time")
        .unwrap();
    sync_stores(&w.counselor.store, &w.client.store).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db");
    w.client.store.backup_to(&file).unwrap();
    let copy = Alliance::open(&file).unwrap();
    let plans = [(w.plan, w.goal), (second, second_goal)];
    for (plan, goal) in plans {
        for (store, note) in [(w.client.store.as_ref(), "original"), (&copy, "copy")] {
            let check_in = NewCheckIn {
                mood: Some(4),
                note: note.into(),
                ..NewCheckIn::default()
            };
            store.check_in(plan, goal, &check_in).unwrap();
        }
    }
    sync_stores(&w.client.store, &w.counselor.store).unwrap();
    sync_stores(&copy, &w.counselor.store).unwrap();
    let known = copy.copied_identity().unwrap().expect("the copy knows");
    assert_eq!(known.former_device, me.device_id);
    assert_eq!(known.waiting, {
        let mut both = vec![w.plan, second];
        both.sort();
        both
    });
    for (plan, _) in plans {
        w.counselor
            .store
            .enroll_with_key(
                plan,
                &NewDevice {
                    device: known.enrollment.device,
                    member: me.member_id,
                    new_member: None,
                    label: "Sam's second phone".into(),
                },
                known.enrollment.public_key,
            )
            .unwrap();
    }
    sync_stores(&w.counselor.store, &copy).unwrap();
    sync_stores(&w.counselor.store, &w.client.store).unwrap();
    for (plan, goal) in plans {
        for (who, store) in [
            ("original", w.client.store.as_ref()),
            ("copy", &copy),
            ("counselor", w.counselor.store.as_ref()),
        ] {
            assert_eq!(notes_in(store, plan, goal), ["copy", "original"], "{who}");
        }
    }
    assert!(copy.copied_identity().unwrap().unwrap().waiting.is_empty());
}
