//! Record fields → one row of the model's input tensor, as the feature mapping declares.

use serde_json::Value as J;

use super::config::{FeatureMapping, UnknownCategory};
use crate::flow::{each_valid, mark_values, marked, Batch, Typed, Value};

/// Why a record cannot become a row: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureError {
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
enum Encoding {
    Number,
    Index(Categories),
    OneHot(Categories),
}

/// Declared category names, looked up by name for every record.
#[derive(Debug, Clone)]
struct Categories {
    names: Vec<String>,
    index: std::collections::HashMap<String, usize, foldhash::fast::RandomState>,
}

impl Categories {
    fn new(names: Vec<String>) -> Self {
        let mut index = std::collections::HashMap::default();
        for (i, name) in names.iter().enumerate() {
            // The first of a repeated name counts, as a search from the start would find.
            index.entry(name.clone()).or_insert(i);
        }
        Categories { names, index }
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

#[derive(Debug, Clone)]
struct Column {
    field: String,
    default: Option<f64>,
    unknown: UnknownCategory,
    encoding: Encoding,
}

/// The compiled feature mapping.
#[derive(Debug, Clone)]
pub struct Features {
    columns: Vec<Column>,
    width: usize,
}

fn describe(v: &J) -> String {
    match v {
        J::String(s) => format!("the string {s:?}"),
        J::Array(_) => "a list".into(),
        J::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

/// A record's value of a feature, as the encodings read it.
enum Cell<'a> {
    Missing,
    Number(f64),
    Bool(bool),
    Text(&'a str),
    /// Anything else, described for an error.
    Other(String),
}

fn cell(value: Value<'_>) -> Cell<'_> {
    match value {
        Value::Absent | Value::Null => Cell::Missing,
        Value::Int(i) => Cell::Number(i as f64),
        Value::Float(x) => Cell::Number(x),
        Value::Bool(b) => Cell::Bool(b),
        Value::Str(s) => Cell::Text(s),
        Value::Object(_) => Cell::Other("an object".into()),
        Value::Json(_) => match value.to_json() {
            J::Number(n) => n.as_f64().map_or(Cell::Other("not a number".into()), Cell::Number),
            other => Cell::Other(describe(&other)),
        },
    }
}

impl Features {
    pub fn new(mapping: &FeatureMapping) -> Self {
        let columns: Vec<Column> = mapping
            .fields
            .iter()
            .map(|f| {
                let spec = f.spec();
                let encoding = match (spec.categories, spec.one_hot) {
                    (_, Some(values)) => Encoding::OneHot(Categories::new(values)),
                    (Some(values), None) => Encoding::Index(Categories::new(values)),
                    (None, None) => Encoding::Number,
                };
                Column {
                    field: spec.field,
                    default: spec.default,
                    unknown: spec.unknown,
                    encoding,
                }
            })
            .collect();
        let width = columns
            .iter()
            .map(|c| match &c.encoding {
                Encoding::OneHot(values) => values.len(),
                _ => 1,
            })
            .sum();
        Features { columns, width }
    }

    /// Columns per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The rows of a batch's records, one after the other, and per record whether it became
    /// one (or why not: a record that cannot be a row adds nothing to `rows`). Filled a feature
    /// at a time, each from its field's column.
    pub fn rows(&self, batch: &Batch, rows: &mut Vec<f32>) -> Vec<Result<(), FeatureError>> {
        let (n, w) = (batch.len(), self.width);
        let start = rows.len();
        rows.resize(start + n * w, 0.0);
        let out = &mut rows[start..];
        let mut failed: Vec<Option<FeatureError>> = vec![None; n];
        // Per feature: the rows to look at one by one (a value a tight loop could not write),
        // and the rows without a value.
        let (mut flagged, mut missing) = (vec![false; n], vec![false; n]);
        let mut offset = 0;
        for column in &self.columns {
            let width = column.width();
            let write = |i: usize, value: Cell<'_>, failed: &mut [Option<FeatureError>], out: &mut [f32]| {
                if failed[i].is_some() {
                    return;
                }
                let at = i * w + offset;
                if let Err(reason) = column.write(value, &mut out[at..at + width]) {
                    failed[i] = Some(FeatureError {
                        field: column.field.clone(),
                        reason: format!("feature `{}`: {reason}", column.field),
                    });
                }
            };
            flagged.fill(false);
            missing.fill(false);
            let values = batch.column(&column.field);
            // Tight loops over columns of one type write every slot (a row that fails later
            // is dropped whole, and a row without a value is written again below).
            let slots = out.iter_mut().skip(offset).step_by(w);
            match (&column.encoding, values.and_then(|v| v.plain().map(|p| (v, p)))) {
                (Encoding::Number, Some((values, Typed::Float(a)))) => {
                    slots.zip(a.values()).for_each(|(slot, &x)| *slot = x as f32);
                    mark_values(a, &mut flagged, |x| !(x as f32).is_finite());
                    values.mark_untyped(&mut missing);
                }
                (Encoding::Number, Some((values, Typed::Int(a)))) => {
                    // By way of a float64, as a number read from JSON is.
                    slots.zip(a.values()).for_each(|(slot, &x)| *slot = x as f64 as f32);
                    values.mark_untyped(&mut missing);
                }
                (Encoding::Number, Some((values, Typed::Bool(a)))) => {
                    slots
                        .zip(a.values().iter())
                        .for_each(|(slot, x)| *slot = f32::from(u8::from(x)));
                    values.mark_untyped(&mut missing);
                }
                (Encoding::OneHot(categories), Some((values, Typed::Str(a)))) => {
                    // The slots start at zero: only the hot one is written.
                    each_valid(a, |i| match categories.position(a.value(i)) {
                        Some(hot) => out[i * w + offset + hot] = 1.0,
                        None => flagged[i] = true,
                    });
                    values.mark_untyped(&mut missing);
                }
                (_, Some((values, _))) => {
                    flagged.fill(true);
                    values.mark_untyped(&mut missing);
                }
                (_, None) => match values {
                    Some(values) => {
                        flagged.fill(true);
                        missing.fill(true);
                        values.each(|i, _| missing[i] = false);
                    }
                    None => missing.fill(true),
                },
            }
            if let Some(values) = values {
                for i in marked(&flagged) {
                    match values.get(i) {
                        Value::Absent => {}
                        value => write(i, cell(value), &mut failed, out),
                    }
                }
            }
            for i in marked(&missing) {
                write(i, Cell::Missing, &mut failed, out);
            }
            offset += width;
        }
        if failed.iter().any(Option::is_some) {
            // Only the records that became rows keep theirs.
            let mut kept = start;
            for (i, f) in failed.iter().enumerate() {
                if f.is_none() {
                    rows.copy_within(start + i * w..start + (i + 1) * w, kept);
                    kept += w;
                }
            }
            rows.truncate(kept);
        }
        failed.into_iter().map(|f| f.map_or(Ok(()), Err)).collect()
    }
}

impl Column {
    fn width(&self) -> usize {
        match &self.encoding {
            Encoding::OneHot(values) => values.len(),
            _ => 1,
        }
    }

    /// Writes the value's encoding into `slot` (this feature's place in a row).
    fn write(&self, value: Cell<'_>, slot: &mut [f32]) -> Result<(), String> {
        match &self.encoding {
            Encoding::Number => {
                let x = match value {
                    Cell::Missing => self.default.ok_or("missing, and no default is declared")?,
                    Cell::Number(x) => x,
                    Cell::Bool(b) => f64::from(u8::from(b)),
                    Cell::Text(s) => return Err(format!("expected a number, found the string {s:?}")),
                    Cell::Other(what) => return Err(format!("expected a number, found {what}")),
                };
                let x32 = x as f32;
                if !x32.is_finite() {
                    return Err(format!("{x} does not fit a float32"));
                }
                slot[0] = x32;
            }
            Encoding::Index(values) => {
                let index = match value {
                    Cell::Missing => self.default.ok_or("missing, and no default is declared")? as f32,
                    Cell::Text(s) => match values.position(s) {
                        Some(i) => i as f32,
                        None if self.unknown == UnknownCategory::Zeros => -1.0,
                        None => return Err(format!("{s:?} is not one of the declared categories")),
                    },
                    Cell::Number(x) => return Err(format!("expected a category name, found {}", number_text(x))),
                    Cell::Bool(b) => return Err(format!("expected a category name, found {b}")),
                    Cell::Other(what) => return Err(format!("expected a category name, found {what}")),
                };
                slot[0] = index;
            }
            Encoding::OneHot(values) => {
                let hot = match value {
                    Cell::Missing if self.unknown == UnknownCategory::Zeros => None,
                    Cell::Missing => return Err("missing".into()),
                    Cell::Text(s) => match values.position(s) {
                        Some(i) => Some(i),
                        None if self.unknown == UnknownCategory::Zeros => None,
                        None => return Err(format!("{s:?} is not one of the declared values")),
                    },
                    Cell::Number(x) => return Err(format!("expected a category name, found {}", number_text(x))),
                    Cell::Bool(b) => return Err(format!("expected a category name, found {b}")),
                    Cell::Other(what) => return Err(format!("expected a category name, found {what}")),
                };
                for (i, x) in slot.iter_mut().enumerate() {
                    *x = if Some(i) == hot { 1.0 } else { 0.0 };
                }
            }
        }
        Ok(())
    }
}

/// A number as an error message shows it.
fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streamlets::scorer::config::{FeatureField, FeatureSpec};
    use serde_json::json;

    fn features() -> Features {
        Features::new(&FeatureMapping {
            input: None,
            fields: vec![
                FeatureField::Name("sqft".into()),
                FeatureField::Spec(FeatureSpec {
                    field: "floors".into(),
                    default: Some(1.0),
                    categories: None,
                    one_hot: None,
                    unknown: UnknownCategory::Error,
                }),
                FeatureField::Name("waterfront".into()),
                FeatureField::Spec(FeatureSpec {
                    field: "city".into(),
                    default: None,
                    categories: None,
                    one_hot: Some(vec!["Kent".into(), "Renton".into()]),
                    unknown: UnknownCategory::Zeros,
                }),
                FeatureField::Spec(FeatureSpec {
                    field: "grade".into(),
                    default: None,
                    categories: Some(vec!["low".into(), "high".into()]),
                    one_hot: None,
                    unknown: UnknownCategory::Error,
                }),
            ],
        })
    }

    fn row(f: &Features, v: serde_json::Value, rows: &mut Vec<f32>) -> Result<(), FeatureError> {
        let batch = Batch::from_records([v.as_object().expect("an object")]);
        f.rows(&batch, rows).remove(0)
    }

    #[test]
    fn casts_defaults_one_hot_and_categories() {
        let f = features();
        assert_eq!(f.width(), 6);
        let mut rows = Vec::new();
        row(
            &f,
            json!({"sqft": 1200, "waterfront": true, "city": "Renton", "grade": "high"}),
            &mut rows,
        )
        .expect("a row");
        row(
            &f,
            json!({"sqft": 1.5, "floors": 2, "waterfront": false, "city": "Paris", "grade": "low"}),
            &mut rows,
        )
        .expect("a row");
        assert_eq!(
            rows,
            vec![1200.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.5, 2.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn a_batch_reads_the_same_as_its_records_one_by_one() {
        // Columns of one type go through the tight loops, mixed ones value by value: the rows
        // must not differ. 2^24 + 1 and 2^53 - 1 round to float32 by way of a float64.
        let f = features();
        let records = [
            json!({"sqft": 16777217, "floors": 2, "waterfront": true, "city": "Kent", "grade": "low"}),
            json!({"sqft": 9007199254740991_i64, "waterfront": false, "city": "Lyon", "grade": "high"}),
            json!({"sqft": 3, "floors": 1.5, "waterfront": true, "grade": "mid"}),
            json!({"sqft": 4, "floors": null, "waterfront": false, "city": "Renton", "grade": "low"}),
            json!({"sqft": 5, "waterfront": 1, "city": 7, "grade": "low"}),
        ];
        let maps: Vec<_> = records.iter().map(|r| r.as_object().expect("object").clone()).collect();
        let mut together = Vec::new();
        let results = f.rows(&Batch::from_records(&maps), &mut together);
        let mut alone = Vec::new();
        for (record, result) in records.iter().zip(&results) {
            assert_eq!(&row(&f, record.clone(), &mut alone), result);
        }
        assert_eq!(together, alone);
        assert_eq!(&together[..6], &[16777216.0, 2.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(
            results.iter().map(Result::is_ok).collect::<Vec<_>>(),
            vec![true, true, false, true, false]
        );
    }

    #[test]
    fn bad_records_say_which_feature_and_leave_no_partial_row() {
        let f = features();
        let mut rows = vec![9.0];
        let cases = [
            (
                json!({"waterfront": true, "city": "Kent", "grade": "low"}),
                "sqft",
                "missing",
            ),
            (
                json!({"sqft": "big", "waterfront": true, "city": "Kent", "grade": "low"}),
                "sqft",
                "the string \"big\"",
            ),
            (
                json!({"sqft": 1e300, "waterfront": true, "city": "Kent", "grade": "low"}),
                "sqft",
                "float32",
            ),
            (
                json!({"sqft": 1, "waterfront": true, "city": "Kent", "grade": "mid"}),
                "grade",
                "not one of",
            ),
        ];
        for (value, field, words) in cases {
            let e = row(&f, value, &mut rows).expect_err("a bad record");
            assert_eq!(e.field, field);
            assert!(e.reason.contains(words), "{}", e.reason);
            assert_eq!(rows, vec![9.0]);
        }
    }
}
