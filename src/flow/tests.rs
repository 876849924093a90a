//! Records survive the trip through columns: what goes in as JSON comes out as the same JSON.

use arrow_array::BooleanArray;
use serde_json::{json, Value as J};

use super::json::{decode_into, decode_object, write_lines};
use super::*;

fn decoded(lines: &[&str]) -> Batch {
    let mut b = BatchBuilder::default();
    for line in lines {
        decode_into(line.as_bytes(), &mut b).expect("an object");
    }
    let batch = b.finish();
    // Both decoders read the same records.
    let mut general = BatchBuilder::default();
    for line in lines {
        general.push_fields(&decode_object(line.as_bytes()).expect("an object"));
    }
    assert_eq!(batch.records(), general.finish().records());
    batch
}

fn text(batch: &Batch) -> Vec<String> {
    let mut out = Vec::new();
    write_lines(batch, &mut out);
    String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(String::from)
        .collect()
}

/// The records written from their columns: the same batch without the texts it was read from.
fn columns_text(batch: &Batch) -> Vec<String> {
    text(&Batch::new(batch.len(), batch.fields().to_vec()))
}

/// Lines whose records differ in every way a stream's records do.
const MIXED: &[&str] = &[
    r#"{"id":1,"price":350000.5,"city":"Kent","tags":["a","b"],"geo":{"lat":47.1,"lon":-122.2},"ok":true}"#,
    r#"{"id":2,"price":null,"city":"Renton","geo":{"lat":47.5},"note":"only here"}"#,
    r#"{"id":"three","price":410000.25,"geo":"unknown","ok":false,"big":18446744073709551615}"#,
    r#"{"id":4,"price":1e21,"city":"Auburn \"north\"\n","empty":{},"list":[]}"#,
];

#[test]
fn heterogeneous_records_read_back_exactly_as_written() {
    let batch = decoded(MIXED);
    assert_eq!(batch.len(), 4);
    for (i, line) in MIXED.iter().enumerate() {
        let expected: J = serde_json::from_str(line).expect("JSON");
        assert_eq!(J::Object(batch.record(i)), expected, "record {i}");
    }
    // Nothing changed: written back, each record is its own text.
    assert_eq!(text(&batch), MIXED);
    // Written from its columns, each line is what serde_json writes for the same object.
    let written = columns_text(&batch);
    for (line, out) in MIXED.iter().zip(&written) {
        let expected: J = serde_json::from_str(line).expect("JSON");
        assert_eq!(out, &expected.to_string());
    }
}

#[test]
fn a_missing_field_and_an_explicit_null_stay_different() {
    let batch = decoded(&[r#"{"a":1,"b":null}"#, r#"{"a":2}"#]);
    let b = batch.column("b").expect("b");
    assert_eq!(b.get(0), Value::Null);
    assert_eq!(b.get(1), Value::Absent);
    assert_eq!(text(&batch), vec![r#"{"a":1,"b":null}"#, r#"{"a":2}"#]);
}

#[test]
fn integers_and_fractions_in_one_field_keep_their_values() {
    let batch = decoded(&[r#"{"x":3}"#, r#"{"x":2.5}"#, r#"{"x":-7}"#]);
    let x = batch.column("x").expect("x");
    assert!(matches!(x.typed(), Typed::Float(_)), "one numeric column");
    assert_eq!(text(&batch), vec![r#"{"x":3}"#, r#"{"x":2.5}"#, r#"{"x":-7}"#]);
    // Integers too large for a float stay exact, beside the fractions.
    let batch = decoded(&[r#"{"x":2.5}"#, r#"{"x":9007199254740993}"#]);
    assert_eq!(text(&batch), vec![r#"{"x":2.5}"#, r#"{"x":9007199254740993}"#]);
    let batch = decoded(&[r#"{"x":9007199254740993}"#, r#"{"x":2.5}"#]);
    assert_eq!(text(&batch), vec![r#"{"x":9007199254740993}"#, r#"{"x":2.5}"#]);
}

#[test]
fn records_listing_their_fields_in_another_order_keep_every_value() {
    let batch = decoded(&[r#"{"a":1,"b":2}"#, r#"{"b":3,"a":4}"#]);
    assert_eq!(J::Object(batch.record(1)), json!({"a": 4, "b": 3}));
    // Written from its columns, one batch writes its fields in one order: the first record's.
    assert_eq!(columns_text(&batch)[1], r#"{"a":4,"b":3}"#);
    // Unchanged, each record is its own text.
    assert_eq!(text(&batch)[1], r#"{"b":3,"a":4}"#);
}

#[test]
fn a_key_given_twice_keeps_its_last_value() {
    let batch = decoded(&[r#"{"a":1,"b":2,"a":3}"#]);
    assert_eq!(J::Object(batch.record(0)), json!({"a": 3, "b": 2}));
}

#[test]
fn not_an_object_is_refused_with_the_reason() {
    assert!(decode_object(b"[1]").unwrap_err().contains("found an array"));
    assert!(decode_object(b"{\"a\":").unwrap_err().starts_with("bad JSON"));
    assert!(decode_object(b"{} {}").unwrap_err().starts_with("bad JSON"));
    assert!(decode_object(b"  {\"a\":1}\n").is_ok());
}

#[test]
fn filter_take_slice_and_concat_keep_each_record_whole() {
    let batch = decoded(MIXED);
    let records = batch.records();
    let keep = BooleanArray::from(vec![true, false, true, false]);
    let (kept, rest) = batch.split(&keep);
    assert_eq!(kept.records(), vec![records[0].clone(), records[2].clone()]);
    assert_eq!(rest.records(), vec![records[1].clone(), records[3].clone()]);
    assert_eq!(
        batch.pick(&[3, 0]).records(),
        vec![records[3].clone(), records[0].clone()]
    );
    assert_eq!(batch.slice(1, 2).records(), records[1..3].to_vec());
    // Joining batches whose fields differ in presence and in type.
    let other = decoded(&[r#"{"id":5.5,"geo":{"alt":3},"extra":[1]}"#, r#"{"ok":"yes"}"#]);
    let joined = Batch::concat(&[batch.clone(), other.clone(), rest.clone()]);
    let mut expected = records.clone();
    expected.extend(other.records());
    expected.extend(rest.records());
    assert_eq!(joined.records(), expected);
    let mut split = joined.clone();
    let tail = split.split_off(4);
    assert_eq!(split.records(), records);
    assert_eq!(tail.len(), 4);
}

#[test]
fn a_column_set_on_every_record_replaces_the_field() {
    let mut batch = decoded(&[r#"{"a":1,"b":"x"}"#, r#"{"b":"y"}"#]);
    batch.set("a", Column::repeated("z", 2));
    batch.set("c", Column::floats(vec![1.5, 2.0].into()));
    assert_eq!(
        text(&batch),
        vec![r#"{"a":"z","b":"x","c":1.5}"#, r#"{"a":"z","b":"y","c":2.0}"#]
    );
}

#[test]
fn records_from_json_objects_round_trip() {
    let records: Vec<_> = MIXED
        .iter()
        .map(|l| {
            serde_json::from_str::<J>(l)
                .expect("JSON")
                .as_object()
                .cloned()
                .expect("object")
        })
        .collect();
    let batch = Batch::from_records(&records);
    assert_eq!(batch.records(), records);
}

#[test]
fn a_null_index_picks_a_record_without_the_fields() {
    let batch = decoded(&[r#"{"a":1,"o":{"x":1},"s":"t"}"#, r#"{"a":2,"o":{"x":2},"s":"u"}"#]);
    let indices = arrow_array::UInt32Array::from(vec![Some(1), None, Some(0)]);
    let picked = batch.take(&indices);
    assert_eq!(
        text(&picked),
        vec![r#"{"a":2,"o":{"x":2},"s":"u"}"#, "{}", r#"{"a":1,"o":{"x":1},"s":"t"}"#]
    );
}

#[test]
fn a_whole_float_beside_integers_stays_a_float_and_an_integer_an_integer() {
    let batch = decoded(&[
        r#"{"x":1}"#,
        r#"{"x":2.0}"#,
        r#"{"x":-0.0}"#,
        r#"{"x":2.5}"#,
        r#"{"x":-9223372036854775808}"#,
    ]);
    assert_eq!(
        text(&batch),
        vec![
            r#"{"x":1}"#,
            r#"{"x":2.0}"#,
            r#"{"x":-0.0}"#,
            r#"{"x":2.5}"#,
            r#"{"x":-9223372036854775808}"#
        ]
    );
    // And across batches joined together, whatever each held.
    let floats = decoded(&[r#"{"x":3.0}"#]);
    let joined = Batch::concat(&[floats, batch.clone()]);
    assert_eq!(text(&joined)[0], r#"{"x":3.0}"#);
    assert_eq!(text(&joined)[1..], text(&batch)[..]);
    assert_eq!(text(&joined.slice(2, 2)), vec![r#"{"x":2.0}"#, r#"{"x":-0.0}"#]);
}

#[test]
fn a_nested_object_kept_as_text_keeps_the_last_value_of_a_repeated_key() {
    let batch = decoded(&[r#"{"geo":"x"}"#, r#"{"geo":{"a":1,"b":0,"a":2}}"#]);
    // A record with a key given twice is written from its columns, never as its text.
    assert_eq!(text(&batch), vec![r#"{"geo":"x"}"#, r#"{"geo":{"a":2,"b":0}}"#]);
}

#[test]
fn objects_used_as_maps_do_not_widen_their_column_without_end() {
    let lines: Vec<String> = (0..200).map(|i| format!(r#"{{"m":{{"k{i}":{i}}}}}"#)).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let batch = decoded(&refs);
    assert_eq!(text(&batch), lines, "every record reads back as written");
    match batch.column("m").expect("m").typed() {
        Typed::Object(fields, _) => assert!(fields.fields().len() <= 64, "{}", fields.fields().len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_line_that_breaks_off_adds_nothing_and_its_neighbours_stay_whole() {
    let mut b = BatchBuilder::default();
    decode_into(br#"{"a":1,"o":{"x":1}}"#, &mut b).expect("a record");
    for bad in [
        &br#"{"a":2,"o":{"x":"#[..],
        br#"{"a":3,"b":[1,"#,
        br#"{"a":4} {"#,
        br#"[1,2]"#,
        br#"{"a":5,"a":"#,
    ] {
        let reason = decode_into(bad, &mut b).expect_err("not a record");
        assert!(
            reason.starts_with("bad JSON") || reason.contains("JSON object"),
            "{reason}"
        );
    }
    decode_into(br#"{"a":6,"o":{"x":6},"a":7}"#, &mut b).expect("a record");
    assert_eq!(b.len(), 2);
    let batch = b.finish();
    assert_eq!(text(&batch), vec![r#"{"a":1,"o":{"x":1}}"#, r#"{"a":7,"o":{"x":6}}"#]);
    assert!(decode_into(b"[1]", &mut BatchBuilder::default())
        .unwrap_err()
        .contains("found an array"));
}

#[test]
fn integer_ranges_keep_only_integers_a_float_holds_exactly() {
    use super::column::exact_integers_within;
    assert_eq!(exact_integers_within(0.5, 7.5), (1, 7));
    assert_eq!(exact_integers_within(-2.0, -2.0), (-2, -2));
    assert_eq!(
        exact_integers_within(f64::NEG_INFINITY, f64::INFINITY),
        (-(1 << 53), 1 << 53)
    );
    let (lo, hi) = exact_integers_within(1e300, f64::INFINITY);
    assert!(lo > hi, "nothing above 2^53 is exact");
    let (lo, hi) = exact_integers_within(2.5, 2.6);
    assert!(lo > hi, "no integer between");
}

#[test]
fn marks_are_set_only_for_rows_with_a_value_that_fails() {
    use super::column::{mark_values, marked};
    let a = arrow_array::Int64Array::from(vec![Some(1), None, Some(9), Some(3)]);
    let mut marks = vec![false, false, false, true];
    mark_values(&a, &mut marks, |v| v > 2);
    assert_eq!(marked(&marks).collect::<Vec<_>>(), vec![2, 3]);
    let column = Column::ints(a);
    let mut missing = vec![false; 4];
    column.mark_untyped(&mut missing);
    assert_eq!(missing, vec![false, true, false, false]);
}

#[test]
fn a_text_column_reads_back_each_string_and_slices_and_joins_like_any_other() {
    let mut texts = TextColumn::with_capacity(2, 4);
    let values = ["", "Seattle", "Łódź ☃", "", "WA 98103"];
    for v in values {
        assert!(texts.push(v));
    }
    assert_eq!(texts.len(), values.len());
    let column = texts.finish();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(column.get(i), Value::Str(v));
    }
    let mut general = ColumnBuilder::default();
    values.iter().for_each(|v| general.push_str(v));
    let batch = Batch::new(
        values.len(),
        vec![Field {
            name: "city".into(),
            column,
        }],
    );
    let same = Batch::new(
        values.len(),
        vec![Field {
            name: "city".into(),
            column: general.finish(),
        }],
    );
    assert_eq!(text(&batch), text(&same));
    assert_eq!(text(&batch.slice(1, 3)), text(&same.slice(1, 3)));
    assert_eq!(
        Batch::concat(&[batch.slice(2, 3), same.slice(0, 2)]).records(),
        Batch::concat(&[same.slice(2, 3), batch.slice(0, 2)]).records()
    );
    // An empty one is a column of no rows.
    assert_eq!(TextColumn::default().finish().len(), 0);
}

#[test]
fn text_checked_once_for_utf8_reads_as_the_byte_parser_reads_it() {
    let lines = [
        r#"{"city":"Łódź ☃","note":"\u00e9\n\"q\"\\","n":1}"#,
        r#"{"city":"Seattle","note":"\ud83d\ude00","n":2.5}"#,
    ];
    let batch = decoded(&lines);
    assert_eq!(batch.record(0)["city"], json!("Łódź ☃"));
    assert_eq!(batch.record(0)["note"], json!("é\n\"q\"\\"));
    assert_eq!(batch.record(1)["note"], json!("😀"));
    assert_eq!(
        columns_text(&batch),
        lines.map(|l| serde_json::to_string(&serde_json::from_str::<J>(l).unwrap()).unwrap())
    );
    assert_eq!(text(&batch), lines);
    // Text that is not UTF-8 is refused, and the batch leaves it out.
    let mut b = BatchBuilder::default();
    decode_into(br#"{"n":3}"#, &mut b).expect("an object");
    let bad = decode_into(b"{\"city\":\"\xff\xfe\",\"n\":4}", &mut b).expect_err("not UTF-8");
    assert!(bad.starts_with("bad JSON"), "{bad}");
    let b = b.finish();
    assert_eq!(b.len(), 1);
    assert_eq!(b.record(0)["n"], json!(3));
}

#[test]
fn records_written_a_column_kind_at_a_time_read_as_written_one_value_at_a_time() {
    // Plain columns with gaps (ints, floats, bools, strings needing escapes), columns that are
    // not plain (integers among fractions, a string among numbers, nulls, lists, objects), a
    // column no record has, and slices (whose buffers start inside the arrays).
    let lines = [
        r#"{"id":1,"price":1.5,"ok":true,"city":"Kent","n":3,"geo":{"lat":1.5},"t":-1.25,"b":true}"#,
        r#"{"id":2,"ok":false,"city":"a \"quoted\"\n\tline","n":2.5,"tags":[1,2],"t":0.1}"#,
        r#"{"price":-0.25,"city":"Ünïcode ☃","n":"many","geo":null,"x":null,"b":false}"#,
        r#"{"id":-4,"price":1e300,"ok":null,"n":-7,"geo":{"lon":2,"lat":3},"t":-3e-7}"#,
        r#"{"id":5,"price":2,"city":" ","n":9007199254740993,"t":1e22,"b":true,"pad":" x "}"#,
    ];
    let batch = decoded(&lines);
    // This is about the writer of columns: the texts the records were read from go.
    let mut batch = Batch::new(batch.len(), batch.fields().to_vec());
    for plain in ["id", "t", "b", "city"] {
        assert!(
            batch.column(plain).and_then(Column::plain).is_some(),
            "{plain} is plain"
        );
    }
    batch.set("nobody", Column::absent(batch.len()));
    let general = |b: &Batch| -> Vec<String> {
        (0..b.len())
            .map(|i| String::from_utf8(json::record_text(b, i)).expect("UTF-8"))
            .collect()
    };
    let mut texts = json::RecordTexts::default();
    for (offset, len) in [(0, 5), (1, 3), (2, 3), (4, 1), (0, 0)] {
        let part = batch.slice(offset, len);
        let expected = general(&part);
        assert_eq!(text(&part), expected, "rows {offset}..{}", offset + len);
        // The same texts for a producer, in a buffer filled again for each batch.
        texts.fill(&part);
        let got: Vec<String> = (0..texts.len())
            .map(|i| String::from_utf8(texts.get(i).to_vec()).expect("UTF-8"))
            .collect();
        assert_eq!(got, expected);
        // And each is what serde_json writes for the record.
        for (i, line) in got.iter().enumerate() {
            assert_eq!(line, &J::Object(part.record(i)).to_string());
        }
    }
}

#[test]
fn marked_rows_are_listed_in_order_and_none_when_nothing_is_marked() {
    assert_eq!(marked(&[false; 300]).count(), 0);
    assert_eq!(marked(&[]).count(), 0);
    let mut marks = vec![false; 300];
    for i in [0, 64, 65, 299] {
        marks[i] = true;
    }
    assert_eq!(marked(&marks).collect::<Vec<_>>(), vec![0, 64, 65, 299]);
}

/// Each record's text as written, read back: it must say exactly what the batch holds.
fn written_reads_as_held(batch: &Batch, what: &str) {
    let lines = text(batch);
    assert_eq!(lines.len(), batch.len(), "{what}: one line a record");
    for (i, line) in lines.iter().enumerate() {
        let read: J = serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: row {i}: {e}: {line}"));
        assert_eq!(read, J::Object(batch.record(i)), "{what}: row {i}: {line}");
    }
}

#[test]
fn a_record_read_from_text_is_written_as_that_text_with_the_fields_added_since() {
    let lines = [
        r#"{"a": 1, "b" : "x y",  "n":1.50}"#,
        r#"  { }  "#,
        r#"{"big":123456789012345678901234567890}"#,
    ];
    let mut batch = decoded(&lines);
    // Unchanged: the text itself, spaces and number spelling included.
    assert_eq!(
        text(&batch),
        vec![lines[0], "{ }", r#"{"big":123456789012345678901234567890}"#]
    );
    batch.set("p", Column::ints(vec![7, 8, 9].into()));
    batch.set(
        "_model",
        Column::same(&Owned::Object(vec![("v".into(), Owned::Str("2".into()))]), 3),
    );
    assert_eq!(
        text(&batch),
        vec![
            r#"{"a": 1, "b" : "x y",  "n":1.50,"p":7,"_model":{"v":"2"}}"#,
            r#"{ "p":8,"_model":{"v":"2"}}"#,
            r#"{"big":123456789012345678901234567890,"p":9,"_model":{"v":"2"}}"#,
        ]
    );
    written_reads_as_held(&batch, "fields added");
    // A field added and then taken away again is not written.
    batch.remove("p");
    assert_eq!(
        text(&batch)[0],
        r#"{"a": 1, "b" : "x y",  "n":1.50,"_model":{"v":"2"}}"#
    );
}

#[test]
fn a_field_read_from_the_text_that_changes_has_the_records_written_from_their_columns() {
    let lines = [r#"{"a": 1, "b": 2}"#, r#"{"a": 3}"#];
    let mut set = decoded(&lines);
    set.set("a", Column::ints(vec![10, 30].into()));
    assert_eq!(text(&set), vec![r#"{"a":10,"b":2}"#, r#"{"a":30}"#]);
    let mut removed = decoded(&lines);
    removed.remove("b");
    assert_eq!(text(&removed), vec![r#"{"a":1}"#, r#"{"a":3}"#]);
    let mut overlaid = decoded(&lines);
    overlaid.overlay("b", Column::ints(vec![None, Some(5)].into()));
    assert_eq!(text(&overlaid), vec![r#"{"a":1,"b":2}"#, r#"{"a":3,"b":5}"#]);
    // A field only another record gave is still one read from the texts.
    let mut other = decoded(&lines);
    other.set("b", Column::ints(vec![None, Some(4)].into()));
    assert_eq!(text(&other), vec![r#"{"a":1}"#, r#"{"a":3,"b":4}"#]);
    // Joined: one part read `b` from its texts, the other set it itself.
    let read = decoded(&[r#"{"a": 5, "b": 6}"#]);
    let mut made = decoded(&[r#"{"a": 7}"#]);
    made.set("b", Column::ints(vec![8].into()));
    let joined = Batch::concat(&[read.clone(), made.clone()]);
    assert_eq!(text(&joined), vec![r#"{"a":5,"b":6}"#, r#"{"a":7,"b":8}"#]);
    let joined = Batch::concat(&[made, read]);
    assert_eq!(text(&joined), vec![r#"{"a":7,"b":8}"#, r#"{"a":5,"b":6}"#]);
}

#[test]
fn text_that_is_not_one_line_or_gives_a_key_twice_is_not_copied() {
    let batch = decoded(&[
        "{\n  \"a\": 1,\r\n  \"b\": [1, 2]\n}",
        r#"{"l":[{"k":1,"k":2}],"m":3}"#,
        r#"{"o":{"p":1,"p":2}}"#,
    ]);
    assert_eq!(
        text(&batch),
        vec![r#"{"a":1,"b":[1,2]}"#, r#"{"l":[{"k":2}],"m":3}"#, r#"{"o":{"p":2}}"#]
    );
    written_reads_as_held(&batch, "not copied");
}

#[test]
fn records_keep_their_texts_through_filters_picks_slices_and_joins() {
    // A small generator of the same sequence every run.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let shapes: [fn(usize) -> String; 4] = [
        |i| format!(r#"{{"id": {i}, "city": "c{i}", "x": {}.5}}"#, i % 3),
        |i| format!(r#"{{"city":"d{i}","id":{i},"tags":[{i}],"geo":{{"lat":{i}}}}}"#),
        |i| format!(r#"{{"id":"s{i}"}}"#),
        |i| format!(r#"{{"p":{i},"id":{i}}}"#),
    ];
    for round in 0..200 {
        let mut batches: Vec<Batch> = (0..3)
            .map(|_| {
                let n = 1 + next(6);
                let lines: Vec<String> = (0..n).map(|i| shapes[next(4)](round * 100 + i)).collect();
                decoded(&lines.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        // A batch that never had texts.
        batches.push(Batch::from_records(&[json!({"id": 99, "p": "made"})
            .as_object()
            .unwrap()
            .clone()]));
        let mut ops = Vec::new();
        for _ in 0..6 {
            let k = next(batches.len());
            let b = &mut batches[k];
            let n = b.len();
            match next(7) {
                0 => {
                    ops.push(format!("{k}: set p"));
                    b.set("p", Column::ints((0..n as i64).collect::<Vec<_>>().into()));
                }
                1 => {
                    ops.push(format!("{k}: set id"));
                    b.set("id", Column::repeated("new", n));
                }
                2 => {
                    ops.push(format!("{k}: remove city"));
                    b.remove("city");
                }
                3 => {
                    let keep: Vec<bool> = (0..n).map(|_| next(2) == 0).collect();
                    ops.push(format!("{k}: filter {keep:?}"));
                    *b = b.filter(&BooleanArray::from(keep));
                }
                4 if n > 0 => {
                    let (at, len) = (next(n), next(n));
                    let len = len.min(n - at);
                    ops.push(format!("{k}: slice {at} {len}"));
                    *b = b.slice(at, len);
                }
                5 if n > 0 => {
                    let rows: Vec<usize> = (0..next(2 * n)).map(|_| next(n)).collect();
                    ops.push(format!("{k}: pick {rows:?}"));
                    *b = b.pick(&rows);
                }
                _ => {
                    let j = next(batches.len());
                    ops.push(format!("{k}: join {j}"));
                    batches[k] = Batch::concat(&[batches[k].clone(), batches[j].clone()]);
                }
            }
            for (i, b) in batches.iter().enumerate() {
                written_reads_as_held(b, &format!("round {round}, batch {i} after {ops:?}"));
            }
        }
    }
}

#[test]
fn a_producers_texts_are_the_lines_written() {
    let mut batch = decoded(MIXED);
    batch.set("p", Column::ints((0..4).collect::<Vec<i64>>().into()));
    let mut texts = json::RecordTexts::default();
    texts.fill(&batch);
    let got: Vec<String> = (0..texts.len())
        .map(|i| String::from_utf8(texts.get(i).to_vec()).expect("UTF-8"))
        .collect();
    assert_eq!(got, text(&batch));
    assert!(got[0].starts_with(MIXED[0].strip_suffix('}').unwrap()), "{}", got[0]);
}

#[test]
fn field_names_are_the_same_only_when_every_byte_is() {
    use super::batch::same_name;
    for n in 0..40 {
        let name: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        assert!(same_name(&name, &name.clone()), "{name}");
        // One byte changed, wherever it is: the first word, the overlap, the last word.
        for at in 0..n {
            let mut other = name.clone().into_bytes();
            other[at] = b'Z';
            let other = String::from_utf8(other).expect("ASCII");
            assert!(!same_name(&name, &other), "{name} {other}");
        }
        // A name that is a prefix of the other.
        assert!(!same_name(&name, &format!("{name}x")));
        assert!(!same_name(&format!("{name}x"), &name));
    }
    assert!(same_name("é", "é"));
    assert!(!same_name("é", "è"));
}
