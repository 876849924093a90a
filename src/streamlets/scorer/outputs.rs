//! Output tensors → record fields: a regression value, a label, class probabilities.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::super::Record;
use crate::models::{Tensor, TensorData};
use crate::spec::OutputMapping;

fn number(x: f32) -> Value {
    Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number)
}

/// The values of `row` in a tensor whose first dimension is the batch.
fn row_values(tensor: &Tensor, row: usize) -> Vec<Value> {
    let w = tensor.row_width();
    let range = row * w..(row + 1) * w;
    match &tensor.data {
        TensorData::F32(d) => d
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|x| number(*x))
            .collect(),
        TensorData::I64(d) => d
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|x| Value::from(*x))
            .collect(),
        TensorData::Str(d) => d
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|x| Value::from(x.as_str()))
            .collect(),
    }
}

/// Sets the mapped fields of `record` from row `row` of the output tensors.
pub fn apply(
    mappings: &[OutputMapping],
    tensors: &HashMap<String, Tensor>,
    row: usize,
    record: &mut Record,
) {
    for m in mappings {
        let Some(tensor) = tensors.get(&m.tensor) else {
            continue;
        };
        let mut values = row_values(tensor, row);
        let value = match (&m.class, &m.classes) {
            (Some(class), classes) => {
                let index = match classes {
                    Some(names) => names.iter().position(|n| n == class),
                    None => class.parse::<usize>().ok(),
                };
                index
                    .and_then(|i| values.get(i).cloned())
                    .unwrap_or(Value::Null)
            }
            (None, Some(names)) => {
                Value::Object(names.iter().cloned().zip(values).collect::<Map<_, _>>())
            }
            (None, None) if values.len() == 1 => values.pop().unwrap_or(Value::Null),
            (None, None) => Value::Array(values),
        };
        record.insert(m.field.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(
        tensor: &str,
        field: &str,
        classes: Option<Vec<&str>>,
        class: Option<&str>,
    ) -> OutputMapping {
        OutputMapping {
            tensor: tensor.into(),
            field: field.into(),
            classes: classes.map(|c| c.into_iter().map(String::from).collect()),
            class: class.map(String::from),
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
            mapping(
                "probabilities",
                "p_fraud",
                Some(vec!["ok", "fraud"]),
                Some("fraud"),
            ),
            mapping("probabilities", "raw", None, None),
        ];
        let mut r = Record::new();
        apply(&mappings, &tensors, 0, &mut r);
        assert_eq!(
            Value::Object(r),
            serde_json::json!({"price": 1.5, "fraud": 0, "p": {"ok": 0.75, "fraud": 0.25}, "p_fraud": 0.25, "raw": [0.75, 0.25]})
        );
    }
}
