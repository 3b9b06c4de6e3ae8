//! `#[derive(ConfigSchema)]` from outside the SDK, as a rule crate uses it: the schema it
//! writes accepts what serde accepts (names, renames, defaults, optional fields) and says
//! what the doc comments and `#[config(…)]` bounds say.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use stagecraft_sdk::config_schema::to_json;
use stagecraft_sdk::ConfigSchema;

/// How to score leads.
#[derive(Deserialize, ConfigSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Config {
    /// Score at which a lead qualifies.
    ///
    /// Inclusive.
    #[config(minimum = -5, maximum = 100)]
    threshold: i64,
    /// Who to notify.
    notify: Option<String>,
    #[serde(default)]
    team: Vec<String>,
    #[serde(rename = "assign-mode")]
    mode: Assign,
    weights: BTreeMap<String, f64>,
    escalation: Escalation,
    #[serde(skip)]
    cache: Vec<u8>,
    r#type: bool,
}

#[derive(Deserialize, ConfigSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Assign {
    RoundRobin,
    LeastBusy,
    #[serde(rename = "nobody")]
    Off,
}

#[derive(Deserialize, ConfigSchema, Default)]
#[serde(default, rename_all = "camelCase")]
#[allow(dead_code)]
struct Escalation {
    after_hours: u32,
    to_user: Option<String>,
}

#[test]
fn the_schema_follows_serde_and_the_docs() {
    let s: Value = serde_json::from_str(&to_json::<Config>()).unwrap();
    assert_eq!(s["description"], "How to score leads.");
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(
        s["required"],
        json!(["threshold", "assign-mode", "weights", "escalation", "type"])
    );
    let p = &s["properties"];
    assert_eq!(
        p["threshold"],
        json!({"description": "Score at which a lead qualifies.\n\nInclusive.",
               "type": "integer", "minimum": -5, "maximum": 100})
    );
    assert_eq!(
        p["notify"],
        json!({"description": "Who to notify.", "type": "string"})
    );
    assert_eq!(
        p["team"],
        json!({"type": "array", "items": {"type": "string"}})
    );
    assert_eq!(
        p["assign-mode"],
        json!({"type": "string", "enum": ["round_robin", "least_busy", "nobody"]})
    );
    assert_eq!(
        p["weights"],
        json!({"type": "object", "additionalProperties": {"type": "number"}})
    );
    assert_eq!(
        p["escalation"],
        json!({"type": "object", "properties": {
            "afterHours": {"type": "integer", "minimum": 0},
            "toUser": {"type": "string"}}, "required": []})
    );
    assert!(
        p.get("cache").is_none(),
        "skipped fields are not configurable"
    );
    assert_eq!(p["type"], json!({"type": "boolean"}));
}

// The export compiles for the host too (the section is only placed on wasm targets).
stagecraft_sdk::export_config_schema!(Config);
