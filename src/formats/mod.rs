//! Text formats records arrive in and leave as, shared by every streamlet that reads or writes
//! them (an ingress reads JSON lines and CSV, an enricher reads its table in either): how a
//! line or a row becomes a record, and why one is not a record. Built on `flow` alone.

pub mod csv;

use std::borrow::Cow;

use serde::Deserialize;

use crate::flow::json::decode_into;
use crate::flow::{BatchBuilder, Owned};

/// The text formats a file, a stream or a table is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    /// The format a file's extension names: `.csv` is CSV, anything else JSON lines.
    pub fn of_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Jsonl,
        }
    }
}

/// The type a CSV column's cells are read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Integer,
    Number,
    Boolean,
}

/// A line or a row that is not a record: where it was, why, and its text as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    /// The line number (a Kafka source puts the message's offset here).
    pub line: u64,
    pub reason: String,
    pub raw: Vec<u8>,
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
        // The line without its ending, `\n` or `\r\n`.
        raw: line
            .strip_suffix(b"\n")
            .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l))
            .to_vec(),
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
        let bad = read_json_line(b"\xff{}\n", 4, &mut records).expect_err("not UTF-8");
        assert_eq!((bad.line, bad.reason.as_str()), (4, "not valid UTF-8"));
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
