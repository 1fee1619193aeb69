//! The table every run prints: one row per measure, its baseline, the ratio and the budget.

use std::time::Duration;

/// What a figure counts, for printing.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    Seconds,
    Bytes,
    /// Resident memory in KiB, as the kernel reports it.
    KiB,
    /// A plain ratio.
    Times,
}

/// A budget a row is held to.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// The ratio to the baseline at most this.
    RatioAtMost(f64),
    /// The value at most this (in the row's unit).
    ValueAtMost(f64),
    /// Reported, not judged.
    Info,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub id: &'static str,
    pub measure: String,
    pub unit: Unit,
    pub value: f64,
    pub baseline: Option<f64>,
    pub budget: Budget,
}

impl Row {
    pub fn ratio(
        id: &'static str,
        measure: &str,
        unit: Unit,
        value: f64,
        baseline: f64,
        at_most: f64,
    ) -> Self {
        Self {
            id,
            measure: measure.to_owned(),
            unit,
            value,
            baseline: Some(baseline),
            budget: Budget::RatioAtMost(at_most),
        }
    }

    pub fn limit(id: &'static str, measure: &str, unit: Unit, value: f64, at_most: f64) -> Self {
        Self {
            id,
            measure: measure.to_owned(),
            unit,
            value,
            baseline: None,
            budget: Budget::ValueAtMost(at_most),
        }
    }

    pub fn info(
        id: &'static str,
        measure: &str,
        unit: Unit,
        value: f64,
        baseline: Option<f64>,
    ) -> Self {
        Self {
            id,
            measure: measure.to_owned(),
            unit,
            value,
            baseline,
            budget: Budget::Info,
        }
    }

    fn ratio_value(&self) -> Option<f64> {
        self.baseline
            .filter(|b| *b > 0.0)
            .map(|baseline| self.value / baseline)
    }

    /// None when the row is only reported.
    pub fn passes(&self) -> Option<bool> {
        match self.budget {
            Budget::RatioAtMost(limit) => Some(self.ratio_value().is_some_and(|r| r <= limit)),
            Budget::ValueAtMost(limit) => Some(self.value <= limit),
            Budget::Info => None,
        }
    }

    fn cells(&self) -> [String; 7] {
        let ratio = self
            .ratio_value()
            .map(|r| format!("{r:.2}×"))
            .unwrap_or_else(|| "-".into());
        let budget = match self.budget {
            Budget::RatioAtMost(limit) => format!("≤ {}×", short(limit)),
            Budget::ValueAtMost(limit) => format!("≤ {}", show(self.unit, limit)),
            Budget::Info => "report".into(),
        };
        let outcome = match self.passes() {
            Some(true) => "pass",
            Some(false) => "MISS",
            None => "-",
        };
        [
            self.id.to_owned(),
            self.measure.clone(),
            show(self.unit, self.value),
            self.baseline
                .map(|b| show(self.unit, b))
                .unwrap_or_else(|| "-".into()),
            ratio,
            budget,
            outcome.to_owned(),
        ]
    }
}

/// A number with at most two decimals and no trailing zeros.
fn short(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A figure with its unit, scaled for reading.
pub fn show(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Seconds if value < 1e-3 => format!("{:.1} µs", value * 1e6),
        Unit::Seconds if value < 1.0 => format!("{:.2} ms", value * 1e3),
        Unit::Seconds => format!("{value:.2} s"),
        Unit::Bytes if value < 10_000.0 => format!("{value:.0} B"),
        Unit::Bytes if value < 1e6 => format!("{:.1} KB", value / 1000.0),
        Unit::Bytes => format!("{:.2} MB", value / 1e6),
        Unit::KiB => format!("{:.1} MiB", value / 1024.0),
        Unit::Times => format!("{value:.2}×"),
    }
}

/// Prints the rows as one Markdown table.
pub fn print_table(rows: &[Row]) {
    let header = [
        "id", "measure", "value", "baseline", "ratio", "budget", "result",
    ];
    let cells: Vec<[String; 7]> = rows.iter().map(Row::cells).collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(&header.map(String::from));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(row);
    }
}

/// The median of some durations, in seconds.
pub fn median(samples: &[Duration]) -> f64 {
    percentile(samples, 0.5)
}

/// The `q` quantile (0..=1, nearest rank) of some durations, in seconds.
pub fn percentile(samples: &[Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64()
}

/// The mean of some durations, in seconds.
pub fn mean(samples: &[Duration]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64
}
