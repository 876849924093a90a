//! The pipeline JSON Schema and its findings as problems.
//!
//! The schema is put together from parts: what every pipeline has
//! (`src/spec/pipeline-base.schema.json`: the top level, names, inputs, edges, defaults)
//! and one fragment per streamlet kind, in the kind's own folder
//! (`src/streamlets/<kind>/schema.json`, listed in [`crate::streamlets::kind::KIND_SCHEMAS`]). Each
//! fragment holds the `$defs` that kind owns, the kind's own one named as the kind; the
//! streamlet's `kind` choice is made from the list. `schemas/pipeline.schema.json` is the same
//! schema written out for editors and other validators (`sluice schema` prints it; a test
//! keeps the file and the parts in step).

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::{json, Value};

use super::problem::{did_you_mean, Problem};
use super::source::pointer_segments;

const BASE: &str = include_str!("pipeline-base.schema.json");

/// The pipeline schema, put together from its parts.
pub fn pipeline_schema() -> &'static Value {
    &schema().0
}

/// The pipeline schema as `schemas/pipeline.schema.json` holds it.
pub fn pipeline_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(pipeline_schema()).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// The base with each kind's fragment: its `$defs` added, and the streamlet's `kind` choosing
/// among them.
fn assemble(base: &str, kinds: &[(&str, &str)]) -> Result<Value, String> {
    let mut schema: Value = serde_json::from_str(base).map_err(|e| format!("the base schema: {e}"))?;
    let defs = schema
        .get_mut("$defs")
        .and_then(Value::as_object_mut)
        .ok_or("the base schema has no `$defs`")?;
    let mut choices = Vec::new();
    for (kind, fragment) in kinds {
        let fragment: serde_json::Map<String, Value> =
            serde_json::from_str(fragment).map_err(|e| format!("the {kind} schema fragment: {e}"))?;
        if !fragment.contains_key(*kind) {
            return Err(format!("the {kind} schema fragment has no `{kind}` definition"));
        }
        for (name, definition) in fragment {
            if defs.insert(name.clone(), definition).is_some() {
                return Err(format!("the {kind} schema fragment defines `{name}` again"));
            }
        }
        choices.push(json!({
            "if": { "properties": { "kind": { "const": kind } }, "required": ["kind"] },
            "then": { "$ref": format!("#/$defs/{kind}") }
        }));
    }
    let streamlet = defs
        .get_mut("streamlet")
        .and_then(Value::as_object_mut)
        .ok_or("the base schema has no `streamlet` definition")?;
    let kind = streamlet
        .get_mut("properties")
        .and_then(|p| p.get_mut("kind"))
        .and_then(Value::as_object_mut)
        .ok_or("the streamlet definition has no `kind` property")?;
    let mut with_enum = serde_json::Map::new();
    with_enum.insert("enum".into(), kinds.iter().map(|(k, _)| json!(k)).collect());
    with_enum.extend(std::mem::take(kind));
    *kind = with_enum;
    streamlet.insert("allOf".into(), Value::Array(choices));
    Ok(schema)
}

fn schema() -> &'static (Value, Validator) {
    static SCHEMA: OnceLock<(Value, Validator)> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let value = assemble(BASE, crate::streamlets::kind::KIND_SCHEMAS).expect("the built-in schema's parts fit");
        let validator = jsonschema::draft202012::options()
            .build(&value)
            .expect("the built-in schema compiles");
        (value, validator)
    })
}

/// A schema finding: the problem, the JSON pointer of the offending value, and
/// whether the location is a key (unknown keys) rather than a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub problem: Problem,
    pub pointer: String,
    pub at_key: bool,
}

/// Checks a whole pipeline document against the pipeline schema.
pub fn check(document: &Value) -> Vec<Finding> {
    let (schema_value, validator) = schema();
    let mut findings: Vec<Finding> = validator
        .iter_errors(document)
        .flat_map(|e| to_findings(&e, schema_value))
        .collect();
    // A failed `if/then` branch repeats its inner errors; report each once.
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert((f.pointer.clone(), f.problem.to_string())));
    // A misspelt key also makes its field missing: the unknown key says it better.
    let misspelt: Vec<(String, String)> = findings
        .iter()
        .filter_map(|f| match &f.problem {
            Problem::UnknownKey {
                suggestion: Some(s), ..
            } => {
                let parent = f.pointer.rsplit_once('/').map_or("", |(p, _)| p);
                Some((parent.to_string(), s.clone()))
            }
            _ => None,
        })
        .collect();
    findings.retain(|f| match &f.problem {
        Problem::MissingField { field } => !misspelt.contains(&(f.pointer.clone(), field.clone())),
        _ => true,
    });
    findings
}

/// The field a pointer names: its last key (`inputs` for `/streamlets/a/inputs/0`).
fn field_name(pointer: &str) -> String {
    pointer_segments(pointer)
        .into_iter()
        .rev()
        .find(|s| s.parse::<usize>().is_err())
        .unwrap_or_else(|| "(document)".into())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The property names the schema object holding a keyword allows.
fn allowed_properties<'a>(schema: &'a Value, keyword_pointer: &str) -> Vec<&'a str> {
    let parent = keyword_pointer.rsplit_once('/').map_or("", |(p, _)| p);
    schema
        .pointer(parent)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn to_findings(e: &jsonschema::ValidationError<'_>, schema: &Value) -> Vec<Finding> {
    let pointer = e.instance_path().as_str().to_string();
    let keyword_pointer = e
        .absolute_keyword_location()
        .and_then(|uri| uri.fragment().map(|f| f.as_str().to_string()))
        .unwrap_or_default();
    let instance = e.instance();
    // A problem with a whole mapping points at its key (the streamlet's name, say).
    let at_key = instance.is_object();
    let one = |problem| {
        vec![Finding {
            problem,
            pointer: pointer.clone(),
            at_key,
        }]
    };
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_properties(schema, &keyword_pointer);
            unexpected
                .iter()
                .map(|key| Finding {
                    problem: Problem::UnknownKey {
                        key: key.clone(),
                        suggestion: did_you_mean(key, allowed.iter().copied()),
                    },
                    pointer: format!("{pointer}/{}", super::source::escape_segment(key)),
                    at_key: true,
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => one(Problem::MissingField {
            field: property.as_str().unwrap_or_default().to_string(),
        }),
        ValidationErrorKind::Type { kind } => one(Problem::WrongType {
            field: field_name(&pointer),
            expected: format!("{kind:?}")
                .to_lowercase()
                .replace("single(", "")
                .replace(')', ""),
            found: json_type(instance).to_string(),
        }),
        ValidationErrorKind::Enum { options } if pointer.ends_with("/kind") && pointer.starts_with("/streamlets/") => {
            let kind = instance.as_str().unwrap_or_default();
            let known: Vec<&str> = options
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            one(Problem::UnknownKind {
                kind: kind.to_string(),
                suggestion: did_you_mean(kind, known),
            })
        }
        ValidationErrorKind::Enum { options } => {
            let known: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o.to_string())
                .collect();
            one(Problem::InvalidValue {
                field: field_name(&pointer),
                reason: format!("{instance} is not one of {}", known.join(", ")),
            })
        }
        ValidationErrorKind::OneOfMultipleValid { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            let parent = keyword_pointer.rsplit_once('/').map_or("", |(p, _)| p);
            let rule = schema.pointer(parent);
            let message = rule
                .and_then(|s| s.get("x-oneof-message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| e.masked().to_string());
            // `x-oneof-at` names the key that is the choice to undo, when the mapping has it.
            let key = rule
                .and_then(|s| s.get("x-oneof-at"))
                .and_then(Value::as_str)
                .filter(|key| instance.get(key).is_some());
            let problem = Problem::InvalidValue {
                field: key.map_or_else(|| field_name(&pointer), str::to_string),
                reason: message,
            };
            match key {
                Some(key) => vec![Finding {
                    problem,
                    pointer: format!("{pointer}/{}", super::source::escape_segment(key)),
                    at_key: true,
                }],
                None => one(problem),
            }
        }
        // Each name the rule refuses, at that name, saying it.
        ValidationErrorKind::PropertyNames { error } => {
            let name = error.instance().as_str().unwrap_or_default().to_string();
            let what = match pointer.as_str() {
                "/streamlets" => "streamlet name",
                _ => "name",
            };
            vec![Finding {
                problem: Problem::InvalidValue {
                    field: field_name(&pointer),
                    reason: format!(
                        "{what} `{name}` is not allowed: names are lowercase letters (a-z), digits, `_` and `-`, starting with a letter"
                    ),
                },
                pointer: format!("{pointer}/{}", super::source::escape_segment(&name)),
                at_key: true,
            }]
        }
        // What the schema says in words where it says something (`x-message` beside the
        // failed keyword), rather than the keyword's own terms.
        _ => one(Problem::InvalidValue {
            field: field_name(&pointer),
            reason: in_words(schema, &keyword_pointer, instance).unwrap_or_else(|| e.masked().to_string()),
        }),
    }
}

/// The `x-message` of the schema object holding a failed keyword, with the value it refused.
fn in_words(schema: &Value, keyword_pointer: &str, instance: &Value) -> Option<String> {
    let parent = keyword_pointer.rsplit_once('/').map_or("", |(p, _)| p);
    let message = schema.pointer(parent)?.get("x-message")?.as_str()?;
    Some(format!("{instance} is not allowed: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kinds_fragment_adds_its_definitions_and_a_choice_of_kind() {
        let base = r#"{"$defs": {"name": {"type": "string"},
            "streamlet": {"properties": {"kind": {"description": "d"}}}}}"#;
        let schema = assemble(
            base,
            &[
                ("a", r#"{"a": {"type": "object"}, "aPart": {}}"#),
                ("b", r#"{"b": {}}"#),
            ],
        )
        .expect("the parts fit");
        assert_eq!(schema["$defs"]["aPart"], json!({}));
        assert_eq!(
            schema["$defs"]["streamlet"]["properties"]["kind"],
            json!({"enum": ["a", "b"], "description": "d"})
        );
        assert_eq!(
            schema["$defs"]["streamlet"]["allOf"][1]["then"],
            json!({"$ref": "#/$defs/b"})
        );
    }

    #[test]
    fn a_fragment_that_redefines_or_lacks_its_kind_is_refused() {
        let base = r#"{"$defs": {"name": {}, "streamlet": {"properties": {"kind": {}}}}}"#;
        let again = assemble(base, &[("a", r#"{"a": {}, "name": {}}"#)]).expect_err("defined twice");
        assert!(again.contains("defines `name` again"), "{again}");
        let lacking = assemble(base, &[("a", r#"{"other": {}}"#)]).expect_err("no `a`");
        assert!(lacking.contains("has no `a` definition"), "{lacking}");
    }

    #[test]
    fn built_in_schema_accepts_a_minimal_pipeline() {
        let doc = json!({"pipeline": "p", "streamlets": {"a": {"kind": "ingress", "source": {"type": "stdin"}}}});
        assert_eq!(check(&doc), vec![]);
    }

    #[test]
    fn unknown_key_suggests_the_closest_allowed_key() {
        let doc = json!({"pipeline": "p", "streamlets": {"a": {"kind": "ingress", "sourse": {"type": "stdin"}}}});
        let findings = check(&doc);
        assert!(findings.iter().any(|f| f.problem
            == Problem::UnknownKey {
                key: "sourse".into(),
                suggestion: Some("source".into())
            }
            && f.pointer == "/streamlets/a/sourse"));
    }
}
