//! Automation's durable state: run history, timers and the job queue.

use chrono::{DateTime, Utc};

use super::codec::{Decode, RunHead};
use super::page::{fill, Fetched};
use super::postings::Dir;
use super::tx::Tx;
use super::{family, index, SledBackend};
use crate::query::{DueTimer, ListLimits, Page, QueuedJob, RunFilter};
use crate::Result;
use stagecraft_model::{Event, Job, RunRecord, Timer, TimerKind};

fn matches(filter: &RunFilter, r: &RunHead) -> bool {
    filter
        .record
        .as_ref()
        .is_none_or(|x| r.record.as_ref() == Some(x))
        && filter.binding.as_ref().is_none_or(|x| &r.binding == x)
        && filter.module.as_ref().is_none_or(|x| &r.module == x)
        && filter.outcome.as_ref().is_none_or(|x| &r.outcome.kind == x)
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

/// Turns a due timer into a job (and, for follow-ups, the journal event it runs on), in
/// the changeset's transaction. False, writing nothing, when the timer was cancelled or
/// fired meanwhile.
pub(super) fn fire_timer(
    tx: &Tx<'_>,
    due: &DueTimer,
    event: Option<&Event>,
    job: Option<&Job>,
) -> Result<bool> {
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
        super::journal::append(tx, &due.tenant, e)?;
    }
    if let Some(job) = job {
        tx.put(&family::job(&due.tenant, &job.id), job)?;
    }
    Ok(true)
}

impl SledBackend {
    /// Runs matching `filter`, newest first, before run id `before`, at most `limit`
    /// within the page's byte budget: read from the run indexes (record, binding, module,
    /// outcome; several intersected), or the history itself when unfiltered.
    pub(super) fn runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        before: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<RunRecord>> {
        let mut lists = Vec::new();
        for (ix, v) in [
            ("nr", &filter.record),
            ("nb", &filter.binding),
            ("nm", &filter.module),
            ("no", &filter.outcome),
        ] {
            if let Some(v) = v {
                lists.push(index::prefix(ix, tenant, &[v]));
            }
        }
        if lists.is_empty() {
            lists.push(family::runs(tenant));
        }
        fill(self, &lists, before, Dir::Down, limit, limits, None, |id| {
            let key = family::run(tenant, id);
            let Some(v) = self.data.get(&key)? else {
                return Ok(Fetched::Mismatch { key, bytes: None });
            };
            let head: RunHead = Decode::decode(&key, &v)?;
            Ok(if matches(filter, &head) {
                Fetched::Item(v.len(), Decode::decode(&key, &v)?)
            } else {
                Fetched::Mismatch {
                    key,
                    bytes: Some(v),
                }
            })
        })
    }

    /// Timers due at `now`, oldest first, each with whether `skip` keeps it from this
    /// caller; at most `limit` kept.
    pub(super) fn due_timers(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        mut skip: impl FnMut(&str) -> bool,
    ) -> Result<Vec<DueTimer>> {
        let end = family::timer(now.timestamp_millis() + 1, "", "");
        let mut out = Vec::new();
        for item in self
            .data
            .range(family::TIMERS.as_bytes().to_vec()..end.into_bytes())
        {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            if skip(&key) {
                continue;
            }
            let timer: Timer = Decode::decode(&key, &v)?;
            let tenant = key.split('/').nth(2).unwrap_or_default().to_string();
            out.push(DueTimer { key, tenant, timer });
        }
        Ok(out)
    }

    /// Follow-ups pending for `binding` on `record`, and in the whole tenant.
    pub(super) fn pending_follow_ups(
        &self,
        tenant: &str,
        binding: &str,
        record: &str,
    ) -> Result<(i64, i64)> {
        Ok((
            self.counter(&family::follow_ups(tenant, binding, record))?,
            self.counter(&family::tenant_follow_ups(tenant))?,
        ))
    }

    /// Pending timers of a tenant (for the API and tests).
    pub(super) fn timers(&self, tenant: &str) -> Result<Vec<Timer>> {
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
    pub(super) fn job_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
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
                // A legacy key (`job/{id}`) has no tenant segment; see `upgrade`.
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

    /// The oldest queued jobs of `tenant` that `skip` does not keep from this caller, at most
    /// `limit`, each as stored: a job that cannot be decoded comes back as the reason, so
    /// the worker can record it and move on.
    pub(super) fn tenant_jobs(
        &self,
        tenant: &str,
        limit: usize,
        mut skip: impl FnMut(&str) -> bool,
    ) -> Result<Vec<QueuedJob>> {
        let mut out = Vec::new();
        for item in self.scan_raw(&family::tenant_jobs(tenant), None) {
            if out.len() >= limit {
                break;
            }
            let (key, bytes) = item?;
            if skip(&key) {
                continue;
            }
            let id = key.rsplit('/').next().unwrap_or_default().to_string();
            let job = <Job as Decode>::decode(&key, &bytes).map_err(|e| e.to_string());
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
    pub(super) fn queued_jobs(&self) -> Result<u64> {
        let mut n = 0;
        for item in self.data.scan_prefix(family::JOBS) {
            item?;
            n += 1;
        }
        Ok(n)
    }
}
