//! Hot reload under load: the pipeline file is rewritten while a generator streams through a
//! scorer; nothing in flight is lost, only what changed restarts, bad edits change nothing.

mod common;
use common::{read_jsonl, root};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice::runtime::{Handle, RunError, RunSummary, Status};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Replaces a file in one step, as editors and deploy tools do.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A scorer definition serving house-price `version` from `folder`.
fn scorer_definition(folder: &Path, version: &str) -> String {
    let text = std::fs::read_to_string(root().join("streamlets/house-price-gbm.yaml")).expect("definition");
    text.replace(
        "  folder: ../examples/house-prices/models",
        &format!("  folder: {}\n  version: \"{version}\"", folder.display()),
    )
}

fn pipeline(scorer_def: &str, output: &str) -> String {
    format!(
        "pipeline: reloading
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 1500, seed: 3 }}
  price:
    use: {scorer_def}
    inputs: [listings]
  scored:
    kind: egress
    inputs: [price]
    sink: {{ type: file, path: {output} }}
  failed:
    kind: egress
    inputs: [price.errors]
    sink: {{ type: file, path: errors.jsonl }}
"
    )
}

struct Run {
    rt: tokio::runtime::Runtime,
    handle: Handle,
    stop: CancellationToken,
    task: JoinHandle<Result<RunSummary, RunError>>,
}

impl Run {
    fn start(file: &Path) -> Run {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let stop = CancellationToken::new();
        let topology = sluice::topology::load(file).unwrap_or_else(|e| panic!("{e}"));
        let (handle, task) = rt.block_on(sluice::runtime::run_file(file, topology, stop.clone()));
        Run { rt, handle, stop, task }
    }

    fn wait_for(&self, what: &str, done: impl Fn(&Status) -> bool) -> Status {
        let started = Instant::now();
        loop {
            let status = self.handle.status();
            // Every streamlet of the pipeline is there once it has started.
            if status.streamlets.len() == 4 && done(&status) {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}: {status:#?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(self) -> RunSummary {
        self.stop.cancel();
        self.rt
            .block_on(self.task)
            .expect("the run task")
            .expect("the run succeeds")
    }
}

fn streamlet<'a>(status: &'a Status, name: &str) -> &'a sluice::runtime::StreamletStatus {
    status
        .streamlets
        .iter()
        .find(|s| s.name == name)
        .expect("streamlet in status")
}

fn scored_by(status: &Status, version: &str) -> u64 {
    streamlet(status, "price")
        .models
        .iter()
        .filter(|m| m.version == version)
        .map(|m| m.records)
        .sum()
}

struct Setup {
    dir: tempfile::TempDir,
    file: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let models = root().join("examples/house-prices/models");
    std::fs::write(dir.path().join("scorer-v1.yaml"), scorer_definition(&models, "1")).expect("def");
    std::fs::write(dir.path().join("scorer-v2.yaml"), scorer_definition(&models, "2")).expect("def");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, pipeline("scorer-v1.yaml", "scored.jsonl")).expect("pipeline");
    Setup { dir, file }
}

#[test]
fn twenty_reloads_under_load_score_every_record_once_with_the_definition_in_force() {
    let Setup { dir, file } = setup();
    let run = Run::start(&file);
    run.wait_for("v1 to score", |s| scored_by(s, "1") > 0);
    for i in 1..=20u64 {
        let version = if i % 2 == 1 { "2" } else { "1" };
        write_atomically(&file, &pipeline(&format!("scorer-v{version}.yaml"), "scored.jsonl"));
        let status = run.wait_for("the reload", |s| s.reloads == i);
        let instance = streamlet(&status, "price").instance;
        // The new definition has scored records before the next edit.
        run.wait_for("the new scorer to score", |s| {
            let price = streamlet(s, "price");
            price.instance == instance && price.models.iter().any(|m| m.records > 0)
        });
    }
    let summary = run.finish();
    assert_eq!(summary.reloads, 20);
    let out = read_jsonl(&dir.path().join("scored.jsonl"));
    for (i, r) in out.iter().enumerate() {
        assert_eq!(
            r["id"].as_u64(),
            Some(i as u64 + 1),
            "every input id exactly once, in order"
        );
    }
    let mut runs: Vec<&str> = Vec::new();
    for r in &out {
        let v = r["_model"]["version"].as_str().expect("version");
        if runs.last() != Some(&v) {
            runs.push(v);
        }
    }
    let expected: Vec<&str> = (0..21).map(|i| if i % 2 == 0 { "1" } else { "2" }).collect();
    assert_eq!(
        runs, expected,
        "each configuration scored a run of records, in the order applied"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("errors.jsonl")).expect("errors"),
        ""
    );
    assert_eq!(summary.records_out("listings", "out"), Some(out.len() as u64));
}

#[test]
fn an_invalid_edit_is_rejected_with_its_line_and_output_keeps_flowing() {
    let Setup { dir: _dir, file } = setup();
    let run = Run::start(&file);
    run.wait_for("records", |s| streamlet(s, "scored").records_in > 0);
    let broken = pipeline("scorer-v2.yaml", "scored.jsonl").replace("kind: ingress", "kind: ingres");
    write_atomically(&file, &broken);
    let status = run.wait_for("the rejection", |s| s.rejected == 1);
    let why = status.last_error.clone().unwrap_or_default();
    assert!(
        why.contains("pipeline.yaml:4:11") && why.contains("unknown streamlet kind `ingres`"),
        "{why}"
    );
    assert_eq!(status.reloads, 0);
    let before = streamlet(&status, "scored").records_in;
    run.wait_for("output to keep flowing", |s| {
        streamlet(s, "scored").records_in > before + 100
    });
    write_atomically(&file, &pipeline("scorer-v2.yaml", "scored.jsonl"));
    run.wait_for("the fixed file to apply", |s| s.reloads == 1 && scored_by(s, "2") > 0);
    run.finish();
}

#[test]
fn editing_only_the_egress_leaves_the_scorer_running() {
    let Setup { dir, file } = setup();
    let run = Run::start(&file);
    let before = run.wait_for("records", |s| streamlet(s, "price").records_in > 100);
    write_atomically(&file, &pipeline("scorer-v1.yaml", "elsewhere.jsonl"));
    let after = run.wait_for("the reload", |s| s.reloads == 1);
    assert_eq!(
        streamlet(&after, "price").instance,
        streamlet(&before, "price").instance,
        "same scorer task"
    );
    assert_ne!(
        streamlet(&after, "scored").instance,
        streamlet(&before, "scored").instance,
        "a new egress"
    );
    let counted = streamlet(&after, "price").records_in;
    assert!(
        counted >= streamlet(&before, "price").records_in,
        "the scorer's counters were kept"
    );
    run.wait_for("the scorer's counters to keep growing", |s| {
        streamlet(s, "price").records_in > counted + 100
    });
    run.wait_for("the new file to fill", |_| {
        std::fs::metadata(dir.path().join("elsewhere.jsonl")).is_ok_and(|m| m.len() > 0)
    });
    let summary = run.finish();
    let old = read_jsonl(&dir.path().join("scored.jsonl"));
    let new = read_jsonl(&dir.path().join("elsewhere.jsonl"));
    let ids: Vec<u64> = old.iter().chain(&new).map(|r| r["id"].as_u64().expect("id")).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "nothing lost or doubled across the egress swap"
    );
    assert_eq!(summary.records_out("listings", "out"), Some(ids.len() as u64));
}

#[test]
fn a_scorer_that_fails_to_load_rolls_back_to_the_old_one() {
    let Setup { dir, file } = setup();
    // A model folder whose only version is not a model (its checksum is right).
    let broken = dir.path().join("broken-models");
    std::fs::create_dir(&broken).expect("folder");
    common::write_corrupt_model(&broken, "9");
    std::fs::write(dir.path().join("scorer-broken.yaml"), scorer_definition(&broken, "9")).expect("def");
    let run = Run::start(&file);
    let before = run.wait_for("records", |s| scored_by(s, "1") > 0);
    write_atomically(&file, &pipeline("scorer-broken.yaml", "scored.jsonl"));
    let after = run.wait_for("the rollback", |s| s.rolled_back == 1);
    assert!(
        after.last_error.clone().unwrap_or_default().contains("price"),
        "{after:#?}"
    );
    assert_eq!(after.reloads, 0);
    assert_eq!(
        streamlet(&after, "price").instance,
        streamlet(&before, "price").instance
    );
    let scored = scored_by(&after, "1");
    run.wait_for("the old scorer to go on", |s| scored_by(s, "1") > scored + 100);
    run.finish();
    let out = read_jsonl(&dir.path().join("scored.jsonl"));
    assert!(out.iter().all(|r| r["_model"]["version"] == "1"));
}

fn split_pipeline(blue: u32, green: u32) -> String {
    let models = root().join("examples/house-prices/models");
    let definition = scorer_definition(&models, "1");
    // The same scorer, serving two versions by weight instead of one.
    let scorer: String = definition
        .lines()
        .filter(|l| !l.starts_with("kind:") && !l.starts_with('#'))
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
        .replace(
            &format!("    model:\n      name: house-price\n      folder: {}\n      version: \"1\"\n", models.display()),
            &format!(
                "    models:\n      blue: {{ name: house-price, folder: {m}, version: 1 }}\n      green: {{ name: house-price, folder: {m}, version: 2 }}\n    strategy:\n      split: {{ key: id, weights: {{ blue: {blue}, green: {green} }} }}\n",
                m = models.display()
            ),
        );
    format!(
        "pipeline: blue-green
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 1500, seed: 4 }}
  price:
    kind: scorer
    inputs: [listings]
{scorer}
  scored:
    kind: egress
    inputs: [price]
    sink: {{ type: file, path: scored.jsonl }}
  failed:
    kind: egress
    inputs: [price.errors]
    sink: {{ type: file, path: errors.jsonl }}
"
    )
}

#[test]
fn switching_blue_to_green_by_editing_weights_moves_traffic_without_loss() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, split_pipeline(100, 0)).expect("pipeline");
    let run = Run::start(&file);
    run.wait_for("blue to serve", |s| scored_by(s, "1") > 200);
    write_atomically(&file, &split_pipeline(0, 100));
    run.wait_for("green to serve", |s| s.reloads == 1 && scored_by(s, "2") > 200);
    run.finish();
    let out = read_jsonl(&dir.path().join("scored.jsonl"));
    for (i, r) in out.iter().enumerate() {
        assert_eq!(
            r["id"].as_u64(),
            Some(i as u64 + 1),
            "no record lost or doubled by the switch"
        );
    }
    let first_green = out
        .iter()
        .position(|r| r["_model"]["model"] == "green")
        .expect("green served");
    assert!(out[..first_green]
        .iter()
        .all(|r| r["_model"]["model"] == "blue" && r["_model"]["strategy"] == "split"));
    assert!(
        out[first_green..].iter().all(|r| r["_model"]["model"] == "green"),
        "after the switch, only green"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("errors.jsonl")).expect("errors"),
        ""
    );
}
