//! The part of a record schema that can be decided a column at a time: for each record, either
//! "certainly valid" or "ask the full validator". It is only ever a shortcut: a record it is not
//! sure of, and every record it finds wrong, goes to the JSON Schema validator, which has the
//! last word and the reason. So its semantics never differ from JSON Schema's; where a keyword
//! is not one it knows, it is not sure.

use std::collections::HashMap;
use std::sync::Mutex;

use foldhash::fast::RandomState;

use serde_json::Value as J;

use crate::flow::{Batch, Value};

/// Drafts whose keywords (`exclusiveMinimum` a number, `integer` any whole number) this reads.
const DRAFTS: &[&str] = &[
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-06/schema",
];

/// Keywords that say nothing about validity.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
];

#[derive(Debug, Clone, Copy, Default)]
struct Types {
    null: bool,
    boolean: bool,
    integer: bool,
    number: bool,
    string: bool,
    object: bool,
    array: bool,
}

impl Types {
    fn any() -> Types {
        Types {
            null: true,
            boolean: true,
            integer: true,
            number: true,
            string: true,
            object: true,
            array: true,
        }
    }

    fn read(value: &J) -> Option<Types> {
        let mut t = Types::default();
        let names: Vec<&str> = match value {
            J::String(s) => vec![s.as_str()],
            J::Array(items) => items.iter().map(|i| i.as_str()).collect::<Option<_>>()?,
            _ => return None,
        };
        for name in names {
            match name {
                "null" => t.null = true,
                "boolean" => t.boolean = true,
                "integer" => t.integer = true,
                "number" => t.number = true,
                "string" => t.string = true,
                "object" => t.object = true,
                "array" => t.array = true,
                _ => return None,
            }
        }
        Some(t)
    }
}

/// What one property's value must be, as far as a column check can tell.
struct PropertyCheck {
    name: String,
    types: Types,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    /// Allowed strings, when `enum` lists only strings.
    strings: Option<Vec<String>>,
    /// Keywords besides those above: each value is checked against the property's own schema
    /// (strings remembered, as a stream repeats them).
    rest: Option<Rest>,
    /// The property's schema could not be read here: its values are never certain.
    unknown: bool,
}

struct Rest {
    validator: jsonschema::Validator,
    seen: Mutex<HashMap<String, bool, RandomState>>,
}

/// How many distinct strings a property check remembers.
const REMEMBERED: usize = 4096;

impl Rest {
    fn is_valid(&self, value: Value<'_>) -> bool {
        if let Value::Str(s) = value {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            return self.string_is_valid(s, &mut seen);
        }
        self.validator.is_valid(&value.to_json())
    }

    fn string_is_valid(&self, s: &str, seen: &mut HashMap<String, bool, RandomState>) -> bool {
        if let Some(known) = seen.get(s) {
            return *known;
        }
        let valid = self.validator.is_valid(&J::String(s.to_string()));
        if seen.len() < REMEMBERED {
            seen.insert(s.to_string(), valid);
        }
        valid
    }
}

/// A limit as a float, when a float holds it exactly (an integer beyond 2^53 does not).
fn number(value: Option<&J>) -> Result<Option<f64>, ()> {
    match value {
        None => Ok(None),
        Some(J::Number(n)) if n.is_f64() => n.as_f64().map(Some).ok_or(()),
        Some(J::Number(n)) => match n.as_i64() {
            Some(i) if i.unsigned_abs() <= 1 << 53 => Ok(Some(i as f64)),
            _ => Err(()),
        },
        Some(_) => Err(()),
    }
}

/// Whether a schema, anywhere inside, uses a keyword that points elsewhere in its document
/// (`$ref`, `$dynamicRef`, `$id`...): it then cannot be checked apart from the document.
fn refers(schema: &J) -> bool {
    match schema {
        J::Object(keywords) => keywords
            .iter()
            .any(|(k, v)| (k.starts_with('$') && k != "$comment") || refers(v)),
        J::Array(items) => items.iter().any(refers),
        _ => false,
    }
}

fn length(value: Option<&J>) -> Result<Option<usize>, ()> {
    match value {
        None => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or(()),
    }
}

impl PropertyCheck {
    fn read(name: &str, schema: &J, draft: &J) -> PropertyCheck {
        let mut check = PropertyCheck {
            name: name.to_string(),
            types: Types::any(),
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            min_length: None,
            max_length: None,
            strings: None,
            rest: None,
            unknown: false,
        };
        let Some(keywords) = schema.as_object() else {
            // `true` allows anything; `false` nothing.
            check.unknown = schema != &J::Bool(true);
            return check;
        };
        let read = (|| -> Result<bool, ()> {
            if let Some(t) = keywords.get("type") {
                check.types = Types::read(t).ok_or(())?;
            }
            check.minimum = number(keywords.get("minimum"))?;
            check.maximum = number(keywords.get("maximum"))?;
            check.exclusive_minimum = number(keywords.get("exclusiveMinimum"))?;
            check.exclusive_maximum = number(keywords.get("exclusiveMaximum"))?;
            check.min_length = length(keywords.get("minLength"))?;
            check.max_length = length(keywords.get("maxLength"))?;
            if let Some(values) = keywords.get("enum") {
                let strings = values.as_array().ok_or(())?;
                check.strings = Some(
                    strings
                        .iter()
                        .map(|s| s.as_str().map(String::from))
                        .collect::<Option<_>>()
                        .ok_or(())?,
                );
            }
            const NATIVE: &[&str] = &[
                "type",
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "minLength",
                "maxLength",
                "enum",
            ];
            Ok(keywords
                .keys()
                .any(|k| !NATIVE.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str())))
        })();
        match read {
            Err(()) => check.unknown = true,
            Ok(false) => {}
            Ok(true) => {
                if refers(schema) {
                    // A reference into the document cannot be followed from the property alone.
                    check.unknown = true;
                    return check;
                }
                let mut own = keywords.clone();
                own.insert("$schema".into(), draft.clone());
                match jsonschema::validator_for(&J::Object(own)) {
                    Ok(validator) => {
                        check.rest = Some(Rest {
                            validator,
                            seen: Mutex::new(HashMap::default()),
                        })
                    }
                    Err(_) => check.unknown = true,
                }
            }
        }
        check
    }

    fn in_range(&self, x: f64) -> bool {
        let [lo, hi, open_lo, open_hi] = self.bounds();
        x >= lo && x <= hi && x > open_lo && x < open_hi
    }

    fn string_certain(&self, s: &str) -> bool {
        let chars = || if s.is_ascii() { s.len() } else { s.chars().count() };
        self.types.string
            && self.min_length.is_none_or(|m| chars() >= m)
            && self.max_length.is_none_or(|m| chars() <= m)
            && self
                .strings
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(|a| a == s))
    }

    /// The limits as closed and open bounds, infinite where there is none: `x` is in range when
    /// `lo <= x <= hi` and `open_lo < x < open_hi`.
    fn bounds(&self) -> [f64; 4] {
        [
            self.minimum.unwrap_or(f64::NEG_INFINITY),
            self.maximum.unwrap_or(f64::INFINITY),
            self.exclusive_minimum.unwrap_or(f64::NEG_INFINITY),
            self.exclusive_maximum.unwrap_or(f64::INFINITY),
        ]
    }

    /// Marks the records whose value of this property is not certainly valid. Columns of one
    /// type are read in a tight loop; any other goes value by value.
    fn mark(&self, column: &crate::flow::Column, unsure: &mut [bool]) {
        use crate::flow::{each_valid, exact_integers_within, mark_lengths, mark_values, Typed};
        let numeric_only = self.rest.is_none() && self.strings.is_none() && !self.unknown;
        // Bitwise `&` rather than `&&`: no branch, so the loops vectorise.
        let [lo, hi, open_lo, open_hi] = self.bounds();
        let in_range = move |x: f64| (x >= lo) & (x <= hi) & (x > open_lo) & (x < open_hi);
        match column.plain() {
            Some(Typed::Int(a)) if numeric_only => {
                // An integer is above `open_lo` when at least the next integer up from it.
                let (lo, hi) = match self.types.integer || self.types.number {
                    true => exact_integers_within(lo.max(open_lo.floor() + 1.0), hi.min(open_hi.ceil() - 1.0)),
                    false => (1, 0),
                };
                mark_values(a, unsure, |v| (v < lo) | (v > hi));
            }
            Some(Typed::Float(a)) if numeric_only => {
                let ok = self.types.number;
                mark_values(a, unsure, |x| !(ok & in_range(x)));
            }
            Some(Typed::Str(a)) if !self.unknown && !self.types.string => mark_lengths(a, unsure, |_| true),
            // In ASCII text a length is a difference of offsets.
            Some(Typed::Str(a))
                if !self.unknown && self.strings.is_none() && self.rest.is_none() && {
                    // The text of these rows only (a sliced array shares a longer buffer).
                    let offsets = a.value_offsets();
                    let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
                    a.values()[first..last].is_ascii() || (self.min_length.is_none() && self.max_length.is_none())
                } =>
            {
                let (lo, hi) = (self.min_length.unwrap_or(0), self.max_length.unwrap_or(usize::MAX));
                if lo > 0 || hi < usize::MAX {
                    mark_lengths(a, unsure, |n| (n < lo) | (n > hi));
                }
            }
            Some(Typed::Str(a)) if !self.unknown => {
                let mut seen = self
                    .rest
                    .as_ref()
                    .map(|r| r.seen.lock().unwrap_or_else(|p| p.into_inner()));
                each_valid(a, |i| {
                    if unsure[i] {
                        return;
                    }
                    let s = a.value(i);
                    let rest_ok = match (&self.rest, seen.as_mut()) {
                        (Some(rest), Some(seen)) => rest.string_is_valid(s, seen),
                        _ => true,
                    };
                    unsure[i] = !(self.string_certain(s) && rest_ok);
                });
            }
            _ => column.each(|i, value| {
                if !unsure[i] && !self.certain(value) {
                    unsure[i] = true;
                }
            }),
        }
    }

    /// Whether a value certainly satisfies the property's schema.
    fn certain(&self, value: Value<'_>) -> bool {
        if !value.is_present() {
            return true;
        }
        if self.unknown {
            return false;
        }
        let in_range = |x: f64| self.in_range(x);
        let ok = match value {
            Value::Absent => return true,
            Value::Null => self.types.null,
            Value::Bool(_) => self.types.boolean,
            Value::Int(i) => {
                (self.types.integer || self.types.number) && i.unsigned_abs() <= 1 << 53 && in_range(i as f64)
            }
            // A whole float may count as an integer, or not, depending on the draft: not sure.
            Value::Float(x) => self.types.number && in_range(x),
            Value::Str(s) => self.string_certain(s),
            Value::Object(_) => self.types.object && self.no_value_keywords(),
            Value::Json(_) => false,
        };
        let typed_rules_apply = !matches!(value, Value::Str(_)) && self.strings.is_some();
        ok && !typed_rules_apply && self.rest.as_ref().is_none_or(|r| r.is_valid(value))
    }

    fn no_value_keywords(&self) -> bool {
        self.minimum.is_none()
            && self.maximum.is_none()
            && self.exclusive_minimum.is_none()
            && self.exclusive_maximum.is_none()
            && self.min_length.is_none()
            && self.max_length.is_none()
    }
}

/// The column checks of a record schema.
pub struct ColumnCheck {
    required: Vec<String>,
    properties: Vec<PropertyCheck>,
    /// `additionalProperties: false`: a field not among the properties makes a record unsure.
    closed: bool,
}

impl ColumnCheck {
    /// The checks of a schema, or `None` when it has keywords a column check cannot decide
    /// (every record then goes to the full validator).
    pub fn read(schema: &J) -> Option<ColumnCheck> {
        let root = schema.as_object()?;
        let draft = root
            .get("$schema")
            .cloned()
            .unwrap_or_else(|| J::String(DRAFTS[0].into()));
        let known = draft
            .as_str()
            .is_some_and(|d| DRAFTS.iter().any(|k| d.trim_end_matches('#') == *k));
        if !known {
            return None;
        }
        let mut check = ColumnCheck {
            required: Vec::new(),
            properties: Vec::new(),
            closed: false,
        };
        for (keyword, value) in root {
            match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "type" if value.as_str() == Some("object") => {}
                "required" => {
                    check.required = value
                        .as_array()?
                        .iter()
                        .map(|r| r.as_str().map(String::from))
                        .collect::<Option<_>>()?
                }
                "properties" => {
                    for (name, schema) in value.as_object()? {
                        check.properties.push(PropertyCheck::read(name, schema, &draft));
                    }
                }
                "additionalProperties" => match value {
                    J::Bool(true) => {}
                    J::Bool(false) => check.closed = true,
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some(check)
    }

    /// Per record: whether the full validator must look at it (`true`), or it is certainly valid.
    pub fn unsure(&self, batch: &Batch) -> Vec<bool> {
        let n = batch.len();
        let mut unsure = vec![false; n];
        for name in &self.required {
            match batch.column(name) {
                None => return vec![true; n],
                Some(column) if column.all_present() => {}
                Some(column) => {
                    for (u, present) in unsure.iter_mut().zip(column.presence()) {
                        *u |= !present;
                    }
                }
            }
        }
        for property in &self.properties {
            let Some(column) = batch.column(&property.name) else {
                continue;
            };
            property.mark(column, &mut unsure);
        }
        if self.closed {
            for field in batch.fields() {
                if self.properties.iter().any(|p| *p.name == *field.name) {
                    continue;
                }
                field.column.each(|i, _| unsure[i] = true);
            }
        }
        unsure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(records: &[J]) -> Batch {
        let maps: Vec<_> = records
            .iter()
            .map(|r| r.as_object().cloned().expect("object"))
            .collect();
        Batch::from_records(&maps)
    }

    #[test]
    fn a_record_is_certain_only_when_every_rule_it_knows_holds() {
        let schema = json!({
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                "kind": {"enum": ["a", "b"]},
                "price": {"type": "number", "exclusiveMaximum": 10}
            }
        });
        let check = ColumnCheck::read(&schema).expect("column-wise");
        let unsure = check.unsure(&batch(&[
            json!({"id": 1, "zip": "98103", "kind": "a", "price": 9.5}),
            json!({"id": 0}),
            json!({"id": 2, "zip": "981"}),
            json!({"id": 3, "kind": "c"}),
            json!({"id": 4, "price": 10}),
            json!({"zip": "98103"}),
            json!({"id": 5.0}),
            json!({"id": 6, "kind": 1}),
            json!({"id": null}),
        ]));
        // `5.0` stays a float beside the integers; whether a whole float is an integer depends
        // on the draft, so the column check leaves it to the validator.
        assert_eq!(unsure, vec![false, true, true, true, true, true, true, true, true]);
    }

    #[test]
    fn references_and_limits_a_float_cannot_hold_are_never_taken_as_certain() {
        let nested = json!({"type": "object", "required": ["id"], "properties": {
            "id": {}, "child": {"type": "object", "properties": {"c": {"$ref": "#"}}}}});
        let check = ColumnCheck::read(&nested).expect("read");
        assert_eq!(
            check.unsure(&batch(&[json!({"id": 1, "child": {"c": {}}})])),
            vec![true]
        );
        let big = json!({"properties": {"x": {"type": "integer", "minimum": 9007199254740993_i64}}});
        let check = ColumnCheck::read(&big).expect("read");
        assert_eq!(check.unsure(&batch(&[json!({"x": 9007199254740992_i64})])), vec![true]);
        let low = json!({"properties": {"x": {"type": "integer", "minimum": -9223372036854775807_i64}}});
        let check = ColumnCheck::read(&low).expect("read");
        assert_eq!(
            check.unsure(&batch(&[json!({"x": i64::MIN}), json!({"x": 0.5})])),
            vec![true, true]
        );
    }

    #[test]
    fn integer_limits_hold_at_their_edges_whether_closed_open_or_fractional() {
        let schema = json!({"properties": {
            "a": {"type": "integer", "exclusiveMinimum": 3, "maximum": 7.5},
            "b": {"type": "number", "minimum": -2.5, "exclusiveMaximum": 4.5},
            "s": {"type": "string"}
        }});
        let check = ColumnCheck::read(&schema).expect("column-wise");
        let ints = |name: &str, values: &[i64]| {
            let records: Vec<J> = values.iter().map(|v| json!({ name: v })).collect();
            check.unsure(&batch(&records))
        };
        assert_eq!(ints("a", &[3, 4, 7, 8]), vec![true, false, false, true]);
        assert_eq!(ints("b", &[-3, -2, 4, 5]), vec![true, false, false, true]);
        // A string property with no rule but its type takes any string, and only strings.
        assert_eq!(
            check.unsure(&batch(&[json!({"s": "x"}), json!({"s": ""}), json!({"s": 1})])),
            vec![false, false, true]
        );
    }

    #[test]
    fn schemas_it_cannot_read_send_every_record_to_the_validator() {
        assert!(ColumnCheck::read(&json!({"allOf": [{"required": ["a"]}]})).is_none());
        assert!(ColumnCheck::read(&json!({"$schema": "http://json-schema.org/draft-04/schema#"})).is_none());
        let check = ColumnCheck::read(&json!({"properties": {"a": {"$ref": "#/$defs/x"}}})).expect("read");
        assert_eq!(
            check.unsure(&batch(&[json!({"a": 1}), json!({"b": 1})])),
            vec![true, false]
        );
        let closed = ColumnCheck::read(&json!({"properties": {"a": {}}, "additionalProperties": false})).expect("read");
        assert_eq!(
            closed.unsure(&batch(&[json!({"a": 1}), json!({"a": 1, "b": 2})])),
            vec![false, true]
        );
    }
}
