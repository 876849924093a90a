//! Reading JSONL and CSV text (a file or stdin) on a thread of its own, parsed into records.
//!
//! Lines are parsed where they are read and sent on in chunks: a chunk goes out
//! when it is full, or as soon as the input has nothing more buffered, so a slow
//! source (a terminal, a pipe) is not held back waiting for a full batch.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use indexmap::IndexMap;
use tokio::sync::mpsc;

use crate::flow::{Batch, BatchBuilder};
use crate::formats::csv::CsvRows;
pub use crate::formats::Malformed;
use crate::formats::{read_json_line, ColumnType, Format};

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

/// The UTF-8 encoding of U+FEFF, the byte order mark.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

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
            // A UTF-8 byte order mark before the first line (as some Windows tools write) is
            // not part of the first record.
            let text = match number {
                1 => line.strip_prefix(UTF8_BOM).unwrap_or(&line),
                _ => &line,
            };
            if let Err(bad) = read_json_line(text, number, &mut chunk.records) {
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
        let mut rows = CsvRows::new(counting, self.delimiter).map_err(std::io::Error::other)?;
        let mut chunk = Pieces::default();
        loop {
            let records = &mut chunk.records;
            match rows.next_row(&self.columns, |_, cells| records.push_fields(cells)) {
                Ok(false) => break,
                Ok(true) => {}
                Err(bad) => chunk.malformed.push(bad),
            }
            let (handed_out, inner_empty) = drained.get();
            let waiting = inner_empty && rows.bytes_read() >= handed_out;
            if (chunk.len() >= self.chunk || waiting) && !self.send(tx, &mut chunk) {
                return Ok(());
            }
        }
        self.send(tx, &mut chunk);
        Ok(())
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
