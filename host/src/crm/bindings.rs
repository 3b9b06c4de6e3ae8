//! Binding create / change with validation against the pipeline, the module registry, the
//! version's config schema and the sandbox limits.

use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{CrmError, Result};
use crate::model::id::new_id;
use crate::model::record::{is_custom_field_name, CORE_FIELDS};
use crate::model::{Binding, Grants, Mode, Trigger};
use crate::store::{Changeset, Op, Store};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pipeline": "leads", "module": "lead-scoring", "version": 1,
    "mode": "inline", "triggers": [{"on": "created"}, {"on": "updated", "fields": ["size"]}],
    "config": {"threshold": 60},
    "grants": {"fields": ["score", "owner"], "channels": ["notify"], "backward": false}}))]
pub struct NewBinding {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub pipeline: String,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub module: String,
    #[schema(minimum = 1)]
    pub version: u32,
    #[schema(min_items = 1)]
    pub triggers: Vec<Trigger>,
    /// Default `background`.
    pub mode: Option<Mode>,
    /// Default 0; lower runs first.
    pub order: Option<i32>,
    /// What the module reads as its config: a JSON object of at most 64 KiB (default `{}`).
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Default: no field writes, no channels, forward moves only.
    pub grants: Option<Grants>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false, "order": 1}))]
pub struct BindingPatch {
    /// Switch to another version of the module (this is how you roll back).
    #[schema(minimum = 1)]
    pub version: Option<u32>,
    #[schema(min_items = 1)]
    pub triggers: Option<Vec<Trigger>>,
    pub mode: Option<Mode>,
    pub order: Option<i32>,
    /// A JSON object of at most 64 KiB.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    pub grants: Option<Grants>,
    pub enabled: Option<bool>,
    /// Optimistic concurrency: the revision this change was based on.
    pub revision: Option<u64>,
}

const MAX_DELAY: u64 = 366 * 24 * 3600;

fn validate(store: &Store, tenant: &str, b: &Binding) -> Result<()> {
    let p = store
        .pipeline(tenant, &b.pipeline)?
        .ok_or_else(|| CrmError::Invalid(format!("pipeline {:?} does not exist", b.pipeline)))?;
    let Some(version) = store.module_version(tenant, &b.module, b.version)? else {
        return Err(CrmError::Invalid(format!(
            "module {:?} has no version {}",
            b.module, b.version
        )));
    };
    if b.triggers.is_empty() {
        return Err(CrmError::Invalid(
            "a binding needs at least one trigger".into(),
        ));
    }
    for t in &b.triggers {
        if let Trigger::EnteredStage { stage, .. } = t {
            if p.stage(stage).is_none() {
                return Err(CrmError::Invalid(format!(
                    "trigger entered_stage: stage {stage:?} is not in pipeline {:?}",
                    p.id
                )));
            }
        }
        if let Trigger::Inbound { name, .. } = t {
            if name.trim().is_empty() || name.len() > 100 {
                return Err(CrmError::Invalid(
                    "trigger inbound: name must be 1-100 characters".into(),
                ));
            }
            if crate::model::event::reserved_inbound(name) {
                return Err(CrmError::Invalid(format!(
                    "trigger inbound: {name:?} is reserved for task events; use the \
                     task_completed or task_overdue trigger"
                )));
            }
        }
        if let Trigger::TaskCompleted {
            title_prefix, tag, ..
        }
        | Trigger::TaskOverdue {
            title_prefix, tag, ..
        } = t
        {
            if let Some(p) = title_prefix {
                stagecraft_rules::task::check_title(p).map_err(|e| {
                    CrmError::Invalid(format!("trigger {}: title_prefix: {e}", trigger_name(t)))
                })?;
            }
            if let Some(tag) = tag {
                stagecraft_rules::task::check_tags(std::slice::from_ref(tag))
                    .map_err(|e| CrmError::Invalid(format!("trigger {}: {e}", trigger_name(t))))?;
            }
        }
        if let Trigger::Updated { fields, .. } = t {
            for f in fields {
                if !CORE_FIELDS.contains(&f.as_str()) && !is_custom_field_name(f) {
                    return Err(CrmError::Invalid(format!(
                        "trigger updated: {f:?} is not a field name"
                    )));
                }
            }
        }
        if matches!(t, Trigger::Deleted { .. }) && t.delay_seconds().is_some() {
            return Err(CrmError::Invalid(
                "trigger deleted cannot have a delay: the record is gone by then".into(),
            ));
        }
        if t.delay_seconds().is_some_and(|d| d > MAX_DELAY) {
            return Err(CrmError::Invalid(format!(
                "a trigger delay may be at most {MAX_DELAY} seconds"
            )));
        }
    }
    if !b.config.is_object() {
        return Err(CrmError::Invalid("\"config\" must be a JSON object".into()));
    }
    stagecraft_rules::value::check("\"config\"", &b.config)
        .map_err(|e| CrmError::Invalid(e.to_string()))?;
    // A version that declares a config schema gets only configs that match it.
    if let Some(schema) = &version.config_schema {
        super::config_schema::validate(schema, &b.config).map_err(CrmError::Invalid)?;
    }
    b.grants
        .http
        .validate()
        .map_err(|e| CrmError::Invalid(format!("grants.http: {e}")))?;
    for f in &b.grants.fields {
        if f != "*" && !CORE_FIELDS.contains(&f.as_str()) && !is_custom_field_name(f) {
            return Err(CrmError::Invalid(format!(
                "grants.fields: {f:?} is not a writable field name"
            )));
        }
    }
    Ok(())
}

/// Bindings a tenant may have: every event is matched against all of them, and they are
/// listed whole (`GET /v1/bindings`), each with up to 64 KiB of config.
pub const MAX_BINDINGS: usize = 200;

pub fn create(store: &Store, tenant: &str, input: NewBinding) -> Result<Binding> {
    if store.bindings(tenant)?.len() >= MAX_BINDINGS {
        return Err(CrmError::Invalid(format!(
            "a tenant has at most {MAX_BINDINGS} bindings; delete one first"
        )));
    }
    let now = Utc::now();
    let b = Binding {
        id: new_id("bnd"),
        pipeline: input.pipeline,
        module: input.module,
        version: input.version,
        triggers: input.triggers,
        mode: input.mode.unwrap_or(Mode::Background),
        order: input.order.unwrap_or(0),
        config: input
            .config
            .unwrap_or_else(|| Value::Object(Default::default())),
        grants: input.grants.unwrap_or_default(),
        enabled: input.enabled.unwrap_or(true),
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    validate(store, tenant, &b)?;
    let put = Op::PutBinding {
        binding: b.clone(),
        expected: None,
    };
    store.commit(&Changeset::op(tenant, put))?;
    Ok(b)
}

pub fn update(store: &Store, tenant: &str, id: &str, patch: BindingPatch) -> Result<Binding> {
    let current = store
        .binding(tenant, id)?
        .ok_or_else(|| CrmError::NotFound(format!("binding {id:?}")))?;
    let base = patch.revision.unwrap_or(current.revision);
    let mut b = current;
    if let Some(v) = patch.version {
        b.version = v;
    }
    if let Some(t) = patch.triggers {
        b.triggers = t;
    }
    if let Some(m) = patch.mode {
        b.mode = m;
    }
    if let Some(o) = patch.order {
        b.order = o;
    }
    if let Some(c) = patch.config {
        b.config = c;
    }
    if let Some(g) = patch.grants {
        b.grants = g;
    }
    if let Some(e) = patch.enabled {
        b.enabled = e;
    }
    validate(store, tenant, &b)?;
    b.revision = base + 1;
    b.updated_at = Utc::now();
    let put = Op::PutBinding {
        binding: b.clone(),
        expected: Some(base),
    };
    store.commit(&Changeset::op(tenant, put))?;
    Ok(b)
}

fn trigger_name(t: &Trigger) -> &'static str {
    match t {
        Trigger::TaskOverdue { .. } => "task_overdue",
        _ => "task_completed",
    }
}
