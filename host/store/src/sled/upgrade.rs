//! Brings a data dir written by an older version up to the current layout, once, when it
//! opens (before anything reads it): jobs queued in the single queue of old (`job/{id}`)
//! move into their tenant's queue, and timers stored before the follow-up counters existed
//! are counted, as are module versions stored before the module quota (their artifact
//! sizes, which only the sandbox's files know, come later: `Store::count_stored_modules`).
//! Last, storage v1's JSON values become storage rows ([`migrate`](super::migrate)); a data
//! dir of a newer format than this binary knows is refused first, untouched.

use std::collections::BTreeMap;

use super::codec::Decode;
use super::{family, migrate, SledBackend};
use crate::quota::stored_bytes;
use crate::Result;
use stagecraft_model::{Job, ModuleVersion, Timer, TimerKind};

pub(super) fn run(b: &SledBackend) -> Result<()> {
    migrate::check(b)?;
    let moved = migrate_legacy_jobs(b)?;
    if moved > 0 {
        tracing::info!(jobs = moved, "moved queued jobs into per-tenant queues");
    }
    let versions = count_stored_modules(b)?;
    if versions > 0 {
        tracing::info!(
            versions,
            "counted module versions stored before the module quota"
        );
    }
    let counted = count_stored_follow_ups(b)?;
    if counted > 0 {
        tracing::info!(
            timers = counted,
            "counted pending follow-ups stored before the limits"
        );
    }
    let rows = migrate::run(b)?;
    if rows > 0 {
        tracing::info!(
            rows,
            format = migrate::FORMAT,
            "migrated the data dir to storage rows"
        );
    }
    Ok(())
}

/// Moves jobs queued by an earlier version (one queue, `job/{id}`) into their tenant's
/// queue (`job/{tenant}/{id}`). A legacy job that cannot be decoded names no tenant, so
/// there is no run to record it in: it is logged with its bytes and dropped. Returns how
/// many were moved.
fn migrate_legacy_jobs(b: &SledBackend) -> Result<usize> {
    let mut legacy = Vec::new();
    for item in b.scan_raw(family::JOBS, None) {
        let (key, bytes) = item?;
        if key[family::JOBS.len()..].contains('/') {
            continue;
        }
        legacy.push((key, bytes));
    }
    let mut moved = 0;
    for (key, bytes) in legacy {
        match Job::decode(&key, &bytes) {
            Ok(job) => {
                let new = family::job(&job.tenant, &job.id);
                b.transact(|tx| {
                    tx.remove(&key)?;
                    tx.put(&new, &job)
                })?;
                moved += 1;
            }
            Err(e) => {
                tracing::error!(key, error = %e, bytes = %String::from_utf8_lossy(&bytes[..bytes.len().min(512)]),
                    "dropping a legacy job that cannot be read");
                b.transact(|tx| tx.remove(&key).map(|_| ()))?;
            }
        }
    }
    Ok(moved)
}

/// Counts the follow-ups of data written before the counters existed, once. Returns how
/// many timers it counted (0 when already done).
fn count_stored_follow_ups(b: &SledBackend) -> Result<u64> {
    if b.data.get(family::FOLLOW_UPS_COUNTED)?.is_some() {
        return Ok(0);
    }
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut n = 0;
    for item in b.scan_raw(family::TIMERS, None) {
        let (key, bytes) = item?;
        let Ok(t) = Timer::decode(&key, &bytes) else {
            tracing::warn!(%key, "unreadable timer; not counted");
            continue;
        };
        if !matches!(t.kind, TimerKind::FollowUp { .. }) {
            continue;
        }
        let tenant = key.split('/').nth(2).unwrap_or_default();
        *counts
            .entry(family::follow_ups(tenant, &t.binding, &t.record))
            .or_default() += 1;
        *counts.entry(family::tenant_follow_ups(tenant)).or_default() += 1;
        n += 1;
    }
    let counts: Vec<(String, i64)> = counts.into_iter().collect();
    for chunk in counts.chunks(256) {
        b.transact(|tx| {
            for (k, v) in chunk {
                tx.set_counter(k, *v)?;
            }
            Ok(())
        })?;
    }
    b.transact(|tx| tx.put(family::FOLLOW_UPS_COUNTED, &true))?;
    Ok(n)
}

/// Counts the module versions of data written before the module counters existed, once
/// (versions without an artifact size count their component only until they are sized).
/// Returns how many versions it counted (0 when already done).
fn count_stored_modules(b: &SledBackend) -> Result<u64> {
    if b.data.get(family::MODULES_COUNTED)?.is_some() {
        return Ok(0);
    }
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut n = 0;
    for item in b.scan_raw(family::MODULE_VERSIONS, None) {
        let (key, bytes) = item?;
        let Ok(v) = ModuleVersion::decode(&key, &bytes) else {
            tracing::warn!(%key, "unreadable module version; not counted");
            continue;
        };
        let tenant = key.split('/').nth(1).unwrap_or_default();
        let versions = counts
            .entry(family::module_stored_versions(tenant, &v.module))
            .or_default();
        *versions += 1;
        if *versions == 1 {
            *counts.entry(family::tenant_modules(tenant)).or_default() += 1;
        }
        *counts
            .entry(family::tenant_module_bytes(tenant))
            .or_default() += stored_bytes(&v);
        *counts.entry(family::module_files(&v.hash)).or_default() += 1;
        n += 1;
    }
    let counts: Vec<(String, i64)> = counts.into_iter().collect();
    for chunk in counts.chunks(256) {
        b.transact(|tx| {
            for (k, v) in chunk {
                tx.set_counter(k, *v)?;
            }
            Ok(())
        })?;
    }
    b.transact(|tx| tx.put(family::MODULES_COUNTED, &true))?;
    Ok(n)
}
