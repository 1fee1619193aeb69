//! The review report: one self-contained HTML file for a review session or an EHR attachment.
//! Goals in the client's words with the clinical statement, the agreement state with dated
//! signatures, objectives with due dates, charts (inline SVG), the check-in calendar of the
//! last 30 days, and a footer with the time of printing and the plan's heads. No scripts and
//! no external resources (a Content-Security-Policy forbids them too); `@media print` lays it
//! out for A4 and US Letter alike.

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};

use super::charts::{self, Chart, RECENT_DAYS};
use super::markdown::{agreement_words, date_time, name};
use super::PART2_NOTICE;
use crate::error::{Error, Result};
use crate::model::{Goal, Plan, Role};
use crate::progress::{level_label, GoalProgress, PlanProgress};

/// What the report needs besides the plan and its progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Printing {
    /// When it is printed (UTC ms).
    pub at: i64,
    /// The plan's heads (hex change hashes) as printed: the exact version of the plan.
    pub heads: Vec<String>,
}

/// Text safe inside HTML elements and quoted attributes; control characters older data may
/// hold are shown as signs ([`crate::model::validate::printable`]).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in crate::model::validate::printable(text).chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Lines kept, each escaped.
fn paragraphs(text: &str) -> String {
    text.lines().map(escape).collect::<Vec<_>>().join("<br>")
}

const STYLE: &str = "
:root { color-scheme: light; }
body { font-family: 'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif; font-size: 11pt;
  line-height: 1.35; color: #1a1a1a; max-width: 186mm; margin: 10mm auto; padding: 0 4mm; }
h1 { font-size: 17pt; margin: 0 0 3mm; }
h2 { font-size: 13.5pt; margin: 7mm 0 2mm; padding-bottom: 1mm; border-bottom: 1px solid #999; }
h3 { font-size: 11pt; margin: 4mm 0 1mm; }
p { margin: 1mm 0 2mm; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 3mm; }
th, td { border: 1px solid #bbb; padding: 1mm 2mm; text-align: left; vertical-align: top;
  font-size: 9.5pt; }
th { background: #eee; font-weight: 600; }
table.facts th { width: 32%; }
.words { font-size: 13pt; font-style: italic; margin: 1mm 0; }
.muted { color: #555; font-size: 9pt; }
.state { font-weight: 600; }
.warn { color: #8a1c1c; }
figure { margin: 2mm 0 4mm; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { font-size: 9pt; color: #444; }
.key { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 10px;
  vertical-align: middle; }
table.calendar td, table.calendar th { text-align: center; width: 14.28%; }
table.calendar td { height: 9mm; font-size: 9pt; }
table.calendar td.in { background: #2e7d32; color: #fff; font-weight: 700; }
table.calendar td.none { border: none; }
code, .hash { font-family: 'DejaVu Sans Mono', monospace; font-size: 8pt; word-break: break-all; }
footer { margin-top: 8mm; padding-top: 2mm; border-top: 1px solid #999; font-size: 8.5pt;
  color: #333; }
@page { margin: 14mm 12mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  figure, table, .keep { break-inside: avoid; page-break-inside: avoid; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  th, .key, table.calendar td.in { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
";

/// The report as one HTML document, with progress as of the client's today.
pub fn html(plan: &Plan, progress: &PlanProgress, printing: &Printing) -> Result<String> {
    let today = NaiveDate::parse_from_str(&progress.as_of, "%Y-%m-%d")
        .map_err(|_| Error::invalid("today", "expected a date as YYYY-MM-DD"))?;
    let mut out = String::new();
    let w = &mut out;
    let title = escape(&plan.title);
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">\n<title>Treatment plan review: {title}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n"
    );
    let _ = writeln!(w, "<header>\n<h1>Treatment plan review: {title}</h1>");
    write_facts(w, plan, progress);
    let _ = writeln!(w, "</header>");
    for (index, goal) in plan.goals.iter().enumerate() {
        let goal_progress = progress.goals.iter().find(|g| g.goal_id == goal.goal_id);
        write_goal(w, plan, goal, goal_progress, index + 1, today)?;
    }
    write_t_score(w, progress, today)?;
    write_mood(w, plan, today)?;
    write_calendar(w, plan, today);
    write_footer(w, plan, progress, printing);
    let _ = writeln!(w, "</body>\n</html>");
    Ok(out)
}

fn write_facts(w: &mut String, plan: &Plan, progress: &PlanProgress) {
    let client = plan.client().map(|c| c.name.as_str()).unwrap_or("–");
    let counselors: Vec<&str> = plan
        .members
        .iter()
        .filter(|m| m.role == Role::Counselor)
        .map(|m| m.name.as_str())
        .collect();
    let t_score = plan
        .gas_t_score
        .map(|t| format!("{t:.1} (50 = as expected)"))
        .unwrap_or_else(|| "no goal rated yet".to_owned());
    let rows = [
        ("Client", escape(client)),
        ("Counselor(s)", escape(&counselors.join(", "))),
        ("Plan started", date_time(plan.created_at)),
        (
            "Next review",
            escape(plan.review_on.as_deref().unwrap_or("not set")),
        ),
        ("The client's today", escape(&progress.as_of)),
        ("GAS T-score", t_score),
        (
            "Check-in days",
            format!(
                "{} of the last 7, {} of the last 30",
                progress.days_checked_in.last_7_days, progress.days_checked_in.last_30_days
            ),
        ),
    ];
    let _ = writeln!(w, "<table class=\"facts\">");
    for (label, value) in rows {
        let _ = writeln!(w, "<tr><th>{label}</th><td>{value}</td></tr>");
    }
    let _ = writeln!(w, "</table>");
}

fn write_goal(
    w: &mut String,
    plan: &Plan,
    goal: &Goal,
    progress: Option<&GoalProgress>,
    number: usize,
    today: NaiveDate,
) -> Result<()> {
    let _ = writeln!(w, "<section class=\"goal\">");
    let _ = writeln!(w, "<h2>Goal {number}</h2>");
    let _ = writeln!(
        w,
        "<p class=\"words\">&ldquo;{}&rdquo;</p>\n<p class=\"muted\">In the client's own words. \
         Status: {}{}.</p>",
        escape(&goal.client_words),
        goal.status,
        if goal.life_area.is_empty() {
            String::new()
        } else {
            format!("; life area: {}", escape(&goal.life_area))
        }
    );
    if !goal.clinical_statement.trim().is_empty() {
        let _ = writeln!(
            w,
            "<p><strong>Clinical statement.</strong> {}</p>",
            paragraphs(&goal.clinical_statement)
        );
    }
    write_agreement(w, plan, goal);
    if !goal.objectives.is_empty() {
        let _ = writeln!(w, "<h3>Objectives</h3>\n<table>");
        let _ = writeln!(
            w,
            "<tr><th>Objective</th><th>Measure</th><th>Target</th><th>Due</th><th>Status</th></tr>"
        );
        for o in &goal.objectives {
            let target = match (o.target, &o.unit) {
                (Some(t), Some(unit)) => format!("{t} {}", escape(unit)),
                (Some(t), None) => t.to_string(),
                (None, _) => "–".to_owned(),
            };
            let _ = writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{target}</td><td>{}</td><td>{}</td></tr>",
                escape(&o.text),
                escape(o.measure.as_deref().unwrap_or("–")),
                escape(o.due_on.as_deref().unwrap_or("–")),
                escape(&o.status)
            );
        }
        let _ = writeln!(w, "</table>");
    }
    if !goal.gas.levels.is_empty() {
        let _ = writeln!(
            w,
            "<h3>Goal Attainment Scale</h3>\n<p class=\"muted\">Weight {}{}.</p>\n<table>\n\
             <tr><th>Level</th><th>What it looks like</th></tr>",
            goal.gas.weight,
            goal.gas
                .baseline
                .map(|b| format!(", baseline {}", level_label(b)))
                .unwrap_or_default()
        );
        for level in (-2i8..=2).rev() {
            if let Some(text) = goal.gas.levels.get(&level.to_string()) {
                let _ = writeln!(
                    w,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    level_label(level),
                    escape(text)
                );
            }
        }
        let _ = writeln!(w, "</table>");
    }
    if let Some(progress) = progress {
        let _ = writeln!(w, "<h3>GAS level over time</h3>");
        match charts::gas_chart(progress, today) {
            Some(chart) => {
                let caption = format!(
                    "Latest level {}; trend {}; {} rating(s). One point per rated day.",
                    progress
                        .latest_level
                        .map(level_label)
                        .unwrap_or_else(|| "–".into()),
                    progress
                        .trend
                        .map(|t| t.as_str())
                        .unwrap_or("not enough ratings"),
                    progress.series.len()
                );
                let description = format!("GAS level of goal {number} over time");
                write_figure(w, &chart, &description, &caption, &charts::gas_label)?;
            }
            None => {
                let _ = writeln!(w, "<p class=\"muted\">Not rated yet.</p>");
            }
        }
    }
    let future_dated = goal.checkins.iter().filter(|c| c.future_dated).count();
    if future_dated > 0 {
        let _ = writeln!(
            w,
            "<p class=\"warn\">{future_dated} future-dated check-in(s): dated beyond this \
             device's clock, not counted until their day comes.</p>"
        );
    }
    let _ = writeln!(w, "</section>");
    Ok(())
}

fn write_agreement(w: &mut String, plan: &Plan, goal: &Goal) {
    let agreement = &goal.agreement;
    let _ = writeln!(
        w,
        "<h3>Agreement</h3>\n<p>This goal is <span class=\"state\">{}</span>. Content hash \
         <code>{}</code>.</p>",
        agreement_words(agreement.state),
        escape(&goal.content_hash)
    );
    if !agreement.agreements.is_empty() {
        let _ = writeln!(
            w,
            "<table>\n<tr><th>Signed by</th><th>Role</th><th>On</th><th>To content</th>\
             <th>Still current</th></tr>"
        );
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
                "<tr><td>{}</td><td>{role}</td><td>{}</td><td><code>{}</code></td>\
                 <td>{current}</td></tr>",
                escape(&name(plan, a.member_id)),
                date_time(a.at),
                escape(&a.content_hash)
            );
        }
        let _ = writeln!(w, "</table>");
    }
    if !agreement.waiting_for.is_empty() {
        let names: Vec<String> = agreement
            .waiting_for
            .iter()
            .map(|id| escape(&name(plan, *id)))
            .collect();
        let _ = writeln!(w, "<p>Waiting for: {}.</p>", names.join(", "));
    }
}

fn write_figure(
    w: &mut String,
    chart: &Chart,
    description: &str,
    caption: &str,
    y_label: &dyn Fn(f64) -> String,
) -> Result<()> {
    let svg = charts::svg(chart, description, y_label)?;
    let keys: String = chart
        .lines
        .iter()
        .map(|l| {
            format!(
                "<span class=\"key\" style=\"background:{}\"></span>{}",
                l.kind.css_color(),
                l.kind.label()
            )
        })
        .collect();
    let _ = writeln!(
        w,
        "<figure>\n{svg}\n<figcaption>{keys}. {}</figcaption>\n</figure>",
        escape(caption)
    );
    Ok(())
}

fn write_t_score(w: &mut String, progress: &PlanProgress, today: NaiveDate) -> Result<()> {
    let _ = writeln!(
        w,
        "<section class=\"keep\">\n<h2>GAS T-score over time</h2>"
    );
    match charts::t_score_chart(progress, today) {
        Some(chart) => {
            let caption = "The T-score at the end of each rated day, each goal at its latest \
                           level (Kiresuk and Sherman, rho 0.3); the dashed line is 50, as \
                           expected.";
            write_figure(
                w,
                &chart,
                "GAS T-score over time",
                caption,
                &charts::number_label,
            )?;
        }
        None => {
            let _ = writeln!(w, "<p class=\"muted\">No goal rated yet.</p>");
        }
    }
    let _ = writeln!(w, "</section>");
    Ok(())
}

fn write_mood(w: &mut String, plan: &Plan, today: NaiveDate) -> Result<()> {
    let chart = charts::mood_chart(plan, today, RECENT_DAYS);
    let _ = writeln!(
        w,
        "<section class=\"keep\">\n<h2>Mood and craving, last {RECENT_DAYS} days</h2>"
    );
    let caption = format!(
        "Each day's mean (0 to 10) over the client's check-ins; a line breaks on a day without \
         a value. Bars under the chart mark the {} day(s) the client checked in.",
        chart.marks.len()
    );
    write_figure(
        w,
        &chart,
        "Daily mood and craving, check-in days marked",
        &caption,
        &charts::number_label,
    )?;
    let _ = writeln!(w, "</section>");
    Ok(())
}

fn write_calendar(w: &mut String, plan: &Plan, today: NaiveDate) {
    let days = charts::calendar(plan, today, RECENT_DAYS);
    let checked = days.iter().filter(|d| d.checked_in).count();
    let _ = writeln!(
        w,
        "<section class=\"keep\">\n<h2>Check-in calendar, last {RECENT_DAYS} days</h2>\n\
         <p class=\"muted\">{checked} of {} days with a check-in (&#10003;), on the client's \
         calendar, to {today}.</p>\n<table class=\"calendar\">\n<tr><th>Mon</th><th>Tue</th>\
         <th>Wed</th><th>Thu</th><th>Fri</th><th>Sat</th><th>Sun</th></tr>",
        days.len()
    );
    let lead = days
        .first()
        .map(|d| d.day.weekday().num_days_from_monday())
        .unwrap_or(0);
    let mut cells: Vec<String> = (0..lead)
        .map(|_| "<td class=\"none\"></td>".to_owned())
        .collect();
    for day in &days {
        let label = day.day.format("%-d %b");
        cells.push(if day.checked_in {
            format!("<td class=\"in\">{label}<br>&#10003;</td>")
        } else {
            format!("<td>{label}<br>&nbsp;</td>")
        });
    }
    while !cells.len().is_multiple_of(7) {
        cells.push("<td class=\"none\"></td>".to_owned());
    }
    for week in cells.chunks(7) {
        let _ = writeln!(w, "<tr>{}</tr>", week.concat());
    }
    let _ = writeln!(w, "</table>\n</section>");
}

fn write_footer(w: &mut String, plan: &Plan, progress: &PlanProgress, printing: &Printing) {
    let heads: Vec<String> = printing.heads.iter().map(|h| escape(h)).collect();
    let _ = writeln!(
        w,
        "<footer>\n<p>Printed {} (the client's day {}). Plan <code>{}</code> at heads \
         <span class=\"hash\">{}</span>.</p>\n<p>{}</p>\n</footer>",
        date_time(printing.at),
        escape(&progress.as_of),
        plan.plan_id,
        if heads.is_empty() {
            "–".to_owned()
        } else {
            heads.join(", ")
        },
        escape(PART2_NOTICE)
    );
}
