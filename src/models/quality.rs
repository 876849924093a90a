//! How good a model's answers were, once the true outcomes are known: the figures of a
//! classifier (accuracy, precision, recall, F1, log loss, ROC AUC, a calibration table) or of a
//! regressor (MAE, RMSE, MAPE, mean error), over a sliding window of the latest labelled
//! answers and since start. Each figure is defined as scikit-learn defines it.
//!
//! Over the window every figure is exact (the window's answers are kept). Since start, the
//! answers are not kept: sums and counts are, and the ROC AUC comes from a histogram of the
//! scores in [`AUC_BINS`] bins, two scores in one bin counting as a tie. Its error is at most
//! half the share of (positive, negative) pairs whose scores fall in the same bin, and nothing
//! when no two different scores share a bin.

use std::collections::VecDeque;

use serde::Serialize;

/// Bins of the since-start ROC AUC histogram, over scores from 0 to 1.
pub const AUC_BINS: usize = 10_000;
/// Bins of the calibration table, over predicted probabilities from 0 to 1.
pub const CALIBRATION_BINS: usize = 10;

/// What the answers are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    /// Scores (probabilities of the positive class, or hard 0/1 labels) against outcomes
    /// 0 or 1; a score at or above `threshold` predicts the positive class.
    Classifier { threshold: f64 },
    /// Numbers against numbers.
    Regressor,
}

/// One answer with its true outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    pub predicted: f64,
    pub truth: f64,
}

/// One row of a calibration table: the answers whose predicted probability fell in
/// `[from, to)` (the last bin includes 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub from: f64,
    pub to: f64,
    pub count: u64,
    pub mean_predicted: f64,
    /// The share of those answers whose outcome was positive.
    pub observed: f64,
}

/// The figures of a set of labelled answers. A figure that the answers cannot define (an
/// AUC with one class only, a mean of nothing) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub labelled: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<CalibrationBin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mape: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_error: Option<f64>,
}

impl Figures {
    /// A figure by the name the configuration uses (`auc` and `roc_auc` are one).
    pub fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Accuracy => self.accuracy,
            Metric::Precision => self.precision,
            Metric::Recall => self.recall,
            Metric::F1 => self.f1,
            Metric::LogLoss => self.log_loss,
            Metric::RocAuc => self.roc_auc,
            Metric::Mae => self.mae,
            Metric::Rmse => self.rmse,
            Metric::Mape => self.mape,
            Metric::MeanError => self.mean_error,
        }
    }
}

/// A figure a rule or a chart can name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize, strum::EnumIter, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1,
    LogLoss,
    #[serde(alias = "auc")]
    RocAuc,
    Mae,
    Rmse,
    Mape,
    MeanError,
}

impl Metric {
    /// Whether a higher value is better (accuracy) rather than a lower one (an error).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::Accuracy | Metric::Precision | Metric::Recall | Metric::F1 | Metric::RocAuc
        )
    }

    /// Whether the figure is one of a classifier's (else a regressor's).
    pub fn for_classifiers(self) -> bool {
        !matches!(self, Metric::Mae | Metric::Rmse | Metric::Mape | Metric::MeanError)
    }

    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// What a join of predictions with their labels dropped or ignored, counted by why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JoinCounts {
    /// Predictions whose label did not come in time.
    pub expired_predictions: u64,
    /// Labels whose prediction did not come in time.
    pub expired_labels: u64,
    /// Predictions and labels dropped, oldest first, to keep within the count bound.
    pub evicted: u64,
    /// Labels for a key that has its label already (the first one counts).
    pub duplicate_labels: u64,
    /// Predictions of a model for a key it answered already (the first one counts).
    pub duplicate_predictions: u64,
}

/// The quality of one model version (or strategy arm), as an evaluator reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelQuality {
    pub name: String,
    pub version: String,
    /// The strategy's name for the model (a split arm, a shadow), when it serves under one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// Its predictions waiting for their labels.
    pub waiting: u64,
    /// Its predictions dropped without a label (expired or evicted).
    pub unmatched: u64,
    /// The figures of its latest labelled answers (the window).
    pub window: Figures,
    pub since_start: Figures,
}

/// What an evaluator knows: each model's quality, and what its join holds and dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualitySummary {
    /// `classifier` or `regressor`.
    pub task: &'static str,
    pub models: Vec<ModelQuality>,
    /// Labels waiting for their predictions.
    pub waiting_labels: u64,
    pub dropped: JoinCounts,
    /// What its rules changed, with the figures that decided it, oldest first.
    pub decisions: Vec<Decision>,
}

/// A change an evaluator's rule made to what a scorer serves.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Decision {
    /// When, RFC 3339.
    pub at: String,
    /// `promoted` or `rolled_back`.
    pub action: String,
    pub scorer: String,
    /// The strategy's id of the model (`""` for a scorer of one model).
    pub model: String,
    /// The version promoted, or rolled back from.
    pub version: String,
    /// The version serving after a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    pub metric: Metric,
    /// Its figure over the window when the rule decided.
    pub value: f64,
    /// What it was compared with: the serving model's figure (a promotion), the limit (a
    /// rollback).
    pub against: f64,
    /// The labelled answers its figure covers.
    pub labelled: u64,
    /// The serving model it took over from, with its figure's labelled answers (a promotion).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_labelled: Option<u64>,
    /// Made before a restart of the process, and applied again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
}

/// The probability a log loss takes for a score, kept off 0 and 1 as scikit-learn does
/// (by the float's epsilon).
fn clipped(p: f64) -> f64 {
    p.clamp(f64::EPSILON, 1.0 - f64::EPSILON)
}

/// The calibration bin of a score as scikit-learn's `calibration_curve` finds it: the number of
/// inner edges (`i / bins`, as `numpy.linspace` makes them) below it.
fn calibration_bin(score: f64) -> usize {
    let step = 1.0 / CALIBRATION_BINS as f64;
    (1..CALIBRATION_BINS).filter(|i| *i as f64 * step < score).count()
}

fn bin_of(score: f64, bins: usize) -> usize {
    if score.is_nan() {
        return 0;
    }
    ((score.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1)
}

/// Running sums from which every since-start figure follows.
#[derive(Debug, Clone)]
struct Sums {
    n: u64,
    // A classifier's.
    tp: u64,
    fp: u64,
    tn: u64,
    false_negatives: u64,
    log_loss: f64,
    positives: Vec<u64>,
    negatives: Vec<u64>,
    calibration: Vec<(u64, f64, u64)>,
    // A regressor's.
    abs_error: f64,
    squared_error: f64,
    pct_error: f64,
    error: f64,
}

impl Sums {
    /// Sums of a task; a classifier's with the AUC histogram only when `histogram` (a set of
    /// answers kept whole has its exact AUC instead).
    fn new(task: Task, histogram: bool) -> Sums {
        let classifier = matches!(task, Task::Classifier { .. });
        Sums {
            n: 0,
            tp: 0,
            fp: 0,
            tn: 0,
            false_negatives: 0,
            log_loss: 0.0,
            positives: if classifier && histogram {
                vec![0; AUC_BINS]
            } else {
                Vec::new()
            },
            negatives: if classifier && histogram {
                vec![0; AUC_BINS]
            } else {
                Vec::new()
            },
            calibration: if classifier {
                vec![(0, 0.0, 0); CALIBRATION_BINS]
            } else {
                Vec::new()
            },
            abs_error: 0.0,
            squared_error: 0.0,
            pct_error: 0.0,
            error: 0.0,
        }
    }

    fn add(&mut self, task: Task, a: Labelled) {
        self.n += 1;
        match task {
            Task::Classifier { threshold } => {
                let positive = a.truth >= 0.5;
                match (a.predicted >= threshold, positive) {
                    (true, true) => self.tp += 1,
                    (true, false) => self.fp += 1,
                    (false, false) => self.tn += 1,
                    (false, true) => self.false_negatives += 1,
                }
                let p = clipped(a.predicted);
                self.log_loss -= if positive { p.ln() } else { (1.0 - p).ln() };
                if !self.positives.is_empty() {
                    let bin = bin_of(a.predicted, AUC_BINS);
                    if positive {
                        self.positives[bin] += 1;
                    } else {
                        self.negatives[bin] += 1;
                    }
                }
                let c = &mut self.calibration[calibration_bin(a.predicted)];
                c.0 += 1;
                c.1 += a.predicted;
                c.2 += u64::from(positive);
            }
            Task::Regressor => {
                let e = a.predicted - a.truth;
                self.abs_error += e.abs();
                self.squared_error += e * e;
                self.pct_error += e.abs() / a.truth.abs().max(f64::EPSILON);
                self.error += e;
            }
        }
    }

    fn figures(&self, task: Task) -> Figures {
        let n = self.n as f64;
        let mut f = Figures {
            labelled: self.n,
            ..Figures::default()
        };
        if self.n == 0 {
            return f;
        }
        match task {
            Task::Classifier { .. } => {
                confusion_figures(&mut f, self.tp, self.fp, self.tn, self.false_negatives);
                f.log_loss = Some(self.log_loss / n);
                f.roc_auc = binned_auc(&self.positives, &self.negatives);
                f.calibration = calibration_table(&self.calibration);
            }
            Task::Regressor => {
                f.mae = Some(self.abs_error / n);
                f.rmse = Some((self.squared_error / n).sqrt());
                f.mape = Some(self.pct_error / n);
                f.mean_error = Some(self.error / n);
            }
        }
        f
    }
}

/// Accuracy, precision, recall and F1 from the confusion counts; a ratio of nothing is 0, as
/// scikit-learn's `zero_division` default makes it.
fn confusion_figures(f: &mut Figures, tp: u64, fp: u64, tn: u64, false_negatives: u64) {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let total = tp + fp + tn + false_negatives;
    f.accuracy = Some(ratio(tp + tn, total));
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + false_negatives);
    f.precision = Some(precision);
    f.recall = Some(recall);
    f.f1 = Some(ratio(2 * tp, 2 * tp + fp + false_negatives));
}

/// The ROC AUC of scores counted per bin: each (positive, negative) pair ordered by bin, pairs
/// in one bin counting half. `None` without both classes.
fn binned_auc(positives: &[u64], negatives: &[u64]) -> Option<f64> {
    let (p, n): (u64, u64) = (positives.iter().sum(), negatives.iter().sum());
    if p == 0 || n == 0 {
        return None;
    }
    let mut below = 0u64; // negatives in lower bins
    let mut pairs = 0.0;
    for (pos, neg) in positives.iter().zip(negatives) {
        pairs += *pos as f64 * (below as f64 + *neg as f64 / 2.0);
        below += neg;
    }
    Some(pairs / (p as f64 * n as f64))
}

fn calibration_table(bins: &[(u64, f64, u64)]) -> Vec<CalibrationBin> {
    let width = 1.0 / bins.len() as f64;
    bins.iter()
        .enumerate()
        .filter(|(_, (count, _, _))| *count > 0)
        .map(|(i, (count, sum, positives))| CalibrationBin {
            from: i as f64 * width,
            to: (i + 1) as f64 * width,
            count: *count,
            mean_predicted: sum / *count as f64,
            observed: *positives as f64 / *count as f64,
        })
        .collect()
}

/// The exact ROC AUC of a set of answers (ties counting half), as `roc_auc_score` computes it.
fn exact_auc(answers: &[Labelled]) -> Option<f64> {
    let mut sorted: Vec<Labelled> = answers.to_vec();
    sorted.sort_by(|a, b| a.predicted.total_cmp(&b.predicted));
    let (mut p, mut n) = (0u64, 0u64);
    let mut pairs = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        // A run of equal scores: its pairs count half.
        let mut j = i;
        let (mut run_p, mut run_n) = (0u64, 0u64);
        while j < sorted.len() && sorted[j].predicted.total_cmp(&sorted[i].predicted).is_eq() {
            if sorted[j].truth >= 0.5 {
                run_p += 1;
            } else {
                run_n += 1;
            }
            j += 1;
        }
        pairs += run_p as f64 * (n as f64 + run_n as f64 / 2.0);
        p += run_p;
        n += run_n;
        i = j;
    }
    (p > 0 && n > 0).then(|| pairs / (p as f64 * n as f64))
}

/// The quality of one model version (or strategy arm): its latest labelled answers, a window
/// of at most `window` of them, and sums since start.
#[derive(Debug, Clone)]
pub struct Quality {
    task: Task,
    window: usize,
    latest: VecDeque<Labelled>,
    since_start: Sums,
}

impl Quality {
    pub fn new(task: Task, window: usize) -> Quality {
        Quality {
            task,
            window: window.max(1),
            latest: VecDeque::new(),
            since_start: Sums::new(task, true),
        }
    }

    pub fn add(&mut self, answer: Labelled) {
        self.since_start.add(self.task, answer);
        if self.latest.len() == self.window {
            self.latest.pop_front();
        }
        self.latest.push_back(answer);
    }

    /// How many labelled answers there were since start.
    pub fn labelled(&self) -> u64 {
        self.since_start.n
    }

    /// The figures since start.
    pub fn since_start(&self) -> Figures {
        self.since_start.figures(self.task)
    }

    /// The figures of the window, exact.
    pub fn window(&self) -> Figures {
        let answers: Vec<Labelled> = self.latest.iter().copied().collect();
        figures_of(self.task, &answers)
    }
}

/// The figures of a set of answers, exact.
pub fn figures_of(task: Task, answers: &[Labelled]) -> Figures {
    let mut sums = Sums::new(task, false);
    for a in answers {
        sums.add(task, *a);
    }
    let mut f = sums.figures(task);
    if matches!(task, Task::Classifier { .. }) {
        f.roc_auc = exact_auc(answers);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(pairs: &[(f64, f64)]) -> Vec<Labelled> {
        pairs
            .iter()
            .map(|&(predicted, truth)| Labelled { predicted, truth })
            .collect()
    }

    #[test]
    fn a_classifiers_figures_by_hand() {
        // Scores and outcomes small enough to count on paper.
        let a = answers(&[(0.9, 1.0), (0.8, 0.0), (0.4, 1.0), (0.2, 0.0), (0.1, 0.0)]);
        let f = figures_of(Task::Classifier { threshold: 0.5 }, &a);
        assert_eq!(f.accuracy, Some(0.6)); // tp 1, fp 1, fn 1, tn 2
        assert_eq!(f.precision, Some(0.5));
        assert_eq!(f.recall, Some(0.5));
        assert_eq!(f.f1, Some(0.5));
        // Positives 0.9 and 0.4 against negatives 0.8, 0.2, 0.1: 5 of 6 pairs ordered right.
        assert!((f.roc_auc.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        let expected_log_loss = -((0.9f64).ln() + (0.2f64).ln() + (0.4f64).ln() + (0.8f64).ln() + (0.9f64).ln()) / 5.0;
        assert!((f.log_loss.unwrap() - expected_log_loss).abs() < 1e-12);
    }

    #[test]
    fn ties_count_half_in_the_exact_and_the_binned_auc() {
        let a = answers(&[(0.5, 1.0), (0.5, 0.0), (0.7, 1.0), (0.3, 0.0)]);
        // Pairs: (0.5+, 0.5-) a tie, (0.5+, 0.3-) right, (0.7+, both) right: 3.5 of 4.
        assert_eq!(exact_auc(&a), Some(0.875));
        let mut q = Quality::new(Task::Classifier { threshold: 0.5 }, 10);
        a.iter().for_each(|x| q.add(*x));
        assert_eq!(q.since_start().roc_auc, Some(0.875));
        assert_eq!(q.window().roc_auc, Some(0.875));
    }

    #[test]
    fn a_regressors_figures_by_hand() {
        let a = answers(&[(110.0, 100.0), (90.0, 100.0), (260.0, 200.0)]);
        let f = figures_of(Task::Regressor, &a);
        assert_eq!(f.mae, Some(80.0 / 3.0));
        assert_eq!(f.rmse, Some(((100.0 + 100.0 + 3600.0) / 3.0f64).sqrt()));
        assert_eq!(f.mape, Some((0.1 + 0.1 + 0.3) / 3.0));
        assert_eq!(f.mean_error, Some(60.0 / 3.0));
        assert_eq!(f.accuracy, None);
    }

    #[test]
    fn the_window_holds_the_latest_answers_only() {
        let mut q = Quality::new(Task::Regressor, 2);
        for (p, t) in [(0.0, 100.0), (10.0, 10.0), (12.0, 10.0)] {
            q.add(Labelled { predicted: p, truth: t });
        }
        assert_eq!(q.window().labelled, 2);
        assert_eq!(q.window().mae, Some(1.0));
        assert_eq!(q.since_start().labelled, 3);
        assert_eq!(q.since_start().mae, Some(34.0));
    }

    #[test]
    fn figures_nothing_defines_are_none() {
        let one_class = answers(&[(0.3, 1.0), (0.9, 1.0)]);
        assert_eq!(
            figures_of(Task::Classifier { threshold: 0.5 }, &one_class).roc_auc,
            None
        );
        let none = Quality::new(Task::Classifier { threshold: 0.5 }, 5).since_start();
        assert_eq!((none.labelled, none.accuracy), (0, None));
    }

    #[test]
    fn a_score_on_a_calibration_edge_falls_in_the_bin_below_as_in_scikit_learn() {
        // numpy's searchsorted over linspace(0, 1, 11)[1:-1]: 0.3 (above 0.30000000000000004?
        // no) goes to bin 2, 0.1 to bin 0, 0.95 to bin 9, 0 to bin 0, 1 to bin 9.
        assert_eq!(
            [0.0, 0.1, 0.3, 0.31, 0.95, 1.0].map(calibration_bin),
            [0, 0, 2, 3, 9, 9]
        );
    }

    #[test]
    fn a_calibration_table_counts_each_bin() {
        let a = answers(&[(0.05, 0.0), (0.08, 1.0), (0.95, 1.0), (1.0, 1.0)]);
        let table = figures_of(Task::Classifier { threshold: 0.5 }, &a).calibration;
        assert_eq!(table.len(), 2);
        assert_eq!((table[0].count, table[0].observed), (2, 0.5));
        assert!((table[0].mean_predicted - 0.065).abs() < 1e-12);
        assert_eq!((table[1].from, table[1].count, table[1].observed), (0.9, 2, 1.0));
    }
}
