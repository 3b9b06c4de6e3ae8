//! The facade's typed reads: each builds a [`Read`] or [`List`] and turns the backend's rows
//! back into model values. Bindings and pipelines are served from the decoded caches.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use stagecraft_model::stats::Rollup;
use stagecraft_model::{
    ApiKey, Binding, ChannelConfig, Event, Module, ModuleVersion, Notification, OutboxMessage,
    Pipeline, Record, RecordFilter, RunRecord, Tenant, Timer,
};

use crate::query::{
    DueMessage, List, ListLimits, MessageFilter, Page, PageRequest, QueuedJob, Read, Row,
    RunFilter, Scope,
};
use crate::store::{pipeline_key, Store};
use crate::{Result, StoreError};

pub struct RecordPage {
    pub records: Vec<Record>,
    /// Pass back as `after` for the next page; None on the last page.
    pub next: Option<String>,
}

/// The variant's value, or None for another variant.
macro_rules! pick {
    ($variant:path) => {
        |row: Row| match row {
            $variant(v) => Some(v),
            _ => None,
        }
    };
}

fn mismatch(what: &str) -> StoreError {
    StoreError::Backend(format!(
        "the backend answered {what} with another kind of row"
    ))
}

impl Store {
    pub(crate) fn one<T>(
        &self,
        read: Read,
        pick: impl FnOnce(Row) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.backend.read(&read)? {
            None => Ok(None),
            Some(row) => pick(row)
                .map(Some)
                .ok_or_else(|| mismatch(&format!("{read:?}"))),
        }
    }

    pub(crate) fn page<T>(
        &self,
        list: List,
        req: PageRequest,
        pick: impl Fn(Row) -> Option<T>,
    ) -> Result<Page<T>> {
        let page = self.backend.list(&list, &req)?;
        let items = page
            .items
            .into_iter()
            .map(|r| pick(r).ok_or_else(|| mismatch(&format!("{list:?}"))))
            .collect::<Result<Vec<T>>>()?;
        Ok(Page {
            items,
            next: page.next,
        })
    }

    fn complete<T>(&self, list: List, pick: impl Fn(Row) -> Option<T>) -> Result<Vec<T>> {
        Ok(self.page(list, PageRequest::all(), pick)?.items)
    }

    fn count(&self, read: Read) -> Result<u64> {
        Ok(self.one(read, pick!(Row::Count))?.unwrap_or(0))
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>> {
        self.complete(List::Tenants, pick!(Row::Tenant))
    }

    /// The key whose secret hashes to `hash`.
    pub fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let read = Read::KeyByHash {
            hash: hash.to_string(),
        };
        self.one(read, pick!(Row::Key))
    }

    pub fn keys(&self, tenant: &str) -> Result<Vec<ApiKey>> {
        let list = List::Keys {
            tenant: tenant.to_string(),
        };
        self.complete(list, pick!(Row::Key))
    }

    /// Read on every stage move, so kept decoded in memory until the pipeline is written.
    pub fn pipeline(&self, tenant: &str, id: &str) -> Result<Option<Pipeline>> {
        self.pipelines.sync(self.backend.epoch());
        let p = self.pipelines.get_or_load(&pipeline_key(tenant, id), || {
            let read = Read::Pipeline {
                tenant: tenant.to_string(),
                id: id.to_string(),
            };
            self.one(read, pick!(Row::Pipeline))
        })?;
        Ok(p.map(|p| p.as_ref().clone()))
    }

    pub fn pipelines(&self, tenant: &str) -> Result<Vec<Pipeline>> {
        let list = List::Pipelines {
            tenant: tenant.to_string(),
        };
        self.complete(list, pick!(Row::Pipeline))
    }

    pub fn record(&self, tenant: &str, id: &str) -> Result<Option<Record>> {
        let read = Read::Record {
            tenant: tenant.to_string(),
            id: id.to_string(),
        };
        self.one(read, pick!(Row::Record))
    }

    /// Records matching `filter` in creation order, after the record id `after`, at most
    /// `limit`, within the list budgets ([`ListLimits`]: page bytes, and how much a rare
    /// filter may scan); `next` resumes where the page stopped.
    pub fn records(
        &self,
        tenant: &str,
        filter: &RecordFilter,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<RecordPage> {
        self.search_records(tenant, filter, None, after, limit, limits)
    }

    /// [`Store::records`] that also match `text`: a name containing it or exactly this email,
    /// case-insensitively, bounded by the same budgets and resumed by the same cursor.
    pub fn search_records(
        &self,
        tenant: &str,
        filter: &RecordFilter,
        text: Option<&str>,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<RecordPage> {
        let list = List::Records {
            tenant: tenant.to_string(),
            filter: filter.clone(),
            text: text.map(str::to_string),
        };
        let page = self.page(
            list,
            PageRequest::new(after, limit, limits),
            pick!(Row::Record),
        )?;
        Ok(RecordPage {
            records: page.items,
            next: page.next,
        })
    }

    pub fn event(&self, tenant: &str, id: &str) -> Result<Option<Event>> {
        let read = Read::Event {
            tenant: tenant.to_string(),
            id: id.to_string(),
        };
        self.one(read, pick!(Row::Event)).map(|e| e.map(|e| *e))
    }

    /// A record's events, oldest first, after event id `after`, at most `limit` and
    /// within the page's byte budget.
    pub fn record_events(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Event>> {
        let list = List::RecordEvents {
            tenant: tenant.to_string(),
            record: record.to_string(),
        };
        self.page(list, PageRequest::new(after, limit, limits), |r| match r {
            Row::Event(e) => Some(*e),
            _ => None,
        })
    }

    /// The tenant's journal, oldest first, after event id `after`, at most `limit` and
    /// within the page's byte budget.
    pub fn events(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Event>> {
        let list = List::Events {
            tenant: tenant.to_string(),
        };
        self.page(list, PageRequest::new(after, limit, limits), |r| match r {
            Row::Event(e) => Some(*e),
            _ => None,
        })
    }

    pub fn binding(&self, tenant: &str, id: &str) -> Result<Option<Binding>> {
        let read = Read::Binding {
            tenant: tenant.to_string(),
            id: id.to_string(),
        };
        self.one(read, pick!(Row::Binding))
    }

    /// The tenant's bindings, in (pipeline, order, id) order. Read on every change, so kept
    /// decoded in memory until a binding of the tenant is written, and shared, not copied.
    pub fn bindings(&self, tenant: &str) -> Result<Arc<Vec<Binding>>> {
        self.bindings.sync(self.backend.epoch());
        let all = self.bindings.get_or_load(tenant, || {
            let list = List::Bindings {
                tenant: tenant.to_string(),
            };
            let mut all = self.complete(list, pick!(Row::Binding))?;
            all.sort_by(|a, b| (&a.pipeline, a.order, &a.id).cmp(&(&b.pipeline, b.order, &b.id)));
            Ok(Some(all))
        })?;
        Ok(all.unwrap_or_default())
    }

    pub fn module(&self, tenant: &str, name: &str) -> Result<Option<Module>> {
        let read = Read::Module {
            tenant: tenant.to_string(),
            name: name.to_string(),
        };
        self.one(read, pick!(Row::Module))
    }

    pub fn modules(&self, tenant: &str) -> Result<Vec<Module>> {
        let list = List::Modules {
            tenant: tenant.to_string(),
        };
        self.complete(list, pick!(Row::Module))
    }

    pub fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<ModuleVersion>> {
        let list = List::ModuleVersions {
            tenant: tenant.to_string(),
            module: name.to_string(),
        };
        self.complete(list, pick!(Row::ModuleVersion))
    }

    pub fn module_version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Option<ModuleVersion>> {
        let read = Read::ModuleVersion {
            tenant: tenant.to_string(),
            module: name.to_string(),
            version,
        };
        self.one(read, pick!(Row::ModuleVersion))
    }

    pub fn run(&self, tenant: &str, id: &str) -> Result<Option<RunRecord>> {
        let read = Read::Run {
            tenant: tenant.to_string(),
            id: id.to_string(),
        };
        self.one(read, pick!(Row::Run))
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
        let list = List::Runs {
            tenant: tenant.to_string(),
            filter: filter.clone(),
        };
        self.page(
            list,
            PageRequest::new(before, limit, limits),
            pick!(Row::Run),
        )
    }

    /// The rollups of `name` for hours in `[since_hour, until_hour)`, as (hour, rollup).
    pub fn rollups(
        &self,
        tenant: &str,
        scope: Scope,
        name: &str,
        since_hour: i64,
        until_hour: i64,
    ) -> Result<Vec<(i64, Rollup)>> {
        let list = List::Rollups {
            tenant: tenant.to_string(),
            scope,
            name: name.to_string(),
            since_hour,
            until_hour,
        };
        self.complete(list, |r| match r {
            Row::Rollup { hour, rollup } => Some((hour, rollup)),
            _ => None,
        })
    }

    /// Ids of `binding`'s runs that started in `[since, until)`, oldest first; with `last`,
    /// only the newest `last` of them. At most `cap` ids (more means the window is too big).
    pub fn binding_runs(
        &self,
        tenant: &str,
        binding: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        last: Option<usize>,
        cap: usize,
    ) -> Result<Vec<(i64, String)>> {
        let list = List::BindingRuns {
            tenant: tenant.to_string(),
            binding: binding.to_string(),
            since,
            until,
            last,
        };
        let req = PageRequest::new(None, cap, &ListLimits::default());
        Ok(self
            .page(list, req, |r| match r {
                Row::BindingRun { started_ms, run } => Some((started_ms, run)),
                _ => None,
            })?
            .items)
    }

    pub fn message(&self, tenant: &str, id: &str) -> Result<Option<OutboxMessage>> {
        let read = Read::Message {
            tenant: tenant.to_string(),
            id: id.to_string(),
        };
        self.one(read, pick!(Row::Message))
    }

    /// Messages matching `filter`, oldest first (ids sort by time), after message id
    /// `after`, at most `limit`, within the list budgets; `next` resumes where it stopped.
    pub fn messages(
        &self,
        tenant: &str,
        filter: &MessageFilter,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<OutboxMessage>> {
        let list = List::Messages {
            tenant: tenant.to_string(),
            filter: filter.clone(),
        };
        self.page(
            list,
            PageRequest::new(after, limit, limits),
            pick!(Row::Message),
        )
    }

    /// How many messages wait for a delivery attempt, across tenants.
    pub fn outbox_depth(&self) -> Result<usize> {
        Ok(self.count(Read::OutboxDepth)? as usize)
    }

    /// Reads the due index (entries due at `now`) in time order from just after the entry
    /// `after` (from the start when None), looking at `budget` entries at most. Keeps those
    /// `take` accepts — it is asked once per entry, with the entry's tenant and key — and
    /// returns them with the last entry looked at, where the next read goes on, or None once
    /// the end was reached. An entry `take` turns down costs one key read and nothing else,
    /// so a sweep that goes on where it stopped passes a tenant's backlog in bounded steps
    /// and reaches every other tenant's entries behind it.
    pub fn due_after(
        &self,
        after: Option<&str>,
        now: DateTime<Utc>,
        budget: usize,
        take: impl FnMut(&str, &str) -> bool,
    ) -> Result<(Vec<DueMessage>, Option<String>)> {
        self.due(None, after, now, budget, take)
    }

    /// As [`Store::due_after`], for the entries due from `since` to `now`: what came due
    /// lately, found at once whatever backlog lies before it.
    pub fn due_since(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        budget: usize,
        take: impl FnMut(&str, &str) -> bool,
    ) -> Result<(Vec<DueMessage>, Option<String>)> {
        self.due(Some(since), None, now, budget, take)
    }

    fn due(
        &self,
        since: Option<DateTime<Utc>>,
        after: Option<&str>,
        now: DateTime<Utc>,
        budget: usize,
        mut take: impl FnMut(&str, &str) -> bool,
    ) -> Result<(Vec<DueMessage>, Option<String>)> {
        let list = List::DueMessages { since, until: now };
        let req = PageRequest::new(after, budget, &ListLimits::default());
        let page = self.page(list, req, pick!(Row::Due))?;
        let kept = page
            .items
            .into_iter()
            .filter(|d| take(&d.tenant, &d.key))
            .collect();
        Ok((kept, page.next))
    }

    pub fn channels(&self, tenant: &str) -> Result<ChannelConfig> {
        let read = Read::Channels {
            tenant: tenant.to_string(),
        };
        Ok(self.one(read, pick!(Row::Channels))?.unwrap_or_default())
    }

    /// A user's notifications, oldest first, after notification id `after`, at most
    /// `limit` and within the page's byte budget.
    pub fn notifications(
        &self,
        tenant: &str,
        user: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Notification>> {
        let list = List::Notifications {
            tenant: tenant.to_string(),
            user: user.to_string(),
        };
        self.page(
            list,
            PageRequest::new(after, limit, limits),
            pick!(Row::Notification),
        )
    }

    /// Pending timers of a tenant (for the API and tests).
    pub fn timers(&self, tenant: &str) -> Result<Vec<Timer>> {
        let list = List::Timers {
            tenant: tenant.to_string(),
        };
        self.complete(list, pick!(Row::Timer))
    }

    /// Follow-ups pending for `binding` on `record`, and in the whole tenant.
    pub fn pending_follow_ups(
        &self,
        tenant: &str,
        binding: &str,
        record: &str,
    ) -> Result<(i64, i64)> {
        let read = Read::FollowUps {
            tenant: tenant.to_string(),
            binding: binding.to_string(),
            record: record.to_string(),
        };
        let counts = self.one(read, |r| match r {
            Row::FollowUps { pair, all } => Some((pair, all)),
            _ => None,
        })?;
        Ok(counts.unwrap_or((0, 0)))
    }

    /// Tenants with queued jobs, in id order starting after `after` and wrapping around
    /// (round-robin), at most `limit`.
    pub fn job_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let req = PageRequest::new(after, limit, &ListLimits::default());
        Ok(self.page(List::JobTenants, req, pick!(Row::Name))?.items)
    }

    /// The oldest queued jobs of `tenant`, at most `limit`, without taking them (for
    /// operators and tests; workers take them with [`Store::lease_jobs`]).
    pub fn tenant_jobs(&self, tenant: &str, limit: usize) -> Result<Vec<QueuedJob>> {
        let list = List::Jobs {
            tenant: tenant.to_string(),
        };
        let req = PageRequest::new(None, limit, &ListLimits::default());
        Ok(self.page(list, req, pick!(Row::Job))?.items)
    }

    /// Jobs queued in every tenant (for tests and operators).
    pub fn queued_jobs(&self) -> Result<usize> {
        Ok(self.count(Read::QueuedJobs)? as usize)
    }
}
