//! A plan as Markdown fit to print and sign: goals in the client's words, objectives,
//! interventions, GAS scales, progress, each member's dated agreement bound to the goal's
//! content hash, signature lines, and the 42 CFR Part 2 notice.

use std::fmt::Write as _;

use super::PART2_NOTICE;
use crate::error::Result;
use crate::model::{AgreementState, Goal, MemberId, Plan, Role};
use crate::progress::{level_label, GoalProgress, PlanProgress};

/// Text safe inside a Markdown table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let escaped = one_line.replace('\\', "\\\\").replace('|', "\\|");
    if escaped.is_empty() {
        "–".to_owned()
    } else {
        escaped
    }
}

/// Text safe as a Markdown paragraph: lines kept, characters that start markup escaped.
fn paragraph(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.trim_end();
            let mut out = String::with_capacity(line.len());
            for (i, ch) in line.chars().enumerate() {
                let starts_markup = i == 0 && matches!(ch, '#' | '>' | '-' | '+' | '=');
                if starts_markup || matches!(ch, '*' | '_' | '`' | '[' | ']' | '<' | '\\') {
                    out.push('\\');
                }
                out.push(ch);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("  \n")
}

/// A UTC time as printed in summaries and reports (`2026-03-10 14:05 UTC`).
pub(super) fn date_time(ms: i64) -> String {
    use chrono::{TimeZone, Utc};
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "–".to_owned())
}

/// A member's name, or "former member".
pub(super) fn name(plan: &Plan, id: MemberId) -> String {
    plan.member(id)
        .map(|m| m.name.clone())
        .unwrap_or_else(|| "former member".to_owned())
}

/// An agreement state in words.
pub(super) fn agreement_words(state: AgreementState) -> &'static str {
    match state {
        AgreementState::Agreed => "agreed by client and counselor",
        AgreementState::Pending => "waiting for agreement",
        AgreementState::Stale => "changed since it was agreed: needs re-agreement",
    }
}

/// The plan as Markdown, with its progress, printed at `now` (UTC ms).
pub fn summary(plan: &Plan, progress: &PlanProgress, now: i64) -> Result<String> {
    let mut out = String::new();
    let w = &mut out;
    let client = plan.client();
    let counselors: Vec<&str> = plan
        .members
        .iter()
        .filter(|m| m.role == Role::Counselor)
        .map(|m| m.name.as_str())
        .collect();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(w, "# Treatment plan: {}\n", cell(&plan.title));
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| Plan | `{}` |", plan.plan_id);
    let _ = writeln!(
        w,
        "| Client | {} |",
        cell(client.map(|c| c.name.as_str()).unwrap_or(""))
    );
    let _ = writeln!(w, "| Counselor(s) | {} |", cell(&counselors.join(", ")));
    let _ = writeln!(w, "| Plan started | {} |", date_time(plan.created_at));
    let _ = writeln!(
        w,
        "| Next review | {} |",
        plan.review_on.as_deref().unwrap_or("not set")
    );
    let t_score = plan
        .gas_t_score
        .map(|t| format!("{t:.1} (50 = as expected)"))
        .unwrap_or_else(|| "no goal rated yet".to_owned());
    let _ = writeln!(w, "| GAS T-score | {t_score} |");
    let _ = writeln!(
        w,
        "| Check-in days | {} of the last 7, {} of the last 30 (to {}) |",
        progress.days_checked_in.last_7_days, progress.days_checked_in.last_30_days, progress.as_of
    );
    let _ = writeln!(w, "| Printed | {} |", date_time(now));
    for (index, goal) in plan.goals.iter().enumerate() {
        let goal_progress = progress.goals.iter().find(|g| g.goal_id == goal.goal_id);
        write_goal(w, plan, goal, goal_progress, index + 1);
    }
    let _ = writeln!(w, "\n## Signatures\n");
    let _ = writeln!(
        w,
        "By signing we confirm that we wrote the goals above together and agree to them \
         as printed.\n"
    );
    let mut signers: Vec<(&str, String)> = Vec::new();
    if let Some(client) = client {
        signers.push(("Client", client.name.clone()));
    }
    for counselor in &counselors {
        signers.push(("Counselor", (*counselor).to_owned()));
    }
    for (role, who) in signers {
        let _ = writeln!(
            w,
            "{role}: {}  \nSignature: ______________________________  Date: ____________\n",
            cell(&who)
        );
    }
    let _ = writeln!(w, "---\n\n{PART2_NOTICE}");
    Ok(out)
}

fn write_goal(
    w: &mut String,
    plan: &Plan,
    goal: &Goal,
    progress: Option<&GoalProgress>,
    number: usize,
) {
    let _ = writeln!(w, "\n## Goal {number}: {}\n", cell(&goal.client_words));
    let _ = writeln!(w, "*In the client's own words.*\n");
    let _ = writeln!(w, "- Status: {}", goal.status);
    if !goal.life_area.is_empty() {
        let _ = writeln!(w, "- Life area: {}", cell(&goal.life_area));
    }
    if let Some(by) = goal.proposed_by {
        let _ = writeln!(
            w,
            "- Proposed by {} on {}",
            cell(&name(plan, by)),
            date_time(goal.created_at)
        );
    }
    if !goal.clinical_statement.trim().is_empty() {
        let _ = writeln!(
            w,
            "\n**Clinical statement.** {}",
            paragraph(&goal.clinical_statement)
        );
    }
    if !goal.objectives.is_empty() {
        let _ = writeln!(w, "\n### Objectives\n");
        let _ = writeln!(w, "| Objective | Measure | Target | Due | Status |");
        let _ = writeln!(w, "|---|---|---|---|---|");
        for o in &goal.objectives {
            let target = match (o.target, &o.unit) {
                (Some(t), Some(unit)) => format!("{t} {}", cell(unit)),
                (Some(t), None) => t.to_string(),
                (None, _) => "–".to_owned(),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {target} | {} | {} |",
                cell(&o.text),
                cell(o.measure.as_deref().unwrap_or("")),
                o.due_on.as_deref().unwrap_or("–"),
                cell(&o.status)
            );
        }
    }
    if !goal.interventions.is_empty() {
        let _ = writeln!(w, "\n### Interventions\n");
        let _ = writeln!(w, "| Intervention | Frequency | Carried out by |");
        let _ = writeln!(w, "|---|---|---|");
        for i in &goal.interventions {
            let _ = writeln!(
                w,
                "| {} | {} | {} |",
                cell(&i.text),
                cell(i.frequency.as_deref().unwrap_or("")),
                cell(&i.owner.map(|o| name(plan, o)).unwrap_or_default())
            );
        }
    }
    if !goal.gas.levels.is_empty() {
        let baseline = goal
            .gas
            .baseline
            .map(|b| format!(", baseline {}", level_label(b)))
            .unwrap_or_default();
        let _ = writeln!(
            w,
            "\n### Goal Attainment Scale (weight {}{baseline})\n",
            goal.gas.weight
        );
        let _ = writeln!(w, "| Level | What it looks like |\n|---|---|");
        for level in (-2i8..=2).rev() {
            if let Some(text) = goal.gas.levels.get(&level.to_string()) {
                let _ = writeln!(w, "| {} | {} |", level_label(level), cell(text));
            }
        }
    }
    if let Some(progress) = progress {
        let latest = progress
            .latest_level
            .map(level_label)
            .unwrap_or_else(|| "not rated yet".to_owned());
        let trend = progress
            .trend
            .map(|t| t.as_str())
            .unwrap_or("not enough ratings");
        let _ = writeln!(
            w,
            "\n**Progress.** Latest GAS level: {latest}; trend: {trend}; {} rating(s); \
             check-in days: {} of the last 7, {} of the last 30.",
            progress.series.len(),
            progress.days_checked_in.last_7_days,
            progress.days_checked_in.last_30_days
        );
        let future_dated = goal.checkins.iter().filter(|c| c.future_dated).count();
        if future_dated > 0 {
            let _ = writeln!(
                w,
                "\n{future_dated} future-dated check-in(s) (dated beyond this device's clock) \
                 not counted until their day comes."
            );
        }
    }
    let agreement = &goal.agreement;
    let _ = writeln!(w, "\n### Agreement\n");
    let _ = writeln!(
        w,
        "This goal is **{}**. Its content hash is `{}`.\n",
        agreement_words(agreement.state),
        goal.content_hash
    );
    if !agreement.agreements.is_empty() {
        let _ = writeln!(
            w,
            "| Member | Role | Agreed on | To content | Still current |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|");
        for a in &agreement.agreements {
            let role = plan
                .member(a.member_id)
                .map(|m| m.role.as_str())
                .unwrap_or("–");
            let current = if a.content_hash == goal.content_hash {
                "yes"
            } else {
                "no"
            };
            let _ = writeln!(
                w,
                "| {} | {role} | {} | `{}` | {current} |",
                cell(&name(plan, a.member_id)),
                date_time(a.at),
                a.content_hash
            );
        }
    }
    if !agreement.waiting_for.is_empty() {
        let names: Vec<String> = agreement
            .waiting_for
            .iter()
            .map(|id| cell(&name(plan, *id)))
            .collect();
        let _ = writeln!(w, "\nWaiting for: {}.", names.join(", "));
    }
}
