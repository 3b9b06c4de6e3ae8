//! Field writes: what each core field accepts, which names are custom fields, and which links
//! a record of each kind may carry.

use serde_json::Value;

use crate::type_name;

/// The kinds of CRM record, as far as the field rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Lead,
    Contact,
    Company,
    Deal,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Contact => "contact",
            Kind::Company => "company",
            Kind::Deal => "deal",
        }
    }
}

/// Fields that can be written through PATCH, automation or conversion. Any other name is a
/// custom field.
pub const CORE_FIELDS: &[&str] = &[
    "name", "email", "phone", "amount", "currency", "owner", "company", "contact",
];

/// Names that are never custom fields because the record already uses them.
pub const RESERVED: &[&str] = &[
    "id",
    "kind",
    "pipeline",
    "stage",
    "version",
    "custom",
    "created_at",
    "updated_at",
];

/// A validated write of one field: what the record's field becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldWrite {
    Name(String),
    Email(Option<String>),
    Phone(Option<String>),
    Owner(Option<String>),
    Company(Option<String>),
    Contact(Option<String>),
    Amount(Option<f64>),
    Currency(Option<String>),
    /// A custom field set to a value, or removed (`None`, written as `null`).
    Custom(String, Option<Value>),
}

/// The shape of an id or slug, in words, for error messages.
pub const SLUG_RULE: &str =
    "1-64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit";

/// True when `name` has the shape of an id or slug (store keys, URLs, field names): see
/// [`SLUG_RULE`]. The first character rules out `.`, `..` and the like, which URLs and paths
/// treat as something else.
pub fn is_slug(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// True when `name` may be used as a custom field key.
pub fn is_custom_field_name(name: &str) -> bool {
    is_slug(name) && !CORE_FIELDS.contains(&name) && !RESERVED.contains(&name)
}

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

/// Checks a write of `value` to the field `name` of a record of `kind`, and says what the
/// field becomes. Links are checked for shape only ([`check_links`] checks the combination;
/// that linked records exist is the caller's business).
pub fn check(kind: Kind, name: &str, value: Value) -> Result<FieldWrite, String> {
    Ok(match name {
        "name" => match value {
            Value::String(s) if !s.trim().is_empty() && s.len() <= 500 => FieldWrite::Name(s),
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
            FieldWrite::Email(v)
        }
        "phone" => FieldWrite::Phone(opt_string(name, value, 64)?),
        "owner" => FieldWrite::Owner(opt_string(name, value, 200)?),
        "company" => FieldWrite::Company(opt_string(name, value, 64)?),
        "contact" => FieldWrite::Contact(opt_string(name, value, 64)?),
        "amount" | "currency" if kind != Kind::Deal => {
            return Err(format!(
                "field {name:?} belongs to deals, not {}s",
                kind.as_str()
            ))
        }
        "amount" => FieldWrite::Amount(match value {
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
        }),
        "currency" => {
            let v = opt_string(name, value, 16)?;
            if let Some(c) = &v {
                if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                    return Err(format!(
                        "field \"currency\": {c:?} is not a three-letter ISO 4217 code"
                    ));
                }
            }
            FieldWrite::Currency(v)
        }
        _ if is_custom_field_name(name) => {
            crate::value::check(&format!("the value of field {name:?}"), &value)
                .map_err(|e| e.to_string())?;
            FieldWrite::Custom(name.to_string(), (!value.is_null()).then_some(value))
        }
        _ if RESERVED.contains(&name) => {
            return Err(format!("field {name:?} cannot be written this way"))
        }
        _ => {
            return Err(format!(
                "{name:?} is not a valid field name: it must be {SLUG_RULE}"
            ))
        }
    })
}

/// Which links a record of `kind` may carry: contacts link to a company only, companies to
/// nothing; leads and deals to both.
pub fn check_links(kind: Kind, company: Option<&str>, contact: Option<&str>) -> Result<(), String> {
    if kind == Kind::Contact && contact.is_some() {
        return Err("field \"contact\" links deals to contacts; contacts cannot have one".into());
    }
    if kind == Kind::Company && (company.is_some() || contact.is_some()) {
        return Err("companies cannot link to a company or contact".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_are_checked_and_named() {
        let err = |k, n, v: Value| check(k, n, v).unwrap_err();
        assert!(err(Kind::Deal, "email", "nope".into()).contains("email"));
        assert!(err(Kind::Deal, "currency", "eur".into()).contains("ISO 4217"));
        assert!(err(Kind::Deal, "amount", (-1).into()).contains("≥ 0"));
        assert!(err(Kind::Lead, "amount", 1.into()).contains("deals"));
        assert!(err(Kind::Deal, "version", 3.into()).contains("cannot be written"));
        assert!(err(Kind::Deal, "bad/name", 3.into()).contains("not a valid field name"));
        assert!(err(Kind::Deal, "name", " ".into()).contains("blank"));
        assert_eq!(
            check(Kind::Deal, "score", 42.into()),
            Ok(FieldWrite::Custom("score".into(), Some(42.into())))
        );
        assert_eq!(
            check(Kind::Deal, "score", Value::Null),
            Ok(FieldWrite::Custom("score".into(), None))
        );
        assert!(err(Kind::Deal, "deep", crate::value::nested(33)).contains("limit is 32"));
        assert_eq!(
            check(Kind::Deal, "amount", 10.5.into()),
            Ok(FieldWrite::Amount(Some(10.5)))
        );
    }

    #[test]
    fn links_depend_on_the_kind() {
        assert!(check_links(Kind::Contact, Some("c"), None).is_ok());
        assert!(check_links(Kind::Contact, None, Some("p")).is_err());
        assert!(check_links(Kind::Company, Some("c"), None).is_err());
        assert!(check_links(Kind::Deal, Some("c"), Some("p")).is_ok());
    }
}
