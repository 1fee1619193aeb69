//! A plan for the world outside Alliance: FHIR R4 for EHRs, a JSON plan file with the whole
//! history that another store imports, a Markdown summary to print and sign, and the review
//! report (HTML). Every export is text; the shell saves, shows, prints or shares it.

use crate::alliance::Alliance;
use crate::error::ApiError;
use crate::inputs::parse;

#[uniffi::export]
impl Alliance {
    /// The plan as a FHIR R4 Bundle (type collection), as JSON text; the review report rides
    /// along as a DocumentReference (HTML, base64) that the CarePlan references.
    pub async fn export_fhir(&self, plan_id: String) -> Result<String, ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.export_fhir(plan)?)).await
    }

    /// The plan with its whole history as an Alliance plan file (JSON text), for
    /// `import_json` on another store.
    pub async fn export_json(&self, plan_id: String) -> Result<String, ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.export_json(plan)?)).await
    }

    /// Imports a plan file made by `export_json` into this store. Every change in it is judged
    /// by the role rules as a peer's would be; unless all pass, nothing is stored (`NotAllowed`).
    /// A file that is not a plan file or does not match its document, and a plan this store
    /// already holds (sync instead), are `InvalidInput`. Returns the plan's id.
    pub async fn import_json(&self, text: String) -> Result<String, ApiError> {
        self.run(move |store| Ok(store.import_json(&text)?.to_string()))
            .await
    }

    /// The review report: one self-contained HTML document (inline SVG charts, no scripts, no
    /// external resources) to show in a web view, print on A4 or US Letter, or attach to an EHR.
    pub async fn export_report(&self, plan_id: String) -> Result<String, ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.export_report(plan)?)).await
    }

    /// The plan as Markdown fit to print and sign: goals in the client's words, progress, the
    /// agreements, and the 42 CFR part 2 notice.
    pub async fn export_markdown(&self, plan_id: String) -> Result<String, ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.export_markdown(plan)?))
            .await
    }
}
