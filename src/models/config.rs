//! How models are served, as a scorer's configuration names it: strategies over several
//! models, and output tensors as record fields. Read by the scorer's configuration and by the
//! strategies here.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

/// A version written as text or as a number (`version: 2` and `version: "2"` are the same).
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Version {
        Text(String),
        Integer(u64),
        Number(f64),
    }
    Ok(match Version::deserialize(d)? {
        Version::Text(s) => s,
        Version::Integer(n) => n.to_string(),
        Version::Number(n) => n.to_string(),
    })
}

pub fn optional_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    string_or_number(d).map(Some)
}

/// How a scorer with several models answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyConfig {
    /// Every model scores; when the budget runs out each record takes the best answer so far.
    Speculative {
        budget_ms: u64,
        /// The model that always answers (waited for past the budget if need be).
        fallback: String,
        /// Models in order of preference; the order of `models` when absent.
        #[serde(default)]
        prefer: Vec<String>,
        #[serde(default)]
        decide: Decider,
    },
    /// Classifiers vote; regressors combine.
    Consensus {
        #[serde(default = "default_min_agree")]
        min_agree: usize,
        #[serde(default)]
        ties: TieRule,
        #[serde(default)]
        combine: Combine,
    },
    /// The answer with the highest class probability (or lowest variance) wins.
    BestConfidence {},
    /// Each record goes to one model, by a hash of its key, in proportion to the weights.
    Split {
        weights: IndexMap<String, f64>,
        key: String,
    },
    /// Only the primary answers; the shadows score the same records for comparison.
    Shadow {
        primary: String,
        shadows: Vec<String>,
        /// Also send each shadow's answers to the `shadow` outlet.
        #[serde(default)]
        emit: bool,
    },
}

fn default_min_agree() -> usize {
    1
}

/// How speculative scoring picks among the answers in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decider {
    /// The most preferred model that answered.
    #[default]
    Prefer,
    /// The most confident answer.
    BestConfidence,
}

/// How a tied vote is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieRule {
    /// The label of the model listed first among the tied.
    #[default]
    First,
    /// The tied label with the highest confidence.
    BestConfidence,
}

/// How regressors' answers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    #[default]
    Median,
    Mean,
}

/// One output tensor → one record field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OutputMapping {
    pub tensor: String,
    pub field: String,
    /// Class names of a probabilities tensor's columns: the field becomes `{class: p}`.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Keep only this class's probability (a number).
    #[serde(default)]
    pub class: Option<String>,
    /// What the tensor is, for strategies that compare answers; inferred when absent
    /// (integers and strings: a label; several floats a row: probabilities; one float: a value).
    #[serde(default)]
    pub role: Option<OutputRole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputRole {
    Label,
    Probabilities,
    Value,
    /// The model's own variance of its value: lower is more confident.
    Variance,
}
