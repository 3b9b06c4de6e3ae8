//! A module version's config schema: the JSON Schema it declares for its binding config
//! (custom section `stagecraft:config-schema`), checked at upload and used to refuse binding
//! configs that do not match it, naming the JSON path of each problem.
//!
//! Schemas are compiled with `boon` (drafts 4 to 2020-12, 2020-12 when `$schema` says
//! nothing) and can never load anything: every `$ref` must point inside the schema itself, so
//! a schema cannot make the host read a file or open a connection.

use boon::{Compiler, Draft, ErrorKind, Schemas, UrlLoader, ValidationError};
use serde_json::Value;

/// Where the schema is registered while compiling (never fetched).
const LOCATION: &str = "urn:stagecraft:config-schema";

/// Refuses every URL a `$ref` or `$schema` would load (the standard metaschemas are built
/// into boon and never reach a loader).
struct NoLoader;

impl UrlLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(
            format!("{url} is outside the schema; only references within it (\"#/…\") are allowed")
                .into(),
        )
    }
}

fn compile(schema: &Value) -> Result<(Schemas, boon::SchemaIndex), String> {
    let mut schemas = Schemas::new();
    let mut c = Compiler::new();
    c.set_default_draft(Draft::V2020_12);
    c.use_loader(Box::new(NoLoader));
    c.add_resource(LOCATION, schema.clone())
        .map_err(|e| format!("{e:#}"))?;
    let index = c
        .compile(LOCATION, &mut schemas)
        .map_err(|e| format!("{e:#}"))?;
    Ok((schemas, index))
}

/// Parses and compiles an uploaded schema. The error says what is wrong, for a person.
pub fn check(bytes: &[u8]) -> Result<Value, String> {
    let schema: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("is not valid JSON: {e}"))?;
    if !schema.is_object() {
        return Err("must be a JSON object (a JSON Schema)".into());
    }
    compile(&schema).map_err(|e| format!("is not a usable JSON Schema: {e}"))?;
    Ok(schema)
}

/// Checks a binding's `config` against its version's schema. The error names the JSON path
/// (a JSON Pointer into the config) of each problem, at most three.
pub fn validate(schema: &Value, config: &Value) -> Result<(), String> {
    let (schemas, index) = compile(schema)
        .map_err(|e| format!("the module version's config schema cannot be used: {e}"))?;
    let Err(error) = schemas.validate(config, index) else {
        return Ok(());
    };
    let mut problems = Vec::new();
    leaves(&error, &mut problems);
    problems.dedup();
    let total = problems.len();
    let mut text: Vec<String> = problems
        .into_iter()
        .take(3)
        .map(|(path, what)| format!("\"config\" at \"{path}\": {what}"))
        .collect();
    if total > 3 {
        text.push(format!("and {} more", total - 3));
    }
    Err(format!(
        "config does not match the module's schema: {}",
        text.join("; ")
    ))
}

/// The innermost errors, as (JSON Pointer, what is wrong). A missing or unexpected property
/// is reported at the property's own path.
fn leaves(e: &ValidationError, out: &mut Vec<(String, String)>) {
    if !e.causes.is_empty() {
        for c in &e.causes {
            leaves(c, out);
        }
        return;
    }
    let at = e.instance_location.to_string();
    let pointer = |name: &str| format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
    match &e.kind {
        ErrorKind::Required { want } => {
            for name in want {
                out.push((pointer(name), "is required".into()));
            }
        }
        ErrorKind::AdditionalProperties { got } => {
            for name in got {
                out.push((pointer(name), "is not a known setting".into()));
            }
        }
        kind => out.push((at, kind.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "threshold": {"type": "integer", "minimum": 0, "maximum": 100},
                "team": {"type": "array", "items": {"type": "string"}},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "nested": {"type": "object", "properties": {"x/y": {"type": "boolean"}}}
            },
            "required": ["threshold"],
            "additionalProperties": false
        })
    }

    #[test]
    fn a_matching_config_passes_and_problems_name_their_path() {
        let s = schema();
        validate(&s, &json!({"threshold": 5, "team": ["ann"], "mode": "a"})).unwrap();
        let e = validate(&s, &json!({"threshold": "high"})).unwrap_err();
        assert!(e.contains("\"config\" at \"/threshold\""), "{e}");
        assert!(e.contains("integer"), "{e}");
        let e = validate(&s, &json!({"threshold": 101, "team": ["ann", 3]})).unwrap_err();
        assert!(
            e.contains("\"/threshold\"") && e.contains("\"/team/1\""),
            "{e}"
        );
        let e = validate(&s, &json!({})).unwrap_err();
        assert!(e.contains("\"/threshold\": is required"), "{e}");
        let e = validate(&s, &json!({"threshold": 1, "colour": "red"})).unwrap_err();
        assert!(e.contains("\"/colour\": is not a known setting"), "{e}");
        let e = validate(&s, &json!({"threshold": 1, "nested": {"x/y": 1}})).unwrap_err();
        assert!(e.contains("\"/nested/x~1y\""), "{e}");
        let e = validate(&s, &json!({"threshold": 1, "mode": "c"})).unwrap_err();
        assert!(e.contains("\"/mode\""), "{e}");
    }

    #[test]
    fn bad_schemas_are_refused_at_upload() {
        check(serde_json::to_string(&schema()).unwrap().as_bytes()).unwrap();
        assert!(check(b"{nope").unwrap_err().contains("not valid JSON"));
        assert!(check(b"[1]").unwrap_err().contains("JSON object"));
        let e = check(br#"{"type": "strnig"}"#).unwrap_err();
        assert!(e.contains("not a usable JSON Schema"), "{e}");
        // Nothing outside the schema is ever loaded: not a file, not a URL.
        for r in [
            "file:///etc/passwd",
            "https://example.com/s.json",
            "other.json",
        ] {
            let e = check(json!({"$ref": r}).to_string().as_bytes()).unwrap_err();
            assert!(e.contains("not a usable JSON Schema"), "{r}: {e}");
        }
        // References within the schema work.
        let local = json!({"$defs": {"n": {"type": "integer"}},
                           "properties": {"a": {"$ref": "#/$defs/n"}}});
        let s = check(local.to_string().as_bytes()).unwrap();
        assert!(validate(&s, &json!({"a": "x"}))
            .unwrap_err()
            .contains("\"/a\""));
    }
}
