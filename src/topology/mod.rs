//! A loaded pipeline → a verified petgraph topology of streamlets and the edges between their ports.

mod records;
pub mod render;
mod verify;

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::spec::{Defaults, LoadError, Locator, Pipeline, Report, StreamletSpec};

/// A streamlet in the running graph.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub spec: StreamletSpec,
}

/// An edge from an outlet (`port`) of one streamlet to the inlet of another.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub port: String,
    /// Batches the edge holds before its producer waits.
    pub capacity: usize,
}

/// A verified pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Topology {
    pub name: String,
    pub defaults: Defaults,
    pub graph: DiGraph<Node, Edge>,
    pub by_name: HashMap<String, NodeIndex>,
    pub locator: Locator,
}

/// `name` or `name.port`, split.
pub fn split_input(input: &str) -> (&str, Option<&str>) {
    match input.split_once('.') {
        Some((name, port)) => (name, Some(port)),
        None => (input, None),
    }
}

/// Loads and verifies a pipeline file: every problem at once, or a topology.
pub fn load(path: &std::path::Path) -> Result<Topology, LoadError> {
    build(crate::spec::load(path)?).map_err(LoadError::Problems)
}

/// Verifies a loaded pipeline and builds its graph.
pub fn build(pipeline: Pipeline) -> Result<Topology, Report> {
    let checked = verify::verify(&pipeline);
    let mut diagnostics = pipeline.problems.clone();
    diagnostics.extend(checked.problems);
    if !diagnostics.is_empty() {
        diagnostics.sort_by(|a, b| {
            (&a.location.file, a.location.line, a.location.column).cmp(&(
                &b.location.file,
                b.location.line,
                b.location.column,
            ))
        });
        return Err(Report {
            diagnostics,
            sources: pipeline.locator.sources(),
        });
    }
    let graph = checked.graph.filter_map(
        |_, (name, spec)| {
            spec.clone().map(|spec| Node {
                name: name.clone(),
                spec,
            })
        },
        |_, edge| Some(edge.clone()),
    );
    let by_name = graph.node_indices().map(|i| (graph[i].name.clone(), i)).collect();
    Ok(Topology {
        name: pipeline.name,
        defaults: pipeline.defaults,
        graph,
        by_name,
        locator: pipeline.locator,
    })
}
