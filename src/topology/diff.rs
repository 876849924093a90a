//! What a reload changes, as a value: the streamlets to add, to change (rebuild and hand over
//! to) and to remove, and the edges to open and close, computed from the running
//! configuration's shape and the new one's. Pure, so every kind of edit is tested here; the
//! runtime only applies it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use petgraph::visit::EdgeRef;
use sha2::{Digest, Sha256};

use super::Topology;
use crate::spec::StreamletSpec;

/// An edge: records of `from`'s outlet `port` go to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub from: String,
    pub port: String,
    pub to: String,
}

/// What a reload compares of a configuration: each streamlet's fingerprint, and its edges
/// with their capacities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    pub streamlets: BTreeMap<String, String>,
    pub edges: BTreeMap<EdgeKey, usize>,
}

impl Shape {
    /// The shape of a verified topology, its files read now.
    pub fn of(topology: &Topology) -> Shape {
        Shape {
            streamlets: topology
                .graph
                .node_weights()
                .map(|n| (n.name.clone(), fingerprint(&n.spec)))
                .collect(),
            edges: topology
                .graph
                .edge_references()
                .map(|e| {
                    let key = EdgeKey {
                        from: topology.graph[e.source()].name.clone(),
                        port: e.weight().port.clone(),
                        to: topology.graph[e.target()].name.clone(),
                    };
                    (key, e.weight().capacity)
                })
                .collect(),
        }
    }
}

/// Told apart from every other fingerprint: a file that cannot be read now.
static UNREADABLE: AtomicU64 = AtomicU64::new(0);

/// A fingerprint of a streamlet's resolved configuration and of the content of the files that
/// are part of it (record schemas, a training profile): equal fingerprints mean a reload may
/// leave the streamlet running. A file that cannot be read makes a fingerprint equal to no
/// other, so the streamlet is rebuilt (and its problem reported) rather than taken as unchanged.
pub fn fingerprint(spec: &StreamletSpec) -> String {
    let mut hasher = Sha256::new();
    // The resolved spec, every path in it absolute: the same text for the same configuration.
    hasher.update(format!("{spec:?}").as_bytes());
    let mut spec = spec.clone();
    for field in spec.paths_mut() {
        if !field.role.is_configuration() {
            continue;
        }
        hasher.update(field.path.as_os_str().as_encoded_bytes());
        match std::fs::read(&*field.path) {
            Ok(content) => {
                hasher.update((content.len() as u64).to_le_bytes());
                hasher.update(content);
            }
            Err(_) => hasher.update(format!("unreadable #{}", UNREADABLE.fetch_add(1, Ordering::Relaxed))),
        }
    }
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What a reload does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopologyDiff {
    /// New streamlets, started.
    pub added: Vec<String>,
    /// Streamlets whose configuration (or a file of it) changed, or that gain an input (a
    /// running inlet cannot grow): built anew, then handed the old one's queues.
    pub changed: Vec<String>,
    /// Streamlets no longer in the configuration: they stop taking in and drain.
    pub removed: Vec<String>,
    /// Edges to open, with their capacity.
    pub opened: Vec<(EdgeKey, usize)>,
    /// Edges to close.
    pub closed: Vec<EdgeKey>,
}

impl TopologyDiff {
    /// From the running configuration (`finished`: streamlets that ran to their end, such as a
    /// generator; they are not started again) to `new`.
    pub fn between(running: &Shape, finished: &BTreeSet<String>, new: &Shape) -> TopologyDiff {
        let opened: Vec<(EdgeKey, usize)> = new
            .edges
            .iter()
            .filter(|(k, _)| !running.edges.contains_key(*k))
            .map(|(k, c)| (k.clone(), *c))
            .collect();
        let gains_input: BTreeSet<&str> = opened.iter().map(|(k, _)| k.to.as_str()).collect();
        let added = new
            .streamlets
            .keys()
            .filter(|n| !running.streamlets.contains_key(*n) && !finished.contains(*n))
            .cloned()
            .collect();
        let changed = new
            .streamlets
            .iter()
            .filter(|(n, f)| {
                running
                    .streamlets
                    .get(*n)
                    .is_some_and(|old| old != *f || gains_input.contains(n.as_str()))
            })
            .map(|(n, _)| n.clone())
            .collect();
        let removed = running
            .streamlets
            .keys()
            .filter(|n| !new.streamlets.contains_key(*n))
            .cloned()
            .collect();
        let closed = running
            .edges
            .keys()
            .filter(|k| !new.edges.contains_key(*k))
            .cloned()
            .collect();
        TopologyDiff {
            added,
            changed,
            removed,
            opened,
            closed,
        }
    }

    /// Whether the reload changes nothing that runs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.opened.is_empty()
            && self.closed.is_empty()
    }

    /// The streamlets to build before anything old stops.
    pub fn to_build(&self) -> Vec<String> {
        self.added.iter().chain(&self.changed).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: &str, port: &str, to: &str) -> EdgeKey {
        EdgeKey {
            from: from.into(),
            port: port.into(),
            to: to.into(),
        }
    }

    fn shape(streamlets: &[(&str, &str)], edges: &[(&str, &str, &str)]) -> Shape {
        Shape {
            streamlets: streamlets.iter().map(|(n, f)| (n.to_string(), f.to_string())).collect(),
            edges: edges.iter().map(|(f, p, t)| (edge(f, p, t), 16)).collect(),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let a = shape(&[("in", "1"), ("out", "2")], &[("in", "out", "out")]);
        assert!(TopologyDiff::between(&a, &BTreeSet::new(), &a).is_empty());
    }

    #[test]
    fn a_new_streamlet_between_two_adds_it_and_rewires_its_neighbours() {
        let old = shape(&[("in", "1"), ("out", "2")], &[("in", "out", "out")]);
        let new = shape(
            &[("in", "1"), ("check", "3"), ("out", "2")],
            &[("in", "out", "check"), ("check", "valid", "out")],
        );
        let diff = TopologyDiff::between(&old, &BTreeSet::new(), &new);
        assert_eq!(diff.added, names(&["check"]));
        // `out` gains an input from `check`: its inlet is built anew.
        assert_eq!(diff.changed, names(&["out"]));
        assert!(diff.removed.is_empty());
        assert_eq!(diff.closed, vec![edge("in", "out", "out")]);
        assert_eq!(
            diff.opened.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec![edge("check", "valid", "out"), edge("in", "out", "check")]
        );
        assert_eq!(diff.to_build(), names(&["check", "out"]));
    }

    #[test]
    fn a_changed_fingerprint_changes_the_streamlet_and_a_dropped_one_is_removed() {
        let old = shape(
            &[("in", "1"), ("score", "2"), ("side", "4"), ("out", "3")],
            &[("in", "out", "score"), ("score", "out", "out"), ("in", "out", "side")],
        );
        let new = shape(
            &[("in", "1"), ("score", "2b"), ("out", "3")],
            &[("in", "out", "score"), ("score", "out", "out")],
        );
        let diff = TopologyDiff::between(&old, &BTreeSet::new(), &new);
        assert_eq!(diff.changed, names(&["score"]));
        assert_eq!(diff.removed, names(&["side"]));
        assert_eq!(diff.closed, vec![edge("in", "out", "side")]);
        assert!(diff.added.is_empty() && diff.opened.is_empty());
    }

    #[test]
    fn losing_an_input_closes_the_edge_without_rebuilding_the_consumer() {
        let old = shape(
            &[("a", "1"), ("b", "2"), ("out", "3")],
            &[("a", "out", "out"), ("b", "out", "out")],
        );
        let new = shape(&[("a", "1"), ("b", "2"), ("out", "3")], &[("a", "out", "out")]);
        let diff = TopologyDiff::between(&old, &BTreeSet::new(), &new);
        assert!(diff.changed.is_empty(), "{diff:?}");
        assert_eq!(diff.closed, vec![edge("b", "out", "out")]);
    }

    #[test]
    fn a_streamlet_that_ran_to_its_end_is_not_started_again() {
        let old = shape(&[("out", "2")], &[]);
        let new = shape(&[("gen", "1"), ("out", "2")], &[("gen", "out", "out")]);
        let finished: BTreeSet<String> = ["gen".to_string()].into();
        let diff = TopologyDiff::between(&old, &finished, &new);
        assert!(diff.added.is_empty(), "{diff:?}");
    }

    #[test]
    fn fingerprints_follow_the_content_of_the_files_of_the_configuration() {
        let dir = tempfile::tempdir().expect("dir");
        let schema = dir.path().join("schema.json");
        std::fs::write(&schema, r#"{"type": "object"}"#).expect("schema");
        let table = dir.path().join("table.csv");
        std::fs::write(&table, "k,v\n1,2\n").expect("table");
        let yaml = format!("kind: validator\ninputs: [in]\nschema: {}\n", schema.display());
        let spec: StreamletSpec = serde_yaml_ng::from_str(&yaml).expect("a spec");
        let first = fingerprint(&spec);
        assert_eq!(fingerprint(&spec), first, "the same files, the same fingerprint");
        std::fs::write(&schema, r#"{"type": "object", "required": ["id"]}"#).expect("schema");
        let edited = fingerprint(&spec);
        assert_ne!(edited, first, "an edited schema is a change");
        std::fs::remove_file(&schema).expect("removed");
        let gone = fingerprint(&spec);
        assert_ne!(gone, edited);
        assert_ne!(
            fingerprint(&spec),
            gone,
            "an unreadable file matches nothing, not even itself"
        );

        // A table is data the enricher follows by itself: editing it changes no fingerprint.
        let yaml = format!(
            "kind: enricher\ninputs: [in]\ntable: {{ type: file, path: {}, key: k }}\n",
            table.display()
        );
        let spec: StreamletSpec = serde_yaml_ng::from_str(&yaml).expect("a spec");
        let before = fingerprint(&spec);
        std::fs::write(&table, "k,v\n1,3\n").expect("table");
        assert_eq!(fingerprint(&spec), before);
    }
}
