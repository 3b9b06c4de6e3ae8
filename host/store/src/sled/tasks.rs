//! Tasks, comments and a record's timeline in sled: their ops inside the changeset's
//! transaction, their lists as scans of index families of their own.
//!
//! Key families (tenant first, like every other):
//! - `task/{tenant}/{id}`: the task; `cmt/{tenant}/{record}/{id}`: a comment, by record;
//! - `rtsk/{tenant}/{record}/{id}`: a record's tasks;
//! - `tsta/{tenant}/{0|1}/{id}`: every task by status (0 open, 1 done), then id;
//! - `tasg/{tenant}/{hex(assignee)}/{0|1}/{id}`: an assignee's tasks, the same way;
//! - `tdue/{tenant}/{due_ms}/{id}` and `tadu/{tenant}/{hex(assignee)}/{due_ms}/{id}`: open
//!   tasks with a due time, by due time (the overdue lists read only what is overdue);
//! - counters `tcnt/{tenant}/{record}` (tasks on a record), `topn/{tenant}` (open tasks),
//!   `ccnt/{tenant}/{record}` (comments on a record), checked against [`TaskCaps`].
//!
//! A list's cursor is the key's tail after its family's prefix, so every list resumes with
//! one seek. Values go through the codec like every other kind.

use stagecraft_model::{Actor, Comment, Record, Task, TaskStatus, Timer};

use super::automation::count_follow_up;
use super::codec::{Decode, Marker};
use super::tx::Tx;
use super::{family, SledBackend};
use crate::change::TaskCaps;
use crate::query::{task_due_cursor, task_status_cursor, timeline_order};
use crate::query::{ListLimits, Page, TaskFilter, TimelineItem};
use crate::{Result, StoreError};

pub fn task(tenant: &str, id: &str) -> String {
    format!("task/{tenant}/{id}")
}

fn record_task(tenant: &str, record: &str, id: &str) -> String {
    format!("rtsk/{tenant}/{record}/{id}")
}

fn record_tasks(tenant: &str, record: &str) -> String {
    format!("rtsk/{tenant}/{record}/")
}

fn by_status(tenant: &str) -> String {
    format!("tsta/{tenant}/")
}

fn by_assignee(tenant: &str, assignee: &str) -> String {
    format!("tasg/{tenant}/{}/", hex::encode(assignee.as_bytes()))
}

fn by_due(tenant: &str) -> String {
    format!("tdue/{tenant}/")
}

fn by_assignee_due(tenant: &str, assignee: &str) -> String {
    format!("tadu/{tenant}/{}/", hex::encode(assignee.as_bytes()))
}

fn tasks_on_record(tenant: &str, record: &str) -> String {
    format!("tcnt/{tenant}/{record}")
}

fn open_tasks(tenant: &str) -> String {
    format!("topn/{tenant}")
}

fn comment(tenant: &str, record: &str, id: &str) -> String {
    format!("cmt/{tenant}/{record}/{id}")
}

fn record_comments(tenant: &str, record: &str) -> String {
    format!("cmt/{tenant}/{record}/")
}

fn comments_on_record(tenant: &str, record: &str) -> String {
    format!("ccnt/{tenant}/{record}")
}

/// The index entries of a task as it is.
fn index_keys(tenant: &str, t: &Task) -> Vec<String> {
    let status = task_status_cursor(t);
    let mut keys = vec![
        record_task(tenant, &t.record, &t.id),
        format!("{}{status}", by_status(tenant)),
    ];
    if let Some(a) = &t.assignee {
        keys.push(format!("{}{status}", by_assignee(tenant, a)));
    }
    if let (TaskStatus::Open, Some(due)) = (t.status, task_due_cursor(t)) {
        keys.push(format!("{}{due}", by_due(tenant)));
        if let Some(a) = &t.assignee {
            keys.push(format!("{}{due}", by_assignee_due(tenant, a)));
        }
    }
    keys
}

fn record_exists(tx: &Tx<'_>, tenant: &str, record: &str) -> Result<()> {
    if tx.get::<Record>(&family::record(tenant, record))?.is_none() {
        return Err(StoreError::NotFound(format!("record {record:?}")));
    }
    Ok(())
}

/// Arms a task's overdue timer (if it has one), listed with its record's timers.
fn arm(tx: &Tx<'_>, tenant: &str, t: &Task) -> Result<()> {
    let Some(timer) = t.overdue_timer() else {
        return Ok(());
    };
    let key = family::timer(timer.due.timestamp_millis(), tenant, &timer.id);
    tx.put(&key, &timer)?;
    let list_key = family::record_timers(tenant, &t.record);
    let mut list: Vec<String> = tx.get(&list_key)?.unwrap_or_default();
    list.push(key);
    tx.put(&list_key, &list)
}

/// Cancels the overdue timer a task as it was had armed (nothing when it fired or had none).
fn disarm(tx: &Tx<'_>, tenant: &str, was: &Task) -> Result<()> {
    let Some(timer) = was.overdue_timer() else {
        return Ok(());
    };
    let key = family::timer(timer.due.timestamp_millis(), tenant, &timer.id);
    if let Some(stored) = tx.get::<Timer>(&key)? {
        tx.remove(&key)?;
        count_follow_up(tx, tenant, &stored, -1)?;
    }
    let list_key = family::record_timers(tenant, &was.record);
    if let Some(mut list) = tx.get::<Vec<String>>(&list_key)? {
        list.retain(|k| k != &key);
        if list.is_empty() {
            tx.remove(&list_key)?;
        } else {
            tx.put(&list_key, &list)?;
        }
    }
    Ok(())
}

fn count(tx: &Tx<'_>, key: &str, delta: i64) -> Result<u64> {
    Ok(u64::try_from(tx.add(key, delta)?).unwrap_or(0))
}

pub(super) fn create(tx: &Tx<'_>, tenant: &str, t: &Task, caps: &TaskCaps) -> Result<()> {
    record_exists(tx, tenant, &t.record)?;
    let key = task(tenant, &t.id);
    if tx.exists(&key)? {
        return Err(StoreError::AlreadyExists(format!("task {:?}", t.id)));
    }
    let n = count(tx, &tasks_on_record(tenant, &t.record), 1)?;
    if let Some(e) = caps.tasks_on_record(&t.record, n) {
        return Err(e);
    }
    if t.status == TaskStatus::Open {
        if let Some(e) = caps.open_tasks(count(tx, &open_tasks(tenant), 1)?) {
            return Err(e);
        }
    }
    tx.put(&key, t)?;
    for k in index_keys(tenant, t) {
        tx.put(&k, &Marker)?;
    }
    arm(tx, tenant, t)
}

/// The stored task `id` at version `expected` (any version when None).
fn current(tx: &Tx<'_>, tenant: &str, id: &str, expected: Option<u64>) -> Result<Task> {
    let t: Task = tx
        .get(&task(tenant, id))?
        .ok_or_else(|| StoreError::NotFound(format!("task {id:?}")))?;
    match expected {
        Some(v) if v != t.version => Err(StoreError::VersionConflict {
            what: format!("task {id:?}"),
            expected: v,
            found: t.version,
        }),
        _ => Ok(t),
    }
}

/// Replaces `old` by `new`: indexes, the open count and the overdue timer follow.
fn replace(tx: &Tx<'_>, tenant: &str, old: &Task, new: &Task) -> Result<()> {
    if old.record != new.record {
        return Err(StoreError::Refused(format!(
            "task {:?} belongs to record {:?}; a task cannot move to another record",
            old.id, old.record
        )));
    }
    for k in index_keys(tenant, old) {
        tx.remove(&k)?;
    }
    match (old.status, new.status) {
        (TaskStatus::Open, TaskStatus::Done) => {
            count(tx, &open_tasks(tenant), -1)?;
        }
        (TaskStatus::Done, TaskStatus::Open) => {
            count(tx, &open_tasks(tenant), 1)?;
        }
        _ => {}
    }
    disarm(tx, tenant, old)?;
    tx.put(&task(tenant, &new.id), new)?;
    for k in index_keys(tenant, new) {
        tx.put(&k, &Marker)?;
    }
    arm(tx, tenant, new)
}

pub(super) fn update(tx: &Tx<'_>, tenant: &str, t: &Task, expected: u64) -> Result<()> {
    let old = current(tx, tenant, &t.id, Some(expected))?;
    replace(tx, tenant, &old, t)
}

pub(super) fn complete(
    tx: &Tx<'_>,
    tenant: &str,
    id: &str,
    by: &Actor,
    at: chrono::DateTime<chrono::Utc>,
    expected: Option<u64>,
) -> Result<Task> {
    let old = current(tx, tenant, id, expected)?;
    let mut new = old.clone();
    if !new.complete(by.clone(), at) {
        return Err(StoreError::Refused(format!("task {id:?} is done already")));
    }
    new.version = old.version + 1;
    replace(tx, tenant, &old, &new)?;
    Ok(new)
}

pub(super) fn add_comment(tx: &Tx<'_>, tenant: &str, c: &Comment, caps: &TaskCaps) -> Result<()> {
    record_exists(tx, tenant, &c.record)?;
    let key = comment(tenant, &c.record, &c.id);
    if tx.exists(&key)? {
        return Err(StoreError::AlreadyExists(format!("comment {:?}", c.id)));
    }
    let n = count(tx, &comments_on_record(tenant, &c.record), 1)?;
    if let Some(e) = caps.comments_on_record(&c.record, n) {
        return Err(e);
    }
    tx.put(&key, c)
}

/// The milliseconds a due cursor (`{due_ms:016}/{id}`) starts with.
fn due_ms(cursor: &str) -> i64 {
    cursor
        .split('/')
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or(i64::MAX)
}

impl SledBackend {
    pub(super) fn task(&self, tenant: &str, id: &str) -> Result<Option<Task>> {
        self.get(&task(tenant, id))
    }

    /// Index entries under `prefix` after `after` (a cursor: the tail after `base`) whose
    /// tail `keep` accepts (it stops the list at the first it refuses), each with its task,
    /// within the page's budgets.
    #[allow(clippy::too_many_arguments)]
    fn indexed_tasks(
        &self,
        tenant: &str,
        base: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Page<Task>> {
        let after_key = after.map(|a| format!("{base}{a}"));
        let mut page = Filler::new(limit, limits);
        for item in self.scan_raw(prefix, after_key.as_deref()) {
            let (k, _) = item?;
            let tail = k[base.len()..].to_string();
            if !keep(&tail) {
                break;
            }
            let key = task(tenant, family::id_of(&tail));
            let Some(bytes) = self.data.get(&key)? else {
                continue;
            };
            if !page.push(&tail, bytes.len(), Decode::decode(&key, &bytes)?) {
                break;
            }
        }
        page.finish(|last| {
            Ok(self
                .scan_raw(prefix, Some(&format!("{base}{last}")))
                .next()
                .transpose()?
                .is_some_and(|(k, _)| keep(&k[base.len()..])))
        })
    }

    /// A record's tasks, oldest first; the cursor is a task id.
    pub(super) fn record_tasks(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Task>> {
        let base = record_tasks(tenant, record);
        self.indexed_tasks(tenant, &base, &base, after, limit, limits, |_| true)
    }

    /// Tasks matching `filter` (see [`crate::List::Tasks`]).
    pub(super) fn tasks(
        &self,
        tenant: &str,
        filter: &TaskFilter,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Task>> {
        if let Some(now) = filter.overdue_at {
            if filter.status == Some(TaskStatus::Done) {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            let base = match &filter.assignee {
                Some(a) => by_assignee_due(tenant, a),
                None => by_due(tenant),
            };
            let until = now.timestamp_millis();
            return self.indexed_tasks(tenant, &base, &base, after, limit, limits, |tail| {
                due_ms(tail) <= until
            });
        }
        let base = match &filter.assignee {
            Some(a) => by_assignee(tenant, a),
            None => by_status(tenant),
        };
        let prefix = match filter.status {
            Some(TaskStatus::Open) => format!("{base}0/"),
            Some(TaskStatus::Done) => format!("{base}1/"),
            None => base.clone(),
        };
        self.indexed_tasks(tenant, &base, &prefix, after, limit, limits, |_| true)
    }

    /// A record's comments, oldest first; the cursor is a comment id.
    pub(super) fn record_comments(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Comment>> {
        let prefix = record_comments(tenant, record);
        let after_key = after.map(|a| comment(tenant, record, a));
        let mut page = Filler::new(limit, limits);
        for item in self.scan_raw(&prefix, after_key.as_deref()) {
            let (key, bytes) = item?;
            let id = family::id_of(&key).to_string();
            if !page.push(&id, bytes.len(), Decode::decode(&key, &bytes)?) {
                break;
            }
        }
        page.finish(|last| {
            Ok(self
                .scan_raw(&prefix, Some(&comment(tenant, record, last)))
                .next()
                .is_some())
        })
    }

    /// The ids of one of a record's timeline sources (an index family keyed by id, whose
    /// ids all carry `id_prefix`) that sort after `after` ([`timeline_order`]), in order.
    fn timeline_ids<'a>(
        &'a self,
        prefix: String,
        id_prefix: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<String>> + 'a {
        let mut start = prefix.clone().into_bytes();
        if let Some(a) = after {
            // Ids of this source sort by their ULID; start at the cursor's time.
            start.extend_from_slice(format!("{id_prefix}_{}", timeline_order(a).0).as_bytes());
        }
        let mut end = prefix.clone().into_bytes();
        end.push(0xff);
        let after = after.map(str::to_string);
        self.data
            .range(start..end)
            .map(move |item| {
                let (k, _) = item?;
                Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .filter(move |id| match (id, &after) {
                (Ok(id), Some(a)) => timeline_order(id) > timeline_order(a),
                _ => true,
            })
    }

    /// The three sources of a record's timeline after `after`, merged in time order.
    fn timeline_entries<'a>(
        &'a self,
        tenant: &'a str,
        record: &'a str,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, char)>> + 'a {
        let mut sources = [
            (
                'e',
                self.timeline_ids(family::record_events(tenant, record), "evt", after)
                    .peekable(),
            ),
            (
                'c',
                self.timeline_ids(record_comments(tenant, record), "cmt", after)
                    .peekable(),
            ),
            (
                't',
                self.timeline_ids(record_tasks(tenant, record), "tsk", after)
                    .peekable(),
            ),
        ];
        std::iter::from_fn(move || {
            let mut best: Option<(usize, String)> = None;
            for (i, (_, source)) in sources.iter_mut().enumerate() {
                match source.peek() {
                    Some(Err(_)) => {
                        let Some(Err(e)) = source.next() else {
                            continue;
                        };
                        return Some(Err(e));
                    }
                    Some(Ok(id))
                        if best
                            .as_ref()
                            .is_none_or(|(_, b)| timeline_order(id) < timeline_order(b)) =>
                    {
                        best = Some((i, id.clone()));
                    }
                    _ => {}
                }
            }
            let (i, id) = best?;
            sources[i].1.next();
            Some(Ok((id, sources[i].0)))
        })
    }

    /// A record's timeline (see [`crate::List::Timeline`]); the cursor is an entry's id.
    pub(super) fn timeline(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<TimelineItem>> {
        let mut page = Filler::new(limit, limits);
        for entry in self.timeline_entries(tenant, record, after) {
            let (id, source) = entry?;
            let key = match source {
                'e' => family::event(tenant, &id),
                'c' => comment(tenant, record, &id),
                _ => task(tenant, &id),
            };
            let Some(bytes) = self.data.get(&key)? else {
                continue;
            };
            let (len, item) = match source {
                'e' => match super::journal::read(self, &key)? {
                    Some((len, e)) => (len, TimelineItem::Event(Box::new(e))),
                    None => continue,
                },
                'c' => (
                    bytes.len(),
                    TimelineItem::Comment(Decode::decode(&key, &bytes)?),
                ),
                _ => (
                    bytes.len(),
                    TimelineItem::Task(Decode::decode(&key, &bytes)?),
                ),
            };
            if !page.push(&id, len, item) {
                break;
            }
        }
        page.finish(|last| {
            Ok(self
                .timeline_entries(tenant, record, Some(last))
                .next()
                .transpose()?
                .is_some())
        })
    }
}

/// One page of a task list. Every entry these lists walk is a match (each list has a family
/// of its own), so a page only ends at its item limit or its byte budget ([`ListLimits`]: at
/// least one item; one past the budget waits for the next page).
struct Filler<'a, T> {
    limits: &'a ListLimits,
    limit: usize,
    items: Vec<T>,
    bytes: usize,
    /// The id of the last item on the page.
    items_end: Option<String>,
    /// Where the page stopped early: the id the next page goes on after.
    stopped: Option<String>,
}

impl<'a, T> Filler<'a, T> {
    fn new(limit: usize, limits: &'a ListLimits) -> Self {
        Filler {
            limits,
            limit: limit.max(1),
            items: Vec::new(),
            bytes: 0,
            items_end: None,
            stopped: None,
        }
    }

    /// Adds an item of `len` stored bytes; false (stop) when the page is full.
    fn push(&mut self, id: &str, len: usize, item: T) -> bool {
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
    fn finish(self, more: impl FnOnce(&str) -> Result<bool>) -> Result<Page<T>> {
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
