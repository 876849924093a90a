//! A loaded pipeline → a verified petgraph topology of streamlets and the edges between their ports.

pub mod diff;
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
    /// Carried through a Kafka topic rather than in memory.
    pub kafka: Option<KafkaEdge>,
}

/// A Kafka topic between two streamlets; `<pipeline>.<streamlet>.<outlet>` when not named.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaEdge {
    pub topic: Option<String>,
    pub partitions: i32,
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

/// Carries every Kafka edge through its topic: the outlet feeds a Kafka sink (one per outlet and
/// topic), and a Kafka source (consumer group `<pipeline>.<streamlet>`) feeds the inlet. The
/// streamlets on either side do not know. The runtime does this before it runs a topology.
pub fn carry_kafka_edges(topology: &mut Topology) {
    use crate::spec::{
        EgressConfig, IngressConfig, KafkaSettings, KafkaSinkConfig, KafkaSourceConfig, KindConfig, SinkConfig,
        SourceConfig, StartFrom,
    };
    use petgraph::visit::EdgeRef;
    let kafka_edges: Vec<_> = topology
        .graph
        .edge_references()
        .filter_map(|e| {
            e.weight()
                .kafka
                .clone()
                .map(|k| (e.id(), e.source(), e.target(), e.weight().clone(), k))
        })
        .collect();
    let spec = |kind| StreamletSpec {
        inputs: Vec::new(),
        discard: Vec::new(),
        accepts: None,
        kind,
    };
    let mut sinks: HashMap<String, NodeIndex> = HashMap::new();
    for (_, from, to, edge, kafka) in &kafka_edges {
        let (from_name, to_name) = (topology.graph[*from].name.clone(), topology.graph[*to].name.clone());
        let topic = kafka
            .topic
            .clone()
            .unwrap_or_else(|| format!("{}.{from_name}.{}", topology.name, edge.port));
        sinks.entry(topic.clone()).or_insert_with(|| {
            let node = topology.graph.add_node(Node {
                name: format!("{from_name}-{}-to-kafka", edge.port),
                spec: spec(KindConfig::Egress(EgressConfig {
                    sink: SinkConfig::Kafka(KafkaSinkConfig {
                        topic: topic.clone(),
                        key: None,
                        settings: KafkaSettings::default(),
                        partitions: kafka.partitions,
                        replication: 1,
                    }),
                })),
            });
            topology.graph.add_edge(
                *from,
                node,
                Edge {
                    port: edge.port.clone(),
                    capacity: edge.capacity,
                    kafka: None,
                },
            );
            node
        });
        let source = topology.graph.add_node(Node {
            name: format!("kafka-to-{to_name}-from-{from_name}-{}", edge.port),
            spec: spec(KindConfig::Ingress(IngressConfig {
                source: SourceConfig::Kafka(KafkaSourceConfig {
                    topic,
                    group: Some(format!("{}.{to_name}", topology.name)),
                    settings: KafkaSettings::default(),
                    start: StartFrom::Earliest,
                    partitions: kafka.partitions,
                    replication: 1,
                }),
                batch_size: None,
                emits: None,
            })),
        });
        topology.graph.add_edge(
            source,
            *to,
            Edge {
                port: "out".into(),
                capacity: edge.capacity,
                kafka: None,
            },
        );
    }
    // Removing edges moves the last one into the hole: remove from the highest id down.
    let mut ids: Vec<_> = kafka_edges.iter().map(|(id, ..)| *id).collect();
    ids.sort_by_key(|id| std::cmp::Reverse(id.index()));
    for id in ids {
        topology.graph.remove_edge(id);
    }
    topology.by_name = topology
        .graph
        .node_indices()
        .map(|i| (topology.graph[i].name.clone(), i))
        .collect();
}

impl Topology {
    /// A fingerprint of each streamlet (see [`diff::fingerprint`]).
    pub fn fingerprints(&self) -> std::collections::BTreeMap<String, String> {
        diff::Shape::of(self).streamlets
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

    /// Every file the configuration was read from: the pipeline, streamlet definitions, and the
    /// files that are part of it (record schemas, training profiles).
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let mut files: Vec<std::path::PathBuf> = vec![self.locator.file().to_path_buf()];
        files.extend(self.locator.definition_files());
        for node in self.graph.node_weights() {
            let mut spec = node.spec.clone();
            for field in spec.paths_mut() {
                if field.role.is_configuration() {
                    files.push(field.path.clone());
                }
            }
        }
        files.sort();
        files.dedup();
        files
    }
}
