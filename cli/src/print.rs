//! Human and JSON output.

use alliance_core::{
    AgreementState, Goal, HistoryEntry, Identity, MemberId, Plan, PlanId, PlanSummary,
    RefusedChange,
};
use chrono::{TimeZone, Utc};

/// `println!` for text that may carry what peers wrote: control characters older data may
/// hold are shown as signs, never sent to the terminal (`validate::printable`).
macro_rules! say {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!(
            "{}",
            alliance_core::validate::printable(&format!($($arg)*))
        )
    };
}

/// `eprintln!`, made printable like [`say!`].
macro_rules! say_err {
    ($($arg:tt)*) => {
        eprintln!(
            "{}",
            alliance_core::validate::printable(&format!($($arg)*))
        )
    };
}

fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: could not write JSON: {error}"),
    }
}

fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub fn identity(me: &Identity, as_json: bool) {
    if as_json {
        json(&serde_json::json!({
            "member_id": me.member_id,
            "device_id": me.device_id,
            "name": me.name,
            "role": me.role,
        }));
    } else {
        say!("{} ({})", me.name, me.role);
        say!("member {}", me.member_id);
        say!("device {}", me.device_id);
    }
}

pub fn plan_list(plans: &[PlanSummary], as_json: bool) {
    if as_json {
        return json(&plans);
    }
    if plans.is_empty() {
        say!("no plans yet");
    }
    for p in plans {
        say!(
            "{}  {}  (client: {}, {} goal(s){})",
            p.plan_id,
            p.title,
            p.client_name.as_deref().unwrap_or("-"),
            p.goal_count,
            p.review_on
                .as_deref()
                .map(|d| format!(", review on {d}"))
                .unwrap_or_default()
        );
    }
}

pub fn agreement_word(state: AgreementState) -> &'static str {
    match state {
        AgreementState::Agreed => "agreed",
        AgreementState::Pending => "pending",
        AgreementState::Stale => "stale (needs re-agreement)",
    }
}

fn names(plan: &Plan, ids: &[MemberId]) -> String {
    let names: Vec<&str> = ids
        .iter()
        .map(|id| plan.member(*id).map(|m| m.name.as_str()).unwrap_or("?"))
        .collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(", ")
    }
}

/// The plan; with `--json`, its refused changes ride along as `refused_changes`.
pub fn plan(plan: &Plan, refused: &[(PlanId, RefusedChange)], as_json: bool) {
    if as_json {
        let mut value = match serde_json::to_value(plan) {
            Ok(value) => value,
            Err(error) => return say_err!("error: could not write JSON: {error}"),
        };
        let refused: Vec<&RefusedChange> = refused.iter().map(|(_, r)| r).collect();
        if let Some(map) = value.as_object_mut() {
            map.insert("refused_changes".into(), serde_json::json!(refused));
        }
        return json(&value);
    }
    if !refused.is_empty() {
        say!(
            "{} change(s) from peers were refused by the role rules (see `alliance peers`)",
            refused.len()
        );
    }
    say!("{}  ({})", plan.title, plan.plan_id);
    if let Some(date) = &plan.review_on {
        say!("review on {date}");
    }
    let members: Vec<String> = plan
        .members
        .iter()
        .map(|m| format!("{} ({})", m.name, m.role))
        .collect();
    say!("members: {}", members.join(", "));
    for goal in &plan.goals {
        print_goal(plan, goal);
    }
    match plan.gas_t_score {
        Some(t) => say!("GAS T-score: {t:.1}"),
        None => say!("GAS T-score: - (no goal rated yet)"),
    }
}

fn print_goal(plan: &Plan, goal: &Goal) {
    say!();
    say!("goal {}  [{}]", goal.goal_id, goal.status);
    say!("  in the client's words: \"{}\"", goal.client_words);
    if !goal.clinical_statement.is_empty() {
        say!("  clinical statement: {}", goal.clinical_statement);
    }
    if !goal.life_area.is_empty() {
        say!("  life area: {}", goal.life_area);
    }
    let a = &goal.agreement;
    say!(
        "  agreement: {} — agreed: {}; waiting for: {}",
        agreement_word(a.state),
        names(plan, &a.agreed_by),
        names(plan, &a.waiting_for)
    );
    for o in &goal.objectives {
        let mut line = format!("  objective: {}", o.text);
        if let Some(m) = &o.measure {
            line.push_str(&format!("; measure: {m}"));
        }
        if let Some(t) = o.target {
            line.push_str(&format!(
                "; target: {t}{}",
                o.unit
                    .as_deref()
                    .map(|u| format!(" {u}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(d) = &o.due_on {
            line.push_str(&format!("; due {d}"));
        }
        say!("{line}");
    }
    for i in &goal.interventions {
        say!(
            "  intervention: {}{}",
            i.text,
            i.frequency
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        );
    }
    if !goal.gas.levels.is_empty() || goal.gas.weight != 1.0 {
        say!("  GAS (weight {}):", goal.gas.weight);
        for (level, text) in &goal.gas.levels {
            say!("    {level:>2}: {text}");
        }
    }
    for c in &goal.checkins {
        let mut parts = Vec::new();
        if let Some(l) = c.gas_level {
            parts.push(format!("level {l:+}"));
        }
        if let Some(v) = c.value {
            parts.push(format!("value {v}"));
        }
        if let Some(m) = c.mood {
            parts.push(format!("mood {m}"));
        }
        if let Some(cr) = c.craving {
            parts.push(format!("craving {cr}"));
        }
        if !c.note.is_empty() {
            parts.push(format!("\"{}\"", c.note));
        }
        let who = plan.member(c.by).map(|m| m.name.as_str()).unwrap_or("?");
        let mut flag = if c.superseded {
            " (corrected)"
        } else if c.corrects.is_some() {
            " (correction)"
        } else {
            ""
        }
        .to_owned();
        if c.future_dated {
            flag.push_str(" (future_dated: not counted until its day comes)");
        }
        say!(
            "  check-in {} by {who}: {}{flag}",
            c.local_date,
            parts.join(", ")
        );
    }
    for conflict in &goal.conflicts {
        let values: Vec<String> = conflict
            .values
            .iter()
            .map(|v| format!("{} (by {})", v.value, v.by))
            .collect();
        say!("  conflict in {}: {}", conflict.field, values.join(" vs "));
    }
}

pub fn refusals(refused: &[(PlanId, RefusedChange)], as_json: bool) {
    if as_json {
        let rows: Vec<serde_json::Value> = refused
            .iter()
            .map(|(plan, r)| {
                let mut row = serde_json::json!(r);
                row["plan_id"] = serde_json::json!(plan);
                row
            })
            .collect();
        return json(&rows);
    }
    if refused.is_empty() {
        say!("no refused changes");
    }
    for (plan, r) in refused {
        say!(
            "{}  plan {}  from peer {}  device {}{}: {}",
            time(r.recorded_at),
            plan,
            r.peer,
            r.device_id,
            r.member_id
                .map(|m| format!(" (member {m})"))
                .unwrap_or_default(),
            r.rule
        );
    }
}

/// One line on stderr for an own change the other side refused (`whose`: "this device's
/// change", …): the plan and the rule, and that it is set aside.
pub fn own_change_refused(whose: &str, plan: &str, rule: &str, change_hash: &str) {
    let short = change_hash.get(..12).unwrap_or(change_hash);
    say_err!("refused: plan {plan}: {rule} ({whose} {short}, now set aside)");
}

pub fn history(entries: &[HistoryEntry], as_json: bool) {
    if as_json {
        return json(&entries);
    }
    for e in entries {
        say!(
            "{}{}  {} (device {}…): {}",
            if e.refused { "REFUSED " } else { "" },
            time(e.at),
            e.author,
            &e.device_id[..e.device_id.len().min(8)],
            e.description
        );
    }
}

/// Plans due for review: overdue or due soon first, plans with no review date last.
pub fn plans_due(plans: &[PlanSummary], as_json: bool) {
    if as_json {
        return json(&plans);
    }
    if plans.is_empty() {
        say!("no plan is due for review");
    }
    for p in plans {
        say!(
            "{}  {}  {}",
            p.review_on.as_deref().unwrap_or("no review date"),
            p.plan_id,
            p.title
        );
    }
}

/// A plan's progress: each goal's GAS series and trend, check-in days, the T-score over time.
pub fn progress(plan: &Plan, progress: &alliance_core::progress::PlanProgress, as_json: bool) {
    use alliance_core::progress::level_label;
    if as_json {
        return json(progress);
    }
    say!(
        "{}: progress as of {} on the client's calendar (trends over the last {} ratings)",
        plan.title,
        progress.as_of,
        progress.trend_window
    );
    say!(
        "check-in days: {} of the last 7, {} of the last 30",
        progress.days_checked_in.last_7_days,
        progress.days_checked_in.last_30_days
    );
    for goal in &progress.goals {
        let words = plan
            .goal(goal.goal_id)
            .map(|g| g.client_words.as_str())
            .unwrap_or("?");
        say!();
        say!("goal {}  \"{words}\"", goal.goal_id);
        let levels: Vec<String> = goal
            .series
            .iter()
            .map(|p| format!("{} {}", p.local_date, level_label(p.level)))
            .collect();
        if levels.is_empty() {
            say!("  no GAS rating yet");
        } else {
            say!("  GAS levels: {}", levels.join(", "));
        }
        say!(
            "  latest: {}; trend: {}",
            goal.latest_level
                .map(level_label)
                .unwrap_or_else(|| "-".to_owned()),
            goal.trend.map(|t| t.as_str()).unwrap_or("-")
        );
        say!(
            "  check-in days: {} of the last 7, {} of the last 30",
            goal.days_checked_in.last_7_days,
            goal.days_checked_in.last_30_days
        );
        let future_dated = plan
            .goal(goal.goal_id)
            .map(|g| g.checkins.iter().filter(|c| c.future_dated).count())
            .unwrap_or(0);
        if future_dated > 0 {
            say!("  future_dated check-ins (not counted until their day comes): {future_dated}");
        }
    }
    if !progress.t_scores.is_empty() {
        say!();
        say!("GAS T-score by day:");
        for point in &progress.t_scores {
            say!("  {}  {:.1}", point.local_date, point.t_score);
        }
    }
}
