//! Typed reads out of an Automerge document: one value, one field, or all fields of a map in a
//! single pass ([`Fields`]). What the plan reader and writer build on.

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};

use super::schema as k;
use crate::error::{Error, Result};
use crate::model::GoalId;

/// A string value: a scalar string or the content of the Text object `id`.
pub(crate) fn string_value<R: ReadDoc>(doc: &R, value: &Value<'_>, id: &ObjId) -> Option<String> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(text) => Some(text.to_string()),
            _ => None,
        },
        Value::Object(ObjType::Text) => doc.text(id).ok(),
        _ => None,
    }
}

pub(crate) fn i64_value(value: &Value<'_>) -> Option<i64> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Int(n) => Some(*n),
            ScalarValue::Uint(n) => i64::try_from(*n).ok(),
            ScalarValue::Timestamp(n) => Some(*n),
            ScalarValue::F64(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn f64_value(value: &Value<'_>) -> Option<f64> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::F64(f) => Some(*f),
            ScalarValue::Int(n) => Some(*n as f64),
            ScalarValue::Uint(n) => Some(*n as f64),
            _ => None,
        },
        _ => None,
    }
}

/// A string field: a scalar string or the content of a Text object.
pub(crate) fn get_string<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<String> {
    let (value, id) = doc.get(obj, key).ok().flatten()?;
    string_value(doc, &value, &id)
}

pub(crate) fn get_i64<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<i64> {
    i64_value(&doc.get(obj, key).ok().flatten()?.0)
}

/// The fields of one map, read in a single pass over it. Each `get` seeks into the whole
/// document; reading a map's few fields this way costs one seek instead of one per key,
/// which is what keeps reading a year of check-ins fast.
pub(crate) struct Fields {
    entries: Vec<FieldEntry>,
}

struct FieldEntry {
    key: String,
    value: Value<'static>,
    id: ObjId,
    /// Concurrent values exist for the key.
    conflict: bool,
}

impl Fields {
    pub(crate) fn of<R: ReadDoc>(doc: &R, obj: &ObjId) -> Self {
        let entries = doc
            .map_range(obj, ..)
            .map(|item| FieldEntry {
                id: item.id(),
                key: item.key.into_owned(),
                value: item.value.into_value(),
                conflict: item.conflict,
            })
            .collect();
        Self { entries }
    }

    fn entry(&self, key: &str) -> Option<&FieldEntry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub(crate) fn string<R: ReadDoc>(&self, doc: &R, key: &str) -> Option<String> {
        let entry = self.entry(key)?;
        string_value(doc, &entry.value, &entry.id)
    }

    pub(crate) fn i64(&self, key: &str) -> Option<i64> {
        i64_value(&self.entry(key)?.value)
    }

    pub(crate) fn f64(&self, key: &str) -> Option<f64> {
        f64_value(&self.entry(key)?.value)
    }

    /// A map-valued field.
    pub(crate) fn map(&self, key: &str) -> Option<ObjId> {
        let entry = self.entry(key)?;
        matches!(entry.value, Value::Object(ObjType::Map)).then(|| entry.id.clone())
    }

    /// Whether the key holds concurrent values (then `get_all` tells them).
    pub(crate) fn conflicted(&self, key: &str) -> bool {
        self.entry(key).is_some_and(|e| e.conflict)
    }

    /// Every map-valued entry: (key, map).
    pub(crate) fn maps(&self) -> impl Iterator<Item = (&str, &ObjId)> {
        self.entries
            .iter()
            .filter(|e| matches!(e.value, Value::Object(ObjType::Map)))
            .map(|e| (e.key.as_str(), &e.id))
    }
}

/// A map-valued field.
pub(crate) fn get_map<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Object(ObjType::Map), id) => Some(id),
        _ => None,
    }
}

/// A Text-valued field.
pub(crate) fn get_text_obj<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Object(ObjType::Text), id) => Some(id),
        _ => None,
    }
}

/// The goal map of `goal`, or NotFound.
pub(crate) fn goal_obj<R: ReadDoc>(doc: &R, goal: GoalId) -> Result<ObjId> {
    get_map(doc, &ROOT, k::GOALS)
        .and_then(|goals| get_map(doc, &goals, &goal.to_string()))
        .ok_or_else(|| Error::not_found("goal", goal))
}
