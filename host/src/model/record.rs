//! CRM records (leads, contacts, companies, deals) and the rules for changing their fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Lead,
    Contact,
    Company,
    Deal,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Lead => "lead",
            RecordKind::Contact => "contact",
            RecordKind::Company => "company",
            RecordKind::Deal => "deal",
        }
    }

    /// Leads and deals live in pipelines; contacts and companies do not.
    pub fn has_pipeline(self) -> bool {
        matches!(self, RecordKind::Lead | RecordKind::Deal)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Record {
    pub id: String,
    pub kind: RecordKind,
    /// Person's name for leads and contacts, company name, or the deal's title.
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Deal value, in `currency`.
    pub amount: Option<f64>,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: Option<String>,
    /// The user the record is assigned to.
    pub owner: Option<String>,
    /// Link to a company record (contacts, deals, leads).
    pub company: Option<String>,
    /// Link to a contact record (deals).
    pub contact: Option<String>,
    pub pipeline: Option<String>,
    pub stage: Option<String>,
    /// Custom fields, any JSON values keyed by name.
    #[schema(value_type = Object)]
    pub custom: Map<String, Value>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Fields that can be written through PATCH, automation or conversion. Any other name is a
/// custom field.
pub const CORE_FIELDS: &[&str] = &[
    "name", "email", "phone", "amount", "currency", "owner", "company", "contact",
];

/// Names that are never custom fields because the record already uses them.
const RESERVED: &[&str] = &[
    "id",
    "kind",
    "pipeline",
    "stage",
    "version",
    "custom",
    "created_at",
    "updated_at",
];

fn opt_string(name: &str, value: Value, max: usize) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.len() <= max => Ok(Some(s)),
        Value::String(_) => Err(format!("field {name:?} is longer than {max} bytes")),
        other => Err(format!(
            "field {name:?} must be a string or null, not {}",
            type_name(&other)
        )),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// True when `name` may be used as a custom field key.
pub fn is_custom_field_name(name: &str) -> bool {
    super::id::is_valid_slug(name) && !CORE_FIELDS.contains(&name) && !RESERVED.contains(&name)
}

impl Record {
    /// Writes one field by name, validating its value. Links are checked for shape only;
    /// the caller checks that linked records exist.
    pub fn set_field(&mut self, name: &str, value: Value) -> Result<(), String> {
        match name {
            "name" => match value {
                Value::String(s) if !s.trim().is_empty() && s.len() <= 500 => self.name = s,
                Value::String(_) => {
                    return Err("field \"name\" must be 1-500 characters and not blank".into())
                }
                other => {
                    return Err(format!(
                        "field \"name\" must be a string, not {}",
                        type_name(&other)
                    ))
                }
            },
            "email" => {
                let v = opt_string(name, value, 320)?;
                if let Some(e) = &v {
                    let ok = e
                        .split_once('@')
                        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
                    if !ok {
                        return Err(format!("field \"email\": {e:?} is not an email address"));
                    }
                }
                self.email = v;
            }
            "phone" => self.phone = opt_string(name, value, 64)?,
            "owner" => self.owner = opt_string(name, value, 200)?,
            "company" => self.company = opt_string(name, value, 64)?,
            "contact" => self.contact = opt_string(name, value, 64)?,
            "amount" | "currency" if self.kind != RecordKind::Deal => {
                return Err(format!(
                    "field {name:?} belongs to deals, not {}s",
                    self.kind.as_str()
                ))
            }
            "amount" => {
                self.amount = match value {
                    Value::Null => None,
                    Value::Number(n) => match n.as_f64() {
                        Some(a) if a.is_finite() && a >= 0.0 => Some(a),
                        _ => return Err("field \"amount\" must be a number ≥ 0".into()),
                    },
                    other => {
                        return Err(format!(
                            "field \"amount\" must be a number or null, not {}",
                            type_name(&other)
                        ))
                    }
                }
            }
            "currency" => {
                let v = opt_string(name, value, 16)?;
                if let Some(c) = &v {
                    if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                        return Err(format!(
                            "field \"currency\": {c:?} is not a three-letter ISO 4217 code"
                        ));
                    }
                }
                self.currency = v;
            }
            _ if is_custom_field_name(name) => {
                if value.is_null() {
                    self.custom.remove(name);
                } else {
                    self.custom.insert(name.to_string(), value);
                }
            }
            _ if RESERVED.contains(&name) => {
                return Err(format!("field {name:?} cannot be written this way"))
            }
            _ => return Err(format!("{name:?} is not a valid field name")),
        }
        if self.kind == RecordKind::Contact && self.contact.is_some() {
            return Err(
                "field \"contact\" links deals to contacts; contacts cannot have one".into(),
            );
        }
        if self.kind == RecordKind::Company && (self.company.is_some() || self.contact.is_some()) {
            return Err("companies cannot link to a company or contact".into());
        }
        Ok(())
    }

    /// The value of a field by name (core or custom), `null` when unset.
    pub fn field(&self, name: &str) -> Value {
        let s = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        match name {
            "name" => Value::String(self.name.clone()),
            "email" => s(&self.email),
            "phone" => s(&self.phone),
            "owner" => s(&self.owner),
            "company" => s(&self.company),
            "contact" => s(&self.contact),
            "currency" => s(&self.currency),
            "amount" => self
                .amount
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            "pipeline" => s(&self.pipeline),
            "stage" => s(&self.stage),
            _ => self.custom.get(name).cloned().unwrap_or(Value::Null),
        }
    }

    /// Names of the core and custom fields whose values differ between `self` and `other`
    /// (stage, pipeline and bookkeeping excluded), in a stable order.
    pub fn changed_fields(&self, other: &Record) -> Vec<String> {
        let mut out: Vec<String> = CORE_FIELDS
            .iter()
            .filter(|f| self.field(f) != other.field(f))
            .map(|f| f.to_string())
            .collect();
        let mut keys: Vec<&String> = self.custom.keys().chain(other.custom.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            if self.custom.get(k) != other.custom.get(k) {
                out.push(k.clone());
            }
        }
        out
    }

    /// Ids of other records this one links to, with the kind each must have.
    pub fn links(&self) -> Vec<(&str, &String, RecordKind)> {
        let mut out = Vec::new();
        if let Some(c) = &self.company {
            out.push(("company", c, RecordKind::Company));
        }
        if let Some(c) = &self.contact {
            out.push(("contact", c, RecordKind::Contact));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deal() -> Record {
        Record {
            id: "rec_1".into(),
            kind: RecordKind::Deal,
            name: "Big".into(),
            email: None,
            phone: None,
            amount: None,
            currency: None,
            owner: None,
            company: None,
            contact: None,
            pipeline: Some("p".into()),
            stage: Some("s".into()),
            custom: Map::new(),
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn field_validation_names_the_problem() {
        let mut r = deal();
        assert!(r
            .set_field("email", "nope".into())
            .unwrap_err()
            .contains("email"));
        assert!(r
            .set_field("currency", "eur".into())
            .unwrap_err()
            .contains("ISO 4217"));
        assert!(r.set_field("amount", (-1).into()).is_err());
        assert!(r.set_field("version", 3.into()).is_err());
        assert!(r.set_field("bad/name", 3.into()).is_err());
        r.set_field("score", 42.into()).unwrap();
        r.set_field("amount", 10.5.into()).unwrap();
        assert_eq!(r.field("score"), Value::from(42));
        let before = deal();
        assert_eq!(before.changed_fields(&r), vec!["amount", "score"]);
        r.set_field("score", Value::Null).unwrap();
        assert!(r.custom.is_empty());
    }

    #[test]
    fn amount_is_for_deals_only() {
        let mut r = deal();
        r.kind = RecordKind::Lead;
        assert!(r
            .set_field("amount", 1.into())
            .unwrap_err()
            .contains("deals"));
    }
}
