//! The kinds of streamlet, one variant each: the thin enum a pipeline's `kind:` selects, and
//! what every kind tells the verifier (its outlets, the paths it reads or writes, the schema
//! of what it emits). Each kind's configuration lives in its own folder.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::egress::config::EgressConfig;
use super::enricher::config::EnricherConfig;
use super::evaluator::config::EvaluatorConfig;
use super::ingress::config::IngressConfig;
use super::io::Io;
use super::merger::config::MergerConfig;
use super::scorer::config::ScorerConfig;
use super::trainer::config::TrainerConfig;
use super::validator::config::ValidatorConfig;
use super::Stop;
pub use crate::flow::ports::Port;
use crate::problem::Problem;
use strum::VariantNames;

/// The configuration of each streamlet kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KindConfig {
    Ingress(IngressConfig),
    Validator(ValidatorConfig),
    Merger(MergerConfig),
    Egress(EgressConfig),
    Scorer(ScorerConfig),
    Enricher(EnricherConfig),
    Evaluator(EvaluatorConfig),
    Trainer(TrainerConfig),
    /// A streamlet that no pipeline file can name: what a pipeline test puts in place of a
    /// source or a sink (`src/testing`).
    #[serde(skip)]
    Substitute(Substitute),
}

/// Each kind's fragment of the pipeline JSON Schema, from its own folder: the `$defs` it owns,
/// its own one named as the kind (the spec layer puts them together). The order is the one the
/// schema lists the kinds in.
pub const KIND_SCHEMAS: &[(&str, &str)] = &[
    ("ingress", include_str!("ingress/schema.json")),
    ("validator", include_str!("validator/schema.json")),
    ("enricher", include_str!("enricher/schema.json")),
    ("scorer", include_str!("scorer/schema.json")),
    ("merger", include_str!("merger/schema.json")),
    ("egress", include_str!("egress/schema.json")),
    ("evaluator", include_str!("evaluator/schema.json")),
    ("trainer", include_str!("trainer/schema.json")),
];

/// What every kind tells the verifier and the runtime about itself. Each kind's configuration
/// implements it in its own room.
pub trait Kind {
    /// The outlets it has.
    fn outlets(&self) -> Outlets;
    /// Whether it reads records from other streamlets.
    fn takes_inputs(&self) -> bool {
        true
    }
    /// Every path its configuration names, with the JSON pointer of each.
    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        Vec::new()
    }
    /// The JSON Schema file of the records a port emits, where the configuration declares one.
    fn emitted_schema(&self, _port: &str) -> Option<&PathBuf> {
        None
    }
    /// What is wrong with its configuration beyond what the pipeline schema says (its paths
    /// already resolved; a missing file is reported elsewhere).
    fn check(&self) -> Vec<Finding> {
        Vec::new()
    }
}

/// Whether a problem points at a key or at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Key,
    Value,
}

/// A problem a kind finds in its configuration, at a JSON pointer within the streamlet.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub pointer: String,
    pub at: At,
    pub problem: Problem,
}

impl Finding {
    pub fn at_value(pointer: impl Into<String>, problem: Problem) -> Finding {
        Finding {
            pointer: pointer.into(),
            at: At::Value,
            problem,
        }
    }

    pub fn at_key(pointer: impl Into<String>, problem: Problem) -> Finding {
        Finding {
            pointer: pointer.into(),
            at: At::Key,
            problem,
        }
    }
}

/// A streamlet run in place of one of the pipeline's: a pipeline test's given records or its
/// capture. It says what it is and runs itself.
pub trait Substituted: Send + Sync + std::fmt::Debug {
    /// What it is called where a kind's name would be shown.
    fn name(&self) -> &'static str;
    fn outlets(&self) -> Outlets;
    fn takes_inputs(&self) -> bool;
    fn run(&self, io: Io) -> BoxFuture<'static, Result<(), Stop>>;
}

/// A substitute streamlet, shared; equal only to itself.
#[derive(Debug, Clone)]
pub struct Substitute(pub Arc<dyn Substituted>);

impl PartialEq for Substitute {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What a path in the configuration points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    /// Records read by an ingress: must exist.
    InputFile,
    /// A JSON Schema of records (`schema`, `emits`, `accepts`): must exist; part of the
    /// configuration (a change to it reloads the streamlet).
    RecordSchema,
    /// A training profile: must exist; part of the configuration.
    TrainingProfile,
    /// An enricher's table: must exist; the enricher follows its changes itself.
    TableFile,
    /// A folder of model versions: must exist; the scorer follows it itself.
    ModelFolder,
    /// The folder a command runs in: must exist.
    WorkingFolder,
    /// Written by the pipeline: created when run.
    Output,
}

impl PathRole {
    /// What the path is, in a problem's words (`record schema `x` does not exist`).
    pub fn describe(self) -> &'static str {
        match self {
            PathRole::InputFile => "input file",
            PathRole::RecordSchema => "record schema",
            PathRole::TrainingProfile => "training profile",
            PathRole::TableFile => "table file",
            PathRole::ModelFolder => "model folder",
            PathRole::WorkingFolder => "working directory",
            PathRole::Output => "output file",
        }
    }

    /// Whether the file's content is part of the configuration: watched, and fingerprinted
    /// with the streamlet that reads it.
    pub fn is_configuration(self) -> bool {
        matches!(self, PathRole::RecordSchema | PathRole::TrainingProfile)
    }
}

/// A path field of a streamlet: its JSON pointer within the streamlet, its role, and the path.
pub struct PathField<'a> {
    pub pointer: String,
    pub role: PathRole,
    pub path: &'a mut PathBuf,
}

/// The outlets a kind has; the first is the default (`name` without `.port`).
/// Outlets marked optional may go unconsumed (their records are logged instead).
pub struct Outlets {
    pub names: &'static [&'static str],
    pub optional: &'static [&'static str],
}

/// The outlets of a source (an ingress, or a test's substitute for one): its records, and
/// what it could not read as records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "lowercase")]
pub enum SourcePort {
    Out,
    Errors,
}

impl Port for SourcePort {}

/// Whether an outlet of that name carries what a streamlet refused (records it could not read,
/// check or score), which metrics count as errors.
pub fn carries_errors(port: &str) -> bool {
    use super::{scorer::config::ScorerPort, validator::config::ValidatorPort};
    [
        SourcePort::Errors.name(),
        ScorerPort::Errors.name(),
        ValidatorPort::Invalid.name(),
    ]
    .contains(&port)
}

impl Outlets {
    /// What a source has: its records, and what it could not read as records (which may go
    /// unconsumed).
    pub const OF_A_SOURCE: Outlets = Outlets {
        names: SourcePort::VARIANTS,
        optional: SourcePort::VARIANTS.split_at(1).1,
    };
    /// What a sink has: nothing.
    pub const NONE: Outlets = Outlets {
        names: &[],
        optional: &[],
    };

    /// Every outlet of `P`.
    pub fn all<P: Port>() -> Outlets {
        Outlets {
            names: P::VARIANTS,
            optional: &[],
        }
    }

    /// The outlets of `P` up to and including `last`: a configuration without the outlets
    /// listed after it (each kind lists those only some configurations have last).
    pub fn through<P: Port>(last: P) -> Outlets {
        let n = P::VARIANTS
            .iter()
            .position(|name| *name == last.name())
            .map_or(P::VARIANTS.len(), |i| i + 1);
        Outlets {
            names: &P::VARIANTS[..n],
            optional: &[],
        }
    }

    /// The same outlets, of which `optional` may go unconsumed.
    pub fn with_optional(self, optional: &'static [&'static str]) -> Outlets {
        Outlets { optional, ..self }
    }

    /// The outlet an input means: `port` when the kind has it, its first outlet when the input
    /// names none (`name` for `name.out`); `None` when there is no such outlet.
    pub fn resolve(&self, port: Option<&str>) -> Option<&'static str> {
        match port {
            Some(p) => self.names.iter().copied().find(|n| *n == p),
            None => self.names.first().copied(),
        }
    }
}

/// The same call on whichever kind it is.
macro_rules! each_kind {
    ($config:expr, $c:ident => $call:expr, substitute $s:ident => $other:expr) => {
        match $config {
            KindConfig::Ingress($c) => $call,
            KindConfig::Validator($c) => $call,
            KindConfig::Merger($c) => $call,
            KindConfig::Egress($c) => $call,
            KindConfig::Scorer($c) => $call,
            KindConfig::Enricher($c) => $call,
            KindConfig::Evaluator($c) => $call,
            KindConfig::Trainer($c) => $call,
            KindConfig::Substitute($s) => $other,
        }
    };
}

impl KindConfig {
    /// Every outlet a kind can have, whatever its configuration, by the kind's name: what an
    /// input naming a streamlet whose configuration has problems is checked against.
    pub fn any_outlets(kind: &str) -> Option<&'static [&'static str]> {
        use super::{enricher::config::EnricherPort, merger::config::MergerPort};
        use super::{scorer::config::ScorerPort, validator::config::ValidatorPort};
        Some(match kind {
            "ingress" => SourcePort::VARIANTS,
            "validator" => ValidatorPort::VARIANTS,
            "merger" => MergerPort::VARIANTS,
            "egress" => &[],
            "scorer" => ScorerPort::VARIANTS,
            "enricher" => EnricherPort::VARIANTS,
            "evaluator" => super::evaluator::config::EvaluatorPort::VARIANTS,
            "trainer" => super::trainer::config::TrainerPort::VARIANTS,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            KindConfig::Ingress(_) => "ingress",
            KindConfig::Validator(_) => "validator",
            KindConfig::Merger(_) => "merger",
            KindConfig::Egress(_) => "egress",
            KindConfig::Scorer(_) => "scorer",
            KindConfig::Enricher(_) => "enricher",
            KindConfig::Evaluator(_) => "evaluator",
            KindConfig::Trainer(_) => "trainer",
            KindConfig::Substitute(s) => s.0.name(),
        }
    }

    /// The outlets it has; the first is the default (`name` without `.port`).
    pub fn outlets(&self) -> Outlets {
        each_kind!(self, c => c.outlets(), substitute s => s.0.outlets())
    }

    pub fn takes_inputs(&self) -> bool {
        each_kind!(self, c => c.takes_inputs(), substitute s => s.0.takes_inputs())
    }

    /// Every path this kind's configuration names.
    pub fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        each_kind!(self, c => c.paths_mut(), substitute _s => Vec::new())
    }

    /// The JSON Schema file of the records a port emits, where the configuration declares one.
    pub fn emitted_schema(&self, port: &str) -> Option<&PathBuf> {
        each_kind!(self, c => c.emitted_schema(port), substitute _s => None)
    }

    /// What is wrong with its configuration beyond the pipeline schema.
    pub fn check(&self) -> Vec<Finding> {
        each_kind!(self, c => c.check(), substitute _s => Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streamlets::scorer::config::ScorerPort;
    use crate::streamlets::validator::config::ValidatorPort;

    #[test]
    fn a_kinds_outlets_are_its_port_names_and_the_first_is_the_default() {
        assert_eq!(Outlets::all::<ValidatorPort>().names, ["valid", "invalid", "drift"]);
        assert_eq!(Outlets::through(ValidatorPort::Invalid).names, ["valid", "invalid"]);
        assert_eq!(Outlets::through(ScorerPort::Out).names, ["out"]);
        assert_eq!(Outlets::OF_A_SOURCE.names, ["out", "errors"]);
        assert_eq!(Outlets::OF_A_SOURCE.optional, ["errors"]);
        assert_eq!(Outlets::all::<ValidatorPort>().resolve(None), Some("valid"));
        assert_eq!(Outlets::all::<ValidatorPort>().resolve(Some("vaild")), None);
    }

    #[test]
    fn every_outlet_a_configuration_has_is_one_its_kind_can_have() {
        let configs = [
            ("validator", "kind: validator\nschema: s.json\nprofile: { path: p.json, drift: {} }"),
            ("validator", "kind: validator\nschema: s.json"),
            ("scorer", "kind: scorer\nmodel: { name: m, folder: f }\nfeatures: { input: x, fields: [a] }\noutputs: [{ tensor: y, field: p }]\nstrategy: { shadow: { primary: a, shadows: [b], emit: true } }"),
            ("enricher", "kind: enricher\ntable: { type: file, path: t.csv, key: k }\nmissing: unmatched"),
            ("merger", "kind: merger"),
            ("ingress", "kind: ingress\nsource: { type: stdin }"),
        ];
        for (kind, yaml) in configs {
            let config: KindConfig = serde_yaml_ng::from_str(yaml).expect(yaml);
            let any = KindConfig::any_outlets(kind).expect(kind);
            for name in config.outlets().names {
                assert!(any.contains(name), "{kind}: {name} not in {any:?}");
            }
        }
        assert_eq!(KindConfig::any_outlets("validatr"), None);
    }
}
