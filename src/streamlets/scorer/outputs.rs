//! Output tensors → record fields: a regression value, a label, class probabilities.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::super::Record;
use crate::models::{Tensor, TensorData};
use crate::spec::OutputMapping;

fn number(x: f32) -> Value {
    Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number)
}

/// Value `i` of a tensor, as JSON.
fn value_at(tensor: &Tensor, i: usize) -> Value {
    match &tensor.data {
        TensorData::F32(d) => d.get(i).map_or(Value::Null, |x| number(*x)),
        TensorData::I64(d) => d.get(i).map_or(Value::Null, |x| Value::from(*x)),
        TensorData::Str(d) => d.get(i).map_or(Value::Null, |x| Value::from(x.as_str())),
    }
}

/// One output mapping, resolved against the tensors of one batch.
pub struct Resolved<'a> {
    mapping: &'a OutputMapping,
    tensor: &'a Tensor,
    width: usize,
    /// The single column `class` selects, if it does.
    column: Option<usize>,
}

/// Resolves every mapping whose tensor the batch has (once per batch, not per record).
pub fn resolve<'a>(mappings: &'a [OutputMapping], tensors: &'a HashMap<String, Tensor>) -> Vec<Resolved<'a>> {
    mappings
        .iter()
        .filter_map(|m| {
            let tensor = tensors.get(&m.tensor)?;
            let column = m.class.as_ref().map(|class| match &m.classes {
                Some(names) => names.iter().position(|n| n == class).unwrap_or(usize::MAX),
                None => class.parse::<usize>().unwrap_or(usize::MAX),
            });
            Some(Resolved {
                mapping: m,
                tensor,
                width: tensor.row_width(),
                column,
            })
        })
        .collect()
}

/// Sets the mapped fields of `record` from row `row` of the batch's output tensors.
pub fn apply(resolved: &[Resolved<'_>], row: usize, record: &mut Record) {
    for r in resolved {
        let start = row * r.width;
        let value = match (r.column, &r.mapping.classes) {
            (Some(c), _) if c < r.width => value_at(r.tensor, start + c),
            (Some(_), _) => Value::Null,
            (None, Some(names)) => Value::Object(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), value_at(r.tensor, start + i)))
                    .collect::<Map<_, _>>(),
            ),
            (None, None) if r.width == 1 => value_at(r.tensor, start),
            (None, None) => Value::Array((start..start + r.width).map(|i| value_at(r.tensor, i)).collect()),
        };
        record.insert(r.mapping.field.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(tensor: &str, field: &str, classes: Option<Vec<&str>>, class: Option<&str>) -> OutputMapping {
        OutputMapping {
            tensor: tensor.into(),
            field: field.into(),
            classes: classes.map(|c| c.into_iter().map(String::from).collect()),
            class: class.map(String::from),
            role: None,
        }
    }

    #[test]
    fn values_labels_and_probabilities() {
        let tensors = HashMap::from([
            (
                "variable".to_string(),
                Tensor {
                    shape: vec![2, 1],
                    data: TensorData::F32(vec![1.5, 2.5]),
                },
            ),
            (
                "label".to_string(),
                Tensor {
                    shape: vec![2],
                    data: TensorData::I64(vec![0, 1]),
                },
            ),
            (
                "probabilities".to_string(),
                Tensor {
                    shape: vec![2, 2],
                    data: TensorData::F32(vec![0.75, 0.25, 0.5, 0.5]),
                },
            ),
        ]);
        let mappings = [
            mapping("variable", "price", None, None),
            mapping("label", "fraud", None, None),
            mapping("probabilities", "p", Some(vec!["ok", "fraud"]), None),
            mapping("probabilities", "p_fraud", Some(vec!["ok", "fraud"]), Some("fraud")),
            mapping("probabilities", "raw", None, None),
        ];
        let mut r = Record::new();
        apply(&resolve(&mappings, &tensors), 0, &mut r);
        assert_eq!(
            Value::Object(r),
            serde_json::json!({"price": 1.5, "fraud": 0, "p": {"ok": 0.75, "fraud": 0.25}, "p_fraud": 0.25, "raw": [0.75, 0.25]})
        );
    }
}
