//! The pipeline row: its stages, in order.

use serde::{Deserialize, Serialize};
use stagecraft_model::{Pipeline, PipelineKind, Stage, StageSemantic};

use super::{stored_row, RowError, Ts};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum PipelineKindRow {
    Lead,
    Deal,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum SemanticRow {
    Open,
    Won,
    Lost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StageRow {
    id: String,
    name: String,
    semantic: SemanticRow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PipelineRow {
    id: String,
    name: String,
    kind: PipelineKindRow,
    stages: Vec<StageRow>,
    version: u64,
    created_at: Ts,
    updated_at: Ts,
}

stored_row!(PipelineRow => "pipeline", 1);

impl From<&Pipeline> for PipelineRow {
    fn from(p: &Pipeline) -> PipelineRow {
        PipelineRow {
            id: p.id.clone(),
            name: p.name.clone(),
            kind: match p.kind {
                PipelineKind::Lead => PipelineKindRow::Lead,
                PipelineKind::Deal => PipelineKindRow::Deal,
            },
            stages: p
                .stages
                .iter()
                .map(|s| StageRow {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    semantic: match s.semantic {
                        StageSemantic::Open => SemanticRow::Open,
                        StageSemantic::Won => SemanticRow::Won,
                        StageSemantic::Lost => SemanticRow::Lost,
                    },
                })
                .collect(),
            version: p.version,
            created_at: (&p.created_at).into(),
            updated_at: (&p.updated_at).into(),
        }
    }
}

impl TryFrom<PipelineRow> for Pipeline {
    type Error = RowError;

    fn try_from(p: PipelineRow) -> Result<Pipeline, RowError> {
        Ok(Pipeline {
            id: p.id,
            name: p.name,
            kind: match p.kind {
                PipelineKindRow::Lead => PipelineKind::Lead,
                PipelineKindRow::Deal => PipelineKind::Deal,
            },
            stages: p
                .stages
                .into_iter()
                .map(|s| Stage {
                    id: s.id,
                    name: s.name,
                    semantic: match s.semantic {
                        SemanticRow::Open => StageSemantic::Open,
                        SemanticRow::Won => StageSemantic::Won,
                        SemanticRow::Lost => StageSemantic::Lost,
                    },
                })
                .collect(),
            version: p.version,
            created_at: p.created_at.get()?,
            updated_at: p.updated_at.get()?,
        })
    }
}
