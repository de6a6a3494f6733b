//! Params validation against OpenClaw's own JSON Schemas (`schemas/method-params.json`) for methods
//! whose params are large: the gateway accepts exactly what the protocol accepts, and reports the
//! first violation as `invalid params: at /path: reason`.
use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use homarus_protocol::ErrorShape;

static VALIDATORS: LazyLock<HashMap<String, jsonschema::Validator>> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(include_str!("../../schemas/method-params.json")).unwrap_or(Value::Null);
    let mut out = HashMap::new();
    if let Some(methods) = doc.get("methods").and_then(Value::as_object) {
        for (method, schema) in methods {
            match jsonschema::validator_for(schema) {
                Ok(v) => {
                    out.insert(method.clone(), v);
                }
                Err(e) => tracing::error!(%method, error = %e, "bundled params schema does not compile"),
            }
        }
    }
    out
});

/// Validate `params` (absent = `{}`) for `method`. Methods without a bundled schema pass.
pub fn validate(method: &str, params: &Value) -> Result<(), ErrorShape> {
    let Some(v) = VALIDATORS.get(method) else { return Ok(()) };
    match v.iter_errors(params).next() {
        None => Ok(()),
        Some(e) => {
            let at = e.instance_path.to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            Err(ErrorShape::invalid(format!("invalid params: at {at}: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_bundled_schema_compiles_and_rejects_unknown_fields() {
        for m in [
            "sessions.list",
            "sessions.describe",
            "sessions.create",
            "sessions.patch",
            "sessions.reset",
            "sessions.delete",
            "chat.history",
        ] {
            assert!(VALIDATORS.contains_key(m), "{m}");
        }
        assert!(validate("sessions.list", &json!({"limit": 5})).is_ok());
        let e = validate("sessions.list", &json!({"limit": "5"})).unwrap_err();
        assert!(e.message.starts_with("invalid params: at /limit:"), "{}", e.message);
        let e = validate("sessions.describe", &json!({})).unwrap_err();
        assert!(e.message.contains("\"key\" is a required property"), "{}", e.message);
        let e = validate("sessions.reset", &json!({"key": "k", "bogus": 1})).unwrap_err();
        assert!(e.message.contains("bogus"), "{}", e.message);
    }
}
