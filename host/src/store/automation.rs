//! Automation's durable state: run history, the outbox, timers and the job queue.

use chrono::{DateTime, Utc};

use super::{family, Result, Store};
use crate::model::{Event, Job, RunRecord, Timer};

/// Filters for the run history.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub record: Option<String>,
    pub binding: Option<String>,
    pub module: Option<String>,
    pub outcome: Option<String>,
}

impl RunFilter {
    fn matches(&self, r: &RunRecord) -> bool {
        self.record
            .as_ref()
            .is_none_or(|x| r.record.as_ref() == Some(x))
            && self.binding.as_ref().is_none_or(|x| &r.binding == x)
            && self.module.as_ref().is_none_or(|x| &r.module == x)
            && self.outcome.as_ref().is_none_or(|x| r.outcome.name() == x)
    }
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

    /// Runs matching `filter`, newest first, before run id `before`, at most `limit`
    /// (scanning at most `scan_budget`).
    pub fn runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        before: Option<&str>,
        limit: usize,
        scan_budget: usize,
    ) -> Result<Vec<RunRecord>> {
        let prefix = family::runs(tenant);
        let end = match before {
            Some(b) => family::run(tenant, b),
            None => format!("{prefix}\u{ff}"),
        };
        let mut out = Vec::new();
        for item in self
            .data
            .range(prefix.as_bytes().to_vec()..end.into_bytes())
            .rev()
            .take(scan_budget)
        {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let r: RunRecord = super::decode(&key, &v)?;
            if filter.matches(&r) {
                out.push(r);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
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
                tx.put(&family::job(&job.id), job)?;
            }
            Ok(true)
        })
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

    /// The oldest queued jobs, at most `limit`.
    pub fn jobs(&self, limit: usize) -> Result<Vec<Job>> {
        self.scan(family::JOBS, None)
            .take(limit)
            .map(|r| r.map(|(_, j)| j))
            .collect()
    }

    /// Not flushed: a finished job that reappears after a crash finds its run committed.
    pub fn delete_job(&self, id: &str) -> Result<()> {
        self.transact_unflushed(|tx| tx.remove(&family::job(id)).map(|_| ()))
    }
}
