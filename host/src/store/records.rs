//! Record and journal reads: get, filtered pages, a record's events.

use serde::Deserialize;

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
        let prefix = family::records(tenant);
        let after_key = after.map(|a| family::record(tenant, a));
        let mut records = Vec::new();
        let mut last = None;
        let mut scanned = 0;
        for item in self.scan_raw(&prefix, after_key.as_deref()) {
            let (key, bytes) = item?;
            let head: Head = decode(&key, &bytes)?;
            scanned += 1;
            last = Some(head.id);
            if filter.matches_fields(head.kind, &head.pipeline, &head.stage, &head.owner) {
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
