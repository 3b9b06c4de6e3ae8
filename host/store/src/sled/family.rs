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

/// How many versions of a module are stored (deleted ones do not count).
pub fn module_stored_versions(tenant: &str, name: &str) -> String {
    format!("mvn/{tenant}/{name}")
}

/// How many of a tenant's modules have at least one stored version.
pub fn tenant_modules(tenant: &str) -> String {
    format!("mtn/{tenant}")
}

/// Bytes of a tenant's stored module versions: sources plus compiled artifacts.
pub fn tenant_module_bytes(tenant: &str) -> String {
    format!("mtb/{tenant}")
}

/// How many stored versions, in any tenant, have this content hash: its files (shared by
/// hash) are removed when the last one goes.
pub fn module_files(hash: &str) -> String {
    format!("mref/{hash}")
}

/// Set once the module counters above cover every stored version (older data is counted
/// once when it opens).
pub const MODULES_COUNTED: &str = "meta/modules-counted";

/// Every tenant's module versions (the count when older data opens).
pub const MODULE_VERSIONS: &str = "modv/";

pub fn binding(tenant: &str, id: &str) -> String {
    format!("bind/{tenant}/{id}")
}

pub fn bindings(tenant: &str) -> String {
    format!("bind/{tenant}/")
}

pub fn run(tenant: &str, id: &str) -> String {
    format!("run/{tenant}/{id}")
}

pub fn runs(tenant: &str) -> String {
    format!("run/{tenant}/")
}

/// A binding's runs by when they started (replay windows, retention).
pub fn binding_run(tenant: &str, binding: &str, started_ms: i64, run: &str) -> String {
    format!("brun/{tenant}/{binding}/{started_ms:016}/{run}")
}

pub fn binding_runs(tenant: &str, binding: &str) -> String {
    format!("brun/{tenant}/{binding}/")
}

/// What a module's (`m`) or a binding's (`b`) runs in one hour add up to.
pub fn rollup(tenant: &str, scope: &str, name: &str, hour: i64) -> String {
    format!("roll/{tenant}/{scope}/{name}/{hour:012}")
}

/// Where retention last stopped in a family (per tenant), so it never rescans what it pruned.
pub fn retention_mark(what: &str, tenant: &str) -> String {
    format!("retm/{what}/{tenant}")
}

pub fn message(tenant: &str, id: &str) -> String {
    format!("out/{tenant}/{id}")
}

pub fn messages(tenant: &str) -> String {
    format!("out/{tenant}/")
}

/// Idempotency keys already used in a tenant's outbox.
pub fn idempotency(tenant: &str, key: &str) -> String {
    format!("idem/{tenant}/{}", hex::encode(key.as_bytes()))
}

/// Timers sort by due time across tenants, so the scheduler reads only what is due.
pub fn timer(due_ms: i64, tenant: &str, id: &str) -> String {
    format!("timer/{due_ms:016}/{tenant}/{id}")
}

pub const TIMERS: &str = "timer/";

/// The keys of the timers tied to a record (for cancellation when it leaves a stage).
pub fn record_timers(tenant: &str, record: &str) -> String {
    format!("rtim/{tenant}/{record}")
}

/// How many follow-ups (timers a module scheduled) are pending for a binding on a record;
/// kept in the transactions that write, fire and cancel timers.
pub fn follow_ups(tenant: &str, binding: &str, record: &str) -> String {
    format!("fup/{tenant}/{binding}/{record}")
}

/// How many follow-ups are pending in a tenant.
pub fn tenant_follow_ups(tenant: &str) -> String {
    format!("fupt/{tenant}")
}

/// Set once the follow-up counters cover every stored timer (they came with version 0.2;
/// older data is counted once at start-up).
pub const FOLLOW_UPS_COUNTED: &str = "meta/follow-ups-counted";

/// Jobs are queued per tenant and sort by id (a ULID) within it, so the worker can take
/// tenants round-robin and each tenant's jobs first in, first out.
pub fn job(tenant: &str, id: &str) -> String {
    format!("job/{tenant}/{id}")
}

/// All of a tenant's queued jobs.
pub fn tenant_jobs(tenant: &str) -> String {
    format!("job/{tenant}/")
}

/// The first key after every job of `tenant` ('0' follows '/').
pub fn after_tenant_jobs(tenant: &str) -> String {
    format!("job/{tenant}0")
}

pub const JOBS: &str = "job/";

/// Outbox messages waiting for a delivery attempt, by due time across tenants.
pub fn due(at_ms: i64, tenant: &str, id: &str) -> String {
    format!("due/{at_ms:016}/{tenant}/{id}")
}

pub const DUE: &str = "due/";

/// Delivered messages by when they were sent, across tenants (for retention).
pub fn sent(at_ms: i64, tenant: &str, id: &str) -> String {
    format!("sent/{at_ms:016}/{tenant}/{id}")
}

pub const SENT: &str = "sent/";

pub fn channels(tenant: &str) -> String {
    format!("chan/{tenant}")
}

pub fn webhook_secret(tenant: &str) -> String {
    format!("whsec/{tenant}")
}

pub fn notification(tenant: &str, user: &str, id: &str) -> String {
    format!("notif/{tenant}/{}/{id}", hex::encode(user.as_bytes()))
}

pub fn notifications(tenant: &str, user: &str) -> String {
    format!("notif/{tenant}/{}/", hex::encode(user.as_bytes()))
}
