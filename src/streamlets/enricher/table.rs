//! An enricher's table: loaded from a file (CSV or JSON lines, bad rows reported and skipped)
//! or filled from a topic, kept column-wise for the join, and joined with batches by key.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use arrow_array::BooleanArray;
use serde_json::{Map, Value};

use super::config::{EnricherConfig, MissingKey, TableConfig};
use crate::flow::{Batch, ColumnBuilder, Owned, Value as FlowValue};
use crate::formats::csv::CsvRows;
use crate::formats::{ColumnType, Format, Malformed};

/// A loaded table: the added fields' names, and each row's values of them, by key.
#[derive(Debug, Default)]
pub struct Table {
    pub fields: Vec<String>,
    rows: HashMap<String, Box<[Value]>, foldhash::fast::RandomState>,
    /// A table file's rows column-wise, with each key's row number: a join then picks rows
    /// of whole columns. (A table topic changes row by row, and joins record by record.)
    columns: Option<Columns>,
}

#[derive(Debug)]
struct Columns {
    row_of: HashMap<String, u32, foldhash::fast::RandomState>,
    rows: Batch,
}

impl Columns {
    fn of(table: &Table) -> Columns {
        let mut row_of = HashMap::default();
        let mut rows = crate::flow::BatchBuilder::default();
        for (i, (key, values)) in table.rows.iter().enumerate() {
            row_of.insert(key.clone(), i as u32);
            let fields: Vec<_> = table
                .fields
                .iter()
                .zip(values.iter())
                .map(|(f, v)| (f.as_str().into(), Owned::from_json(v)))
                .collect();
            rows.push_fields(&fields);
        }
        Columns {
            row_of,
            rows: rows.finish(),
        }
    }
}

/// What loading a table found wrong with some rows (they were skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct RowProblem {
    pub line: u64,
    pub reason: String,
}

/// Joins key parts into one lookup key (the unit separator cannot be in CSV text by accident).
fn join_key<'a>(parts: impl Iterator<Item = &'a Value>) -> Option<String> {
    let mut key = String::new();
    for (i, part) in parts.enumerate() {
        if i > 0 {
            key.push('\u{1f}');
        }
        match part {
            Value::String(s) => key.push_str(s),
            Value::Null => return None,
            other => key.push_str(&other.to_string()),
        }
    }
    Some(key)
}

impl Table {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// An empty table of these fields, for a table topic to fill.
    pub fn with_fields(fields: &[String]) -> Table {
        Table {
            fields: fields.to_vec(),
            rows: HashMap::default(),
            columns: None,
        }
    }

    /// Applies one message of a table topic: the row under `key` (the latest wins), or, for
    /// a tombstone, its removal.
    pub fn apply(&mut self, key: String, row: Option<Map<String, Value>>) {
        self.columns = None;
        match row {
            Some(row) => {
                let values = self
                    .fields
                    .iter()
                    .map(|f| row.get(f).cloned().unwrap_or(Value::Null))
                    .collect();
                self.rows.insert(key, values);
            }
            None => {
                self.rows.remove(&key);
            }
        }
    }

    /// Loads a table file. Rows that are malformed or repeat a key are skipped and reported;
    /// the load fails only when the file cannot be used at all.
    pub fn load(config: &TableConfig, wanted: &[String]) -> Result<(Table, Vec<RowProblem>), String> {
        let TableConfig::File {
            path,
            key,
            format,
            columns,
            delimiter,
        } = config
        else {
            return Err("not a table file".into());
        };
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let reader = std::io::BufReader::with_capacity(256 * 1024, file);
        let format = format.unwrap_or_else(|| Format::of_path(path));
        let mut builder = Builder {
            key: key.clone(),
            wanted: wanted.to_vec(),
            fields: Vec::new(),
            table: Table::default(),
            problems: Vec::new(),
        };
        match format {
            Format::Csv => {
                let delimiter = delimiter.as_deref().and_then(|d| d.bytes().next()).unwrap_or(b',');
                builder.read_csv(reader, delimiter, columns, path)?
            }
            Format::Jsonl => builder.read_jsonl(reader)?,
        }
        let mut table = builder.table;
        table.columns = Some(Columns::of(&table));
        Ok((table, builder.problems))
    }
}

struct Builder {
    key: Vec<String>,
    wanted: Vec<String>,
    fields: Vec<String>,
    table: Table,
    problems: Vec<RowProblem>,
}

impl Builder {
    /// The fields added to records: the wanted ones, or every column but the key.
    fn choose_fields(&mut self, columns: &[String]) -> Result<(), String> {
        if let Some(missing) = self.key.iter().find(|k| !columns.contains(k)) {
            return Err(format!("the table has no key column `{missing}`"));
        }
        self.fields = if self.wanted.is_empty() {
            columns.iter().filter(|c| !self.key.contains(c)).cloned().collect()
        } else {
            if let Some(missing) = self.wanted.iter().find(|w| !columns.contains(w)) {
                return Err(format!("the table has no column `{missing}`"));
            }
            self.wanted.clone()
        };
        self.table.fields = self.fields.clone();
        Ok(())
    }

    fn add(&mut self, line: u64, row: &Map<String, Value>) {
        let Some(key) = join_key(self.key.iter().map(|k| row.get(k).unwrap_or(&Value::Null))) else {
            self.problems.push(RowProblem {
                line,
                reason: format!("the key ({}) is missing", self.key.join(", ")),
            });
            return;
        };
        match self.table.rows.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => self.problems.push(RowProblem {
                line,
                reason: format!(
                    "duplicate key {:?}: the first row with it is kept, this one skipped",
                    first.key()
                ),
            }),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(
                    self.fields
                        .iter()
                        .map(|f| row.get(f).cloned().unwrap_or(Value::Null))
                        .collect(),
                );
            }
        }
    }

    fn read_csv(
        &mut self,
        reader: impl std::io::Read,
        delimiter: u8,
        columns: &indexmap::IndexMap<String, ColumnType>,
        path: &Path,
    ) -> Result<(), String> {
        let mut rows = CsvRows::new(reader, delimiter).map_err(|e| format!("{}: {e}", path.display()))?;
        self.choose_fields(rows.headers())?;
        loop {
            let mut row = None;
            match rows.next_row(columns, |line, cells| {
                let record: Map<String, Value> = cells.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect();
                row = Some((line, record));
            }) {
                Ok(false) => break,
                Ok(true) => {}
                Err(Malformed { line, reason, .. }) => self.problems.push(RowProblem { line, reason }),
            }
            if let Some((line, record)) = row {
                self.add(line, &record);
            }
        }
        Ok(())
    }

    fn read_jsonl(&mut self, mut reader: impl BufRead) -> Result<(), String> {
        let mut line = String::new();
        let mut number = 0;
        let mut chosen = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    number += 1;
                    self.problems.push(RowProblem {
                        line: number,
                        reason: format!("cannot read the line: {e}"),
                    });
                    continue;
                }
            }
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(row)) => {
                    if !chosen {
                        let columns: Vec<String> = row.keys().cloned().collect();
                        self.choose_fields(&columns)?;
                        chosen = true;
                    }
                    self.add(number, &row);
                }
                Ok(_) => self.problems.push(RowProblem {
                    line: number,
                    reason: "a row must be a JSON object".into(),
                }),
                Err(e) => self.problems.push(RowProblem {
                    line: number,
                    reason: format!("bad JSON: {e}"),
                }),
            }
        }
        Ok(())
    }
}

/// The lookup key of record `row` from its `on` fields, written into `key`; `false` when a
/// part is missing or null (such a record matches no row).
fn record_key(on: &[&crate::flow::Column], row: usize, key: &mut String) -> bool {
    key.clear();
    for (i, column) in on.iter().enumerate() {
        if i > 0 {
            key.push('\u{1f}');
        }
        match column.get(row) {
            FlowValue::Absent | FlowValue::Null => return false,
            FlowValue::Str(s) => key.push_str(s),
            other => crate::flow::json::write_value(other, key),
        }
    }
    true
}

/// The names the table's fields take in a record.
fn target_names(config: &EnricherConfig, fields: &[String]) -> Vec<String> {
    match (&config.into, &config.prefix) {
        (None, Some(prefix)) => fields.iter().map(|f| format!("{prefix}{f}")).collect(),
        _ => fields.to_vec(),
    }
}

/// Joins a batch with the table; the records that found no row, with `missing: unmatched`.
pub fn join(config: &EnricherConfig, on: &[String], table: &Table, batch: &mut Batch) -> Batch {
    let absent = crate::flow::Column::absent(batch.len());
    let on_columns: Vec<&crate::flow::Column> = on.iter().map(|f| batch.column(f).unwrap_or(&absent)).collect();
    let mut key = String::new();
    if let (Some(columns), MissingKey::Pass | MissingKey::Unmatched) = (&table.columns, config.missing) {
        // One key field of strings is looked up as it stands.
        let strings = match on_columns.as_slice() {
            [column] => match column.plain() {
                Some(crate::flow::Typed::Str(keys)) => Some(keys),
                _ => None,
            },
            _ => None,
        };
        let mut found: Vec<Option<u32>> = match strings {
            Some(keys) => keys
                .iter()
                .map(|k| k.and_then(|k| columns.row_of.get(k).copied()))
                .collect(),
            None => (0..batch.len())
                .map(|i| {
                    if !record_key(&on_columns, i, &mut key) {
                        return None;
                    }
                    columns.row_of.get(key.as_str()).copied()
                })
                .collect(),
        };
        drop(on_columns);
        let unmatched = if config.missing == MissingKey::Unmatched {
            let keep: BooleanArray = found.iter().map(|f| Some(f.is_some())).collect();
            let (kept, unmatched) = batch.split(&keep);
            *batch = kept;
            found.retain(Option::is_some);
            unmatched
        } else {
            Batch::default()
        };
        let picked = columns
            .rows
            .take(&found.iter().copied().collect::<arrow_array::UInt32Array>());
        match &config.into {
            Some(into) => {
                let present: Vec<bool> = found.iter().map(Option::is_some).collect();
                batch.overlay(into, crate::flow::Column::objects_where(picked, &present));
            }
            None => {
                for (field, name) in picked.fields().iter().zip(target_names(config, &table.fields)) {
                    batch.overlay(&name, field.column.clone());
                }
            }
        }
        return unmatched;
    }
    // Per record: the table row it joins, or why none.
    let found: Vec<Option<&[Value]>> = (0..batch.len())
        .map(|i| {
            if !record_key(&on_columns, i, &mut key) {
                return None;
            }
            table.rows.get(key.as_str()).map(|r| &**r)
        })
        .collect();
    let unmatched = match config.missing {
        MissingKey::Unmatched => {
            let keep: BooleanArray = found.iter().map(|f| Some(f.is_some())).collect();
            let (kept, unmatched) = batch.split(&keep);
            *batch = kept;
            unmatched
        }
        _ => Batch::default(),
    };
    let rows: Vec<&[Value]> = match config.missing {
        MissingKey::Unmatched => found.iter().flatten().copied().collect(),
        _ => Vec::new(),
    };
    let defaults: Vec<Value> = table
        .fields
        .iter()
        .map(|f| config.defaults.get(f).cloned().unwrap_or(Value::Null))
        .collect();
    // The value of table field `f` for record `i`: the row's, the default, or (passing a
    // record that found no row) what the record had.
    let value_of = |i: usize, f: usize| -> Option<Option<&Value>> {
        let row = match config.missing {
            MissingKey::Unmatched => Some(rows[i]),
            _ => found[i],
        };
        match (row, config.missing) {
            (Some(values), _) => Some(values.get(f)),
            (None, MissingKey::Defaults) => Some(defaults.get(f)),
            (None, _) => None,
        }
    };
    let names = target_names(config, &table.fields);
    let n = batch.len();
    let mut added: Vec<crate::flow::Field> = Vec::with_capacity(names.len());
    for (f, name) in names.iter().enumerate() {
        let mut column = ColumnBuilder::default();
        let existing = batch.column(name).filter(|_| config.into.is_none());
        for i in 0..n {
            match value_of(i, f) {
                Some(v) => column.push_owned(&Owned::from_json(v.unwrap_or(&Value::Null))),
                None => column.push(existing.map_or(FlowValue::Absent, |c| c.get(i))),
            }
        }
        added.push(crate::flow::Field {
            name: name.as_str().into(),
            column: column.finish(),
        });
    }
    match &config.into {
        Some(into) => {
            // Records that found no row (and are passed) keep what they had under `into`.
            let matched: Vec<bool> = (0..n)
                .map(|i| value_of(i, 0).is_some() || table.fields.is_empty())
                .collect();
            let nested = crate::flow::Column::objects(Batch::new(n, added));
            let column = if matched.iter().all(|m| *m) {
                nested
            } else {
                let existing = batch.column(into);
                let mut column = ColumnBuilder::default();
                for (i, m) in matched.iter().enumerate() {
                    column.push(match (m, existing) {
                        (true, _) => nested.get(i),
                        (false, Some(c)) => c.get(i),
                        (false, None) => FlowValue::Absent,
                    });
                }
                column.finish()
            };
            batch.set(into, column);
        }
        None => {
            for field in added {
                batch.set(&field.name, field.column);
            }
        }
    }
    unmatched
}
