//! Pipeline tests (`sluice test`): given records go into named streamlets, the pipeline runs in
//! memory with its real models, and the records that come out of named outlets are checked.
//!
//! A test file sits beside its pipeline (`x.yaml` → `x.test.yaml`):
//!
//! ```yaml
//! tests:
//!   - name: a valid listing is scored
//!     inputs:
//!       - into: check                  # a streamlet: the records enter its inlet
//!         records: [{ id: 1, bedrooms: 3 }]
//!     expect:
//!       - outlet: price                # streamlet or streamlet.port
//!         count: 1
//!         records:                     # conditions on the first records, in order
//!           - { id: 1, predicted_price: { approx: 500000, tolerance: 100000 }, _model.version: "2" }
//!         all: { _error: { present: false } }   # conditions every record meets
//!       - outlet: check.invalid
//!         count: 0
//!       - outlet: scored               # an egress: what reached it (nothing is written)
//!         count: 1
//! ```
//!
//! A condition is a value (equal), or `{equals: v}`, `{approx: x, tolerance: t}`,
//! `{present: true|false}`, `{one_of: [..]}`, `{contains: "text"}`. Field names may be
//! dotted (`_model.version`) or JSON pointers (`/_model/version`).

mod substitutes;

use std::path::{Path, PathBuf};

use petgraph::graph::NodeIndex;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::spec::{KindConfig, LoadError, Location, SourceFile, SourceMap, StreamletSpec};
use crate::topology::{split_input, Edge, Node, Topology};
use substitutes::{is_given, Capture, Given};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The pipeline, relative to the test file; `x.yaml` for `x.test.yaml` when absent.
    #[serde(default)]
    pipeline: Option<PathBuf>,
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    #[serde(default)]
    inputs: Vec<TestInput>,
    expect: Vec<Expectation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestInput {
    into: String,
    records: Vec<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    outlet: String,
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    records: Vec<Map<String, Value>>,
    #[serde(default)]
    all: Option<Map<String, Value>>,
}

/// One failed check, where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub location: Location,
    pub message: String,
}

/// The outcome of one test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    pub failures: Vec<Failure>,
}

/// The outcome of a test file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    pub file: PathBuf,
    pub pipeline: PathBuf,
    pub tests: Vec<TestOutcome>,
}

/// Why a test file could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
    #[error("pipeline {}: {reason}", path.display())]
    Pipeline { path: PathBuf, reason: String },
}

/// The test file of a pipeline file (`x.yaml` → `x.test.yaml`), if the path is a pipeline.
pub fn test_file_of(pipeline: &Path) -> PathBuf {
    let stem = pipeline.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    pipeline.with_file_name(format!("{stem}.test.yaml"))
}

/// Whether a path names a test file.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml"))
}

/// Reads a test file and checks it against its pipeline without running anything: every
/// `into:` names a streamlet, every `outlet:` a port it has. The number of tests, or the
/// first thing wrong (with where it is written).
pub fn check_file(path: &Path) -> Result<usize, TestError> {
    let (file, map, pipeline) = read(path)?;
    let topology = load_pipeline(&pipeline)?;
    for (i, case) in file.tests.iter().enumerate() {
        if let Some(f) = check_names(&topology, case, &map, &format!("/tests/{i}"))
            .into_iter()
            .next()
        {
            return Err(TestError::Invalid {
                location: f.location,
                message: f.message,
            });
        }
    }
    Ok(file.tests.len())
}

/// What a test names that its pipeline does not have: streamlets to feed, outlets to read.
fn check_names(pipeline: &Topology, case: &TestCase, map: &SourceMap, at: &str) -> Vec<Failure> {
    let fail = |pointer: String, message: String| Failure {
        location: map.key(&pointer),
        message,
    };
    let mut failures = Vec::new();
    for (i, input) in case.inputs.iter().enumerate() {
        if !pipeline.by_name.contains_key(&input.into) {
            failures.push(fail(
                format!("{at}/inputs/{i}/into"),
                format!("the pipeline has no streamlet `{}`", input.into),
            ));
        }
    }
    for (j, expect) in case.expect.iter().enumerate() {
        let (name, port) = split_input(&expect.outlet);
        let Some(&node) = pipeline.by_name.get(name) else {
            failures.push(fail(
                format!("{at}/expect/{j}/outlet"),
                format!("the pipeline has no streamlet `{name}`"),
            ));
            continue;
        };
        let kind = &pipeline.graph[node].spec.kind;
        // An egress's "outlet" is what reached it.
        let is_sink = matches!(kind, KindConfig::Egress(_)) && port.is_none();
        let outlets = kind.outlets();
        if !is_sink && outlets.resolve(port).is_none() {
            failures.push(fail(
                format!("{at}/expect/{j}/outlet"),
                format!(
                    "`{name}` has no outlet `{}` (it has: {})",
                    port.unwrap_or("(default)"),
                    outlets.names.join(", ")
                ),
            ));
        }
    }
    failures
}

fn load_pipeline(pipeline: &Path) -> Result<Topology, TestError> {
    crate::topology::load(pipeline).map_err(|e| TestError::Pipeline {
        path: pipeline.to_path_buf(),
        reason: match e {
            LoadError::Problems(r) => r
                .diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.location, d.message))
                .collect::<Vec<_>>()
                .join("; "),
            e => e.to_string(),
        },
    })
}

/// Reads and parses a test file: the tests, where they are written, and the pipeline's path.
fn read(path: &Path) -> Result<(TestFile, SourceMap, PathBuf), TestError> {
    let text = std::fs::read_to_string(path).map_err(|source| TestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let source = SourceFile::new(path, text);
    let invalid = |message: String, line: usize, column: usize| TestError::Invalid {
        location: source.location_of_line(line, column),
        message,
    };
    let file: TestFile = serde_yaml_ng::from_str(&source.text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        invalid(e.to_string(), line, column)
    })?;
    let (map, _) = SourceMap::build(source.clone()).map_err(|e| TestError::Invalid {
        location: e.at,
        message: e.message,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let pipeline = match &file.pipeline {
        Some(p) => dir.join(p),
        None => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            dir.join(name.replace(".test.yaml", ".yaml"))
        }
    };
    Ok((file, map, pipeline))
}

/// Runs every test of a test file.
pub async fn run_file(path: &Path) -> Result<FileOutcome, TestError> {
    let (file, map, pipeline) = read(path)?;
    let topology = load_pipeline(&pipeline)?;
    let mut tests = Vec::new();
    for (i, case) in file.tests.iter().enumerate() {
        let failures = run_case(&topology, case, &map, &format!("/tests/{i}")).await;
        tests.push(TestOutcome {
            name: case.name.clone(),
            failures,
        });
    }
    Ok(FileOutcome {
        file: path.to_path_buf(),
        pipeline,
        tests,
    })
}

/// Replaces a node's kind, keeping its name and edges.
fn set_kind(topology: &mut Topology, node: NodeIndex, kind: KindConfig) {
    let spec = &mut topology.graph[node].spec;
    spec.kind = kind;
    spec.discard.clear();
}

/// Adds a streamlet named `name` (or the first free name after it: the user's come first).
fn add_node(topology: &mut Topology, name: String, kind: KindConfig) -> NodeIndex {
    let name = topology.unused_name(name);
    let node = topology.graph.add_node(Node {
        name: name.clone(),
        spec: StreamletSpec {
            inputs: Vec::new(),
            discard: Vec::new(),
            accepts: None,
            kind,
        },
    });
    topology.by_name.insert(name, node);
    node
}

/// An edge from `from`'s `port` to `to`, holding as many batches as the pipeline's edges do.
fn connect(topology: &mut Topology, from: NodeIndex, port: &str, to: NodeIndex) {
    let capacity = topology.defaults.channel_capacity;
    topology.graph.add_edge(
        from,
        to,
        Edge {
            port: port.to_string(),
            capacity,
            kafka: None,
        },
    );
}

async fn run_case(pipeline: &Topology, case: &TestCase, map: &SourceMap, at: &str) -> Vec<Failure> {
    let mut topology = pipeline.clone();
    let fail = |pointer: String, message: String| Failure {
        location: map.key(&pointer),
        message,
    };
    // Tests run in memory: Kafka edges too.
    for edge in topology.graph.edge_weights_mut() {
        edge.kafka = None;
    }
    // Sources are replaced by the records the test gives (or none); sinks write nowhere.
    let nodes: Vec<NodeIndex> = topology.graph.node_indices().collect();
    let mut sinks = std::collections::HashMap::new();
    for node in nodes {
        let kind = match &topology.graph[node].spec.kind {
            KindConfig::Ingress(_) => Given::kind(Vec::new()),
            KindConfig::Egress(_) => {
                let captured = Capture::default();
                sinks.insert(topology.graph[node].name.clone(), captured.clone());
                captured.kind()
            }
            _ => continue,
        };
        set_kind(&mut topology, node, kind);
    }
    for (i, input) in case.inputs.iter().enumerate() {
        let Some(&target) = topology.by_name.get(&input.into) else {
            return vec![fail(
                format!("{at}/inputs/{i}/into"),
                format!("the pipeline has no streamlet `{}`", input.into),
            )];
        };
        let records = Given::kind(input.records.clone());
        if is_given(&topology.graph[target].spec.kind) {
            set_kind(&mut topology, target, records);
        } else {
            let source = add_node(&mut topology, format!("test-input-{i}"), records);
            connect(&mut topology, source, "out", target);
        }
    }
    let mut captures = Vec::new();
    for (j, expect) in case.expect.iter().enumerate() {
        let (name, port) = split_input(&expect.outlet);
        // An egress's "outlet" is what reached it.
        if let (Some(captured), None) = (sinks.get(name), port) {
            captures.push(captured.clone());
            continue;
        }
        let Some(&node) = topology.by_name.get(name) else {
            return vec![fail(
                format!("{at}/expect/{j}/outlet"),
                format!("the pipeline has no streamlet `{name}`"),
            )];
        };
        let outlets = pipeline.graph[node].spec.kind.outlets();
        let Some(port) = outlets.resolve(port) else {
            let port = port.unwrap_or("(default)");
            return vec![fail(
                format!("{at}/expect/{j}/outlet"),
                format!("`{name}` has no outlet `{port}` (it has: {})", outlets.names.join(", ")),
            )];
        };
        let captured = Capture::default();
        let sink = add_node(&mut topology, format!("test-capture-{j}"), captured.kind());
        connect(&mut topology, node, port, sink);
        captures.push(captured);
    }
    // Outlets nothing reads in the test (their consumers were sinks) are read by a capture too.
    let unread: Vec<(NodeIndex, &'static str)> = topology
        .graph
        .node_indices()
        .flat_map(|n| {
            let consumed: Vec<String> = topology.graph.edges(n).map(|e| e.weight().port.clone()).collect();
            let kind = topology.graph[n].spec.kind.outlets();
            kind.names
                .iter()
                .filter(|p| !consumed.iter().any(|c| c == *p))
                .map(|p| (n, *p))
                .collect::<Vec<_>>()
        })
        .collect();
    for (k, (node, port)) in unread.into_iter().enumerate() {
        let sink = add_node(&mut topology, format!("test-drain-{k}"), Capture::default().kind());
        connect(&mut topology, node, port, sink);
    }
    if let Err(e) = crate::runtime::run(topology, CancellationToken::new()).await {
        return vec![fail(at.to_string(), format!("the pipeline failed: {e}"))];
    }
    let mut failures = Vec::new();
    for (j, (expect, captured)) in case.expect.iter().zip(&captures).enumerate() {
        let records = captured.records();
        let here = format!("{at}/expect/{j}");
        if let Some(count) = expect.count {
            if records.len() != count {
                failures.push(fail(
                    format!("{here}/count"),
                    format!(
                        "expected {count} record(s) out of `{}`, got {}",
                        expect.outlet,
                        records.len()
                    ),
                ));
            }
        }
        for (k, conditions) in expect.records.iter().enumerate() {
            let Some(record) = records.get(k) else {
                failures.push(fail(
                    format!("{here}/records/{k}"),
                    format!(
                        "expected a record #{} out of `{}`, got only {}",
                        k + 1,
                        expect.outlet,
                        records.len()
                    ),
                ));
                continue;
            };
            for (field, condition) in conditions {
                if let Err(why) = check(record, field, condition) {
                    failures.push(fail(
                        format!("{here}/records/{k}/{}", crate::spec::source::escape_segment(field)),
                        format!("record #{} out of `{}`: `{field}` {why}", k + 1, expect.outlet),
                    ));
                }
            }
        }
        if let Some(conditions) = &expect.all {
            for (k, record) in records.iter().enumerate() {
                for (field, condition) in conditions {
                    if let Err(why) = check(record, field, condition) {
                        failures.push(fail(
                            format!("{here}/all/{}", crate::spec::source::escape_segment(field)),
                            format!("record #{} out of `{}`: `{field}` {why}", k + 1, expect.outlet),
                        ));
                    }
                }
            }
        }
    }
    failures
}

/// The value at a dotted field name or JSON pointer.
fn field<'a>(record: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = record.get(name) {
        return Some(v);
    }
    let pointer = if name.starts_with('/') {
        name.to_string()
    } else {
        name.split('.')
            .map(|s| format!("/{}", crate::spec::source::escape_segment(s)))
            .collect()
    };
    let mut segments = crate::spec::source::pointer_segments(&pointer).into_iter();
    let first = segments.next()?;
    let mut value = record.get(&first)?;
    for s in segments {
        value = match value {
            Value::Object(m) => m.get(&s)?,
            Value::Array(a) => a.get(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

const OPERATORS: [&str; 6] = ["equals", "approx", "tolerance", "present", "one_of", "contains"];

/// Checks one condition; the reason when it does not hold.
fn check(record: &Map<String, Value>, name: &str, condition: &Value) -> Result<(), String> {
    let actual = field(record, name);
    let show = |v: Option<&Value>| v.map_or("absent".to_string(), |v| format!("is {v}"));
    let operator = match condition {
        Value::Object(o) if !o.is_empty() && o.keys().all(|k| OPERATORS.contains(&k.as_str())) => Some(o),
        _ => None,
    };
    let Some(op) = operator else {
        return if actual == Some(condition) {
            Ok(())
        } else {
            Err(format!("{}, expected {condition}", show(actual)))
        };
    };
    if let Some(present) = op.get("present").and_then(Value::as_bool) {
        if actual.is_some() != present {
            return Err(format!(
                "{}, expected it {}",
                show(actual),
                if present { "present" } else { "absent" }
            ));
        }
    }
    if let Some(expected) = op.get("equals") {
        if actual != Some(expected) {
            return Err(format!("{}, expected {expected}", show(actual)));
        }
    }
    if let Some(target) = op.get("approx").and_then(Value::as_f64) {
        let tolerance = op.get("tolerance").and_then(Value::as_f64).unwrap_or(1e-6);
        match actual.and_then(Value::as_f64) {
            Some(x) if (x - target).abs() <= tolerance => {}
            _ => return Err(format!("{}, expected {target} ± {tolerance}", show(actual))),
        }
    }
    if let Some(options) = op.get("one_of").and_then(Value::as_array) {
        if !actual.is_some_and(|a| options.contains(a)) {
            return Err(format!(
                "{}, expected one of {}",
                show(actual),
                Value::Array(options.clone())
            ));
        }
    }
    if let Some(text) = op.get("contains").and_then(Value::as_str) {
        if !actual.and_then(Value::as_str).is_some_and(|a| a.contains(text)) {
            return Err(format!("{}, expected it to contain {text:?}", show(actual)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_hold_or_say_why() {
        let r = json!({"a": 1.5, "m": {"version": "2"}, "s": "no consensus: 1 of 3"});
        let r = r.as_object().expect("object");
        assert!(check(r, "a", &json!(1.5)).is_ok());
        assert!(check(r, "m.version", &json!("2")).is_ok());
        assert!(check(r, "/m/version", &json!({"one_of": ["1", "2"]})).is_ok());
        assert!(check(r, "a", &json!({"approx": 1.0, "tolerance": 0.6})).is_ok());
        assert!(check(r, "s", &json!({"contains": "consensus"})).is_ok());
        assert!(check(r, "missing", &json!({"present": false})).is_ok());
        assert_eq!(check(r, "a", &json!(2)), Err("is 1.5, expected 2".into()));
        assert_eq!(
            check(r, "b", &json!({"present": true})),
            Err("absent, expected it present".into())
        );
        assert!(check(r, "a", &json!({"approx": 1.0, "tolerance": 0.1}))
            .unwrap_err()
            .contains("± 0.1"));
    }
}
