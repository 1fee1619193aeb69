//! No false refusals: every edit the local API accepts is accepted by every other replica and
//! by the relay. A counselor's phone and laptop, a client's phone and a relay's store (no
//! identity) exchange sync messages in process; after everything is synced no replica has
//! refused anything and all read the same plan.

use alliance_core::{Alliance, GasEdit, GoalEdit, GoalId, NewPlan, PlanId, Role};

/// Syncs two stores through their sync-message API until both are quiet. Works for a store
/// without identity (the relay), which `local_sync::sync_stores` does not take.
fn exchange(a: &Alliance, a_key: &str, b: &Alliance, b_key: &str, plan: PlanId) {
    for _ in 0..64 {
        let mut quiet = true;
        if let Some(m) = a.generate_sync_message(plan, b_key).expect("generate") {
            quiet = false;
            b.receive_sync_message(plan, a_key, &m).expect("receive");
        }
        if let Some(m) = b.generate_sync_message(plan, a_key).expect("generate") {
            quiet = false;
            a.receive_sync_message(plan, b_key, &m).expect("receive");
        }
        if quiet {
            a.end_sync_session(b_key);
            b.end_sync_session(a_key);
            return;
        }
    }
    panic!("stores did not settle");
}

fn assert_no_refusals_and_equal(stores: &[(&str, &Alliance)], plan: PlanId) {
    for (name, store) in stores {
        let refused = store.refused_changes(None).expect("refusals");
        assert!(refused.is_empty(), "{name} refused {refused:?}");
    }
    let (first_name, first) = stores[0];
    let first = first.plan(plan).expect("plan");
    for (name, store) in &stores[1..] {
        assert_eq!(
            first,
            store.plan(plan).expect("plan"),
            "{first_name} and {name} differ"
        );
    }
}

/// `n` characters with nothing in common with `other_alphabet` texts: a rewrite from one to
/// the other deletes every old character and inserts every new one.
fn long_text(alphabet: &str, n: usize) -> String {
    alphabet.chars().cycle().take(n).collect()
}

/// Issue 11: a counselor rewrites a 2,400-character clinical statement with another
/// 2,400-character text and a client rewrites their 2,400-character words the same way. Each
/// result is well under the limit; the judge once added the inserted characters to the old
/// length, refused both rewrites and then everything their authors wrote afterwards.
#[test]
fn long_rewrites_are_accepted_by_devices_and_relay() {
    let counselor = Alliance::open_in_memory().expect("store");
    let client = Alliance::open_in_memory().expect("store");
    let relay = Alliance::open_in_memory().expect("store");
    let dana = counselor.init("Dana", Role::Counselor, None).expect("init");
    let sam = client.init("Sam", Role::Client, None).expect("init");
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .expect("plan");
    let goal: GoalId = counselor.propose_goal(plan, "sleep well").expect("goal");
    let sync_all = || {
        exchange(&counselor, "dana", &relay, "relay", plan);
        exchange(&client, "sam", &relay, "relay", plan);
        exchange(&counselor, "dana", &relay, "relay", plan);
        // And directly, device to device (a Bluetooth sync).
        exchange(&counselor, "dana", &client, "sam", plan);
    };
    sync_all();

    let statement = |text: String| GoalEdit {
        clinical_statement: Some(text),
        ..GoalEdit::default()
    };
    let words = |text: String| GoalEdit {
        client_words: Some(text),
        ..GoalEdit::default()
    };
    let level = |text: String| GasEdit::Level { level: 1, text };

    counselor
        .edit_goal(plan, goal, &statement(long_text("abcdefg ", 2400)))
        .expect("first statement");
    client
        .edit_goal(plan, goal, &words(long_text("hijklmn ", 2400)))
        .expect("first words");
    client
        .set_gas(plan, goal, &level(long_text("opqrs ", 2400)))
        .expect("first level");
    sync_all();
    assert_no_refusals_and_equal(
        &[
            ("counselor", &counselor),
            ("client", &client),
            ("relay", &relay),
        ],
        plan,
    );

    counselor
        .edit_goal(plan, goal, &statement(long_text("tuvwxyz.", 2400)))
        .expect("rewritten statement");
    client
        .edit_goal(plan, goal, &words(long_text("ABCDEFG.", 2400)))
        .expect("rewritten words");
    client
        .set_gas(plan, goal, &level(long_text("HIJKL.", 2400)))
        .expect("rewritten level");
    sync_all();
    // Neither author is cut off: what they write next arrives too.
    counselor.set_title(plan, "Sleep plan").expect("title");
    client
        .edit_goal(plan, goal, &words("sleep well at night".into()))
        .expect("short words");
    sync_all();

    assert_no_refusals_and_equal(
        &[
            ("counselor", &counselor),
            ("client", &client),
            ("relay", &relay),
        ],
        plan,
    );
    let read = relay.plan(plan).expect("plan");
    assert_eq!(read.title, "Sleep plan");
    let read = read.goal(goal).expect("goal");
    assert_eq!(read.client_words, "sleep well at night");
    assert_eq!(read.clinical_statement, long_text("tuvwxyz.", 2400));
    let _ = dana;
}
