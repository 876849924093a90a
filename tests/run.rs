//! End-to-end runs: real files, the real binary, real signals.

mod common;
use common::{read_jsonl, root, run_pipeline};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn sluice() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(root());
    cmd
}

#[test]
fn demo_pipeline_splits_valid_and_rejected_listings_exactly() {
    let out = tempfile::tempdir().expect("temp dir");
    let status = sluice()
        .env("SLUICE_OUT", out.path())
        .args(["run", "pipelines/listings-check.yaml"])
        .stderr(Stdio::null())
        .status()
        .expect("sluice runs");
    assert!(status.success());
    let input = std::fs::read_to_string(root().join("examples/house-prices/listings.jsonl")).expect("demo data");
    let valid = read_jsonl(&out.path().join("valid-listings.jsonl"));
    let rejected = read_jsonl(&out.path().join("rejected-listings.jsonl"));
    assert_eq!(
        valid.len() + rejected.len(),
        input.lines().count(),
        "every input line comes out once"
    );

    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/records/listing.schema.json")).expect("schema"),
    )
    .expect("schema is JSON");
    let check = jsonschema::validator_for(&schema).expect("schema compiles");
    let mut expected_valid = Vec::new();
    let mut expected_invalid = Vec::new();
    let mut malformed = BTreeMap::new();
    for (i, line) in input.lines().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => {
                if check.is_valid(&v) {
                    expected_valid.push(v)
                } else {
                    expected_invalid.push(v)
                }
            }
            _ => {
                malformed.insert(i as u64 + 1, line.to_string());
            }
        }
    }
    assert_eq!(valid, expected_valid, "valid records, unchanged and in order");
    let mut invalid = Vec::new();
    let mut unparsed = BTreeMap::new();
    for mut r in rejected {
        let error = r
            .as_object_mut()
            .and_then(|o| o.remove("_error"))
            .expect("every reject says why");
        assert!(error["reason"].as_str().is_some_and(|s| !s.is_empty()));
        match r.get("_raw") {
            Some(raw) => {
                assert_eq!(error["streamlet"], "listings");
                unparsed.insert(
                    error["line"].as_u64().expect("line number"),
                    raw.as_str().expect("raw").to_string(),
                );
            }
            None => {
                assert_eq!(error["streamlet"], "check");
                assert!(error["path"].is_string());
                invalid.push(r);
            }
        }
    }
    invalid.sort_by_key(|r| r["id"].as_u64());
    expected_invalid.sort_by_key(|r| r["id"].as_u64());
    assert_eq!(invalid, expected_invalid, "invalid records keep their content");
    assert_eq!(unparsed, malformed, "malformed lines keep their line number and text");
    assert!(
        !expected_invalid.is_empty() && !malformed.is_empty(),
        "the demo data has both kinds"
    );
}

#[test]
fn csv_rows_are_typed_and_bad_rows_keep_their_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("in.csv"),
        "id,city,price,waterfront\n1,Kent,250000.5,false\n2,Auburn,not-a-price,true\n3,Renton\n4,\"Seattle, WA\",900000,yes\n",
    )
    .expect("write csv");
    let summary = run_pipeline(
        dir.path(),
        r#"
pipeline: csv
streamlets:
  rows:
    kind: ingress
    source:
      type: file
      path: in.csv
      columns: { id: integer, price: number, waterfront: boolean }
  good:
    kind: egress
    inputs: [rows]
    sink: { type: file, path: out/good.jsonl }
  bad:
    kind: egress
    inputs: [rows.errors]
    sink: { type: file, path: out/bad.jsonl }
"#,
    );
    assert_eq!(summary.records_out("rows", "out"), Some(2));
    assert_eq!(summary.records_out("rows", "errors"), Some(2));
    let good = read_jsonl(&dir.path().join("out/good.jsonl"));
    assert_eq!(
        good,
        vec![
            serde_json::json!({"id": 1, "city": "Kent", "price": 250000.5, "waterfront": false}),
            serde_json::json!({"id": 4, "city": "Seattle, WA", "price": 900000.0, "waterfront": true}),
        ]
    );
    let bad = read_jsonl(&dir.path().join("out/bad.jsonl"));
    let lines: Vec<u64> = bad
        .iter()
        .map(|r| r["_error"]["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, vec![3, 4]);
    assert!(bad[0]["_error"]["reason"].as_str().expect("reason").contains("`price`"));
    assert_eq!(bad[0]["_raw"], "2,Auburn,not-a-price,true");
    assert!(bad[1]["_error"]["reason"]
        .as_str()
        .expect("reason")
        .contains("2 fields"));
}

#[test]
fn an_outlet_gives_every_consumer_every_record_and_mergers_combine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = root().join("schemas/records/listing.schema.json");
    let summary = run_pipeline(
        dir.path(),
        &format!(
            r#"
pipeline: fan
defaults: {{ batch_size: 64, channel_capacity: 1 }}
streamlets:
  gen:
    kind: ingress
    source: {{ type: generator, count: 5000, seed: 3, invalid_ratio: 0.1 }}
  check:
    kind: validator
    inputs: [gen]
    schema: {schema}
  all:
    kind: merger
    inputs: [check.valid, check.invalid]
  copy-a:
    kind: egress
    inputs: [all]
    sink: {{ type: file, path: a.jsonl }}
  copy-b:
    kind: egress
    inputs: [all]
    sink: {{ type: file, path: b.jsonl }}
  count:
    kind: egress
    inputs: [gen]
    sink: {{ type: blackhole }}
"#,
            schema = schema.display()
        ),
    );
    assert_eq!(summary.records_in("count"), Some(5000));
    assert_eq!(summary.records_in("all"), Some(5000));
    let invalid = summary.records_out("check", "invalid").expect("invalid count");
    assert!(invalid > 300 && invalid < 700, "about 10% invalid, got {invalid}");
    for file in ["a.jsonl", "b.jsonl"] {
        let ids: BTreeSet<u64> = read_jsonl(&dir.path().join(file))
            .iter()
            .map(|r| r["id"].as_u64().expect("id"))
            .collect();
        assert_eq!(
            ids,
            (1..=5000).collect::<BTreeSet<u64>>(),
            "{file} has every record once"
        );
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS")
}

fn terminate(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Reads JSON lines and checks that ids run 1, 2, 3... without a gap; returns the last id.
fn contiguous_ids(lines: impl Iterator<Item = String>, mut last: u64) -> u64 {
    for line in lines {
        let record: Value = serde_json::from_str(&line).expect("a JSON line");
        let id = record["id"].as_u64().expect("id");
        assert_eq!(id, last + 1, "records arrive in order, none lost");
        last = id;
    }
    last
}

#[test]
fn a_slow_consumer_holds_back_an_endless_source_without_loss() {
    let yaml = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        yaml.path(),
        "pipeline: slow\nstreamlets:\n  gen:\n    kind: ingress\n    source: { type: generator, seed: 1 }\n  print:\n    kind: egress\n    inputs: [gen]\n    sink: { type: stdout }\n",
    )
    .expect("write pipeline");
    let mut child = sluice()
        .args(["run", &yaml.path().display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice runs");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = Vec::new();
    for _ in 0..2000 {
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        first.push(line);
    }
    let last = contiguous_ids(first.into_iter(), 0);
    // Nobody reads now: an unbounded source would fill memory at hundreds of MB/s.
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let after = rss_kib(pid);
    assert!(after < 100 * 1024, "memory stays bounded: {after} KiB");
    assert!(
        after < before + 8 * 1024,
        "memory does not grow while blocked: {before} → {after} KiB"
    );
    terminate(pid);
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("read the rest");
    let end = contiguous_ids(rest.lines().map(str::to_string), last);
    assert!(end > last);
    assert!(
        child.wait().expect("exit").success(),
        "a stop request ends the run cleanly"
    );
}

#[test]
fn sigterm_drains_every_record_already_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = dir.path().join("p.yaml");
    std::fs::write(
        &yaml,
        "pipeline: drain\nstreamlets:\n  gen:\n    kind: ingress\n    source: { type: generator, rate: 20000, seed: 1 }\n  save:\n    kind: egress\n    inputs: [gen]\n    sink: { type: file, path: out.jsonl }\n",
    )
    .expect("write pipeline");
    let child = sluice()
        .args(["--log-format", "json", "run", &yaml.display().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice runs");
    std::thread::sleep(Duration::from_millis(1500));
    terminate(child.id());
    let output = child.wait_with_output().expect("exit");
    assert!(output.status.success());
    let logs = String::from_utf8_lossy(&output.stderr);
    let produced: u64 = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "summary" && l["streamlet"] == "gen")
        .and_then(|l| {
            l["out"]
                .as_str()
                .and_then(|o| o.strip_prefix("out="))
                .map(|n| n.split(' ').next().unwrap_or("").to_string())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a summary for gen in {logs}"));
    let written = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("output");
    let last = contiguous_ids(written.lines().map(str::to_string), 0);
    assert!(produced > 0);
    assert_eq!(last, produced, "every record the source produced was written");
}

#[test]
fn a_failing_streamlet_stops_the_pipeline_and_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = dir.path().join("p.yaml");
    std::fs::write(
        &yaml,
        "pipeline: fails\nstreamlets:\n  gen:\n    kind: ingress\n    source: { type: generator, seed: 1 }\n  save:\n    kind: egress\n    inputs: [gen]\n    sink: { type: file, path: /dev/null/cannot/out.jsonl }\n",
    )
    .expect("write pipeline");
    let output = sluice()
        .args(["run", &yaml.display().to_string()])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("streamlet `save` failed"), "{stderr}");
}

#[test]
fn stdin_lines_stream_through_and_bad_bytes_are_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml: PathBuf = dir.path().join("p.yaml");
    std::fs::write(
        &yaml,
        "pipeline: pipe\nstreamlets:\n  lines:\n    kind: ingress\n    source: { type: stdin }\n  print:\n    kind: egress\n    inputs: [lines, lines.errors]\n    sink: { type: stdout }\n",
    )
    .expect("write pipeline");
    let output = sluice()
        .args(["run", &yaml.display().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"{\"id\":1}\n\xff\xfe\n{\"id\":2}\n")?;
            drop(stdin);
            child.wait_with_output()
        })
        .expect("runs");
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    let bad = lines
        .iter()
        .find(|r| r.get("_error").is_some())
        .expect("the bad line comes out");
    assert_eq!(bad["_error"]["line"], 2);
    assert_eq!(bad["_raw_base64"], "//4=");
    let ids: Vec<&Value> = lines.iter().filter_map(|r| r.get("id")).collect();
    assert_eq!(ids, vec![&Value::from(1), &Value::from(2)]);
}

#[test]
fn malformed_input_nobody_reads_is_logged_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = dir.path().join("p.yaml");
    std::fs::write(
        &yaml,
        "pipeline: logged\nstreamlets:\n  lines:\n    kind: ingress\n    source: { type: stdin }\n  print:\n    kind: egress\n    inputs: [lines]\n    sink: { type: stdout }\n",
    )
    .expect("write pipeline");
    let output = sluice()
        .args(["--log-format", "json", "run", &yaml.display().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"{\"id\":1}\nnot json at all\n")?;
            drop(stdin);
            child.wait_with_output()
        })
        .expect("runs");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "{\"id\":1}\n");
    let warning = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["level"] == "WARN" && l["outlet"] == "errors")
        .expect("a warning for the malformed line");
    let record: Value = serde_json::from_str(warning["record"].as_str().expect("record")).expect("JSON record");
    assert_eq!(record["_raw"], "not json at all");
    assert_eq!(record["_error"]["line"], 2);
}

#[test]
fn a_stop_that_cannot_drain_ends_at_the_deadline_naming_what_is_stuck() {
    // Nobody reads sluice's stdout: once the pipe is full the stdout egress is stuck in a write,
    // and a SIGTERM cannot drain the pipeline.
    let yaml = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        yaml.path(),
        "pipeline: stuck\nstreamlets:\n  gen:\n    kind: ingress\n    source: { type: generator, seed: 1 }\n  print:\n    kind: egress\n    inputs: [gen]\n    sink: { type: stdout }\n",
    )
    .expect("write pipeline");
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = sluice()
        .args(["run", "--shutdown-timeout", "2s", &yaml.path().display().to_string()])
        .stdout(Stdio::piped())
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("sluice runs");
    let _unread = child.stdout.take();
    std::thread::sleep(Duration::from_millis(1500));
    terminate(child.id());
    // A guard against hanging forever, not a measurement: the deadline is 2 s.
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("status") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still running a minute after SIGTERM with a 2 s deadline"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let logs = std::fs::read_to_string(log.path()).expect("log");
    assert!(!status.success(), "a stop past its deadline exits non-zero:\n{logs}");
    let waiting = logs
        .lines()
        .find(|l| l.contains("waiting for streamlets to drain"))
        .unwrap_or_else(|| panic!("no report of what is still running:\n{logs}"));
    assert!(waiting.contains("print"), "{waiting}");
    let gave_up = logs
        .lines()
        .find(|l| l.contains("shutdown deadline passed"))
        .unwrap_or_else(|| panic!("no word of the deadline:\n{logs}"));
    assert!(gave_up.contains("print"), "{gave_up}");
    assert!(logs.contains("did not drain within 2s"), "{logs}");
}

/// The `threads` of the `running` line of a `sluice run` of `pipeline` with `args` before the
/// file (and `TOKIO_WORKER_THREADS` set to `variable`, if any), and the records it wrote to
/// `out`.
fn run_with_threads(
    pipeline: &std::path::Path,
    out: &std::path::Path,
    args: &[&str],
    variable: Option<&str>,
) -> (u64, Vec<Value>) {
    let mut command = sluice();
    command.env_remove("TOKIO_WORKER_THREADS").env("RUST_LOG", "info");
    if let Some(v) = variable {
        command.env("TOKIO_WORKER_THREADS", v);
    }
    let output = command
        .args(["--log-format", "json", "run"])
        .args(args)
        .arg(pipeline)
        .output()
        .expect("sluice runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let threads = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "running")
        .and_then(|l| l["threads"].as_u64())
        .unwrap_or_else(|| panic!("a running line with its threads: {log}"));
    (threads, read_jsonl(out))
}

#[test]
fn the_async_workers_get_the_cores_the_scorer_leaves_unless_told() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("scored.jsonl");
    let pipeline = dir.path().join("p.yaml");
    let root = root();
    std::fs::write(
        &pipeline,
        format!(
            "pipeline: threads
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 500, seed: 3 }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {root}/examples/house-prices/models, version: \"2\" }}
    inputs: [listings]
    discard: [errors]
  out:
    kind: egress
    inputs: [price]
    sink: {{ type: file, path: {out} }}
",
            root = root.display(),
            out = out.display()
        ),
    )
    .expect("pipeline");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let (threads, scored) = run_with_threads(&pipeline, &out, &[], None);
    assert_eq!(
        threads,
        cores.saturating_sub(1).max(1),
        "one scorer session leaves the other cores"
    );
    assert_eq!(scored.len(), 500);
    let (threads, scored) = run_with_threads(&pipeline, &out, &["--threads", "3"], None);
    assert_eq!(threads, 3);
    assert_eq!(scored.len(), 500);
    assert!(scored
        .iter()
        .all(|r| r["_model"]["version"] == "2" && r["predicted_price"].is_number()));
    // tokio's own variable counts where no flag is given; the flag wins over it.
    assert_eq!(run_with_threads(&pipeline, &out, &[], Some("3")).0, 3);
    assert_eq!(run_with_threads(&pipeline, &out, &["--threads", "2"], Some("3")).0, 2);
    for (args, variable) in [
        (vec!["--threads", "0"], None),
        (vec![], Some("0")),
        (vec![], Some("many")),
    ] {
        let mut command = sluice();
        command.env_remove("TOKIO_WORKER_THREADS");
        if let Some(v) = variable {
            command.env("TOKIO_WORKER_THREADS", v);
        }
        let refused = command
            .arg("run")
            .args(&args)
            .arg(&pipeline)
            .output()
            .expect("sluice runs");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{args:?} {variable:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
