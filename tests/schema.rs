//! The published pipeline schema agrees with sluice, checked by an independent JSON Schema
//! validator (boon, not the jsonschema crate sluice uses): every shipped pipeline and streamlet
//! definition passes it, as an editor using the schema would see them, and the broken
//! pipelines whose problem is a schema problem fail it.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("a folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    files
}

/// Validates `instance` against the schema at `fragment` (`""` for the whole pipeline schema):
/// the validator's report, when it fails.
fn check(instance: &Value, fragment: &str) -> Result<(), String> {
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let schema = root().join("schemas/pipeline.schema.json");
    let location = format!("{}#{fragment}", schema.display());
    let index = compiler
        .compile(&location, &mut schemas)
        .map_err(|e| format!("{e:#}"))?;
    schemas.validate(instance, index).map_err(|e| format!("{e:#}"))
}

#[test]
fn every_shipped_pipeline_passes_an_independent_validator() {
    let pipelines = yaml_files("pipelines");
    assert!(pipelines.len() >= 4, "{pipelines:?}");
    for file in pipelines {
        if let Err(report) = check(&yaml(&file), "") {
            panic!("{} fails the published schema:\n{report}", file.display());
        }
    }
}

#[test]
fn every_streamlet_definition_passes_the_schema_its_file_names() {
    for file in yaml_files("streamlets") {
        let text = std::fs::read_to_string(&file).expect("readable");
        // `# yaml-language-server: $schema=../schemas/pipeline.schema.json#/$defs/scorer`
        let fragment = text
            .lines()
            .find_map(|l| l.split_once("pipeline.schema.json#").map(|(_, f)| f.trim().to_string()))
            .unwrap_or_else(|| panic!("{} names no schema", file.display()));
        if let Err(report) = check(&yaml(&file), &fragment) {
            panic!("{} fails {fragment}:\n{report}", file.display());
        }
    }
}

#[test]
fn broken_pipelines_with_a_schema_problem_fail_it_too() {
    for name in [
        "unknown_key",
        "wrong_type",
        "missing_field",
        "invalid_value",
        "unknown_kind",
        "kafka_table_without_fields",
        "bad_topic_names",
        "bad_streamlet_names",
    ] {
        let file = root().join(format!("tests/broken/{name}.yaml"));
        assert!(check(&yaml(&file), "").is_err(), "{name} passes the published schema");
    }
}

#[test]
fn the_published_schema_is_the_one_sluice_puts_together_from_its_parts() {
    let published = std::fs::read_to_string(root().join("schemas/pipeline.schema.json")).expect("readable");
    assert!(
        published == sluice::spec::schema::pipeline_schema_text(),
        "schemas/pipeline.schema.json is not what the schema parts make: run \
         `cargo run -- schema > schemas/pipeline.schema.json` after editing \
         src/spec/pipeline-base.schema.json or a kind's schema.json"
    );
}
