//! An evaluator's decisions: its rules applied on every labelled answer (promote a
//! challenger, roll a version back), kept on disk, and applied again to a rebuilt scorer of
//! the same configuration.

use std::collections::HashMap;

use super::{beats, now_rfc3339, Evaluation, RollBack, Saved};
use crate::models::quality::{Decision, Metric};
use crate::streamlets::scorer::serving::Serving;

impl Evaluation {
    /// Follows the scorer instance running now. The decisions in force (those kept from
    /// before, and this run's) hold for as long as the scorer's configuration is the one they
    /// were made for: a new instance of the same configuration (a reload that rebuilt it) has
    /// them applied again, one of another configuration (an edit) starts without them.
    pub(super) async fn follow(&mut self, serving: &std::sync::Arc<Serving>) {
        let instance = std::sync::Arc::as_ptr(serving) as usize;
        if self.instance == Some(instance) {
            return;
        }
        self.instance = Some(instance);
        self.rolled_back.clear();
        let scorer = self.config.scorer.clone().unwrap_or_default();
        let fingerprint = serving.fingerprint().to_string();
        if self.fingerprint.as_deref() == Some(fingerprint.as_str()) {
            for decision in self.in_force.clone() {
                if let Err(reason) = crate::streamlets::scorer::restore(serving, &decision).await {
                    tracing::warn!(%scorer, action = %decision.action, model = %decision.model, %reason, "decision not applied again");
                }
                if !self.followed {
                    self.decisions.push(Decision {
                        restored: true,
                        ..decision
                    });
                }
            }
        } else if !self.in_force.is_empty() {
            tracing::info!(%scorer, decisions = self.in_force.len(), "the scorer's configuration was edited: its earlier decisions no longer apply");
            self.in_force.clear();
        }
        self.followed = true;
        self.fingerprint = Some(fingerprint);
        if self.config.promote.is_some() || self.config.rollback.is_some() {
            self.save();
        }
    }

    /// Keeps the decisions in force on disk (written whole, then renamed into place).
    fn save(&self) {
        let saved = Saved {
            scorer_fingerprint: self.fingerprint.clone().unwrap_or_default(),
            decisions: self.in_force.clone(),
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.state_file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let partial = self.state_file.with_extension("json.partial");
            std::fs::write(&partial, serde_json::to_vec_pretty(&saved).unwrap_or_default())?;
            std::fs::rename(&partial, &self.state_file)
        };
        if let Err(e) = write() {
            tracing::error!(file = %self.state_file.display(), reason = %e, "cannot keep the evaluator's decisions: they will not survive a restart");
        }
    }

    fn decided(&mut self, decision: Decision) {
        self.decisions.push(decision.clone());
        self.in_force.push(decision);
        self.save();
    }

    /// The model (of the strategy's id, `""` alone) serving `version`'s quality.
    fn group(&self, model: &str, serves: &(String, String)) -> Option<usize> {
        let arm = (!model.is_empty()).then(|| model.to_string());
        let (name, version) = serves;
        self.models
            .iter()
            .position(|(id, _)| id.arm == arm && id.name == *name && id.version == *version)
    }

    /// A model's figure over the window, with the labelled answers it covers.
    fn figure(&mut self, group: usize, metric: Metric) -> Option<(f64, u64)> {
        let quality = &self.models[group].1;
        let window = self.windows[group].get_or_insert_with(|| quality.window());
        Some((window.get(metric)?, window.labelled))
    }

    /// Applies the rules after `changed` got a labelled answer: a promotion at once, a
    /// rollback returned to be run.
    pub(super) fn decide(&mut self, changed: usize, serving: &Serving) -> Option<RollBack> {
        let arms = serving.arms();
        let versions: HashMap<String, Option<(String, String)>> = serving.versions().into_iter().collect();
        let current = |model: &str| versions.get(model).cloned().flatten();
        let scorer = self.config.scorer.clone().unwrap_or_default();
        if let (Some(rule), Some(serving_model)) = (self.config.promote.clone(), arms.serving.clone()) {
            let serving_group = current(&serving_model).and_then(|s| self.group(&serving_model, &s));
            if let Some(gs) = serving_group {
                for challenger in &arms.challengers {
                    let Some(serves) = current(challenger) else { continue };
                    // The version that serves already (taken by a promotion) is no challenger, nor
                    // one the serving model was rolled back from, nor one the scorer refused.
                    let taken = (serving_model.clone(), serves.1.clone());
                    let refused = (challenger.clone(), serves.1.clone());
                    if current(&serving_model).as_ref() == Some(&serves)
                        || self.rolled_back.contains(&taken)
                        || self.refused.contains(&refused)
                    {
                        continue;
                    }
                    let version = serves.1.clone();
                    let Some(gc) = self.group(challenger, &serves) else {
                        continue;
                    };
                    if changed != gc && changed != gs {
                        continue;
                    }
                    let (Some((vs, ns)), Some((vc, nc))) = (self.figure(gs, rule.metric), self.figure(gc, rule.metric))
                    else {
                        continue;
                    };
                    if ns < rule.min_labelled || nc < rule.min_labelled || !beats(rule.metric, vc, vs, rule.by) {
                        continue;
                    }
                    let figures = serde_json::json!({
                        "metric": rule.metric.name(), "value": vc, "serving_value": vs, "by": rule.by,
                        "labelled": nc, "serving_labelled": ns, "from_model": serving_model, "evaluator": self.name,
                    });
                    // A promotion may load a version: the runtime's other tasks go on meanwhile.
                    if let Err(reason) = crate::streamlets::blocking(|| serving.promote(challenger, &version, figures))
                    {
                        tracing::error!(%scorer, model = %challenger, %reason, "promotion refused");
                        self.refused.insert(refused);
                        continue;
                    }
                    let decision = Decision {
                        at: now_rfc3339(),
                        action: "promoted".into(),
                        scorer: scorer.clone(),
                        model: challenger.clone(),
                        version,
                        to_version: None,
                        metric: rule.metric,
                        value: vc,
                        against: vs,
                        labelled: nc,
                        from_model: Some(serving_model.clone()),
                        from_labelled: Some(ns),
                        restored: false,
                    };
                    tracing::info!(
                        %scorer, model = %challenger, version = %decision.version, from = %serving_model,
                        metric = rule.metric.name(), value = vc, serving_value = vs, labelled = nc,
                        serving_labelled = ns, "model promoted"
                    );
                    self.decided(decision);
                    return None;
                }
            }
        }
        let rule = self.config.rollback.clone()?;
        // The model serving: the strategy's, or the one model of a scorer without a strategy.
        let model = match arms.serving {
            Some(m) => m,
            None if versions.contains_key("") => String::new(),
            None => return None,
        };
        let serves = current(&model)?;
        let version = serves.1.clone();
        let group = self.group(&model, &serves)?;
        if group != changed || self.rolled_back.contains(&(model.clone(), version.clone())) {
            return None;
        }
        let (value, labelled) = self.figure(group, rule.metric)?;
        let worse = beats(rule.metric, rule.worse_than, value, 0.0);
        if labelled < rule.min_labelled || !worse {
            return None;
        }
        self.rolled_back.insert((model.clone(), version.clone()));
        Some(RollBack {
            model,
            version,
            value,
            labelled,
        })
    }

    /// Runs a rollback a rule asked for, and records it.
    pub(super) async fn roll_back(&mut self, serving: std::sync::Arc<Serving>, rule: RollBack) {
        let scorer = self.config.scorer.clone().unwrap_or_default();
        let Some(limit) = self.config.rollback.as_ref().map(|r| (r.metric, r.worse_than)) else {
            return;
        };
        let model = rule.model.clone();
        let figures = serde_json::json!({
            "metric": limit.0.name(), "value": rule.value, "worse_than": limit.1, "labelled": rule.labelled,
            "evaluator": self.name,
        });
        let version = rule.version.clone();
        let outcome = tokio::task::spawn_blocking(move || serving.roll_back(&model, &version, figures))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match outcome {
            Ok((from, to)) => {
                tracing::info!(
                    %scorer, model = %rule.model, from = %from, to = %to, metric = limit.0.name(),
                    value = rule.value, worse_than = limit.1, labelled = rule.labelled, "model rolled back"
                );
                self.decided(Decision {
                    at: now_rfc3339(),
                    action: "rolled_back".into(),
                    scorer,
                    model: rule.model,
                    version: from,
                    to_version: Some(to),
                    metric: limit.0,
                    value: rule.value,
                    against: limit.1,
                    labelled: rule.labelled,
                    from_model: None,
                    from_labelled: None,
                    restored: false,
                });
            }
            Err(reason) => {
                tracing::error!(%scorer, model = %rule.model, version = %rule.version, %reason, "rollback refused; the version goes on serving")
            }
        }
    }
}
