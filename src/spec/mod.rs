//! YAML pipeline files → a typed pipeline spec that remembers where everything was written.

pub mod config;
mod interpolate;
pub mod problem;
pub mod schema;
pub mod source;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value};

pub use config::*;
pub use problem::{Diagnostic, Problem, ProblemCode};
pub use source::{Location, SourceFile, SourceMap};

use source::{escape_segment, pointer_segments};

/// The text of every file a pipeline was loaded from, for rendering snippets.
#[derive(Debug, Clone, Default)]
pub struct Sources(HashMap<PathBuf, Arc<str>>);

impl Sources {
    pub fn text(&self, path: &Path) -> Option<&str> {
        self.0.get(path).map(|t| &**t)
    }

    fn add(&mut self, file: &SourceFile) {
        self.0.insert(file.path.clone(), file.text.clone());
    }
}

/// Problems found in a pipeline, with the files they point into.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

/// Why a pipeline could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} problem(s)", .0.diagnostics.len())]
    Problems(Report),
}

/// A streamlet definition file pulled in with `use:`, and the keys the streamlet took from it.
#[derive(Debug, Clone)]
struct Definition {
    map: SourceMap,
    keys: HashSet<String>,
}

/// Finds where a pointer into the (merged) pipeline document was written:
/// in the pipeline file, or in a streamlet definition file.
#[derive(Debug, Clone)]
pub struct Locator {
    pipeline: SourceMap,
    definitions: HashMap<String, Definition>,
}

impl Locator {
    fn route(&self, pointer: &str) -> (&SourceMap, String) {
        let segments = pointer_segments(pointer);
        if let [first, streamlet, key, ..] = segments.as_slice() {
            if first == "streamlets" {
                if let Some(def) = self.definitions.get(streamlet) {
                    if def.keys.contains(key) {
                        let inner: String = segments[2..]
                            .iter()
                            .map(|s| format!("/{}", escape_segment(s)))
                            .collect();
                        return (&def.map, inner);
                    }
                }
            }
        }
        (&self.pipeline, pointer.to_string())
    }

    /// Where the value at `pointer` was written.
    pub fn value(&self, pointer: &str) -> Location {
        let (map, p) = self.route(pointer);
        map.value(&p)
    }

    /// Where the key of the entry at `pointer` was written.
    pub fn key(&self, pointer: &str) -> Location {
        let (map, p) = self.route(pointer);
        map.key(&p)
    }

    /// The folder relative paths at `pointer` resolve against.
    pub fn base_dir(&self, pointer: &str) -> PathBuf {
        let (map, _) = self.route(pointer);
        map.path().parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// The pipeline file.
    pub fn file(&self) -> &Path {
        self.pipeline.path()
    }

    /// The streamlet definition files that were read.
    pub fn definition_files(&self) -> Vec<PathBuf> {
        self.definitions.values().map(|d| d.map.path().to_path_buf()).collect()
    }

    /// Every file that was read, for watching and for rendering snippets.
    pub fn sources(&self) -> Sources {
        let mut sources = Sources::default();
        sources.add(&self.pipeline.file);
        for def in self.definitions.values() {
            sources.add(&def.map.file);
        }
        sources
    }
}

/// One streamlet of a loaded pipeline. `spec` is `None` when its configuration has
/// problems; its `inputs` are still known so the rest of the graph can be checked.
#[derive(Debug, Clone)]
pub struct Streamlet {
    pub name: String,
    pub inputs: Vec<String>,
    /// Its `kind` as written (after `use:`), known even when `spec` is not.
    pub kind: Option<String>,
    pub spec: Option<StreamletSpec>,
}

/// A loaded pipeline: the typed configuration, the problems found while loading it,
/// and where everything was written.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub defaults: Defaults,
    pub streamlets: IndexMap<String, Streamlet>,
    pub edges: Vec<EdgeSpec>,
    pub problems: Vec<Diagnostic>,
    pub locator: Locator,
}

impl Pipeline {
    /// The pointer of a streamlet, or of a field within it (`field` like `/source/path`).
    pub fn pointer(streamlet: &str, field: &str) -> String {
        format!("/streamlets/{}{field}", escape_segment(streamlet))
    }
}

/// A YAML file parsed to a JSON value, with its source map.
struct Parsed {
    map: SourceMap,
    value: Value,
}

/// Reads and maps one YAML file; problems are added to `problems`. `None` when
/// the file cannot be turned into a value at all.
fn parse(file: SourceFile, problems: &mut Vec<Diagnostic>, env: &dyn Fn(&str) -> Option<String>) -> Option<Parsed> {
    let (map, duplicates) = match SourceMap::build(file.clone()) {
        Ok(built) => built,
        Err(e) => {
            let mut diagnostic = Diagnostic::new(Problem::YamlSyntax { reason: e.message }, e.at);
            let line = diagnostic.location.line;
            diagnostic.hint =
                flow_reference_hint(&file.text, Some(line)).or_else(|| unclosed_flow_hint(&file.text, line));
            problems.push(diagnostic);
            return None;
        }
    };
    let had_duplicates = !duplicates.is_empty();
    for dup in duplicates {
        let is_streamlet = pointer_segments(&dup.pointer).len() == 2 && dup.pointer.starts_with("/streamlets/");
        let problem = if is_streamlet {
            Problem::DuplicateStreamlet { name: dup.key }
        } else {
            Problem::DuplicateKey { key: dup.key }
        };
        problems.push(Diagnostic::new(problem, dup.at));
    }
    // Merge keys (`<<: *defaults`) are applied as YAML defines them, then the document is
    // read as JSON values.
    let yaml = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&file.text).and_then(|mut v| {
        v.apply_merge()?;
        Ok(v)
    });
    let mut value: Value = match yaml.map(serde_json::to_value) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            let reason = format!("the document cannot be read as JSON values: {e}");
            problems.push(Diagnostic::new(Problem::YamlSyntax { reason }, file.location_at(0, 1)));
            return None;
        }
        // The duplicate keys are reported above, each at its second occurrence.
        Err(e) if had_duplicates && e.to_string().contains("duplicate entry") => return None,
        Err(e) => {
            let at = e
                .location()
                .map(|l| file.location_of_line(l.line(), l.column()))
                .unwrap_or_else(|| file.location_at(0, 1));
            problems.push(Diagnostic::new(Problem::YamlSyntax { reason: e.to_string() }, at));
            return None;
        }
    };
    for unset in interpolate::interpolate(&mut value, env) {
        problems.push(Diagnostic::new(
            Problem::UnsetVariable { name: unset.name },
            map.value(&unset.pointer),
        ));
    }
    if !value.is_object() {
        problems.push(Diagnostic::new(
            Problem::WrongType {
                field: "(document)".into(),
                expected: "a mapping".into(),
                found: "something else".into(),
            },
            map.value(""),
        ));
        return None;
    }
    Some(Parsed { map, value })
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads a pipeline file and the streamlet definitions it uses, reading variables from the environment.
/// A hint for a syntax error on a line where a `${VAR}` stands unquoted inside `{ }` or
/// `[ ]`, where YAML reads its braces as structure.
fn flow_reference_hint(text: &str, line: Option<usize>) -> Option<String> {
    let line = text.lines().nth(line?.checked_sub(1)?)?;
    let at = line.find("${")?;
    let before = &line[..at];
    let inside_flow = before.contains('{') || before.contains('[');
    let quoted = before.ends_with('"') || before.ends_with('\'');
    let end = line[at..].find('}').map(|e| at + e + 1)?;
    let reference = &line[at..end];
    (inside_flow && !quoted).then(|| {
        format!(
            "inside `{{ }}` or `[ ]`, quote a reference: `\"{reference}\"` (a value that is one reference still takes its value's type, a number stays a number)"
        )
    })
}

/// When a YAML error is found inside a `{ }` or `[ ]` opened on an earlier line, the parser
/// notices it only where the next key starts; the token to change is the opener's missing
/// closer, so the hint names where the opener is.
fn unclosed_flow_hint(text: &str, error_line: usize) -> Option<String> {
    let mut open: Vec<(char, usize, usize)> = Vec::new();
    for (n, line) in text.lines().enumerate().take(error_line.saturating_sub(1)) {
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        let mut chars = line.chars().enumerate().peekable();
        while let Some((column, c)) = chars.next() {
            let token_start = previous.is_whitespace() || matches!(previous, '[' | '{' | ',' | ':');
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => {
                    // `''` inside a single-quoted scalar is an escaped quote.
                    if q == '\'' && chars.peek().map(|(_, c)| *c) == Some('\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
                (Some(_), _) => {}
                (None, '#') if token_start => break,
                (None, '"' | '\'') if token_start => quote = Some(c),
                (None, '{' | '[') if token_start || !open.is_empty() => open.push((c, n + 1, column + 1)),
                (None, '}' | ']') if !open.is_empty() => {
                    open.pop();
                }
                _ => {}
            }
            previous = c;
        }
    }
    let (opener, line, column) = open.pop()?;
    let closer = if opener == '{' { '}' } else { ']' };
    Some(format!(
        "the `{opener}` at line {line}, column {column} is not closed: is a `{closer}` missing?"
    ))
}

pub fn load(path: &Path) -> Result<Pipeline, LoadError> {
    load_with_env(path, &env_var)
}

/// Loads a pipeline file with the given variable lookup.
pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Pipeline, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = SourceFile::new(path, text);
    let mut problems = Vec::new();
    let Some(Parsed { map, mut value }) = parse(file.clone(), &mut problems, env) else {
        let mut sources = Sources::default();
        sources.add(&file);
        return Err(LoadError::Problems(Report {
            diagnostics: problems,
            sources,
        }));
    };
    let mut locator = Locator {
        pipeline: map,
        definitions: HashMap::new(),
    };
    if let Some(streamlets) = value.get_mut("streamlets").and_then(Value::as_object_mut) {
        for (name, streamlet) in streamlets.iter_mut() {
            if let Some(def) = take_definition(name, streamlet, &locator, &mut problems, env) {
                locator.definitions.insert(name.clone(), def);
            }
        }
    }
    let findings = schema::check(&value);
    let mut broken: HashSet<String> = HashSet::new();
    for f in findings {
        let at = if f.at_key {
            locator.key(&f.pointer)
        } else {
            locator.value(&f.pointer)
        };
        let segments = pointer_segments(&f.pointer);
        broken.insert(segments.iter().take(2).cloned().collect::<Vec<_>>().join("/"));
        problems.push(Diagnostic::new(f.problem, at));
    }
    let mut pipeline = Pipeline {
        name: value
            .get("pipeline")
            .and_then(Value::as_str)
            .unwrap_or("pipeline")
            .to_string(),
        defaults: typed(&value, "defaults", &broken).unwrap_or_default(),
        edges: typed(&value, "edges", &broken).unwrap_or_default(),
        streamlets: IndexMap::new(),
        problems,
        locator,
    };
    let empty = Map::new();
    let streamlets = value.get("streamlets").and_then(Value::as_object).unwrap_or(&empty);
    for (name, raw) in streamlets {
        let inputs = raw
            .get("inputs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let spec = if broken.contains(&format!("streamlets/{name}")) {
            None
        } else {
            match serde_json::from_value::<StreamletSpec>(raw.clone()) {
                Ok(mut spec) => {
                    resolve_paths(&pipeline.locator, name, &mut spec, &mut pipeline.problems);
                    Some(spec)
                }
                Err(e) => {
                    pipeline.problems.push(Diagnostic::new(
                        Problem::InvalidValue {
                            field: name.clone(),
                            reason: e.to_string(),
                        },
                        pipeline.locator.key(&Pipeline::pointer(name, "")),
                    ));
                    None
                }
            }
        };
        pipeline.streamlets.insert(
            name.clone(),
            Streamlet {
                name: name.clone(),
                inputs,
                kind: raw.get("kind").and_then(Value::as_str).map(str::to_string),
                spec,
            },
        );
    }
    Ok(pipeline)
}

/// A top-level section as its typed value, unless the schema found problems in it.
fn typed<T: serde::de::DeserializeOwned>(value: &Value, key: &str, broken: &HashSet<String>) -> Option<T> {
    let has_problem = broken.iter().any(|b| b == key || b.starts_with(&format!("{key}/")));
    if has_problem {
        return None;
    }
    value.get(key).and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Loads the definition a streamlet names with `use:` and merges its keys into the
/// streamlet (keys written in the pipeline win; `key: null` there removes the definition's key).
fn take_definition(
    name: &str,
    streamlet: &mut Value,
    locator: &Locator,
    problems: &mut Vec<Diagnostic>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Definition> {
    // Merged, the streamlet stands as if written whole: `use:` has done its work.
    let use_path = streamlet.as_object_mut()?.remove("use")?;
    let use_path = use_path.as_str()?;
    let pointer = Pipeline::pointer(name, "/use");
    let path = path_clean::clean(locator.base_dir(&pointer).join(use_path));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(_) => {
            problems.push(Diagnostic::new(
                Problem::MissingFile {
                    what: "streamlet definition".into(),
                    path: use_path.to_string(),
                },
                locator.value(&pointer),
            ));
            return None;
        }
    };
    let Parsed { map, value } = parse(SourceFile::new(path, text), problems, env)?;
    let Value::Object(definition) = value else {
        return None;
    };
    let target = streamlet.as_object_mut()?;
    let mut keys = HashSet::new();
    for (key, v) in definition {
        if key == "inputs" || key == "use" {
            problems.push(Diagnostic::new(
                Problem::InvalidValue {
                    field: key.clone(),
                    reason: "a streamlet definition cannot say where its records come from; put it in the pipeline"
                        .into(),
                },
                map.key(&format!("/{key}")),
            ));
            continue;
        }
        match target.get(&key) {
            // `key: null` in the pipeline removes what the definition says (as in JSON Merge Patch).
            Some(Value::Null) => {
                target.remove(&key);
            }
            Some(_) => {}
            None => {
                target.insert(key.clone(), v);
                keys.insert(key);
            }
        }
    }
    Some(Definition { map, keys })
}

/// Makes every path of a streamlet absolute (relative to the file that names it),
/// reporting input files that do not exist.
fn resolve_paths(locator: &Locator, name: &str, spec: &mut StreamletSpec, problems: &mut Vec<Diagnostic>) {
    for field in spec.paths_mut() {
        let pointer = Pipeline::pointer(name, &field.pointer);
        let resolved = path_clean::clean(locator.base_dir(&pointer).join(&*field.path));
        let missing = match field.role {
            PathRole::Output => false,
            PathRole::ModelFolder | PathRole::WorkingFolder => !resolved.is_dir(),
            _ => !resolved.is_file(),
        };
        let missing = missing.then(|| field.role.describe());
        if let Some(what) = missing {
            problems.push(Diagnostic::new(
                Problem::MissingFile {
                    what: what.to_string(),
                    path: field.path.display().to_string(),
                },
                locator.value(&pointer),
            ));
        }
        *field.path = resolved;
    }
}

#[cfg(test)]
mod tests {
    use super::unclosed_flow_hint;

    #[test]
    fn an_unclosed_flow_collection_is_named_where_it_opens() {
        let text = "a:\n  b: { kind: x, c: [1, 2] \n  d: 1\n";
        assert_eq!(
            unclosed_flow_hint(text, 3).as_deref(),
            Some("the `{` at line 2, column 6 is not closed: is a `}` missing?")
        );
        let text = "a: [1, 2,\n  3\nb: 1\n";
        assert!(unclosed_flow_hint(text, 3)
            .unwrap_or_default()
            .contains("`[` at line 1, column 4"));
    }

    #[test]
    fn closed_collections_quotes_and_comments_are_not_openers() {
        for text in [
            "a: { b: 1 }\nc: [1]\nd:\n",
            "a: \"{ not a map\"\nd:\n",
            "a: 'it''s [ text'\nd:\n",
            "a: 1 # { comment\nd:\n",
            "a: x{y\nd:\n",
            "a: { b: \"}\" }\nd:\n",
        ] {
            assert_eq!(unclosed_flow_hint(text, 3), None, "{text:?}");
        }
    }
}
