//! The trainer: starts a training run when its triggers say (every N new rows of the
//! dataset, every T, a drift event on an input), at most one at a time and never holding up
//! the stream, and publishes the model the run writes as the next version of a scorer's
//! model, with its lineage, once it passes the scorer's checks.
//!
//! A run trains on its own copy of the dataset (the complete shards the manifest lists,
//! linked or copied into the run's folder), so the rolling dataset may move on meanwhile.
//! The model file goes into the scorer's folder first and its descriptor last, each written
//! beside and renamed, so the scorer never sees a version half written: a process stopped in
//! the middle of a run publishes nothing.

pub mod config;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

use self::config::{TrainerConfig, TrainerPort};
use super::egress::dataset::{Manifest, MANIFEST};
use super::{Batch, Io, Stop};
use crate::models::descriptor::{compare_versions, scan};
use crate::models::ModelDescriptor;

/// How often the dataset's manifest is read for the triggers.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What started a run.
#[derive(Debug, Clone)]
struct Trigger {
    kind: &'static str,
    figures: Value,
}

/// How a run ended.
enum Ended {
    /// The command exited 0 and wrote a model: where, its metrics, how long it took.
    Trained {
        model: PathBuf,
        metrics: Option<Value>,
        seconds: f64,
    },
    Failed(String),
}

/// A run going on.
struct Running {
    number: u64,
    trigger: Trigger,
    dataset: Manifest,
    task: JoinHandle<Ended>,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn read_manifest(dataset: &Path) -> Option<Manifest> {
    serde_json::from_str(&std::fs::read_to_string(dataset.join(MANIFEST)).ok()?).ok()
}

/// The run's own copy of the dataset: the manifest and the shards it lists, linked where the
/// file system allows it.
fn snapshot(dataset: &Path, manifest: &Manifest, into: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(into)?;
    for shard in &manifest.shards {
        let (from, to) = (dataset.join(&shard.file), into.join(&shard.file));
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)?;
        }
    }
    std::fs::write(
        into.join(MANIFEST),
        serde_json::to_vec_pretty(manifest).unwrap_or_default(),
    )
}

/// Runs the command of a run to its end (or its timeout), its output logged line by line.
async fn train(config: TrainerConfig, streamlet: String, number: u64, dataset: PathBuf, output: PathBuf) -> Ended {
    let started = Instant::now();
    let args: Vec<String> = config
        .command
        .iter()
        .map(|a| {
            a.replace("{dataset}", &dataset.display().to_string())
                .replace("{output}", &output.display().to_string())
        })
        .collect();
    let Some((program, rest)) = args.split_first() else {
        return Ended::Failed("no command".into());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(rest)
        .envs(&config.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, so that a stop ends whatever it started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::Failed(format!("cannot start `{program}`: {e}")),
    };
    let log = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>, stream: &'static str| {
        let streamlet = streamlet.clone();
        tokio::spawn(async move {
            let Some(pipe) = pipe else { return };
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(%streamlet, run = number, %stream, %line, "training output");
            }
        })
    };
    let out = log(child.stdout.take().map(|p| Box::new(p) as _), "stdout");
    let err = log(child.stderr.take().map(|p| Box::new(p) as _), "stderr");
    let status = match tokio::time::timeout(config.timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Ended::Failed(format!("the command could not be waited for: {e}")),
        Err(_) => {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) with a negative pid signals the process group the command
                // leads (made with `process_group(0)`); it touches no memory of ours.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
            let _ = child.kill().await;
            return Ended::Failed(format!(
                "the run took longer than {}: stopped",
                humantime::format_duration(config.timeout)
            ));
        }
    };
    let _ = tokio::join!(out, err);
    if !status.success() {
        return Ended::Failed(format!("the command failed ({status})"));
    }
    let model = output.join("model.onnx");
    if !model.is_file() {
        return Ended::Failed(format!("the command wrote no model ({} is missing)", model.display()));
    }
    let metrics = std::fs::read_to_string(output.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Ended::Trained {
        model,
        metrics,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Publishes a trained model as the next version of the scorer's model: checked first by
/// the registry's own checks, then written (model, then descriptor). Blocking.
fn publish(registry: &crate::models::ModelRegistry, model: &Path, lineage: Value) -> Result<(String, String), String> {
    let folder = registry
        .folder()
        .ok_or("the scorer's model comes from a Kafka topic: a trainer publishes into a folder")?
        .to_path_buf();
    let name = registry.name().to_string();
    let parent = registry
        .current()
        .ok_or("no version serves: there is no descriptor to follow")?;
    let (existing, _) = scan(&folder, &name);
    let highest = existing
        .iter()
        .map(|d| d.version.clone())
        .max_by(|a, b| compare_versions(a, b))
        .unwrap_or_else(|| parent.descriptor.version.clone());
    let next = match highest.parse::<u64>() {
        Ok(n) => (n + 1).to_string(),
        Err(_) => format!("{highest}.1"),
    };
    let bytes = std::fs::read(model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
    use sha2::Digest;
    let sha256: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = format!("{name}-v{next}.onnx");
    let model_path = folder.join(&file);
    let partial = folder.join(format!("{file}.partial"));
    std::fs::write(&partial, &bytes)
        .and_then(|_| std::fs::rename(&partial, &model_path))
        .map_err(|e| format!("cannot write {}: {e}", model_path.display()))?;
    let descriptor = ModelDescriptor {
        version: next.clone(),
        location: Some(file),
        bytes_base64: None,
        sha256,
        created: Some(now_rfc3339()),
        description: Some(format!("retrained from version {}", parent.descriptor.version)),
        lineage: Some(lineage),
        file: folder.join(format!("{name}-v{next}.model.json")),
        ..parent.descriptor.clone()
    };
    if let Err(e) = registry.check(descriptor.clone()) {
        let _ = std::fs::remove_file(&model_path);
        return Err(format!("the model fails the scorer's checks: {e}"));
    }
    let text = serde_json::to_vec_pretty(&descriptor).map_err(|e| e.to_string())?;
    let partial = descriptor.file.with_extension("json.partial");
    std::fs::write(&partial, text)
        .and_then(|_| std::fs::rename(&partial, &descriptor.file))
        .map_err(|e| format!("cannot write {}: {e}", descriptor.file.display()))?;
    Ok((next, parent.descriptor.version.clone()))
}

fn event(kind: &str, number: u64, trigger: &Trigger, dataset: &Manifest) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("event".into(), kind.into());
    r.insert("run".into(), number.into());
    r.insert("at".into(), now_rfc3339().into());
    r.insert(
        "trigger".into(),
        json!({"kind": trigger.kind, "figures": trigger.figures}),
    );
    r.insert(
        "dataset".into(),
        json!({"rows": dataset.rows, "from": dataset.from, "to": dataset.to, "sha256": dataset.sha256}),
    );
    r
}

pub async fn run(config: TrainerConfig, mut io: Io) -> Result<(), Stop> {
    let out = io.outlets.get(TrainerPort::Out)?;
    let runs = config.state.join(format!("{}.runs", io.name));
    let mut look = tokio::time::interval(LOOK_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_run = Instant::now();
    let mut rows_base = read_manifest(&config.dataset).map_or(0, |m| m.written);
    let mut running: Option<Running> = None;
    let mut number = 0u64;
    let mut input_open = true;
    loop {
        let mut trigger = None;
        tokio::select! {
            batch = io.inlet.recv(), if input_open => match batch {
                None => input_open = false,
                Some(batch) if config.when.on_drift => trigger = drifting(&batch),
                Some(_) => {}
            },
            _ = look.tick() => {}
            ended = async { (&mut running.as_mut().expect("a run goes on").task).await }, if running.is_some() => {
                let Some(run) = running.take() else { continue };
                let ended = ended.unwrap_or_else(|e| Ended::Failed(format!("the run stopped abnormally: {e}")));
                let record = finish(&config, &io, run, ended).await;
                out.send(Batch::from_records(&[record])).await?;
                continue;
            }
            _ = io.stop_intake.cancelled(), if running.is_some() => {
                // The pipeline stops: the run is stopped with it (its command killed), and
                // publishes nothing.
                let Some(run) = running.take() else { continue };
                run.task.abort();
                let mut record = event("failed", run.number, &run.trigger, &run.dataset);
                record.insert("reason".into(), "the pipeline stopped during the run".into());
                out.send(Batch::from_records(&[record])).await?;
                continue;
            }
        }
        let manifest = read_manifest(&config.dataset);
        if trigger.is_none() {
            if let (Some(every), Some(m)) = (config.when.every_rows, &manifest) {
                if m.written >= rows_base + every {
                    trigger = Some(Trigger {
                        kind: "every_rows",
                        figures: json!({"new_rows": m.written - rows_base, "every_rows": every}),
                    });
                }
            }
        }
        if trigger.is_none() {
            if let Some(every) = config.when.every {
                if last_run.elapsed() >= every {
                    trigger = Some(Trigger {
                        kind: "every",
                        figures: json!({"seconds": last_run.elapsed().as_secs_f64()}),
                    });
                }
            }
        }
        let Some(trigger) = trigger else {
            if !input_open && running.is_none() {
                break; // its inputs ended, and nothing is left to start or finish
            }
            continue;
        };
        let Some(manifest) = manifest.filter(|m| m.rows >= config.min_rows) else {
            tracing::info!(streamlet = %io.name, trigger = trigger.kind, min_rows = config.min_rows, "training not started: the dataset has too few rows");
            continue;
        };
        if let Some(run) = &running {
            tracing::info!(streamlet = %io.name, trigger = trigger.kind, run = run.number, "training not started: a run goes on");
            let mut skipped = event("skipped", run.number, &trigger, &manifest);
            skipped.insert("reason".into(), format!("run {} goes on", run.number).into());
            out.send(Batch::from_records(&[skipped])).await?;
            continue;
        }
        number += 1;
        last_run = Instant::now();
        rows_base = manifest.written;
        let folder = runs.join(format!(
            "run-{}-{number}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ));
        let (dataset, output) = (folder.join("dataset"), folder.join("output"));
        let prepared = snapshot(&config.dataset, &manifest, &dataset).and_then(|_| std::fs::create_dir_all(&output));
        let mut started = event("started", number, &trigger, &manifest);
        started.insert("command".into(), json!(config.command));
        out.send(Batch::from_records(&[started])).await?;
        tracing::info!(streamlet = %io.name, run = number, trigger = trigger.kind, rows = manifest.rows, "training started");
        let task = match prepared {
            Ok(()) => tokio::spawn(train(config.clone(), io.name.clone(), number, dataset, output)),
            Err(e) => {
                let reason = format!("cannot prepare the run's folder {}: {e}", folder.display());
                tokio::spawn(async move { Ended::Failed(reason) })
            }
        };
        running = Some(Running {
            number,
            trigger,
            dataset: manifest,
            task,
        });
    }
    Ok(())
}

/// A drift event that says a field drifts: a trigger with its figures.
fn drifting(batch: &Batch) -> Option<Trigger> {
    batch.records().into_iter().find_map(|r| {
        (r.get("type").and_then(Value::as_str) == Some("drift")
            && r.get("status").and_then(Value::as_str) == Some("drifting"))
        .then(|| Trigger {
            kind: "drift",
            figures: Value::Object(r),
        })
    })
}

/// Publishes what a run trained (or says why not): the run's last event.
async fn finish(config: &TrainerConfig, io: &Io, run: Running, ended: Ended) -> Map<String, Value> {
    let mut record = event("failed", run.number, &run.trigger, &run.dataset);
    let reason = match ended {
        Ended::Failed(reason) => reason,
        Ended::Trained {
            model,
            metrics,
            seconds,
        } => {
            record.insert("seconds".into(), seconds.into());
            if let Some(m) = &metrics {
                record.insert("metrics".into(), m.clone());
            }
            let serving = io.controls.serving(&config.publish.scorer);
            let wanted = config.publish.model.clone().unwrap_or_default();
            let registry = serving.and_then(|s| {
                let registries = s.registries();
                let only = registries.len() == 1;
                registries
                    .into_iter()
                    .find(|(id, _)| *id == wanted || (wanted.is_empty() && only))
                    .map(|(_, r)| r)
            });
            match registry {
                None => format!(
                    "the scorer `{}` does not run (or has no model `{wanted}`): nothing to publish to",
                    config.publish.scorer
                ),
                Some(registry) => {
                    let lineage = json!({
                        "parent": registry.current().map(|v| v.descriptor.version.clone()),
                        "dataset": {"rows": run.dataset.rows, "from": run.dataset.from, "to": run.dataset.to,
                                    "sha256": run.dataset.sha256},
                        "trigger": {"kind": run.trigger.kind, "figures": run.trigger.figures},
                        "command": config.command,
                        "seconds": seconds,
                        "metrics": metrics,
                        "trainer": io.name,
                    });
                    let published = tokio::task::spawn_blocking(move || publish(&registry, &model, lineage))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                    match published {
                        Ok((version, parent)) => {
                            tracing::info!(streamlet = %io.name, run = run.number, %version, %parent, "version published");
                            record.insert("event".into(), "published".into());
                            record.insert("version".into(), version.into());
                            record.insert("parent".into(), parent.into());
                            return record;
                        }
                        Err(reason) => reason,
                    }
                }
            }
        }
    };
    tracing::error!(streamlet = %io.name, run = run.number, %reason, "training run failed; what serves is unchanged");
    record.insert("reason".into(), reason.into());
    record
}
