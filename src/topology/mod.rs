//! A loaded pipeline → a verified petgraph topology of streamlets and the edges between their ports.

pub mod diff;
mod records;
pub mod render;
mod verify;

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::spec::{Defaults, LoadError, Locator, Pipeline, Report, StreamletSpec};
use crate::streamlets::kind::{Port, SourcePort};

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

/// A verified pipeline. The runtime carries its Kafka edges through their topics
/// ([`carry_kafka_edges`]) and checks the result again ([`Topology::check_wiring`]) before it
/// runs it; a pipeline test replaces its sources and sinks the same way.
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
        if !sinks.contains_key(&topic) {
            let name = topology.unused_name(format!("{from_name}-{}-to-kafka", edge.port));
            let node = topology.graph.add_node(Node {
                name: name.clone(),
                spec: spec(KindConfig::Egress(EgressConfig {
                    sink: SinkConfig::Kafka(KafkaSinkConfig {
                        topic: topic.clone(),
                        key: None,
                        settings: KafkaSettings::default(),
                        partitions: kafka.partitions,
                        replication: 1,
                        lineage_headers: true,
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
            topology.by_name.insert(name, node);
            sinks.insert(topic.clone(), node);
        }
        let name = topology.unused_name(format!("kafka-to-{to_name}-from-{from_name}-{}", edge.port));
        let source = topology.graph.add_node(Node {
            name: name.clone(),
            spec: spec(KindConfig::Ingress(IngressConfig {
                source: SourceConfig::Kafka(KafkaSourceConfig {
                    topic,
                    group: Some(format!("{}.{to_name}", topology.name)),
                    settings: KafkaSettings::default(),
                    start: StartFrom::Earliest,
                    partitions: kafka.partitions,
                    replication: 1,
                    metadata: None,
                }),
                batch_size: None,
                emits: None,
            })),
        });
        topology.graph.add_edge(
            source,
            *to,
            Edge {
                port: SourcePort::Out.name().into(),
                capacity: edge.capacity,
                kafka: None,
            },
        );
        topology.by_name.insert(name, source);
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
    /// The threads the scorers score on, each busy on a core while it scores: a scorer's
    /// sessions, or with a strategy its models (each model answers on a thread of its own,
    /// while the sessions wait for the answers).
    pub fn scoring_threads(&self) -> usize {
        self.graph
            .node_weights()
            .map(|node| match &node.spec.kind {
                crate::streamlets::kind::KindConfig::Scorer(scorer) if scorer.strategy.is_some() => {
                    scorer.sources().len().max(1)
                }
                crate::streamlets::kind::KindConfig::Scorer(scorer) => scorer.sessions.max(1),
                _ => 0,
            })
            .sum()
    }

    /// How many threads the runtime's async workers get on a machine of `cores` cores: the
    /// cores the scorers leave ([`scoring_threads`](Self::scoring_threads)), at least one.
    /// The streamlets' async work is light beside scoring (and librdkafka has threads of its
    /// own): a worker beyond the free cores only adds wake-ups and hand-offs between cores.
    pub fn worker_threads(&self, cores: usize) -> usize {
        cores.saturating_sub(self.scoring_threads()).max(1)
    }

    /// `base`, or `base-2`, `base-3`... : the first that names no streamlet yet. For the
    /// streamlets sluice adds (Kafka edges, pipeline tests), which must not take a user's name.
    pub fn unused_name(&self, base: String) -> String {
        if !self.by_name.contains_key(&base) {
            return base;
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|name| !self.by_name.contains_key(name))
            .unwrap_or(base)
    }

    /// Checks the graph as it will run, after it was rewritten (Kafka edges carried, a test's
    /// sources and sinks put in): every name once, every edge from an outlet its streamlet has
    /// and carried in memory, every streamlet that takes inputs fed. What it finds is a bug in
    /// the rewriting, said in words.
    pub fn check_wiring(&self) -> Result<(), String> {
        use petgraph::visit::EdgeRef;
        let mut seen = std::collections::HashSet::new();
        for node in self.graph.node_weights() {
            if !seen.insert(node.name.as_str()) {
                return Err(format!("two streamlets are named `{}`", node.name));
            }
        }
        if self.by_name.len() != self.graph.node_count()
            || self
                .by_name
                .iter()
                .any(|(name, i)| self.graph.node_weight(*i).is_none_or(|n| &n.name != name))
        {
            return Err("the streamlets' names and the graph disagree".into());
        }
        for e in self.graph.edge_references() {
            let from = &self.graph[e.source()];
            if !from.spec.kind.outlets().names.contains(&e.weight().port.as_str()) {
                return Err(format!(
                    "`{}` has no outlet `{}` to feed `{}`",
                    from.name,
                    e.weight().port,
                    self.graph[e.target()].name
                ));
            }
            if e.weight().kafka.is_some() {
                return Err(format!(
                    "the edge `{}.{}` → `{}` is still to be carried through Kafka",
                    from.name,
                    e.weight().port,
                    self.graph[e.target()].name
                ));
            }
        }
        for i in self.graph.node_indices() {
            let node = &self.graph[i];
            let fed = self
                .graph
                .edges_directed(i, petgraph::Direction::Incoming)
                .next()
                .is_some();
            if node.spec.kind.takes_inputs() && !fed {
                return Err(format!("`{}` takes inputs but nothing feeds it", node.name));
            }
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamlets_sluice_adds_for_kafka_edges_never_take_a_users_name() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("p.yaml");
        // The user's egress is named as sluice would name the sink that carries `a.out`.
        std::fs::write(
            &file,
            "pipeline: names
defaults: { transport: kafka }
streamlets:
  a:
    kind: ingress
    source: { type: generator, count: 1 }
  a-out-to-kafka:
    kind: egress
    inputs: [a]
    sink: { type: blackhole }
  kafka-to-b-from-a-out:
    kind: egress
    inputs: [a]
    sink: { type: blackhole }
",
        )
        .expect("pipeline");
        let mut topology = load(&file).expect("a valid pipeline");
        carry_kafka_edges(&mut topology);
        topology.check_wiring().expect("wired right");
        let names: std::collections::BTreeSet<&str> = topology.graph.node_weights().map(|n| n.name.as_str()).collect();
        assert_eq!(names.len(), topology.graph.node_count(), "{names:?}");
        assert!(names.contains("a-out-to-kafka-2"), "{names:?}");
        // Both user egresses are fed through Kafka, each by a source of its own.
        for user in ["a-out-to-kafka", "kafka-to-b-from-a-out"] {
            let i = topology.by_name[user];
            let feeders: Vec<&str> = topology
                .graph
                .neighbors_directed(i, petgraph::Direction::Incoming)
                .map(|f| topology.graph[f].name.as_str())
                .collect();
            assert_eq!(feeders.len(), 1, "{user}: {feeders:?}");
            assert!(feeders[0].starts_with("kafka-to-"), "{user}: {feeders:?}");
        }
    }

    #[test]
    fn the_async_workers_get_the_cores_the_scorers_sessions_leave_and_at_least_one() {
        let dir = tempfile::tempdir().expect("dir");
        let root = env!("CARGO_MANIFEST_DIR");
        let scorer = |name: &str, sessions: &str| {
            format!(
                "  {name}:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {root}/examples/house-prices/models, version: \"2\" }}
    inputs: [a]
    discard: [out, errors]
{sessions}"
            )
        };
        let pipeline = |scorers: &str| {
            let file = dir.path().join("p.yaml");
            std::fs::write(
                &file,
                format!(
                    "pipeline: threads
streamlets:
  a:
    kind: ingress
    source: {{ type: generator, count: 1 }}
{scorers}  out:
    kind: egress
    inputs: [a]
    sink: {{ type: blackhole }}
"
                ),
            )
            .expect("pipeline");
            load(&file).expect("a valid pipeline")
        };
        let none = pipeline("");
        assert_eq!(none.scoring_threads(), 0);
        assert_eq!(none.worker_threads(2), 2);
        let two = pipeline(&(scorer("one", "") + &scorer("two", "    sessions: 2\n")));
        assert_eq!(two.scoring_threads(), 3);
        assert_eq!(two.worker_threads(2), 1);
        assert_eq!(two.worker_threads(8), 5);
        assert_eq!(pipeline(&scorer("one", "")).worker_threads(2), 1);
        // With a strategy each model answers on a thread of its own; the sessions wait.
        let split = format!(
            "  ab:
    use: {root}/streamlets/house-price-gbm.yaml
    model: null
    models:
      a: {{ name: house-price, folder: {root}/examples/house-prices/models, version: \"1\" }}
      b: {{ name: house-price, folder: {root}/examples/house-prices/models, version: \"2\" }}
      c: {{ name: house-price, folder: {root}/examples/house-prices/models, version: \"2\" }}
    strategy: {{ split: {{ key: id, weights: {{ a: 50, b: 25, c: 25 }} }} }}
    inputs: [a]
    discard: [out, errors]
    sessions: 4
"
        );
        assert_eq!(pipeline(&split).scoring_threads(), 3);
        assert_eq!(pipeline(&(split + &scorer("one", ""))).worker_threads(8), 4);
    }

    #[test]
    fn a_graph_wired_wrong_is_told_apart() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("p.yaml");
        std::fs::write(
            &file,
            "pipeline: wiring
streamlets:
  a:
    kind: ingress
    source: { type: generator, count: 1 }
  b:
    kind: egress
    inputs: [a]
    sink: { type: blackhole }
",
        )
        .expect("pipeline");
        let topology = load(&file).expect("a valid pipeline");
        topology.check_wiring().expect("wired right");
        let mut renamed = topology.clone();
        let b = renamed.by_name["b"];
        renamed.graph[b].name = "a".into();
        assert!(renamed
            .check_wiring()
            .unwrap_err()
            .contains("two streamlets are named `a`"));
        let mut unfed = topology.clone();
        unfed.graph.clear_edges();
        assert!(unfed
            .check_wiring()
            .unwrap_err()
            .contains("`b` takes inputs but nothing feeds it"));
    }
}
