//! A trainer's configuration: when to retrain, the training command, and where the new
//! version goes.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::problem::Problem;
use crate::streamlets::kind::{Finding, Kind, Outlets, PathField, PathRole, Port};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TrainerConfig {
    /// The dataset folder a `dataset` egress writes: what a run trains on.
    pub dataset: PathBuf,
    #[serde(default)]
    pub when: When,
    /// A run needs at least this many rows in the dataset.
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    /// The training command, as an argument list; `{dataset}` and `{output}` are replaced by
    /// the run's copy of the dataset and the folder it must write `model.onnx` into
    /// (`metrics.json` there, if it writes one, becomes part of the lineage).
    pub command: Vec<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// The folder the command runs in (relative to the pipeline file; where sluice runs when
    /// absent). A relative program path (`.venv/bin/python`) is taken from there too.
    #[serde(default)]
    pub working_directory: Option<PathBuf>,
    /// A run taking longer is stopped and fails.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    pub publish: PublishConfig,
    /// The folder runs are made in.
    #[serde(default = "default_state")]
    pub state: PathBuf,
}

/// What starts a run. Several may be given; a trigger while a run goes on starts none.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct When {
    /// Every this many new rows in the dataset.
    #[serde(default)]
    pub every_rows: Option<u64>,
    /// Every this long ("1h").
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// A drift event (`type: drift, status: drifting`) on an input: a run at once (`true`),
    /// or once `new_rows` more rows reached the dataset (`{ new_rows: N }`), so that the run
    /// trains on the data from after the change.
    #[serde(default, deserialize_with = "on_drift")]
    pub on_drift: Option<OnDrift>,
    /// The serving version's figure over an evaluator's window crossing a limit.
    #[serde(default)]
    pub quality: Option<QualityFloor>,
}

/// What a drift event starts: a run once this many rows more reached the dataset (0: at once).
/// Drift events while one waits, and those within this many rows after its run started
/// (unless that run failed or did not start), belong to the same change and start nothing
/// more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OnDrift {
    pub new_rows: u64,
}

/// `on_drift: true | false | { new_rows: N }`.
fn on_drift<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OnDrift>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Flag(bool),
        Wait { new_rows: u64 },
    }
    Ok(match Form::deserialize(d)? {
        Form::Flag(false) => None,
        Form::Flag(true) => Some(OnDrift::default()),
        Form::Wait { new_rows } => Some(OnDrift { new_rows }),
    })
}

/// Retrain when the version the trainer publishes for is worse than `worse_than` on
/// `metric` over an evaluator's window of at least `min_labelled` answers (once per version).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QualityFloor {
    pub evaluator: String,
    pub metric: crate::models::quality::Metric,
    pub worse_than: f64,
    #[serde(default = "default_floor_labelled")]
    pub min_labelled: u64,
}

fn default_floor_labelled() -> u64 {
    100
}

/// Where a new version goes: the folder of a scorer's model, whose checks gate it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PublishConfig {
    pub scorer: String,
    /// The scorer's model (its strategy id) when it serves several.
    #[serde(default)]
    pub model: Option<String>,
}

fn default_min_rows() -> u64 {
    100
}

fn default_timeout() -> Duration {
    Duration::from_secs(600)
}

fn default_state() -> PathBuf {
    PathBuf::from(".sluice")
}

/// The outlet of a trainer: one record per run event (started, published, failed, skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "lowercase")]
pub enum TrainerPort {
    Out,
}

impl Port for TrainerPort {}

impl Kind for TrainerConfig {
    fn outlets(&self) -> Outlets {
        Outlets::all::<TrainerPort>()
    }

    fn takes_inputs(&self) -> bool {
        true
    }

    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        let mut paths = vec![
            PathField {
                pointer: "/dataset".into(),
                role: PathRole::Output,
                path: &mut self.dataset,
            },
            PathField {
                pointer: "/state".into(),
                role: PathRole::Output,
                path: &mut self.state,
            },
        ];
        if let Some(dir) = &mut self.working_directory {
            paths.push(PathField {
                pointer: "/working_directory".into(),
                role: PathRole::WorkingFolder,
                path: dir,
            });
        }
        paths
    }

    /// A command to run, and something that starts it.
    fn check(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        let invalid = |field: &str, reason: &str| Problem::InvalidValue {
            field: field.into(),
            reason: reason.into(),
        };
        if self.command.is_empty() {
            found.push(Finding::at_value(
                "/command",
                invalid("command", "name the program to run"),
            ));
        }
        if !self.command.iter().any(|a| a.contains("{output}")) {
            found.push(Finding::at_value(
                "/command",
                invalid(
                    "command",
                    "the command must be told where to write the model: pass it `{output}`",
                ),
            ));
        }
        let w = &self.when;
        if w.every_rows.is_none() && w.every.is_none() && w.on_drift.is_none() && w.quality.is_none() {
            found.push(Finding::at_key(
                "/when",
                invalid(
                    "when",
                    "say what starts a run: `every_rows`, `every`, `on_drift` or `quality`",
                ),
            ));
        }
        if w.quality
            .as_ref()
            .is_some_and(|q| q.metric == crate::models::quality::Metric::MeanError)
        {
            found.push(Finding::at_value(
                "/when/quality/metric",
                invalid(
                    "metric",
                    "`mean_error` is signed and crosses no limit one way: use `mae`",
                ),
            ));
        }
        if self.timeout.is_zero() {
            found.push(Finding::at_value(
                "/timeout",
                invalid("timeout", "a run needs some time"),
            ));
        }
        found
    }
}
