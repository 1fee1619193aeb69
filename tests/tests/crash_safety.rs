//! Crash safety: a writer process makes acknowledged edits (printed only after the API
//! returned) and is killed with SIGKILL at random points; each time the store must reopen with
//! every acknowledged edit present and `PRAGMA integrity_check` clean. Half the runs use an
//! encrypted store, half an unencrypted one.
//!
//! `ALLIANCE_CRASH_KILLS=100` raises the number of kills (default 20);
//! `ALLIANCE_CRASH_SEED=N` replays one sequence of kill points.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alliance_core::{Alliance, CheckInId, GoalId, NewPlan, PlanId, Role, StoreKey};

const DEFAULT_KILLS: u64 = 20;

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// What the writers acknowledged so far, for one store.
#[derive(Default)]
struct Acknowledged {
    goals: HashMap<GoalId, String>,
    checkins: HashMap<CheckInId, (GoalId, String)>,
    /// (run, step) of the last acknowledged title.
    last_title: Option<(u64, u64)>,
    edits: usize,
}

impl Acknowledged {
    fn record(&mut self, line: &str) {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["goal", id, words] => {
                self.goals
                    .insert(GoalId::parse(id).unwrap(), (*words).to_owned());
            }
            ["checkin", goal, id, note] => {
                self.checkins.insert(
                    CheckInId::parse(id).unwrap(),
                    (GoalId::parse(goal).unwrap(), (*note).to_owned()),
                );
            }
            ["title", title] => self.last_title = Some(run_and_step(title)),
            _ => panic!("unexpected writer line {line:?}"),
        }
        self.edits += 1;
    }
}

/// The (run, step) in a text like `crash-title-3-17`.
fn run_and_step(text: &str) -> (u64, u64) {
    let mut numbers = text.rsplit('-').take(2).map(|n| n.parse::<u64>().unwrap());
    let step = numbers.next().unwrap();
    let run = numbers.next().unwrap();
    (run, step)
}

struct Target {
    db: PathBuf,
    key_file: Option<PathBuf>,
    plan: PlanId,
    acknowledged: Acknowledged,
}

impl Target {
    fn new(folder: &Path, name: &str, key: Option<[u8; 32]>) -> Self {
        let db = folder.join(format!("{name}.db"));
        let key_file = key.map(|bytes| {
            let path = folder.join(format!("{name}.key"));
            std::fs::write(&path, bytes).unwrap();
            path
        });
        let store = open(&db, key_file.as_deref());
        store.init("Counselor", Role::Counselor, None).unwrap();
        let plan = store
            .create_plan(&NewPlan {
                title: "crash-title-0-0".into(),
                client_name: "Client".into(),
                ..NewPlan::default()
            })
            .unwrap();
        Self {
            db,
            key_file,
            plan,
            acknowledged: Acknowledged::default(),
        }
    }

    /// Every acknowledged edit is in the store and the file is sound.
    fn verify(&self, kill: u64) {
        let store = open(&self.db, self.key_file.as_deref());
        assert_eq!(
            store.integrity_check().unwrap(),
            Vec::<String>::new(),
            "kill {kill}: integrity check"
        );
        let plan = store.plan(self.plan).unwrap();
        for (goal, words) in &self.acknowledged.goals {
            let found = plan
                .goal(*goal)
                .unwrap_or_else(|_| panic!("kill {kill}: goal {words} lost"));
            assert_eq!(&found.client_words, words, "kill {kill}");
        }
        for (checkin, (goal, note)) in &self.acknowledged.checkins {
            let found = plan.goal(*goal).unwrap();
            assert!(
                found
                    .checkins
                    .iter()
                    .any(|c| c.checkin_id == *checkin && &c.note == note),
                "kill {kill}: check-in {note} lost"
            );
        }
        if let Some(last) = self.acknowledged.last_title {
            // The title is the last acknowledged one, or one written after it.
            assert!(run_and_step(&plan.title) >= last, "kill {kill}: title lost");
        }
    }
}

fn open(db: &Path, key_file: Option<&Path>) -> Alliance {
    match key_file {
        Some(path) => {
            let key = StoreKey::from_slice(&std::fs::read(path).unwrap()).unwrap();
            Alliance::open_encrypted(db, &key).unwrap()
        }
        None => Alliance::open(db).unwrap(),
    }
}

/// Starts a writer, lets it acknowledge a random number of edits, waits a random moment more
/// (the writer keeps writing) and kills it with SIGKILL. Records every line it printed.
fn run_and_kill(target: &mut Target, run: u64, random: &mut Random) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crash_writer"));
    command
        .arg(&target.db)
        .arg(target.plan.to_string())
        .arg(run.to_string());
    if let Some(key_file) = &target.key_file {
        command.arg(key_file);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let wait_for = 1 + random.below(12);
    let mut line = String::new();
    for _ in 0..wait_for {
        line.clear();
        if lines.read_line(&mut line).unwrap() == 0 {
            break;
        }
        target.acknowledged.record(line.trim_end());
    }
    std::thread::sleep(Duration::from_micros(random.below(3_000)));
    // Child::kill sends SIGKILL on Unix: no destructor, no flush, no checkpoint runs.
    child.kill().unwrap();
    child.wait().unwrap();
    // Lines the writer printed before it died were acknowledged too; a cut-off last line
    // (no newline) was not.
    loop {
        line.clear();
        if lines.read_line(&mut line).unwrap() == 0 || !line.ends_with('\n') {
            break;
        }
        target.acknowledged.record(line.trim_end());
    }
}

#[test]
fn acknowledged_edits_survive_sigkill_and_the_file_stays_sound() {
    let kills: u64 = std::env::var("ALLIANCE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed: u64 = std::env::var("ALLIANCE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(1);
            u64::from(nanos) | 1
        });
    eprintln!("crash safety: {kills} kills, ALLIANCE_CRASH_SEED={seed}");
    let mut random = Random(seed);
    let folder = tempfile::tempdir().unwrap();
    let mut targets = [
        Target::new(folder.path(), "encrypted", Some([0x3C; 32])),
        Target::new(folder.path(), "plaintext", None),
    ];
    for kill in 1..=kills {
        let target = &mut targets[(kill % 2) as usize];
        run_and_kill(target, kill, &mut random);
        target.verify(kill);
    }
    let edits: usize = targets.iter().map(|t| t.acknowledged.edits).sum();
    eprintln!("crash safety: {kills} kills, {edits} acknowledged edits, all present");
    assert!(
        edits as u64 >= kills,
        "every run acknowledged at least one edit"
    );
}
