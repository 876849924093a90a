//! The topology as a picture: Graphviz DOT and Mermaid, with ports as edge labels.

use petgraph::dot::{Config, Dot};
use petgraph::visit::EdgeRef;

use super::Topology;

/// Graphviz DOT, one node per streamlet (labelled with its kind), edges labelled by port.
pub fn dot(topology: &Topology) -> String {
    let graph = &topology.graph;
    let body = Dot::with_attr_getters(
        graph,
        &[Config::EdgeNoLabel, Config::NodeNoLabel],
        &|_, edge| format!("label = \"{}\"", label(edge.weight())),
        &|_, (_, node)| format!("label = \"{}\\n({})\" shape = box", node.name, node.spec.kind.name()),
    );
    format!("// pipeline {}\n{body:?}", topology.name)
}

/// A Mermaid flowchart, left to right.
pub fn mermaid(topology: &Topology) -> String {
    let graph = &topology.graph;
    let mut out = format!("%% pipeline {}\nflowchart LR\n", topology.name);
    for i in graph.node_indices() {
        let node = &graph[i];
        out.push_str(&format!(
            "    {}[\"{}<br/>({})\"]\n",
            mermaid_id(&node.name),
            node.name,
            node.spec.kind.name()
        ));
    }
    for e in graph.edge_references() {
        out.push_str(&format!(
            "    {} -->|{}| {}\n",
            mermaid_id(&graph[e.source()].name),
            label(e.weight()),
            mermaid_id(&graph[e.target()].name)
        ));
    }
    out
}

/// An edge's label: its port, and `kafka` when a topic carries it.
fn label(edge: &super::Edge) -> String {
    match &edge.kafka {
        Some(_) => format!("{} · kafka", edge.port),
        None => edge.port.clone(),
    }
}

/// Streamlet names may hold `-`, which Mermaid ids may not.
fn mermaid_id(name: &str) -> String {
    format!("s_{}", name.replace('-', "_"))
}
