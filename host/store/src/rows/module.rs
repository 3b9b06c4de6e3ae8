//! Module rows: a module (its latest version) and each stored version.

use serde::{Deserialize, Serialize};
use stagecraft_model::{Module, ModuleVersion};

use super::{stored_row, JsonText, RowError, Ts};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModuleRow {
    name: String,
    latest: u32,
    created_at: Ts,
    updated_at: Ts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModuleVersionRow {
    module: String,
    version: u32,
    hash: String,
    size: u64,
    artifact_size: u64,
    language: Option<String>,
    imports: Vec<String>,
    config_schema: Option<JsonText>,
    uploaded_by: String,
    uploaded_at: Ts,
}

stored_row!(
    ModuleRow => "module", 1;
    ModuleVersionRow => "module version", 1;
);

impl From<&Module> for ModuleRow {
    fn from(m: &Module) -> ModuleRow {
        ModuleRow {
            name: m.name.clone(),
            latest: m.latest,
            created_at: (&m.created_at).into(),
            updated_at: (&m.updated_at).into(),
        }
    }
}

impl TryFrom<ModuleRow> for Module {
    type Error = RowError;

    fn try_from(m: ModuleRow) -> Result<Module, RowError> {
        Ok(Module {
            name: m.name,
            latest: m.latest,
            created_at: m.created_at.get()?,
            updated_at: m.updated_at.get()?,
        })
    }
}

impl From<&ModuleVersion> for ModuleVersionRow {
    fn from(v: &ModuleVersion) -> ModuleVersionRow {
        ModuleVersionRow {
            module: v.module.clone(),
            version: v.version,
            hash: v.hash.clone(),
            size: v.size,
            artifact_size: v.artifact_size,
            language: v.language.clone(),
            imports: v.imports.clone(),
            config_schema: v.config_schema.as_ref().map(JsonText::of),
            uploaded_by: v.uploaded_by.clone(),
            uploaded_at: (&v.uploaded_at).into(),
        }
    }
}

impl TryFrom<ModuleVersionRow> for ModuleVersion {
    type Error = RowError;

    fn try_from(v: ModuleVersionRow) -> Result<ModuleVersion, RowError> {
        Ok(ModuleVersion {
            module: v.module,
            version: v.version,
            hash: v.hash,
            size: v.size,
            artifact_size: v.artifact_size,
            language: v.language,
            imports: v.imports,
            config_schema: v.config_schema.map(|s| s.parse()).transpose()?,
            uploaded_by: v.uploaded_by,
            uploaded_at: v.uploaded_at.get()?,
        })
    }
}
