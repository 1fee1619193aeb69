//! The `alliance` command's contract: outputs, exit codes, one-line errors, and that bad
//! input leaves the store unchanged.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;

struct Cli {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        Self { _dir: dir, root }
    }

    fn db(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn run(&self, db: &Path, args: &[&str]) -> Output {
        common::run(db, args)
    }

    fn ok(&self, db: &Path, args: &[&str]) -> String {
        common::ok(db, args)
    }

    fn json(&self, db: &Path, args: &[&str]) -> Value {
        common::json(db, args)
    }
}

struct Setup {
    cli: Cli,
    dana: PathBuf,
    sam: PathBuf,
    plan: String,
    goal: String,
}

fn setup() -> Setup {
    let cli = Cli::new();
    let (dana, sam, plan) = common::counselor_and_client(&cli.root);
    cli.ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    let goal = cli.ok(
        &sam,
        &["goal", "propose", &plan, "--words", "I want to sleep"],
    );
    cli.ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    Setup {
        cli,
        dana,
        sam,
        plan,
        goal,
    }
}

#[test]
fn the_whole_contract_works_end_to_end() {
    let Setup {
        cli,
        dana,
        sam,
        plan,
        goal,
    } = setup();
    let who = cli.json(&dana, &["whoami", "--json"]);
    let keys: Vec<&str> = who
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["device_id", "member_id", "name", "role"]);
    assert_eq!(who["role"], "counselor");

    let list = cli.json(&sam, &["plan", "list", "--json"]);
    assert_eq!(list[0]["plan_id"], plan.as_str());
    assert_eq!(list[0]["title"], "Sam's plan");

    cli.ok(
        &dana,
        &[
            "goal",
            "edit",
            &plan,
            &goal,
            "--clinical",
            "Sleep hygiene",
            "--life-area",
            "health",
        ],
    );
    let objective = cli.ok(
        &dana,
        &[
            "objective",
            "add",
            &plan,
            &goal,
            "--text",
            "Lights out 23:30",
            "--measure",
            "nights",
            "--target",
            "5",
            "--unit",
            "nights/week",
            "--due",
            "2027-01-31",
        ],
    );
    assert_eq!(objective.len(), 36);
    cli.ok(&dana, &["gas", "set", &plan, &goal, "--weight", "2"]);
    cli.ok(
        &sam,
        &[
            "gas",
            "set",
            &plan,
            &goal,
            "--level",
            "-2",
            "--text",
            "No nights",
        ],
    );
    cli.ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    cli.ok(&dana, &["goal", "agree", &plan, &goal]);
    let agreed = cli.ok(&sam, &["goal", "agree", &plan, &goal]);
    assert!(agreed.contains("pending"), "{agreed}");
    cli.ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    cli.ok(&dana, &["goal", "edit", &plan, &goal, "--status", "active"]);
    let checkin = cli.ok(
        &sam,
        &[
            "checkin",
            &plan,
            &goal,
            "--level",
            "1",
            "--value",
            "4",
            "--mood",
            "7",
            "--craving",
            "2",
            "--note",
            "slept well",
            "--date",
            "2026-11-24",
        ],
    );
    cli.ok(
        &sam,
        &[
            "checkin",
            &plan,
            &goal,
            "--level",
            "0",
            "--corrects",
            &checkin,
        ],
    );
    let new_device = "00112233445566778899aabbccddeeff";
    let dana_member = who["member_id"].as_str().unwrap().to_owned();
    cli.ok(
        &dana,
        &[
            "device",
            "add",
            &plan,
            "--member",
            &dana_member,
            "--device",
            new_device,
        ],
    );
    cli.ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);

    let show = cli.json(&sam, &["show", &plan, "--json"]);
    assert_eq!(show, cli.json(&dana, &["show", &plan, "--json"]));
    for key in [
        "plan_id",
        "title",
        "review_on",
        "members",
        "goals",
        "gas_t_score",
    ] {
        assert!(show.get(key).is_some(), "show --json lacks {key}");
    }
    for key in ["member_id", "name", "role"] {
        assert!(show["members"][0].get(key).is_some());
    }
    let g = &show["goals"][0];
    for key in [
        "goal_id",
        "client_words",
        "clinical_statement",
        "life_area",
        "status",
        "agreement",
        "objectives",
        "gas",
        "checkins",
        "conflicts",
    ] {
        assert!(g.get(key).is_some(), "goal lacks {key}");
    }
    for key in ["state", "agreed_by", "waiting_for"] {
        assert!(g["agreement"].get(key).is_some());
    }
    for key in ["levels", "weight", "baseline"] {
        assert!(g["gas"].get(key).is_some());
    }
    for key in [
        "checkin_id",
        "by",
        "at",
        "local_date",
        "gas_level",
        "value",
        "mood",
        "craving",
        "note",
        "corrects",
    ] {
        assert!(g["checkins"][0].get(key).is_some(), "check-in lacks {key}");
    }
    assert_eq!(g["status"], "active");
    assert_eq!(g["clinical_statement"], "Sleep hygiene");
    assert_eq!(g["agreement"]["state"], "agreed");
    assert_eq!(g["gas"]["weight"], 2.0);
    assert_eq!(g["gas"]["levels"]["-2"], "No nights");
    assert_eq!(g["checkins"].as_array().unwrap().len(), 2);
    assert_eq!(g["objectives"][0]["due_on"], "2027-01-31");
    // One goal, latest level 0 after the correction: T = 50.
    assert_eq!(show["gas_t_score"], 50.0);

    let history = cli.json(&dana, &["history", &plan, "--json"]);
    let entries = history.as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["author"] == "Sam" && e["description"] == "proposed a goal"));
    assert!(entries
        .iter()
        .any(|e| e["author"] == "Dana" && e["description"] == "enrolled a device"));
    let text = cli.ok(&dana, &["show", &plan]);
    assert!(text.contains("I want to sleep"));
}

#[test]
fn concurrent_word_edits_merge_after_sync_with() {
    let Setup {
        cli,
        dana,
        sam,
        plan,
        goal,
    } = setup();
    cli.ok(
        &sam,
        &[
            "goal",
            "edit",
            &plan,
            &goal,
            "--words",
            "I want to sleep early",
        ],
    );
    cli.ok(
        &dana,
        &[
            "goal",
            "edit",
            &plan,
            &goal,
            "--words",
            "Honestly, I want to sleep",
        ],
    );
    cli.ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    let a = cli.json(&dana, &["show", &plan, "--json"]);
    let b = cli.json(&sam, &["show", &plan, "--json"]);
    assert_eq!(a, b);
    assert_eq!(
        a["goals"][0]["client_words"],
        "Honestly, I want to sleep early"
    );
}

/// The store's whole observable state.
fn state(cli: &Cli, db: &Path, plan: &str) -> String {
    let show = cli.run(db, &["show", plan, "--json"]);
    let history = cli.run(db, &["history", plan, "--json"]);
    let list = cli.run(db, &["plan", "list", "--json"]);
    let who = cli.run(db, &["whoami", "--json"]);
    [show, history, list, who]
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect()
}

#[test]
fn bad_input_for_every_command_is_one_line_and_changes_nothing() {
    let Setup {
        cli,
        dana,
        sam,
        plan,
        goal,
    } = setup();
    let missing = cli.db("missing.db");
    let other_plan = "6f1d8f0e-2a4b-4c3d-9e8f-0a1b2c3d4e5f";
    let cases: Vec<(&Path, Vec<&str>)> = vec![
        (&dana, vec!["init", "--name", "Dana", "--role", "counselor"]),
        (&missing, vec!["init", "--name", "X", "--role", "wizard"]),
        (
            &missing,
            vec![
                "init",
                "--name",
                "X",
                "--role",
                "client",
                "--member",
                "not-an-id",
            ],
        ),
        (&missing, vec!["whoami"]),
        (&missing, vec!["init", "--name", " ", "--role", "client"]),
        (
            &sam,
            vec!["plan", "new", "--title", "Mine", "--client-name", "Me"],
        ),
        (
            &dana,
            vec!["plan", "new", "--title", "", "--client-name", "Sam"],
        ),
        (
            &dana,
            vec![
                "plan",
                "new",
                "--title",
                "T",
                "--client-name",
                "Sam",
                "--client-device",
                "xyz",
            ],
        ),
        (
            &dana,
            vec!["plan", "set", &plan, "--review-on", "2026-02-30"],
        ),
        (&sam, vec!["plan", "set", &plan, "--title", "Mine"]),
        (
            &dana,
            vec![
                "device",
                "add",
                &plan,
                "--member",
                "nope",
                "--device",
                "00112233445566778899aabbccddeeff",
            ],
        ),
        (
            &dana,
            vec![
                "device",
                "add",
                &plan,
                "--member",
                other_plan,
                "--device",
                "00112233445566778899aabbccddeeff",
            ],
        ),
        (
            &dana,
            vec![
                "device", "add", &plan, "--member", other_plan, "--device", "0011", "--name", "X",
                "--role", "client",
            ],
        ),
        (&dana, vec!["show", other_plan]),
        (&dana, vec!["show", "plan?"]),
        (&dana, vec!["history", other_plan]),
        (&sam, vec!["goal", "propose", &plan, "--words", "   "]),
        (
            &sam,
            vec!["goal", "propose", other_plan, "--words", "Hello"],
        ),
        (
            &sam,
            vec![
                "goal",
                "edit",
                &plan,
                &goal,
                "--clinical",
                "I diagnose myself",
            ],
        ),
        (
            &sam,
            vec!["goal", "edit", &plan, &goal, "--status", "achieved"],
        ),
        (
            &dana,
            vec!["goal", "edit", &plan, &goal, "--status", "finished"],
        ),
        (&dana, vec!["goal", "edit", &plan, &goal]),
        (&dana, vec!["goal", "agree", &plan, other_plan]),
        (
            &sam,
            vec!["objective", "add", &plan, &goal, "--text", "Mine"],
        ),
        (
            &dana,
            vec![
                "objective",
                "add",
                &plan,
                &goal,
                "--text",
                "X",
                "--due",
                "soon",
            ],
        ),
        (
            &dana,
            vec![
                "gas",
                "set",
                &plan,
                &goal,
                "--level",
                "7",
                "--text",
                "Way beyond",
            ],
        ),
        (&dana, vec!["gas", "set", &plan, &goal, "--weight", "-1"]),
        (&dana, vec!["gas", "set", &plan, &goal]),
        (&sam, vec!["gas", "set", &plan, &goal, "--weight", "3"]),
        (&sam, vec!["checkin", &plan, &goal, "--mood", "11"]),
        (&sam, vec!["checkin", &plan, &goal, "--level", "-3"]),
        (&sam, vec!["checkin", &plan, &goal]),
        (
            &sam,
            vec![
                "checkin",
                &plan,
                &goal,
                "--mood",
                "3",
                "--date",
                "yesterday",
            ],
        ),
        (
            &sam,
            vec![
                "checkin",
                &plan,
                &goal,
                "--mood",
                "3",
                "--corrects",
                other_plan,
            ],
        ),
        (&dana, vec!["sync", "--with", missing.to_str().unwrap()]),
        (&dana, vec!["no-such-command"]),
    ];
    let before = (state(&cli, &dana, &plan), state(&cli, &sam, &plan));
    for (db, args) in &cases {
        let out = cli.run(db, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: stderr not one line: {stderr}"
        );
        assert!(stderr.len() > 10, "{args:?}: no message");
    }
    assert!(!missing.exists(), "a failed command created a store");
    assert_eq!(
        (state(&cli, &dana, &plan), state(&cli, &sam, &plan)),
        before
    );
}

#[test]
fn refused_changes_show_in_peers_show_and_history() {
    use automerge::sync::SyncDoc;
    use automerge::transaction::Transactable;
    use automerge::ReadDoc;

    let Setup {
        cli,
        dana,
        sam,
        plan,
        goal,
    } = setup();
    let empty = cli.json(&dana, &["peers", "--json"]);
    assert_eq!(empty, serde_json::json!([]));
    assert_eq!(
        cli.json(&dana, &["show", &plan, "--json"])["refused_changes"],
        serde_json::json!([])
    );

    // Sam's phone, tampered: it sets the goal's status, which only a counselor writes, and
    // signs the change with its own key.
    let plan_id = alliance_core::PlanId::parse(&plan).unwrap();
    let phone = alliance_core::Alliance::open(&sam).unwrap();
    let (bytes, actor) = (
        phone.saved_document(plan_id).unwrap(),
        phone.identity().unwrap().device_id.actor(),
    );
    let mut raw = automerge::Automerge::load(&bytes)
        .unwrap()
        .with_actor(actor);
    let goals = raw.get(automerge::ROOT, "goals").unwrap().unwrap().1;
    let goal_obj = raw.get(&goals, goal.as_str()).unwrap().unwrap().1;
    let mut tx = raw.transaction();
    tx.put(&goal_obj, "status", "achieved").unwrap();
    let tampered = tx.commit().0.unwrap();
    let signature = [(tampered, phone.sign_for_tests(&tampered).unwrap())];
    drop(phone);
    {
        let laptop = alliance_core::Alliance::open(&dana).unwrap();
        let mut state = automerge::sync::State::new();
        for _ in 0..20 {
            let mut quiet = true;
            if let Some(m) = raw.generate_sync_message(&mut state) {
                quiet = false;
                let m = alliance_core::authorship::carrier::wrap(m.encode(), &signature);
                laptop.receive_sync_message(plan_id, "phone", &m).unwrap();
            }
            if let Some(m) = laptop.generate_sync_message(plan_id, "phone").unwrap() {
                quiet = false;
                let (_, m) = alliance_core::authorship::carrier::split_raw(&m).unwrap();
                raw.receive_sync_message(&mut state, automerge::sync::Message::decode(m).unwrap())
                    .unwrap();
            }
            if quiet {
                break;
            }
        }
    }
    let peers = cli.json(&dana, &["peers", "--json"]);
    assert_eq!(peers.as_array().unwrap().len(), 1, "{peers}");
    assert_eq!(peers[0]["peer"], "phone");
    assert_eq!(peers[0]["plan_id"], plan.as_str());
    assert!(peers[0]["rule"].as_str().unwrap().contains("status"));
    let show = cli.json(&dana, &["show", &plan, "--json"]);
    assert_eq!(show["refused_changes"].as_array().unwrap().len(), 1);
    assert_eq!(show["goals"][0]["status"], "proposed");
    let history = cli.ok(&dana, &["history", &plan]);
    assert!(
        history
            .lines()
            .any(|l| l.starts_with("REFUSED") && l.contains("Sam")),
        "{history}"
    );
    assert!(cli.ok(&dana, &["peers"]).contains("status"));
}

#[test]
fn sync_with_exits_3_naming_plan_and_rule_when_the_other_store_refuses_an_own_change() {
    let Setup {
        cli,
        dana,
        sam,
        plan,
        goal,
    } = setup();
    common::write_refused_status_change(&sam, &plan, &goal);
    cli.ok(
        &sam,
        &["checkin", &plan, &goal, "--mood", "6", "--note", "walked"],
    );

    let out = cli.run(&sam, &["sync", "--with", dana.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("refused: "), "{stderr}");
    assert!(lines[0].contains(&plan), "{stderr}");
    assert!(lines[0].contains(common::STATUS_RULE), "{stderr}");
    assert!(lines[0].contains("this store's change"), "{stderr}");
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("synced 1 plan(s)"));
    // The check-in built on it arrived; both stores hold the same plan.
    assert_eq!(common::checkin_notes(&dana, &plan), ["walked"]);
    assert_eq!(
        cli.json(&dana, &["show", &plan, "--json"])["goals"],
        cli.json(&sam, &["show", &plan, "--json"])["goals"]
    );
    // From the other side the refused change is named by its store's file; told once.
    let again = cli.run(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0));
    assert!(again.stderr.is_empty());
}

#[test]
fn show_and_history_print_no_control_character_that_older_data_holds() {
    use automerge::transaction::Transactable;
    use automerge::ReadDoc;
    let s = setup();
    // Goal words with ESC and CR, as a store written before they were refused holds them:
    // appended to the stored document as a raw chunk, the way an older build wrote it.
    let plan = alliance_core::PlanId::parse(&s.plan).unwrap();
    let bytes = alliance_core::Alliance::open(&s.dana)
        .unwrap()
        .saved_document(plan)
        .unwrap();
    let mut doc = automerge::Automerge::load(&bytes).unwrap();
    let dana = s.cli.json(&s.dana, &["whoami", "--json"]);
    let device = alliance_core::DeviceId::parse(dana["device_id"].as_str().unwrap()).unwrap();
    doc.set_actor(device.actor());
    let goals = doc.get(automerge::ROOT, "goals").unwrap().unwrap().1;
    let goal = doc.get(&goals, s.goal.as_str()).unwrap().unwrap().1;
    let words = doc.get(&goal, "client_words").unwrap().unwrap().1;
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    tx.splice_text(&words, 0, 0, "\u{1b}[2K\ragreement: agreed\u{9b}1m ")
        .unwrap();
    tx.commit();
    let chunk = doc.save_after(&before);
    {
        let db = rusqlite::Connection::open(&s.dana).unwrap();
        db.execute(
            "INSERT INTO chunks (doc_id, seq, bytes)
             VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM chunks WHERE doc_id = ?1), ?2)",
            rusqlite::params![s.plan, chunk],
        )
        .unwrap();
        // As every writer since the heads column does (migration 006): the document's heads,
        // sorted, back to back. Plans' read models are kept by these heads.
        let mut heads = doc.get_heads();
        heads.sort();
        let heads: Vec<u8> = heads.iter().flat_map(|h| h.0).collect();
        db.execute(
            "UPDATE documents SET chunk_bytes = chunk_bytes + ?2, heads = ?3 WHERE doc_id = ?1",
            rusqlite::params![s.plan, chunk.len() as i64, heads],
        )
        .unwrap();
    }
    for args in [
        vec!["show", s.plan.as_str()],
        vec!["history", s.plan.as_str()],
        vec!["show", s.plan.as_str(), "--format", "markdown"],
        vec!["report", s.plan.as_str()],
    ] {
        let out = s.cli.run(&s.dana, &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.chars()
                .all(|c| !c.is_control() || c == '\n' || c == '\t'),
            "{args:?} printed a control character: {text:?}"
        );
        if args.len() == 2 && args[0] == "show" {
            assert!(text.contains("\u{241b}[2K\u{240d}agreement"), "{text}");
        }
    }
}
