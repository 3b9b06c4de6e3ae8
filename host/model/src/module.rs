//! Automation modules: a name with immutable, numbered versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Module {
    pub name: String,
    /// The highest version number uploaded so far (numbers are never reused).
    pub latest: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One uploaded version. Immutable: a change is a new version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ModuleVersion {
    pub module: String,
    pub version: u32,
    /// SHA-256 of the component bytes; compiled artifacts are cached under it.
    pub hash: String,
    /// Bytes of the uploaded component.
    pub size: u64,
    /// Bytes of its compiled artifact as stored at upload. With `size`, what this version
    /// counts against its tenant's module storage. (Records written before sizes were kept
    /// get it at start-up, from the artifact on disk.)
    #[serde(default)]
    pub artifact_size: u64,
    /// From the component's producers section, when it says.
    pub language: Option<String>,
    /// What the component imports (all allowed by the upload policy).
    pub imports: Vec<String>,
    /// The JSON Schema the version declares for its binding config (custom section
    /// `stagecraft:config-schema`); binding configs must match it. Absent: any object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config_schema: Option<serde_json::Value>,
    /// The id of the key that uploaded it.
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
}
