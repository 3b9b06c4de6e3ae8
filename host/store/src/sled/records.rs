//! Record and journal lists: filtered pages of records, the journal, a record's events,
//! each read from its index.

use super::codec::{Decode, RecordHead};
use std::cell::RefCell;

use sled::IVec;

use super::page::{fill, fill_judged, Fetched, TEXT_LOOKS};
use super::postings::{Dir, Judge};
use super::{family, index, SledBackend};
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

/// The posting lists a record filter reads (their intersection is the answer): the
/// (pipeline, stage) list, else the pipeline's; the kind's; the owner's. No filter: the
/// family itself. A stage without a pipeline has no list of its own: it is checked on the
/// rows the others yield, within [`TEXT_LOOKS`] per page.
fn record_lists(tenant: &str, filter: &RecordFilter) -> Vec<String> {
    let mut out = Vec::new();
    match (&filter.pipeline, &filter.stage) {
        (Some(p), Some(s)) => out.push(index::prefix("rs", tenant, &[p, s])),
        (Some(p), None) => out.push(index::prefix("rp", tenant, &[p])),
        _ => {}
    }
    if let Some(o) = &filter.owner {
        out.push(index::prefix("ro", tenant, &[o]));
    }
    if let Some(k) = filter.kind {
        out.push(index::prefix("rk", tenant, &[k.as_str()]));
    }
    if out.is_empty() {
        out.push(family::records(tenant));
    }
    out
}

/// The first of [`record_lists`]'s lists (by place) that does not hold `r`; None when
/// every one does. The same order and the same fields as the lists.
fn first_list_without(filter: &RecordFilter, r: &Record) -> Option<usize> {
    let mut at = 0;
    if let Some(p) = &filter.pipeline {
        let held = r.pipeline.as_ref() == Some(p)
            && filter
                .stage
                .as_ref()
                .is_none_or(|s| r.stage.as_ref() == Some(s));
        if !held {
            return Some(at);
        }
        at += 1;
    }
    if let Some(o) = &filter.owner {
        if r.owner.as_ref() != Some(o) {
            return Some(at);
        }
        at += 1;
    }
    match filter.kind {
        Some(k) if r.kind != k => Some(at),
        _ => None,
    }
}

/// Whether a search text is an email address: then it is answered from the email index
/// (exactly this address, case-insensitively), not by looking at names.
fn is_email(text: &str) -> bool {
    let t = text.trim();
    t.matches('@').count() == 1 && !t.contains(char::is_whitespace)
}

impl SledBackend {
    /// Records matching `filter` (and `text`: a name containing it or exactly this email,
    /// case-insensitively) in creation order, after the record id `after`, at most `limit`
    /// within the page's byte budget; `next` resumes where the page stopped. Read from the
    /// indexes ([`record_lists`]); a text that is an email address reads the email index,
    /// any other text is matched on the rows, [`TEXT_LOOKS`] of them per page.
    pub(super) fn search_records(
        &self,
        tenant: &str,
        filter: &RecordFilter,
        text: Option<&str>,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Record>> {
        let mut lists = record_lists(tenant, filter);
        let text = text.map(TextQuery::new);
        let by_email = text.as_ref().is_some_and(|t| is_email(&t.0));
        if by_email {
            if let Some(t) = &text {
                let email = index::prefix("re", tenant, &[&index::email_key(&t.0)]);
                lists.retain(|l| l != &family::records(tenant));
                lists.insert(0, email);
            }
        }
        let checks_rows =
            (text.is_some() && !by_email) || (filter.stage.is_some() && filter.pipeline.is_none());
        let looks = checks_rows.then_some(TEXT_LOOKS);
        // What the lists answered (a stage alone is checked on the rows, not by a list).
        let listed = RecordFilter {
            stage: filter.pipeline.as_ref().and(filter.stage.clone()),
            ..filter.clone()
        };
        let needle = text.as_ref().map(|t| t.0.as_str());
        // Without a text, the rows judge an intersection's candidates (see `Judge`): the
        // row a candidate leads to is read once, kept here for `fetch` when it matches.
        let judged: RefCell<Option<(String, IVec, Record)>> = RefCell::new(None);
        let mut judge = |id: &str| -> Result<Option<usize>> {
            let key = family::record(tenant, id);
            let Some(bytes) = self.data.get(&key)? else {
                return Ok(None);
            };
            let r: Record = Decode::decode(&key, &bytes)?;
            let without = first_list_without(filter, &r);
            if without.is_none() {
                *judged.borrow_mut() = Some((id.to_string(), bytes, r));
            }
            Ok(without)
        };
        let judge: Option<Judge<'_>> = (text.is_none() && lists.len() > 1).then_some(&mut judge);
        fill_judged(
            self,
            &lists,
            after,
            Dir::Up,
            limit,
            limits,
            looks,
            judge,
            |id| {
                let key = family::record(tenant, id);
                if text.is_none() {
                    let kept = judged.borrow_mut().take().filter(|(k, ..)| k == id);
                    let (bytes, r) = match kept {
                        Some((_, bytes, r)) => (bytes, r),
                        None => {
                            let Some(bytes) = self.data.get(&key)? else {
                                return Ok(Fetched::Mismatch { key, bytes: None });
                            };
                            let r: Record = Decode::decode(&key, &bytes)?;
                            (bytes, r)
                        }
                    };
                    // Every row the lists lead to is on the page (but for a stage alone): decoded
                    // once, whole, and checked on what was decoded.
                    if !listed.matches_fields(r.kind, &r.pipeline, &r.stage, &r.owner) {
                        return Ok(Fetched::Mismatch {
                            key,
                            bytes: Some(bytes),
                        });
                    }
                    return Ok(
                        if filter.matches_fields(r.kind, &r.pipeline, &r.stage, &r.owner) {
                            Fetched::Item(bytes.len(), r)
                        } else {
                            Fetched::Skip
                        },
                    );
                }
                let Some(bytes) = self.data.get(&key)? else {
                    return Ok(Fetched::Mismatch { key, bytes: None });
                };
                // A text search looks at rows it may leave out: their head is enough for that.
                let head = RecordHead::decode(&key, &bytes)?;
                let email = by_email.then(|| head.email.as_deref().map(index::email_key));
                let mismatch =
                    !listed.matches_fields(head.kind, &head.pipeline, &head.stage, &head.owner)
                        || email.is_some_and(|e| e.as_deref() != needle);
                if mismatch {
                    return Ok(Fetched::Mismatch {
                        key,
                        bytes: Some(bytes),
                    });
                }
                let wanted =
                    filter.matches_fields(head.kind, &head.pipeline, &head.stage, &head.owner)
                        && text
                            .as_ref()
                            .is_none_or(|t| t.matches(&head.name, head.email.as_deref()));
                Ok(if wanted {
                    Fetched::Item(bytes.len(), Decode::decode(&key, &bytes)?)
                } else {
                    Fetched::Skip
                })
            },
        )
    }

    /// A record's events, oldest first, after event id `after`, at most `limit` and
    /// within the page's byte budget (the `rev/` index: events by record).
    pub(super) fn record_events(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Event>> {
        let lists = [family::record_events(tenant, record)];
        fill(self, &lists, after, Dir::Up, limit, limits, None, |id| {
            super::journal::fetch(self, &family::event(tenant, id))
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
        let lists = [family::events(tenant)];
        fill(self, &lists, after, Dir::Up, limit, limits, None, |id| {
            super::journal::fetch(self, &family::event(tenant, id))
        })
    }

    /// The value under `key` for a page (a mismatch when it is gone).
    pub(super) fn fetch<T: Decode>(&self, key: &str) -> Result<Fetched<T>> {
        Ok(match self.data.get(key)? {
            Some(bytes) => Fetched::Item(bytes.len(), T::decode(key, &bytes)?),
            None => Fetched::Mismatch {
                key: key.to_string(),
                bytes: None,
            },
        })
    }
}
