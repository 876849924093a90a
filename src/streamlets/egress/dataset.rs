//! A rolling dataset on disk: records as JSON lines in shards of a fixed size, bounded by
//! count and age, with a manifest that says what the folder holds (rows, time range, each
//! shard's sha256). What a training run reads: the labelled examples the pipeline has seen.
//!
//! A shard is written as `shard-NNNNNN.jsonl.partial` and renamed when full (or when the
//! egress stops); only complete shards are in the manifest, which is replaced whole each time
//! (written beside, then renamed), so a reader never sees half a shard or half a manifest.
//! The folder itself is the lock between the sink and a reader that copies the shards (a
//! training run): the sink drops shards and writes the manifest holding it exclusively, a
//! reader reads the manifest and links or opens what it lists holding it shared ([`hold`]),
//! so no shard it lists goes before the reader has it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::config::DatasetSinkConfig;

pub const MANIFEST: &str = "manifest.json";

/// One complete shard of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub file: String,
    pub rows: u64,
    /// When its first and last record were written, RFC 3339.
    pub first_at: String,
    pub last_at: String,
    pub sha256: String,
    /// Where its rows came from, when they came from Kafka (a `source_field` on the records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceRange>,
}

/// The rows of one Kafka topic partition in a shard (or in the whole dataset): how many, and
/// the lowest and highest offset among them (not every offset between is there: records may
/// have been filtered, split among models, or never labelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRange {
    pub topic: String,
    pub partition: i64,
    pub first: i64,
    pub last: i64,
    pub rows: u64,
}

/// Where a row came from: topic, partition, offset.
pub type Place = (String, i64, i64);

/// Adds a row from `place` to `ranges`.
fn widen(
    ranges: &mut std::collections::BTreeMap<(String, i64), SourceRange>,
    topic: &str,
    partition: i64,
    first: i64,
    last: i64,
    rows: u64,
) {
    let range = ranges
        .entry((topic.to_string(), partition))
        .or_insert_with(|| SourceRange {
            topic: topic.to_string(),
            partition,
            first,
            last,
            rows: 0,
        });
    range.first = range.first.min(first);
    range.last = range.last.max(last);
    range.rows += rows;
}

/// What the dataset folder holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub rows: u64,
    /// The first record's time and the last one's, RFC 3339 (empty when there are none).
    pub from: String,
    pub to: String,
    /// The sha256 of the shards' sha256s, in order: one figure for the whole content.
    pub sha256: String,
    pub shards: Vec<Shard>,
    /// Rows written into complete shards since the folder began, those dropped since
    /// included: how many new labelled examples there were.
    #[serde(default)]
    pub written: u64,
    /// Per Kafka topic partition the rows came from: their offsets and count, over the listed
    /// shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceRange>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The shard being written.
struct Open {
    number: u64,
    file: std::io::BufWriter<std::fs::File>,
    rows: u64,
    first_at: SystemTime,
    last_at: SystemTime,
    hash: sha2::Sha256,
    sources: std::collections::BTreeMap<(String, i64), SourceRange>,
}

/// A dataset folder being written.
pub struct Dataset {
    dir: PathBuf,
    config: DatasetSinkConfig,
    manifest: Manifest,
    /// When each complete shard's last record was written, for the age bound.
    written: Vec<SystemTime>,
    open: Option<Open>,
    next: u64,
}

impl Dataset {
    /// Opens the folder, taking over the shards a manifest there lists (a restart goes on
    /// where it stopped; a half-written shard from before is dropped).
    pub fn open(config: &DatasetSinkConfig) -> std::io::Result<Dataset> {
        std::fs::create_dir_all(&config.path)?;
        let manifest: Manifest = std::fs::read_to_string(config.path.join(MANIFEST))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        // Numbers go on after the highest complete shard there is, listed or not: none is
        // overwritten.
        let number = |name: &str| -> Option<u64> { name.strip_prefix("shard-")?.split('.').next()?.parse().ok() };
        let mut highest = manifest
            .shards
            .iter()
            .filter_map(|s| number(&s.file))
            .max()
            .unwrap_or(0);
        for entry in std::fs::read_dir(&config.path)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if path.extension().is_some_and(|e| e == "partial") {
                std::fs::remove_file(path)?; // half written before a crash: dropped
            } else {
                highest = highest.max(number(&name).unwrap_or(0));
            }
        }
        let next = highest.saturating_add(1);
        let written = manifest
            .shards
            .iter()
            .map(|s| humantime::parse_rfc3339(&s.last_at).unwrap_or_else(|_| SystemTime::now()))
            .collect();
        Ok(Dataset {
            dir: config.path.clone(),
            config: config.clone(),
            manifest,
            written,
            open: None,
            next,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Where each record of `batch` came from, by its `source_field`: empty when no record
    /// says.
    pub fn places(&self, batch: &crate::flow::Batch) -> Vec<Option<Place>> {
        use crate::flow::Value;
        let Some(column) = batch.column(&self.config.source_field) else {
            return Vec::new();
        };
        (0..batch.len())
            .map(|i| match column.get(i) {
                Value::Object(row) => match (row.get("topic"), row.get("partition"), row.get("offset")) {
                    (Value::Str(topic), Value::Int(partition), Value::Int(offset)) => {
                        Some((topic.to_string(), partition, offset))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// Where the manifest is, for messages.
    pub fn manifest_path(&self) -> String {
        self.dir.join(MANIFEST).display().to_string()
    }

    fn shard_name(number: u64) -> String {
        format!("shard-{number:06}.jsonl")
    }

    /// Appends records, each one JSON line (`lines` holds them, newline-terminated).
    pub fn append(&mut self, lines: &[u8], now: SystemTime) -> std::io::Result<()> {
        self.append_from(lines, &[], now)
    }

    /// Appends records with where each came from (`places[i]` for line `i`, when known).
    pub fn append_from(&mut self, lines: &[u8], places: &[Option<Place>], now: SystemTime) -> std::io::Result<()> {
        for (i, line) in lines.split_inclusive(|b| *b == b'\n').enumerate() {
            if self.open.is_none() {
                std::fs::create_dir_all(&self.dir)?;
                let number = self.next;
                self.next += 1;
                let path = self.dir.join(format!("{}.partial", Self::shard_name(number)));
                self.open = Some(Open {
                    number,
                    file: std::io::BufWriter::new(std::fs::File::create(path)?),
                    rows: 0,
                    first_at: now,
                    last_at: now,
                    hash: sha2::Sha256::new(),
                    sources: Default::default(),
                });
            }
            let open = self.open.as_mut().expect("just opened");
            open.file.write_all(line)?;
            open.hash.update(line);
            open.rows += 1;
            open.last_at = now;
            if let Some(Some((topic, partition, offset))) = places.get(i) {
                widen(&mut open.sources, topic, *partition, *offset, *offset, 1);
            }
            if open.rows >= self.config.shard_rows.max(1) {
                self.close()?;
            }
        }
        if let Some(open) = &mut self.open {
            open.file.flush()?;
        }
        Ok(())
    }

    /// Completes the shard being written (if any), drops what is beyond the bounds, and
    /// writes the manifest.
    pub fn close(&mut self) -> std::io::Result<()> {
        if let Some(mut open) = self.open.take() {
            open.file.flush()?;
            let file = Self::shard_name(open.number);
            std::fs::rename(self.dir.join(format!("{file}.partial")), self.dir.join(&file))?;
            self.manifest.shards.push(Shard {
                file,
                rows: open.rows,
                first_at: rfc3339(open.first_at),
                last_at: rfc3339(open.last_at),
                sha256: hex(&open.hash.finalize()),
                sources: open.sources.into_values().collect(),
            });
            self.written.push(open.last_at);
            self.manifest.written += open.rows;
        }
        std::fs::create_dir_all(&self.dir)?;
        let _held = lock(&self.dir, Hold::Exclusive)?;
        self.bound(SystemTime::now())?;
        self.write_manifest()
    }

    /// Drops the oldest shards beyond `max_rows` rows, and those last written before
    /// `max_age`.
    fn bound(&mut self, now: SystemTime) -> std::io::Result<()> {
        let too_old = |t: &SystemTime| {
            self.config
                .max_age
                .is_some_and(|age| now.duration_since(*t).unwrap_or(Duration::ZERO) > age)
        };
        loop {
            let rows: u64 = self.manifest.shards.iter().map(|s| s.rows).sum();
            let over = self.config.max_rows.is_some_and(|max| rows > max);
            if self.manifest.shards.is_empty() || !(over || self.written.first().is_some_and(too_old)) {
                break;
            }
            let oldest = self.manifest.shards.remove(0);
            self.written.remove(0);
            match std::fs::remove_file(self.dir.join(&oldest.file)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn write_manifest(&mut self) -> std::io::Result<()> {
        let m = &mut self.manifest;
        m.rows = m.shards.iter().map(|s| s.rows).sum();
        m.from = m.shards.first().map(|s| s.first_at.clone()).unwrap_or_default();
        m.to = m.shards.last().map(|s| s.last_at.clone()).unwrap_or_default();
        let mut all = sha2::Sha256::new();
        for s in &m.shards {
            all.update(s.sha256.as_bytes());
        }
        m.sha256 = hex(&all.finalize());
        let mut sources = std::collections::BTreeMap::new();
        for r in m.shards.iter().flat_map(|s| &s.sources) {
            widen(&mut sources, &r.topic, r.partition, r.first, r.last, r.rows);
        }
        m.sources = sources.into_values().collect();
        let partial = self.dir.join(format!("{MANIFEST}.partial"));
        std::fs::write(&partial, serde_json::to_vec_pretty(&*m).unwrap_or_default())?;
        std::fs::rename(partial, self.dir.join(MANIFEST))
    }
}

enum Hold {
    Shared,
    Exclusive,
}

/// The folder, locked (`flock(2)` on the folder itself: advisory, between the processes of
/// one host; on NFS it does not reach other hosts); unlocked when the handle drops. Where the
/// file system has no locks, unlocked, said once: a reader may then find a listed shard gone.
fn lock(dir: &Path, hold: Hold) -> std::io::Result<std::fs::File> {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let folder = std::fs::File::open(dir)?;
    let locked = match hold {
        Hold::Shared => folder.lock_shared(),
        Hold::Exclusive => folder.lock(),
    };
    match locked {
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported || e.raw_os_error() == Some(libc::ENOLCK) => {
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(folder = %dir.display(), error = %e, "the dataset's folder cannot be locked here: a training run may find a shard the sink dropped meanwhile, and fail");
            }
        }
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    Ok(folder)
}

/// The dataset folder held for reading: while the handle lives, the sink drops no shard and
/// writes no manifest, so every shard the manifest lists stays. Blocks while the sink holds
/// it (dropping shards and writing a manifest: a moment), and the sink waits while a reader
/// holds it: hold it to read the manifest and link or open the shards, never to copy them.
pub fn hold(dir: &Path) -> std::io::Result<std::fs::File> {
    lock(dir, Hold::Shared)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file's content, as a manifest states it.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    Ok(hex(&sha2::Sha256::digest(std::fs::read(path)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, shard_rows: u64, max_rows: Option<u64>) -> DatasetSinkConfig {
        DatasetSinkConfig {
            path: dir.to_path_buf(),
            shard_rows,
            max_rows,
            max_age: None,
            source_field: "_kafka".into(),
        }
    }

    fn lines(from: u64, to: u64) -> Vec<u8> {
        (from..=to)
            .flat_map(|i| format!("{{\"id\":{i}}}\n").into_bytes())
            .collect()
    }

    #[test]
    fn a_reader_holding_the_folder_waits_while_the_sink_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sink = lock(dir.path(), Hold::Exclusive).expect("the sink holds the folder");
        let flag = released.clone();
        let sink = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(sink);
        });
        let held = hold(dir.path()).expect("held");
        assert!(
            released.load(std::sync::atomic::Ordering::SeqCst),
            "the reader got the folder while the sink held it"
        );
        let second = hold(dir.path()).expect("readers share the folder");
        drop((held, second));
        sink.join().expect("sink");
    }

    #[test]
    fn the_sink_drops_no_shard_while_a_reader_holds_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Dataset::open(&config(dir.path(), 2, Some(2))).expect("open");
        d.append(&lines(1, 3), SystemTime::now()).expect("append"); // shard 1, and one row open
        let held = hold(dir.path()).expect("held");
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = closed.clone();
        let sink = std::thread::spawn(move || {
            d.close().expect("close"); // completes shard 2, and the bound drops shard 1
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !closed.load(std::sync::atomic::Ordering::SeqCst),
            "the sink went on while the folder was held"
        );
        assert!(dir.path().join("shard-000001.jsonl").exists());
        drop(held);
        sink.join().expect("sink");
        assert!(closed.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!dir.path().join("shard-000001.jsonl").exists(), "dropped once let go");
    }

    #[test]
    fn shards_roll_within_the_row_bound_and_the_manifest_says_what_is_there() {
        let dir = tempfile::tempdir().expect("dir");
        let mut d = Dataset::open(&config(dir.path(), 100, Some(350))).expect("open");
        d.append(&lines(1, 1000), SystemTime::now()).expect("append");
        d.close().expect("close");
        let m = d.manifest().clone();
        assert_eq!(m.rows, 300);
        assert_eq!(
            m.shards.iter().map(|s| s.file.as_str()).collect::<Vec<_>>(),
            ["shard-000008.jsonl", "shard-000009.jsonl", "shard-000010.jsonl"]
        );
        for s in &m.shards {
            assert_eq!(file_sha256(&dir.path().join(&s.file)).expect("read"), s.sha256);
        }
        let first = std::fs::read_to_string(dir.path().join("shard-000008.jsonl")).expect("shard");
        assert!(first.starts_with("{\"id\":701}\n"));
        let on_disk: Manifest =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(MANIFEST)).expect("manifest")).expect("JSON");
        assert_eq!(on_disk, m);
        let files = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(files, 4, "three shards and the manifest, nothing else");
    }

    #[test]
    fn a_partial_shard_is_not_in_the_manifest_until_it_is_complete_and_a_reopen_goes_on() {
        let dir = tempfile::tempdir().expect("dir");
        let mut d = Dataset::open(&config(dir.path(), 10, None)).expect("open");
        d.append(&lines(1, 15), SystemTime::now()).expect("append");
        assert_eq!(d.manifest().rows, 10, "the five of the open shard are not listed yet");
        drop(d); // a crash: the partial shard is left behind
        let mut d = Dataset::open(&config(dir.path(), 10, None)).expect("reopen");
        assert_eq!(d.manifest().rows, 10);
        d.append(&lines(16, 20), SystemTime::now()).expect("append");
        d.close().expect("close");
        let names: Vec<String> = d.manifest().shards.iter().map(|s| s.file.clone()).collect();
        assert_eq!(names, ["shard-000001.jsonl", "shard-000002.jsonl"]);
        assert_eq!(d.manifest().rows, 15);
        assert!(!dir.path().join("shard-000002.jsonl.partial").exists());
    }

    #[test]
    fn a_shard_left_unlisted_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("shard-000007.jsonl"), "{\"id\":0}\n").expect("orphan");
        let mut d = Dataset::open(&config(dir.path(), 2, None)).expect("open");
        d.append(&lines(1, 2), SystemTime::now()).expect("append");
        assert_eq!(d.manifest().shards[0].file, "shard-000008.jsonl");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("shard-000007.jsonl")).expect("kept"),
            "{\"id\":0}\n"
        );
    }

    #[test]
    fn a_folder_removed_while_running_is_made_again() {
        let dir = tempfile::tempdir().expect("dir");
        let folder = dir.path().join("data");
        let mut d = Dataset::open(&config(&folder, 2, None)).expect("open");
        d.append(&lines(1, 2), SystemTime::now()).expect("append");
        std::fs::remove_dir_all(&folder).expect("removed");
        d.append(&lines(3, 4), SystemTime::now()).expect("append again");
        assert!(folder.join(MANIFEST).is_file());
    }

    #[test]
    fn the_manifest_says_which_offsets_of_which_partitions_the_rows_came_from() {
        let dir = tempfile::tempdir().expect("dir");
        let mut d = Dataset::open(&config(dir.path(), 3, Some(6))).expect("open");
        let place = |p: i64, o: i64| Some(("listings".to_string(), p, o));
        // Rows 1..9: partitions 0 and 1 interleaved; one row from no topic.
        let places = [
            place(0, 10),
            place(1, 4),
            place(0, 12),
            None,
            place(1, 5),
            place(0, 13),
            place(0, 14),
            place(1, 9),
            place(0, 20),
        ];
        d.append_from(&lines(1, 9), &places, SystemTime::now()).expect("append");
        d.close().expect("close");
        let m = d.manifest();
        assert_eq!(m.rows, 6, "the first shard went beyond the bound");
        assert_eq!(
            m.shards[0].sources,
            [
                SourceRange {
                    topic: "listings".into(),
                    partition: 0,
                    first: 13,
                    last: 13,
                    rows: 1
                },
                SourceRange {
                    topic: "listings".into(),
                    partition: 1,
                    first: 5,
                    last: 5,
                    rows: 1
                },
            ]
        );
        assert_eq!(
            m.sources,
            [
                SourceRange {
                    topic: "listings".into(),
                    partition: 0,
                    first: 13,
                    last: 20,
                    rows: 3
                },
                SourceRange {
                    topic: "listings".into(),
                    partition: 1,
                    first: 5,
                    last: 9,
                    rows: 2
                },
            ]
        );
    }

    #[test]
    fn shards_older_than_the_age_bound_go() {
        let dir = tempfile::tempdir().expect("dir");
        let mut c = config(dir.path(), 5, None);
        c.max_age = Some(Duration::from_secs(3600));
        let mut d = Dataset::open(&c).expect("open");
        let long_ago = SystemTime::now() - Duration::from_secs(7200);
        d.append(&lines(1, 5), long_ago).expect("old");
        d.append(&lines(6, 10), SystemTime::now()).expect("new");
        d.close().expect("close");
        assert_eq!(d.manifest().rows, 5);
        assert_eq!(d.manifest().shards[0].file, "shard-000002.jsonl");
    }
}
