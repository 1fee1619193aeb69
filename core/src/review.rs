//! Plan reviews: which plans are due for review, from the catalog, without opening documents.

use chrono::{Days, NaiveDate};

use crate::alliance::Alliance;
use crate::clock;
use crate::error::{Error, Result};
use crate::model::{validate, PlanSummary};

/// Plans whose review date falls on or before `today` + `within_days`, and plans with no
/// review date set (a plan is reviewed on a schedule, so it needs one). Overdue and soonest
/// first; plans without a date last.
pub fn due_for_review(
    plans: &[PlanSummary],
    today: &str,
    within_days: u32,
) -> Result<Vec<PlanSummary>> {
    let today = validate::date("today", today)?;
    let horizon = today
        .checked_add_days(Days::new(u64::from(within_days)))
        .ok_or_else(|| Error::invalid("within days", "too far ahead"))?;
    let mut due: Vec<(Option<NaiveDate>, &PlanSummary)> = plans
        .iter()
        .filter_map(|plan| match plan.review_on.as_deref() {
            None => Some((None, plan)),
            Some(text) => {
                let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
                match date {
                    Some(date) if date > horizon => None,
                    other => Some((other, plan)),
                }
            }
        })
        .collect();
    due.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.1.title.cmp(&b.1.title)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.title.cmp(&b.1.title),
    });
    Ok(due.into_iter().map(|(_, plan)| plan.clone()).collect())
}

impl Alliance {
    /// Plans due for review within `within_days` of today on this device's calendar (0: due
    /// today or overdue), and plans with no review date.
    pub fn plans_due_for_review(&self, within_days: u32) -> Result<Vec<PlanSummary>> {
        let today = clock::local_date(clock::now_ms(), clock::local_offset_min());
        due_for_review(&self.list_plans()?, &today, within_days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PlanId;

    fn summary(title: &str, review_on: Option<&str>) -> PlanSummary {
        PlanSummary {
            plan_id: PlanId::new(),
            title: title.to_owned(),
            review_on: review_on.map(str::to_owned),
            client_name: None,
            goal_count: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn due_plans_are_overdue_or_within_the_window_soonest_first() {
        let plans = [
            summary("later", Some("2026-07-01")),
            summary("no date", None),
            summary("today", Some("2026-06-01")),
            summary("overdue", Some("2026-03-01")),
            summary("in a week", Some("2026-06-08")),
        ];
        let titles = |within| -> Vec<String> {
            due_for_review(&plans, "2026-06-01", within)
                .unwrap()
                .into_iter()
                .map(|p| p.title)
                .collect()
        };
        assert_eq!(titles(0), ["overdue", "today", "no date"]);
        assert_eq!(titles(6), ["overdue", "today", "no date"]);
        assert_eq!(titles(7), ["overdue", "today", "in a week", "no date"]);
        assert_eq!(
            titles(30),
            ["overdue", "today", "in a week", "later", "no date"]
        );
        assert!(due_for_review(&plans, "June 1st", 0).is_err());
    }
}
