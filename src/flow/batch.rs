//! A batch of records, column-wise: one [`Column`] per field name seen in the batch. A
//! fan-out copy shares the columns' buffers; filtering, picking rows, slicing and joining
//! batches work a column at a time.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, UInt32Array};
use arrow_select::filter::{FilterBuilder, FilterPredicate};

use super::column::{Column, ColumnBuilder, Owned, Row};

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
}

impl Batch {
    /// `rows` records without fields (each `{}`).
    pub fn empty(rows: usize) -> Batch {
        Batch {
            rows,
            fields: Vec::new(),
        }
    }

    /// A batch of the given columns, which must all have `rows` rows.
    pub fn new(rows: usize, fields: Vec<Field>) -> Batch {
        debug_assert!(fields.iter().all(|f| f.column.len() == rows));
        Batch { rows, fields }
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

    /// Sets a field of every record (replacing the field if the batch has it).
    pub fn set(&mut self, name: &str, column: Column) {
        debug_assert_eq!(column.len(), self.rows);
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
        Batch {
            rows: predicate.count(),
            fields: self
                .fields
                .iter()
                .map(|f| Field {
                    name: f.name.clone(),
                    column: f.column.filter(predicate),
                })
                .collect(),
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
        Batch {
            rows: indices.len(),
            fields: self
                .fields
                .iter()
                .map(|f| Field {
                    name: f.name.clone(),
                    column: f.column.take(indices),
                })
                .collect(),
        }
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
        Batch {
            rows: len,
            fields: self
                .fields
                .iter()
                .map(|f| Field {
                    name: f.name.clone(),
                    column: f.column.slice(offset, len),
                })
                .collect(),
        }
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
        Batch { rows, fields }
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
            Some((n, _)) if &**n == name => self.next,
            _ => match self.columns.iter().position(|(n, _)| &**n == name) {
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
