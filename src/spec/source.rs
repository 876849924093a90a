//! Source files and where each YAML node stands in them, so that every problem can name file:line:col.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use saphyr_parser::{Event, Parser, Span};
use serde::Serialize;

/// A place in a source file: 1-based line and column, plus the byte range for snippets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub offset: usize,
    #[serde(skip)]
    pub len: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A configuration file as read from disk.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl SourceFile {
    /// A file's text; a UTF-8 byte-order mark at its start (editors on Windows write one) is
    /// not part of it.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => Arc::from(rest),
            None => text,
        };
        SourceFile {
            path: path.into(),
            text,
        }
    }

    /// The location of a byte offset in this file.
    pub fn location_at(&self, offset: usize, len: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        Location {
            file: self.path.clone(),
            line,
            column,
            offset,
            len,
        }
    }

    /// The location of a 1-based line and column.
    pub fn location_of_line(&self, line: usize, column: usize) -> Location {
        let line_start: usize = self
            .text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let offset = self.text[line_start.min(self.text.len())..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(self.text.len(), |(i, _)| line_start + i);
        self.location_at(offset, 1)
    }
}

/// Where one node stands: its key (for mapping entries) and its value.
#[derive(Debug, Clone, Copy)]
struct NodeSpan {
    key: Option<ByteSpan>,
    value: ByteSpan,
}

#[derive(Debug, Clone, Copy)]
struct ByteSpan {
    offset: usize,
    len: usize,
}

/// A YAML syntax error: mapping the file stops there.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub at: Location,
}

/// A key written twice in one mapping; `pointer` is the entry's JSON pointer.
#[derive(Debug, Clone)]
pub struct DuplicateKey {
    pub pointer: String,
    pub key: String,
    pub at: Location,
}

/// Positions of every node of a YAML document, by JSON pointer (`/streamlets/check/inputs/0`).
#[derive(Debug, Clone)]
pub struct SourceMap {
    pub file: SourceFile,
    nodes: HashMap<String, NodeSpan>,
}

enum Frame {
    Mapping {
        pointer: String,
        key: Option<(String, ByteSpan)>,
        seen: HashSet<String>,
    },
    Sequence {
        pointer: String,
        next: usize,
    },
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Splits a JSON pointer into its unescaped segments.
pub fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

impl SourceMap {
    /// Maps every node of the first document in `file`. Duplicate keys are reported
    /// as issues (all of them); a syntax error ends the mapping with an error.
    pub fn build(file: SourceFile) -> Result<(SourceMap, Vec<DuplicateKey>), SyntaxError> {
        let char_offsets: Vec<usize> = file
            .text
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(file.text.len()))
            .collect();
        let byte_span = |span: &Span| {
            let at = |index: usize| char_offsets.get(index).copied().unwrap_or(file.text.len());
            let start = at(span.start.index());
            ByteSpan {
                offset: start,
                len: at(span.end.index()).saturating_sub(start).max(1),
            }
        };
        let mut nodes = HashMap::new();
        let mut issues = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0;
        for event in Parser::new_from_str(&file.text) {
            let (event, span) = event.map_err(|e| {
                let m = e.marker();
                SyntaxError {
                    message: e.info().to_string(),
                    at: file.location_of_line(m.line(), m.col() + 1),
                }
            })?;
            let here = byte_span(&span);
            match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(SyntaxError {
                            message: "a pipeline file holds one YAML document; found a second `---`".into(),
                            at: file.location_at(here.offset, here.len),
                        });
                    }
                }
                Event::Scalar(..) | Event::MappingStart(..) | Event::SequenceStart(..) | Event::Alias(..) => {
                    let container = matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
                    let placed = match stack.last_mut() {
                        None => Some((String::new(), None)),
                        Some(Frame::Sequence { pointer, next }) => {
                            *next += 1;
                            Some((format!("{pointer}/{}", *next - 1), None))
                        }
                        Some(Frame::Mapping { pointer, key, seen }) => match key.take() {
                            Some((name, key_span)) => {
                                Some((format!("{pointer}/{}", escape_segment(&name)), Some(key_span)))
                            }
                            None => {
                                let name = match &event {
                                    Event::Scalar(text, ..) => text.to_string(),
                                    _ => {
                                        return Err(SyntaxError {
                                            message: "mapping keys must be plain strings".into(),
                                            at: file.location_at(here.offset, here.len),
                                        })
                                    }
                                };
                                if !seen.insert(name.clone()) {
                                    issues.push(DuplicateKey {
                                        pointer: format!("{pointer}/{}", escape_segment(&name)),
                                        key: name.clone(),
                                        at: file.location_at(here.offset, here.len),
                                    });
                                }
                                *key = Some((name, here));
                                None
                            }
                        },
                    };
                    if let Some((pointer, key)) = placed {
                        // The first occurrence of a duplicated key keeps its position.
                        nodes.entry(pointer.clone()).or_insert(NodeSpan { key, value: here });
                        if container {
                            stack.push(match event {
                                Event::MappingStart(..) => Frame::Mapping {
                                    pointer,
                                    key: None,
                                    seen: HashSet::new(),
                                },
                                _ => Frame::Sequence { pointer, next: 0 },
                            });
                        }
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        Ok((SourceMap { file, nodes }, issues))
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The location of the value at `pointer`, or of its nearest mapped ancestor.
    pub fn value(&self, pointer: &str) -> Location {
        self.find(pointer, false)
    }

    /// The location of the key of the entry at `pointer` (its value for sequence items),
    /// or of its nearest mapped ancestor.
    pub fn key(&self, pointer: &str) -> Location {
        self.find(pointer, true)
    }

    fn find(&self, pointer: &str, prefer_key: bool) -> Location {
        let mut p = pointer;
        loop {
            if let Some(node) = self.nodes.get(p) {
                let span = if prefer_key {
                    node.key.unwrap_or(node.value)
                } else {
                    node.value
                };
                return self.file.location_at(span.offset, span.len);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.file.location_at(0, 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> (SourceMap, Vec<DuplicateKey>) {
        SourceMap::build(SourceFile::new("p.yaml", text)).expect("valid yaml")
    }

    #[test]
    fn locates_keys_values_and_sequence_items() {
        let (m, issues) = map("a: 1\nbé:\n  - x\n  - {c: 2}\n");
        assert!(issues.is_empty());
        let v = m.value("/a");
        assert_eq!((v.line, v.column), (1, 4));
        let k = m.key("/bé");
        assert_eq!((k.line, k.column), (2, 1));
        let item = m.value("/bé/1/c");
        assert_eq!((item.line, item.column), (4, 9));
        let missing = m.value("/bé/1/zzz");
        assert_eq!((missing.line, missing.column), (4, 5));
    }

    #[test]
    fn reports_every_duplicate_key() {
        let (_, issues) = map("a: 1\nb: 2\na: 3\nb: 4\n");
        let dups: Vec<_> = issues.iter().map(|d| (d.key.clone(), d.at.line)).collect();
        assert_eq!(dups, vec![("a".into(), 3), ("b".into(), 4)]);
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err = SourceMap::build(SourceFile::new("p.yaml", "a: [1, 2\nb: 3\n")).unwrap_err();
        assert!(err.at.line >= 2, "{err:?}");
    }
}
