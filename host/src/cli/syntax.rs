//! The short textual forms flags take — `module@version`, triggers (`entered_stage:won+2d`),
//! grants (`field:score`), JSON objects — parsed into the API's JSON, so a typo is a usage
//! error naming the flag's value before anything is sent.

use std::str::FromStr;

use serde_json::{json, Map, Value};

/// `name@version`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleRef {
    pub name: String,
    pub version: u32,
}

impl FromStr for ModuleRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, version) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("{s:?} is not module@version (e.g. my-rule@2)"))?;
        let version = version
            .parse::<u32>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                format!("{s:?}: the version must be a number from 1 (e.g. my-rule@2)")
            })?;
        if name.is_empty() {
            return Err(format!("{s:?}: the module name is empty"));
        }
        Ok(ModuleRef {
            name: name.into(),
            version,
        })
    }
}

impl std::fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// One `--on` trigger, as the API's trigger JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerArg(pub Value);

impl FromStr for TriggerArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim_start().starts_with('{') {
            return json_object(s, "--on").map(TriggerArg);
        }
        let (spec, delay) = match s.rsplit_once('+') {
            Some((spec, d)) => (spec, Some(duration(d).map_err(|e| format!("{s:?}: {e}"))?)),
            None => (s, None),
        };
        let (kind, arg) = match spec.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (spec, None),
        };
        let mut t = match (kind, arg) {
            ("created" | "stage_changed" | "assigned" | "deleted", None) => json!({"on": kind}),
            ("updated", None) => json!({"on": "updated"}),
            ("updated", Some(fields)) => {
                let fields: Vec<&str> = fields.split(',').filter(|f| !f.is_empty()).collect();
                json!({"on": "updated", "fields": fields})
            }
            ("entered_stage" | "stage_entered", Some(stage)) if !stage.is_empty() => {
                json!({"on": "entered_stage", "stage": stage})
            }
            ("inbound", Some(name)) if !name.is_empty() => json!({"on": "inbound", "name": name}),
            ("entered_stage" | "stage_entered", _) => {
                return Err(format!("{s:?}: name the stage, e.g. entered_stage:qualified"))
            }
            ("inbound", _) => return Err(format!("{s:?}: name the event, e.g. inbound:form_submitted")),
            _ => {
                return Err(format!(
                    "{s:?} is not a trigger: use created, updated[:field,…], entered_stage:<stage>, \
                     stage_changed, assigned, deleted or inbound:<name>, optionally +<delay> (e.g. +2d)"
                ))
            }
        };
        if let (Some(d), Some(o)) = (delay, t.as_object_mut()) {
            o.insert("delay_seconds".into(), json!(d));
        }
        Ok(TriggerArg(t))
    }
}

/// `<n>[s|m|h|d]` in seconds (a bare number is seconds).
fn duration(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("delay {s:?} is not <n>[s|m|h|d]"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("delay {s:?} is not <n>[s|m|h|d]")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("delay {s:?} is too long"))
}

/// One `--grant`.
#[derive(Debug, Clone, PartialEq)]
pub enum GrantArg {
    Field(String),
    Channel(String),
    Backward,
}

impl FromStr for GrantArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("field", f)) if !f.is_empty() => Ok(GrantArg::Field(f.into())),
            Some(("channel", c @ ("email" | "sms" | "webhook" | "notify"))) => {
                Ok(GrantArg::Channel(c.into()))
            }
            Some(("channel", c)) => Err(format!(
                "{c:?} is not a channel: use email, sms, webhook or notify"
            )),
            None if s == "backward" => Ok(GrantArg::Backward),
            _ => Err(format!(
                "{s:?} is not a grant: use field:<name> (field:* for any), channel:<name> or backward"
            )),
        }
    }
}

/// The API's grants object for `grants`.
pub fn grants_json(grants: &[GrantArg]) -> Value {
    let mut fields = Vec::new();
    let mut channels = Vec::new();
    let mut backward = false;
    for g in grants {
        match g {
            GrantArg::Field(f) => fields.push(f.clone()),
            GrantArg::Channel(c) => channels.push(c.clone()),
            GrantArg::Backward => backward = true,
        }
    }
    json!({"fields": fields, "channels": channels, "backward": backward})
}

/// One `--field NAME=VALUE`: VALUE is JSON when it parses as JSON (`70`, `true`, `null`,
/// `["a"]`, `{"k": 1}`, `"007"`), text otherwise (`hot`, `Ada Lovelace`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldArg {
    pub name: String,
    pub value: Value,
    /// VALUE as typed.
    pub raw: String,
}

impl FromStr for FieldArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, raw) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not NAME=VALUE (e.g. score=70)"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("{s:?}: the field name is empty"));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw));
        Ok(FieldArg {
            name: name.into(),
            value,
            raw: raw.into(),
        })
    }
}

/// A flag's JSON object value.
pub fn json_object(s: &str, flag: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!("{flag}: expected a JSON object, got {s}")),
        Err(e) => Err(format!("{flag}: not valid JSON ({e})")),
    }
}

/// `--interval` seconds: 0.2 to 60.
pub fn poll_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.2..=60.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: the interval is seconds from 0.2 to 60")),
    }
}

/// Adds `key: value` to a JSON object when `value` is set.
pub fn put(body: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        body.insert(key.into(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_are_typed() {
        let f = |s: &str| s.parse::<FieldArg>().map(|f| (f.name, f.value));
        assert_eq!(f("score=70"), Ok(("score".into(), json!(70))));
        assert_eq!(f("ratio=0.5"), Ok(("ratio".into(), json!(0.5))));
        assert_eq!(f("vip=true"), Ok(("vip".into(), json!(true))));
        assert_eq!(f("gone=null"), Ok(("gone".into(), Value::Null)));
        assert_eq!(
            f(r#"tags=["a","b"]"#),
            Ok(("tags".into(), json!(["a", "b"])))
        );
        assert_eq!(f(r#"code="007""#), Ok(("code".into(), json!("007"))));
        assert_eq!(
            f("source=web form"),
            Ok(("source".into(), json!("web form")))
        );
        assert_eq!(f("note=a=b"), Ok(("note".into(), json!("a=b"))));
        assert_eq!(f("empty="), Ok(("empty".into(), json!(""))));
        assert!(f("score").is_err());
        assert!(f("=70").is_err());
    }

    #[test]
    fn module_refs() {
        assert_eq!(
            "my-rule@2".parse::<ModuleRef>(),
            Ok(ModuleRef {
                name: "my-rule".into(),
                version: 2
            })
        );
        assert!("my-rule".parse::<ModuleRef>().is_err());
        assert!("my-rule@0".parse::<ModuleRef>().is_err());
        assert!("my-rule@v2".parse::<ModuleRef>().is_err());
        assert!("@2".parse::<ModuleRef>().is_err());
    }

    #[test]
    fn triggers() {
        let t = |s: &str| s.parse::<TriggerArg>().map(|t| t.0);
        assert_eq!(t("created"), Ok(json!({"on": "created"})));
        assert_eq!(
            t("updated:score,owner"),
            Ok(json!({"on": "updated", "fields": ["score", "owner"]}))
        );
        assert_eq!(
            t("stage_entered:won+2d"),
            Ok(json!({"on": "entered_stage", "stage": "won", "delay_seconds": 172800}))
        );
        assert_eq!(
            t("inbound:form+90"),
            Ok(json!({"on": "inbound", "name": "form", "delay_seconds": 90}))
        );
        assert_eq!(t(r#"{"on":"deleted"}"#), Ok(json!({"on": "deleted"})));
        for bad in [
            "entered_stage",
            "inbound:",
            "moved",
            "created+2w",
            "created:x",
        ] {
            assert!(t(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn grants() {
        let g: Vec<GrantArg> = ["field:score", "channel:notify", "backward"]
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        assert_eq!(
            grants_json(&g),
            json!({"fields": ["score"], "channels": ["notify"], "backward": true})
        );
        assert!("channel:fax".parse::<GrantArg>().is_err());
        assert!("field:".parse::<GrantArg>().is_err());
        assert!("everything".parse::<GrantArg>().is_err());
    }
}
