//! Exports of a plan for the world outside Alliance: FHIR R4 for EHRs, a JSON file with the
//! whole history that another store can import, a Markdown summary to print and sign, and the
//! review report (self-contained HTML with charts).

pub mod charts;
pub mod fhir;
pub mod json;
pub mod markdown;
pub mod report;

use chrono::{TimeZone, Utc};

use crate::alliance::Alliance;
use crate::clock;
use crate::error::{Error, Result};
use crate::model::{Plan, PlanId};
use crate::progress::{self, PlanProgress};

/// The notice of 42 CFR Part 2 (§2.32) that every export carries: substance-use records
/// disclosed with the client's written consent may not be disclosed further without it.
pub const PART2_NOTICE: &str = "42 CFR part 2 notice: This record which has been disclosed to \
you is protected by federal confidentiality rules (42 CFR part 2). The federal rules prohibit \
you from making any further disclosure of this record unless further disclosure is expressly \
permitted by the written consent of the individual whose information is being disclosed in \
this record or, is otherwise permitted by 42 CFR part 2. A general authorization for the \
release of medical or other information is NOT sufficient for this purpose (see §2.31). The \
federal rules restrict any use of the information to investigate or prosecute with regard to \
a crime any patient with a substance use disorder, except as provided at §§2.12(c)(5) and 2.65.";

/// UTC milliseconds as a FHIR instant: `YYYY-MM-DDThh:mm:ss.sssZ`.
pub fn instant(ms: i64) -> Result<String> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .ok_or_else(|| Error::invalid("time", "out of range"))
}

impl Alliance {
    /// The plan as a FHIR R4 Bundle (type collection), as pretty JSON text, with the review
    /// report attached as a DocumentReference (HTML, base64) that the CarePlan references.
    pub fn export_fhir(&self, plan: PlanId) -> Result<String> {
        self.fhir_text(plan, true)
    }

    /// The FHIR R4 Bundle without the review report.
    pub fn export_fhir_without_report(&self, plan: PlanId) -> Result<String> {
        self.fhir_text(plan, false)
    }

    fn fhir_text(&self, plan: PlanId, with_report: bool) -> Result<String> {
        let model = self.plan(plan)?;
        let now = clock::now_ms();
        let mut bundle = fhir::bundle(&model, now)?;
        if with_report {
            let html = self.report_of(&model, now)?;
            fhir::attach_report(&mut bundle, &model, &html, now)?;
        }
        serde_json::to_string_pretty(&bundle)
            .map_err(|e| Error::Malformed(format!("cannot write the bundle: {e}")))
    }

    /// The review report: one self-contained HTML document (no scripts, no external
    /// resources) with charts, fit to print on A4 or US Letter.
    pub fn export_report(&self, plan: PlanId) -> Result<String> {
        let model = self.plan(plan)?;
        self.report_of(&model, clock::now_ms())
    }

    fn report_of(&self, model: &Plan, now: i64) -> Result<String> {
        let heads = self
            .plan_heads(&[model.plan_id])?
            .into_iter()
            .flat_map(|(_, heads)| heads.unwrap_or_default())
            .map(|h| h.to_string())
            .collect();
        let progress =
            progress::plan_progress(model, &model.client_today, progress::DEFAULT_TREND_WINDOW)?;
        let printing = report::Printing { at: now, heads };
        report::html(model, &progress, &printing)
    }

    /// The plan with its whole history as an Alliance plan file (pretty JSON text), for
    /// [`Alliance::import_json`] on another store.
    pub fn export_json(&self, plan: PlanId) -> Result<String> {
        let model = self.plan(plan)?;
        let history = self.history(plan)?;
        let document = self.saved_document(plan)?;
        let signatures = self.change_signatures(plan)?;
        json::encode(&model, &history, &document, &signatures, clock::now_ms())
    }

    /// Imports a plan file made by [`Alliance::export_json`] into this store, which must not
    /// hold the plan yet. Every change in it is judged by the role rules as if a peer had
    /// sent it; unless all pass, nothing is stored. Returns the plan's id.
    pub fn import_json(&self, text: &str) -> Result<PlanId> {
        let file = json::decode(text)?;
        self.import_changes(file.plan_id, file.changes, &file.signatures)?;
        Ok(file.plan_id)
    }

    /// The plan's progress as of the client's today (their calendar day, the same on every
    /// device: see [`crate::clinical_time`]); trends look at the last `window` GAS ratings of
    /// each goal.
    pub fn progress(&self, plan: PlanId, window: usize) -> Result<PlanProgress> {
        let model = self.plan(plan)?;
        progress::plan_progress(&model, &model.client_today, window)
    }

    /// The plan as Markdown fit to print and sign, its progress as of the client's today.
    pub fn export_markdown(&self, plan: PlanId) -> Result<String> {
        let model = self.plan(plan)?;
        let progress =
            progress::plan_progress(&model, &model.client_today, progress::DEFAULT_TREND_WINDOW)?;
        markdown::summary(&model, &progress, clock::now_ms())
    }
}

#[cfg(test)]
mod tests;
