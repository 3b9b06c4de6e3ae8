//! Record changes: create, patch, stage moves, delete and lead conversion, each turned into a
//! changeset with its journal events.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{CrmError, Result};
use crate::model::id::new_id;
use crate::model::record::CORE_FIELDS;
use crate::model::{
    Cause, Event, EventKind, Pipeline, PipelineKind, Record, RecordKind, StageSemantic,
};
use crate::store::{Changeset, RecordWrite, Store};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "lead", "name": "Ada Lovelace", "email": "ada@example.com",
    "phone": "+44 20 7946 0958", "owner": "ann", "custom": {"size": 2000, "source": "referral"}}))]
pub struct NewRecord {
    pub kind: RecordKind,
    /// Name of the person or company, or the deal's title.
    #[serde(alias = "title")]
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub name: String,
    /// An address with a local part, `@` and a domain with a dot.
    #[schema(max_length = 320, pattern = "^[^@]+@[^@]*\\.")]
    pub email: Option<String>,
    #[schema(max_length = 64)]
    pub phone: Option<String>,
    /// Deals only; at least 0.
    #[schema(minimum = 0)]
    pub amount: Option<f64>,
    /// Deals only: a three-letter ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[schema(max_length = 200)]
    pub owner: Option<String>,
    /// The company record this one belongs to.
    #[schema(max_length = 64)]
    pub company: Option<String>,
    /// Deals: the contact record.
    #[schema(max_length = 64)]
    pub contact: Option<String>,
    /// Leads and deals: defaults to the tenant's first pipeline of that kind.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub pipeline: Option<String>,
    /// Defaults to the pipeline's initial stage.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub stage: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom: Map<String, Value>,
}

/// Builds a journal event for `record` at `now`.
pub fn event(
    tenant: &str,
    kind: EventKind,
    record: Option<&Record>,
    now: DateTime<Utc>,
    cause: Option<Cause>,
) -> Event {
    Event {
        id: new_id("evt"),
        tenant: tenant.to_string(),
        record: record.map(|r| r.id.clone()),
        kind,
        occurred_at: now,
        cause,
        snapshot: record.cloned(),
    }
}

/// Appends the write and the events that `old → new` causes to `cs`.
pub fn stage_write(
    cs: &mut Changeset,
    old: Option<&Record>,
    new: Option<Record>,
    now: DateTime<Utc>,
    cause: Option<Cause>,
) {
    let kinds = EventKind::for_change(old, new.as_ref());
    let snapshot = new.as_ref().or(old);
    for k in kinds {
        cs.events
            .push(event(&cs.tenant, k, snapshot, now, cause.clone()));
    }
    match (old, new) {
        (_, Some(r)) => cs.records.push(RecordWrite::Put {
            expected: old.map(|o| o.version),
            record: Box::new(r),
        }),
        (Some(o), None) => cs.records.push(RecordWrite::Delete {
            id: o.id.clone(),
            expected: o.version,
        }),
        (None, None) => {}
    }
}

pub fn get(store: &Store, tenant: &str, id: &str) -> Result<Record> {
    store
        .record(tenant, id)?
        .ok_or_else(|| CrmError::NotFound(format!("record {id:?}")))
}

pub fn pipeline(store: &Store, tenant: &str, id: &str) -> Result<Pipeline> {
    store
        .pipeline(tenant, id)?
        .ok_or_else(|| CrmError::Invalid(format!("pipeline {id:?} does not exist")))
}

/// Checks that links point at existing records of the right kind in the same tenant.
pub fn check_links(store: &Store, tenant: &str, r: &Record) -> Result<()> {
    for (field, id, kind) in r.links() {
        match store.record(tenant, id)? {
            Some(target) if target.kind == kind => {}
            Some(target) => {
                return Err(CrmError::Invalid(format!(
                    "field {field:?}: record {id:?} is a {}, not a {}",
                    target.kind.as_str(),
                    kind.as_str()
                )))
            }
            None => {
                return Err(CrmError::Invalid(format!(
                    "field {field:?}: record {id:?} does not exist"
                )))
            }
        }
    }
    Ok(())
}

pub fn create(
    store: &Store,
    tenant: &str,
    input: NewRecord,
    now: DateTime<Utc>,
) -> Result<(Record, Changeset)> {
    let kind = input.kind;
    let mut r = Record {
        id: new_id("rec"),
        kind,
        name: String::new(),
        email: None,
        phone: None,
        amount: None,
        currency: None,
        owner: None,
        company: None,
        contact: None,
        pipeline: None,
        stage: None,
        custom: Map::new(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let mut fields: Vec<(&str, Value)> = vec![
        ("name", Value::String(input.name)),
        (
            "email",
            input.email.map(Value::String).unwrap_or(Value::Null),
        ),
        (
            "phone",
            input.phone.map(Value::String).unwrap_or(Value::Null),
        ),
        (
            "owner",
            input.owner.map(Value::String).unwrap_or(Value::Null),
        ),
        (
            "company",
            input.company.map(Value::String).unwrap_or(Value::Null),
        ),
        (
            "contact",
            input.contact.map(Value::String).unwrap_or(Value::Null),
        ),
    ];
    if let Some(a) = input.amount {
        fields.push((
            "amount",
            serde_json::Number::from_f64(a)
                .map(Value::Number)
                .ok_or_else(|| {
                    CrmError::Invalid("field \"amount\" must be a finite number".into())
                })?,
        ));
    }
    if let Some(c) = input.currency {
        fields.push(("currency", Value::String(c)));
    }
    for (name, value) in fields {
        r.set_field(name, value).map_err(CrmError::Invalid)?;
    }
    for (name, value) in input.custom {
        if CORE_FIELDS.contains(&name.as_str()) {
            return Err(CrmError::Invalid(format!(
                "custom field {name:?} shadows a core field; set it at the top level"
            )));
        }
        r.set_field(&name, value)
            .map_err(|e| CrmError::Invalid(format!("custom: {e}")))?;
    }
    r.check_size().map_err(CrmError::Invalid)?;
    if kind.has_pipeline() {
        let p = match input.pipeline {
            Some(id) => pipeline(store, tenant, &id)?,
            None => default_pipeline(store, tenant, kind)?,
        };
        if p.kind.record_kind() != kind {
            return Err(CrmError::Invalid(format!(
                "pipeline {:?} is for {}s, not {}s",
                p.id,
                p.kind.record_kind().as_str(),
                kind.as_str()
            )));
        }
        let stage = match input.stage {
            Some(s) => p.stage(&s).ok_or_else(|| bad_stage(&p, &s))?.id.clone(),
            None => p
                .initial_stage()
                .map(|s| s.id.clone())
                .ok_or_else(|| CrmError::Invalid(format!("pipeline {:?} has no stages", p.id)))?,
        };
        r.pipeline = Some(p.id);
        r.stage = Some(stage);
    } else if input.pipeline.is_some() || input.stage.is_some() {
        return Err(CrmError::Invalid(format!(
            "{}s do not live in pipelines; drop \"pipeline\" and \"stage\"",
            kind.as_str()
        )));
    }
    check_links(store, tenant, &r)?;
    let mut cs = Changeset::new(tenant);
    stage_write(&mut cs, None, Some(r.clone()), now, None);
    Ok((r, cs))
}

fn default_pipeline(store: &Store, tenant: &str, kind: RecordKind) -> Result<Pipeline> {
    let want = match kind {
        RecordKind::Deal => PipelineKind::Deal,
        _ => PipelineKind::Lead,
    };
    store
        .pipelines(tenant)?
        .into_iter()
        .find(|p| p.kind == want)
        .ok_or_else(|| {
            CrmError::Invalid(format!(
                "the tenant has no {} pipeline; create one or name \"pipeline\"",
                kind.as_str()
            ))
        })
}

fn bad_stage(p: &Pipeline, stage: &str) -> CrmError {
    let known: Vec<&str> = p.stages.iter().map(|s| s.id.as_str()).collect();
    CrmError::Invalid(format!(
        "stage {stage:?} is not in pipeline {:?} (stages: {})",
        p.id,
        known.join(", ")
    ))
}

fn check_expected(r: &Record, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(v) if v != r.version => Err(CrmError::Conflict(format!(
            "record {:?} is at version {}, not {v}; reload it and retry",
            r.id, r.version
        ))),
        _ => Ok(()),
    }
}

/// Applies a JSON patch: core fields by name (null clears), `custom` merged key by key (null
/// removes), `version` for optimistic concurrency.
pub fn patch(
    store: &Store,
    tenant: &str,
    id: &str,
    body: Map<String, Value>,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(Record, Changeset)> {
    let old = get(store, tenant, id)?;
    let mut expected = expected;
    let mut r = old.clone();
    for (name, value) in body {
        match name.as_str() {
            "version" => match value.as_u64() {
                Some(v) => expected = Some(v),
                None => {
                    return Err(CrmError::Invalid(
                        "field \"version\" must be a non-negative integer".into(),
                    ))
                }
            },
            "custom" => match value {
                Value::Object(m) => {
                    for (k, v) in m {
                        if CORE_FIELDS.contains(&k.as_str()) {
                            return Err(CrmError::Invalid(format!(
                                "custom field {k:?} shadows a core field; set it at the top level"
                            )));
                        }
                        r.set_field(&k, v)
                            .map_err(|e| CrmError::Invalid(format!("custom: {e}")))?;
                    }
                }
                _ => {
                    return Err(CrmError::Invalid(
                        "field \"custom\" must be an object".into(),
                    ))
                }
            },
            "stage" | "pipeline" => {
                return Err(CrmError::Invalid(format!(
                    "field {name:?} changes through POST /v1/records/{id}/stage"
                )))
            }
            n if CORE_FIELDS.contains(&n) => r.set_field(n, value).map_err(CrmError::Invalid)?,
            _ => {
                return Err(CrmError::UnknownField(format!(
                    "unknown field {name:?}; expected one of: {}, custom, version",
                    CORE_FIELDS.join(", ")
                )))
            }
        }
    }
    check_expected(&old, expected)?;
    r.check_size().map_err(CrmError::Invalid)?;
    check_links(store, tenant, &r)?;
    Ok(finish(tenant, &old, r, now))
}

/// Moves a record to `stage`, validated against its pipeline.
pub fn move_stage(
    store: &Store,
    tenant: &str,
    id: &str,
    stage: &str,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(Record, Changeset)> {
    let old = get(store, tenant, id)?;
    check_expected(&old, expected)?;
    let r = moved(store, tenant, &old, stage)?;
    Ok(finish(tenant, &old, r, now))
}

/// `old` moved to `stage`, validated; the caller decides about direction.
fn moved(store: &Store, tenant: &str, old: &Record, stage: &str) -> Result<Record> {
    let Some(pid) = &old.pipeline else {
        return Err(CrmError::Invalid(format!(
            "{}s have no stages",
            old.kind.as_str()
        )));
    };
    let p = pipeline(store, tenant, pid)?;
    if p.stage(stage).is_none() {
        return Err(bad_stage(&p, stage));
    }
    let mut r = old.clone();
    r.stage = Some(stage.to_string());
    Ok(r)
}

fn finish(tenant: &str, old: &Record, mut r: Record, now: DateTime<Utc>) -> (Record, Changeset) {
    let mut cs = Changeset::new(tenant);
    if EventKind::for_change(Some(old), Some(&r)).is_empty() {
        return (old.clone(), cs);
    }
    r.version = old.version + 1;
    r.updated_at = now;
    stage_write(&mut cs, Some(old), Some(r.clone()), now, None);
    (r, cs)
}

pub fn delete(
    store: &Store,
    tenant: &str,
    id: &str,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Changeset> {
    let old = get(store, tenant, id)?;
    check_expected(&old, expected)?;
    let mut cs = Changeset::new(tenant);
    stage_write(&mut cs, Some(&old), None, now, None);
    Ok(cs)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"company": "Analytical Engines Ltd", "deal": "Difference engine",
    "amount": 2740, "currency": "GBP"}))]
pub struct Conversion {
    /// Create a contact from the lead (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub contact: bool,
    /// Create a company named this (optional).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub company: Option<String>,
    /// Create a deal with this title (optional).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub deal: Option<String>,
    /// The deal's amount, at least 0.
    #[schema(minimum = 0)]
    pub amount: Option<f64>,
    /// The deal's currency: a three-letter ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// The deal pipeline; defaults to the tenant's first deal pipeline.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub deal_pipeline: Option<String>,
}

fn yes() -> bool {
    true
}

/// Bitrix24-style lead conversion: contact, company and deal created from the lead, which
/// moves to its pipeline's first `won` stage. All in one changeset.
pub fn convert(
    store: &Store,
    tenant: &str,
    id: &str,
    c: Conversion,
    now: DateTime<Utc>,
) -> Result<(Vec<Record>, Changeset)> {
    let lead = get(store, tenant, id)?;
    if lead.kind != RecordKind::Lead {
        return Err(CrmError::Invalid(format!(
            "only leads convert; record {id:?} is a {}",
            lead.kind.as_str()
        )));
    }
    let lp = pipeline(store, tenant, lead.pipeline.as_deref().unwrap_or_default())?;
    let won = lp
        .stages
        .iter()
        .find(|s| s.semantic == StageSemantic::Won)
        .ok_or_else(|| {
            CrmError::Invalid(format!(
                "pipeline {:?} has no won stage to convert into",
                lp.id
            ))
        })?;
    if lead.stage.as_deref() == Some(won.id.as_str()) {
        return Err(CrmError::Conflict(format!(
            "lead {id:?} is already converted"
        )));
    }
    let base = |kind, name: String| Record {
        id: new_id("rec"),
        kind,
        name,
        email: None,
        phone: None,
        amount: None,
        currency: None,
        owner: lead.owner.clone(),
        company: None,
        contact: None,
        pipeline: None,
        stage: None,
        custom: Map::new(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let mut cs = Changeset::new(tenant);
    let mut created = Vec::new();
    let company = c.company.map(|name| {
        let r = base(RecordKind::Company, name);
        created.push(r.clone());
        r
    });
    let contact = c.contact.then(|| {
        let mut r = base(RecordKind::Contact, lead.name.clone());
        r.email = lead.email.clone();
        r.phone = lead.phone.clone();
        r.company = company
            .as_ref()
            .map(|x| x.id.clone())
            .or(lead.company.clone());
        r.custom = lead.custom.clone();
        created.push(r.clone());
        r
    });
    if let Some(title) = c.deal {
        let mut d = base(RecordKind::Deal, title);
        let dp = match c.deal_pipeline {
            Some(p) => pipeline(store, tenant, &p)?,
            None => default_pipeline(store, tenant, RecordKind::Deal)?,
        };
        if dp.kind != PipelineKind::Deal {
            return Err(CrmError::Invalid(format!(
                "pipeline {:?} is not a deal pipeline",
                dp.id
            )));
        }
        d.stage = dp.initial_stage().map(|s| s.id.clone());
        d.pipeline = Some(dp.id);
        if let Some(a) = c.amount {
            d.set_field(
                "amount",
                serde_json::Number::from_f64(a)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            )
            .map_err(CrmError::Invalid)?;
        }
        if let Some(cur) = c.currency {
            d.set_field("currency", Value::String(cur))
                .map_err(CrmError::Invalid)?;
        }
        d.contact = contact.as_ref().map(|x| x.id.clone());
        d.company = company
            .as_ref()
            .map(|x| x.id.clone())
            .or(lead.company.clone());
        created.push(d);
    }
    if created.is_empty() {
        return Err(CrmError::Invalid(
            "conversion creates nothing: ask for a contact, company or deal".into(),
        ));
    }
    for r in &created {
        // Company and deal names come from the request: the same rules as any name.
        r.clone()
            .set_field("name", Value::String(r.name.clone()))
            .map_err(CrmError::Invalid)?;
    }
    for r in &created {
        stage_write(&mut cs, None, Some(r.clone()), now, None);
    }
    let mut l = lead.clone();
    l.stage = Some(won.id.clone());
    l.version += 1;
    l.updated_at = now;
    stage_write(&mut cs, Some(&lead), Some(l.clone()), now, None);
    created.insert(0, l);
    Ok((created, cs))
}
