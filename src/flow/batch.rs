//! A batch of records, column-wise: one [`Column`] per field name seen in the batch. A
//! fan-out copy shares the columns' buffers; filtering, picking rows, slicing and joining
//! batches work a column at a time.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, StringArray, UInt32Array};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_select::filter::{FilterBuilder, FilterPredicate};

use super::column::{Column, ColumnBuilder, Owned, Row, Typed};

/// A named column of a batch.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: Arc<str>,
    pub column: Column,
}

/// Records that travel together. To the user each is a JSON object; fields a record lacks are
/// absent from it, whatever other records hold.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    rows: usize,
    fields: Vec<Field>,
    /// The JSON text records were read from, while their fields from it are unchanged.
    source: Option<Source>,
}

/// Each record's own JSON text (null for a record not read from one), and the fields that were
/// read from those texts: a record's text holds exactly its values of these fields, so a
/// writer copies the text and adds only the other fields. Any change to one of these fields
/// drops the texts; row operations (filter, take, slice, concat) carry them along.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) texts: Column,
    pub(crate) decoded: Arc<[Arc<str>]>,
}

impl Source {
    pub(crate) fn reads(&self, name: &str) -> bool {
        self.decoded.iter().any(|d| &**d == name)
    }

    /// The texts of batches joined: a part without texts gives its rows none (they are written
    /// from their columns). They are kept only while no part with texts has, as a field of its
    /// own making, a field another part read from its texts: a writer copying that part's
    /// texts would leave the field out.
    fn concat(parts: &[&Batch]) -> Option<Source> {
        let mut decoded: Vec<Arc<str>> = Vec::new();
        for s in parts.iter().filter_map(|p| p.source.as_ref()) {
            for name in s.decoded.iter() {
                if !decoded.contains(name) {
                    decoded.push(name.clone());
                }
            }
        }
        if decoded.is_empty() {
            return None;
        }
        let made_where_read = parts.iter().any(|p| {
            p.source
                .as_ref()
                .is_some_and(|s| p.fields.iter().any(|f| !s.reads(&f.name) && decoded.contains(&f.name)))
        });
        // Joined, the texts must still fit one Arrow string array (2 GiB of text).
        let text_bytes: usize = parts
            .iter()
            .filter_map(|p| p.source.as_ref())
            .map(|s| match s.texts.typed() {
                Typed::Str(texts) => texts.value_data().len(),
                _ => 0,
            })
            .sum();
        if made_where_read || text_bytes > i32::MAX as usize {
            return None;
        }
        let pieces: Vec<(Option<&Column>, usize)> = parts
            .iter()
            .map(|p| (p.source.as_ref().map(|s| &s.texts), p.rows))
            .collect();
        Some(Source {
            texts: Column::concat(&pieces),
            decoded: decoded.into(),
        })
    }
}

impl Batch {
    /// `rows` records without fields (each `{}`).
    pub fn empty(rows: usize) -> Batch {
        Batch {
            rows,
            fields: Vec::new(),
            source: None,
        }
    }

    /// A batch of the given columns, which must all have `rows` rows.
    pub fn new(rows: usize, fields: Vec<Field>) -> Batch {
        debug_assert!(fields.iter().all(|f| f.column.len() == rows));
        Batch {
            rows,
            fields,
            source: None,
        }
    }

    /// The records as JSON objects.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a serde_json::Map<String, serde_json::Value>>,
    ) -> Batch {
        let mut builder = BatchBuilder::default();
        for record in records {
            builder.push_record(record);
        }
        builder.finish()
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.fields.iter().find(|f| &*f.name == name).map(|f| &f.column)
    }

    /// Record `i`.
    pub fn row(&self, i: usize) -> Row<'_> {
        Row { batch: self, row: i }
    }

    /// Record `i` as a JSON object.
    pub fn record(&self, i: usize) -> serde_json::Map<String, serde_json::Value> {
        self.row(i).to_json()
    }

    /// Every record as a JSON object.
    pub fn records(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        (0..self.rows).map(|i| self.record(i)).collect()
    }

    /// The records' own texts and the fields read from them, while those are unchanged.
    pub(crate) fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// A field read from the records' texts changes: the texts no longer say what they hold.
    fn changing(&mut self, name: &str) {
        if self.source.as_ref().is_some_and(|s| s.reads(name)) {
            self.source = None;
        }
    }

    /// Sets a field of every record (replacing the field if the batch has it).
    pub fn set(&mut self, name: &str, column: Column) {
        debug_assert_eq!(column.len(), self.rows);
        self.changing(name);
        match self.fields.iter_mut().find(|f| &*f.name == name) {
            Some(f) => f.column = column,
            None => self.fields.push(Field {
                name: name.into(),
                column,
            }),
        }
    }

    /// Sets a field where `column` has a value; records where it has none keep their own.
    pub fn overlay(&mut self, name: &str, column: Column) {
        let existing = match self.column(name) {
            Some(existing) if (0..self.rows).any(|i| !column.get(i).is_present()) => existing,
            _ => return self.set(name, column),
        };
        let mut merged = ColumnBuilder::default();
        for i in 0..self.rows {
            let value = column.get(i);
            merged.push(if value.is_present() { value } else { existing.get(i) });
        }
        self.set(name, merged.finish());
    }

    /// Removes a field from every record.
    pub fn remove(&mut self, name: &str) -> Option<Column> {
        let at = self.fields.iter().position(|f| &*f.name == name)?;
        self.changing(name);
        Some(self.fields.remove(at).column)
    }

    /// The records where `keep` is true (a null in `keep` drops the record).
    pub fn filter(&self, keep: &BooleanArray) -> Batch {
        let kept = keep.true_count();
        if kept == self.rows && keep.null_count() == 0 {
            return self.clone();
        }
        if kept == 0 {
            return Batch::empty(0).with_names_of(self);
        }
        self.filter_with(&FilterBuilder::new(keep).optimize().build())
    }

    pub(crate) fn filter_with(&self, predicate: &FilterPredicate) -> Batch {
        self.each_column(predicate.count(), |c| c.filter(predicate))
    }

    /// The batch of `rows` records whose every column (and text) is `f` of this one's.
    fn each_column(&self, rows: usize, f: impl Fn(&Column) -> Column) -> Batch {
        Batch {
            rows,
            fields: self
                .fields
                .iter()
                .map(|field| Field {
                    name: field.name.clone(),
                    column: f(&field.column),
                })
                .collect(),
            source: self.source.as_ref().map(|s| Source {
                texts: f(&s.texts),
                decoded: s.decoded.clone(),
            }),
        }
    }

    /// The records where `keep` is true, and the others.
    pub fn split(&self, keep: &BooleanArray) -> (Batch, Batch) {
        let kept = match keep.nulls() {
            Some(nulls) => keep.values() & nulls.inner(),
            None => keep.values().clone(),
        };
        let rest = BooleanArray::new(!&kept, None);
        (self.filter(&BooleanArray::new(kept, None)), self.filter(&rest))
    }

    /// The records at `indices`, in that order.
    pub fn take(&self, indices: &UInt32Array) -> Batch {
        self.each_column(indices.len(), |c| c.take(indices))
    }

    /// The records at the given positions, in that order.
    pub fn pick(&self, rows: &[usize]) -> Batch {
        if rows.len() == self.rows && rows.iter().enumerate().all(|(i, r)| i == *r) {
            return self.clone();
        }
        let indices: UInt32Array = rows.iter().map(|r| *r as u32).collect();
        self.take(&indices)
    }

    /// `len` records from `offset`, without copying.
    pub fn slice(&self, offset: usize, len: usize) -> Batch {
        self.each_column(len, |c| c.slice(offset, len))
    }

    /// Splits off the records from `at` on.
    pub fn split_off(&mut self, at: usize) -> Batch {
        let at = at.min(self.rows);
        let rest = self.slice(at, self.rows - at);
        *self = self.slice(0, at);
        rest
    }

    /// A batch with no records, keeping the field names.
    fn with_names_of(mut self, other: &Batch) -> Batch {
        self.fields = other
            .fields
            .iter()
            .map(|f| Field {
                name: f.name.clone(),
                column: Column::absent(0),
            })
            .collect();
        self
    }

    /// The records of every part, in order.
    pub fn concat(parts: &[Batch]) -> Batch {
        let parts: Vec<&Batch> = parts.iter().filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [] => return Batch::default(),
            [one] => return (*one).clone(),
            _ => {}
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        let mut names: Vec<Arc<str>> = Vec::new();
        for p in &parts {
            for f in &p.fields {
                if !names.contains(&f.name) {
                    names.push(f.name.clone());
                }
            }
        }
        let fields = names
            .into_iter()
            .map(|name| {
                let pieces: Vec<(Option<&Column>, usize)> = parts.iter().map(|p| (p.column(&name), p.rows)).collect();
                Field {
                    column: Column::concat(&pieces),
                    name,
                }
            })
            .collect();
        Batch {
            rows,
            fields,
            source: Source::concat(&parts),
        }
    }

    /// Adds the records of `other` after these.
    pub fn append(&mut self, other: Batch) {
        if self.is_empty() {
            *self = other;
        } else if !other.is_empty() {
            *self = Batch::concat(&[std::mem::take(self), other]);
        }
    }
}

impl PartialEq for Batch {
    /// The same records (as JSON objects), in the same order.
    fn eq(&self, other: &Batch) -> bool {
        self.rows == other.rows && self.records() == other.records()
    }
}

/// Builds a batch record by record.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    rows: usize,
    columns: Vec<(Arc<str>, ColumnBuilder)>,
    /// Where the next field is looked for first: records of a stream mostly list their fields
    /// in the same order.
    next: usize,
    /// Per column, the last record (counted from 1) that named it: a key given twice in one
    /// record is seen without comparing names.
    named: Vec<usize>,
    /// Records a decoder began and could not finish: left out when the batch is finished.
    abandoned: Vec<usize>,
    /// The column of each field of the record being added.
    at: Vec<usize>,
    /// The texts of the records read whole from one ([`keep_text`](Self::keep_text)), one
    /// after the other, and per such record its row and where its text ends.
    texts: String,
    kept: Vec<(usize, usize)>,
}

/// Whether two field names are the same. Names are mostly short: up to 16 bytes they are
/// compared as two (overlapping) words each, inline, where `==` calls `memcmp`. A decoder
/// looks up every key of every record: those calls were 4% of the async worker's time in the
/// Kafka benchmark.
#[inline]
pub(super) fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap_or_default());
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// Past this many fields, a batch builder is full, however few records it holds: records
/// whose field names differ from one to the next (an id as a key, say) would otherwise make a
/// batch of as many columns as records, and its cost grow with their square.
pub const MAX_FIELDS: usize = 256;

impl BatchBuilder {
    /// Records added so far (those abandoned not counted).
    pub fn len(&self) -> usize {
        self.rows - self.abandoned.len()
    }

    /// How many fields the batch being built has.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Whether it has as many fields as a batch should: the caller starts another.
    pub fn is_wide(&self) -> bool {
        self.columns.len() >= MAX_FIELDS
    }

    /// Whether every name is a field the batch already has.
    pub fn has_fields<'n>(&self, mut names: impl Iterator<Item = &'n str>) -> bool {
        names.all(|name| self.columns.iter().any(|(n, _)| &**n == name))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn index_of(&mut self, name: &str) -> usize {
        let at = match self.columns.get(self.next) {
            Some((n, _)) if same_name(n, name) => self.next,
            _ => match self.columns.iter().position(|(n, _)| same_name(n, name)) {
                Some(at) => at,
                None => {
                    let mut column = ColumnBuilder::default();
                    column.push_absent_n(self.rows);
                    self.columns.push((name.into(), column));
                    self.named.push(0);
                    self.columns.len() - 1
                }
            },
        };
        self.next = at + 1;
        at
    }

    /// Ends the record being built as one that is not to be kept (its text turned out not to
    /// be a record): the finished batch leaves it out.
    pub fn abandon_row(&mut self) {
        self.abandoned.push(self.rows);
        self.end_row();
    }

    /// The record added last is not to be kept after all.
    pub fn abandon_last(&mut self) {
        if self.rows > 0 {
            self.abandoned.push(self.rows - 1);
        }
    }

    /// The column of field `name`, for a value of the record being built; `None` when the
    /// record has set it already (a decoder then knows a key was given twice).
    pub fn field(&mut self, name: &str) -> Option<&mut ColumnBuilder> {
        let at = self.index_of(name);
        let column = &mut self.columns[at].1;
        (column.len() == self.rows).then_some(column)
    }

    /// Ends the record being built: fields it did not set are absent from it.
    pub fn end_row(&mut self) {
        let rows = self.rows;
        for (_, c) in &mut self.columns {
            if c.len() == rows {
                c.push_absent();
            }
        }
        self.rows += 1;
        self.next = 0;
    }

    /// One record from its fields; of a key given twice the last value counts, as in a JSON
    /// object read by most parsers.
    pub fn push_fields(&mut self, fields: &[(Cow<'_, str>, Owned<'_>)]) {
        let record = self.rows + 1;
        let mut at = std::mem::take(&mut self.at);
        at.clear();
        let mut duplicated = false;
        for (name, _) in fields {
            let i = self.index_of(name);
            duplicated |= self.named[i] == record;
            self.named[i] = record;
            at.push(i);
        }
        for (k, (_, value)) in fields.iter().enumerate() {
            if duplicated && at[k + 1..].contains(&at[k]) {
                continue;
            }
            self.columns[at[k]].1.push_owned(value);
        }
        self.at = at;
        self.end_row();
    }

    /// Keeps `text` as the JSON text of the record added last, which a decoder read from it
    /// with each field once: a writer may copy it rather than write the record's fields again.
    /// Text with a line break (pretty-printed) is not kept: written out, a record is one line.
    pub fn keep_text(&mut self, text: &str) {
        let Some(row) = self.rows.checked_sub(1) else { return };
        let text = text.trim_ascii();
        let whole = text.starts_with('{') && text.ends_with('}');
        if !whole
            || memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some()
            || self.kept.last().is_some_and(|k| k.0 == row)
        {
            return;
        }
        self.texts.push_str(text);
        self.kept.push((row, self.texts.len()));
    }

    /// One record from a JSON object.
    pub fn push_record(&mut self, record: &serde_json::Map<String, serde_json::Value>) {
        for (name, value) in record {
            if let Some(column) = self.field(name) {
                column.push_owned(&Owned::from_json(value));
            }
        }
        self.end_row();
    }

    pub fn finish(self) -> Batch {
        let source = (!self.kept.is_empty()).then(|| Source {
            texts: Column::strings(texts_array(self.rows, self.texts, &self.kept)),
            decoded: self.columns.iter().map(|(name, _)| name.clone()).collect(),
        });
        let batch = Batch {
            rows: self.rows,
            fields: self
                .columns
                .into_iter()
                .map(|(name, c)| Field {
                    name,
                    column: c.finish(),
                })
                .collect(),
            source,
        };
        if self.abandoned.is_empty() {
            return batch;
        }
        let mut keep = vec![true; batch.rows];
        for row in self.abandoned {
            keep[row] = false;
        }
        batch.filter(&BooleanArray::from(keep))
    }
}

/// `rows` texts from `texts`, where `kept` says (row, end) in order; null in the other rows.
fn texts_array(rows: usize, texts: String, kept: &[(usize, usize)]) -> StringArray {
    if i32::try_from(texts.len()).is_err() {
        // More text than one Arrow string array holds: not kept.
        return StringArray::new_null(rows);
    }
    let mut offsets = Vec::with_capacity(rows + 1);
    let mut valid = vec![false; rows];
    let (mut start, mut next) = (0usize, kept.iter().peekable());
    offsets.push(0i32);
    for (row, valid) in valid.iter_mut().enumerate() {
        if let Some(&(_, end)) = next.next_if(|(r, _)| *r == row) {
            start = end;
            *valid = true;
        }
        // Within the text's length, checked above.
        offsets.push(start as i32);
    }
    let nulls = NullBuffer::from(valid);
    // SAFETY: the offsets count up from 0 to the text's length, each at the end of a whole
    // `str` pushed onto `texts` (or repeating the one before, for a row without text): every
    // slice is whole UTF-8, which `new` would check again at a cost per byte.
    unsafe {
        StringArray::new_unchecked(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from(texts.into_bytes()),
            (nulls.null_count() > 0).then_some(nulls),
        )
    }
}
