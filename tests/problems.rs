//! One test per verification problem: each broken pipeline under `tests/broken/`
//! is reported with the right problem at the right line and column.

use std::path::Path;

use sluice::spec::{Diagnostic, LoadError};

fn problems(file: &str) -> Vec<Diagnostic> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken").join(file);
    match sluice::topology::load(&path) {
        Ok(_) => panic!("{file} should have problems"),
        Err(LoadError::Problems(report)) => report.diagnostics,
        Err(e) => panic!("{file}: {e}"),
    }
}

/// Asserts that `file` reports `code` at `line:column` in `in_file` (the pipeline itself unless given).
fn assert_problem(file: &str, code: &str, line: usize, column: usize, in_file: Option<&str>) -> Diagnostic {
    let found = problems(file);
    let expected_file = in_file.unwrap_or(file);
    found
        .iter()
        .find(|d| {
            d.problem.code() == code
                && d.location.file.ends_with(expected_file)
                && (d.location.line, d.location.column) == (line, column)
        })
        .cloned()
        .unwrap_or_else(|| panic!("{file}: no {code} at {expected_file}:{line}:{column}; found {found:#?}"))
}

macro_rules! problem_test {
    ($name:ident, $code:literal, $line:literal, $column:literal) => {
        #[test]
        fn $name() {
            assert_problem(concat!(stringify!($name), ".yaml"), $code, $line, $column, None);
        }
    };
}

problem_test!(duplicate_key, "duplicate-key", 6, 5);
problem_test!(duplicate_streamlet, "duplicate-streamlet", 10, 3);
problem_test!(wrong_type, "wrong-type", 3, 15);
problem_test!(missing_field, "missing-field", 6, 3);
problem_test!(invalid_value, "invalid-value", 5, 36);
problem_test!(unconsumed_outlet, "unconsumed-outlet", 6, 3);
problem_test!(missing_inputs, "missing-inputs", 10, 3);
problem_test!(unexpected_inputs, "unexpected-inputs", 8, 5);
problem_test!(incompatible_records, "incompatible-records", 13, 29);
problem_test!(missing_file, "missing-file", 7, 13);
problem_test!(missing_model, "missing-file", 9, 13);

#[test]
fn a_pinned_version_not_in_the_folder_is_reported_at_the_version() {
    let d = assert_problem("unknown_version.yaml", "unknown-version", 11, 16, None);
    assert!(
        d.message.contains("model `house-price` has no version 7"),
        "{}",
        d.message
    );
    assert!(
        d.hint.as_deref().unwrap_or("").starts_with("versions there: 1, 2"),
        "{:?}",
        d.hint
    );
}
problem_test!(unset_variable, "unset-variable", 9, 31);
problem_test!(unknown_edge, "unknown-edge", 12, 5);
problem_test!(invalid_record_schema, "invalid-record-schema", 9, 13);
problem_test!(unknown_model, "unknown-model", 13, 42);
problem_test!(kafka_table_without_fields, "missing-field", 7, 3);

#[test]
fn a_bad_streamlet_name_is_reported_at_the_name_and_says_it() {
    for (line, name) in [(3, "Readings"), (6, "my out"), (10, "città")] {
        let d = assert_problem("bad_streamlet_names.yaml", "invalid-value", line, 3, None);
        assert!(
            d.message.contains(&format!(
                "streamlet name `{name}` is not allowed: names are lowercase letters"
            )),
            "{}",
            d.message
        );
    }
    // The inputs naming it are told too, by the field they are in.
    let d = assert_problem("bad_streamlet_names.yaml", "invalid-value", 8, 14, None);
    assert!(d.message.starts_with("invalid value for `inputs`"), "{}", d.message);
}

#[test]
fn every_topic_name_is_checked_and_said_in_words() {
    for (line, column, value) in [(10, 34, "zip codes"), (14, 84, "models/house"), (19, 33, "..")] {
        let d = assert_problem("bad_topic_names.yaml", "invalid-value", line, column, None);
        assert!(
            d.message.contains(&format!(
                "{value:?} is not allowed: a Kafka topic name is 1 to 249 letters"
            )),
            "{}",
            d.message
        );
        assert!(!d.message.contains('^') && !d.message.contains("enum"), "{}", d.message);
    }
}

#[test]
fn one_outlet_read_twice_is_one_problem_however_it_is_spelled() {
    // `listings` and `listings.out` are the same outlet.
    let d = assert_problem("duplicate_input.yaml", "duplicate-input", 8, 24, None);
    assert!(
        d.message.contains("`out` reads the outlet `listings.out` twice"),
        "{}",
        d.message
    );
    assert!(
        d.hint.as_deref().unwrap_or("").contains("remove `listings.out`"),
        "{:?}",
        d.hint
    );
    // Written the same way twice, it is the same problem, and the only one.
    let found = problems("duplicate_input_same_spelling.yaml");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        (
            found[0].problem.code(),
            found[0].location.line,
            found[0].location.column
        ),
        ("duplicate-input".to_string(), 10, 9)
    );
}

#[test]
fn a_scorer_with_one_model_and_several_is_told_to_choose() {
    let d = assert_problem("scorer_model_and_models.yaml", "invalid-value", 8, 5, None);
    assert!(
        d.message
            .contains("either one `model`, or several `models` with a `strategy`"),
        "{}",
        d.message
    );
}

#[test]
fn a_profile_field_the_profile_lacks_is_reported_at_its_name() {
    let d = assert_problem("profile_field_unknown.yaml", "invalid-value", 11, 26, None);
    assert!(
        d.message
            .contains("the profile has no field `sqft_livng` (did you mean `sqft_living`?)"),
        "{}",
        d.message
    );
}

#[test]
fn an_evaluators_rules_are_checked_where_they_are_written() {
    let found = problems("evaluator_rules.yaml");
    assert_eq!(found.len(), 4, "{found:#?}");
    for (line, column, words) in [
        (
            17,
            13,
            "`frad` is not a scorer of this pipeline (did you mean `fraud`?)",
        ),
        (18, 24, "`mae` is not a classifier's figure"),
        (18, 43, "500 labelled answers do not fit a window of 100"),
        (26, 5, "a rule changes what a scorer serves: name it with `scorer`"),
    ] {
        let d = assert_problem("evaluator_rules.yaml", "invalid-value", line, column, None);
        assert!(d.message.contains(words), "{}", d.message);
    }
}

#[test]
fn paces_waits_and_signed_figures_that_cannot_work_are_refused() {
    let found = problems("evaluator_limits.yaml");
    assert_eq!(found.len(), 3, "{found:#?}");
    for (line, column, words) in [
        (5, 83, "records a second cannot be kept"),
        (16, 23, "no label could ever join its prediction"),
        (18, 25, "`mean_error` is signed"),
    ] {
        let d = assert_problem("evaluator_limits.yaml", "invalid-value", line, column, None);
        assert!(d.message.contains(words), "{}", d.message);
    }
}

#[test]
fn a_trainers_triggers_command_and_scorer_are_checked() {
    let found = problems("trainer_rules.yaml");
    assert_eq!(found.len(), 3, "{found:#?}");
    for (line, column, words) in [
        (13, 5, "say what starts a run"),
        (14, 14, "pass it `{output}`"),
        (
            15,
            24,
            "`prize` is not a scorer of this pipeline (did you mean `price`?)",
        ),
    ] {
        let d = assert_problem("trainer_rules.yaml", "invalid-value", line, column, None);
        assert!(d.message.contains(words), "{}", d.message);
    }
}

#[test]
fn a_trainers_quality_floor_names_an_evaluator_and_an_unsigned_figure() {
    let found = problems("trainer_floor.yaml");
    assert_eq!(found.len(), 2, "{found:#?}");
    let d = assert_problem("trainer_floor.yaml", "invalid-value", 13, 35, None);
    assert!(
        d.message.contains("`quality` is not an evaluator of this pipeline"),
        "{}",
        d.message
    );
    let d = assert_problem("trainer_floor.yaml", "invalid-value", 13, 52, None);
    assert!(d.message.contains("`mean_error` is signed"), "{}", d.message);
}

#[test]
fn yaml_syntax() {
    let d = assert_problem("yaml_syntax.yaml", "yaml-syntax", 5, 3, None);
    // The parser notices at the next key; the hint names the `{` left open.
    assert_eq!(
        d.hint.as_deref(),
        Some("the `{` at line 4, column 13 is not closed: is a `}` missing?")
    );
}

#[test]
fn a_duplicate_key_is_one_problem_at_its_second_occurrence() {
    for (file, code, line) in [
        ("duplicate_key.yaml", "duplicate-key", 6),
        ("duplicate_streamlet.yaml", "duplicate-streamlet", 10),
    ] {
        let found = problems(file);
        let at: Vec<_> = found.iter().map(|d| (d.problem.code(), d.location.line)).collect();
        assert_eq!(at, vec![(code.to_string(), line)], "{file}: {found:#?}");
    }
}

#[test]
fn a_misspelt_input_is_not_reported_again_as_an_outlet_feeding_nothing() {
    let found = problems("unknown_port.yaml");
    assert!(
        !found.iter().any(|d| d.problem.code() == "unconsumed-outlet"),
        "{found:#?}"
    );
    let found = problems("unknown_streamlet.yaml");
    assert!(
        !found.iter().any(|d| d.problem.code() == "unconsumed-outlet"),
        "{found:#?}"
    );
}

#[test]
fn unknown_key() {
    let d = assert_problem("unknown_key.yaml", "unknown-key", 5, 5, None);
    assert_eq!(d.hint.as_deref(), Some("did you mean `source`?"));
    // The misspelt key is the whole story: no separate "missing source".
    assert!(!problems("unknown_key.yaml")
        .iter()
        .any(|d| d.problem.code() == "missing-field"));
}

#[test]
fn unknown_kind() {
    let d = assert_problem("unknown_kind.yaml", "unknown-kind", 7, 11, None);
    assert_eq!(d.hint.as_deref(), Some("did you mean `validator`?"));
}

#[test]
fn unknown_streamlet() {
    let d = assert_problem("unknown_streamlet.yaml", "unknown-streamlet", 8, 24, None);
    assert_eq!(d.hint.as_deref(), Some("did you mean `listings`?"));
}

#[test]
fn unknown_port() {
    let d = assert_problem("unknown_port.yaml", "unknown-port", 14, 9, None);
    assert!(d.hint.unwrap_or_default().contains("`check.valid`"));
}

#[test]
fn cycle() {
    let d = assert_problem("cycle.yaml", "cycle", 6, 3, None);
    assert_eq!(d.message, "cycle: a → b → c → a");
}

#[test]
fn problems_in_a_definition_point_into_the_definition_file() {
    assert_problem(
        "definition_problem.yaml",
        "unknown-key",
        3,
        1,
        Some("defs/bad-check.yaml"),
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let codes: Vec<String> = problems("many_problems.yaml")
        .iter()
        .map(|d| d.problem.code())
        .collect();
    for code in ["unknown-key", "unknown-streamlet", "unconsumed-outlet"] {
        assert!(codes.iter().any(|c| c == code), "{code} missing from {codes:?}");
    }
    // A streamlet with problems of its own, and an input naming a port no ingress has: one more.
    assert_problem("port_of_a_broken_streamlet.yaml", "unknown-key", 7, 5, None);
    let port = assert_problem("port_of_a_broken_streamlet.yaml", "unknown-port", 10, 24, None);
    assert!(port.message.contains("no outlet `errros`"), "{}", port.message);
    assert!(
        port.hint.as_deref().unwrap_or("").contains("`readings.errors`"),
        "{:?}",
        port.hint
    );
}

#[test]
fn every_problem_variant_has_a_broken_pipeline() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    let mut covered = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("tests/broken exists") {
        let name = entry
            .expect("readable entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yaml") {
            covered.extend(problems(&name).into_iter().map(|d| d.problem.code()));
        }
    }
    // Every variant of `Problem`: adding a variant means adding a broken pipeline.
    use strum::IntoEnumIterator;
    let all: Vec<&str> = sluice::spec::ProblemCode::iter().map(|c| c.as_str()).collect();
    for code in all {
        assert!(covered.contains(code), "no broken pipeline shows {code}");
    }
}

#[test]
fn example_pipelines_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("pipelines/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "yaml") && !sluice::testing::is_test_file(&path) {
            if let Err(e) = sluice::topology::load(&path) {
                match e {
                    LoadError::Problems(r) => panic!("{}: {:#?}", path.display(), r.diagnostics),
                    e => panic!("{}: {e}", path.display()),
                }
            }
            count += 1;
        }
    }
    assert!(count >= 2);
}

#[test]
fn yaml_as_people_write_it_byte_order_marks_merge_keys_and_references_in_flow_mappings() {
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    // A byte-order mark, as editors on Windows write one.
    let bom = write(
        "bom.yaml",
        "\u{feff}pipeline: bom\nstreamlets:\n  x:\n    kind: ingress\n    source: { type: generator, count: 1 }\n  y:\n    kind: egress\n    inputs: [x]\n    sink: { type: blackhole }\n",
    );
    sluice::topology::load(&bom).expect("a file with a byte-order mark loads");
    // Anchors kept under an `x-` key and merged in; a key beside the merge wins.
    let merged = write(
        "merge.yaml",
        "pipeline: merge
x-sink: &sink
  kind: egress
  sink: { type: blackhole }
streamlets:
  x:
    kind: ingress
    source: { type: generator, count: 1 }
  y:
    <<: *sink
    inputs: [x]
  z:
    <<: *sink
    inputs: [x]
    sink: { type: stdout }
",
    );
    let topology = sluice::topology::load(&merged).expect("merge keys are understood");
    let kind_of = |name: &str| format!("{:?}", topology.graph[topology.by_name[name]].spec.kind);
    assert!(kind_of("y").contains("Blackhole"), "{}", kind_of("y"));
    assert!(kind_of("z").contains("Stdout"), "{}", kind_of("z"));
    // `${N}` unquoted in a flow mapping is YAML structure: the error says to quote it, and
    // quoted it takes its value's type.
    let env = |name: &str| (name == "N").then(|| "5".to_string());
    let bare = write(
        "bare.yaml",
        "pipeline: var\nstreamlets:\n  x:\n    kind: ingress\n    source: { type: generator, count: ${N} }\n  y:\n    kind: egress\n    inputs: [x]\n    sink: { type: blackhole }\n",
    );
    match sluice::spec::load_with_env(&bare, &env) {
        Err(LoadError::Problems(report)) => {
            let d = &report.diagnostics[0];
            assert_eq!((d.problem.code().as_str(), d.location.line), ("yaml-syntax", 5));
            assert!(
                d.hint
                    .as_deref()
                    .unwrap_or("")
                    .contains(r#"quote a reference: `"${N}"`"#),
                "{:?}",
                d.hint
            );
        }
        other => panic!("a syntax error, not {other:?}"),
    }
    let quoted = write(
        "quoted.yaml",
        &std::fs::read_to_string(&bare)
            .expect("read")
            .replace("${N}", "\"${N}\""),
    );
    let pipeline = sluice::spec::load_with_env(&quoted, &env).expect("loads");
    let x = format!("{:?}", pipeline.streamlets["x"].spec);
    assert!(x.contains("count: Some(5)"), "{x}");
}
