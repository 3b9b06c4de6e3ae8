//! Pipeline create / replace / delete with shape validation.

use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{CrmError, Result};
use crate::model::id::is_valid_slug;
use crate::model::pipeline::validate_stages;
use crate::model::{Pipeline, PipelineKind, Stage};
use crate::store::{Changeset, Op, Store};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "support", "name": "Support", "kind": "lead", "stages": [
    {"id": "new", "name": "New", "semantic": "open"},
    {"id": "in_progress", "name": "In progress", "semantic": "open"},
    {"id": "solved", "name": "Solved", "semantic": "won"}]}))]
pub struct NewPipeline {
    /// Slug; derived from the name when omitted.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    pub kind: PipelineKind,
    /// In order; the first is open (records start there), a deal pipeline also has a won
    /// and a lost stage after its open ones. Stage ids are unique.
    #[schema(min_items = 1, max_items = 50)]
    pub stages: Vec<Stage>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Leads (EMEA)"}))]
pub struct PipelinePatch {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// The full new list of stages, in order. Stages that records sit in cannot be dropped.
    #[schema(min_items = 1, max_items = 50)]
    pub stages: Option<Vec<Stage>>,
    /// Optimistic concurrency: the version this change was based on.
    pub version: Option<u64>,
}

fn slugify(name: &str) -> String {
    let s: String = name
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').chars().take(64).collect()
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(CrmError::Invalid(
            "pipeline name must be 1-200 characters".into(),
        ));
    }
    Ok(())
}

/// Pipelines a tenant may have: each is listed whole (`GET /v1/pipelines`) and read on
/// every record write, so the list has a size. (HubSpot allows 100 deal pipelines.)
pub const MAX_PIPELINES: usize = 100;

pub fn create(store: &Store, tenant: &str, input: NewPipeline) -> Result<Pipeline> {
    check_name(&input.name)?;
    if store.pipelines(tenant)?.len() >= MAX_PIPELINES {
        return Err(CrmError::Invalid(format!(
            "a tenant has at most {MAX_PIPELINES} pipelines; delete one first"
        )));
    }
    let id = input.id.unwrap_or_else(|| slugify(&input.name));
    if !is_valid_slug(&id) {
        return Err(CrmError::Invalid(format!(
            "pipeline id {id:?} must be {}",
            stagecraft_rules::field::SLUG_RULE
        )));
    }
    validate_stages(input.kind, &input.stages).map_err(CrmError::Invalid)?;
    let now = Utc::now();
    let p = Pipeline {
        id,
        name: input.name,
        kind: input.kind,
        stages: input.stages,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let put = Op::PutPipeline {
        pipeline: p.clone(),
        expected: None,
    };
    store.commit(&Changeset::op(tenant, put))?;
    Ok(p)
}

pub fn update(store: &Store, tenant: &str, id: &str, patch: PipelinePatch) -> Result<Pipeline> {
    let current = store
        .pipeline(tenant, id)?
        .ok_or_else(|| CrmError::NotFound(format!("pipeline {id:?}")))?;
    let base = patch.version.unwrap_or(current.version);
    let mut p = current;
    if let Some(name) = patch.name {
        check_name(&name)?;
        p.name = name;
    }
    if let Some(stages) = patch.stages {
        validate_stages(p.kind, &stages).map_err(CrmError::Invalid)?;
        p.stages = stages;
    }
    p.version = base + 1;
    p.updated_at = Utc::now();
    let put = Op::PutPipeline {
        pipeline: p.clone(),
        expected: Some(base),
    };
    store.commit(&Changeset::op(tenant, put))?;
    Ok(p)
}
