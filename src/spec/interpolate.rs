//! `${VAR}` and `${VAR:-default}` in string values, taken from the environment.
//!
//! Interpolation works on parsed values, never on the raw text, so a variable
//! can never inject YAML structure. `$${` writes a literal `${`. A value that is
//! exactly one reference takes the type its text has in YAML (`${PORT}` → 9092).

use serde_json::Value;

use super::source::escape_segment;

/// A variable that is unset and has no default, at the pointer of the value naming it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unset {
    pub pointer: String,
    pub name: String,
}

/// Replaces references in every string of `value`, reporting each unset variable.
pub fn interpolate(value: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Unset> {
    let mut unset = Vec::new();
    walk(value, String::new(), lookup, &mut unset);
    unset
}

fn walk(value: &mut Value, pointer: String, lookup: &dyn Fn(&str) -> Option<String>, unset: &mut Vec<Unset>) {
    match value {
        Value::String(s) if s.contains('$') => {
            let (text, missing, whole) = expand(s, lookup);
            unset.extend(missing.into_iter().map(|name| Unset {
                pointer: pointer.clone(),
                name,
            }));
            *value = if whole { typed(text) } else { Value::String(text) };
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{pointer}/{i}"), lookup, unset);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk(v, format!("{pointer}/{}", escape_segment(k)), lookup, unset);
            }
        }
        _ => {}
    }
}

/// The YAML type of a scalar's text: numbers and booleans become such, the rest stays a string.
fn typed(text: String) -> Value {
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(text),
    }
}

/// Expands one string: the result, the unset names, and whether the string was one whole reference.
fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> (String, Vec<String>, bool) {
    let mut out = String::with_capacity(s.len());
    let mut missing = Vec::new();
    let mut rest = s;
    let mut references = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body_start) = tail.strip_prefix("${") {
            let Some(end) = body_start.find('}') else {
                out.push_str(tail);
                rest = "";
                break;
            };
            let body = &body_start[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            references += 1;
            match lookup(name).filter(|v| !(v.is_empty() && default.is_some())) {
                Some(v) => out.push_str(&v),
                None => match default {
                    Some(d) => out.push_str(d),
                    None => missing.push(name.to_string()),
                },
            }
            rest = &body_start[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    let whole = references == 1 && s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
    (out, missing, whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "PORT" => Some("9092".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_types_and_escapes() {
        let mut v = json!({
            "a": "${HOST}:${PORT}",
            "b": "${PORT}",
            "c": ["${NOPE:-fallback}", "$${HOST}", "cost $5"],
            "d": "${EMPTY:-used}"
        });
        let unset = interpolate(&mut v, &env);
        assert!(unset.is_empty());
        assert_eq!(
            v,
            json!({"a": "db.local:9092", "b": 9092, "c": ["fallback", "${HOST}", "cost $5"], "d": "used"})
        );
    }

    #[test]
    fn reports_unset_variables_with_their_pointer() {
        let mut v = json!({"x": {"y": ["ok", "${MISSING}/${ALSO}"]}});
        let unset = interpolate(&mut v, &env);
        assert_eq!(
            unset,
            vec![
                Unset {
                    pointer: "/x/y/1".into(),
                    name: "MISSING".into()
                },
                Unset {
                    pointer: "/x/y/1".into(),
                    name: "ALSO".into()
                },
            ]
        );
    }
}
