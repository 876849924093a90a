//! The sluice command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use sluice::observe::{self, diagnostics, logging::LogFormat};
use sluice::spec::LoadError;
use sluice::topology::{self, render};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Run machine-learning pipelines on streams, described in one YAML file"
)]
struct Cli {
    /// How log lines look (they go to stderr; RUST_LOG filters them).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The ONNX Runtime library (libonnxruntime.so). Default: $ORT_DYLIB_PATH, then vendor-runtime/.
    #[arg(long, global = true, value_name = "PATH")]
    onnxruntime: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check pipeline files: exit 0 when all are valid, 1 when any has problems, 2 when one cannot be read.
    Validate {
        #[arg(long, value_enum, default_value = "text")]
        format: ProblemFormat,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a pipeline's graph.
    Graph {
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
        file: PathBuf,
    },
    /// Run pipeline tests (`x.test.yaml` beside `x.yaml`): exit 0 when all pass, 1 when any fails,
    /// 2 when a test file cannot be read or run.
    Test {
        /// Test files, pipelines (their test file) or folders (every test file in them).
        #[arg(default_value = "pipelines")]
        paths: Vec<PathBuf>,
    },
    /// Run a pipeline until its sources end, or until SIGINT/SIGTERM (then in-flight records drain).
    /// Edits of its files (or SIGHUP) reload it while it runs.
    Run {
        file: PathBuf,
        /// Serve metrics, health, the API and the live page on this address (the token, if any,
        /// comes from SLUICE_ADMIN_TOKEN).
        #[arg(long, value_name = "ADDRESS", num_args = 0..=1, default_missing_value = "127.0.0.1:9900")]
        admin: Option<std::net::SocketAddr>,
        /// After SIGINT or SIGTERM, how long to let what is in flight drain before exiting
        /// non-zero anyway, naming the streamlets still running ("60s", "2m", "500ms").
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
        shutdown_timeout: std::time::Duration,
        /// Threads for the streamlets' async work. Without it, TOKIO_WORKER_THREADS if set,
        /// else the cores the scorers leave (their sessions, or with a strategy their
        /// models), at least one. Scorers and Kafka clients have threads of their own.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Print the pipeline JSON Schema (what `schemas/pipeline.schema.json` holds), for editors
    /// and other validators.
    Schema,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProblemFormat {
    Text,
    Json,
    Github,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
}

/// Records are many small allocations made on one thread and freed on another:
/// mimalloc handles that far better than the system allocator. It serves the C libraries'
/// `malloc` too (`src/c_heap.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_PROBLEMS: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands whose output is a report log only warnings unless RUST_LOG says otherwise.
    let quiet = matches!(
        cli.command,
        Command::Test { .. } | Command::Validate { .. } | Command::Graph { .. } | Command::Schema
    );
    observe::logging::init(cli.log_format, quiet);
    if let Some(path) = cli.onnxruntime {
        sluice::models::onnx::use_library(path);
    }
    match cli.command {
        Command::Validate { format, files } => validate(format, &files),
        Command::Graph { format, file } => graph(format, &file),
        Command::Run {
            file,
            admin,
            shutdown_timeout,
            threads,
        } => run(
            &file,
            admin,
            threads.map(usize::from),
            sluice::runtime::RunOptions { shutdown_timeout },
        ),
        Command::Test { paths } => test(&paths),
        Command::Schema => {
            print!("{}", sluice::spec::schema::pipeline_schema_text());
            ExitCode::SUCCESS
        }
    }
}

fn validate(format: ProblemFormat, files: &[PathBuf]) -> ExitCode {
    let mut any_problem = false;
    let mut unreadable = false;
    let mut reports = Vec::new();
    let mut text = String::new();
    let color = std::io::stdout().is_terminal();
    for file in files {
        if sluice::testing::is_test_file(file) {
            // Test files beside pipelines are checked as test files (`pipelines/*.yaml` takes them too).
            match sluice::testing::check_file(file) {
                Ok(n) => {
                    text.push_str(&format!("{}: valid pipeline tests ({n} tests)\n", file.display()));
                    reports.push(json!({"file": file, "valid": true, "problems": []}));
                }
                Err(e) => {
                    any_problem = true;
                    text.push_str(&format!("{e}\n"));
                    reports.push(json!({"file": file, "valid": false, "error": e.to_string(), "problems": []}));
                }
            }
            continue;
        }
        match topology::load(file) {
            Ok(t) => {
                text.push_str(&format!(
                    "{}: valid ({} streamlets)\n",
                    file.display(),
                    t.graph.node_count()
                ));
                reports.push(json!({"file": file, "valid": true, "problems": []}));
            }
            Err(LoadError::Problems(report)) => {
                any_problem = true;
                text.push_str(&diagnostics::text(&report.diagnostics, &report.sources, color));
                text.push_str(&format!(
                    "{}: {} problem(s)\n",
                    file.display(),
                    report.diagnostics.len()
                ));
                match format {
                    ProblemFormat::Github => print!("{}", diagnostics::github(&report.diagnostics)),
                    _ => reports.push(json!({"file": file, "valid": false, "problems": report.diagnostics})),
                }
            }
            Err(e @ LoadError::Io { .. }) => {
                unreadable = true;
                eprintln!("error: {e}");
                reports.push(json!({"file": file, "valid": false, "error": e.to_string(), "problems": []}));
            }
        }
    }
    match format {
        ProblemFormat::Text => print!("{text}"),
        ProblemFormat::Json => println!("{}", json!({"valid": !any_problem && !unreadable, "files": reports})),
        ProblemFormat::Github => {}
    }
    if unreadable {
        ExitCode::from(EXIT_USAGE)
    } else if any_problem {
        ExitCode::from(EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads a pipeline, printing its problems to stderr when it has any.
fn load_or_report(file: &Path) -> Result<topology::Topology, ExitCode> {
    topology::load(file).map_err(|e| match e {
        LoadError::Problems(report) => {
            let color = std::io::stderr().is_terminal();
            eprint!("{}", diagnostics::text(&report.diagnostics, &report.sources, color));
            eprintln!("{}: {} problem(s)", file.display(), report.diagnostics.len());
            ExitCode::from(EXIT_PROBLEMS)
        }
        e @ LoadError::Io { .. } => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    })
}

fn graph(format: GraphFormat, file: &Path) -> ExitCode {
    let topology = match load_or_report(file) {
        Ok(t) => t,
        Err(code) => return code,
    };
    match format {
        GraphFormat::Dot => println!("{}", render::dot(&topology)),
        GraphFormat::Mermaid => print!("{}", render::mermaid(&topology)),
    }
    ExitCode::SUCCESS
}

/// The test files named by `paths`.
fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| sluice::testing::is_test_file(p))
                .collect();
            found.sort();
            files.extend(found);
        } else if sluice::testing::is_test_file(path) {
            files.push(path.clone());
        } else {
            let test = sluice::testing::test_file_of(path);
            if !test.is_file() {
                return Err(format!("{} has no tests: write {}", path.display(), test.display()));
            }
            files.push(test);
        }
    }
    Ok(files)
}

fn test(paths: &[PathBuf]) -> ExitCode {
    let files = match test_files(paths) {
        Ok(files) if !files.is_empty() => files,
        Ok(_) => {
            eprintln!(
                "error: no test files (*.test.yaml) in {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (mut passed, mut failed, mut broken) = (0, 0, 0);
    for file in files {
        match runtime.block_on(sluice::testing::run_file(&file)) {
            Ok(outcome) => {
                println!("{} ({})", file.display(), outcome.pipeline.display());
                for t in &outcome.tests {
                    if t.failures.is_empty() {
                        passed += 1;
                        println!("  ok    {}", t.name);
                    } else {
                        failed += 1;
                        println!("  FAIL  {}", t.name);
                        for f in &t.failures {
                            println!("        {}: {}", f.location, f.message);
                        }
                    }
                }
            }
            Err(e) => {
                broken += 1;
                println!("{}", file.display());
                println!("  ERROR {e}");
            }
        }
    }
    println!(
        "\n{passed} pipeline test(s) passed, {failed} failed{}",
        if broken > 0 {
            format!(", {broken} file(s) could not run")
        } else {
            String::new()
        }
    );
    if broken > 0 {
        ExitCode::from(EXIT_USAGE)
    } else if failed > 0 {
        ExitCode::from(EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    }
}

/// The runtime's async workers when `--threads` is not given: tokio's own variable if set,
/// else the cores the pipeline's scorers leave.
fn worker_threads(topology: &topology::Topology) -> Result<usize, String> {
    match std::env::var("TOKIO_WORKER_THREADS") {
        Err(std::env::VarError::NotPresent) => {
            Ok(topology.worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get())))
        }
        Err(e) => Err(format!("TOKIO_WORKER_THREADS: {e}")),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "TOKIO_WORKER_THREADS must be a whole number of at least 1, not `{v}`"
            )),
        },
    }
}

fn run(
    file: &Path,
    admin: Option<std::net::SocketAddr>,
    threads: Option<usize>,
    options: sluice::runtime::RunOptions,
) -> ExitCode {
    let topology = match load_or_report(file) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let threads = match threads.map_or_else(|| worker_threads(&topology), Ok) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = runtime.block_on(async {
        let stop = CancellationToken::new();
        sluice::runtime::stop_on_signals(stop.clone());
        tracing::info!(
            pipeline = %topology.name,
            streamlets = topology.graph.node_count(),
            threads = tokio::runtime::Handle::current().metrics().num_workers(),
            "running"
        );
        let (handle, run) = sluice::runtime::run_file_with(file, topology, stop.clone(), options).await;
        if let Some(listen) = admin {
            let token = std::env::var(observe::admin::TOKEN_VARIABLE).ok();
            if let Err(e) = observe::admin::serve(listen, handle, token, stop.child_token()).await {
                eprintln!("error: cannot serve the admin endpoints on {listen}: {e}");
                stop.cancel();
                let _ = run.await;
                return ExitCode::from(EXIT_USAGE);
            }
        }
        let result = run.await.unwrap_or_else(|e| {
            Err(sluice::runtime::RunError::Streamlet {
                streamlet: "(runtime)".into(),
                reason: e.to_string(),
            })
        });
        match result {
            Ok(summary) => {
                for s in &summary.streamlets {
                    let outlets: Vec<String> = s
                        .outlets
                        .iter()
                        .map(|o| {
                            format!(
                                "{}={}{}",
                                o.port,
                                o.records,
                                if o.discarded { " (discarded)" } else { "" }
                            )
                        })
                        .collect();
                    tracing::info!(
                        streamlet = %s.name,
                        kind = %s.kind,
                        records_in = s.records_in,
                        out = %outlets.join(" "),
                        "summary"
                    );
                    for m in &s.models {
                        tracing::info!(
                            streamlet = %s.name,
                            model = %m.name,
                            version = %m.version,
                            sha256 = %m.sha256,
                            since = %m.since,
                            invocations = m.invocations,
                            records = m.records,
                            errors = m.errors,
                            latency_us_min = m.latency_us.min,
                            latency_us_mean = m.latency_us.mean,
                            latency_us_p99 = m.latency_us.p99,
                            latency_us_max = m.latency_us.max,
                            cpu_us = m.cpu_us,
                            "model summary"
                        );
                    }
                    for (counter, n) in &s.counters {
                        tracing::info!(streamlet = %s.name, counter = %counter, count = n, "counter summary");
                    }
                    if let Some(q) = &s.quality {
                        for m in &q.models {
                            tracing::info!(
                                streamlet = %s.name,
                                model = %m.name,
                                version = %m.version,
                                arm = %m.arm.as_deref().unwrap_or(""),
                                labelled = m.since_start.labelled,
                                waiting = m.waiting,
                                unmatched = m.unmatched,
                                since_start = %serde_json::to_string(&m.since_start).unwrap_or_default(),
                                "quality summary"
                            );
                        }
                        tracing::info!(
                            streamlet = %s.name,
                            waiting_labels = q.waiting_labels,
                            dropped = %serde_json::to_string(&q.dropped).unwrap_or_default(),
                            "join summary"
                        );
                    }
                    if let Some(strategy) = &s.strategy {
                        tracing::info!(
                            streamlet = %s.name,
                            strategy = %strategy.strategy,
                            answered = %serde_json::to_string(&strategy.answered).unwrap_or_default(),
                            budget_misses = strategy.budget_misses,
                            no_consensus = strategy.no_consensus,
                            shadows = %serde_json::to_string(&strategy.shadows).unwrap_or_default(),
                            "strategy summary"
                        );
                    }
                }
                tracing::info!(
                    pipeline = %summary.pipeline,
                    elapsed_ms = summary.elapsed.as_millis() as u64,
                    peak_rss_kib = observe::peak_rss_kib().unwrap_or(0),
                    "finished"
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "pipeline failed");
                eprintln!("error: {e}");
                ExitCode::from(EXIT_PROBLEMS)
            }
        }
    });
    // A streamlet stuck in a blocking call (a write to a full pipe, say) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
