//! Binding config as a form, drawn from the module version's JSON Schema: text, number and
//! yes/no inputs, menus for enums, one line per item for arrays of strings, a fieldset for a
//! nested object (one level), and a small JSON box for anything else. Reading the form back
//! gives the config object the API validates; the API's 422 names JSON paths, which are
//! mapped back onto the inputs they concern. The JSON text area stays as the fallback.

use serde_json::{Map, Number, Value};

/// The form field names of config inputs start with this, then a JSON Pointer.
const PREFIX: &str = "cfg";

/// What kind of input a property gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Text,
    Integer,
    Number,
    Boolean,
    Choice(Vec<String>),
    /// An array of strings, one per line.
    Lines,
    /// Anything else, as JSON text.
    Json,
}

#[derive(Debug, Clone)]
pub struct Input {
    /// The form field name: `cfg` + the property's JSON Pointer.
    pub name: String,
    pub id: String,
    pub label: String,
    pub description: String,
    pub kind: Kind,
    pub required: bool,
    pub value: String,
    pub min: Option<String>,
    pub max: Option<String>,
    pub error: Option<String>,
}

impl Input {
    pub fn is_integer(&self) -> bool {
        self.kind == Kind::Integer
    }
    pub fn is_number(&self) -> bool {
        self.kind == Kind::Number
    }
    pub fn is_boolean(&self) -> bool {
        self.kind == Kind::Boolean
    }
    pub fn is_lines(&self) -> bool {
        self.kind == Kind::Lines
    }
    pub fn is_json(&self) -> bool {
        self.kind == Kind::Json
    }
    pub fn choices(&self) -> Vec<String> {
        match &self.kind {
            Kind::Choice(c) => c.clone(),
            _ => Vec::new(),
        }
    }
    pub fn is_choice(&self) -> bool {
        matches!(self.kind, Kind::Choice(_))
    }
    pub fn selected(&self, choice: &str) -> bool {
        self.value == choice
    }
}

/// A nested object's fieldset.
#[derive(Debug, Clone)]
pub struct Group {
    pub label: String,
    pub description: String,
    pub required: bool,
    pub error: Option<String>,
}

/// Consecutive inputs, in a fieldset when they belong to a nested object.
#[derive(Debug, Clone)]
pub struct Section {
    pub group: Option<Group>,
    pub inputs: Vec<Input>,
}

/// The form for a schema, or None when the schema is not an object with properties (then
/// only the JSON text area is offered).
#[derive(Debug, Clone)]
pub struct ConfigForm {
    pub sections: Vec<Section>,
    /// Problems the API named that no input shows.
    pub other_errors: Vec<String>,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// Follows local `$ref`s (a few hops at most).
fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..8 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with('#') => match root.pointer(&r[1..]) {
                Some(t) => s = t,
                None => return s,
            },
            _ => return s,
        }
    }
    s
}

/// The schema's type, ignoring `null` in a list of types.
fn type_of(s: &Value) -> Option<&str> {
    match s.get("type") {
        Some(Value::String(t)) => Some(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn kind_of(root: &Value, s: &Value) -> Kind {
    if let Some(Value::Array(values)) = s.get("enum") {
        if !values.is_empty() && values.iter().all(Value::is_string) {
            return Kind::Choice(
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            );
        }
    }
    match type_of(s) {
        Some("string") => Kind::Text,
        Some("integer") => Kind::Integer,
        Some("number") => Kind::Number,
        Some("boolean") => Kind::Boolean,
        Some("array") => {
            let items = resolve(root, s.get("items").unwrap_or(&Value::Null));
            match kind_of(root, items) {
                Kind::Text | Kind::Choice(_) => Kind::Lines,
                _ => Kind::Json,
            }
        }
        _ => Kind::Json,
    }
}

fn properties(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

fn required(s: &Value) -> Vec<String> {
    s.get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn bound(s: &Value, key: &str) -> Option<String> {
    s.get(key).and_then(|v| v.as_f64()).map(|v| {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{}", v as i64)
        } else {
            v.to_string()
        }
    })
}

/// How a current value shows in its input.
fn shown(kind: &Kind, v: Option<&Value>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    match (kind, v) {
        (_, Value::Null) => String::new(),
        (Kind::Text | Kind::Choice(_), Value::String(s)) => s.clone(),
        (Kind::Boolean, Value::Bool(b)) => b.to_string(),
        (Kind::Lines, Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        (Kind::Json, v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, v) => v.to_string(),
    }
}

struct Builder<'a> {
    root: &'a Value,
    n: usize,
}

impl Builder<'_> {
    fn input(
        &mut self,
        pointer: &str,
        key: &str,
        s: &Value,
        req: bool,
        v: Option<&Value>,
    ) -> Input {
        let s = resolve(self.root, s);
        let kind = kind_of(self.root, s);
        self.n += 1;
        Input {
            name: format!("{PREFIX}{pointer}"),
            id: format!("cfg-{}", self.n),
            label: key.to_string(),
            description: s
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            value: shown(&kind, v),
            min: bound(s, "minimum"),
            max: bound(s, "maximum"),
            kind,
            required: req,
            error: None,
        }
    }
}

impl ConfigForm {
    /// The form for `schema`, filled from `config`.
    pub fn build(schema: &Value, config: &Value) -> Option<ConfigForm> {
        let root = resolve(schema, schema);
        let props = properties(root)?;
        let req = required(root);
        let mut b = Builder { root: schema, n: 0 };
        let mut sections: Vec<Section> = Vec::new();
        for (key, prop) in props {
            let prop = resolve(schema, prop);
            let pointer = format!("/{}", escape(key));
            let current = config.get(key);
            let nested = type_of(prop) == Some("object") && properties(prop).is_some();
            if nested {
                let sub_req = required(prop);
                let inputs = properties(prop)
                    .into_iter()
                    .flatten()
                    .map(|(k, s)| {
                        b.input(
                            &format!("{pointer}/{}", escape(k)),
                            k,
                            s,
                            sub_req.contains(k),
                            current.and_then(|c| c.get(k)),
                        )
                    })
                    .collect();
                sections.push(Section {
                    group: Some(Group {
                        label: key.clone(),
                        description: prop
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        required: req.contains(key),
                        error: None,
                    }),
                    inputs,
                });
                continue;
            }
            let input = b.input(&pointer, key, prop, req.contains(key), current);
            match sections.last_mut() {
                Some(s) if s.group.is_none() => s.inputs.push(input),
                _ => sections.push(Section {
                    group: None,
                    inputs: vec![input],
                }),
            }
        }
        Some(ConfigForm {
            sections,
            other_errors: Vec::new(),
        })
    }

    fn inputs_mut(&mut self) -> impl Iterator<Item = &mut Input> {
        self.sections.iter_mut().flat_map(|s| s.inputs.iter_mut())
    }

    /// Shows what was typed (after a refusal), instead of the stored config.
    pub fn refill(&mut self, fields: &[(String, String)]) {
        for input in self.inputs_mut() {
            input.value = fields
                .iter()
                .find(|(k, _)| *k == input.name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
        }
    }

    /// Puts the problems of an API message (`"config" at "/a/b": …`) on the inputs they
    /// name; the rest go to `other_errors`.
    pub fn place_errors(&mut self, message: &str) {
        const MARK: &str = "\"config\" at \"";
        let mut parts = message.split(MARK).skip(1).peekable();
        if parts.peek().is_none() {
            return;
        }
        for part in parts {
            let Some((pointer, rest)) = part.split_once('"') else {
                continue;
            };
            let what = rest
                .trim_start_matches(':')
                .trim()
                .trim_end_matches(';')
                .trim()
                .to_string();
            let segs: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
            let mut placed = false;
            for depth in [2usize, 1] {
                if segs.len() < depth {
                    continue;
                }
                let name = format!(
                    "{PREFIX}/{}",
                    segs[..depth]
                        .iter()
                        .map(|s| escape(s))
                        .collect::<Vec<_>>()
                        .join("/")
                );
                if let Some(input) = self.inputs_mut().find(|i| i.name == name) {
                    input.error = Some(what.clone());
                    placed = true;
                    break;
                }
            }
            if !placed {
                if let Some(g) = self.sections.iter_mut().find_map(|s| {
                    s.group
                        .as_mut()
                        .filter(|g| segs.first().is_some_and(|f| *f == g.label))
                }) {
                    g.error = Some(what.clone());
                    placed = true;
                }
            }
            if !placed {
                self.other_errors.push(format!("{pointer}: {what}"));
            }
        }
    }
}

/// One input's value; None leaves the key out. A number that does not parse is sent as
/// text, so the API's schema check names it.
fn value_of(kind: &Kind, raw: &str) -> Result<Option<Value>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    Ok(Some(match kind {
        Kind::Text | Kind::Choice(_) => {
            Value::String(raw.trim_end_matches(['\r', '\n']).to_string())
        }
        Kind::Integer => t
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(t.to_string())),
        Kind::Number => t
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(t.to_string())),
        Kind::Boolean => Value::Bool(t == "true"),
        Kind::Lines => Value::Array(
            raw.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| Value::String(l.to_string()))
                .collect(),
        ),
        Kind::Json => serde_json::from_str(t).map_err(|e| e.to_string())?,
    }))
}

/// The config the form describes, over `base` (the binding's current config: keys the form
/// does not show are kept). Err: (input name, what is wrong) for inputs that are not JSON.
pub fn read(
    form: &ConfigForm,
    fields: &[(String, String)],
    base: &Value,
) -> Result<Value, Vec<(String, String)>> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut out = base.as_object().cloned().unwrap_or_default();
    let mut errors = Vec::new();
    let key_of = |name: &str, depth: usize| -> String {
        name.trim_start_matches(PREFIX)
            .split('/')
            .nth(depth)
            .map(unescape)
            .unwrap_or_default()
    };
    for section in &form.sections {
        match &section.group {
            None => {
                for input in &section.inputs {
                    let key = key_of(&input.name, 1);
                    match value_of(&input.kind, get(&input.name)) {
                        Ok(Some(v)) => {
                            out.insert(key, v);
                        }
                        Ok(None) => {
                            out.remove(&key);
                        }
                        Err(e) => errors.push((input.name.clone(), e)),
                    }
                }
            }
            Some(g) => {
                let mut sub = out
                    .get(&g.label)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for input in &section.inputs {
                    let key = key_of(&input.name, 2);
                    match value_of(&input.kind, get(&input.name)) {
                        Ok(Some(v)) => {
                            sub.insert(key, v);
                        }
                        Ok(None) => {
                            sub.remove(&key);
                        }
                        Err(e) => errors.push((input.name.clone(), e)),
                    }
                }
                if sub.is_empty() && !g.required {
                    out.remove(&g.label);
                } else {
                    out.insert(g.label.clone(), Value::Object(sub));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(errors)
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
            "required": ["threshold"],
            "properties": {
                "threshold": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Score."},
                "rate": {"type": "number"},
                "notify": {"type": "boolean"},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "name": {"type": "string"},
                "team": {"type": "array", "items": {"type": "string"}},
                "points": {"type": "object", "additionalProperties": {"type": "integer"}},
                "escalation": {"$ref": "#/$defs/esc"}
            },
            "$defs": {"esc": {"type": "object", "properties": {
                "to": {"type": "string"}, "after/h": {"type": "integer"}}}}
        })
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_form_follows_the_schema_and_the_current_config() {
        let config = json!({"threshold": 40, "team": ["ann", "bob"], "mode": "b",
                            "points": {"cto": 30}, "escalation": {"to": "dana"}, "extra": 1});
        let f = ConfigForm::build(&schema(), &config).unwrap();
        let all: Vec<&Input> = f.sections.iter().flat_map(|s| &s.inputs).collect();
        let by = |n: &str| all.iter().find(|i| i.name == n).unwrap();
        assert_eq!(by("cfg/threshold").kind, Kind::Integer);
        assert_eq!(by("cfg/threshold").value, "40");
        assert_eq!(by("cfg/threshold").max.as_deref(), Some("100"));
        assert!(by("cfg/threshold").required);
        assert_eq!(by("cfg/team").kind, Kind::Lines);
        assert_eq!(by("cfg/team").value, "ann\nbob");
        assert_eq!(
            by("cfg/mode").kind,
            Kind::Choice(vec!["a".into(), "b".into()])
        );
        assert_eq!(by("cfg/points").kind, Kind::Json);
        assert_eq!(by("cfg/notify").kind, Kind::Boolean);
        assert_eq!(by("cfg/escalation/to").value, "dana");
        assert_eq!(by("cfg/escalation/after~1h").kind, Kind::Integer);
        let group = f.sections.iter().find_map(|s| s.group.as_ref()).unwrap();
        assert_eq!(group.label, "escalation");
        assert!(ConfigForm::build(&json!({"type": "string"}), &json!({})).is_none());
    }

    #[test]
    fn reading_the_form_gives_the_config_and_keeps_what_it_does_not_show() {
        let s = schema();
        let base = json!({"threshold": 40, "extra": 1, "name": "old"});
        let f = ConfigForm::build(&s, &base).unwrap();
        let got = read(
            &f,
            &pairs(&[
                ("cfg/threshold", "55"),
                ("cfg/rate", "0.5"),
                ("cfg/notify", "false"),
                ("cfg/mode", "a"),
                ("cfg/name", ""),
                ("cfg/team", "ann\r\n\r\n bob \r\n"),
                ("cfg/points", "{\"vp\": 20}"),
                ("cfg/escalation/to", ""),
                ("cfg/escalation/after~1h", "3"),
            ]),
            &base,
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"threshold": 55, "rate": 0.5, "notify": false, "mode": "a",
                   "team": ["ann", "bob"], "points": {"vp": 20},
                   "escalation": {"after/h": 3}, "extra": 1})
        );
        // A number that is not one goes to the API as text (its 422 names the path); JSON
        // that does not parse is caught here, naming the input.
        let got = read(&f, &pairs(&[("cfg/threshold", "high")]), &base).unwrap();
        assert_eq!(got["threshold"], "high");
        let e = read(&f, &pairs(&[("cfg/points", "{oops")]), &base).unwrap_err();
        assert_eq!(e[0].0, "cfg/points");
    }

    #[test]
    fn api_errors_land_on_the_inputs_they_name() {
        let mut f = ConfigForm::build(&schema(), &json!({})).unwrap();
        f.place_errors("config does not match the module's schema: \"config\" at \"/threshold\": want integer, but got string; \"config\" at \"/team/1\": want string; \"config\" at \"/escalation/after~1h\": must be >= 0; \"config\" at \"/colour\": is not a known setting");
        let all: Vec<&Input> = f.sections.iter().flat_map(|s| &s.inputs).collect();
        let by = |n: &str| all.iter().find(|i| i.name == n).unwrap();
        assert_eq!(
            by("cfg/threshold").error.as_deref(),
            Some("want integer, but got string")
        );
        assert_eq!(by("cfg/team").error.as_deref(), Some("want string"));
        assert_eq!(
            by("cfg/escalation/after~1h").error.as_deref(),
            Some("must be >= 0")
        );
        assert_eq!(f.other_errors, ["/colour: is not a known setting"]);
    }
}
