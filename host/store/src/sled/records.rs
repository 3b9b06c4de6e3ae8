//! Record and journal lists: filtered pages of records, the journal, a record's events.

use super::codec::{Decode, RecordHead};
use super::family;
use super::page::Filler;
use super::SledBackend;
use crate::query::{ListLimits, Page};
use crate::Result;
use stagecraft_model::{Event, Record, RecordFilter};

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

impl SledBackend {
    /// Records matching `filter` (and `text`: a name containing it or exactly this email,
    /// case-insensitively) in creation order, after the record id `after`, at most `limit`,
    /// within the list budgets ([`ListLimits`]: page bytes, and how much a rare filter may
    /// scan); `next` resumes where the page stopped. A scan (an index can replace it later).
    pub(super) fn search_records(
        &self,
        tenant: &str,
        filter: &RecordFilter,
        text: Option<&str>,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Record>> {
        let text = text.map(TextQuery::new);
        let prefix = family::records(tenant);
        let after_key = after.map(|a| family::record(tenant, a));
        let mut page = Filler::new(limit, limits);
        for item in self.scan_raw(&prefix, after_key.as_deref()) {
            let (key, bytes) = item?;
            let head = RecordHead::decode(&key, &bytes)?;
            if !page.look(&head.id, bytes.len()) {
                break;
            }
            let wanted = filter.matches_fields(head.kind, &head.pipeline, &head.stage, &head.owner)
                && text
                    .as_ref()
                    .is_none_or(|t| t.matches(&head.name, head.email.as_deref()));
            if wanted && !page.push(&head.id, bytes.len(), Decode::decode(&key, &bytes)?) {
                break;
            }
        }
        page.finish(|last| {
            Ok(self
                .scan_raw(&prefix, Some(&family::record(tenant, last)))
                .next()
                .is_some())
        })
    }

    /// A record's events, oldest first, after event id `after`, at most `limit` and
    /// within the page's byte budget.
    pub(super) fn record_events(
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
            if !page.look(&id, bytes.len())
                || !page.push(&id, bytes.len(), Decode::decode(&key, &bytes)?)
            {
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
    pub(super) fn events(
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
            if !page.look(&id, bytes.len())
                || !page.push(&id, bytes.len(), Decode::decode(&key, &bytes)?)
            {
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
