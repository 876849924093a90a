//! An evaluator's configuration: how a label is joined to the prediction it is the truth of,
//! and what the answers are (a classifier's scores or a regressor's numbers).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::models::quality::{Metric, Task};
use crate::problem::Problem;
use crate::streamlets::kind::{Finding, Kind, Outlets, PathField, PathRole, Port};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EvaluatorConfig {
    /// The field, on predictions and labels alike, that says which prediction a label is the
    /// truth of (a transaction id, say).
    pub key: String,
    /// The field of a label record that holds the true outcome.
    pub label: String,
    /// The field of a scored record that holds the answer.
    pub prediction: String,
    pub task: TaskConfig,
    /// A classifier's score at or above this predicts the positive class.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// The label text that means the positive class (other text is negative); without it,
    /// text labels must be `true`/`1` or `false`/`0`. Boolean and 0/1 number labels need none.
    #[serde(default)]
    pub positive: Option<String>,
    /// How many of the latest labelled answers per model version the window figures cover.
    #[serde(default = "default_window")]
    pub window: usize,
    #[serde(default)]
    pub join: JoinConfig,
    /// The scorer's audit field: a record that carries it is a prediction, any other a label.
    #[serde(default = "default_audit_field")]
    pub audit_field: String,
    /// The scorer whose models it judges, and whose serving its rules may change.
    #[serde(default)]
    pub scorer: Option<String>,
    /// When a challenger (a split's other arm, a shadow) takes over from the serving model.
    #[serde(default)]
    pub promote: Option<PromoteRule>,
    /// When the serving model's version is rolled back to the one before.
    #[serde(default)]
    pub rollback: Option<RollbackRule>,
    /// Fields of the scored record each joined pair carries besides its own (`"*"`: all but
    /// the audit): the features a training set needs.
    #[serde(default)]
    pub carry: Vec<String>,
    /// The folder its decisions are kept in, so that they survive a restart.
    #[serde(default = "default_state")]
    pub state: PathBuf,
}

fn default_state() -> PathBuf {
    PathBuf::from(".sluice")
}

/// Promote a challenger when its figure over the window beats the serving model's by more
/// than `by`, both over at least `min_labelled` labelled answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PromoteRule {
    pub metric: Metric,
    #[serde(default)]
    pub by: f64,
    pub min_labelled: u64,
}

/// Roll the serving version back when its figure over the window is worse than `worse_than`,
/// over at least `min_labelled` labelled answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RollbackRule {
    pub metric: Metric,
    pub worse_than: f64,
    pub min_labelled: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskConfig {
    Classifier,
    Regressor,
}

/// The bounds of what waits to be joined.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JoinConfig {
    /// How long a prediction waits for its label, and a label for its prediction ("90s",
    /// "1h"); then it is dropped and counted as expired.
    #[serde(default = "default_max_wait", with = "humantime_serde")]
    pub max_wait: Duration,
    /// How many predictions and labels may wait at once; beyond it the oldest are dropped and
    /// counted as evicted.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig {
            max_wait: default_max_wait(),
            max_pending: default_max_pending(),
        }
    }
}

impl EvaluatorConfig {
    pub fn task(&self) -> Task {
        match self.task {
            TaskConfig::Classifier => Task::Classifier {
                threshold: self.threshold,
            },
            TaskConfig::Regressor => Task::Regressor,
        }
    }
}

fn default_threshold() -> f64 {
    0.5
}

fn default_window() -> usize {
    1000
}

fn default_max_wait() -> Duration {
    Duration::from_secs(3600)
}

fn default_max_pending() -> usize {
    100_000
}

fn default_audit_field() -> String {
    "_model".into()
}

/// The outlets of an evaluator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "lowercase")]
pub enum EvaluatorPort {
    /// Each prediction joined with its label: the key, the answer, the truth, the error and
    /// the model version that answered.
    Out,
    /// Records that cannot be joined (no key, no answer or truth of the right type), each
    /// with `_error`.
    Errors,
}

impl Port for EvaluatorPort {}

impl Kind for EvaluatorConfig {
    fn outlets(&self) -> Outlets {
        Outlets::all::<EvaluatorPort>()
    }

    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        vec![PathField {
            pointer: "/state".into(),
            role: PathRole::Output,
            path: &mut self.state,
        }]
    }

    /// Rules name a scorer, a figure of the task, and fit in the window.
    fn check(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        let classifier = self.task == TaskConfig::Classifier;
        let rules = [
            ("promote", self.promote.as_ref().map(|r| (r.metric, r.min_labelled))),
            ("rollback", self.rollback.as_ref().map(|r| (r.metric, r.min_labelled))),
        ];
        for (rule, spec) in rules {
            let Some((metric, min_labelled)) = spec else { continue };
            let invalid = |field: &str, reason: String| Problem::InvalidValue {
                field: field.into(),
                reason,
            };
            if self.scorer.is_none() {
                found.push(Finding::at_key(
                    format!("/{rule}"),
                    invalid(
                        rule,
                        "a rule changes what a scorer serves: name it with `scorer`".into(),
                    ),
                ));
            }
            if metric == Metric::MeanError {
                found.push(Finding::at_value(
                    format!("/{rule}/metric"),
                    invalid(
                        "metric",
                        "`mean_error` is signed and ranks no model above another: use `mae`".into(),
                    ),
                ));
            } else if metric.for_classifiers() != classifier {
                found.push(Finding::at_value(
                    format!("/{rule}/metric"),
                    invalid(
                        "metric",
                        format!(
                            "`{}` is not a {} figure",
                            metric.name(),
                            if classifier { "classifier's" } else { "regressor's" }
                        ),
                    ),
                ));
            }
            if min_labelled > self.window as u64 {
                found.push(Finding::at_value(
                    format!("/{rule}/min_labelled"),
                    invalid(
                        "min_labelled",
                        format!(
                            "{min_labelled} labelled answers do not fit a window of {}: widen `window`",
                            self.window
                        ),
                    ),
                ));
            }
        }
        if self.join.max_wait.is_zero() {
            found.push(Finding::at_value(
                "/join/max_wait",
                Problem::InvalidValue {
                    field: "max_wait".into(),
                    reason: "with no time to wait, no label could ever join its prediction".into(),
                },
            ));
        }
        found
    }
}
