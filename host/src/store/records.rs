//! Record and journal reads: get, filtered pages, a record's events.

use serde::Deserialize;

use super::page::{Filler, ListLimits, Page};
use super::{decode, family, Result, Store};
use crate::model::{Event, Record, RecordFilter, RecordKind};

/// The fields a filter looks at: decoding only these (serde skips the rest without
/// allocating, and no timestamps are parsed) makes scanning past non-matches cheap.
#[derive(Deserialize)]
struct Head {
    id: String,
    kind: RecordKind,
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

pub struct RecordPage {
    pub records: Vec<Record>,
    /// Pass back as `after` for the next page; None on the last page.
    pub next: Option<String>,
}

impl Store {
    pub fn record(&self, tenant: &str, id: &str) -> Result<Option<Record>> {
        self.get(&family::record(tenant, id))
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
        let prefix = family::records(tenant);
        let after_key = after.map(|a| family::record(tenant, a));
        let mut page = Filler::new(limit, limits);
        for item in self.scan_raw(&prefix, after_key.as_deref()) {
            let (key, bytes) = item?;
            let head: Head = decode(&key, &bytes)?;
            if !page.look(&head.id, bytes.len()) {
                break;
            }
            if filter.matches_fields(head.kind, &head.pipeline, &head.stage, &head.owner)
                && !page.push(&head.id, bytes.len(), decode(&key, &bytes)?)
            {
                break;
            }
        }
        let page = page.finish(|last| {
            Ok(self
                .scan_raw(&prefix, Some(&family::record(tenant, last)))
                .next()
                .is_some())
        })?;
        Ok(RecordPage {
            records: page.items,
            next: page.next,
        })
    }

    pub fn event(&self, tenant: &str, id: &str) -> Result<Option<Event>> {
        self.get(&family::event(tenant, id))
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
        let prefix = family::record_events(tenant, record);
        let after_key = after.map(|a| family::record_event(tenant, record, a));
        let mut page = Filler::new(limit, limits);
        for item in self.scan_raw(&prefix, after_key.as_deref()) {
            let (k, _) = item?;
            let id = family::id_of(&k).to_string();
            let key = family::event(tenant, &id);
            let Some(bytes) = self.data.get(&key)? else {
                continue;
            };
            if !page.look(&id, bytes.len()) || !page.push(&id, bytes.len(), decode(&key, &bytes)?) {
                break;
            }
        }
        page.finish(|last| {
            Ok(self
                .scan_raw(&prefix, Some(&family::record_event(tenant, record, last)))
                .next()
                .is_some())
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
        let prefix = family::events(tenant);
        let after_key = after.map(|a| family::event(tenant, a));
        let mut page = Filler::new(limit, limits);
        for item in self.scan_raw(&prefix, after_key.as_deref()) {
            let (key, bytes) = item?;
            let id = family::id_of(&key).to_string();
            if !page.look(&id, bytes.len()) || !page.push(&id, bytes.len(), decode(&key, &bytes)?) {
                break;
            }
        }
        page.finish(|last| {
            Ok(self
                .scan_raw(&prefix, Some(&family::event(tenant, last)))
                .next()
                .is_some())
        })
    }
}
