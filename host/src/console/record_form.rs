//! Creating and editing leads, contacts, companies and deals: core fields, custom fields
//! (typed as JSON when they parse as JSON), links to a company and a contact, and for new
//! leads and deals their pipeline and stage. Writes are the API's, inline automation
//! included: a refusal shows the module's message, and a validation error is shown at the
//! field it names.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::api::{enc, ApiFailure};
use super::i18n;
use super::page::{self, Page};
use super::records::{Pipelines, RecordList};
use super::{form_of, Console, Out, Posted};
use crate::model::{Pipeline, Record, RecordKind};

/// Companies or contacts offered as links.
const LINKS: usize = 500;
/// Empty rows for new custom fields.
const NEW_CUSTOM: usize = 3;

/// A custom field row of the form.
struct Custom {
    key: String,
    value: String,
    error: Option<String>,
}

/// What the record form holds (from the record, or as sent).
struct Values {
    kind: RecordKind,
    name: String,
    email: String,
    phone: String,
    owner: String,
    amount: String,
    currency: String,
    company: String,
    contact: String,
    /// `pipeline|stage` (creation only: stages change by moving).
    place: String,
    version: u64,
    custom: Vec<Custom>,
    new_custom: Vec<Custom>,
}

/// A link target offered in a menu.
struct Choice {
    id: String,
    name: String,
}

struct Place {
    value: String,
    label: String,
}

#[derive(Template)]
#[template(path = "console/record_form.html")]
struct FormPage<'a> {
    page: &'a Page,
    /// None: a new record.
    id: Option<String>,
    v: Values,
    places: Vec<Place>,
    companies: Vec<Choice>,
    contacts: Vec<Choice>,
    errors: BTreeMap<String, String>,
    error: Option<ApiFailure>,
}

impl FormPage<'_> {
    fn err(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }

    fn is(&self, kind: &str) -> bool {
        self.v.kind.as_str() == kind
    }

    fn has_pipeline(&self) -> bool {
        self.v.kind.has_pipeline()
    }

    fn links_company(&self) -> bool {
        self.v.kind != RecordKind::Company
    }

    fn links_contact(&self) -> bool {
        matches!(self.v.kind, RecordKind::Lead | RecordKind::Deal)
    }
}

/// How a custom value shows in its text box: text as it is, anything else (and text that
/// would read as something else) as JSON, so saving it unchanged keeps it unchanged.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) if serde_json::from_str::<Value>(s).is_err() => s.clone(),
        other => other.to_string(),
    }
}

/// A typed value: JSON when it parses as JSON (`70`, `true`, `["a"]`, `"007"`), text otherwise.
fn typed(text: &str) -> Value {
    let t = text.trim();
    serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string()))
}

fn blank_custom() -> Vec<Custom> {
    (0..NEW_CUSTOM)
        .map(|_| Custom {
            key: String::new(),
            value: String::new(),
            error: None,
        })
        .collect()
}

fn kind_of(s: &str) -> RecordKind {
    match s {
        "contact" => RecordKind::Contact,
        "company" => RecordKind::Company,
        "deal" => RecordKind::Deal,
        _ => RecordKind::Lead,
    }
}

fn values_of(r: &Record) -> Values {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    Values {
        kind: r.kind,
        name: r.name.clone(),
        email: s(&r.email),
        phone: s(&r.phone),
        owner: s(&r.owner),
        amount: r.amount.map(|a| a.to_string()).unwrap_or_default(),
        currency: s(&r.currency),
        company: s(&r.company),
        contact: s(&r.contact),
        place: String::new(),
        version: r.version,
        custom: r
            .custom
            .iter()
            .map(|(k, v)| Custom {
                key: k.clone(),
                value: shown(v),
                error: None,
            })
            .collect(),
        new_custom: blank_custom(),
    }
}

/// The values as sent (to show them again after a refusal).
fn values_sent(kind: RecordKind, f: &[(String, String)]) -> Values {
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let custom = f
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("custom.").map(|key| Custom {
                key: key.to_string(),
                value: v.clone(),
                error: None,
            })
        })
        .collect();
    let new_custom = (0..NEW_CUSTOM)
        .map(|i| Custom {
            key: get(&format!("new_key_{i}")),
            value: get(&format!("new_value_{i}")),
            error: None,
        })
        .collect();
    Values {
        kind,
        name: get("name"),
        email: get("email"),
        phone: get("phone"),
        owner: get("owner"),
        amount: get("amount"),
        currency: get("currency"),
        company: get("company"),
        contact: get("contact"),
        place: get("place"),
        version: get("version").parse().unwrap_or(0),
        custom,
        new_custom,
    }
}

/// The field an API message names: `field "email": …`, `custom field "x" …`, `"x" is not …`.
fn field_named(message: &str) -> Option<String> {
    let message = message.strip_prefix("custom: ").unwrap_or(message);
    if message.starts_with("stage \"") || message.starts_with("pipeline \"") {
        return Some("place".into());
    }
    let quoted = |s: &str| s.split_once('"').map(|(name, _)| name.to_string());
    let name = match message.find("field \"") {
        Some(i) => quoted(&message[i + "field \"".len()..]),
        None => message.strip_prefix('"').and_then(quoted),
    }?;
    Some(match name.as_str() {
        "stage" | "pipeline" => "place".into(),
        _ => name,
    })
}

async fn link_choices(c: &Console, kind: &str, current: &str) -> Vec<Choice> {
    let list: Option<RecordList> = c
        .api
        .get(&format!("/v1/records?kind={kind}&limit={LINKS}"))
        .await
        .ok();
    let mut out: Vec<Choice> = list
        .map(|l| l.records)
        .unwrap_or_default()
        .into_iter()
        .map(|r| Choice {
            id: r.id,
            name: r.name,
        })
        .collect();
    if !current.is_empty() && !out.iter().any(|ch| ch.id == current) {
        out.push(Choice {
            id: current.to_string(),
            name: current.to_string(),
        });
    }
    out.sort_by_key(|a| a.name.to_lowercase());
    out
}

async fn form_page(
    c: &Console,
    id: Option<String>,
    mut v: Values,
    error: Option<ApiFailure>,
) -> Out {
    let pipelines: Pipelines = c.ok(c.api.get("/v1/pipelines").await)?;
    let want = match v.kind {
        RecordKind::Deal => Some(crate::model::PipelineKind::Deal),
        RecordKind::Lead => Some(crate::model::PipelineKind::Lead),
        _ => None,
    };
    let places: Vec<Place> = pipelines
        .pipelines
        .iter()
        .filter(|p| Some(p.kind) == want)
        .flat_map(|p| {
            p.stages.iter().map(move |s| Place {
                value: format!("{}|{}", p.id, s.id),
                label: format!("{} · {}", p.name, s.name),
            })
        })
        .collect();
    let companies = link_choices(c, "company", &v.company).await;
    let contacts = link_choices(c, "contact", &v.contact).await;
    let mut errors = BTreeMap::new();
    if let Some(e) = &error {
        if let Some(field) = field_named(&e.message) {
            match v
                .custom
                .iter_mut()
                .chain(v.new_custom.iter_mut())
                .find(|row| row.key == field)
            {
                Some(row) => row.error = Some(e.message.clone()),
                None => {
                    errors.insert(field, e.message.clone());
                }
            }
        }
    }
    let title = match &id {
        Some(_) => c.page.t1("record-edit-title", "name", &v.name),
        None => c.page.t(&format!("record-new-{}", v.kind.as_str())),
    };
    let page = c.page("records", title);
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    Ok(page::render_status(
        status,
        &FormPage {
            page: &page,
            id,
            v,
            places,
            companies,
            contacts,
            errors,
            error,
        },
    ))
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    pipeline: String,
}

/// `/console/records/new?kind=…&pipeline=…`: an empty form (in that pipeline's first stage).
pub async fn new_form(c: Console, Query(q): Query<NewQuery>) -> Out {
    let kind = kind_of(&q.kind);
    let mut v = values_sent(kind, &[]);
    if !q.pipeline.is_empty() {
        let p: Option<Pipeline> = c
            .api
            .get(&format!("/v1/pipelines/{}", enc(&q.pipeline)))
            .await
            .ok();
        if let Some(s) = p.as_ref().and_then(|p| p.initial_stage()) {
            v.place = format!("{}|{}", q.pipeline, s.id);
        }
    }
    form_page(&c, None, v, None).await
}

fn text(f: &[(String, String)], k: &str) -> Option<String> {
    f.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The custom fields a form sets: existing rows (an emptied one is removed: null) and new
/// rows with a name.
fn custom_of(f: &[(String, String)], editing: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in f {
        if let Some(key) = k.strip_prefix("custom.") {
            if !v.trim().is_empty() {
                out.insert(key.to_string(), typed(v));
            } else if editing {
                out.insert(key.to_string(), Value::Null);
            }
        }
    }
    for i in 0..NEW_CUSTOM {
        if let Some(key) = text(f, &format!("new_key_{i}")) {
            let value = text(f, &format!("new_value_{i}")).unwrap_or_default();
            out.insert(key, typed(&value));
        }
    }
    out
}

/// The amount as a number; a local error naming the field when it is not one.
fn amount_of(c: &Console, f: &[(String, String)]) -> Result<Option<Value>, ApiFailure> {
    let Some(t) = text(f, "amount") else {
        return Ok(None);
    };
    t.replace(',', ".")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(|n| Some(Value::Number(n)))
        .ok_or_else(|| ApiFailure {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid".into(),
            message: i18n::text(c.page.lang, "error-amount", &[]),
        })
}

#[derive(Deserialize)]
struct KindOnly {
    #[serde(default)]
    kind: String,
}

/// Creates a record through the API (inline automation runs; a refusal is shown).
pub async fn create(Posted(c, f): Posted<Vec<(String, String)>>) -> Out {
    let k: KindOnly = form_of(&f)?;
    let kind = kind_of(&k.kind);
    let body = (|| {
        let mut body = Map::new();
        body.insert("kind".into(), Value::String(kind.as_str().into()));
        body.insert(
            "name".into(),
            Value::String(text(&f, "name").unwrap_or_default()),
        );
        let mut fields = vec!["email", "phone", "owner"];
        if kind != RecordKind::Company {
            fields.push("company");
        }
        if matches!(kind, RecordKind::Lead | RecordKind::Deal) {
            fields.push("contact");
        }
        if kind == RecordKind::Deal {
            fields.push("currency");
            if let Some(a) = amount_of(&c, &f)? {
                body.insert("amount".into(), a);
            }
        }
        for field in fields {
            if let Some(v) = text(&f, field) {
                body.insert(field.into(), Value::String(v));
            }
        }
        if kind.has_pipeline() {
            if let Some((p, s)) = text(&f, "place").as_deref().and_then(|p| p.split_once('|')) {
                body.insert("pipeline".into(), Value::String(p.into()));
                body.insert("stage".into(), Value::String(s.into()));
            }
        }
        body.insert("custom".into(), Value::Object(custom_of(&f, false)));
        Ok::<Value, ApiFailure>(Value::Object(body))
    })();
    let result = match body {
        Ok(b) => c.api.json(Method::POST, "/v1/records", &b).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            let text = i18n::text(
                c.page.lang,
                "flash-record-created",
                &[("name", r["name"].as_str().unwrap_or_default().to_string())],
            );
            Ok(c.redirect_with(&format!("/console/records/{}", enc(&id)), false, text))
        }
        Err(e) => form_page(&c, None, values_sent(kind, &f), Some(e)).await,
    }
}

/// `/console/records/{id}/edit`.
pub async fn edit_form(c: Console, Path(id): Path<String>) -> Out {
    let r: Record = c.ok(c.api.get(&format!("/v1/records/{}", enc(&id))).await)?;
    form_page(&c, Some(id), values_of(&r), None).await
}

/// Saves an edit as a PATCH with the version it was based on (409 if someone else changed
/// it meanwhile); emptied fields are cleared.
pub async fn update(Path(id): Path<String>, Posted(c, f): Posted<Vec<(String, String)>>) -> Out {
    let current: Record = c.ok(c.api.get(&format!("/v1/records/{}", enc(&id))).await)?;
    let kind = current.kind;
    let body = (|| {
        let mut body = Map::new();
        let version = text(&f, "version")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(current.version);
        body.insert("version".into(), Value::from(version));
        body.insert(
            "name".into(),
            Value::String(text(&f, "name").unwrap_or_default()),
        );
        let mut fields = vec!["email", "phone", "owner"];
        if kind != RecordKind::Company {
            fields.push("company");
        }
        if matches!(kind, RecordKind::Lead | RecordKind::Deal) {
            fields.push("contact");
        }
        if kind == RecordKind::Deal {
            fields.push("currency");
            body.insert("amount".into(), amount_of(&c, &f)?.unwrap_or(Value::Null));
        }
        for field in fields {
            body.insert(
                field.into(),
                text(&f, field).map(Value::String).unwrap_or(Value::Null),
            );
        }
        body.insert("custom".into(), Value::Object(custom_of(&f, true)));
        Ok::<Value, ApiFailure>(Value::Object(body))
    })();
    let result = match body {
        Ok(b) => {
            c.api
                .json(Method::PATCH, &format!("/v1/records/{}", enc(&id)), &b)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => {
            let text = i18n::text(
                c.page.lang,
                "flash-record-saved",
                &[("name", r["name"].as_str().unwrap_or_default().to_string())],
            );
            Ok(c.redirect_with(&format!("/console/records/{}", enc(&id)), false, text))
        }
        Err(e) => form_page(&c, Some(id), values_sent(kind, &f), Some(e)).await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn api_messages_name_their_field() {
        assert_eq!(
            field_named("field \"email\": \"x\" is not an email address").as_deref(),
            Some("email")
        );
        assert_eq!(
            field_named("field \"amount\" must be a number ≥ 0").as_deref(),
            Some("amount")
        );
        assert_eq!(
            field_named("custom: \"bad name\" is not a valid field name").as_deref(),
            Some("bad name")
        );
        assert_eq!(
            field_named("\"bad name\" is not a valid field name").as_deref(),
            Some("bad name")
        );
        assert_eq!(
            field_named("stage \"x\" is not in pipeline \"leads\"").as_deref(),
            Some("place")
        );
        assert_eq!(field_named("the module said no").as_deref(), None);
        assert_eq!(
            field_named("custom field \"email\" shadows a core field").as_deref(),
            Some("email")
        );
    }

    #[test]
    fn custom_values_round_trip_through_their_text_box() {
        for v in [
            json!("plain"),
            json!("70"),
            json!(70),
            json!(true),
            json!(["a"]),
            json!(""),
        ] {
            assert_eq!(typed(&shown(&v)), v, "{v}");
        }
    }
}
