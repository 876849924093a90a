//! Records of every shape a stream carries go through a pipeline unchanged: what a streamlet
//! does not touch comes out as it went in, whatever the other records of its batch hold.

mod common;
use common::{read_jsonl, run_pipeline};

use serde_json::{json, Value};

/// Lines whose records differ in every way real feeds differ; batches of three, so a field's
/// type changes within a batch and from one batch to the next.
const LINES: &[&str] = &[
    r#"{"id":1,"price":350000.5,"city":"Kent","tags":["a","b"],"geo":{"lat":47.1,"lon":-122.2},"ok":true}"#,
    r#"{"id":2,"price":null,"city":"Renton","geo":{"lat":47.5},"note":"only here"}"#,
    r#"{"id":"three","price":410000,"geo":"unknown","ok":false,"big":18446744073709551615}"#,
    r#"{"id":4,"price":2.0,"city":"Auburn \"north\"\n\u00e9\u4e2d","empty":{},"list":[],"deep":{"a":{"b":[1,{"c":null}]}}}"#,
    r#"{"id":5,"city":"Kent","price":1e21,"city":"Seattle"}"#,
    r#"{"id":6,"price":-0.5,"ok":null,"geo":{"lat":47.6,"lon":-122.3,"alt":12}}"#,
    r#"{"id":[7],"price":1}"#,
    r#"{"id":8,"price":1.5e-7,"tags":"not a list"}"#,
];

#[test]
fn records_of_every_shape_pass_through_unchanged_and_rejects_keep_their_content() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, LINES.join("\n") + "\n").expect("input");
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        json!({
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": ["integer", "string"]}, "price": {"type": ["number", "null"]}}
        })
        .to_string(),
    )
    .expect("schema");
    let yaml = format!(
        r#"
pipeline: shapes
streamlets:
  lines:
    kind: ingress
    source: {{ type: file, path: {input} }}
    batch_size: 3
  check:
    kind: validator
    inputs: [lines]
    schema: {schema}
  kept:
    kind: egress
    inputs: [check.valid]
    sink: {{ type: file, path: {kept} }}
  rejected:
    kind: egress
    inputs: [check.invalid, lines.errors]
    sink: {{ type: file, path: {rejected} }}
"#,
        input = input.display(),
        schema = schema.display(),
        kept = dir.path().join("kept.jsonl").display(),
        rejected = dir.path().join("rejected.jsonl").display(),
    );
    run_pipeline(dir.path(), &yaml);
    let parsed: Vec<Value> = LINES.iter().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    let kept = read_jsonl(&dir.path().join("kept.jsonl"));
    let rejected = read_jsonl(&dir.path().join("rejected.jsonl"));
    // Every record but the one whose `id` is a list is valid, and comes out exactly as it went in
    // (a key given twice keeps its last value, as serde_json reads it).
    let expected: Vec<Value> = parsed.iter().filter(|r| !r["id"].is_array()).cloned().collect();
    assert_eq!(kept, expected);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let mut reject = rejected[0].as_object().cloned().expect("an object");
    let error = reject.remove("_error").expect("the reason");
    assert_eq!(error["streamlet"], "check");
    assert_eq!(error["path"], "/id");
    assert_eq!(
        Value::Object(reject),
        parsed[6],
        "the rejected record keeps its content"
    );
    // Text survives byte for byte where the value allows one spelling: a whole float stays a
    // float, escapes and non-ASCII text read back the same.
    let text = std::fs::read_to_string(dir.path().join("kept.jsonl")).expect("kept");
    let fourth = text.lines().nth(3).expect("the fourth record");
    assert!(fourth.contains(r#""price":2.0"#), "{fourth}");
    assert!(fourth.contains(r#""deep":{"a":{"b":[1,{"c":null}]}}"#), "{fourth}");
}

/// Records whose field names change from one to the next (an id used as a key): more names
/// than a batch takes are spread over several batches, and each record still comes out whole
/// and in its place.
fn records_with_their_own_field_names(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut record = serde_json::Map::new();
            record.insert("id".into(), json!(i));
            record.insert(format!("reading_{i}"), json!(i as f64 + 0.5));
            if i % 3 == 0 {
                record.insert(format!("sensor_{i}"), json!({ "ok": i % 2 == 0 }));
            }
            Value::Object(record)
        })
        .collect()
}

#[test]
fn records_with_ever_new_field_names_come_out_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.jsonl");
    let records = records_with_their_own_field_names(1500);
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&input, text).expect("input");
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, json!({"type": "object", "required": ["id"]}).to_string()).expect("schema");
    let yaml = format!(
        r#"
pipeline: wide
streamlets:
  lines:
    kind: ingress
    source: {{ type: file, path: {input} }}
    batch_size: 1000
  check:
    kind: validator
    inputs: [lines]
    schema: {schema}
  kept:
    kind: egress
    inputs: [check.valid, check.invalid, lines.errors]
    sink: {{ type: file, path: {kept} }}
"#,
        input = input.display(),
        schema = schema.display(),
        kept = dir.path().join("kept.jsonl").display(),
    );
    run_pipeline(dir.path(), &yaml);
    assert_eq!(read_jsonl(&dir.path().join("kept.jsonl")), records);
}

#[test]
fn a_byte_order_mark_before_the_first_line_is_not_part_of_the_first_record() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.jsonl");
    // As PowerShell's `Out-File -Encoding utf8` writes it: the mark, then CRLF lines. A mark
    // later in the file is the text of a line, and makes that line malformed.
    let mut text = b"\xef\xbb\xbf".to_vec();
    text.extend_from_slice(b"{\"id\":1}\r\n{\"id\":2}\r\n\xef\xbb\xbf{\"id\":3}\r\n");
    std::fs::write(&input, text).expect("input");
    let yaml = format!(
        r#"
pipeline: marked
streamlets:
  lines:
    kind: ingress
    source: {{ type: file, path: {input} }}
  kept:
    kind: egress
    inputs: [lines]
    sink: {{ type: file, path: {kept} }}
  failed:
    kind: egress
    inputs: [lines.errors]
    sink: {{ type: file, path: {failed} }}
"#,
        input = input.display(),
        kept = dir.path().join("kept.jsonl").display(),
        failed = dir.path().join("failed.jsonl").display(),
    );
    run_pipeline(dir.path(), &yaml);
    assert_eq!(
        read_jsonl(&dir.path().join("kept.jsonl")),
        vec![json!({"id": 1}), json!({"id": 2})]
    );
    let failed = read_jsonl(&dir.path().join("failed.jsonl"));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["_error"]["line"], json!(3));
    assert_eq!(failed[0]["_raw"], json!("\u{feff}{\"id\":3}"));
}
