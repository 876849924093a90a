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

impl Topology {
    /// A fingerprint of each streamlet's resolved configuration, including the content of the
    /// record schemas it reads: equal fingerprints mean a reload can leave the streamlet running.
    pub fn fingerprints(&self) -> std::collections::BTreeMap<String, String> {
        use sha2::{Digest, Sha256};
        self.graph
            .node_weights()
            .map(|node| {
                let mut hasher = Sha256::new();
                hasher.update(format!("{:?}", node.spec).as_bytes());
                let mut spec = node.spec.clone();
                for field in spec.paths_mut() {
                    if field.role == crate::spec::PathRole::Input("record schema") {
                        hasher.update(std::fs::read(&*field.path).unwrap_or_default());
                    }
                }
                let hex: String = hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
                (node.name.clone(), hex)
            })
            .collect()
    }

    /// A hash of the whole configuration: every streamlet's fingerprint and every edge.
    pub fn config_hash(&self) -> String {
        use petgraph::visit::EdgeRef;
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for (name, fingerprint) in self.fingerprints() {
            hasher.update(format!("{name}={fingerprint};").as_bytes());
        }
        let mut edges: Vec<String> = self
            .graph
            .edge_references()
            .map(|e| {
                let w = e.weight();
                format!(
                    "{}.{}>{}:{}",
                    self.graph[e.source()].name,
                    w.port,
                    self.graph[e.target()].name,
                    w.capacity
                )
            })
            .collect();
        edges.sort();
        hasher.update(edges.join(",").as_bytes());
        hasher.update(format!("{:?}", self.defaults).as_bytes());
        hasher.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// Every file the configuration was read from: the pipeline, streamlet definitions, record schemas.
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let mut files: Vec<std::path::PathBuf> = vec![self.locator.file().to_path_buf()];
        files.extend(self.locator.definition_files());
        for node in self.graph.node_weights() {
            let mut spec = node.spec.clone();
            for field in spec.paths_mut() {
                if field.role == crate::spec::PathRole::Input("record schema") {
                    files.push(field.path.clone());
                }
            }
        }
        files.sort();
        files.dedup();
        files
    }
}
