//! One field of a batch, column-wise: the values of its main type in an Arrow array, and the
//! few values that are not of that type (an explicit `null`, a string among numbers, a list)
//! kept beside them as JSON text, so that every record reads back exactly as it came.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt32Array};
use arrow_buffer::{BooleanBuffer, BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_select::filter::FilterPredicate;

mod builder;
mod marks;

pub use builder::{ColumnBuilder, Owned, TextColumn};
pub use marks::{exact_integers_within, mark_lengths, mark_values, marked};

use super::batch::{Batch, BatchBuilder};
use super::json;

/// How many fields a nested object's column takes before objects bringing new ones are kept
/// as JSON text (objects used as maps, with ids for keys, would otherwise widen it without end).
const MAX_NESTED_FIELDS: usize = 64;

/// The largest integer a float holds exactly: integers up to it may share a column with fractions.
const EXACT_IN_F64: i64 = 1 << 53;

/// One value of a record, borrowed from its batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// The record has no such field.
    Absent,
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// A nested object: row `row` of a batch of its fields.
    Object(Row<'a>),
    /// Any other value (a list, a number too large for an integer column, a value whose type
    /// differs from the rest of its column), as JSON text.
    Json(&'a str),
}

/// A record of a batch (or a nested object of one), by reference.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub batch: &'a Batch,
    pub row: usize,
}

impl PartialEq for Row<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

impl<'a> Row<'a> {
    /// The fields that are present, in column order.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let row = self.row;
        self.batch
            .fields()
            .iter()
            .map(move |f| (&*f.name, f.column.get(row)))
            .filter(|(_, v)| !matches!(v, Value::Absent))
    }

    pub fn get(&self, name: &str) -> Value<'a> {
        self.batch.column(name).map_or(Value::Absent, |c| c.get(self.row))
    }

    /// The record as a JSON object.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.fields().map(|(k, v)| (k.to_string(), v.to_json())).collect()
    }
}

impl Value<'_> {
    /// The value as a `serde_json` value (`Absent` becomes `null`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match *self {
            Value::Absent | Value::Null => J::Null,
            Value::Bool(b) => J::Bool(b),
            Value::Int(i) => J::from(i),
            Value::Float(x) => serde_json::Number::from_f64(x).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.to_string()),
            Value::Object(row) => J::Object(row.to_json()),
            Value::Json(text) => serde_json::from_str(text).unwrap_or(J::Null),
        }
    }

    /// Whether the record has the field, even as `null`.
    pub fn is_present(&self) -> bool {
        !matches!(self, Value::Absent)
    }

    /// Whether the value is missing or `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Absent | Value::Null)
    }
}

/// The main type of a column and its values; a slot that holds no value of this type is null.
#[derive(Debug, Clone)]
pub enum Typed {
    /// No value of any main type (every value is absent, or kept as JSON text).
    Empty(usize),
    Bool(BooleanArray),
    Int(Int64Array),
    Float(Float64Array),
    Str(StringArray),
    /// Nested objects: their fields as a batch, and which rows hold an object.
    Object(Box<Batch>, Option<NullBuffer>),
}

impl Typed {
    fn len(&self) -> usize {
        match self {
            Typed::Empty(n) => *n,
            Typed::Bool(a) => a.len(),
            Typed::Int(a) => a.len(),
            Typed::Float(a) => a.len(),
            Typed::Str(a) => a.len(),
            Typed::Object(b, _) => b.len(),
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Typed::Empty(_) => 0,
            Typed::Bool(_) => 1,
            Typed::Int(_) => 2,
            Typed::Float(_) => 3,
            Typed::Str(_) => 4,
            Typed::Object(..) => 5,
        }
    }
}

/// One field's values over the rows of a batch.
#[derive(Debug, Clone)]
pub struct Column {
    typed: Typed,
    /// In a float column that also took integers: the rows that hold one (read back as
    /// integers, exactly as written).
    ints: Option<BooleanArray>,
    /// The values that are not of the main type, as JSON text (null where there is none).
    other: Option<StringArray>,
}

/// Calls `f` with each row of an Arrow array that holds a value, in order.
pub fn each_valid<A: Array>(a: &A, mut f: impl FnMut(usize)) {
    match a.nulls() {
        None => (0..a.len()).for_each(&mut f),
        Some(n) if n.null_count() == n.len() => {}
        Some(n) => n.valid_indices().for_each(f),
    }
}

fn array_of<T: Array + Clone + 'static>(array: ArrayRef) -> T {
    array
        .as_any()
        .downcast_ref::<T>()
        .cloned()
        .expect("an Arrow kernel returns the type it was given")
}

fn valid(nulls: Option<&NullBuffer>, i: usize) -> bool {
    nulls.is_none_or(|n| n.is_valid(i))
}

fn bools(buffer: &BooleanBuffer) -> BooleanArray {
    BooleanArray::new(buffer.clone(), None)
}

impl Column {
    /// A column of `len` rows where no record has the field.
    pub fn absent(len: usize) -> Column {
        Column {
            typed: Typed::Empty(len),
            ints: None,
            other: None,
        }
    }

    pub fn floats(values: Float64Array) -> Column {
        Column {
            typed: Typed::Float(values),
            ints: None,
            other: None,
        }
    }

    pub fn ints(values: Int64Array) -> Column {
        Column {
            typed: Typed::Int(values),
            ints: None,
            other: None,
        }
    }

    pub fn strings(values: StringArray) -> Column {
        Column {
            typed: Typed::Str(values),
            ints: None,
            other: None,
        }
    }

    pub fn bools(values: BooleanArray) -> Column {
        Column {
            typed: Typed::Bool(values),
            ints: None,
            other: None,
        }
    }

    /// Nested objects, one per row of `fields`.
    pub fn objects(fields: Batch) -> Column {
        Column {
            typed: Typed::Object(Box::new(fields), None),
            ints: None,
            other: None,
        }
    }

    /// Nested objects in the rows where `present` says so; the others lack the field.
    pub fn objects_where(fields: Batch, present: &[bool]) -> Column {
        let nulls = NullBuffer::from(present.to_vec());
        Column {
            typed: Typed::Object(Box::new(fields), (nulls.null_count() > 0).then_some(nulls)),
            ints: None,
            other: None,
        }
    }

    /// The same string in each of `len` rows.
    pub fn repeated(value: &str, len: usize) -> Column {
        // Built whole rather than a row at a time: the text repeated, the offsets counted up.
        let step = i32::try_from(value.len()).unwrap_or(i32::MAX);
        match i32::try_from(len).ok().and_then(|n| step.checked_mul(n)) {
            Some(_) => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from_iter((0..=len as i32).map(|i| i * step)));
                let text = Buffer::from(value.repeat(len).into_bytes());
                // SAFETY: the text is `value` (a `str`) over and over, and every offset is a
                // multiple of its length, so each slice is whole UTF-8: what `new` would check,
                // at a cost per byte.
                Column::strings(unsafe { StringArray::new_unchecked(offsets, text, None) })
            }
            None => {
                let mut b = StringBuilder::new();
                b.append_value_n(value, len);
                Column::strings(b.finish())
            }
        }
    }

    /// The same value in each of `len` rows.
    pub fn same(value: &Owned<'_>, len: usize) -> Column {
        match value {
            Owned::Bool(b) => Column::bools(BooleanArray::from(vec![*b; len])),
            Owned::Int(i) => Column::ints(Int64Array::from(vec![*i; len])),
            Owned::Float(x) => Column::floats(Float64Array::from(vec![*x; len])),
            Owned::Str(s) => Column::repeated(s, len),
            Owned::Object(fields) => Column::objects(Batch::new(
                len,
                fields
                    .iter()
                    .map(|(name, v)| super::batch::Field {
                        name: name.as_ref().into(),
                        column: Column::same(v, len),
                    })
                    .collect(),
            )),
            Owned::Null | Owned::Json(_) => {
                let mut text = String::new();
                json::write_owned(value, &mut text);
                let mut other = StringBuilder::with_capacity(len, text.len() * len);
                other.append_value_n(&text, len);
                Column {
                    typed: Typed::Empty(len),
                    ints: None,
                    other: Some(other.finish()),
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.typed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn typed(&self) -> &Typed {
        &self.typed
    }

    /// The column's values when every one is of its main type (no JSON text beside them, no
    /// integers among fractions): what a tight loop over an Arrow array may read directly.
    pub fn plain(&self) -> Option<&Typed> {
        (self.ints.is_none() && !self.has_other()).then_some(&self.typed)
    }

    /// Whether some values are not of the column's main type (and are kept as JSON text).
    pub fn has_other(&self) -> bool {
        self.other.as_ref().is_some_and(|o| o.null_count() < o.len())
    }

    /// The value at row `i`.
    pub fn get(&self, i: usize) -> Value<'_> {
        let typed = match &self.typed {
            Typed::Empty(_) => None,
            Typed::Bool(a) => a.is_valid(i).then(|| Value::Bool(a.value(i))),
            Typed::Int(a) => a.is_valid(i).then(|| Value::Int(a.value(i))),
            Typed::Float(a) => a.is_valid(i).then(|| {
                let x = a.value(i);
                if self.ints.as_ref().is_some_and(|ints| ints.value(i)) {
                    // An integer in a column of fractions: it reads back as written.
                    Value::Int(x as i64)
                } else {
                    Value::Float(x)
                }
            }),
            Typed::Str(a) => a.is_valid(i).then(|| Value::Str(a.value(i))),
            Typed::Object(b, nulls) => valid(nulls.as_ref(), i).then_some(Value::Object(Row { batch: b, row: i })),
        };
        if let Some(v) = typed {
            return v;
        }
        match &self.other {
            Some(o) if o.is_valid(i) => match o.value(i) {
                "null" => Value::Null,
                text => Value::Json(text),
            },
            _ => Value::Absent,
        }
    }

    /// Calls `f` with each row that has the field and its value: the values of the main type
    /// first (a tight loop over the array), then the others. Rows without the field are not
    /// visited; the order is not the rows' order.
    pub fn each<'a>(&'a self, mut f: impl FnMut(usize, Value<'a>)) {
        match &self.typed {
            Typed::Empty(_) => {}
            Typed::Bool(a) => each_valid(a, |i| f(i, Value::Bool(a.value(i)))),
            Typed::Int(a) => {
                let values = a.values();
                each_valid(a, |i| f(i, Value::Int(values[i])))
            }
            Typed::Float(a) if self.ints.is_some() => each_valid(a, |i| f(i, self.get(i))),
            Typed::Float(a) => {
                let values = a.values();
                each_valid(a, |i| f(i, Value::Float(values[i])))
            }
            Typed::Str(a) => each_valid(a, |i| f(i, Value::Str(a.value(i)))),
            Typed::Object(b, nulls) => {
                for i in 0..b.len() {
                    if valid(nulls.as_ref(), i) {
                        f(i, Value::Object(Row { batch: b, row: i }));
                    }
                }
            }
        }
        if let Some(o) = &self.other {
            each_valid(o, |i| {
                f(
                    i,
                    match o.value(i) {
                        "null" => Value::Null,
                        text => Value::Json(text),
                    },
                )
            });
        }
    }

    /// Whether every record has the field (a value of the main type in each row, or an
    /// object): answered from the validity counts, without visiting the rows.
    pub fn all_present(&self) -> bool {
        let typed_nulls = match &self.typed {
            Typed::Empty(n) => *n,
            Typed::Bool(a) => a.null_count(),
            Typed::Int(a) => a.null_count(),
            Typed::Float(a) => a.null_count(),
            Typed::Str(a) => a.null_count(),
            Typed::Object(_, nulls) => nulls.as_ref().map_or(0, |n| n.null_count()),
        };
        typed_nulls == 0
    }

    /// Sets `marks[i]` for each row without a value of the main type (no such field, or a value
    /// of another type, kept as JSON text).
    pub fn mark_untyped(&self, marks: &mut [bool]) {
        let nulls = match &self.typed {
            Typed::Empty(_) => return marks.fill(true),
            Typed::Bool(a) => a.nulls(),
            Typed::Int(a) => a.nulls(),
            Typed::Float(a) => a.nulls(),
            Typed::Str(a) => a.nulls(),
            Typed::Object(_, nulls) => nulls.as_ref(),
        };
        if let Some(nulls) = nulls {
            marks.iter_mut().zip(nulls.iter()).for_each(|(m, valid)| *m |= !valid);
        }
    }

    /// Per row, whether the record has the field (even as `null`).
    pub fn presence(&self) -> Vec<bool> {
        let mut present = vec![false; self.len()];
        self.each(|i, _| present[i] = true);
        present
    }

    fn map_arrays(&self, f: &dyn Fn(&dyn Array) -> ArrayRef, rows: &dyn Fn(&Batch) -> Batch, len: usize) -> Column {
        let typed = match &self.typed {
            Typed::Empty(_) => Typed::Empty(len),
            Typed::Bool(a) => Typed::Bool(array_of(f(a))),
            Typed::Int(a) => Typed::Int(array_of(f(a))),
            Typed::Float(a) => Typed::Float(array_of(f(a))),
            Typed::Str(a) => Typed::Str(array_of(f(a))),
            Typed::Object(b, nulls) => {
                let nulls = nulls.as_ref().map(|n| {
                    let kept: BooleanArray = array_of(f(&bools(n.inner())));
                    // A row picked by a null index has no object either.
                    match kept.nulls() {
                        Some(picked) => NullBuffer::new(kept.values() & picked.inner()),
                        None => NullBuffer::new(kept.values().clone()),
                    }
                });
                Typed::Object(Box::new(rows(b)), nulls)
            }
        };
        Column {
            typed,
            ints: self.ints.as_ref().map(|i| array_of(f(i))),
            other: self.other.as_ref().map(|o| array_of(f(o))),
        }
    }

    /// The rows the predicate keeps.
    pub fn filter(&self, predicate: &FilterPredicate) -> Column {
        self.map_arrays(
            &|a| predicate.filter(a).expect("a filter of a column's own length"),
            &|b| b.filter_with(predicate),
            predicate.count(),
        )
    }

    /// The rows at `indices`, in that order.
    /// A null index picks a row without the field.
    pub fn take(&self, indices: &UInt32Array) -> Column {
        let mut column = self.map_arrays(
            &|a| arrow_select::take::take(a, indices, None).expect("indices within the column"),
            &|b| b.take(indices),
            indices.len(),
        );
        if let (Typed::Object(_, nulls @ None), Some(picked)) = (&mut column.typed, indices.nulls()) {
            *nulls = Some(picked.clone());
        }
        column
    }

    /// `len` rows from `offset`, without copying.
    pub fn slice(&self, offset: usize, len: usize) -> Column {
        let typed = match &self.typed {
            Typed::Empty(_) => Typed::Empty(len),
            Typed::Bool(a) => Typed::Bool(a.slice(offset, len)),
            Typed::Int(a) => Typed::Int(a.slice(offset, len)),
            Typed::Float(a) => Typed::Float(a.slice(offset, len)),
            Typed::Str(a) => Typed::Str(a.slice(offset, len)),
            Typed::Object(b, nulls) => Typed::Object(
                Box::new(b.slice(offset, len)),
                nulls.as_ref().map(|n| n.slice(offset, len)),
            ),
        };
        Column {
            typed,
            ints: self.ints.as_ref().map(|i| i.slice(offset, len)),
            other: self.other.as_ref().map(|o| o.slice(offset, len)),
        }
    }

    /// The columns one after the other (`None`: a part without this field, of that many rows).
    pub fn concat(parts: &[(Option<&Column>, usize)]) -> Column {
        let total: usize = parts.iter().map(|(_, n)| n).sum();
        let kinds: Vec<u8> = parts
            .iter()
            .filter_map(|(c, _)| c.map(|c| c.typed.kind()))
            .filter(|k| *k != 0)
            .collect();
        let first = kinds.first().copied().unwrap_or(0);
        if kinds.iter().any(|k| *k != first) {
            return Column::rebuilt(parts);
        }
        let other = parts
            .iter()
            .any(|(c, _)| c.is_some_and(|c| c.other.is_some()))
            .then(|| {
                let pieces: Vec<ArrayRef> = parts
                    .iter()
                    .map(|(c, n)| match c.and_then(|c| c.other.as_ref()) {
                        Some(o) => Arc::new(o.clone()) as ArrayRef,
                        None => arrow_array::new_null_array(&arrow_schema::DataType::Utf8, *n),
                    })
                    .collect();
                concat_arrays::<StringArray>(&pieces)
            });
        let ints = parts.iter().any(|(c, _)| c.is_some_and(|c| c.ints.is_some())).then(|| {
            let pieces: Vec<ArrayRef> = parts
                .iter()
                .map(|(c, n)| match c.and_then(|c| c.ints.as_ref()) {
                    Some(i) => Arc::new(i.clone()) as ArrayRef,
                    None => Arc::new(BooleanArray::from(vec![false; *n])) as ArrayRef,
                })
                .collect();
            concat_arrays::<BooleanArray>(&pieces)
        });
        let pieces = |data_type: arrow_schema::DataType| -> Vec<ArrayRef> {
            parts
                .iter()
                .map(|(c, n)| match c.map(|c| &c.typed) {
                    Some(Typed::Bool(a)) => Arc::new(a.clone()) as ArrayRef,
                    Some(Typed::Int(a)) => Arc::new(a.clone()) as ArrayRef,
                    Some(Typed::Float(a)) => Arc::new(a.clone()) as ArrayRef,
                    Some(Typed::Str(a)) => Arc::new(a.clone()) as ArrayRef,
                    _ => arrow_array::new_null_array(&data_type, *n),
                })
                .collect()
        };
        use arrow_schema::DataType as D;
        let typed = match first {
            0 => Typed::Empty(total),
            1 => Typed::Bool(concat_arrays(&pieces(D::Boolean))),
            2 => Typed::Int(concat_arrays(&pieces(D::Int64))),
            3 => Typed::Float(concat_arrays(&pieces(D::Float64))),
            4 => Typed::Str(concat_arrays(&pieces(D::Utf8))),
            _ => {
                let mut batches = Vec::with_capacity(parts.len());
                let mut validity = BooleanBufferBuilder::new(total);
                for (c, n) in parts {
                    match c.map(|c| &c.typed) {
                        Some(Typed::Object(b, nulls)) => {
                            batches.push(b.as_ref().clone());
                            match nulls {
                                Some(nb) => validity.append_buffer(nb.inner()),
                                None => validity.append_n(*n, true),
                            }
                        }
                        _ => {
                            batches.push(Batch::empty(*n));
                            validity.append_n(*n, false);
                        }
                    }
                }
                let nulls = NullBuffer::new(validity.finish());
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Typed::Object(Box::new(Batch::concat(&batches)), nulls)
            }
        };
        Column { typed, ints, other }
    }

    /// The parts' values pushed one by one: for parts whose columns hold different main types.
    fn rebuilt(parts: &[(Option<&Column>, usize)]) -> Column {
        let mut builder = ColumnBuilder::default();
        for (c, n) in parts {
            match c {
                Some(c) => {
                    for i in 0..*n {
                        builder.push(c.get(i));
                    }
                }
                None => builder.push_absent_n(*n),
            }
        }
        builder.finish()
    }
}

fn concat_arrays<T: Array + Clone + 'static>(pieces: &[ArrayRef]) -> T {
    let refs: Vec<&dyn Array> = pieces.iter().map(|a| a.as_ref()).collect();
    array_of(arrow_select::concat::concat(&refs).expect("pieces of one type"))
}
