//! The running pipeline in the Prometheus text format: records per streamlet and outlet, batch
//! processing times, channel fill, model versions, strategies, drift, reloads.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::runtime::Handle;

type Labels = Vec<(&'static str, String)>;

/// Reads the pipeline's counters at each scrape.
#[derive(Debug)]
struct Pipeline {
    handle: HandleRef,
}

/// `Handle` is not `Debug`; this says what it is.
struct HandleRef(Handle);

impl std::fmt::Debug for HandleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pipeline handle")
    }
}

/// One metric family: its name, help, type and values by labels.
struct Family<M> {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    values: Vec<(Labels, M)>,
}

impl<M: EncodeMetric> Family<M> {
    fn new(name: &'static str, help: &'static str, kind: MetricType) -> Self {
        Family {
            name,
            help,
            kind,
            values: Vec::new(),
        }
    }

    fn push(&mut self, labels: Labels, value: M) {
        self.values.push((labels, value));
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.values {
            value.encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// An evaluator's figures as gauges: each metric of each model version, and its join's counts.
fn push_quality(
    q: &crate::models::quality::QualitySummary,
    streamlet: &str,
    quality: &mut Family<ConstGauge<f64>>,
    labelled: &mut Family<ConstGauge<f64>>,
    join: &mut Family<ConstGauge<f64>>,
) {
    use strum::IntoEnumIterator;
    for m in &q.models {
        let labels = || {
            vec![
                ("streamlet", streamlet.to_string()),
                ("model", m.name.clone()),
                ("version", m.version.clone()),
                ("arm", m.arm.clone().unwrap_or_default()),
            ]
        };
        labelled.push(labels(), ConstGauge::new(m.since_start.labelled as f64));
        for (window, figures) in [("window", &m.window), ("since_start", &m.since_start)] {
            for metric in crate::models::quality::Metric::iter() {
                if let Some(v) = figures.get(metric) {
                    let mut l = labels();
                    l.push(("metric", metric.name().to_string()));
                    l.push(("over", window.to_string()));
                    quality.push(l, ConstGauge::new(v));
                }
            }
        }
    }
    let d = &q.dropped;
    let waiting: u64 = q.models.iter().map(|m| m.waiting).sum();
    for (what, n) in [
        ("waiting_predictions", waiting),
        ("waiting_labels", q.waiting_labels),
        ("expired_predictions", d.expired_predictions),
        ("expired_labels", d.expired_labels),
        ("evicted", d.evicted),
        ("duplicate_labels", d.duplicate_labels),
        ("duplicate_predictions", d.duplicate_predictions),
    ] {
        join.push(
            vec![("streamlet", streamlet.to_string()), ("what", what.to_string())],
            ConstGauge::new(n as f64),
        );
    }
}

fn counter(name: &'static str, help: &'static str) -> Family<ConstCounter<u64>> {
    Family::new(name, help, MetricType::Counter)
}

fn gauge(name: &'static str, help: &'static str) -> Family<ConstGauge<f64>> {
    Family::new(name, help, MetricType::Gauge)
}

impl Collector for Pipeline {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.handle.0.status();
        let mut up = gauge("sluice_streamlet_up", "1 while the streamlet runs");
        let mut records_in = counter("sluice_records_in", "Records a streamlet took in");
        let mut records_out = counter("sluice_records_out", "Records a streamlet sent out, by outlet");
        let mut discarded = counter(
            "sluice_records_discarded",
            "Records dropped on purpose (discard:), by outlet",
        );
        let mut errors = counter(
            "sluice_records_errors",
            "Records sent to an error outlet (errors, invalid), by outlet",
        );
        let mut invocations = counter("sluice_model_invocations", "Inference calls, by model version");
        let mut scored = counter("sluice_model_records", "Records scored, by model version");
        let mut model_errors = counter("sluice_model_errors", "Records a model version failed to score");
        let mut latency = gauge(
            "sluice_model_latency_microseconds",
            "Inference latency per call, by quantile",
        );
        let mut answered = counter(
            "sluice_strategy_answers",
            "Records each model answered under a strategy",
        );
        let mut misses = counter(
            "sluice_strategy_budget_misses",
            "Records whose latency budget cut a model off",
        );
        let mut no_consensus = counter("sluice_strategy_no_consensus", "Records without enough agreement");
        let mut agreement = gauge(
            "sluice_shadow_agreement",
            "Agreement of a shadow model with the primary",
        );
        let mut events = counter("sluice_streamlet_events", "Events a streamlet counted (drift, say)");
        let mut lag = gauge(
            "sluice_kafka_consumer_lag",
            "Messages a Kafka source has not read yet, per topic-partition",
        );
        let mut quality = gauge(
            "sluice_model_quality",
            "A model version's quality against the true outcomes, by metric, over the window or since start",
        );
        let mut labelled = gauge(
            "sluice_model_labelled",
            "Predictions of a model version joined with their label since start",
        );
        let mut join = gauge(
            "sluice_evaluator_join",
            "What an evaluator's join holds (waiting) and dropped, by what",
        );
        for s in &status.streamlets {
            if let Some(q) = &s.quality {
                push_quality(q, &s.name, &mut quality, &mut labelled, &mut join);
            }
            let who = || vec![("streamlet", s.name.clone()), ("kind", s.kind.clone())];
            up.push(who(), ConstGauge::new(if s.running { 1.0 } else { 0.0 }));
            records_in.push(who(), ConstCounter::new(s.records_in));
            for o in &s.outlets {
                let labels = vec![("streamlet", s.name.clone()), ("outlet", o.port.clone())];
                records_out.push(labels.clone(), ConstCounter::new(o.records));
                if o.discarded {
                    discarded.push(labels.clone(), ConstCounter::new(o.records));
                }
                if crate::streamlets::kind::carries_errors(&o.port) {
                    errors.push(labels, ConstCounter::new(o.records));
                }
            }
            for m in &s.models {
                let labels = vec![
                    ("streamlet", s.name.clone()),
                    ("model", m.name.clone()),
                    ("version", m.version.clone()),
                    ("sha256", m.sha256.clone()),
                ];
                invocations.push(labels.clone(), ConstCounter::new(m.invocations));
                scored.push(labels.clone(), ConstCounter::new(m.records));
                model_errors.push(labels.clone(), ConstCounter::new(m.errors));
                for (q, v) in [
                    ("0.5", m.latency_us.p50),
                    ("0.99", m.latency_us.p99),
                    ("1", m.latency_us.max),
                ] {
                    let mut l = labels.clone();
                    l.push(("quantile", q.to_string()));
                    latency.push(l, ConstGauge::new(v as f64));
                }
            }
            if let Some(st) = &s.strategy {
                for (model, n) in &st.answered {
                    let labels = vec![
                        ("streamlet", s.name.clone()),
                        ("strategy", st.strategy.clone()),
                        ("model", model.clone()),
                    ];
                    answered.push(labels, ConstCounter::new(*n));
                }
                let labels = vec![("streamlet", s.name.clone()), ("strategy", st.strategy.clone())];
                misses.push(labels.clone(), ConstCounter::new(st.budget_misses));
                no_consensus.push(labels, ConstCounter::new(st.no_consensus));
                for (shadow, a) in &st.shadows {
                    let measures = [
                        ("label_agreement", a.label_agreement),
                        ("mean_abs_diff", a.mean_abs_diff),
                        ("max_abs_diff", a.max_abs_diff),
                    ];
                    for (measure, value) in measures {
                        if let Some(v) = value {
                            let labels = vec![
                                ("streamlet", s.name.clone()),
                                ("shadow", shadow.clone()),
                                ("measure", measure.to_string()),
                            ];
                            agreement.push(labels, ConstGauge::new(v));
                        }
                    }
                }
            }
            for (topic, partition, n) in &s.lag {
                let labels = vec![
                    ("streamlet", s.name.clone()),
                    ("topic", topic.clone()),
                    ("partition", partition.to_string()),
                ];
                lag.push(labels, ConstGauge::new(*n as f64));
            }
            for (event, n) in &s.counters {
                events.push(
                    vec![("streamlet", s.name.clone()), ("event", event.clone())],
                    ConstCounter::new(*n),
                );
            }
        }
        for f in [&up, &latency, &agreement, &lag, &quality, &labelled, &join] {
            f.encode(&mut encoder)?;
        }
        for f in [
            &records_in,
            &records_out,
            &discarded,
            &errors,
            &invocations,
            &scored,
            &model_errors,
            &answered,
            &misses,
            &no_consensus,
            &events,
        ] {
            f.encode(&mut encoder)?;
        }
        let mut queued = gauge("sluice_channel_queued_batches", "Batches waiting in an edge's channel");
        let mut capacity = gauge("sluice_channel_capacity_batches", "Batches an edge's channel holds");
        for e in &status.edges {
            let labels = vec![
                ("from", e.from.clone()),
                ("outlet", e.port.clone()),
                ("to", e.to.clone()),
                ("transport", e.transport.to_string()),
            ];
            queued.push(labels.clone(), ConstGauge::new(e.queued as f64));
            capacity.push(labels, ConstGauge::new(e.capacity as f64));
        }
        queued.encode(&mut encoder)?;
        capacity.encode(&mut encoder)?;
        let mut processing = encoder.encode_descriptor(
            "sluice_batch_processing_seconds",
            "Time a streamlet spends on a batch, from taking it to asking for the next",
            None,
            MetricType::Histogram,
        )?;
        for (name, kind, histogram) in self.handle.0.processing_times() {
            let labels: Labels = vec![("streamlet", name), ("kind", kind)];
            histogram.encode(processing.encode_family(&labels)?)?;
        }
        let mut reloads = counter("sluice_reloads", "Configurations applied while running");
        reloads.push(Vec::new(), ConstCounter::new(status.reloads));
        let mut rejected = counter(
            "sluice_reloads_rejected",
            "New configurations refused for their problems",
        );
        rejected.push(Vec::new(), ConstCounter::new(status.rejected));
        let mut rolled_back = counter(
            "sluice_reloads_rolled_back",
            "New configurations whose pieces failed to start",
        );
        rolled_back.push(Vec::new(), ConstCounter::new(status.rolled_back));
        let mut config = gauge("sluice_config_info", "The configuration running now (its hash)");
        config.push(
            vec![
                ("pipeline", status.pipeline.clone()),
                ("hash", status.config_hash.clone()),
            ],
            ConstGauge::new(1.0),
        );
        for f in [&reloads, &rejected, &rolled_back] {
            f.encode(&mut encoder)?;
        }
        config.encode(&mut encoder)
    }
}

/// A registry that reads `handle` at each scrape.
pub fn registry(handle: Handle) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Pipeline {
        handle: HandleRef(handle),
    }));
    registry
}

/// The metrics in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}
