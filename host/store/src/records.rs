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
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

/// A text search over records: a name containing it, or exactly this email address, both
/// compared case-insensitively. Built once per search (the needle is lowercased here).
struct TextQuery(String);

impl TextQuery {
    fn new(q: &str) -> TextQuery {
        TextQuery(q.trim().to_lowercase())
    }

    fn matches(&self, name: &str, email: Option<&str>) -> bool {
        name.to_lowercase().contains(&self.0)
            || email.is_some_and(|e| e.trim().to_lowercase() == self.0)
    }
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
        self.search_records(tenant, filter, None, after, limit, limits)
    }

    /// [`Store::records`] that also match `text`: a name containing it or exactly this email,
    /// case-insensitively. A scan, bounded by the same budgets and resumed by the same
    /// cursor (an index can replace it later).
    pub fn search_records(
        &self,
        tenant: &str,
        filter: &RecordFilter,
        text: Option<&str>,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<RecordPage> {
        let text = text.map(TextQuery::new);
        let prefix = family::records(tenant);
        let after_key = after.map(|a| family::record(tenant, a));
        let mut page = Filler::new(limit, limits);
        for item in self.scan_raw(&prefix, after_key.as_deref()) {
            let (key, bytes) = item?;
            let head: Head = decode(&key, &bytes)?;
            if !page.look(&head.id, bytes.len()) {
                break;
            }
            let wanted = filter.matches_fields(head.kind, &head.pipeline, &head.stage, &head.owner)
                && text
                    .as_ref()
                    .is_none_or(|t| t.matches(&head.name, head.email.as_deref()));
            if wanted && !page.push(&head.id, bytes.len(), decode(&key, &bytes)?) {
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
