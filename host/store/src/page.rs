//! Pages: every list is complete, or it says where it stopped. A page ends at its item limit,
//! at its byte budget (large values must not make a 300 MB response), or when its scan
//! budget runs out (a rare filter over a long history must not stall a request) — and then
//! `next` is the cursor to go on from, even when the page found nothing yet. `next` is None
//! only when nothing follows. (An index that makes filtered lists cheap is its own issue; the
//! budgets keep every request bounded meanwhile.)

/// The budgets of one list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// JSON bytes of items on one page (at least one item is always returned).
    pub page_bytes: usize,
    /// Stored values one request looks at.
    pub scan_items: usize,
    /// Stored bytes one request looks at.
    pub scan_bytes: usize,
}

impl Default for ListLimits {
    fn default() -> Self {
        ListLimits {
            page_bytes: 4 * 1024 * 1024,
            scan_items: 20_000,
            scan_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One page of a list, in list order.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back (as `after` or `before`, as the list says) for what follows; None when
    /// nothing does.
    pub next: Option<String>,
}

/// Fills a page from a scan in list order, keeping count of its budgets.
pub(super) struct Filler<'a, T> {
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
    pub fn finish(self, more: impl FnOnce(&str) -> super::Result<bool>) -> super::Result<Page<T>> {
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
