//! Graph-level checks of a pipeline: inputs, outlets, cycles, record schemas. Every problem at once.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value;

use super::{records, split_input, Edge, KafkaEdge};
use crate::problem::did_you_mean;
use crate::spec::{At, Diagnostic, Pipeline, Problem, StreamletSpec, Transport, Via};

/// The graph as far as it could be built, and the problems found.
pub struct Checked {
    pub graph: DiGraph<(String, Option<StreamletSpec>), Edge>,
    pub problems: Vec<Diagnostic>,
}

pub fn verify(pipeline: &Pipeline) -> Checked {
    let loc = &pipeline.locator;
    let mut problems = Vec::new();
    let mut graph = DiGraph::new();
    let index: HashMap<&str, NodeIndex> = pipeline
        .streamlets
        .values()
        .map(|s| (s.name.as_str(), graph.add_node((s.name.clone(), s.spec.clone()))))
        .collect();
    let names: Vec<&str> = pipeline.streamlets.keys().map(String::as_str).collect();
    let capacities = edge_capacities(pipeline, &mut problems);
    // Outlets an input meant to read but misspelt: their "feeds nothing" would only repeat the typo.
    let mut meant: HashSet<(String, String)> = HashSet::new();

    for s in pipeline.streamlets.values() {
        // The outlets read so far, and how the input that read each was written.
        let mut read: HashMap<(String, String), &str> = HashMap::new();
        for (i, input) in s.inputs.iter().enumerate() {
            let at = loc.value(&Pipeline::pointer(&s.name, &format!("/inputs/{i}")));
            let (up_name, port) = split_input(input);
            let Some(&up) = index.get(up_name) else {
                let candidates = names.iter().copied().filter(|n| *n != s.name);
                let suggestion = did_you_mean(up_name, candidates);
                if let Some(name) = &suggestion {
                    let fixed = match port {
                        Some(port) => format!("{name}.{port}"),
                        None => name.clone(),
                    };
                    if let Ok(port) = resolved_port(pipeline, &fixed) {
                        meant.insert((name.clone(), port));
                    }
                }
                problems.push(Diagnostic::new(
                    Problem::UnknownStreamlet {
                        input: input.clone(),
                        suggestion,
                    },
                    at,
                ));
                continue;
            };
            let port = match resolved_port(pipeline, input) {
                Ok(port) => port,
                Err(outlets) => {
                    if let Some(close) = did_you_mean(port.unwrap_or(""), outlets.names.iter().copied()) {
                        meant.insert((up_name.to_string(), close));
                    }
                    problems.push(Diagnostic::new(
                        Problem::UnknownPort {
                            streamlet: up_name.to_string(),
                            port: port.unwrap_or("(default)").to_string(),
                            available: outlets.names.iter().map(|n| n.to_string()).collect(),
                        },
                        at,
                    ));
                    continue;
                }
            };
            if let Some(first) = read.insert((up_name.to_string(), port.clone()), input) {
                problems.push(Diagnostic::new(
                    Problem::DuplicateInput {
                        streamlet: s.name.clone(),
                        outlet: format!("{up_name}.{port}"),
                        first: first.to_string(),
                        again: input.clone(),
                    },
                    at,
                ));
                continue;
            }
            let via = capacities.get(&(format!("{up_name}.{port}"), s.name.clone()));
            let capacity = match via {
                Some(Via::Memory { capacity: Some(c) }) => *c,
                _ => pipeline.defaults.channel_capacity,
            };
            let kafka = match via {
                Some(Via::Kafka { topic, partitions }) => Some(KafkaEdge {
                    topic: topic.clone(),
                    partitions: partitions.unwrap_or(1),
                }),
                Some(Via::Memory { .. }) => None,
                None if pipeline.defaults.transport == Transport::Kafka => Some(KafkaEdge {
                    topic: None,
                    partitions: 1,
                }),
                None => None,
            };
            graph.add_edge(up, index[s.name.as_str()], Edge { port, capacity, kafka });
            check_records(pipeline, up_name, s.name.as_str(), i, &mut problems);
        }
        if let Some(spec) = &s.spec {
            let key = loc.key(&Pipeline::pointer(&s.name, ""));
            let kind = spec.kind.name().to_string();
            if spec.kind.takes_inputs() && s.inputs.is_empty() {
                problems.push(Diagnostic::new(
                    Problem::MissingInputs {
                        streamlet: s.name.clone(),
                        kind,
                    },
                    key,
                ));
            } else if !spec.kind.takes_inputs() && !s.inputs.is_empty() {
                problems.push(Diagnostic::new(
                    Problem::UnexpectedInputs {
                        streamlet: s.name.clone(),
                        kind,
                    },
                    loc.key(&Pipeline::pointer(&s.name, "/inputs")),
                ));
            }
            check_record_schemas(pipeline, &s.name, spec, &mut problems);
            check_kind(pipeline, &s.name, spec, &mut problems);
        }
    }
    check_outlets(pipeline, &graph, &index, &meant, &mut problems);
    check_cycles(pipeline, &graph, &mut problems);
    Checked { graph, problems }
}

/// The outlet an input (`name` or `name.port`) means, by the one rule every check uses: the
/// port it names, or the streamlet's first outlet. `Err` with the outlets there are when it
/// names none of them. An input whose streamlet's configuration has problems of its own is
/// checked against every outlet its kind can have, so that no problem hides another.
fn resolved_port(pipeline: &Pipeline, input: &str) -> Result<String, crate::spec::Outlets> {
    let (name, port) = split_input(input);
    let Some(streamlet) = pipeline.streamlets.get(name) else {
        return Ok(port.unwrap_or("out").to_string());
    };
    match &streamlet.spec {
        Some(spec) => {
            let outlets = spec.kind.outlets();
            outlets.resolve(port).map(str::to_string).ok_or(outlets)
        }
        // Its configuration has problems of its own; a port its kind never has is one more.
        None => match streamlet.kind.as_deref().and_then(crate::spec::KindConfig::any_outlets) {
            Some(names) => {
                let outlets = crate::spec::Outlets { names, optional: &[] };
                outlets.resolve(port).map(str::to_string).ok_or(outlets)
            }
            None => Ok(port.unwrap_or("out").to_string()),
        },
    }
}

/// Per-edge settings from `edges:`, keyed by (`from.port`, `to`); edges that
/// name no input of the pipeline are problems.
fn edge_capacities(pipeline: &Pipeline, problems: &mut Vec<Diagnostic>) -> HashMap<(String, String), Via> {
    let mut capacities = HashMap::new();
    for (i, edge) in pipeline.edges.iter().enumerate() {
        let (from, _) = split_input(&edge.from);
        let to = pipeline.streamlets.get(&edge.to);
        let port = resolved_port(pipeline, &edge.from).ok();
        let exists = port.is_some()
            && to.is_some_and(|to| {
                to.inputs
                    .iter()
                    .any(|input| split_input(input).0 == from && resolved_port(pipeline, input).ok() == port)
            });
        let (true, Some(port)) = (exists, port) else {
            problems.push(Diagnostic::new(
                Problem::UnknownEdge {
                    from: edge.from.clone(),
                    to: edge.to.clone(),
                },
                pipeline.locator.value(&format!("/edges/{i}")),
            ));
            continue;
        };
        if let Some(via) = &edge.via {
            capacities.insert((format!("{from}.{port}"), edge.to.clone()), via.clone());
        }
    }
    capacities
}

fn check_outlets(
    pipeline: &Pipeline,
    graph: &DiGraph<(String, Option<StreamletSpec>), Edge>,
    index: &HashMap<&str, NodeIndex>,
    meant: &HashSet<(String, String)>,
    problems: &mut Vec<Diagnostic>,
) {
    for s in pipeline.streamlets.values() {
        let Some(spec) = &s.spec else { continue };
        let outlets = spec.kind.outlets();
        for (i, port) in spec.discard.iter().enumerate() {
            if !outlets.names.contains(&port.as_str()) {
                problems.push(Diagnostic::new(
                    Problem::UnknownPort {
                        streamlet: s.name.clone(),
                        port: port.clone(),
                        available: outlets.names.iter().map(|n| n.to_string()).collect(),
                    },
                    pipeline
                        .locator
                        .value(&Pipeline::pointer(&s.name, &format!("/discard/{i}"))),
                ));
            }
        }
        let node = index[s.name.as_str()];
        let consumed: HashSet<&str> = graph
            .edges_directed(node, petgraph::Direction::Outgoing)
            .map(|e| e.weight().port.as_str())
            .collect();
        for port in outlets.names {
            let fine = consumed.contains(port)
                || outlets.optional.contains(port)
                || spec.discard.iter().any(|d| d == port)
                || meant.contains(&(s.name.clone(), port.to_string()));
            if !fine {
                problems.push(Diagnostic::new(
                    Problem::UnconsumedOutlet {
                        streamlet: s.name.clone(),
                        port: port.to_string(),
                    },
                    pipeline.locator.key(&Pipeline::pointer(&s.name, "")),
                ));
            }
        }
    }
}

/// One problem per cycle, naming its streamlets in the order records would loop.
fn check_cycles(
    pipeline: &Pipeline,
    graph: &DiGraph<(String, Option<StreamletSpec>), Edge>,
    problems: &mut Vec<Diagnostic>,
) {
    for component in tarjan_scc(graph) {
        let looped = component.len() > 1 || graph.contains_edge(component[0], component[0]);
        if !looped {
            continue;
        }
        let members: HashSet<NodeIndex> = component.iter().copied().collect();
        // Start from the streamlet written first, and walk the cycle back to it.
        let Some(&start) = component.iter().min_by_key(|n| n.index()) else {
            continue;
        };
        let path = cycle_from(graph, start, &members);
        let streamlets: Vec<String> = path.iter().map(|n| graph[*n].0.clone()).collect();
        problems.push(Diagnostic::new(
            Problem::Cycle { streamlets },
            pipeline.locator.key(&Pipeline::pointer(&graph[start].0, "")),
        ));
    }
}

fn cycle_from<N, E>(graph: &DiGraph<N, E>, start: NodeIndex, members: &HashSet<NodeIndex>) -> Vec<NodeIndex> {
    let mut path = vec![start];
    let mut visited = HashSet::from([start]);
    fn dfs<N, E>(
        graph: &DiGraph<N, E>,
        start: NodeIndex,
        members: &HashSet<NodeIndex>,
        path: &mut Vec<NodeIndex>,
        visited: &mut HashSet<NodeIndex>,
    ) -> bool {
        let Some(&here) = path.last() else {
            return false;
        };
        for next in graph.neighbors(here) {
            if next == start {
                return true;
            }
            if members.contains(&next) && visited.insert(next) {
                path.push(next);
                if dfs(graph, start, members, path, visited) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    dfs(graph, start, members, &mut path, &mut visited);
    path
}

/// Reads a record schema, reporting it when it is not a usable JSON Schema.
fn read_record_schema(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    jsonschema::validator_for(&value).map_err(|e| e.to_string())?;
    Ok(value)
}
/// The problems a kind finds in its own configuration, where they are.
fn check_kind(pipeline: &Pipeline, name: &str, spec: &StreamletSpec, problems: &mut Vec<Diagnostic>) {
    for finding in spec.kind.check() {
        let pointer = Pipeline::pointer(name, &finding.pointer);
        let at = match finding.at {
            At::Key => pipeline.locator.key(&pointer),
            At::Value => pipeline.locator.value(&pointer),
        };
        problems.push(Diagnostic::new(finding.problem, at));
    }
    // Streamlets a configuration names by kind: the scorer an evaluator's rules change or a
    // trainer publishes into, the evaluator a trainer's quality floor reads.
    let named: Vec<(&String, &str, &str, &str)> = match &spec.kind {
        crate::spec::KindConfig::Evaluator(c) => {
            c.scorer.iter().map(|s| (s, "scorer", "a scorer", "/scorer")).collect()
        }
        crate::spec::KindConfig::Trainer(c) => {
            std::iter::once((&c.publish.scorer, "scorer", "a scorer", "/publish/scorer"))
                .chain(
                    c.when
                        .quality
                        .iter()
                        .map(|q| (&q.evaluator, "evaluator", "an evaluator", "/when/quality/evaluator")),
                )
                .collect()
        }
        _ => Vec::new(),
    };
    for (wanted, kind, a_kind, pointer) in named {
        let of_kind = |s: &&crate::spec::Streamlet| match &s.spec {
            Some(spec) => spec.kind.name() == kind,
            None => s.kind.as_deref() == Some(kind),
        };
        if pipeline.streamlets.get(wanted).is_some_and(|s| of_kind(&s)) {
            continue;
        }
        let candidates = pipeline.streamlets.values().filter(of_kind).map(|s| s.name.as_str());
        let mut reason = format!("`{wanted}` is not {a_kind} of this pipeline");
        if let Some(close) = did_you_mean(wanted, candidates) {
            reason.push_str(&format!(" (did you mean `{close}`?)"));
        }
        problems.push(Diagnostic::new(
            Problem::InvalidValue {
                field: kind.into(),
                reason,
            },
            pipeline.locator.value(&Pipeline::pointer(name, pointer)),
        ));
    }
}

/// Every record schema a streamlet names must be a valid JSON Schema.
fn check_record_schemas(pipeline: &Pipeline, name: &str, spec: &StreamletSpec, problems: &mut Vec<Diagnostic>) {
    let mut spec = spec.clone();
    for field in spec.paths_mut() {
        let is_schema = field.role == crate::spec::PathRole::RecordSchema;
        if !is_schema || !field.path.is_file() {
            continue;
        }
        if let Err(reason) = read_record_schema(field.path) {
            problems.push(Diagnostic::new(
                Problem::InvalidRecordSchema {
                    path: field.path.display().to_string(),
                    reason,
                },
                pipeline.locator.value(&Pipeline::pointer(name, &field.pointer)),
            ));
        }
    }
}

/// Where both ends of an edge declare record schemas, the outlet's must fit the inlet's.
fn check_records(pipeline: &Pipeline, from: &str, to: &str, input_index: usize, problems: &mut Vec<Diagnostic>) {
    let input = &pipeline.streamlets[to].inputs[input_index];
    let (_, port) = split_input(input);
    let (Some(up), Some(down)) = (&pipeline.streamlets[from].spec, &pipeline.streamlets[to].spec) else {
        return;
    };
    let Some(port) = up.kind.outlets().resolve(port) else {
        return; // reported as an unknown port
    };
    let (Some(out_path), Some(in_path)) = (up.kind.emitted_schema(port), down.accepts.as_ref()) else {
        return;
    };
    let (Ok(outlet), Ok(inlet)) = (read_record_schema(out_path), read_record_schema(in_path)) else {
        return; // reported by check_record_schemas
    };
    let reasons = records::incompatibilities(&outlet, &inlet);
    if !reasons.is_empty() {
        problems.push(Diagnostic::new(
            Problem::IncompatibleRecords {
                from: input.clone(),
                to: to.to_string(),
                reason: reasons.join("; "),
            },
            pipeline
                .locator
                .value(&Pipeline::pointer(to, &format!("/inputs/{input_index}"))),
        ));
    }
}
