//! Record and journal reads: get, filtered pages, a record's events.

use std::borrow::Cow;

use serde::Deserialize;

use super::{decode, family, Result, Store, StoreError};
use crate::model::{Event, Record, RecordFilter, RecordKind};

/// The fields a filter looks at: decoding only these (serde skips the rest without
/// allocating, and no timestamps are parsed) makes scanning past non-matches cheap.
#[derive(Deserialize)]
struct Head<'a> {
    id: String,
    kind: RecordKind,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
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
    /// `limit`. Scans at most `scan_budget` records so a rare filter cannot stall a request;
    /// the cursor then resumes where the scan stopped.
    pub fn records(
        &self,
        tenant: &str,
        filter: &RecordFilter,
        after: Option<&str>,
        limit: usize,
        scan_budget: usize,
    ) -> Result<RecordPage> {
        self.search_records(tenant, filter, None, after, limit, scan_budget)
    }

    /// [`Store::records`] that also match `text`: a name containing it or exactly this email,
    /// case-insensitively. A scan, bounded by the same budget and resumed by the same cursor
    /// (an index can replace it later).
    pub fn search_records(
        &self,
        tenant: &str,
        filter: &RecordFilter,
        text: Option<&str>,
        after: Option<&str>,
        limit: usize,
        scan_budget: usize,
    ) -> Result<RecordPage> {
        let text = text.map(TextQuery::new);
        let prefix = family::records(tenant);
        let after_key = after.map(|a| family::record(tenant, a));
        let mut records = Vec::new();
        let mut last = None;
        let mut scanned = 0;
        for item in self.scan_raw(&prefix, after_key.as_deref()) {
            let (key, bytes) = item?;
            // Borrowed where it can be: the name and email are only compared.
            let head: Head =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    key: key.clone(),
                    source,
                })?;
            scanned += 1;
            let wanted = filter.matches_fields(head.kind, &head.pipeline, &head.stage, &head.owner)
                && text
                    .as_ref()
                    .is_none_or(|t| t.matches(&head.name, head.email.as_deref()));
            last = Some(head.id);
            if wanted {
                records.push(decode(&key, &bytes)?);
                if records.len() == limit {
                    break;
                }
            }
            if scanned >= scan_budget {
                break;
            }
        }
        let next = if records.len() == limit || scanned >= scan_budget {
            // Only hand out a cursor when something may follow it.
            last.filter(|l| {
                self.scan_raw(&prefix, Some(&family::record(tenant, l)))
                    .next()
                    .is_some()
            })
        } else {
            None
        };
        Ok(RecordPage { records, next })
    }

    pub fn event(&self, tenant: &str, id: &str) -> Result<Option<Event>> {
        self.get(&family::event(tenant, id))
    }

    /// A record's events, oldest first, after event id `after`, at most `limit`.
    pub fn record_events(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let prefix = family::record_events(tenant, record);
        let after_key = after.map(|a| family::record_event(tenant, record, a));
        let mut out = Vec::new();
        for item in self.scan_raw(&prefix, after_key.as_deref()).take(limit) {
            let (k, _) = item?;
            if let Some(e) = self.event(tenant, family::id_of(&k))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The tenant's journal, oldest first, after event id `after`, at most `limit`.
    pub fn events(&self, tenant: &str, after: Option<&str>, limit: usize) -> Result<Vec<Event>> {
        let after_key = after.map(|a| family::event(tenant, a));
        self.scan(&family::events(tenant), after_key.as_deref())
            .take(limit)
            .map(|r| r.map(|(_, e)| e))
            .collect()
    }
}
