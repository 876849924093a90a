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
mod publish;

#[cfg(test)]
use publish::claim;
use publish::publish;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

use self::config::{TrainerConfig, TrainerPort};
use super::egress::dataset::{hold, Manifest, MANIFEST};
use super::{Batch, Io, Stop};

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
    folder: PathBuf,
    task: JoinHandle<Ended>,
}

impl Drop for Running {
    /// A run dropped unfinished (the trainer stopped) is stopped: its command's process group
    /// is killed with it.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many run folders (each with its output) are kept; the dataset copy of a finished run
/// goes at once.
const KEEP_RUNS: usize = 5;

/// Removes a finished run's dataset copy, and the oldest run folders beyond [`KEEP_RUNS`].
fn tidy(runs: &Path, finished: &Path) {
    let _ = std::fs::remove_dir_all(finished.join("dataset"));
    let Ok(entries) = std::fs::read_dir(runs) else { return };
    let mut folders: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
        .map(|e| {
            (
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                e.path(),
            )
        })
        .collect();
    folders.sort();
    let excess = folders.len().saturating_sub(KEEP_RUNS);
    for (_, old) in folders.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(old);
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn read_manifest(dataset: &Path) -> Option<Manifest> {
    serde_json::from_str(&std::fs::read_to_string(dataset.join(MANIFEST)).ok()?).ok()
}

/// Links each shard `manifest` lists into `into`; a shard that cannot be linked (the copy is
/// on another file system) is opened instead, to be copied by [`copy`]: an open file stays
/// readable when the sink removes it. What is done while the dataset's folder is held: quick.
fn link(dataset: &Path, manifest: &Manifest, into: &Path) -> std::io::Result<Vec<(std::fs::File, PathBuf)>> {
    std::fs::create_dir_all(into)?;
    let named = |from: &Path, e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", from.display()));
    let mut unlinked = Vec::new();
    for shard in &manifest.shards {
        // A shard is a plain file of the folder, whatever the manifest says.
        let plain = Path::new(&shard.file)
            .file_name()
            .is_some_and(|n| n == shard.file.as_str());
        if !plain {
            return Err(std::io::Error::other(format!("`{}` is not a shard's name", shard.file)));
        }
        let (from, to) = (dataset.join(&shard.file), into.join(&shard.file));
        if std::fs::hard_link(&from, &to).is_err() {
            unlinked.push((std::fs::File::open(&from).map_err(|e| named(&from, e))?, to));
        }
    }
    Ok(unlinked)
}

/// Copies the shards [`link`] opened, and writes the manifest: after the folder is let go,
/// so that a long copy holds up no sink.
fn copy(unlinked: Vec<(std::fs::File, PathBuf)>, manifest: &Manifest, into: &Path) -> std::io::Result<()> {
    for (mut from, to) in unlinked {
        std::io::copy(&mut from, &mut std::fs::File::create(&to)?)?;
    }
    std::fs::write(
        into.join(MANIFEST),
        serde_json::to_vec_pretty(manifest).unwrap_or_default(),
    )
}

/// The run's copy of the dataset, as its manifest says now: the manifest read and its shards
/// linked (or opened) holding the folder, so that the sink's rolling bound drops none of them
/// meanwhile. The manifest copied. Blocking.
fn prepare(dataset: &Path, into: &Path) -> std::io::Result<Manifest> {
    let held = hold(dataset)?;
    let manifest = read_manifest(dataset).ok_or_else(|| std::io::Error::other("the dataset has no manifest"))?;
    let unlinked = link(dataset, &manifest, into)?;
    drop(held);
    copy(unlinked, &manifest, into)?;
    Ok(manifest)
}

/// The command's process group: killed whole when the run ends, however it ends (its exit,
/// its timeout, a stop of the pipeline dropping the run), so nothing it started lives on.
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals the process group the command
            // leads (made with `process_group(0)`); it touches no memory of ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// Logs a pipe of the command line by line (bytes that are not UTF-8 shown as such).
fn log_lines(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
    streamlet: String,
    number: u64,
    stream: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(pipe) = pipe else { return };
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            tracing::info!(%streamlet, run = number, %stream, line = %text.trim_end(), "training output");
            line.clear();
        }
    })
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
    let mut command = match &config.working_directory {
        Some(dir) => {
            // A relative program path with a folder in it is taken from the working directory,
            // as a shell there would (a bare name is looked up on PATH).
            let program = Path::new(program);
            let mut command = if program.is_relative() && program.components().count() > 1 {
                tokio::process::Command::new(dir.join(program))
            } else {
                tokio::process::Command::new(program)
            };
            command.current_dir(dir);
            command
        }
        None => tokio::process::Command::new(program),
    };
    command
        .args(rest)
        .envs(&config.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, so that the end of the run ends whatever it started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::Failed(format!("cannot start `{program}`: {e}")),
    };
    let mut group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
    let out = log_lines(child.stdout.take(), streamlet.clone(), number, "stdout");
    let err = log_lines(child.stderr.take(), streamlet.clone(), number, "stderr");
    let status = tokio::time::timeout(config.timeout, child.wait()).await;
    // Whatever it left running goes with it, and its pipes close.
    drop(std::mem::replace(&mut group, Group(None)));
    let _ = tokio::join!(out, err);
    let status = match status {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Ended::Failed(format!("the command could not be waited for: {e}")),
        Err(_) => {
            return Ended::Failed(format!(
                "the run took longer than {}: stopped",
                humantime::format_duration(config.timeout)
            ))
        }
    };
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
        json!({"rows": dataset.rows, "from": dataset.from, "to": dataset.to, "sha256": dataset.sha256,
               "sources": dataset.sources}),
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
    let (door, mut asked) = tokio::sync::mpsc::channel::<()>(1);
    io.controls.register_trainer(&io.name, door);
    // The versions a quality floor started a run for: each once.
    let mut floored: std::collections::HashSet<String> = std::collections::HashSet::new();
    // A drift event waiting for `new_rows` more rows: its trigger, and the rows written when
    // it came.
    let mut waiting: Option<(Trigger, u64)> = None;
    // The rows written when the last drift-started run fired: the change's later events (other
    // fields crossing their threshold as the shift goes on) belong to it for `new_rows` more
    // rows. Forgotten when that run fails.
    let mut answered: Option<u64> = None;
    loop {
        let mut trigger = None;
        tokio::select! {
            batch = io.inlet.recv(), if input_open => match batch {
                None => input_open = false,
                Some(batch) if config.when.on_drift.is_some() => trigger = drifting(&batch),
                Some(_) => {}
            },
            _ = look.tick() => {}
            Some(()) = asked.recv() => {
                trigger = Some(Trigger { kind: "manual", figures: json!({"asked_through": "the admin API"}) });
            }
            ended = async { (&mut running.as_mut().expect("a run goes on").task).await }, if running.is_some() => {
                let Some(run) = running.take() else { continue };
                let ended = ended.unwrap_or_else(|e| Ended::Failed(format!("the run stopped abnormally: {e}")));
                let folder = run.folder.clone();
                let record = finish(&config, &io, &run, ended).await;
                if run.trigger.kind == "drift" && record.get("event").and_then(Value::as_str) != Some("published") {
                    answered = None; // the change is not answered: its next event starts a run
                }
                drop(run);
                let runs = runs.clone();
                let _ = tokio::task::spawn_blocking(move || tidy(&runs, &folder)).await;
                out.send(Batch::from_records(&[record])).await?;
                continue;
            }
            _ = io.stop_intake.cancelled(), if running.is_some() => {
                // The pipeline stops: the run is stopped with it (its command's process group
                // killed), and publishes nothing.
                let Some(mut run) = running.take() else { continue };
                run.task.abort();
                let _ = (&mut run.task).await;
                let mut record = event("failed", run.number, &run.trigger, &run.dataset);
                record.insert("reason".into(), "the pipeline stopped during the run".into());
                out.send(Batch::from_records(&[record])).await?;
                continue;
            }
        }
        // Once its inputs end or the pipeline stops, no new run starts.
        if !input_open || io.stop_intake.is_cancelled() {
            if running.is_none() {
                break;
            }
            continue;
        }
        let manifest = read_manifest(&config.dataset);
        if let Some(m) = &manifest {
            if m.written < rows_base {
                rows_base = m.written; // a dataset begun anew
            }
        }
        if let Some(wait) = config.when.on_drift.filter(|w| w.new_rows > 0) {
            // A drift event while a run goes on is used up as any trigger then is (skipped).
            if running.is_none() {
                trigger = after_drift(
                    trigger,
                    (&mut waiting, &mut answered),
                    wait.new_rows,
                    manifest.as_ref(),
                    &io.name,
                );
            }
        }
        if trigger.is_none() {
            if let (Some(every), Some(m)) = (config.when.every_rows, &manifest) {
                if m.written >= rows_base.saturating_add(every) {
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
        if trigger.is_none() {
            trigger = below_floor(&config, &io, &mut floored);
        }
        let Some(trigger) = trigger else { continue };
        // A trigger is used up whether it starts a run or not: it fires again only after
        // another `every_rows` rows or `every`.
        last_run = Instant::now();
        if let Some(m) = &manifest {
            rows_base = m.written;
        }
        let Some(manifest) = manifest.filter(|m| m.rows >= config.min_rows) else {
            if trigger.kind == "drift" {
                answered = None; // no run answers the change
            }
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
        let folder = runs.join(format!(
            "run-{}-{number}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ));
        let (dataset, output) = (folder.join("dataset"), folder.join("output"));
        let (source, copy_into, out_dir, min_rows) =
            (config.dataset.clone(), dataset.clone(), output.clone(), config.min_rows);
        let prepared = tokio::task::spawn_blocking(move || {
            let m = prepare(&source, &copy_into)?;
            // The bounds may have dropped shards since the rows were counted.
            if m.rows < min_rows {
                return Err(std::io::Error::other(format!(
                    "the dataset holds {} rows now, fewer than min_rows ({min_rows})",
                    m.rows
                )));
            }
            std::fs::create_dir_all(&out_dir).map(|_| m)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let manifest = match &prepared {
            Ok(m) => m.clone(),
            Err(_) => manifest,
        };
        let mut started = event("started", number, &trigger, &manifest);
        started.insert("command".into(), json!(config.command));
        out.send(Batch::from_records(&[started])).await?;
        tracing::info!(streamlet = %io.name, run = number, trigger = trigger.kind, rows = manifest.rows, "training started");
        let task = match prepared {
            Ok(_) => tokio::spawn(train(config.clone(), io.name.clone(), number, dataset, output)),
            Err(e) => {
                let reason = format!("cannot prepare the run's folder {}: {e}", folder.display());
                tokio::spawn(async move { Ended::Failed(reason) })
            }
        };
        running = Some(Running {
            number,
            trigger,
            dataset: manifest,
            folder,
            task,
        });
    }
    Ok(())
}

/// The version this trainer publishes for, when its figure over the evaluator's window is
/// worse than the floor (once per version).
fn below_floor(config: &TrainerConfig, io: &Io, floored: &mut std::collections::HashSet<String>) -> Option<Trigger> {
    let floor = config.when.quality.as_ref()?;
    let serving = io.controls.serving(&config.publish.scorer)?;
    let wanted = config.publish.model.clone().unwrap_or_default();
    let (_, serves) = serving
        .versions()
        .into_iter()
        .find(|(id, _)| *id == wanted || wanted.is_empty())?;
    let (name, version) = serves?;
    let quality = io.controls.quality_of(&floor.evaluator)?;
    let arm = (!wanted.is_empty()).then_some(wanted.as_str());
    let model = quality
        .models
        .iter()
        .find(|m| m.name == name && m.version == version && m.arm.as_deref() == arm)?;
    let value = model.window.get(floor.metric)?;
    let worse = if floor.metric.higher_is_better() {
        value < floor.worse_than
    } else {
        value > floor.worse_than
    };
    if model.window.labelled < floor.min_labelled || !worse || !floored.insert(version.clone()) {
        return None;
    }
    Some(Trigger {
        kind: "quality",
        figures: json!({"version": version, "metric": floor.metric.name(), "value": value,
                        "worse_than": floor.worse_than, "labelled": model.window.labelled}),
    })
}

/// A drift event waits for `new_rows` more rows in the dataset (those after the change); the
/// events that come while it waits belong to the same change, and so do those in the
/// `new_rows` rows after its run fired (`answered`: the rows written then). The trigger, once
/// they are in (or any other trigger that came meanwhile).
fn after_drift(
    trigger: Option<Trigger>,
    (waiting, answered): (&mut Option<(Trigger, u64)>, &mut Option<u64>),
    new_rows: u64,
    manifest: Option<&Manifest>,
    streamlet: &str,
) -> Option<Trigger> {
    let written = manifest.map_or(0, |m| m.written);
    let mut trigger = trigger;
    if let Some(drift) = trigger.take_if(|t| t.kind == "drift") {
        // A dataset begun anew (fewer rows written than then) ends the change too.
        if answered.is_some_and(|at| written < at) {
            *answered = None;
        }
        let same_change = answered.is_some_and(|at| (at..at.saturating_add(new_rows)).contains(&written));
        if same_change {
            tracing::info!(%streamlet, new_rows, "drift: the same change as the last run's, within new_rows of it; no run");
        } else if waiting.is_none() {
            tracing::info!(%streamlet, new_rows, "drift: a training run starts once the dataset has the new rows");
            *waiting = Some((drift, written));
        }
    }
    if let Some((_, since)) = waiting.as_mut() {
        *since = (*since).min(written); // a dataset begun anew counts from its start
        if trigger.is_none() && written >= since.saturating_add(new_rows) {
            let (drift, since) = waiting.take()?;
            *answered = Some(written);
            return Some(Trigger {
                kind: "drift",
                figures: json!({"drift": drift.figures, "new_rows": written - since, "waited_for": new_rows}),
            });
        }
    }
    trigger
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
async fn finish(config: &TrainerConfig, io: &Io, run: &Running, ended: Ended) -> Map<String, Value> {
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
                                    "sha256": run.dataset.sha256, "sources": run.dataset.sources},
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

#[cfg(test)]
mod tests {
    use super::*;

    fn drift(field: &str) -> Option<Trigger> {
        Some(Trigger {
            kind: "drift",
            figures: json!({"field": field}),
        })
    }

    fn written(n: u64) -> Manifest {
        Manifest {
            written: n,
            ..Manifest::default()
        }
    }

    fn dataset(dir: &Path, shard_rows: u64, max_rows: u64) -> super::super::egress::dataset::Dataset {
        super::super::egress::dataset::Dataset::open(&super::super::egress::config::DatasetSinkConfig {
            path: dir.to_path_buf(),
            shard_rows,
            max_rows: Some(max_rows),
            max_age: None,
            source_field: "_kafka".into(),
        })
        .expect("open the dataset")
    }

    fn copied(into: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(into)
            .expect("the copy")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("shard-"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_run_copies_the_dataset_as_its_manifest_says_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("dataset");
        let mut d = dataset(&source, 2, 4);
        d.append(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n", SystemTime::now())
            .expect("append");
        // The sink writes on after the run was decided: its rolling bound drops shard 1.
        d.append(b"{\"a\":5}\n{\"a\":6}\n", SystemTime::now()).expect("append");
        let into = dir.path().join("copy");
        let copied_manifest = prepare(&source, &into).expect("prepared");
        assert_eq!(copied_manifest, *d.manifest());
        assert_eq!(copied(&into), ["shard-000002.jsonl", "shard-000003.jsonl"]);
        let on_disk: Manifest =
            serde_json::from_slice(&std::fs::read(into.join(MANIFEST)).expect("manifest")).expect("json");
        assert_eq!(on_disk, *d.manifest(), "the copy's manifest lists what it holds");
    }

    #[test]
    fn a_listed_shard_that_is_not_there_fails_the_run_saying_which() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("dataset");
        let mut d = dataset(&source, 2, 4);
        d.append(b"{\"a\":1}\n{\"a\":2}\n", SystemTime::now()).expect("append");
        std::fs::remove_file(source.join("shard-000001.jsonl")).expect("removed by hand");
        let e = prepare(&source, &dir.path().join("copy")).expect_err("a shard is missing");
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(e.to_string().contains("shard-000001.jsonl"), "{e}");
    }

    #[test]
    fn a_run_copies_a_whole_dataset_while_its_sink_rolls_it_fast() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("dataset");
        let mut d = dataset(&source, 5, 40);
        d.append(&b"{\"a\":1}\n".repeat(40), SystemTime::now()).expect("append");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writing = stop.clone();
        // The writer stops however the test ends: a failed round must not leave it writing.
        struct Stopping(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Stopping {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let stopping = Stopping(stop.clone());
        let writer = std::thread::spawn(move || {
            while !writing.load(std::sync::atomic::Ordering::Relaxed) {
                d.append(&b"{\"a\":1}\n".repeat(5), SystemTime::now()).expect("append");
            }
        });
        for round in 0..100 {
            let into = dir.path().join(format!("copy-{round}"));
            let m = prepare(&source, &into).unwrap_or_else(|e| panic!("round {round}: {e}"));
            let names: Vec<String> = m.shards.iter().map(|s| s.file.clone()).collect();
            assert_eq!(
                copied(&into),
                names,
                "round {round}: the copy holds what its manifest lists"
            );
            assert_eq!(m.rows, 40);
        }
        drop(stopping);
        writer.join().expect("writer");
    }

    #[test]
    fn a_run_on_another_file_system_copies_the_shards_it_cannot_link() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let elsewhere = tempfile::tempdir_in("/dev/shm").expect("a folder in /dev/shm");
        let device = |p: &Path| std::fs::metadata(p).expect("metadata").dev();
        assert_ne!(
            device(dir.path()),
            device(elsewhere.path()),
            "this test needs /dev/shm on a file system of its own"
        );
        let source = dir.path().join("dataset");
        let mut d = dataset(&source, 2, 4);
        d.append(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n", SystemTime::now())
            .expect("append");
        let into = elsewhere.path().join("copy");
        let m = prepare(&source, &into).expect("prepared");
        assert_eq!(m.rows, 2);
        assert_eq!(copied(&into), ["shard-000001.jsonl"]);
        assert_eq!(
            std::fs::read(into.join("shard-000001.jsonl")).expect("copied"),
            b"{\"a\":1}\n{\"a\":2}\n"
        );
        // The sink is not held up once the shards are open: it drops shard 1 meanwhile.
        let opened = {
            let held = hold(&source).expect("held");
            let manifest = read_manifest(&source).expect("manifest");
            let opened = link(&source, &manifest, &elsewhere.path().join("again")).expect("opened");
            drop(held);
            (opened, manifest)
        };
        d.append(b"{\"a\":4}\n{\"a\":5}\n{\"a\":6}\n", SystemTime::now())
            .expect("the sink goes on");
        assert!(!source.join("shard-000001.jsonl").exists(), "the bound dropped shard 1");
        copy(opened.0, &opened.1, &elsewhere.path().join("again")).expect("copied from the open files");
        assert_eq!(
            std::fs::read(elsewhere.path().join("again/shard-000001.jsonl")).expect("copied"),
            b"{\"a\":1}\n{\"a\":2}\n"
        );
    }

    #[test]
    fn a_drift_event_waits_for_the_new_rows_and_those_of_the_same_change_start_nothing_more() {
        let (mut waiting, mut answered) = (None, None);
        assert!(after_drift(
            drift("sqft_living"),
            (&mut waiting, &mut answered),
            100,
            Some(&written(500)),
            "t"
        )
        .is_none());
        assert!(after_drift(
            drift("sqft_lot"),
            (&mut waiting, &mut answered),
            100,
            Some(&written(550)),
            "t"
        )
        .is_none());
        assert!(after_drift(None, (&mut waiting, &mut answered), 100, Some(&written(599)), "t").is_none());
        let fired = after_drift(None, (&mut waiting, &mut answered), 100, Some(&written(600)), "t").expect("fired");
        assert_eq!(fired.kind, "drift");
        assert_eq!(
            fired.figures["drift"]["field"], "sqft_living",
            "the first event of the change"
        );
        assert_eq!(fired.figures["new_rows"], 100);
        assert!(waiting.is_none());
        assert_eq!(answered, Some(600));
        // Events of the same change after its run fired start nothing, for new_rows rows.
        assert!(after_drift(
            drift("sqft_lot"),
            (&mut waiting, &mut answered),
            100,
            Some(&written(650)),
            "t"
        )
        .is_none());
        assert!(waiting.is_none(), "not a new change");
        // Past them, a drift event is a new change.
        assert!(after_drift(
            drift("view"),
            (&mut waiting, &mut answered),
            100,
            Some(&written(700)),
            "t"
        )
        .is_none());
        assert!(waiting.is_some(), "a new change waits for its rows");
        // A dataset begun anew ends the change too.
        let (mut waiting, mut answered) = (None, Some(600));
        assert!(after_drift(drift("x"), (&mut waiting, &mut answered), 100, Some(&written(20)), "t").is_none());
        assert!(waiting.is_some());
        assert_eq!(
            answered, None,
            "and is forgotten, also once the new dataset grows past it"
        );
        let mut waiting = None;
        assert!(after_drift(drift("y"), (&mut waiting, &mut answered), 100, Some(&written(650)), "t").is_none());
        assert!(waiting.is_some());
        // Another trigger meanwhile goes through; the drift waits on.
        let (mut waiting, mut answered) = (None, None);
        assert!(after_drift(drift("a"), (&mut waiting, &mut answered), 100, Some(&written(50)), "t").is_none());
        let other = Trigger {
            kind: "manual",
            figures: json!({}),
        };
        let through =
            after_drift(Some(other), (&mut waiting, &mut answered), 100, Some(&written(10)), "t").expect("through");
        assert_eq!(through.kind, "manual");
        assert!(waiting.is_some());
        // A dataset begun anew counts from its start.
        assert!(after_drift(None, (&mut waiting, &mut answered), 100, Some(&written(5)), "t").is_none());
        assert!(after_drift(None, (&mut waiting, &mut answered), 100, Some(&written(104)), "t").is_none());
        assert!(after_drift(None, (&mut waiting, &mut answered), 100, Some(&written(105)), "t").is_some());
    }

    #[test]
    fn a_name_is_claimed_once_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("m-v3.onnx");
        claim(&path, b"first").expect("free");
        let again = claim(&path, b"second").expect_err("taken");
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(left.len(), 1, "no partial file is left behind");
    }

    #[test]
    fn a_run_copies_plain_shard_names_only() {
        let dir = tempfile::tempdir().expect("dir");
        let manifest = Manifest {
            shards: vec![crate::streamlets::egress::dataset::Shard {
                file: "../secret".into(),
                rows: 1,
                first_at: String::new(),
                last_at: String::new(),
                sha256: String::new(),
                sources: Vec::new(),
            }],
            ..Manifest::default()
        };
        let refused = link(dir.path(), &manifest, &dir.path().join("copy")).expect_err("refused");
        assert!(refused.to_string().contains("not a shard's name"), "{refused}");
    }
}
