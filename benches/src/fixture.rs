//! Devices and plans the benchmarks work on: a plan with a year of check-ins, stores with
//! hundreds of plans. Built through the public API, like an app would.

use std::path::Path;
use std::sync::Arc;

use alliance_core::local_sync::sync_stores;
use alliance_core::{
    Alliance, GasEdit, GoalEdit, GoalId, Identity, NewCheckIn, NewObjective, NewPlan, PlanId, Role,
};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One device: its store and who uses it.
pub struct Device {
    pub store: Arc<Alliance>,
    pub me: Identity,
}

impl Device {
    /// A new person's first device, stored in the file at `path`.
    pub fn at(path: &Path, name: &str, role: Role) -> Result<Self> {
        let store = Arc::new(Alliance::open(path)?);
        let me = store.init(name, role, None)?;
        Ok(Self { store, me })
    }

    /// A new person's first device, kept in memory.
    pub fn in_memory(name: &str, role: Role) -> Result<Self> {
        let store = Arc::new(Alliance::open_in_memory()?);
        let me = store.init(name, role, None)?;
        Ok(Self { store, me })
    }

    /// Reopens the device stored at `path` (as after an app restart).
    pub fn reopen(path: &Path) -> Result<Self> {
        let store = Arc::new(Alliance::open(path)?);
        let me = store.identity().ok_or("the store has no identity")?;
        Ok(Self { store, me })
    }

    /// A plan this counselor starts with `client`'s device enrolled.
    pub fn plan_with(&self, client: &Device, title: &str) -> Result<PlanId> {
        Ok(self.store.create_plan(&NewPlan {
            title: title.into(),
            client_name: client.me.name.clone(),
            client_member: Some(client.me.member_id),
            client_device: Some(client.me.device_id),
        })?)
    }
}

/// The calendar day `index` days after 2024-01-01 (a leap year), as YYYY-MM-DD.
pub fn day_of_2024(index: usize) -> String {
    const MONTHS: [usize; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut day = index % 366;
    for (month, length) in MONTHS.iter().enumerate() {
        if day < *length {
            return format!("2024-{:02}-{:02}", month + 1, day + 1);
        }
        day -= length;
    }
    "2024-12-31".into()
}

/// A daily check-in as a client's phone writes it.
pub fn daily_checkin(day: usize) -> NewCheckIn {
    NewCheckIn {
        gas_level: Some((day % 5) as i8 - 2),
        mood: Some((day % 5 + 1) as u8),
        craving: Some((day % 4) as u8),
        note: format!("day {day}: slept {} hours, walked after lunch", 5 + day % 4),
        local_date: Some(day_of_2024(day)),
        tz_offset_min: Some(60),
        ..NewCheckIn::default()
    }
}

/// A counselor's goal edit of the kind made in sessions: the clinical statement, reworded.
pub fn statement_edit(n: usize) -> GoalEdit {
    GoalEdit {
        clinical_statement: Some(format!(
            "Reduce nights with less than {} hours of sleep; review sleep diary at session {n}",
            5 + n % 3
        )),
        ..GoalEdit::default()
    }
}

/// A client's rewording of their own goal.
pub fn words_edit(n: usize) -> GoalEdit {
    GoalEdit {
        client_words: Some(format!(
            "Sleep through the night at least {} times a week (take {n})",
            3 + n % 4
        )),
        ..GoalEdit::default()
    }
}

/// The plan of one client after a year: a counselor (whose store is the file at `path`) and
/// a client phone; 5 goals, 365 daily check-ins written on the phone and 500 other edits
/// (clinical statements, the client's words, GAS levels, objectives, review dates), synced
/// every few dozen edits as phones do.
pub struct YearPlan {
    pub plan: PlanId,
    pub goals: Vec<GoalId>,
}

pub fn year_plan(path: &Path) -> Result<YearPlan> {
    plan_of_years(path, 1)
}

/// [`year_plan`] kept for `years` years: 365 daily check-ins and 500 other edits a year.
pub fn plan_of_years(path: &Path, years: usize) -> Result<YearPlan> {
    let counselor = Device::at(path, "Dana", Role::Counselor)?;
    let client = Device::in_memory("Sam", Role::Client)?;
    let plan = counselor.plan_with(&client, "Sleep, mornings and work")?;
    let mut goals = Vec::new();
    for words in [
        "Sleep through the night",
        "Walk every morning",
        "Drink less coffee",
    ] {
        goals.push(counselor.store.propose_goal(plan, words)?);
    }
    sync_stores(&counselor.store, &client.store)?;
    for words in ["Call my sister every week", "Get back to work part-time"] {
        goals.push(client.store.propose_goal(plan, words)?);
    }
    sync_stores(&counselor.store, &client.store)?;
    let mut other = 0;
    for day in 0..365 * years {
        let goal = goals[day % goals.len()];
        client.store.check_in(plan, goal, &daily_checkin(day))?;
        // 500 other edits spread over each year: about 1.37 a day.
        while other * 365 < 500 * (day + 1) {
            other_edit(&counselor, &client, plan, &goals, other)?;
            other += 1;
        }
        if day % 7 == 6 {
            synced(&counselor, &client)?;
        }
    }
    synced(&counselor, &client)?;
    Ok(YearPlan { plan, goals })
}

/// A weekly sync of the two devices, then what an app does after a sync: compact what the
/// week's edits and the sync appended (`docs/design.md`, "Compaction").
fn synced(counselor: &Device, client: &Device) -> Result<()> {
    sync_stores(&counselor.store, &client.store)?;
    counselor.store.compact_due(usize::MAX)?;
    client.store.compact_due(usize::MAX)?;
    Ok(())
}

fn other_edit(
    counselor: &Device,
    client: &Device,
    plan: PlanId,
    goals: &[GoalId],
    n: usize,
) -> Result<()> {
    let goal = goals[n % goals.len()];
    match n % 5 {
        0 | 1 => counselor.store.edit_goal(plan, goal, &statement_edit(n))?,
        2 => client.store.edit_goal(plan, goal, &words_edit(n))?,
        3 => client.store.set_gas(
            plan,
            goal,
            &GasEdit::Level {
                level: (n % 5) as i8 - 2,
                text: format!("{} good nights a week", n % 7),
            },
        )?,
        _ if n % 10 == 4 => {
            counselor.store.add_objective(
                plan,
                goal,
                &NewObjective {
                    text: format!("Keep a sleep diary for {} weeks", 1 + n % 6),
                    ..NewObjective::default()
                },
            )?;
        }
        _ => counselor
            .store
            .set_review_on(plan, &day_of_2024((n * 7) % 366))?,
    }
    Ok(())
}

/// A counselor's store (file at `path`) holding `count` plans, each with one client phone
/// enrolled, one goal and a few check-ins. Returns the counselor and the plans.
pub fn many_plans(path: &Path, count: usize) -> Result<(Device, Vec<PlanId>)> {
    let counselor = Device::at(path, "Dana", Role::Counselor)?;
    let mut plans = Vec::with_capacity(count);
    for n in 0..count {
        let client = Device::in_memory(&format!("Client {n}"), Role::Client)?;
        let plan = counselor.plan_with(&client, &format!("Plan {n:03}"))?;
        let goal = counselor
            .store
            .propose_goal(plan, "Sleep through the night")?;
        for day in 0..3 {
            counselor.store.check_in(plan, goal, &daily_checkin(day))?;
        }
        plans.push(plan);
    }
    Ok((counselor, plans))
}
