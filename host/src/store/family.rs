//! Key families: how each kind of value is addressed in the data tree.
//!
//! Tenant-owned keys always start with `{family}/{tenant}/`, so a scan can never cross into
//! another tenant's data.

pub fn tenant(id: &str) -> String {
    format!("tenant/{id}")
}

pub fn api_key(hash: &str) -> String {
    format!("key/{hash}")
}

pub fn pipeline(tenant: &str, id: &str) -> String {
    format!("pipe/{tenant}/{id}")
}

pub fn pipelines(tenant: &str) -> String {
    format!("pipe/{tenant}/")
}

pub fn record(tenant: &str, id: &str) -> String {
    format!("rec/{tenant}/{id}")
}

pub fn records(tenant: &str) -> String {
    format!("rec/{tenant}/")
}

/// How many records sit in a stage; guards stage deletion.
pub fn stage_count(tenant: &str, pipeline: &str, stage: &str) -> String {
    format!("cnt/{tenant}/{pipeline}/{stage}")
}

pub fn event(tenant: &str, id: &str) -> String {
    format!("evt/{tenant}/{id}")
}

pub fn events(tenant: &str) -> String {
    format!("evt/{tenant}/")
}

pub fn record_event(tenant: &str, record: &str, event: &str) -> String {
    format!("rev/{tenant}/{record}/{event}")
}

pub fn record_events(tenant: &str, record: &str) -> String {
    format!("rev/{tenant}/{record}/")
}

/// The last path segment of a key: the id it stores.
pub fn id_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

pub fn module(tenant: &str, name: &str) -> String {
    format!("mod/{tenant}/{name}")
}

pub fn modules(tenant: &str) -> String {
    format!("mod/{tenant}/")
}

/// Versions are zero-padded so key order is numeric order.
pub fn module_version(tenant: &str, name: &str, version: u32) -> String {
    format!("modv/{tenant}/{name}/{version:010}")
}

pub fn module_versions(tenant: &str, name: &str) -> String {
    format!("modv/{tenant}/{name}/")
}

/// How many bindings use a module version; a used version cannot be deleted.
pub fn module_uses(tenant: &str, name: &str, version: u32) -> String {
    format!("muse/{tenant}/{name}/{version:010}")
}
