//! Output tensors → record fields: a regression value, a label, class probabilities.

use std::borrow::Cow;
use std::collections::HashMap;

use arrow_array::{Float64Array, Int64Array, StringArray};

use crate::flow::{Batch, Column, ColumnBuilder, Owned};
use crate::models::config::OutputMapping;
use crate::models::{Tensor, TensorData};

fn number(x: f32) -> Owned<'static> {
    if x.is_finite() {
        Owned::Float(f64::from(x))
    } else {
        Owned::Null
    }
}

/// Value `i` of a tensor.
fn value_at(tensor: &Tensor, i: usize) -> Owned<'_> {
    match &tensor.data {
        TensorData::F32(d) => d.get(i).map_or(Owned::Null, |x| number(*x)),
        TensorData::I64(d) => d.get(i).map_or(Owned::Null, |x| Owned::Int(*x)),
        TensorData::Str(d) => d.get(i).map_or(Owned::Null, |x| Owned::Str(Cow::Borrowed(x.as_str()))),
    }
}

/// One output mapping, resolved against the tensors of one batch.
#[derive(Clone, Copy)]
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

/// The value a mapping gives record `row`.
fn mapped<'a>(r: &Resolved<'a>, row: usize) -> Owned<'a> {
    let start = row * r.width;
    match (r.column, &r.mapping.classes) {
        (Some(c), _) if c < r.width => value_at(r.tensor, start + c),
        (Some(_), _) => Owned::Null,
        (None, Some(names)) => Owned::Object(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (Cow::Borrowed(n.as_str()), value_at(r.tensor, start + i)))
                .collect(),
        ),
        (None, None) if r.width == 1 => value_at(r.tensor, start),
        (None, None) => {
            let mut text = String::from("[");
            for i in start..start + r.width {
                if i > start {
                    text.push(',');
                }
                crate::flow::json::write_owned(&value_at(r.tensor, i), &mut text);
            }
            text.push(']');
            Owned::Json(text)
        }
    }
}

/// The output fields of a batch's records, built one record at a time and then set on the
/// batch. A field whose tensor an answer lacks keeps what the record had.
pub struct OutputColumns {
    fields: Vec<(String, ColumnBuilder)>,
    rows: usize,
}

impl OutputColumns {
    pub fn new(mappings: &[OutputMapping]) -> Self {
        let mut fields: Vec<(String, ColumnBuilder)> = Vec::new();
        for m in mappings {
            if !fields.iter().any(|(f, _)| *f == m.field) {
                fields.push((m.field.clone(), ColumnBuilder::default()));
            }
        }
        OutputColumns { fields, rows: 0 }
    }

    /// Sets the next record's fields from row `row` of an answer; with `value`, the fields
    /// mapped from that tensor take that value instead (a combined answer).
    pub fn push(&mut self, resolved: &[Resolved<'_>], row: usize, value: Option<(&str, f64)>) {
        for (k, r) in resolved.iter().enumerate() {
            // Of two mappings to one field, the later wins.
            if resolved[k + 1..]
                .iter()
                .any(|later| later.mapping.field == r.mapping.field)
            {
                continue;
            }
            let Some((_, column)) = self.fields.iter_mut().find(|(f, _)| *f == r.mapping.field) else {
                continue;
            };
            match value {
                Some((tensor, v)) if tensor == r.mapping.tensor => {
                    column.push_owned(&if v.is_finite() { Owned::Float(v) } else { Owned::Null })
                }
                _ => column.push_owned(&mapped(r, row)),
            }
        }
        self.rows += 1;
        for (_, column) in &mut self.fields {
            if column.len() < self.rows {
                column.push_absent();
            }
        }
    }

    /// Sets the fields on the batch the records are in (one pushed record per batch record).
    pub fn finish(self, batch: &mut Batch) {
        for (name, column) in self.fields {
            batch.overlay(&name, column.finish());
        }
    }
}

/// A mapping's values for rows `0..n` as one column, when each is a single tensor value.
fn scalar_column(r: &Resolved<'_>, n: usize) -> Option<Column> {
    let column = match r.column {
        Some(c) if c < r.width => c,
        Some(_) => return None,
        None if r.width == 1 && r.mapping.classes.is_none() => 0,
        None => return None,
    };
    let at = (0..n).map(|row| row * r.width + column);
    Some(match &r.tensor.data {
        TensorData::F32(d) => Column::floats(
            at.map(|i| d.get(i).filter(|x| x.is_finite()).map(|x| f64::from(*x)))
                .collect::<Float64Array>(),
        ),
        TensorData::I64(d) => Column::ints(at.map(|i| d.get(i).copied()).collect::<Int64Array>()),
        TensorData::Str(d) => Column::strings(at.map(|i| d.get(i).map(String::as_str)).collect::<StringArray>()),
    })
}

/// Sets the mapped fields of every record of `batch` from the same rows of the output tensors.
pub fn apply(resolved: &[Resolved<'_>], batch: &mut Batch, outputs: &[OutputMapping]) {
    let n = batch.len();
    let mut rest: Vec<Resolved<'_>> = Vec::new();
    for (k, r) in resolved.iter().enumerate() {
        // Of two mappings to one field, the later wins.
        if resolved[k + 1..]
            .iter()
            .any(|later| later.mapping.field == r.mapping.field)
        {
            continue;
        }
        match scalar_column(r, n).filter(|c| !has_nulls(c)) {
            Some(column) => batch.set(&r.mapping.field, column),
            None => rest.push(*r),
        }
    }
    if rest.is_empty() {
        return;
    }
    let mut columns = OutputColumns::new(outputs);
    for row in 0..n {
        columns.push(&rest, row, None);
    }
    columns.finish(batch);
}

/// Whether some value is missing (a non-finite float): such a column goes the slow way, which
/// writes `null` as the record-at-a-time path does.
fn has_nulls(column: &Column) -> bool {
    column.presence().iter().any(|p| !p)
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
        let mut batch = Batch::from_records([serde_json::json!({"id": 1}).as_object().expect("object")]);
        apply(&resolve(&mappings, &tensors), &mut batch, &mappings);
        assert_eq!(
            serde_json::Value::Object(batch.record(0)),
            serde_json::json!({"id": 1, "price": 1.5, "fraud": 0, "p": {"ok": 0.75, "fraud": 0.25}, "p_fraud": 0.25, "raw": [0.75, 0.25]})
        );
    }
}
