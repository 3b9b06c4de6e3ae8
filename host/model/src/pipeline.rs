//! Pipelines: ordered stages a lead or deal moves through.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::id::is_valid_slug;
use super::record::RecordKind;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PipelineKind {
    Lead,
    Deal,
}

impl PipelineKind {
    pub fn record_kind(self) -> RecordKind {
        match self {
            PipelineKind::Lead => RecordKind::Lead,
            PipelineKind::Deal => RecordKind::Deal,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageSemantic {
    Open,
    Won,
    Lost,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Slug, unique within the pipeline (`new`, `qualified`, …).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: String,
    #[schema(min_length = 1, pattern = "\\S")]
    pub name: String,
    pub semantic: StageSemantic,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Pipeline {
    pub id: String,
    pub name: String,
    pub kind: PipelineKind,
    /// Ordered; the first stage is where new records start.
    pub stages: Vec<Stage>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Pipeline {
    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    pub fn stage_index(&self, id: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.id == id)
    }

    pub fn initial_stage(&self) -> Option<&Stage> {
        self.stages.first()
    }
}

/// Checks the shape rules every pipeline obeys; the message names the first broken rule.
pub fn validate_stages(kind: PipelineKind, stages: &[Stage]) -> Result<(), String> {
    if stages.is_empty() {
        return Err("a pipeline needs at least one stage".into());
    }
    if stages.len() > 50 {
        return Err("a pipeline has at most 50 stages".into());
    }
    let mut seen = std::collections::HashSet::new();
    for s in stages {
        if !is_valid_slug(&s.id) {
            return Err(format!(
                "stage id {:?} must be {}",
                s.id,
                stagecraft_rules::field::SLUG_RULE
            ));
        }
        if !seen.insert(s.id.as_str()) {
            return Err(format!("stage id {:?} appears twice", s.id));
        }
        if s.name.trim().is_empty() {
            return Err(format!("stage {:?} needs a name", s.id));
        }
        if s.name.len() > 200 {
            return Err(format!("stage {:?}: a name is at most 200 bytes", s.id));
        }
    }
    if stages[0].semantic != StageSemantic::Open {
        return Err(format!(
            "the first stage {:?} is where records start, so it must be open",
            stages[0].id
        ));
    }
    if kind == PipelineKind::Deal {
        let closing: Vec<_> = stages.iter().map(|s| s.semantic).collect();
        let has_won = closing.contains(&StageSemantic::Won);
        let has_lost = closing.contains(&StageSemantic::Lost);
        if !has_won || !has_lost {
            return Err("a deal pipeline needs a won stage and a lost stage".into());
        }
        // Closed stages come after every open stage.
        let first_closed = closing
            .iter()
            .position(|s| *s != StageSemantic::Open)
            .unwrap_or(closing.len());
        if closing[first_closed..].contains(&StageSemantic::Open) {
            return Err(
                "a deal pipeline ends in its won/lost stages: no open stage may follow them".into(),
            );
        }
    }
    Ok(())
}

/// The pipelines every new tenant starts with.
pub fn default_stages(kind: PipelineKind) -> Vec<Stage> {
    let s = |id: &str, name: &str, semantic| Stage {
        id: id.into(),
        name: name.into(),
        semantic,
    };
    match kind {
        PipelineKind::Lead => vec![
            s("new", "New", StageSemantic::Open),
            s("contacted", "Contacted", StageSemantic::Open),
            s("qualified", "Qualified", StageSemantic::Open),
            s("converted", "Converted", StageSemantic::Won),
            s("disqualified", "Disqualified", StageSemantic::Lost),
        ],
        PipelineKind::Deal => vec![
            s("discovery", "Discovery", StageSemantic::Open),
            s("proposal", "Proposal", StageSemantic::Open),
            s("negotiation", "Negotiation", StageSemantic::Open),
            s("won", "Won", StageSemantic::Won),
            s("lost", "Lost", StageSemantic::Lost),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        validate_stages(PipelineKind::Lead, &default_stages(PipelineKind::Lead)).unwrap();
        validate_stages(PipelineKind::Deal, &default_stages(PipelineKind::Deal)).unwrap();
    }

    #[test]
    fn deal_pipelines_must_close() {
        let mut stages = default_stages(PipelineKind::Deal);
        stages.retain(|s| s.semantic != StageSemantic::Lost);
        let err = validate_stages(PipelineKind::Deal, &stages).unwrap_err();
        assert!(err.contains("won stage and a lost stage"), "{err}");
        let mut stages = default_stages(PipelineKind::Deal);
        stages.swap(2, 3);
        assert!(validate_stages(PipelineKind::Deal, &stages).is_err());
    }
}
