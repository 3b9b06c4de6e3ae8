//! The facade's reads of tasks, comments and a record's timeline (writes are
//! [`Op::CreateTask`](crate::Op::CreateTask) and its siblings in a changeset).

use stagecraft_model::{Comment, Task};

use crate::query::{List, ListLimits, Page, PageRequest, Read, Row, TaskFilter, TimelineItem};
use crate::store::Store;
use crate::Result;

impl Store {
    pub fn task(&self, tenant: &str, id: &str) -> Result<Option<Task>> {
        let read = Read::Task {
            tenant: tenant.to_string(),
            id: id.to_string(),
        };
        self.one(read, |r| match r {
            Row::Task(t) => Some(t),
            _ => None,
        })
    }

    fn task_page(&self, list: List, req: PageRequest) -> Result<Page<Task>> {
        self.page(list, req, |r| match r {
            Row::Task(t) => Some(t),
            _ => None,
        })
    }

    /// A record's tasks, oldest first, after task id `after`, at most `limit` and within the
    /// page's byte budget.
    pub fn record_tasks(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Task>> {
        let list = List::RecordTasks {
            tenant: tenant.to_string(),
            record: record.to_string(),
        };
        self.task_page(list, PageRequest::new(after, limit, limits))
    }

    /// Tasks matching `filter` (by assignee, status, overdue at a time): overdue ones by due
    /// time, else open ones first, then done ones, oldest first. `after` is the `next` of
    /// the page before (an opaque cursor).
    pub fn tasks(
        &self,
        tenant: &str,
        filter: &TaskFilter,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Task>> {
        let list = List::Tasks {
            tenant: tenant.to_string(),
            filter: filter.clone(),
        };
        self.task_page(list, PageRequest::new(after, limit, limits))
    }

    /// A record's comments, oldest first, after comment id `after`.
    pub fn record_comments(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Comment>> {
        let list = List::RecordComments {
            tenant: tenant.to_string(),
            record: record.to_string(),
        };
        self.page(list, PageRequest::new(after, limit, limits), |r| match r {
            Row::Comment(c) => Some(c),
            _ => None,
        })
    }

    /// A record's timeline: its journal events, comments and tasks in one time order, after
    /// the entry id `after`.
    pub fn timeline(
        &self,
        tenant: &str,
        record: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<TimelineItem>> {
        let list = List::Timeline {
            tenant: tenant.to_string(),
            record: record.to_string(),
        };
        self.page(list, PageRequest::new(after, limit, limits), |r| match r {
            Row::Timeline(i) => Some(i),
            _ => None,
        })
    }
}
