//! Filling a page from a scan within the list budgets ([`ListLimits`]): every list is
//! complete, or it says where it stopped (see [`Page`]). (An index that makes filtered lists
//! cheap is storage v2's; the budgets keep every request bounded meanwhile.)

use crate::query::{ListLimits, Page};

/// Fills a page from a scan in list order, keeping count of its budgets.
pub(crate) struct Filler<'a, T> {
    limits: &'a ListLimits,
    limit: usize,
    items: Vec<T>,
    bytes: usize,
    scanned: usize,
    scanned_bytes: usize,
    last_scanned: Option<String>,
    /// The id of the last item on the page.
    items_end: Option<String>,
    /// Where the page stopped early: the id the next page goes on after.
    stopped: Option<String>,
}

impl<'a, T> Filler<'a, T> {
    pub fn new(limit: usize, limits: &'a ListLimits) -> Self {
        Filler {
            limits,
            limit: limit.max(1),
            items: Vec::new(),
            bytes: 0,
            scanned: 0,
            scanned_bytes: 0,
            last_scanned: None,
            items_end: None,
            stopped: None,
        }
    }

    /// Counts a stored value about to be looked at; false (stop) once the scan budget is
    /// spent, and the page then goes on after the last value looked at.
    pub fn look(&mut self, id: &str, len: usize) -> bool {
        if self.scanned >= self.limits.scan_items || self.scanned_bytes >= self.limits.scan_bytes {
            self.stopped = self.last_scanned.clone();
            return false;
        }
        self.scanned += 1;
        self.scanned_bytes += len;
        self.last_scanned = Some(id.to_string());
        true
    }

    /// Adds a matching item of `len` stored bytes; false (stop) when the page is full. An
    /// item past the byte budget is left for the next page (unless the page is empty).
    pub fn push(&mut self, id: &str, len: usize, item: T) -> bool {
        if !self.items.is_empty() && self.bytes + len > self.limits.page_bytes {
            self.stopped = self.items_end.clone();
            return false;
        }
        self.items.push(item);
        self.bytes += len;
        self.items_end = Some(id.to_string());
        if self.items.len() >= self.limit || self.bytes >= self.limits.page_bytes {
            self.stopped = Some(id.to_string());
            return false;
        }
        true
    }

    /// The page; `more(cursor)` says whether anything follows the cursor in list order.
    pub fn finish(self, more: impl FnOnce(&str) -> crate::Result<bool>) -> crate::Result<Page<T>> {
        let next = match self.stopped {
            Some(c) if more(&c)? => Some(c),
            _ => None,
        };
        Ok(Page {
            items: self.items,
            next,
        })
    }
}
