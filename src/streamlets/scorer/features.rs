//! Record fields → one row of the model's input tensor, as the feature mapping declares.

use serde_json::Value;

use super::super::Record;
use crate::spec::{FeatureMapping, UnknownCategory};

/// Why a record cannot become a row: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureError {
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
enum Encoding {
    Number,
    Index(Vec<String>),
    OneHot(Vec<String>),
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

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
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
                    (_, Some(values)) => Encoding::OneHot(values),
                    (Some(values), None) => Encoding::Index(values),
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

    /// Appends the record's row to `rows`; on error nothing is appended.
    pub fn row(&self, record: &Record, rows: &mut Vec<f32>) -> Result<(), FeatureError> {
        let start = rows.len();
        for column in &self.columns {
            if let Err(reason) = column.push(record.get(&column.field), rows) {
                rows.truncate(start);
                return Err(FeatureError {
                    field: column.field.clone(),
                    reason: format!("feature `{}`: {reason}", column.field),
                });
            }
        }
        Ok(())
    }
}

impl Column {
    fn push(&self, value: Option<&Value>, rows: &mut Vec<f32>) -> Result<(), String> {
        let value = value.filter(|v| !v.is_null());
        match &self.encoding {
            Encoding::Number => {
                let x = match value {
                    None => self.default.ok_or("missing, and no default is declared")?,
                    Some(Value::Number(n)) => n.as_f64().ok_or("not a number")?,
                    Some(Value::Bool(b)) => f64::from(u8::from(*b)),
                    Some(other) => return Err(format!("expected a number, found {}", describe(other))),
                };
                let x32 = x as f32;
                if !x32.is_finite() {
                    return Err(format!("{x} does not fit a float32"));
                }
                rows.push(x32);
            }
            Encoding::Index(values) => {
                let index = match value {
                    None => self.default.ok_or("missing, and no default is declared")? as f32,
                    Some(Value::String(s)) => match values.iter().position(|v| v == s) {
                        Some(i) => i as f32,
                        None if self.unknown == UnknownCategory::Zeros => -1.0,
                        None => return Err(format!("{s:?} is not one of the declared categories")),
                    },
                    Some(other) => return Err(format!("expected a category name, found {}", describe(other))),
                };
                rows.push(index);
            }
            Encoding::OneHot(values) => {
                let hot = match value {
                    None if self.unknown == UnknownCategory::Zeros => None,
                    None => return Err("missing".into()),
                    Some(Value::String(s)) => match values.iter().position(|v| v == s) {
                        Some(i) => Some(i),
                        None if self.unknown == UnknownCategory::Zeros => None,
                        None => return Err(format!("{s:?} is not one of the declared values")),
                    },
                    Some(other) => return Err(format!("expected a category name, found {}", describe(other))),
                };
                rows.extend((0..values.len()).map(|i| if Some(i) == hot { 1.0 } else { 0.0 }));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{FeatureField, FeatureSpec};
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

    fn record(v: serde_json::Value) -> Record {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn casts_defaults_one_hot_and_categories() {
        let f = features();
        assert_eq!(f.width(), 6);
        let mut rows = Vec::new();
        f.row(
            &record(json!({"sqft": 1200, "waterfront": true, "city": "Renton", "grade": "high"})),
            &mut rows,
        )
        .expect("a row");
        f.row(
            &record(json!({"sqft": 1.5, "floors": 2, "waterfront": false, "city": "Paris", "grade": "low"})),
            &mut rows,
        )
        .expect("a row");
        assert_eq!(
            rows,
            vec![1200.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.5, 2.0, 0.0, 0.0, 0.0, 0.0]
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
            let e = f.row(&record(value), &mut rows).expect_err("a bad record");
            assert_eq!(e.field, field);
            assert!(e.reason.contains(words), "{}", e.reason);
            assert_eq!(rows, vec![9.0]);
        }
    }
}
