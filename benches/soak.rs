//! A soak of at-least-once delivery over Kafka edges: cycle after cycle, two or three
//! `sluice run` processes share a pipeline's consumer groups while listings stream in, and
//! members join, leave (SIGTERM) or die (SIGKILL) mid-stream. Each cycle prints the records
//! sent, received, lost and duplicated, and the offsets left uncommitted after the last clean
//! stop. A record that did not arrive is lost only when its consumer group committed past it;
//! one still above the commit (a group tansu was slow to hand partitions to) is late: the
//! group's next consumer reads it. The run fails if any record was lost. Not part of `make test`:
//! `SLUICE_SOAK_CYCLES=30 cargo bench --bench soak` (30 cycles by default, about half an hour).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::delivery::{arrived, committed_past, stream_listings, uncommitted, whereabouts, Sluice};

/// Listings per cycle, produced at 1,000/s: long enough that every join, leave and kill of a
/// cycle happens while they stream.
const PER_CYCLE: u64 = 8_000;
/// Kafka options of every cycle: a short session, so a killed member's partitions move on
/// within seconds (librdkafka's default is 45 s).
const OPTIONS: &str = "{ session.timeout.ms: 6000 }";
/// How long a killed member takes to be noticed gone (its session timing out), and then some.
const SESSION_EXPIRES: Duration = Duration::from_secs(8);

/// What happens to the group in one cycle.
#[derive(Clone, Copy)]
enum Scenario {
    /// Two processes share the groups; the first leaves with SIGTERM.
    TwoOneLeaves,
    /// Three processes share the groups; one is killed, another leaves; the third finishes.
    ThreeOneKilledOneLeaves,
    /// One process is killed mid-stream and a new one takes over.
    KilledAndReplaced,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::TwoOneLeaves => "2 processes, 1 leaves",
            Scenario::ThreeOneKilledOneLeaves => "3 processes, 1 killed, 1 leaves",
            Scenario::KilledAndReplaced => "1 killed, 1 replaces it",
        }
    }
}

/// Runs one cycle's joins, leaves and kills while the producer streams; returns the process
/// that stays to the end.
fn play(scenario: Scenario, file: &Path, dir: &Path) -> Sluice {
    // tansu rebalances a group with a 6 s session every 9 s or so, even one with a single
    // process in it (seen in the processes' logs), and records move only between rebalances:
    // the soak waits for little progress, and patiently.
    let wait = Duration::from_secs(300);
    match scenario {
        Scenario::TwoOneLeaves => {
            let mut a = Sluice::start(file, dir, "a");
            a.wait_published(100, wait);
            let mut b = Sluice::start(file, dir, "b");
            b.wait_published(50, wait);
            let before = a.published();
            a.wait_published(before + 50, wait);
            a.terminate();
            b
        }
        Scenario::ThreeOneKilledOneLeaves => {
            let mut a = Sluice::start(file, dir, "a");
            a.wait_published(100, wait);
            let mut b = Sluice::start(file, dir, "b");
            b.wait_published(50, wait);
            let mut c = Sluice::start(file, dir, "c");
            c.wait_published(50, wait);
            b.kill();
            let before = c.published();
            c.wait_published(before + 50, wait);
            c.terminate();
            a
        }
        Scenario::KilledAndReplaced => {
            let mut a = Sluice::start(file, dir, "a");
            a.wait_published(500, wait);
            a.kill();
            std::thread::sleep(SESSION_EXPIRES);
            Sluice::start(file, dir, "b")
        }
    }
}

fn main() {
    let cycles: usize = std::env::var("SLUICE_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let scenarios = [
        Scenario::TwoOneLeaves,
        Scenario::ThreeOneKilledOneLeaves,
        Scenario::KilledAndReplaced,
    ];
    println!(
        "Kafka delivery soak: {cycles} cycles of {PER_CYCLE} listings at 1,000/s, a tansu broker (SQLite) per cycle, 4 partitions\n"
    );
    println!(
        "{:>5}  {:<32} {:>6} {:>9} {:>5} {:>5} {:>10} {:>12} {:>6}",
        "cycle", "scenario", "sent", "received", "late", "lost", "duplicated", "uncommitted", "s"
    );
    let (mut lost, mut late_total, mut duplicated, mut behind) = (0usize, 0usize, 0usize, 0usize);
    for cycle in 1..=cycles {
        let scenario = scenarios[(cycle - 1) % scenarios.len()];
        // A broker of its own for each cycle, as each delivery test has: tansu's group
        // coordinator on a database grown by earlier cycles answered so slowly that groups
        // with a 6 s session rebalanced every few seconds.
        let broker = Broker::start();
        let dir = tempfile::tempdir().expect("dir");
        let name = format!("soak{cycle}");
        let started = Instant::now();
        let (file, producing) = stream_listings(&broker, dir.path(), &name, OPTIONS, PER_CYCLE);
        let last = play(scenario, &file, dir.path());
        producing.join().expect("produced");
        let got = arrived(&broker, PER_CYCLE, &name, Duration::from_secs(90));
        // Copies of records re-read after a member left may still wait in the edge topic: the
        // last one reads them before it stops, so that its commits can cover everything.
        let started_catching_up = Instant::now();
        while !last.caught_up() && started_catching_up.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
        last.terminate();
        let left = uncommitted(&broker, &name);
        let gone = committed_past(&broker, &name, &got.missing);
        let late = got.missing.len() - gone.len();
        println!(
            "{cycle:>5}  {:<32} {PER_CYCLE:>6} {:>9} {late:>5} {:>5} {:>10} {:>12} {:>6.1}",
            scenario.name(),
            PER_CYCLE as usize - got.missing.len(),
            gone.len(),
            got.duplicates,
            left.len(),
            started.elapsed().as_secs_f64()
        );
        if !got.missing.is_empty() {
            println!(
                "       not arrived: ids {:?}… (lost: {:?}…)\n{}",
                got.missing.iter().take(10).collect::<Vec<_>>(),
                gone.iter().take(10).collect::<Vec<_>>(),
                whereabouts(&broker, &name, &got.missing)
            );
        }
        if !left.is_empty() {
            println!("       uncommitted (group, partition, committed, end): {left:?}");
        }
        lost += gone.len();
        late_total += late;
        duplicated += got.duplicates;
        behind += left.len();
    }
    println!(
        "\n{cycles} cycles: {} sent, {lost} lost, {late_total} late (not read within 90 s, still uncommitted), {duplicated} duplicated, \
         {behind} partitions left uncommitted after a clean stop",
        cycles as u64 * PER_CYCLE
    );
    if lost > 0 {
        std::process::exit(1);
    }
}
