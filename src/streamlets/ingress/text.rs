//! Reading JSONL and CSV text (a file or stdin) on a thread of its own, parsed into records.
//!
//! Lines are parsed where they are read and sent on in chunks: a chunk goes out
//! when it is full, or as soon as the input has nothing more buffered, so a slow
//! source (a terminal, a pipe) is not held back waiting for a full batch.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use indexmap::IndexMap;
use serde_json::{Number, Value};
use tokio::sync::mpsc;

use super::super::Record;
use crate::spec::{ColumnType, Format};

/// One unit of input: a record, or a piece of input that is not one.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Record(Record),
    Malformed { line: u64, reason: String, raw: Vec<u8> },
}

pub type Chunk = std::io::Result<Vec<Item>>;

/// Buffered input whose buffer can be inspected (to know when a read would wait).
pub type Input = BufReader<Box<dyn Read + Send>>;

/// How to read text input.
#[derive(Debug, Clone)]
pub struct TextReader {
    pub format: Format,
    pub columns: IndexMap<String, ColumnType>,
    pub delimiter: u8,
    pub chunk: usize,
}

impl TextReader {
    /// Reads `input` to its end on a new thread, sending chunks to `tx`. The thread
    /// stops early when the receiver is dropped.
    pub fn spawn(self, input: Input, tx: mpsc::Sender<Chunk>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("sluice-reader".into())
            .spawn(move || {
                let result = match self.format {
                    Format::Jsonl => self.read_jsonl(input, &tx),
                    Format::Csv => self.read_csv(input, &tx),
                };
                if let Err(e) = result {
                    let _ = tx.blocking_send(Err(e));
                }
            })?;
        Ok(())
    }

    /// Sends a chunk; `false` when the receiver is gone.
    fn send(&self, tx: &mpsc::Sender<Chunk>, chunk: &mut Vec<Item>) -> bool {
        let full = std::mem::replace(chunk, Vec::with_capacity(self.chunk));
        full.is_empty() || tx.blocking_send(Ok(full)).is_ok()
    }

    fn read_jsonl(&self, mut input: Input, tx: &mpsc::Sender<Chunk>) -> std::io::Result<()> {
        let mut chunk = Vec::with_capacity(self.chunk);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            number += 1;
            if let Some(item) = parse_json_line(&line, number) {
                chunk.push(item);
            }
            if (chunk.len() >= self.chunk || input.buffer().is_empty()) && !self.send(tx, &mut chunk) {
                return Ok(());
            }
        }
        self.send(tx, &mut chunk);
        Ok(())
    }

    fn read_csv(&self, input: Input, tx: &mpsc::Sender<Chunk>) -> std::io::Result<()> {
        let drained = Rc::new(Cell::new((0u64, false)));
        let counting = CountingReader {
            inner: input,
            state: drained.clone(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .delimiter(self.delimiter)
            .from_reader(counting);
        let headers: Vec<String> = reader
            .byte_headers()
            .map_err(std::io::Error::other)?
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        let mut chunk = Vec::with_capacity(self.chunk);
        let mut row = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut row) {
                Ok(false) => break,
                Ok(true) => chunk.push(self.csv_row(&headers, &row)),
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    chunk.push(Item::Malformed {
                        line,
                        reason: format!("bad CSV: {e}"),
                        raw: Vec::new(),
                    });
                }
            }
            let (handed_out, inner_empty) = drained.get();
            let waiting = inner_empty && reader.position().byte() >= handed_out;
            if (chunk.len() >= self.chunk || waiting) && !self.send(tx, &mut chunk) {
                return Ok(());
            }
        }
        self.send(tx, &mut chunk);
        Ok(())
    }

    fn csv_row(&self, headers: &[String], row: &csv::ByteRecord) -> Item {
        let line = row.position().map_or(0, |p| p.line());
        let raw = || row.iter().collect::<Vec<_>>().join(&self.delimiter);
        if row.len() != headers.len() {
            return Item::Malformed {
                line,
                reason: format!("row has {} fields, the header has {}", row.len(), headers.len()),
                raw: raw(),
            };
        }
        let mut record = Record::new();
        for (name, field) in headers.iter().zip(row.iter()) {
            let Ok(text) = std::str::from_utf8(field) else {
                return Item::Malformed {
                    line,
                    reason: format!("column `{name}` is not valid UTF-8"),
                    raw: raw(),
                };
            };
            let kind = self.columns.get(name).copied().unwrap_or(ColumnType::String);
            match typed_cell(text, kind) {
                Ok(value) => {
                    record.insert(name.clone(), value);
                }
                Err(expected) => {
                    return Item::Malformed {
                        line,
                        reason: format!("column `{name}`: `{text}` is not {expected}"),
                        raw: raw(),
                    }
                }
            }
        }
        Item::Record(record)
    }
}

/// A JSON line as an item; `None` for a blank line.
pub fn parse_json_line(line: &[u8], number: u64) -> Option<Item> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    let malformed = |reason: String| Item::Malformed {
        line: number,
        reason,
        raw: line.strip_suffix(b"\n").unwrap_or(line).to_vec(),
    };
    if std::str::from_utf8(trimmed).is_err() {
        return Some(malformed("not valid UTF-8".into()));
    }
    Some(match serde_json::from_slice::<Value>(trimmed) {
        Ok(Value::Object(record)) => Item::Record(record),
        Ok(other) => malformed(format!("a record must be a JSON object, found {}", json_kind(&other))),
        Err(e) => malformed(format!("bad JSON: {e}")),
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A CSV cell as the declared type; empty cells of typed columns are null.
pub fn typed_cell(text: &str, kind: ColumnType) -> Result<Value, &'static str> {
    let t = text.trim();
    if t.is_empty() && kind != ColumnType::String {
        return Ok(Value::Null);
    }
    match kind {
        ColumnType::String => Ok(Value::String(text.to_string())),
        ColumnType::Integer => t.parse::<i64>().map(Value::from).map_err(|_| "an integer"),
        ColumnType::Number => t
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or("a finite number"),
        ColumnType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err("a boolean"),
        },
    }
}

/// Hands bytes to the CSV parser while noting how many it has had and whether
/// the underlying input has anything more buffered.
struct CountingReader {
    inner: Input,
    state: Rc<Cell<(u64, bool)>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (total, _) = self.state.get();
        self.state.set((total + n as u64, self.inner.buffer().is_empty()));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_parse_or_say_why_not() {
        assert!(matches!(parse_json_line(b"{\"a\":1}\n", 1), Some(Item::Record(_))));
        assert_eq!(parse_json_line(b"  \n", 2), None);
        match parse_json_line(b"[1]\n", 3) {
            Some(Item::Malformed { line: 3, reason, raw }) => {
                assert!(reason.contains("JSON object"));
                assert_eq!(raw, b"[1]");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_json_line(b"\xff{}\n", 4),
            Some(Item::Malformed { line: 4, .. })
        ));
    }

    #[test]
    fn csv_cells_take_their_declared_types() {
        assert_eq!(typed_cell("42", ColumnType::Integer), Ok(Value::from(42)));
        assert_eq!(typed_cell("", ColumnType::Number), Ok(Value::Null));
        assert_eq!(typed_cell("yes", ColumnType::Boolean), Ok(Value::Bool(true)));
        assert!(typed_cell("4.5", ColumnType::Integer).is_err());
        assert!(typed_cell("NaN", ColumnType::Number).is_err());
    }
}
