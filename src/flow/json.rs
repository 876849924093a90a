//! Records as JSON text: one object read by `serde_json` straight into the columns of a batch
//! builder (or, the general way, into a list of its fields), and batch records written back as
//! JSON: a record whose fields from the text it was read from are unchanged as that text with
//! the fields added since, any other byte for byte as `serde_json` writes it.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use arrow_array::{Array, BooleanArray, StringArray};
use arrow_buffer::NullBuffer;

use super::batch::{Batch, BatchBuilder};
use super::column::{Column, ColumnBuilder, Owned, Row, Typed, Value};

/// The fields of one JSON object, in the order they were written.
pub type Fields<'a> = Vec<(Cow<'a, str>, Owned<'a>)>;

/// Reads one JSON object (surrounding whitespace allowed); the reason when the text is not one.
pub fn decode_object(text: &[u8]) -> Result<Fields<'_>, String> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = Owned::deserialize(&mut de).map_err(|e| format!("bad JSON: {e}"))?;
    de.end().map_err(|e| format!("bad JSON: {e}"))?;
    match value {
        Owned::Object(fields) => Ok(fields),
        other => Err(format!("a record must be a JSON object, found {}", kind(&other))),
    }
}

/// Reads one JSON object (surrounding whitespace allowed) straight into the columns of
/// `records`, as its next record, and keeps its text for writing it out again (see
/// [`BatchBuilder::keep_text`]); the reason when the text is not one, and then the batch
/// leaves out whatever of it was read.
pub fn decode_into(text: &[u8], records: &mut BatchBuilder) -> Result<(), String> {
    // UTF-8 checked once for the whole text, not string by string as the parser of bytes
    // does; text that is not UTF-8 is read as bytes, for the parser to say where it fails.
    match std::str::from_utf8(text) {
        Ok(checked) => {
            if decode_with(serde_json::Deserializer::from_str(checked), text, records)? {
                records.keep_text(checked);
            }
            Ok(())
        }
        Err(_) => decode_with(serde_json::Deserializer::from_slice(text), text, records).map(|_| ()),
    }
}

/// Whether the record's text says exactly what was read (no key given twice anywhere in it):
/// a key given twice among the fields read into columns has the record read again the
/// general way; one inside a value kept whole only leaves its text out.
fn decode_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    text: &[u8],
    records: &mut BatchBuilder,
) -> Result<bool, String> {
    let repeated = Cell::new(false);
    let read = de.deserialize_any(Top {
        records: &mut *records,
        repeated: &repeated,
    });
    match read {
        Ok(None) => match de.end() {
            Ok(()) => Ok(!repeated.get()),
            Err(e) => {
                records.abandon_last();
                Err(format!("bad JSON: {e}"))
            }
        },
        // Not an object: the whole text must still be JSON for that to be the reason.
        Ok(Some(found)) => match de.end() {
            Ok(()) => Err(format!("a record must be a JSON object, found {found}")),
            Err(e) => Err(format!("bad JSON: {e}")),
        },
        // A key given twice: read the record again the general way (its last value counts).
        Err(_) if repeated.get() => {
            let fields = decode_object(text)?;
            records.push_fields(&fields);
            Ok(false)
        }
        Err(e) => Err(format!("bad JSON: {e}")),
    }
}

/// The top of a record's text: an object goes into the batch (`None`); anything else is named.
struct Top<'b> {
    records: &'b mut BatchBuilder,
    repeated: &'b Cell<bool>,
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        match fields_into(map, self.records, self.repeated) {
            Ok(()) => {
                self.records.end_row();
                Ok(None)
            }
            Err(e) => {
                self.records.abandon_row();
                Err(e)
            }
        }
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        serde::de::IgnoredAny::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Some("an array"))
    }
}

/// Adds an object's fields to the record being built in `records`, value by value. A key the
/// record already has sets `repeated` and stops: the caller reads the record the general way.
fn fields_into<'de, A: MapAccess<'de>>(
    mut map: A,
    records: &mut BatchBuilder,
    repeated: &Cell<bool>,
) -> Result<(), A::Error> {
    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
        let Some(column) = records.field(&key) else {
            repeated.set(true);
            return Err(de::Error::custom("a key given twice"));
        };
        map.next_value_seed(Into { column, repeated })?;
    }
    Ok(())
}

/// One value, into its column.
struct Into<'c> {
    column: &'c mut ColumnBuilder,
    repeated: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Into<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Into<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.column.push_bool(v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.column.push_int(v);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(i) => self.column.push_int(i),
            Err(_) => self.column.push_owned(&Owned::Json(v.to_string())),
        }
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.column.push_float(v);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.column.push_str(v);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.column.push_owned(&Owned::Null);
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let list = Noted(self.repeated).visit_seq(seq)?;
        self.column.push_owned(&Owned::Json(list.to_string()));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let Some(nested) = self.column.nested_rows() else {
            // Not an object column (or one as wide as they get): the object as a whole.
            let object = OwnedVisitor(self.repeated).visit_map(map)?;
            self.column.push_owned(&object);
            return Ok(());
        };
        let read = fields_into(map, nested, self.repeated);
        nested.end_row();
        self.column.object_pushed();
        read
    }
}

fn kind(value: &Owned<'_>) -> &'static str {
    match value {
        Owned::Null => "null",
        Owned::Bool(_) => "a boolean",
        Owned::Int(_) | Owned::Float(_) => "a number",
        Owned::Str(_) => "a string",
        Owned::Object(_) => "an object",
        Owned::Json(text) if text.starts_with('[') => "an array",
        Owned::Json(_) => "a number",
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Owned<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OwnedVisitor(&Cell::new(false)))
    }
}

/// Reads a value as [`Owned`], setting the flag when an object in it gives a key twice.
struct OwnedVisitor<'r>(&'r Cell<bool>);

impl<'de> Visitor<'de> for OwnedVisitor<'_> {
    type Value = Owned<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Owned<'de>, E> {
        Ok(Owned::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Owned<'de>, E> {
        Ok(Owned::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Owned<'de>, E> {
        Ok(i64::try_from(v).map_or_else(|_| Owned::Json(v.to_string()), Owned::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Owned<'de>, E> {
        Ok(Owned::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Owned<'de>, E> {
        Ok(Owned::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Owned<'de>, E> {
        Ok(Owned::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Owned<'de>, E> {
        Ok(Owned::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Owned<'de>, E> {
        Ok(Owned::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Owned<'de>, E> {
        Ok(Owned::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Owned<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Owned<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value = map.next_value_seed(OwnedSeed(self.0))?;
            fields.push((key, value));
        }
        if !self.0.get() && gives_a_key_twice(&fields) {
            self.0.set(true);
        }
        Ok(Owned::Object(fields))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Owned<'de>, A::Error> {
        Ok(Owned::Json(Noted(self.0).visit_seq(seq)?.to_string()))
    }
}

/// Whether an object's fields name a key twice.
fn gives_a_key_twice(fields: &[(Cow<'_, str>, Owned<'_>)]) -> bool {
    if fields.len() <= 16 {
        return fields
            .iter()
            .enumerate()
            .any(|(i, (k, _))| fields[..i].iter().any(|(earlier, _)| earlier == k));
    }
    let mut seen = std::collections::HashSet::with_capacity(fields.len());
    !fields.iter().all(|(k, _)| seen.insert(k.as_ref()))
}

struct OwnedSeed<'r>(&'r Cell<bool>);

impl<'de> DeserializeSeed<'de> for OwnedSeed<'_> {
    type Value = Owned<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Owned<'de>, D::Error> {
        d.deserialize_any(OwnedVisitor(self.0))
    }
}

/// Reads a value as serde_json does (of a key given twice the last value counts), setting the
/// flag when an object in it gives a key twice.
#[derive(Clone, Copy)]
struct Noted<'r>(&'r Cell<bool>);

impl<'de> DeserializeSeed<'de> for Noted<'_> {
    type Value = serde_json::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Noted<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E: de::Error>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(value) = seq.next_element_seed(self)? {
            list.push(value);
        }
        Ok(serde_json::Value::Array(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value = map.next_value_seed(self)?;
            if object.insert(key.into_owned(), value).is_some() {
                self.0.set(true);
            }
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Writes `s` as a JSON string.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    // No early exit: the check compiles to a vector loop.
    let plain = !s
        .bytes()
        .fold(false, |escape, b| escape | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json's escaping, so text reads the same whichever path wrote it.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Writes a float as `serde_json` does, with the formatter it uses (`null` when not finite).
pub fn write_float_bytes(x: f64, out: &mut Vec<u8>) {
    if !x.is_finite() {
        out.extend_from_slice(b"null");
    } else {
        out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    }
}

/// [`write_float_bytes`] into a string.
pub fn write_float(x: f64, out: &mut String) {
    let mut bytes = Vec::new();
    write_float_bytes(x, &mut bytes);
    out.push_str(&String::from_utf8_lossy(&bytes));
}

fn write_value_bytes(value: Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Absent | Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::Float(x) => write_float_bytes(x, out),
        Value::Str(s) => write_str(s, out),
        Value::Object(row) => write_row(row, out),
        Value::Json(text) => out.extend_from_slice(text.as_bytes()),
    }
}

/// Writes one value as JSON text.
pub fn write_value(value: Value<'_>, out: &mut String) {
    let mut bytes = Vec::new();
    write_value_bytes(value, &mut bytes);
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// Writes a record (or nested object) as a JSON object.
pub fn write_row(row: Row<'_>, out: &mut Vec<u8>) {
    write_row_keyed(row, &Keys::of(row.batch), out);
}

/// The field names of a batch (and of its nested objects) as JSON keys, written once for all
/// its records.
struct Keys {
    own: Vec<Vec<u8>>,
    nested: Vec<Option<Keys>>,
}

impl Keys {
    fn of(batch: &Batch) -> Keys {
        let mut own = Vec::with_capacity(batch.fields().len());
        let mut nested = Vec::with_capacity(batch.fields().len());
        for f in batch.fields() {
            let mut key = Vec::with_capacity(f.name.len() + 3);
            write_str(&f.name, &mut key);
            key.push(b':');
            own.push(key);
            nested.push(match f.column.typed() {
                Typed::Object(fields, _) => Some(Keys::of(fields)),
                _ => None,
            });
        }
        Keys { own, nested }
    }
}

fn write_row_keyed(row: Row<'_>, keys: &Keys, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (k, f) in row.batch.fields().iter().enumerate() {
        let value = f.column.get(row.row);
        if !value.is_present() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(&keys.own[k]);
        match (value, &keys.nested[k]) {
            (Value::Object(inner), Some(nested)) => write_row_keyed(inner, nested, out),
            _ => write_value_bytes(value, out),
        }
    }
    out.push(b'}');
}

/// How the writer reads one column of a batch: a column whose values are all of its main type
/// straight from its Arrow buffers, any other through [`Column::get`].
enum Reader<'a> {
    /// No record has the field.
    Absent,
    Ints(&'a [i64], Option<&'a NullBuffer>),
    Floats(&'a [f64], Option<&'a NullBuffer>),
    Bools(&'a BooleanArray),
    Strs(&'a StringArray),
    Any(&'a Column),
}

/// Writes the records of one batch as JSON objects: the keys written once, each column's
/// kind decided once, not once a value. A record read from JSON text whose fields from it are
/// unchanged is that text, with the fields added since before its closing brace.
struct Writer<'a> {
    keys: Keys,
    readers: Vec<Reader<'a>>,
    /// The records' own texts, where they have them.
    texts: Option<&'a StringArray>,
    /// The fields that are not in those texts.
    added: Vec<usize>,
}

impl<'a> Writer<'a> {
    fn of(batch: &'a Batch) -> Writer<'a> {
        let readers = batch
            .fields()
            .iter()
            .map(|f| match f.column.plain() {
                // Plain: a slot without a value of the main type is a record without the field.
                Some(Typed::Empty(_)) => Reader::Absent,
                Some(Typed::Int(a)) => Reader::Ints(a.values(), a.nulls()),
                Some(Typed::Float(a)) => Reader::Floats(a.values(), a.nulls()),
                Some(Typed::Bool(a)) => Reader::Bools(a),
                Some(Typed::Str(a)) => Reader::Strs(a),
                _ => Reader::Any(&f.column),
            })
            .collect();
        let (texts, added) = match batch.source() {
            Some(source) => match source.texts.typed() {
                Typed::Str(texts) => (
                    Some(texts),
                    batch
                        .fields()
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| !source.reads(&f.name))
                        .map(|(k, _)| k)
                        .collect(),
                ),
                _ => (None, Vec::new()),
            },
            None => (None, Vec::new()),
        };
        Writer {
            keys: Keys::of(batch),
            readers,
            texts,
            added,
        }
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) {
        if let Some(text) = self.texts.filter(|t| t.is_valid(row)).map(|t| t.value(row).as_bytes()) {
            // `{...}`, kept only whole: all but the closing brace, then the fields added since.
            if let Some(open) = text.strip_suffix(b"}").filter(|o| o.starts_with(b"{")) {
                out.extend_from_slice(open);
                let mut first = open[1..].trim_ascii().is_empty();
                for &k in &self.added {
                    self.field(k, row, &mut first, out);
                }
                out.push(b'}');
                return;
            }
        }
        out.push(b'{');
        let mut first = true;
        for k in 0..self.readers.len() {
            self.field(k, row, &mut first, out);
        }
        out.push(b'}');
    }

    /// Writes field `k` of record `row` if the record has it, after a comma unless `first`.
    #[inline]
    fn field(&self, k: usize, row: usize, first: &mut bool, out: &mut Vec<u8>) {
        fn has(nulls: Option<&NullBuffer>, row: usize) -> bool {
            nulls.is_none_or(|n| n.is_valid(row))
        }
        let key = |out: &mut Vec<u8>, first: &mut bool| {
            if !*first {
                out.push(b',');
            }
            *first = false;
            out.extend_from_slice(&self.keys.own[k]);
        };
        match self.readers[k] {
            Reader::Absent => {}
            Reader::Ints(values, nulls) => {
                if has(nulls, row) {
                    key(out, first);
                    out.extend_from_slice(itoa::Buffer::new().format(values[row]).as_bytes());
                }
            }
            Reader::Floats(values, nulls) => {
                if has(nulls, row) {
                    key(out, first);
                    write_float_bytes(values[row], out);
                }
            }
            Reader::Bools(a) => {
                if a.is_valid(row) {
                    key(out, first);
                    out.extend_from_slice(if a.value(row) { b"true" } else { b"false" });
                }
            }
            Reader::Strs(a) => {
                if a.is_valid(row) {
                    key(out, first);
                    write_str(a.value(row), out);
                }
            }
            Reader::Any(column) => {
                let value = column.get(row);
                if value.is_present() {
                    key(out, first);
                    match (value, &self.keys.nested[k]) {
                        (Value::Object(inner), Some(nested)) => write_row_keyed(inner, nested, out),
                        _ => write_value_bytes(value, out),
                    }
                }
            }
        }
    }
}

/// Writes every record of a batch, one JSON object per line.
pub fn write_lines(batch: &Batch, out: &mut Vec<u8>) {
    let writer = Writer::of(batch);
    for i in 0..batch.len() {
        writer.write(i, out);
        out.push(b'\n');
    }
}

/// Every record of a batch as JSON text, all in one buffer: what a producer sends as one
/// message each. Filled again for each batch, it keeps its buffers.
#[derive(Debug, Default)]
pub struct RecordTexts {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl RecordTexts {
    /// Record `i`'s text.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The records of `batch` in place of what it held.
    pub fn fill(&mut self, batch: &Batch) {
        self.text.clear();
        self.ends.clear();
        let writer = Writer::of(batch);
        for i in 0..batch.len() {
            writer.write(i, &mut self.text);
            self.ends.push(self.text.len());
        }
    }
}

/// Record `i` as JSON text.
pub fn record_text(batch: &Batch, i: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_row(batch.row(i), &mut out);
    out
}

/// Writes a decoded value back as JSON text.
pub fn write_owned(value: &Owned<'_>, out: &mut String) {
    match value {
        Owned::Null => out.push_str("null"),
        Owned::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Owned::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Owned::Float(x) => write_float(*x, out),
        Owned::Str(s) => out.push_str(&serde_json::to_string(s.as_ref()).unwrap_or_default()),
        Owned::Json(text) => out.push_str(text),
        Owned::Object(fields) => {
            out.push('{');
            let mut first = true;
            for (i, (k, v)) in fields.iter().enumerate() {
                // A key given twice: its first place, its last value (as serde_json reads it).
                if fields[..i].iter().any(|(earlier, _)| earlier == k) {
                    continue;
                }
                let v = fields[i + 1..]
                    .iter()
                    .rev()
                    .find(|(later, _)| later == k)
                    .map_or(v, |(_, v)| v);
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&serde_json::to_string(k.as_ref()).unwrap_or_default());
                out.push(':');
                write_owned(v, out);
            }
            out.push('}');
        }
    }
}
