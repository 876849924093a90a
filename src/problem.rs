//! Every problem a pipeline can have, one variant each, with its message and hint: found by
//! the spec loader, the verifier, and each streamlet kind's own checks.

use serde::Serialize;

/// A problem with a pipeline, found by loading or verifying it. [`ProblemCode`] names each
/// variant without its details (`ProblemCode::iter()` lists them all).
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error, strum::EnumDiscriminants)]
#[serde(tag = "code", rename_all = "kebab-case")]
#[strum_discriminants(
    name(ProblemCode),
    derive(strum::EnumIter, strum::IntoStaticStr),
    strum(serialize_all = "kebab-case")
)]
pub enum Problem {
    #[error("YAML syntax error: {reason}")]
    YamlSyntax { reason: String },
    #[error("duplicate key `{key}`: keys must be unique, the last one would silently win")]
    DuplicateKey { key: String },
    #[error("duplicate streamlet name `{name}`")]
    DuplicateStreamlet { name: String },
    #[error("unknown key `{key}`")]
    UnknownKey { key: String, suggestion: Option<String> },
    #[error("`{field}` should be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: String,
        found: String,
    },
    #[error("missing required field `{field}`")]
    MissingField { field: String },
    #[error("invalid value for `{field}`: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error("unknown streamlet kind `{kind}`")]
    UnknownKind { kind: String, suggestion: Option<String> },
    #[error("input `{input}` names no streamlet")]
    UnknownStreamlet { input: String, suggestion: Option<String> },
    #[error("streamlet `{streamlet}` has no outlet `{port}`")]
    UnknownPort {
        streamlet: String,
        port: String,
        available: Vec<String>,
    },
    #[error("outlet `{streamlet}.{port}` feeds nothing: its records would be dropped")]
    UnconsumedOutlet { streamlet: String, port: String },
    #[error("{kind} `{streamlet}` needs at least one input")]
    MissingInputs { streamlet: String, kind: String },
    #[error("{kind} `{streamlet}` takes no inputs")]
    UnexpectedInputs { streamlet: String, kind: String },
    #[error("cycle: {}", cycle_text(.streamlets))]
    Cycle { streamlets: Vec<String> },
    #[error("records from `{from}` may not fit `{to}`: {reason}")]
    IncompatibleRecords { from: String, to: String, reason: String },
    #[error("{what} `{path}` does not exist")]
    MissingFile { what: String, path: String },
    #[error("environment variable `{name}` is not set and has no default")]
    UnsetVariable { name: String },
    #[error("edge `{from}` → `{to}` is not in the pipeline")]
    UnknownEdge { from: String, to: String },
    #[error("record schema `{path}` cannot be used: {reason}")]
    InvalidRecordSchema { path: String, reason: String },
    #[error("`{streamlet}` reads the outlet `{outlet}` twice (as `{first}` and as `{again}`)")]
    DuplicateInput {
        streamlet: String,
        outlet: String,
        first: String,
        again: String,
    },
    #[error("model `{model}` has no version {version} in folder `{folder}`")]
    UnknownVersion {
        model: String,
        version: String,
        folder: String,
        available: Vec<String>,
    },
    #[error("`{id}` is not one of this scorer's models")]
    UnknownModel {
        id: String,
        suggestion: Option<String>,
        available: Vec<String>,
    },
}

fn cycle_text(streamlets: &[String]) -> String {
    let mut names = streamlets.to_vec();
    if let Some(first) = streamlets.first() {
        names.push(first.clone());
    }
    names.join(" → ")
}

impl Problem {
    /// The stable machine-readable code of this problem (`unknown-key`, `cycle`, ...).
    pub fn code(&self) -> String {
        ProblemCode::from(self).as_str().to_string()
    }

    /// What the user can do about it, when there is something specific to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Problem::UnknownKey {
                suggestion: Some(s),
                ..
            }
            | Problem::UnknownKind {
                suggestion: Some(s),
                ..
            }
            | Problem::UnknownStreamlet {
                suggestion: Some(s),
                ..
            }
            | Problem::UnknownModel {
                suggestion: Some(s),
                ..
            } => Some(format!("did you mean `{s}`?")),
            Problem::UnknownModel { available, .. } => Some(format!("models: {}", available.join(", "))),
            Problem::UnknownPort { available, .. } if available.is_empty() => {
                Some("this streamlet has no outlets".into())
            }
            Problem::UnknownPort {
                streamlet,
                available,
                ..
            } => Some(format!(
                "outlets of `{streamlet}`: {}",
                available
                    .iter()
                    .map(|p| format!("`{streamlet}.{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Problem::UnconsumedOutlet { streamlet, port } => Some(format!(
                "add `{streamlet}.{port}` to the inputs of a streamlet, or list `{port}` under `discard:` of `{streamlet}` to drop its records on purpose"
            )),
            Problem::MissingInputs { .. } => {
                Some("add `inputs: [name]` naming an upstream streamlet".into())
            }
            Problem::UnexpectedInputs { .. } => Some("remove `inputs`".into()),
            Problem::DuplicateInput { again, .. } => Some(format!(
                "`name` and `name.<first outlet>` are the same outlet: list it once (remove `{again}`)"
            )),
            Problem::UnsetVariable { name } => Some(format!(
                "export {name}=..., or give a default with `${{{name}:-value}}`"
            )),
            Problem::DuplicateKey { .. } | Problem::DuplicateStreamlet { .. } => {
                Some("rename or remove one of them".into())
            }
            Problem::MissingFile { .. } => {
                Some("paths are relative to the file that names them".into())
            }
            Problem::UnknownVersion { available, .. } => Some(format!(
                "versions there: {} (or leave `version` out to serve the newest)",
                available.join(", ")
            )),
            Problem::Cycle { .. } => Some("records must flow one way: break the cycle".into()),
            _ => None,
        }
    }
}

impl ProblemCode {
    /// The code as the machine-readable output spells it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The suggestion closest to `word` among `candidates`, if one is close enough.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problems_code_is_the_one_its_json_carries() {
        let problem = Problem::UnknownModel {
            id: "b".into(),
            suggestion: None,
            available: vec!["a".into()],
        };
        let json = serde_json::to_value(&problem).expect("JSON");
        assert_eq!(json["code"], problem.code());
        assert_eq!(problem.code(), "unknown-model");
        let cycle = Problem::Cycle { streamlets: vec![] };
        assert_eq!(serde_json::to_value(&cycle).expect("JSON")["code"], "cycle");
    }
}
