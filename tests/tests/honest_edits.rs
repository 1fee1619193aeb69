//! No false refusals: every edit the local API accepts is accepted by every other replica and
//! by the relay. A counselor's phone and laptop, a client's phone and a relay's store (no
//! identity) exchange sync messages in process; after everything is synced no replica has
//! refused anything and all read the same plan.
//!
//! The property test generates honest edits of every kind by every role — long rewrites up to
//! and over the text limit, shortening, multi-unit text (emoji, ZWJ sequences, combining marks,
//! CJK) — interleaved with partial and full syncs, so that devices also edit concurrently.
//! `ALLIANCE_PROPTEST_CASES` sets the number of cases (1,000 by default).

use alliance_core::validate::{MAX_LABEL, MAX_TEXT};
use alliance_core::{
    Alliance, DeviceId, GasEdit, GoalEdit, GoalId, GoalStatus, Identity, MemberId, NewCheckIn,
    NewDevice, NewIntervention, NewObjective, NewPlan, Plan, PlanId, Role,
};
use proptest::prelude::*;

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

/// `n` characters cycling through `alphabet`. Texts made from alphabets with no character in
/// common share nothing: a rewrite from one to the other deletes every old character and
/// inserts every new one.
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
    counselor.init("Dana", Role::Counselor, None).expect("init");
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
}

/// Two counselor devices write the same statement concurrently, each more than half the
/// longest text allowed. Both edits are honest: merged, the statement holds both texts (over
/// the limit), and no replica refuses either, whichever reaches the relay first. A later edit
/// that shortens the merged text is judged on what it leaves.
#[test]
fn concurrent_long_edits_merge_over_the_limit_without_refusals() {
    let half = MAX_TEXT / 2 + 50;
    for laptop_first in [false, true] {
        let net = Net::new();
        let goal = net.replicas[0].store.plan(net.plan).expect("plan").goals[0].goal_id;
        let statement = |text: String| GoalEdit {
            clinical_statement: Some(text),
            ..GoalEdit::default()
        };
        for (by, alphabet) in [(0, "abc "), (1, "xyz.")] {
            net.replicas[by]
                .store
                .edit_goal(net.plan, goal, &statement(long_text(alphabet, half)))
                .expect("concurrent edit");
        }
        let order = if laptop_first { [1, 0, 2] } else { [0, 1, 2] };
        for by in order {
            net.sync(by, RELAY, None);
        }
        net.sync_everything();
        net.assert_agreed();
        let merged = net.replicas[2].store.plan(net.plan).expect("plan");
        let merged = merged.goal(goal).expect("goal").clinical_statement.clone();
        assert_eq!(merged.chars().count(), 2 * half);
        // The laptop keeps the first half of the merge and adds a few words.
        let mut kept: String = merged.chars().take(half).collect();
        kept.push_str(" settled");
        net.replicas[1]
            .store
            .edit_goal(net.plan, goal, &statement(kept))
            .expect("settle");
        net.sync_everything();
        net.assert_agreed();
    }
}

// ---- the property ----

/// A replica that edits: its store and who uses it.
struct Replica {
    store: Alliance,
    me: Identity,
}

/// Phone (0) and laptop (1) of one counselor, the client's phone (2), and the relay's store.
struct Net {
    replicas: [Replica; 3],
    relay: Alliance,
    plan: PlanId,
}

/// The relay's index among sync endpoints (0..3 are the replicas).
const RELAY: usize = 3;

impl Net {
    fn new() -> Self {
        let replica = |name: &str, role, member| {
            let store = Alliance::open_in_memory().expect("store");
            let me = store.init(name, role, member).expect("init");
            Replica { store, me }
        };
        let phone = replica("Dana", Role::Counselor, None);
        let laptop = replica("Dana", Role::Counselor, Some(phone.me.member_id));
        let client = replica("Sam", Role::Client, None);
        let plan = phone
            .store
            .create_plan(&NewPlan {
                title: "Plan".into(),
                client_name: "Sam".into(),
                client_member: Some(client.me.member_id),
                client_device: Some(client.me.device_id),
            })
            .expect("plan");
        phone
            .store
            .enroll_device(
                plan,
                &NewDevice {
                    device: laptop.me.device_id,
                    member: laptop.me.member_id,
                    new_member: None,
                    label: "laptop".into(),
                },
            )
            .expect("enroll");
        phone.store.propose_goal(plan, "sleep well").expect("goal");
        let net = Net {
            replicas: [phone, laptop, client],
            relay: Alliance::open_in_memory().expect("relay"),
            plan,
        };
        net.sync_everything();
        net
    }

    fn endpoint(&self, index: usize) -> (&Alliance, String) {
        match self.replicas.get(index) {
            Some(replica) => (&replica.store, replica.me.device_id.to_string()),
            None => (&self.relay, "relay".to_owned()),
        }
    }

    /// A connection between two endpoints: `rounds` rounds (until quiet when None), then it
    /// closes.
    fn sync(&self, a: usize, b: usize, rounds: Option<usize>) {
        self.exchange(a, b, rounds);
        self.close(a, b);
    }

    /// Rounds of messages over an open connection; whether anything was sent.
    fn exchange(&self, a: usize, b: usize, rounds: Option<usize>) -> bool {
        let (a, a_key) = self.endpoint(a);
        let (b, b_key) = self.endpoint(b);
        let mut sent = false;
        for _ in 0..rounds.unwrap_or(64) {
            let mut quiet = true;
            if let Some(m) = a
                .generate_sync_message(self.plan, &b_key)
                .expect("generate")
            {
                quiet = false;
                b.receive_sync_message(self.plan, &a_key, &m)
                    .expect("receive");
            }
            if let Some(m) = b
                .generate_sync_message(self.plan, &a_key)
                .expect("generate")
            {
                quiet = false;
                a.receive_sync_message(self.plan, &b_key, &m)
                    .expect("receive");
            }
            sent |= !quiet;
            if quiet {
                break;
            }
        }
        sent
    }

    fn close(&self, a: usize, b: usize) {
        let (a, a_key) = self.endpoint(a);
        let (b, b_key) = self.endpoint(b);
        a.end_sync_session(&b_key);
        b.end_sync_session(&a_key);
    }

    /// Every device with the relay, over connections that stay open until a whole pass sends
    /// nothing; then they close. (Direct device-to-device syncs are `Op::Sync`s.)
    fn sync_everything(&self) {
        const PAIRS: [(usize, usize); 3] = [(0, RELAY), (1, RELAY), (2, RELAY)];
        let mut quiet = false;
        for _ in 0..8 {
            quiet = true;
            for (a, b) in PAIRS {
                quiet &= !self.exchange(a, b, None);
            }
            if quiet {
                break;
            }
        }
        for (a, b) in PAIRS {
            self.close(a, b);
        }
        assert!(quiet, "replicas kept exchanging messages");
    }

    /// No endpoint refused anything, and all read the same plan.
    fn assert_agreed(&self) {
        let stores = [
            ("phone", &self.replicas[0].store),
            ("laptop", &self.replicas[1].store),
            ("client", &self.replicas[2].store),
            ("relay", &self.relay),
        ];
        assert_no_refusals_and_equal(&stores, self.plan);
    }
}

/// Pieces texts are made of: one or several chars each (ZWJ sequences, combining marks,
/// flags, skin tones), some of them several UTF-8 or UTF-16 units per char.
const PIECES: [&str; 16] = [
    "sleep ",
    "walk",
    " ",
    "é",
    "e\u{301}",
    "a\u{308}\u{323}",
    "👩\u{200d}👩\u{200d}👧\u{200d}👦",
    "🇫🇷",
    "👍🏽",
    "睡眠",
    "한국어",
    "ﬁ",
    ".",
    "\n",
    "𝄞",
    "x",
];

/// `n` characters of pieces picked by `seed` (the last piece may be cut).
fn fresh_text(seed: u64, n: usize) -> String {
    let mut state = seed | 1;
    let mut out = String::new();
    let mut count = 0;
    while count < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        for c in PIECES[(state % PIECES.len() as u64) as usize].chars() {
            if count == n {
                break;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// How a new text is made from the current one.
#[derive(Clone, Debug)]
enum TextSpec {
    /// A new text of `len` characters (a rewrite).
    Fresh { len: usize, seed: u64 },
    /// `remove` characters from `at` percent of the way in replaced by `insert` new ones.
    Splice {
        at: usize,
        remove: usize,
        insert: usize,
        seed: u64,
    },
    /// Cut to, or grown to, `len` characters (shortening, deleting most, filling up).
    Resize { len: usize, seed: u64 },
}

impl TextSpec {
    fn apply(&self, current: &str) -> String {
        match *self {
            TextSpec::Fresh { len, seed } => fresh_text(seed, len),
            TextSpec::Splice {
                at,
                remove,
                insert,
                seed,
            } => {
                let chars: Vec<char> = current.chars().collect();
                let at = chars.len() * at / 100;
                let end = (at + remove).min(chars.len());
                let mut out: String = chars[..at].iter().collect();
                out.push_str(&fresh_text(seed, insert));
                out.extend(&chars[end..]);
                out
            }
            TextSpec::Resize { len, seed } => {
                let count = current.chars().count();
                if count >= len {
                    current.chars().take(len).collect()
                } else {
                    let mut out = current.to_owned();
                    out.push_str(&fresh_text(seed, len - count));
                    out
                }
            }
        }
    }
}

/// Text lengths. A case either writes long texts (up to, at and just over the limit) or only
/// short ones: long texts are what the judge once got wrong, short ones are cheap, so both
/// kinds of case run in numbers.
fn length(long: bool) -> BoxedStrategy<usize> {
    let label_limit = (MAX_LABEL - 2)..=(MAX_LABEL + 1);
    if long {
        prop_oneof![
            1 => 1..=40usize,
            1 => (MAX_TEXT / 2)..MAX_TEXT,
            3 => (MAX_TEXT - 10)..=MAX_TEXT,
            1 => Just(MAX_TEXT + 1),
        ]
        .boxed()
    } else {
        prop_oneof![
            8 => 1..=40usize,
            2 => 41..=400usize,
            1 => label_limit,
            1 => Just(0usize),
        ]
        .boxed()
    }
}

/// How a text is edited. In a case with long texts, mostly filled up to the limit and then
/// spliced (which the judge must measure exactly: old length plus insertions is over the
/// limit), sometimes rewritten whole (slow: the local diff is quadratic).
fn text_spec(long: bool) -> impl Strategy<Value = TextSpec> {
    let many = if long { MAX_TEXT } else { 400 };
    let few_or_many = move |many: usize| prop_oneof![3 => 0..=20usize, 1 => 0..=many];
    let (fresh, resize) = if long { (2, 4) } else { (3, 3) };
    prop_oneof![
        fresh => (length(long), any::<u64>())
            .prop_map(|(len, seed)| TextSpec::Fresh { len, seed }),
        4 => (0..=100usize, few_or_many(many), few_or_many(many.min(600)), any::<u64>())
            .prop_map(|(at, remove, insert, seed)| TextSpec::Splice { at, remove, insert, seed }),
        resize => (length(long), any::<u64>())
            .prop_map(|(len, seed)| TextSpec::Resize { len, seed }),
    ]
}

/// Edits of the same text in a row (each its own change). With long texts, mostly: fill the
/// text up to the limit, then splice it (replace, insert, delete a stretch) once or twice.
fn text_edits(long: bool) -> BoxedStrategy<Vec<TextSpec>> {
    if !long {
        return proptest::collection::vec(text_spec(false), 1..=3).boxed();
    }
    let fill = ((MAX_TEXT - 10)..=MAX_TEXT, any::<u64>())
        .prop_map(|(len, seed)| TextSpec::Resize { len, seed });
    let splice = (0..=100usize, 0..=600usize, 1..=600usize, any::<u64>()).prop_map(
        |(at, remove, insert, seed)| TextSpec::Splice {
            at,
            remove,
            insert,
            seed,
        },
    );
    prop_oneof![
        3 => (fill, proptest::collection::vec(splice, 1..=2)).prop_map(|(fill, splices)| {
            let mut edits = vec![fill];
            edits.extend(splices);
            edits
        }),
        1 => proptest::collection::vec(text_spec(true), 2..=3),
    ]
    .boxed()
}

/// Short labels (life areas, measures, units, frequencies, device labels): valid ones, the
/// longest, one too long, and ones local validation refuses.
fn label(choice: usize) -> String {
    match choice % 8 {
        0 => "health".into(),
        1 => "睡眠 👩\u{200d}👩\u{200d}👧".into(),
        2 => fresh_text(7, MAX_LABEL),
        3 => fresh_text(9, MAX_LABEL + 1),
        4 => "two\nlines".into(),
        5 => "   ".into(),
        6 => "e\u{301}tude".into(),
        _ => "minutes".into(),
    }
}

const DATES: [&str; 6] = [
    "2026-03-01",
    "2028-02-29",
    "2026-02-30",
    "2026-3-1",
    "9999-12-31",
    "0001-01-01",
];

const WEIGHTS: [f64; 7] = [1.0, 0.5, 2.5, 100.0, 0.0, 100.5, f64::NAN];

#[derive(Clone, Debug)]
enum Op {
    Title {
        by: usize,
        texts: Vec<TextSpec>,
    },
    ReviewDate {
        by: usize,
        date: usize,
    },
    Propose {
        by: usize,
        words: TextSpec,
    },
    ClientWords {
        by: usize,
        goal: usize,
        texts: Vec<TextSpec>,
    },
    Clinical {
        by: usize,
        goal: usize,
        texts: Vec<TextSpec>,
    },
    LifeArea {
        by: usize,
        goal: usize,
        area: Option<usize>,
    },
    Status {
        by: usize,
        goal: usize,
        status: usize,
    },
    Objective {
        by: usize,
        goal: usize,
        text: TextSpec,
        /// Measure, unit and due date (indexes), and a target.
        extras: (Option<usize>, Option<usize>, Option<usize>, Option<usize>),
    },
    Intervention {
        by: usize,
        goal: usize,
        text: TextSpec,
        owner: Option<usize>,
        frequency: Option<usize>,
    },
    GasLevel {
        by: usize,
        goal: usize,
        level: i8,
        texts: Vec<TextSpec>,
    },
    GasWeight {
        by: usize,
        goal: usize,
        weight: usize,
    },
    GasBaseline {
        by: usize,
        goal: usize,
        level: i8,
    },
    Agree {
        by: usize,
        goal: usize,
    },
    CheckIn {
        by: usize,
        goal: usize,
        /// GAS level, mood, craving, value (index into WEIGHTS).
        values: (Option<i8>, Option<u8>, Option<u8>, Option<usize>),
        note: TextSpec,
        /// Date (index into DATES), time-zone offset, the check-in corrected (index).
        when: (Option<usize>, Option<i32>, Option<usize>),
    },
    /// Enrolls a device: a new one (for this member, the client, the counselor or a new
    /// member) or one already enrolled (`existing`).
    Enroll {
        by: usize,
        whom: usize,
        existing: Option<usize>,
        label: usize,
    },
    /// A connection between two endpoints (3 is the relay) for some rounds or until quiet.
    Sync {
        a: usize,
        b: usize,
        rounds: Option<usize>,
    },
}

fn op(long: bool) -> impl Strategy<Value = Op> {
    let by = 0..3usize;
    let counselor = 0..2usize;
    let goal = 0..4usize;
    let small = || proptest::option::of(0..8usize);
    prop_oneof![
        1 => (counselor.clone(), text_edits(long)).prop_map(|(by, texts)| Op::Title { by, texts }),
        1 => (by.clone(), 0..DATES.len()).prop_map(|(by, date)| Op::ReviewDate { by, date }),
        2 => (by.clone(), text_spec(long)).prop_map(|(by, words)| Op::Propose { by, words }),
        4 => (by.clone(), goal.clone(), text_edits(long))
            .prop_map(|(by, goal, texts)| Op::ClientWords { by, goal, texts }),
        4 => (by.clone(), goal.clone(), text_edits(long))
            .prop_map(|(by, goal, texts)| Op::Clinical { by, goal, texts }),
        1 => (by.clone(), goal.clone(), small())
            .prop_map(|(by, goal, area)| Op::LifeArea { by, goal, area }),
        2 => (by.clone(), goal.clone(), 0..GoalStatus::ALL.len())
            .prop_map(|(by, goal, status)| Op::Status { by, goal, status }),
        1 => (by.clone(), goal.clone(), text_spec(long), (small(), small(), small(), small()))
            .prop_map(|(by, goal, text, extras)| Op::Objective { by, goal, text, extras }),
        1 => (by.clone(), goal.clone(), text_spec(long), proptest::option::of(0..4usize), small())
            .prop_map(|(by, goal, text, owner, frequency)| Op::Intervention {
                by, goal, text, owner, frequency
            }),
        3 => (by.clone(), goal.clone(), -3..=3i8, text_edits(long))
            .prop_map(|(by, goal, level, texts)| Op::GasLevel { by, goal, level, texts }),
        1 => (by.clone(), goal.clone(), 0..WEIGHTS.len())
            .prop_map(|(by, goal, weight)| Op::GasWeight { by, goal, weight }),
        1 => (by.clone(), goal.clone(), -3..=3i8)
            .prop_map(|(by, goal, level)| Op::GasBaseline { by, goal, level }),
        1 => (by.clone(), goal.clone()).prop_map(|(by, goal)| Op::Agree { by, goal }),
        2 => (
            by.clone(),
            goal.clone(),
            (
                proptest::option::of(-3..=3i8),
                proptest::option::of(0..=11u8),
                proptest::option::of(0..=11u8),
                proptest::option::of(0..WEIGHTS.len()),
            ),
            text_spec(long),
            (
                proptest::option::of(0..DATES.len()),
                proptest::option::of(-15 * 60..=15 * 60i32),
                proptest::option::of(0..8usize),
            ),
        )
            .prop_map(|(by, goal, values, note, when)| Op::CheckIn {
                by, goal, values, note, when
            }),
        1 => (by.clone(), 0..4usize, proptest::option::weighted(0.2, 0..4usize), 0..8usize)
            .prop_map(|(by, whom, existing, label)| Op::Enroll { by, whom, existing, label }),
        6 => (0..4usize, 1..4usize, proptest::option::of(1..4usize))
            .prop_map(|(a, other, rounds)| Op::Sync { a, b: (a + other) % 4, rounds }),
    ]
}

fn goal_at(plan: &Plan, index: usize) -> Option<&alliance_core::Goal> {
    plan.goals.get(index % plan.goals.len().max(1))
}

/// Runs one operation through the public API. A local refusal (Err) must leave the store as
/// it was.
fn apply(net: &Net, op: &Op) {
    let (by, store) = match op {
        Op::Sync { a, b, rounds } => {
            net.sync(*a, *b, *rounds);
            return;
        }
        Op::Title { by, .. }
        | Op::ReviewDate { by, .. }
        | Op::Propose { by, .. }
        | Op::ClientWords { by, .. }
        | Op::Clinical { by, .. }
        | Op::LifeArea { by, .. }
        | Op::Status { by, .. }
        | Op::Objective { by, .. }
        | Op::Intervention { by, .. }
        | Op::GasLevel { by, .. }
        | Op::GasWeight { by, .. }
        | Op::GasBaseline { by, .. }
        | Op::Agree { by, .. }
        | Op::CheckIn { by, .. }
        | Op::Enroll { by, .. } => (*by, &net.replicas[*by].store),
    };
    let steps = match op {
        Op::Title { texts, .. }
        | Op::ClientWords { texts, .. }
        | Op::Clinical { texts, .. }
        | Op::GasLevel { texts, .. } => texts.len(),
        _ => 1,
    };
    let plan = net.plan;
    for step in 0..steps {
        let before = store.plan(plan).expect("plan");
        let heads = store.plan_heads(&[plan]).expect("heads");
        let result = edit(net, by, &before, op, step);
        if result.is_err() {
            assert_eq!(store.plan_heads(&[plan]).expect("heads"), heads, "{op:?}");
            assert_eq!(store.plan(plan).expect("plan"), before, "{op:?}");
        }
    }
}

/// Step `step` of `op` (text operations make one edit per step).
fn edit(net: &Net, by: usize, before: &Plan, op: &Op, step: usize) -> alliance_core::Result<()> {
    let store = &net.replicas[by].store;
    let plan = net.plan;
    // The plan starts with a goal, and goals are never removed.
    let goal = |index: usize| -> alliance_core::Result<&alliance_core::Goal> {
        Ok(goal_at(before, index).expect("a goal"))
    };
    match op {
        Op::Sync { .. } => Ok(()),
        Op::Title { texts, .. } => store.set_title(plan, &texts[step].apply(&before.title)),
        Op::ReviewDate { date, .. } => store.set_review_on(plan, DATES[*date]),
        Op::Propose { words, .. } => store.propose_goal(plan, &words.apply("")).map(drop),
        Op::ClientWords { goal: g, texts, .. } => {
            let goal = goal(*g)?;
            let edit = GoalEdit {
                client_words: Some(texts[step].apply(&goal.client_words)),
                ..GoalEdit::default()
            };
            store.edit_goal(plan, goal.goal_id, &edit)
        }
        Op::Clinical { goal: g, texts, .. } => {
            let goal = goal(*g)?;
            let edit = GoalEdit {
                clinical_statement: Some(texts[step].apply(&goal.clinical_statement)),
                ..GoalEdit::default()
            };
            store.edit_goal(plan, goal.goal_id, &edit)
        }
        Op::LifeArea { goal: g, area, .. } => {
            let edit = GoalEdit {
                life_area: Some(area.map(label).unwrap_or_default()),
                ..GoalEdit::default()
            };
            store.edit_goal(plan, goal(*g)?.goal_id, &edit)
        }
        Op::Status {
            goal: g, status, ..
        } => {
            let edit = GoalEdit {
                status: Some(GoalStatus::ALL[*status]),
                ..GoalEdit::default()
            };
            store.edit_goal(plan, goal(*g)?.goal_id, &edit)
        }
        Op::Objective {
            goal: g,
            text,
            extras: (measure, unit, due, target),
            ..
        } => {
            let objective = NewObjective {
                text: text.apply(""),
                measure: measure.map(label),
                target: target.map(|t| WEIGHTS[t % WEIGHTS.len()] * 10.0),
                unit: unit.map(label),
                due_on: due.map(|d| DATES[d % DATES.len()].to_owned()),
            };
            store
                .add_objective(plan, goal(*g)?.goal_id, &objective)
                .map(drop)
        }
        Op::Intervention {
            goal: g,
            text,
            owner,
            frequency,
            ..
        } => {
            let owner = owner.map(|o| match before.members.get(o) {
                Some(member) => member.member_id,
                None => MemberId::new(),
            });
            let intervention = NewIntervention {
                text: text.apply(""),
                owner,
                frequency: frequency.map(label),
            };
            store
                .add_intervention(plan, goal(*g)?.goal_id, &intervention)
                .map(drop)
        }
        Op::GasLevel {
            goal: g,
            level,
            texts,
            ..
        } => {
            let goal = goal(*g)?;
            let current = goal.gas.levels.get(&level.to_string());
            let edit = GasEdit::Level {
                level: *level,
                text: texts[step].apply(current.map(String::as_str).unwrap_or("")),
            };
            store.set_gas(plan, goal.goal_id, &edit)
        }
        Op::GasWeight {
            goal: g, weight, ..
        } => store.set_gas(plan, goal(*g)?.goal_id, &GasEdit::Weight(WEIGHTS[*weight])),
        Op::GasBaseline { goal: g, level, .. } => {
            store.set_gas(plan, goal(*g)?.goal_id, &GasEdit::Baseline(*level))
        }
        Op::Agree { goal: g, .. } => store.agree(plan, goal(*g)?.goal_id),
        Op::CheckIn {
            goal: g,
            values: (level, mood, craving, value),
            note,
            when: (date, tz, corrects),
            ..
        } => {
            let goal = goal(*g)?;
            let checkin = NewCheckIn {
                gas_level: *level,
                value: value.map(|v| WEIGHTS[v] - 1.0),
                mood: *mood,
                craving: *craving,
                note: note.apply(""),
                local_date: date.map(|d| DATES[d].to_owned()),
                tz_offset_min: *tz,
                corrects: corrects.and_then(|c| goal.checkins.get(c).map(|c| c.checkin_id)),
            };
            store.check_in(plan, goal.goal_id, &checkin).map(drop)
        }
        Op::Enroll {
            whom,
            existing,
            label: l,
            ..
        } => {
            let me = &net.replicas[by].me;
            let client = before.client().map(|m| m.member_id).unwrap_or_default();
            let (member, new_member) = match whom {
                0 => (me.member_id, None),
                1 => (client, None),
                2 => (net.replicas[0].me.member_id, None),
                _ => (MemberId::new(), Some(("Alex".to_owned(), Role::Client))),
            };
            let device = match existing.and_then(|e| before.devices.get(e)) {
                Some(device) => device.device_id,
                None => DeviceId::new(),
            };
            store.enroll_device(
                plan,
                &NewDevice {
                    device,
                    member,
                    new_member,
                    label: label(*l),
                },
            )
        }
    }
}

fn cases() -> u32 {
    std::env::var("ALLIANCE_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 1_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_edit_accepted_locally_is_accepted_everywhere(
        ops in prop::bool::weighted(0.1)
            .prop_flat_map(|long| proptest::collection::vec(op(long), 1..8))
    ) {
        let net = Net::new();
        for op in &ops {
            apply(&net, op);
        }
        net.sync_everything();
        net.assert_agreed();
    }
}
