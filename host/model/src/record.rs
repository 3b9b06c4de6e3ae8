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

use stagecraft_rules::field::{self, FieldWrite};
pub use stagecraft_rules::field::{is_custom_field_name, CORE_FIELDS};
pub use stagecraft_rules::type_name;

impl RecordKind {
    /// The kind as the shared field rules know it.
    pub fn rules_kind(self) -> field::Kind {
        match self {
            RecordKind::Lead => field::Kind::Lead,
            RecordKind::Contact => field::Kind::Contact,
            RecordKind::Company => field::Kind::Company,
            RecordKind::Deal => field::Kind::Deal,
        }
    }
}

impl Record {
    /// Writes one field by name, validating its value with the shared rules
    /// ([`stagecraft_rules::field`]). Links are checked for shape only; the caller checks
    /// that linked records exist.
    pub fn set_field(&mut self, name: &str, value: Value) -> Result<(), String> {
        let kind = self.kind.rules_kind();
        match field::check(kind, name, value)? {
            FieldWrite::Name(v) => self.name = v,
            FieldWrite::Email(v) => self.email = v,
            FieldWrite::Phone(v) => self.phone = v,
            FieldWrite::Owner(v) => self.owner = v,
            FieldWrite::Company(v) => self.company = v,
            FieldWrite::Contact(v) => self.contact = v,
            FieldWrite::Amount(v) => self.amount = v,
            FieldWrite::Currency(v) => self.currency = v,
            FieldWrite::Custom(k, Some(v)) => {
                self.custom.insert(k, v);
            }
            FieldWrite::Custom(k, None) => {
                self.custom.remove(&k);
            }
        }
        field::check_links(kind, self.company.as_deref(), self.contact.as_deref())
    }

    /// Checks that the record's custom fields together stay within the shared size limit
    /// ([`stagecraft_rules::value::MAX_CUSTOM_BYTES`]; each value was checked when written).
    pub fn check_size(&self) -> Result<(), String> {
        stagecraft_rules::value::check_custom(&self.custom)
            .map_err(|e| format!("record {:?}: {e}", self.id))
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

/// Which records a list or a module's `records.find` wants: every given field must match.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RecordFilter {
    pub kind: Option<RecordKind>,
    pub pipeline: Option<String>,
    pub stage: Option<String>,
    pub owner: Option<String>,
}

impl RecordFilter {
    pub fn matches(&self, r: &Record) -> bool {
        self.matches_fields(r.kind, &r.pipeline, &r.stage, &r.owner)
    }

    /// [`RecordFilter::matches`] on the filtered fields alone (for callers that decode only
    /// those).
    pub fn matches_fields(
        &self,
        kind: RecordKind,
        pipeline: &Option<String>,
        stage: &Option<String>,
        owner: &Option<String>,
    ) -> bool {
        self.kind.is_none_or(|k| kind == k)
            && self
                .pipeline
                .as_ref()
                .is_none_or(|p| pipeline.as_ref() == Some(p))
            && self
                .stage
                .as_ref()
                .is_none_or(|s| stage.as_ref() == Some(s))
            && self
                .owner
                .as_ref()
                .is_none_or(|o| owner.as_ref() == Some(o))
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
