//! Automation's durable state: run history, the outbox, timers and the job queue.

use chrono::{DateTime, Utc};

use super::page::{Filler, ListLimits, Page};
use super::{family, Result, Store, Tx};
use crate::model::{Event, Job, RunRecord, Timer, TimerKind};

/// Filters for the run history.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub record: Option<String>,
    pub binding: Option<String>,
    pub module: Option<String>,
    pub outcome: Option<String>,
}

impl RunFilter {
    fn matches(&self, r: &RunHead) -> bool {
        self.record
            .as_ref()
            .is_none_or(|x| r.record.as_ref() == Some(x))
            && self.binding.as_ref().is_none_or(|x| &r.binding == x)
            && self.module.as_ref().is_none_or(|x| &r.module == x)
            && self.outcome.as_ref().is_none_or(|x| &r.outcome.kind == x)
    }
}

/// The fields a run filter looks at (the rest is skipped without being decoded).
#[derive(serde::Deserialize)]
struct RunHead {
    #[serde(default)]
    record: Option<String>,
    binding: String,
    module: String,
    outcome: OutcomeHead,
}

#[derive(serde::Deserialize)]
struct OutcomeHead {
    kind: String,
}

/// How many follow-ups may be pending (the host's `AutomationConfig` sets them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUpCaps {
    /// For one binding on one record.
    pub per_record: i64,
    /// In one tenant.
    pub per_tenant: i64,
}

impl FollowUpCaps {
    /// What is exceeded when a binding would have `pair` follow-ups pending on a record and
    /// the tenant `all`; None when both are within the caps.
    pub fn exceeded(&self, binding: &str, record: &str, pair: i64, all: i64) -> Option<String> {
        if pair > self.per_record {
            return Some(format!(
                "binding {binding} would have {pair} follow-ups pending on record {record}; the limit is {}",
                self.per_record
            ));
        }
        if all > self.per_tenant {
            return Some(format!(
                "the tenant would have {all} follow-ups pending; the limit is {}",
                self.per_tenant
            ));
        }
        None
    }
}

/// Counts a follow-up timer in (`delta` 1: scheduled) or out (-1: fired or cancelled), in
/// the transaction that writes or removes it; other timers count nothing. Returns the
/// binding's count on the record and the tenant's. Never below zero.
pub(super) fn count_follow_up(
    tx: &Tx<'_>,
    tenant: &str,
    t: &Timer,
    delta: i64,
) -> Result<(i64, i64)> {
    if !matches!(t.kind, TimerKind::FollowUp { .. }) {
        return Ok((0, 0));
    }
    let step = |key: &str| -> Result<i64> {
        if delta < 0 && tx.counter(key)? <= 0 {
            return Ok(0);
        }
        tx.add(key, delta)
    };
    let pair = step(&family::follow_ups(tenant, &t.binding, &t.record))?;
    let all = step(&family::tenant_follow_ups(tenant))?;
    Ok((pair, all))
}

/// A timer that came due, with what firing it needs.
pub struct DueTimer {
    pub key: String,
    pub tenant: String,
    pub timer: Timer,
}

impl Store {
    pub fn run(&self, tenant: &str, id: &str) -> Result<Option<RunRecord>> {
        self.get(&family::run(tenant, id))
    }

    /// Runs matching `filter`, newest first, before run id `before`, at most `limit`,
    /// within the list budgets ([`ListLimits`]): a filter that matches little in a long
    /// history stops at the scan budget and says where (`next`), even with no runs found.
    pub fn runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        before: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<RunRecord>> {
        let prefix = family::runs(tenant);
        let end = match before {
            Some(b) => family::run(tenant, b),
            None => format!("{prefix}\u{ff}"),
        };
        let mut page = Filler::new(limit, limits);
        for item in self
            .data
            .range(prefix.as_bytes().to_vec()..end.into_bytes())
            .rev()
        {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let id = family::id_of(&key).to_string();
            if !page.look(&id, v.len()) {
                break;
            }
            let head: RunHead = super::decode(&key, &v)?;
            if filter.matches(&head) && !page.push(&id, v.len(), super::decode(&key, &v)?) {
                break;
            }
        }
        page.finish(|last| {
            let before = family::run(tenant, last);
            Ok(self
                .data
                .range(prefix.as_bytes().to_vec()..before.into_bytes())
                .next_back()
                .is_some())
        })
    }

    /// Timers due at `now`, oldest first, at most `limit`.
    pub fn due_timers(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<DueTimer>> {
        let end = family::timer(now.timestamp_millis() + 1, "", "");
        let mut out = Vec::new();
        for item in self
            .data
            .range(family::TIMERS.as_bytes().to_vec()..end.into_bytes())
            .take(limit)
        {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let timer: Timer = super::decode(&key, &v)?;
            let tenant = key.split('/').nth(2).unwrap_or_default().to_string();
            out.push(DueTimer { key, tenant, timer });
        }
        Ok(out)
    }

    /// Turns a due timer into a job (and, for follow-ups, the journal event it runs on), in
    /// one transaction. False when the timer was cancelled or fired meanwhile.
    pub fn fire_timer(
        &self,
        due: &DueTimer,
        event: Option<&Event>,
        job: Option<&Job>,
    ) -> Result<bool> {
        self.transact(|tx| {
            if !tx.remove(&due.key)? {
                return Ok(false);
            }
            count_follow_up(tx, &due.tenant, &due.timer, -1)?;
            let list_key = family::record_timers(&due.tenant, &due.timer.record);
            if let Some(mut list) = tx.get::<Vec<String>>(&list_key)? {
                list.retain(|k| k != &due.key);
                if list.is_empty() {
                    tx.remove(&list_key)?;
                } else {
                    tx.put(&list_key, &list)?;
                }
            }
            if let Some(e) = event {
                tx.put(&family::event(&due.tenant, &e.id), e)?;
                if let Some(r) = &e.record {
                    tx.put(&family::record_event(&due.tenant, r, &e.id), &())?;
                }
            }
            if let Some(job) = job {
                tx.put(&family::job(&due.tenant, &job.id), job)?;
            }
            Ok(true)
        })
    }

    /// Follow-ups pending for `binding` on `record`, and in the whole tenant.
    pub fn pending_follow_ups(
        &self,
        tenant: &str,
        binding: &str,
        record: &str,
    ) -> Result<(i64, i64)> {
        let read = |key: String| -> Result<i64> {
            Ok(match self.data.get(&key)? {
                Some(b) if b.len() == 8 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b);
                    i64::from_be_bytes(a)
                }
                _ => 0,
            })
        };
        Ok((
            read(family::follow_ups(tenant, binding, record))?,
            read(family::tenant_follow_ups(tenant))?,
        ))
    }

    /// Counts the follow-ups of data written before the counters existed, once: at start-up,
    /// before any worker runs. Returns how many timers it counted (0 when already done).
    pub fn count_stored_follow_ups(&self) -> Result<u64> {
        if self.data.get(family::FOLLOW_UPS_COUNTED)?.is_some() {
            return Ok(0);
        }
        let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
        let mut n = 0;
        for item in self.scan_raw(family::TIMERS, None) {
            let (key, bytes) = item?;
            let Ok(t) = super::decode::<Timer>(&key, &bytes) else {
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
            self.transact(|tx| {
                for (k, v) in chunk {
                    tx.t.insert(k.as_str(), &v.to_be_bytes()[..])
                        .map_err(super::unabortable)?;
                }
                Ok(())
            })?;
        }
        self.transact(|tx| tx.put(family::FOLLOW_UPS_COUNTED, &true))?;
        Ok(n)
    }

    /// Pending timers of a tenant (for the API and tests).
    pub fn timers(&self, tenant: &str) -> Result<Vec<Timer>> {
        let mut out = Vec::new();
        for item in self.scan::<Timer>(family::TIMERS, None) {
            let (k, t) = item?;
            if k.split('/').nth(2) == Some(tenant) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Tenants with queued jobs, in key order starting after `after` and wrapping around
    /// (round-robin), at most `limit`. Seeks from tenant to tenant; never reads a backlog.
    pub fn job_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut from = match after {
            Some(t) => family::after_tenant_jobs(t),
            None => family::JOBS.to_string(),
        };
        let mut wrapped = after.is_none();
        while out.len() < limit {
            let next = self
                .data
                .range(from.as_bytes().to_vec()..)
                .next()
                .transpose()?
                .filter(|(k, _)| k.starts_with(family::JOBS.as_bytes()));
            let tenant = next.and_then(|(k, _)| {
                let key = String::from_utf8_lossy(&k).into_owned();
                let mut parts = key.splitn(3, '/').skip(1);
                // A legacy key (`job/{id}`) has no tenant segment; see migrate_legacy_jobs.
                match (parts.next(), parts.next()) {
                    (Some(t), Some(_)) => Some(Ok(t.to_string())),
                    (Some(id), None) => Some(Err(id.to_string())),
                    _ => None,
                }
            });
            match tenant {
                Some(Ok(t)) => {
                    if out.contains(&t) {
                        break;
                    }
                    from = family::after_tenant_jobs(&t);
                    out.push(t);
                }
                Some(Err(legacy)) => {
                    let mut k = format!("{}{legacy}", family::JOBS).into_bytes();
                    k.push(0);
                    from = String::from_utf8_lossy(&k).into_owned();
                }
                None if wrapped => break,
                None => {
                    wrapped = true;
                    from = family::JOBS.to_string();
                }
            }
        }
        Ok(out)
    }

    /// The oldest queued jobs of `tenant`, at most `limit`, each as stored: a job that
    /// cannot be decoded comes back as the reason, so the worker can record it and move on.
    pub fn tenant_jobs(&self, tenant: &str, limit: usize) -> Result<Vec<QueuedJob>> {
        let mut out = Vec::new();
        for item in self
            .scan_raw(&family::tenant_jobs(tenant), None)
            .take(limit)
        {
            let (key, bytes) = item?;
            let id = key.rsplit('/').next().unwrap_or_default().to_string();
            let job = super::decode::<Job>(&key, &bytes).map_err(|e| e.to_string());
            out.push(QueuedJob {
                key,
                tenant: tenant.to_string(),
                id,
                job,
            });
        }
        Ok(out)
    }

    /// Jobs queued in every tenant (for tests and operators).
    pub fn queued_jobs(&self) -> Result<usize> {
        let mut n = 0;
        for item in self.data.scan_prefix(family::JOBS) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Moves jobs queued by an earlier version (one queue, `job/{id}`) into their tenant's
    /// queue (`job/{tenant}/{id}`). A legacy job that cannot be decoded names no tenant, so
    /// there is no run to record it in: it is logged with its bytes and dropped. Returns how
    /// many were moved.
    pub fn migrate_legacy_jobs(&self) -> Result<usize> {
        let mut legacy = Vec::new();
        for item in self.scan_raw(family::JOBS, None) {
            let (key, bytes) = item?;
            if key[family::JOBS.len()..].contains('/') {
                continue;
            }
            legacy.push((key, bytes));
        }
        let mut moved = 0;
        for (key, bytes) in legacy {
            match super::decode::<Job>(&key, &bytes) {
                Ok(job) => {
                    let new = family::job(&job.tenant, &job.id);
                    self.transact(|tx| {
                        tx.remove(&key)?;
                        tx.put(&new, &job)
                    })?;
                    moved += 1;
                }
                Err(e) => {
                    tracing::error!(key, error = %e, bytes = %String::from_utf8_lossy(&bytes[..bytes.len().min(512)]),
                        "dropping a legacy job that cannot be read");
                    self.transact(|tx| tx.remove(&key).map(|_| ()))?;
                }
            }
        }
        Ok(moved)
    }

    /// Not flushed: a finished job that reappears after a crash finds its run committed.
    pub fn delete_job(&self, key: &str) -> Result<()> {
        self.transact_unflushed(|tx| tx.remove(key).map(|_| ()))
    }
}

/// A queued job as stored: where it is, and the job (or why it cannot be read).
#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub key: String,
    pub tenant: String,
    pub id: String,
    pub job: std::result::Result<Job, String>,
}
