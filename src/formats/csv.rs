//! CSV text: a header row names the columns, each row after it is a record whose cells take
//! their column's declared type (text where none is declared).

use std::borrow::Cow;
use std::io::Read;

use indexmap::IndexMap;

use super::{typed_cell, ColumnType, Malformed};
use crate::flow::Owned;

/// The rows of a CSV input, read one at a time.
pub struct CsvRows<R: Read> {
    reader: csv::Reader<R>,
    headers: Vec<String>,
    delimiter: u8,
    row: csv::ByteRecord,
}

impl<R: Read> CsvRows<R> {
    /// Reads the header row (names trimmed).
    pub fn new(input: R, delimiter: u8) -> Result<CsvRows<R>, String> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(input);
        let headers = reader
            .byte_headers()
            .map_err(|e| format!("no header row: {e}"))?
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        Ok(CsvRows {
            reader,
            headers,
            delimiter,
            row: csv::ByteRecord::new(),
        })
    }

    /// The column names, in order.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// How many bytes of the input the parser has used.
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    /// Reads the next row and hands it to `record` with its line, its cells typed as `columns`
    /// declares. `Ok(false)` at the end of the input; `Err` for a row that is not a record (the
    /// next call goes on after it).
    pub fn next_row(
        &mut self,
        columns: &IndexMap<String, ColumnType>,
        record: impl FnOnce(u64, &[(Cow<'_, str>, Owned<'_>)]),
    ) -> Result<bool, Malformed> {
        let before = self.reader.position().line();
        match self.reader.read_byte_record(&mut self.row) {
            Ok(false) => return Ok(false),
            Ok(true) => {}
            Err(e) => {
                return Err(Malformed {
                    line: e.position().map_or(before, |p| p.line()),
                    reason: format!("bad CSV: {e}"),
                    raw: Vec::new(),
                })
            }
        }
        let row = &self.row;
        let line = row.position().map_or(before, |p| p.line());
        let malformed = |reason: String| Malformed {
            line,
            reason,
            raw: row.iter().collect::<Vec<_>>().join(&self.delimiter),
        };
        if row.len() != self.headers.len() {
            return Err(malformed(format!(
                "row has {} fields, the header has {}",
                row.len(),
                self.headers.len()
            )));
        }
        let mut cells = Vec::with_capacity(self.headers.len());
        for (name, cell) in self.headers.iter().zip(row.iter()) {
            let Ok(text) = std::str::from_utf8(cell) else {
                return Err(malformed(format!("column `{name}` is not valid UTF-8")));
            };
            let kind = columns.get(name).copied().unwrap_or(ColumnType::String);
            match typed_cell(text, kind) {
                Ok(value) => cells.push((Cow::Borrowed(name.as_str()), value)),
                Err(expected) => return Err(malformed(format!("column `{name}`: `{text}` is not {expected}"))),
            }
        }
        record(line, &cells);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_take_their_columns_types_and_bad_rows_say_why_with_their_line() {
        let text: &[u8] = b"zip, income ,name\n98103,71000,Kent\n98004,lots,Bellevue\n98052,1\n98\xff,2,x\n";
        let mut rows = CsvRows::new(text, b',').expect("a header");
        assert_eq!(rows.headers(), ["zip", "income", "name"]);
        let columns: IndexMap<String, ColumnType> = [("income".to_string(), ColumnType::Integer)].into();
        let mut seen = Vec::new();
        let mut bad = Vec::new();
        loop {
            match rows.next_row(&columns, |line, cells| seen.push((line, cells[1].1.clone().to_json()))) {
                Ok(true) => {}
                Ok(false) => break,
                Err(m) => bad.push(m),
            }
        }
        assert_eq!(seen, vec![(2, serde_json::json!(71000))]);
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert_eq!(
            (bad[0].line, bad[0].raw.as_slice()),
            (3, b"98004,lots,Bellevue".as_slice())
        );
        assert!(bad[0].reason.contains("`lots` is not an integer"), "{}", bad[0].reason);
        assert_eq!(bad[1].line, 4);
        assert!(
            bad[1].reason.contains("2 fields, the header has 3"),
            "{}",
            bad[1].reason
        );
        assert_eq!(bad[2].line, 5);
        assert!(bad[2].reason.contains("`zip` is not valid UTF-8"), "{}", bad[2].reason);
    }
}
