//! Validation of every field a person types: typed errors, never a silent trim to fit.

use std::ops::RangeInclusive;

use chrono::NaiveDate;

use super::{GasEdit, GoalEdit, NewCheckIn, NewIntervention, NewObjective};
use crate::error::{Error, Result};

/// Longest free text (goal words, clinical statement, notes, objectives), in characters.
pub const MAX_TEXT: usize = 4000;
/// Longest short label (names, titles, life areas, units, measures), in characters.
pub const MAX_LABEL: usize = 200;
/// GAS levels: -2 (much less than expected) ..= +2 (much more than expected).
pub const GAS_LEVELS: RangeInclusive<i8> = -2..=2;
/// Ratings (mood, craving).
pub const RATINGS: RangeInclusive<u8> = 0..=10;
/// The GAS weight a goal starts with.
pub const DEFAULT_GAS_WEIGHT: f64 = 1.0;
/// Heaviest GAS weight; a weight is above 0 and at most this.
pub const MAX_GAS_WEIGHT: f64 = 100.0;

/// Free text that must say something.
pub fn words(field: &'static str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    optional_text(field, text)
}

/// Free text that may be empty.
pub fn optional_text(field: &'static str, text: &str) -> Result<()> {
    length(field, text, MAX_TEXT)
}

/// A short label that must say something.
pub fn label(field: &'static str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    length(field, text, MAX_LABEL)?;
    if !text.chars().all(label_char) {
        return Err(Error::invalid(field, "must be one line"));
    }
    Ok(())
}

fn length(field: &'static str, text: &str, max: usize) -> Result<()> {
    let count = text.chars().count();
    if count > max {
        return Err(Error::invalid(
            field,
            format!("too long ({count} characters, at most {max})"),
        ));
    }
    if text.contains('\0') {
        return Err(Error::invalid(field, "contains a NUL character"));
    }
    if !text.chars().all(free_text_char) {
        return Err(Error::invalid(field, "contains a control character"));
    }
    Ok(())
}

/// Whether `c` may stand in free text: no C0 or C1 control character (they could repaint a
/// terminal or hide words), except newline and tab. Labels allow no control character at all.
pub fn free_text_char(c: char) -> bool {
    !c.is_control() || c == '\n' || c == '\t'
}

/// `text` safe to show on a terminal or page: every control character but newline and tab
/// (which older stores may hold, written before they were refused) becomes a visible sign —
/// its Unicode control picture (␛ for ESC, ␍ for CR, ␡ for DEL), or U+FFFD for a C1 control.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().all(free_text_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| match c {
            c if free_text_char(c) => c,
            '\u{7f}' => '\u{2421}',
            c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
            _ => '\u{fffd}',
        })
        .collect::<String>()
        .into()
}

/// Whether `c` may stand in a label (one line): no control character at all.
pub fn label_char(c: char) -> bool {
    !c.is_control()
}

/// A calendar date written YYYY-MM-DD.
pub fn date(field: &'static str, text: &str) -> Result<NaiveDate> {
    if text.len() != 10 {
        return Err(Error::invalid(field, "expected a date as YYYY-MM-DD"));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| Error::invalid(field, "expected a real date as YYYY-MM-DD"))
}

/// A GAS level (see [`GAS_LEVELS`]).
pub fn gas_level(level: i8) -> Result<i8> {
    if GAS_LEVELS.contains(&level) {
        Ok(level)
    } else {
        Err(Error::invalid(
            "gas level",
            format!(
                "must be between {} and {}",
                GAS_LEVELS.start(),
                GAS_LEVELS.end()
            ),
        ))
    }
}

/// A rating (see [`RATINGS`]).
pub fn rating(field: &'static str, value: u8) -> Result<u8> {
    if RATINGS.contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(
            field,
            format!("must be between {} and {}", RATINGS.start(), RATINGS.end()),
        ))
    }
}

/// A finite number.
pub fn number(field: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::invalid(field, "must be a finite number"))
    }
}

/// A GAS weight: above 0 and at most [`MAX_GAS_WEIGHT`].
pub fn gas_weight(weight: f64) -> Result<f64> {
    number("gas weight", weight)?;
    if weight <= 0.0 || weight > MAX_GAS_WEIGHT {
        return Err(Error::invalid(
            "gas weight",
            format!("must be above 0 and at most {MAX_GAS_WEIGHT}"),
        ));
    }
    Ok(weight)
}

/// A time-zone offset in minutes east of UTC.
pub fn tz_offset(minutes: i32) -> Result<i32> {
    if (-14 * 60..=14 * 60).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(Error::invalid(
            "time-zone offset",
            "must be within ±14 hours",
        ))
    }
}

pub fn goal_edit(edit: &GoalEdit) -> Result<()> {
    if edit.is_empty() {
        return Err(Error::invalid("goal edit", "nothing to change"));
    }
    if let Some(text) = &edit.client_words {
        words("client words", text)?;
    }
    if let Some(text) = &edit.clinical_statement {
        optional_text("clinical statement", text)?;
    }
    if let Some(text) = &edit.life_area {
        if !text.is_empty() {
            label("life area", text)?;
        }
    }
    Ok(())
}

pub fn objective(objective: &NewObjective) -> Result<()> {
    words("objective text", &objective.text)?;
    if let Some(measure) = &objective.measure {
        label("measure", measure)?;
    }
    if let Some(target) = objective.target {
        number("target", target)?;
    }
    if let Some(unit) = &objective.unit {
        label("unit", unit)?;
    }
    if let Some(due) = &objective.due_on {
        date("due date", due)?;
    }
    Ok(())
}

pub fn intervention(intervention: &NewIntervention) -> Result<()> {
    words("intervention text", &intervention.text)?;
    if let Some(frequency) = &intervention.frequency {
        label("frequency", frequency)?;
    }
    Ok(())
}

pub fn gas_edit(edit: &GasEdit) -> Result<()> {
    match edit {
        GasEdit::Level { level, text } => {
            gas_level(*level)?;
            words("gas level text", text)
        }
        GasEdit::Weight(weight) => gas_weight(*weight).map(|_| ()),
        GasEdit::Baseline(level) => gas_level(*level).map(|_| ()),
    }
}

pub fn checkin(checkin: &NewCheckIn) -> Result<()> {
    if let Some(level) = checkin.gas_level {
        gas_level(level)?;
    }
    if let Some(value) = checkin.value {
        number("value", value)?;
    }
    if let Some(mood) = checkin.mood {
        rating("mood", mood)?;
    }
    if let Some(craving) = checkin.craving {
        rating("craving", craving)?;
    }
    optional_text("note", &checkin.note)?;
    if let Some(day) = &checkin.local_date {
        date("date", day)?;
    }
    if let Some(offset) = checkin.tz_offset_min {
        tz_offset(offset)?;
    }
    let says_something = checkin.gas_level.is_some()
        || checkin.value.is_some()
        || checkin.mood.is_some()
        || checkin.craving.is_some()
        || !checkin.note.trim().is_empty();
    if !says_something {
        return Err(Error::invalid(
            "check-in",
            "needs a level, value, mood, craving or note",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<impl Sized>) -> &'static str {
        match result {
            Err(Error::InvalidInput { field, .. }) => field,
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("accepted bad input"),
        }
    }

    #[test]
    fn rejects_bad_fields_with_their_names() {
        assert_eq!(field_of(words("client words", "   ")), "client words");
        assert_eq!(
            field_of(words("client words", &"x".repeat(MAX_TEXT + 1))),
            "client words"
        );
        assert!(words("client words", &"é".repeat(MAX_TEXT)).is_ok());
        assert_eq!(field_of(date("due date", "2026-02-30")), "due date");
        assert_eq!(field_of(date("due date", "2026-2-3")), "due date");
        assert!(date("due date", "2028-02-29").is_ok());
        assert_eq!(field_of(gas_level(3)), "gas level");
        assert_eq!(field_of(gas_level(-3)), "gas level");
        assert_eq!(field_of(rating("mood", 11)), "mood");
        assert_eq!(field_of(label("name", "a\nb")), "name");
        // C0 and C1 control characters other than newline and tab never stand in free text.
        for bad in ["\u{1b}[2J", "a\rb", "\u{7f}", "\u{9b}31m", "\u{85}"] {
            assert_eq!(field_of(words("client words", bad)), "client words");
            assert_eq!(field_of(optional_text("note", bad)), "note");
            assert_eq!(field_of(label("name", bad)), "name");
        }
        assert!(words("client words", "two\nlines\tand a tab").is_ok());
        assert_eq!(
            printable("agreement: \u{1b}[2Kagreed\r\u{9b}\u{7f}\nok\t"),
            "agreement: \u{241b}[2Kagreed\u{240d}\u{fffd}\u{2421}\nok\t"
        );
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(field_of(number("target", f64::NAN)), "target");
        assert_eq!(field_of(tz_offset(15 * 60)), "time-zone offset");
        assert_eq!(field_of(gas_edit(&GasEdit::Weight(0.0))), "gas weight");
        assert_eq!(field_of(checkin(&NewCheckIn::default())), "check-in");
        assert_eq!(field_of(goal_edit(&GoalEdit::default())), "goal edit");
    }
}
