//! The rooms of `src/` import one way only, as README.md's layout says: a module may use the
//! modules below it, never one above it (or beside it on the same level).

use std::collections::BTreeMap;
use std::path::Path;

/// Each room and its level, lowest first.
const LEVELS: &[(&str, usize)] = &[
    ("c_heap", 0),
    ("flow", 0),
    ("formats", 1),
    ("kafka", 1),
    ("problem", 1),
    ("watch", 1),
    ("models", 2),
    ("streamlets", 3),
    ("spec", 4),
    ("topology", 5),
    ("runtime", 6),
    ("observe", 7),
    ("testing", 7),
    ("main", 8),
];

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_room_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let level: BTreeMap<&str, usize> = LEVELS.iter().copied().collect();
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for file in all {
        let relative = file.strip_prefix(&src).expect("under src");
        let room = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs"))
            .expect("a room");
        if room == "lib" {
            continue;
        }
        let Some(&own) = level.get(room) else {
            wrong.push(format!("{}: a room the layering does not place", relative.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable");
        let used = text.match_indices("crate::").map(|(i, _)| &text[i + 7..]).map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()
        });
        for target in used {
            if target == room {
                continue;
            }
            match level.get(target) {
                Some(&l) if l < own => {}
                Some(_) => wrong.push(format!("{} uses crate::{target}", relative.display())),
                None => wrong.push(format!(
                    "{} uses crate::{target}, a room not placed",
                    relative.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}
