//! Whether the records one outlet declares fit what the inlet it feeds declares it needs.

use serde_json::Value;

/// JSON types a schema allows for a property; `integer` is also a `number`.
fn types(property: &Value) -> Option<Vec<String>> {
    match property.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).map(str::to_string).collect()),
        _ => None,
    }
}

fn accepts_type(inlet: &[String], t: &str) -> bool {
    inlet.iter().any(|i| i == t || (i == "number" && t == "integer"))
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Reasons why records valid under `outlet` may be invalid under `inlet`:
/// fields the inlet requires that the outlet does not guarantee, and fields whose
/// declared types do not fit. Empty when compatible (as far as declared).
pub fn incompatibilities(outlet: &Value, inlet: &Value) -> Vec<String> {
    let guaranteed = required(outlet);
    let mut reasons: Vec<String> = required(inlet)
        .into_iter()
        .filter(|f| !guaranteed.contains(f))
        .map(|f| format!("`{f}` is required downstream but not guaranteed upstream"))
        .collect();
    let (Some(out_props), Some(in_props)) = (
        outlet.get("properties").and_then(Value::as_object),
        inlet.get("properties").and_then(Value::as_object),
    ) else {
        return reasons;
    };
    for (field, in_prop) in in_props {
        let (Some(out_types), Some(in_types)) = (out_props.get(field).and_then(types), types(in_prop)) else {
            continue;
        };
        if let Some(bad) = out_types.iter().find(|t| !accepts_type(&in_types, t)) {
            reasons.push(format!(
                "`{field}` may be {bad} upstream but must be {} downstream",
                in_types.join(" or ")
            ));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_fits_number_and_guaranteed_fields_fit() {
        let outlet = json!({"required": ["a", "b"], "properties": {"a": {"type": "integer"}}});
        let inlet = json!({"required": ["a"], "properties": {"a": {"type": "number"}}});
        assert!(incompatibilities(&outlet, &inlet).is_empty());
    }

    #[test]
    fn missing_guarantee_and_type_mismatch_are_reported() {
        let outlet = json!({"required": ["a"], "properties": {"a": {"type": ["string", "null"]}}});
        let inlet = json!({"required": ["a", "b"], "properties": {"a": {"type": "string"}}});
        let reasons = incompatibilities(&outlet, &inlet);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("`b`"));
        assert!(reasons[1].contains("null"));
    }
}
