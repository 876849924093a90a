//! Reading JSONL and CSV text (a file or stdin) on a thread of its own, parsed into records.
//!
//! Lines are parsed where they are read and sent on in chunks: a chunk goes out
//! when it is full, or as soon as the input has nothing more buffered, so a slow
//! source (a terminal, a pipe) is not held back waiting for a full batch.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use std::borrow::Cow;

use indexmap::IndexMap;
use tokio::sync::mpsc;

use crate::flow::json::decode_into;
use crate::flow::{Batch, BatchBuilder, Owned};
use crate::spec::{ColumnType, Format};

/// A piece of input that is not a record: where it was, why, and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub line: u64,
    pub reason: String,
    pub raw: Vec<u8>,
}

/// Records read, and the input among them that was not a record.
#[derive(Debug, Default)]
pub struct Pieces {
    pub records: BatchBuilder,
    pub malformed: Vec<Malformed>,
}

impl Pieces {
    fn len(&self) -> usize {
        self.records.len() + self.malformed.len()
    }
}

/// What the reader hands over at a time.
pub struct Parsed {
    pub records: Batch,
    pub malformed: Vec<Malformed>,
}

pub type Chunk = std::io::Result<Parsed>;

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
    fn send(&self, tx: &mpsc::Sender<Chunk>, chunk: &mut Pieces) -> bool {
        if chunk.len() == 0 {
            return true;
        }
        let full = std::mem::take(chunk);
        tx.blocking_send(Ok(Parsed {
            records: full.records.finish(),
            malformed: full.malformed,
        }))
        .is_ok()
    }

    fn read_jsonl(&self, mut input: Input, tx: &mpsc::Sender<Chunk>) -> std::io::Result<()> {
        let mut chunk = Pieces::default();
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            number += 1;
            if let Err(bad) = read_json_line(&line, number, &mut chunk.records) {
                chunk.malformed.push(bad);
            }
            let full = chunk.len() >= self.chunk || chunk.records.is_wide();
            if (full || input.buffer().is_empty()) && !self.send(tx, &mut chunk) {
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
        let mut chunk = Pieces::default();
        let mut row = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut row) {
                Ok(false) => break,
                Ok(true) => {
                    if let Err(bad) = self.csv_row(&headers, &row, &mut chunk.records) {
                        chunk.malformed.push(bad);
                    }
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    chunk.malformed.push(Malformed {
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

    /// Adds a CSV row to `records`, or says why it is not a record.
    fn csv_row(&self, headers: &[String], row: &csv::ByteRecord, records: &mut BatchBuilder) -> Result<(), Malformed> {
        let line = row.position().map_or(0, |p| p.line());
        let malformed = |reason: String| Malformed {
            line,
            reason,
            raw: row.iter().collect::<Vec<_>>().join(&self.delimiter),
        };
        if row.len() != headers.len() {
            return Err(malformed(format!(
                "row has {} fields, the header has {}",
                row.len(),
                headers.len()
            )));
        }
        let mut fields = Vec::with_capacity(headers.len());
        for (name, field) in headers.iter().zip(row.iter()) {
            let Ok(text) = std::str::from_utf8(field) else {
                return Err(malformed(format!("column `{name}` is not valid UTF-8")));
            };
            let kind = self.columns.get(name).copied().unwrap_or(ColumnType::String);
            match typed_cell(text, kind) {
                Ok(value) => fields.push((Cow::Borrowed(name.as_str()), value)),
                Err(expected) => return Err(malformed(format!("column `{name}`: `{text}` is not {expected}"))),
            }
        }
        records.push_fields(&fields);
        Ok(())
    }
}

/// Adds a JSON line's record to `records` (a blank line adds nothing), or says why the line
/// is not a record.
pub fn read_json_line(line: &[u8], number: u64, records: &mut BatchBuilder) -> Result<(), Malformed> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Ok(());
    }
    let malformed = |reason: String| Malformed {
        line: number,
        reason,
        raw: line.strip_suffix(b"\n").unwrap_or(line).to_vec(),
    };
    // The parser checks the text's UTF-8 as it goes; the reason says so when that is what failed.
    decode_into(trimmed, records).map_err(|reason| match std::str::from_utf8(trimmed) {
        Err(_) => malformed("not valid UTF-8".into()),
        Ok(_) => malformed(reason),
    })
}

/// A CSV cell as the declared type; empty cells of typed columns are null.
pub fn typed_cell(text: &str, kind: ColumnType) -> Result<Owned<'_>, &'static str> {
    let t = text.trim();
    if t.is_empty() && kind != ColumnType::String {
        return Ok(Owned::Null);
    }
    match kind {
        ColumnType::String => Ok(Owned::Str(Cow::Borrowed(text))),
        ColumnType::Integer => t.parse::<i64>().map(Owned::Int).map_err(|_| "an integer"),
        ColumnType::Number => t
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Owned::Float)
            .ok_or("a finite number"),
        ColumnType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Owned::Bool(true)),
            "false" | "no" | "0" => Ok(Owned::Bool(false)),
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
        let mut records = BatchBuilder::default();
        assert!(read_json_line(b"{\"a\":1}\n", 1, &mut records).is_ok());
        assert!(read_json_line(b"  \n", 2, &mut records).is_ok());
        let bad = read_json_line(b"[1]\n", 3, &mut records).expect_err("not an object");
        assert_eq!(bad.line, 3);
        assert!(bad.reason.contains("JSON object"), "{}", bad.reason);
        assert_eq!(bad.raw, b"[1]");
        assert_eq!(
            read_json_line(b"\xff{}\n", 4, &mut records)
                .expect_err("not UTF-8")
                .line,
            4
        );
        assert_eq!(records.len(), 1, "only the record was added");
    }

    #[test]
    fn csv_cells_take_their_declared_types() {
        assert_eq!(typed_cell("42", ColumnType::Integer), Ok(Owned::Int(42)));
        assert_eq!(typed_cell("", ColumnType::Number), Ok(Owned::Null));
        assert_eq!(typed_cell("yes", ColumnType::Boolean), Ok(Owned::Bool(true)));
        assert!(typed_cell("4.5", ColumnType::Integer).is_err());
        assert!(typed_cell("NaN", ColumnType::Number).is_err());
    }
}
