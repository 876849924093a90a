//! What reaches a scorer's serving from outside its batches: an evaluator promoting a
//! challenger or rolling a version back, the configuration's fingerprint decisions are kept
//! with, and the models and versions each strategy id serves.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Plan, Serving, NONE};
use crate::models::ModelRegistry;

/// Which model of a scorer serves its records, and which others answer beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Arms {
    /// The strategy's id of the model serving (the shadow's primary, the split's heaviest
    /// arm, or the promoted one); `None` for a scorer of one model.
    pub serving: Option<String>,
    /// The other models that answer: the split's other arms, the shadows.
    pub challengers: Vec<String>,
}

impl Serving {
    /// The same, for the configuration whose fingerprint this is.
    pub fn for_configuration(mut self, fingerprint: String) -> Serving {
        self.fingerprint = fingerprint;
        self
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(super) fn promoted(&self) -> Option<usize> {
        Some(self.promoted.load(Ordering::Acquire)).filter(|p| *p != NONE)
    }

    /// The model serving and its challengers, as they are now.
    pub fn arms(&self) -> Arms {
        let others = |serving: usize, among: Vec<usize>| Arms {
            serving: Some(self.ids[serving].clone()),
            challengers: among
                .into_iter()
                .filter(|m| *m != serving)
                .map(|m| self.ids[m].clone())
                .collect(),
        };
        match (&self.plan, self.promoted()) {
            (Plan::Split { .. }, Some(p)) => others(p, Vec::new()),
            (Plan::Split { split, .. }, None) => others(split.heaviest(), (0..self.ids.len()).collect()),
            (Plan::Shadow { primary, shadows, .. }, promoted) => {
                let serving = promoted.unwrap_or(*primary);
                others(serving, shadows.clone())
            }
            (Plan::Single, _) => Arms {
                serving: None,
                challengers: Vec::new(),
            },
            // Every model answers and the answers decide: none serves alone.
            _ => Arms {
                serving: None,
                challengers: self.ids.clone(),
            },
        }
    }

    /// Each model's registry, by the strategy's id (`""` for a scorer of one model).
    pub fn registries(&self) -> Vec<(String, Arc<ModelRegistry>)> {
        let single = matches!(self.plan, Plan::Single);
        self.ids
            .iter()
            .zip(&self.registries)
            .map(|(id, r)| (if single { String::new() } else { id.clone() }, r.clone()))
            .collect()
    }

    /// The model and version each model serves now, by the strategy's id (`""` for a scorer
    /// of one model).
    pub fn versions(&self) -> Vec<(String, Option<(String, String)>)> {
        self.registries()
            .into_iter()
            .map(|(id, r)| {
                let serves = r
                    .current()
                    .map(|v| (v.descriptor.name.clone(), v.descriptor.version.clone()));
                (id, serves)
            })
            .collect()
    }

    /// Makes `model`'s `version` the one serving. When the model serving now has the same
    /// versions (one name, one folder), it takes that version in its place, as a canary's
    /// version becomes the primary's: the strategy stays as configured, so the challenger goes
    /// on following new versions, each judged before it serves. Otherwise the roles change:
    /// under a split `model` takes every record, under a shadow strategy it answers as the
    /// primary. Only these two strategies have a challenger. Blocking (a version may load).
    pub fn promote(&self, model: &str, version: &str, figures: serde_json::Value) -> Result<(), String> {
        let index = self
            .ids
            .iter()
            .position(|id| id == model)
            .ok_or_else(|| format!("the scorer has no model `{model}`"))?;
        if !matches!(self.plan, Plan::Split { .. } | Plan::Shadow { .. }) {
            return Err(format!("a {} strategy has no challenger to promote", self.plan.name()));
        }
        let before = self
            .arms()
            .serving
            .and_then(|id| self.ids.iter().position(|i| *i == id));
        if let Some(old) = before.filter(|old| *old != index) {
            if self.registries[old].same_versions_as(&self.registries[index]) {
                let descriptor = self.registries[index]
                    .descriptor_of(version)
                    .ok_or_else(|| format!("version {version} of `{model}` is no longer there"))?;
                let mut figures = figures;
                if let Some(f) = figures.as_object_mut() {
                    f.insert("challenger".into(), model.into());
                }
                return self.registries[old]
                    .adopt(descriptor, figures)
                    .map_err(|e| e.to_string());
            }
        }
        if before == Some(index) {
            return Ok(());
        }
        self.promoted.store(index, Ordering::Release);
        // The model that served until now answers no more (a split) or only as it did.
        if let Some(old) = before {
            if let Some(version) = self.registries[old].current() {
                self.registries[old].lifecycle().record(
                    &version.descriptor.version,
                    "retired",
                    crate::models::lifecycle::Detail::reason(format!("`{model}` was promoted in its place")),
                );
            }
        }
        let registry = &self.registries[index];
        if let Some(version) = registry.current() {
            registry.lifecycle().record(
                &version.descriptor.version,
                "promoted",
                crate::models::lifecycle::Detail::figures(figures),
            );
        }
        Ok(())
    }

    /// Rolls the version `model` serves back to the one before (`""` for a scorer of one
    /// model): the from and to versions. Blocking.
    pub fn roll_back(
        &self,
        model: &str,
        version: &str,
        figures: serde_json::Value,
    ) -> Result<(String, String), String> {
        let index = if model.is_empty() {
            Some(0)
        } else {
            self.ids.iter().position(|id| id == model)
        };
        let registry = index
            .and_then(|i| self.registries.get(i))
            .ok_or_else(|| format!("the scorer has no model `{model}`"))?;
        registry.roll_back(version, figures).map_err(|e| e.to_string())
    }
}
