//! Building a column value by value: its main type is the first value's, values of other
//! types are kept as JSON text beside it, and a float column remembers which rows were
//! integers.

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{BooleanArray, StringArray};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

use super::{json, BatchBuilder, Column, Typed, Value, EXACT_IN_F64, MAX_NESTED_FIELDS};

/// Builds a column value by value, choosing its main type from the first value and keeping
/// values of other types as JSON text.
#[derive(Debug, Default)]
pub struct ColumnBuilder {
    typed: TypedBuilder,
    /// In a float column that took integers: per row, whether it holds one.
    ints: Option<BooleanBufferBuilder>,
    other: Option<StringBuilder>,
    len: usize,
}

/// A `push_*` method whose common case (a column of this type and no other) is inlined where
/// it is called; everything else goes to `$any`.
macro_rules! fast_push {
    ($name:ident, $any:ident, $variant:ident, $t:ty) => {
        #[inline(always)]
        pub fn $name(&mut self, value: $t) {
            if let (TypedBuilder::$variant(b), None, None) = (&mut self.typed, &self.other, &self.ints) {
                b.append_value(value);
                self.len += 1;
                return;
            }
            self.$any(value)
        }
    };
}

#[derive(Debug, Default)]
enum TypedBuilder {
    #[default]
    Empty,
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
    Object(Box<BatchBuilder>, BooleanBufferBuilder),
}

/// A value to push that is not a borrowed batch value: what a decoder or a producer has.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(std::borrow::Cow<'a, str>),
    Object(Vec<(std::borrow::Cow<'a, str>, Owned<'a>)>),
    /// JSON text of a value that is none of the above (a list, a very large number).
    Json(String),
}

impl<'a> Owned<'a> {
    /// A `serde_json` value, borrowing its strings.
    pub fn from_json(value: &'a serde_json::Value) -> Owned<'a> {
        use serde_json::Value as J;
        match value {
            J::Null => Owned::Null,
            J::Bool(b) => Owned::Bool(*b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Owned::Int(i)
                } else if n.is_u64() {
                    Owned::Json(n.to_string())
                } else {
                    Owned::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            J::String(s) => Owned::Str(s.as_str().into()),
            J::Array(_) => Owned::Json(value.to_string()),
            J::Object(map) => Owned::Object(
                map.iter()
                    .map(|(k, v)| (k.as_str().into(), Owned::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The value as a `serde_json` value.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Owned::Null => J::Null,
            Owned::Bool(b) => J::Bool(*b),
            Owned::Int(i) => J::from(*i),
            Owned::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Owned::Str(s) => J::String(s.to_string()),
            Owned::Object(fields) => J::Object(fields.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect()),
            Owned::Json(text) => serde_json::from_str(text).unwrap_or(J::Null),
        }
    }

    /// A batch value, borrowing its strings.
    pub fn from_value(value: Value<'a>) -> Option<Owned<'a>> {
        Some(match value {
            Value::Absent => return None,
            Value::Null => Owned::Null,
            Value::Bool(b) => Owned::Bool(b),
            Value::Int(i) => Owned::Int(i),
            Value::Float(x) => Owned::Float(x),
            Value::Str(s) => Owned::Str(s.into()),
            Value::Object(row) => Owned::Object(
                row.fields()
                    .filter_map(|(k, v)| Owned::from_value(v).map(|v| (k.into(), v)))
                    .collect(),
            ),
            Value::Json(text) => Owned::Json(text.to_string()),
        })
    }
}

impl ColumnBuilder {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_absent(&mut self) {
        self.push_absent_n(1);
    }

    pub fn push_absent_n(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        match &mut self.typed {
            TypedBuilder::Empty => {}
            TypedBuilder::Bool(b) => b.append_nulls(n),
            TypedBuilder::Int(b) => b.append_nulls(n),
            TypedBuilder::Float(b) => b.append_nulls(n),
            TypedBuilder::Str(b) => b.append_nulls(n),
            TypedBuilder::Object(b, validity) => {
                for _ in 0..n {
                    b.end_row();
                }
                validity.append_n(n, false);
            }
        }
        if let Some(o) = &mut self.other {
            o.append_nulls(n);
        }
        if let Some(ints) = &mut self.ints {
            ints.append_n(n, false);
        }
        self.len += n;
    }

    /// Starts the main type with the rows so far as absent.
    fn start(&mut self, typed: TypedBuilder) {
        self.typed = typed;
        let n = self.len;
        self.len = 0;
        let other = self.other.take();
        self.push_absent_n(n);
        self.other = other;
    }

    /// A value of another type than the column's: kept as JSON text.
    fn push_other(&mut self, text: &str) {
        let len = self.len;
        let other = self.other.get_or_insert_with(|| {
            let mut b = StringBuilder::new();
            b.append_nulls(len);
            b
        });
        other.append_value(text);
        if let Some(ints) = &mut self.ints {
            ints.append(false);
        }
        match &mut self.typed {
            TypedBuilder::Empty => {}
            TypedBuilder::Bool(b) => b.append_null(),
            TypedBuilder::Int(b) => b.append_null(),
            TypedBuilder::Float(b) => b.append_null(),
            TypedBuilder::Str(b) => b.append_null(),
            TypedBuilder::Object(b, validity) => {
                b.end_row();
                validity.append(false);
            }
        }
        self.len += 1;
    }

    #[inline]
    fn typed_pushed(&mut self) {
        if let Some(o) = &mut self.other {
            o.append_null();
        }
        if let Some(ints) = &mut self.ints {
            ints.append(false);
        }
        self.len += 1;
    }

    /// An integer went into this float column.
    fn int_pushed(&mut self) {
        let len = self.len;
        self.ints
            .get_or_insert_with(|| {
                let mut b = BooleanBufferBuilder::new(len + 1);
                b.append_n(len, false);
                b
            })
            .append(true);
        if let Some(o) = &mut self.other {
            o.append_null();
        }
        self.len += 1;
    }

    /// An integer column turned into a float column (its integers fit exactly).
    fn ints_to_floats(&mut self) -> bool {
        let TypedBuilder::Int(ints) = &mut self.typed else {
            return false;
        };
        let done = ints.finish();
        if done.iter().flatten().any(|i| i.unsigned_abs() > EXACT_IN_F64 as u64) {
            // Put them back: the new value becomes JSON text instead.
            for v in done.iter() {
                ints.append_option(v);
            }
            return false;
        }
        let mut floats = Float64Builder::with_capacity(done.len());
        let mut flags = BooleanBufferBuilder::new(done.len());
        for v in done.iter() {
            floats.append_option(v.map(|i| i as f64));
            flags.append(v.is_some());
        }
        self.typed = TypedBuilder::Float(floats);
        self.ints = Some(flags);
        true
    }

    fast_push!(push_int, push_int_any, Int, i64);

    #[inline(never)]
    fn push_int_any(&mut self, i: i64) {
        match &mut self.typed {
            TypedBuilder::Empty => {
                self.start(TypedBuilder::Int(Int64Builder::new()));
                self.push_int(i);
            }
            TypedBuilder::Int(b) => {
                b.append_value(i);
                self.typed_pushed();
            }
            TypedBuilder::Float(b) if i.unsigned_abs() <= EXACT_IN_F64 as u64 => {
                b.append_value(i as f64);
                self.int_pushed();
            }
            _ => self.push_other(itoa::Buffer::new().format(i)),
        }
    }

    fast_push!(push_float, push_float_any, Float, f64);

    #[inline(never)]
    fn push_float_any(&mut self, x: f64) {
        if matches!(self.typed, TypedBuilder::Int(_)) && self.ints_to_floats() {
            return self.push_float(x);
        }
        match &mut self.typed {
            TypedBuilder::Empty => {
                self.start(TypedBuilder::Float(Float64Builder::new()));
                self.push_float(x);
            }
            TypedBuilder::Float(b) => {
                b.append_value(x);
                self.typed_pushed();
            }
            _ => {
                let mut text = String::new();
                json::write_float(x, &mut text);
                self.push_other(&text)
            }
        }
    }

    /// Appends a value taken from a batch (`Absent` leaves the field out of the record).
    pub fn push(&mut self, value: Value<'_>) {
        match value {
            Value::Absent => self.push_absent(),
            Value::Null => self.push_other("null"),
            Value::Bool(b) => self.push_bool(b),
            Value::Int(i) => self.push_int(i),
            Value::Float(x) => self.push_float(x),
            Value::Str(s) => self.push_str(s),
            Value::Json(text) => self.push_other(text),
            Value::Object(row) => match &mut self.typed {
                TypedBuilder::Empty | TypedBuilder::Object(..) => {
                    let fields: Vec<_> = row
                        .fields()
                        .filter_map(|(k, v)| Owned::from_value(v).map(|v| (k.into(), v)))
                        .collect();
                    self.push_object(&fields);
                }
                _ => {
                    let mut text = String::new();
                    json::write_value(value, &mut text);
                    self.push_other(&text);
                }
            },
        }
    }

    fast_push!(push_bool, push_bool_any, Bool, bool);

    #[inline(never)]
    fn push_bool_any(&mut self, v: bool) {
        match &mut self.typed {
            TypedBuilder::Empty => {
                self.start(TypedBuilder::Bool(BooleanBuilder::new()));
                self.push_bool(v);
            }
            TypedBuilder::Bool(b) => {
                b.append_value(v);
                self.typed_pushed();
            }
            _ => self.push_other(if v { "true" } else { "false" }),
        }
    }

    fast_push!(push_str, push_str_any, Str, &str);

    #[inline(never)]
    fn push_str_any(&mut self, s: &str) {
        match &mut self.typed {
            TypedBuilder::Empty => {
                self.start(TypedBuilder::Str(StringBuilder::new()));
                self.push_str(s);
            }
            TypedBuilder::Str(b) => {
                b.append_value(s);
                self.typed_pushed();
            }
            _ => {
                let text = serde_json::to_string(s).unwrap_or_default();
                self.push_other(&text)
            }
        }
    }

    /// The nested rows of an object column, for a decoder to add an object's fields to directly
    /// (then [`ColumnBuilder::object_pushed`]); `None` when the column holds other values or is
    /// as wide as a nested object's column gets (the object then goes as a whole, by `push_owned`).
    pub fn nested_rows(&mut self) -> Option<&mut BatchBuilder> {
        if matches!(self.typed, TypedBuilder::Empty) {
            self.start(TypedBuilder::Object(Box::default(), BooleanBufferBuilder::new(0)));
        }
        match &mut self.typed {
            TypedBuilder::Object(b, _) if b.width() < MAX_NESTED_FIELDS => Some(b),
            _ => None,
        }
    }

    /// An object was added to the nested rows: this row has it.
    pub fn object_pushed(&mut self) {
        if let TypedBuilder::Object(_, validity) = &mut self.typed {
            validity.append(true);
            self.typed_pushed();
        }
    }

    fn push_object(&mut self, fields: &[(std::borrow::Cow<'_, str>, Owned<'_>)]) {
        match &mut self.typed {
            TypedBuilder::Empty => {
                self.start(TypedBuilder::Object(Box::default(), BooleanBufferBuilder::new(0)));
                self.push_object(fields);
            }
            // Objects whose keys keep changing stay JSON text once their column is wide.
            TypedBuilder::Object(b, _)
                if b.width() >= MAX_NESTED_FIELDS && !b.has_fields(fields.iter().map(|(k, _)| k.as_ref())) =>
            {
                let mut text = String::new();
                json::write_owned(&Owned::Object(fields.to_vec()), &mut text);
                self.push_other(&text);
            }
            TypedBuilder::Object(b, validity) => {
                b.push_fields(fields);
                validity.append(true);
                self.typed_pushed();
            }
            _ => {
                let mut text = String::new();
                json::write_owned(&Owned::Object(fields.to_vec()), &mut text);
                self.push_other(&text);
            }
        }
    }

    /// Appends a value a decoder or producer has.
    pub fn push_owned(&mut self, value: &Owned<'_>) {
        match value {
            Owned::Null => self.push_other("null"),
            Owned::Bool(b) => self.push_bool(*b),
            Owned::Int(i) => self.push_int(*i),
            Owned::Float(x) => self.push_float(*x),
            Owned::Str(s) => self.push_str(s),
            Owned::Object(fields) => self.push_object(fields),
            Owned::Json(text) => self.push_other(text),
        }
    }

    pub fn finish(mut self) -> Column {
        let len = self.len;
        let typed = match &mut self.typed {
            TypedBuilder::Empty => Typed::Empty(len),
            TypedBuilder::Bool(b) => Typed::Bool(b.finish()),
            TypedBuilder::Int(b) => Typed::Int(b.finish()),
            TypedBuilder::Float(b) => Typed::Float(b.finish()),
            TypedBuilder::Str(b) => Typed::Str(b.finish()),
            TypedBuilder::Object(b, validity) => {
                let fields = std::mem::take(b).finish();
                let nulls = NullBuffer::new(validity.finish());
                Typed::Object(Box::new(fields), (nulls.null_count() > 0).then_some(nulls))
            }
        };
        Column {
            typed,
            ints: self.ints.as_mut().map(|i| BooleanArray::new(i.finish(), None)),
            other: self.other.as_mut().map(|o| o.finish()),
        }
    }
}

/// Builds a column of strings, every row holding one: the text appended to one buffer and the
/// offsets counted, with none of a general builder's per-value checks (for a producer that
/// knows each value is a string, such as the generator).
#[derive(Debug)]
pub struct TextColumn {
    text: String,
    offsets: Vec<i32>,
}

impl Default for TextColumn {
    fn default() -> Self {
        TextColumn::with_capacity(0, 0)
    }
}

impl TextColumn {
    /// Offsets always start with the 0 the first string starts at.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        TextColumn {
            text: String::with_capacity(bytes),
            offsets,
        }
    }

    /// Appends the next row's string; `false` (and nothing appended) once the text would
    /// outgrow the 32-bit offsets of an Arrow string array.
    #[inline(always)]
    pub fn push(&mut self, value: &str) -> bool {
        match i32::try_from(self.text.len() + value.len()) {
            Ok(end) => {
                self.text.push_str(value);
                self.offsets.push(end);
                true
            }
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn finish(self) -> Column {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        let text = Buffer::from(self.text.into_bytes());
        // SAFETY: the offsets start at 0, never decrease (each is the text's length after a
        // push) and end at the text's length, and each marks the end of a whole `str` appended
        // to a `String`: every slice is whole UTF-8, what `new` would check at a cost per byte.
        Column::strings(unsafe { StringArray::new_unchecked(offsets, text, None) })
    }
}
