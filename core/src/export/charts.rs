//! The review report's charts: each goal's GAS level over time, the plan's T-score over time,
//! daily mood and craving with the client's check-in days marked, and the check-in calendar of
//! the last 30 days. Each is computed as data first (points, axes, missing days: what the
//! tests check), then drawn as inline SVG with plotters.
//!
//! Days are the client's calendar days up to the client's today; future-dated check-ins and
//! corrected entries do not appear (see [`crate::clinical_time`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use chrono::{Datelike, Days, NaiveDate};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use crate::clinical_time::counted_day;
use crate::error::{Error, Result};
use crate::model::{CheckIn, Plan, Role};
use crate::progress::{level_label, GoalProgress, PlanProgress};

/// The fewest days a time axis spans, so that one rated day is not a chart of one point.
pub const MIN_AXIS_DAYS: u32 = 7;
/// How many days the mood and craving chart and the calendar look back (today included).
pub const RECENT_DAYS: u32 = 30;
/// The most dates labelled under a chart.
const MAX_DAY_TICKS: u32 = 7;

/// Consecutive calendar days, `first` to `last` included; x is the day's index from `first`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayAxis {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl DayAxis {
    /// From `first` to `last`, reaching back further when needed to span [`MIN_AXIS_DAYS`].
    pub fn new(first: NaiveDate, last: NaiveDate) -> Self {
        let widest_start = last
            .checked_sub_days(Days::new(u64::from(MIN_AXIS_DAYS - 1)))
            .unwrap_or(last);
        Self {
            first: first.min(widest_start).min(last),
            last,
        }
    }

    /// The `days` days that end on `last`.
    pub fn ending(last: NaiveDate, days: u32) -> Self {
        let first = last
            .checked_sub_days(Days::new(u64::from(days.max(1) - 1)))
            .unwrap_or(last);
        Self::new(first, last)
    }

    /// How many days the axis spans.
    pub fn len(&self) -> u32 {
        u32::try_from((self.last - self.first).num_days() + 1).unwrap_or(0)
    }

    /// Never true: an axis spans at least one day.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The x of `day`, when the axis holds it.
    pub fn x(&self, day: NaiveDate) -> Option<u32> {
        if day < self.first || day > self.last {
            return None;
        }
        u32::try_from((day - self.first).num_days()).ok()
    }

    /// The day at `x`.
    pub fn day(&self, x: u32) -> Option<NaiveDate> {
        self.first.checked_add_days(Days::new(u64::from(x)))
    }

    /// Every day of the axis, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        (0..self.len()).filter_map(|x| self.day(x))
    }

    /// The x of the labelled days: the first and the last, and days evenly between.
    pub fn ticks(&self) -> Vec<u32> {
        let last = self.len().saturating_sub(1);
        if last == 0 {
            return vec![0];
        }
        let step = last.div_ceil(MAX_DAY_TICKS - 1).max(1);
        let mut ticks: Vec<u32> = (0..last).step_by(step as usize).collect();
        // The last day is always labelled; a tick too close before it gives way.
        if ticks.last().is_some_and(|&t| last - t < step.div_ceil(2)) && ticks.len() > 1 {
            ticks.pop();
        }
        ticks.push(last);
        ticks
    }

    /// A day as labelled under the chart: "3 Mar", with the year when the axis crosses one.
    pub fn label(&self, day: NaiveDate) -> String {
        if self.first.year() == self.last.year() {
            day.format("%-d %b").to_string()
        } else {
            day.format("%-d %b %Y").to_string()
        }
    }
}

/// A value axis: its range and the values labelled on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueAxis {
    pub min: f64,
    pub max: f64,
    pub ticks: Vec<f64>,
}

/// One plotted value on one of the client's days.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartPoint {
    pub day: NaiveDate,
    pub x: u32,
    pub y: f64,
}

/// What a line shows; decides its colour, its label and whether it bridges missing days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// A goal's GAS level (the day's latest rating); it holds until the next rating.
    GasLevel,
    /// The plan's T-score at the end of each rated day.
    TScore,
    /// The client's mood, the day's mean (0 to 10).
    Mood,
    /// The client's craving, the day's mean (0 to 10).
    Craving,
}

impl LineKind {
    pub fn label(self) -> &'static str {
        match self {
            LineKind::GasLevel => "GAS level",
            LineKind::TScore => "GAS T-score",
            LineKind::Mood => "Mood",
            LineKind::Craving => "Craving",
        }
    }

    /// The colour as CSS and SVG write it.
    pub fn css_color(self) -> &'static str {
        match self {
            LineKind::GasLevel => "#1f4e79",
            LineKind::TScore => "#6a1b9a",
            LineKind::Mood => "#2e7d32",
            LineKind::Craving => "#c62828",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            LineKind::GasLevel => RGBColor(0x1f, 0x4e, 0x79),
            LineKind::TScore => RGBColor(0x6a, 0x1b, 0x9a),
            LineKind::Mood => RGBColor(0x2e, 0x7d, 0x32),
            LineKind::Craving => RGBColor(0xc6, 0x28, 0x28),
        }
    }

    /// Daily measures break at a day without a value; levels and scores hold until the next.
    pub fn breaks_at_missing_days(self) -> bool {
        matches!(self, LineKind::Mood | LineKind::Craving)
    }
}

/// One line of a chart: its points in day order, at most one per day.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub kind: LineKind,
    pub points: Vec<ChartPoint>,
}

impl Line {
    /// The runs of points drawn as one stroke: all of them, or for daily measures each run of
    /// consecutive days.
    pub fn segments(&self) -> Vec<&[ChartPoint]> {
        if !self.kind.breaks_at_missing_days() {
            return if self.points.is_empty() {
                Vec::new()
            } else {
                vec![&self.points[..]]
            };
        }
        let mut segments = Vec::new();
        let mut start = 0;
        for i in 1..=self.points.len() {
            let ends = i == self.points.len() || self.points[i].x != self.points[i - 1].x + 1;
            if ends {
                segments.push(&self.points[start..i]);
                start = i;
            }
        }
        segments
    }
}

/// A chart over the client's days.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub x: DayAxis,
    pub y: ValueAxis,
    pub lines: Vec<Line>,
    /// Days marked under the plot (the client's check-in days), as x.
    pub marks: Vec<u32>,
    /// A level drawn dashed across the plot (T = 50, "as expected").
    pub reference: Option<f64>,
}

impl Chart {
    /// The axis's days on which no line has a point.
    pub fn missing_days(&self) -> Vec<NaiveDate> {
        let plotted: BTreeSet<u32> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.x))
            .collect();
        (0..self.x.len())
            .filter(|x| !plotted.contains(x))
            .filter_map(|x| self.x.day(x))
            .collect()
    }
}

fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// A goal's GAS level over time, from its first rated day to `today`: one point per rated
/// day (that day's latest rating). None while the goal has no rating.
pub fn gas_chart(goal: &GoalProgress, today: NaiveDate) -> Option<Chart> {
    // The series is in order: a later rating of the same day replaces an earlier one.
    let by_day: BTreeMap<NaiveDate, f64> = goal
        .series
        .iter()
        .filter_map(|p| Some((parse_day(&p.local_date)?, f64::from(p.level))))
        .collect();
    let first = *by_day.keys().next()?;
    let x = DayAxis::new(first, today);
    let line = Line {
        kind: LineKind::GasLevel,
        points: points_on(&x, by_day),
    };
    Some(Chart {
        x,
        y: ValueAxis {
            min: -2.5,
            max: 2.5,
            ticks: vec![-2.0, -1.0, 0.0, 1.0, 2.0],
        },
        lines: vec![line],
        marks: Vec::new(),
        reference: None,
    })
}

/// The plan's T-score over time, from its first rated day to `today` (the score at the end of
/// each rated day). The value axis runs at least from 30 to 70, in tens, with 50 marked.
pub fn t_score_chart(progress: &PlanProgress, today: NaiveDate) -> Option<Chart> {
    let by_day: BTreeMap<NaiveDate, f64> = progress
        .t_scores
        .iter()
        .filter_map(|t| Some((parse_day(&t.local_date)?, t.t_score)))
        .collect();
    let first = *by_day.keys().next()?;
    let lowest = by_day.values().copied().fold(f64::INFINITY, f64::min);
    let highest = by_day.values().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = (((lowest - 5.0) / 10.0).floor() * 10.0).min(30.0);
    let max = (((highest + 5.0) / 10.0).ceil() * 10.0).max(70.0);
    let ticks = (0..)
        .map(|i| min + 10.0 * f64::from(i))
        .take_while(|t| *t <= max)
        .collect();
    let x = DayAxis::new(first, today);
    let line = Line {
        kind: LineKind::TScore,
        points: points_on(&x, by_day),
    };
    Some(Chart {
        x,
        y: ValueAxis { min, max, ticks },
        lines: vec![line],
        marks: Vec::new(),
        reference: Some(50.0),
    })
}

fn points_on(x: &DayAxis, by_day: BTreeMap<NaiveDate, f64>) -> Vec<ChartPoint> {
    by_day
        .into_iter()
        .filter_map(|(day, y)| {
            Some(ChartPoint {
                day,
                x: x.x(day)?,
                y,
            })
        })
        .collect()
}

/// The client's check-ins that count, each with the day it counts on (as of `today`).
fn client_days<'a>(
    plan: &'a Plan,
    today: &'a str,
) -> impl Iterator<Item = (NaiveDate, &'a CheckIn)> + 'a {
    plan.goals
        .iter()
        .flat_map(|g| &g.checkins)
        .filter(|c| !c.superseded && !c.future_dated)
        .filter(|c| plan.member(c.by).is_some_and(|m| m.role == Role::Client))
        .filter_map(move |c| Some((parse_day(counted_day(&c.local_date, today))?, c)))
}

/// The client's daily mood and craving over the `days` days ending `today` (each the day's
/// mean over every goal's check-ins), with every day the client checked in marked.
pub fn mood_chart(plan: &Plan, today: NaiveDate, days: u32) -> Chart {
    let x = DayAxis::ending(today, days);
    let today_text = today.format("%Y-%m-%d").to_string();
    let mut mood: BTreeMap<NaiveDate, (f64, u32)> = BTreeMap::new();
    let mut craving: BTreeMap<NaiveDate, (f64, u32)> = BTreeMap::new();
    let mut marks = BTreeSet::new();
    for (day, checkin) in client_days(plan, &today_text) {
        let Some(at) = x.x(day) else { continue };
        marks.insert(at);
        for (value, sums) in [(checkin.mood, &mut mood), (checkin.craving, &mut craving)] {
            if let Some(value) = value {
                let sum = sums.entry(day).or_insert((0.0, 0));
                sum.0 += f64::from(value);
                sum.1 += 1;
            }
        }
    }
    let mean = |sums: BTreeMap<NaiveDate, (f64, u32)>| {
        sums.into_iter()
            .map(|(day, (sum, n))| (day, sum / f64::from(n)))
            .collect()
    };
    Chart {
        lines: vec![
            Line {
                kind: LineKind::Mood,
                points: points_on(&x, mean(mood)),
            },
            Line {
                kind: LineKind::Craving,
                points: points_on(&x, mean(craving)),
            },
        ],
        x,
        y: ValueAxis {
            min: -0.5,
            max: 10.5,
            ticks: vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0],
        },
        marks: marks.into_iter().collect(),
        reference: None,
    }
}

/// One day of the check-in calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarDay {
    pub day: NaiveDate,
    /// The client checked in on any goal that day.
    pub checked_in: bool,
}

/// The `days` days ending `today`, oldest first, each with whether the client checked in.
pub fn calendar(plan: &Plan, today: NaiveDate, days: u32) -> Vec<CalendarDay> {
    let today_text = today.format("%Y-%m-%d").to_string();
    let checked: BTreeSet<NaiveDate> = client_days(plan, &today_text).map(|(d, _)| d).collect();
    (0..days)
        .rev()
        .filter_map(|back| today.checked_sub_days(Days::new(u64::from(back))))
        .map(|day| CalendarDay {
            day,
            checked_in: checked.contains(&day),
        })
        .collect()
}

/// A linear axis labelled at the given values only (plotters' own axes pick their labels).
struct Ticked {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold points only: one grid line and one label per tick.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

fn draw_error(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("cannot draw a chart: {e}")))
}

/// Pixel size of a chart's drawing; the report scales it to the page width.
pub const SVG_SIZE: (u32, u32) = (720, 240);

/// The chart as an inline SVG element (no XML namespace, no external reference), described
/// for screen readers by `description`; `y_label` writes the values on the value axis.
pub fn svg(chart: &Chart, description: &str, y_label: &dyn Fn(f64) -> String) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SVG_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let days = chart.x.len();
        let x_ticks: Vec<f64> = chart.x.ticks().into_iter().map(f64::from).collect();
        let x_range = Ticked {
            range: -0.5..f64::from(days) - 0.5,
            ticks: x_ticks,
        };
        let y_range = Ticked {
            range: chart.y.min..chart.y.max,
            ticks: chart.y.ticks.clone(),
        };
        let mut plot = ChartBuilder::on(&root)
            .margin(10)
            .margin_right(18)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(x_range, y_range)
            .map_err(draw_error)?;
        let axis = &chart.x;
        let x_label = |x: &f64| {
            let index = x.round();
            if index < 0.0 {
                return String::new();
            }
            axis.day(index as u32)
                .map(|d| axis.label(d))
                .unwrap_or_default()
        };
        let y_text = |y: &f64| y_label(*y);
        plot.configure_mesh()
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .axis_style(RGBColor(0x88, 0x88, 0x88))
            .label_style(
                ("sans-serif", 14)
                    .into_font()
                    .color(&RGBColor(0x33, 0x33, 0x33)),
            )
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_text)
            .draw()
            .map_err(draw_error)?;
        if let Some(level) = chart.reference {
            let grey = RGBColor(0x77, 0x77, 0x77);
            let ends = [(-0.5, level), (f64::from(days) - 0.5, level)];
            plot.draw_series(DashedLineSeries::new(ends, 6, 4, grey.stroke_width(1)))
                .map_err(draw_error)?;
        }
        let band = (chart.y.max - chart.y.min) * 0.05;
        let marks = chart.marks.iter().map(|&x| {
            let x = f64::from(x);
            Rectangle::new(
                [(x - 0.3, chart.y.min), (x + 0.3, chart.y.min + band)],
                RGBColor(0x55, 0x55, 0x55).filled(),
            )
        });
        plot.draw_series(marks).map_err(draw_error)?;
        for line in &chart.lines {
            let color = line.kind.color();
            for segment in line.segments() {
                let coords = segment.iter().map(|p| (f64::from(p.x), p.y));
                plot.draw_series(LineSeries::new(coords, color.stroke_width(2)))
                    .map_err(draw_error)?;
            }
            let dots = line
                .points
                .iter()
                .map(|p| Circle::new((f64::from(p.x), p.y), 4, color.filled()));
            plot.draw_series(dots).map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    let labelled = format!(
        "<svg role=\"img\" aria-label=\"{}\" ",
        super::report::escape(description)
    );
    Ok(out
        .replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
        .replacen("<svg ", &labelled, 1))
}

/// Values on a GAS axis: -2, -1, 0, +1, +2.
pub fn gas_label(value: f64) -> String {
    level_label(value.round() as i8)
}

/// Whole numbers.
pub fn number_label(value: f64) -> String {
    format!("{value:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        parse_day(text).unwrap()
    }

    #[test]
    fn day_axes_span_a_week_at_least_and_label_both_ends() {
        let one = DayAxis::new(day("2026-03-05"), day("2026-03-05"));
        assert_eq!((one.first, one.len()), (day("2026-02-27"), 7));
        assert_eq!(one.x(day("2026-03-05")), Some(6));
        assert_eq!(one.x(day("2026-03-06")), None);
        assert_eq!(one.x(day("2026-02-26")), None);
        let year = DayAxis::new(day("2026-03-01"), day("2026-11-30"));
        assert_eq!(year.len(), 275);
        assert_eq!(year.ticks(), [0, 46, 92, 138, 184, 230, 274]);
        let month = DayAxis::ending(day("2026-03-30"), 30);
        assert_eq!(month.ticks(), [0, 5, 10, 15, 20, 25, 29]);
        let eight = DayAxis::ending(day("2026-03-08"), 8);
        assert_eq!(eight.ticks(), [0, 2, 4, 6, 7]);
        assert_eq!(month.label(day("2026-03-09")), "9 Mar");
        let across = DayAxis::new(day("2025-12-20"), day("2026-01-05"));
        assert_eq!(across.label(day("2026-01-02")), "2 Jan 2026");
    }

    #[test]
    fn daily_lines_break_at_missing_days_levels_do_not() {
        let points = |xs: &[u32]| -> Vec<ChartPoint> {
            xs.iter()
                .map(|&x| ChartPoint {
                    day: day("2026-03-01"),
                    x,
                    y: 1.0,
                })
                .collect()
        };
        let mood = Line {
            kind: LineKind::Mood,
            points: points(&[1, 2, 3, 5, 7, 8]),
        };
        let runs: Vec<usize> = mood.segments().iter().map(|s| s.len()).collect();
        assert_eq!(runs, [3, 1, 2]);
        let level = Line {
            kind: LineKind::GasLevel,
            points: points(&[1, 5, 8]),
        };
        assert_eq!(level.segments().len(), 1);
        let empty = Line {
            kind: LineKind::Craving,
            points: Vec::new(),
        };
        assert!(empty.segments().is_empty());
    }

    #[test]
    fn svg_is_inline_and_labelled() {
        let x = DayAxis::ending(day("2026-03-07"), 7);
        let chart = Chart {
            lines: vec![Line {
                kind: LineKind::GasLevel,
                points: vec![ChartPoint {
                    day: day("2026-03-03"),
                    x: x.x(day("2026-03-03")).unwrap(),
                    y: 1.0,
                }],
            }],
            x,
            y: ValueAxis {
                min: -2.5,
                max: 2.5,
                ticks: vec![-2.0, -1.0, 0.0, 1.0, 2.0],
            },
            marks: vec![2],
            reference: Some(0.0),
        };
        let svg = svg(&chart, "A \"quoted\" <chart>", &gas_label).unwrap();
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"A &quot;quoted&quot; &lt;chart&gt;\" ")
        );
        assert!(!svg.contains("xmlns") && !svg.contains("http"));
        // plotters writes each label on a line of its own inside <text>.
        for label in ["+2", "+1", "-1", "-2", "1 Mar", "7 Mar"] {
            assert!(svg.contains(&format!(">\n{label}\n</text>")), "{label}");
        }
        assert!(svg.contains("<circle"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
