//! Tasks, comments and a record's timeline in PostgreSQL: the ops inside the changeset's
//! SERIALIZABLE transaction (the caps are counts read in it, so racing creates make one of
//! them retry), reads, and lists in the same orders and with the same cursors as sled's
//! (`status_ord`, `due_ord`; the timeline by the ULID its ids carry). Text orders are
//! byte orders (`COLLATE "C"`), whatever the database's collation.

use postgres::{Client, GenericClient, Transaction};
use stagecraft_model::{Actor, Comment, Event, Task, TaskStatus};
use stagecraft_store::{
    task_due_cursor, task_status_cursor, timeline_order, Page, PageRequest, Row, StoreError,
    TaskCaps, TaskFilter, TimelineItem,
};

use crate::page::{fetch, fetch_limit, fill, Where};
use crate::sql::{big, dec, enc, ms, TxResult};

fn record_exists(tx: &mut Transaction<'_>, tenant: &str, record: &str) -> TxResult<()> {
    let found = tx.query_opt(
        "SELECT 1 FROM records WHERE tenant = $1 AND id = $2",
        &[&tenant, &record],
    )?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("record {record:?}")).into()),
    }
}

fn count(
    tx: &mut Transaction<'_>,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> TxResult<u64> {
    let n: i64 = tx.query_one(sql, params)?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Writes the task's row (insert, or replace when `replace`).
fn store(tx: &mut Transaction<'_>, tenant: &str, t: &Task, replace: bool) -> TxResult<u64> {
    let open = t.status == TaskStatus::Open;
    let due_ms = t.due_at.map(ms);
    let due_ord = if open { task_due_cursor(t) } else { None };
    let sql = if replace {
        "UPDATE tasks SET record = $3, assignee = $4, open = $5, status_ord = $6, due_ms = $7, \
            due_ord = $8, version = $9, value = $10 WHERE tenant = $1 AND id = $2"
    } else {
        "INSERT INTO tasks (tenant, id, record, assignee, open, status_ord, due_ms, due_ord, \
            version, value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (tenant, id) DO NOTHING"
    };
    Ok(tx.execute(
        sql,
        &[
            &tenant,
            &t.id,
            &t.record,
            &t.assignee,
            &open,
            &task_status_cursor(t),
            &due_ms,
            &due_ord,
            &big(t.version),
            &enc("a task", t)?,
        ],
    )?)
}

/// Arms the task's overdue timer, or cancels it when it has none now.
fn arm(tx: &mut Transaction<'_>, tenant: &str, t: &Task) -> TxResult<()> {
    let id = stagecraft_model::task::overdue_timer_id(&t.id);
    tx.execute(
        "DELETE FROM timers WHERE tenant = $1 AND id = $2",
        &[&tenant, &id],
    )?;
    if let Some(timer) = t.overdue_timer() {
        tx.execute(
            "INSERT INTO timers (tenant, id, due_ms, record, binding, stage, follow_up, value) \
             VALUES ($1, $2, $3, $4, $5, NULL, FALSE, $6)",
            &[
                &tenant,
                &timer.id,
                &ms(timer.due),
                &timer.record,
                &timer.binding,
                &enc("a timer", &timer)?,
            ],
        )?;
    }
    Ok(())
}

pub fn create(tx: &mut Transaction<'_>, tenant: &str, t: &Task, caps: &TaskCaps) -> TxResult<()> {
    record_exists(tx, tenant, &t.record)?;
    let on_record = count(
        tx,
        "SELECT count(*) FROM tasks WHERE tenant = $1 AND record = $2",
        &[&tenant, &t.record],
    )?;
    if let Some(e) = caps.tasks_on_record(&t.record, on_record + 1) {
        return Err(e.into());
    }
    if t.status == TaskStatus::Open {
        let open = count(
            tx,
            "SELECT count(*) FROM tasks WHERE tenant = $1 AND open",
            &[&tenant],
        )?;
        if let Some(e) = caps.open_tasks(open + 1) {
            return Err(e.into());
        }
    }
    if store(tx, tenant, t, false)? == 0 {
        return Err(StoreError::AlreadyExists(format!("task {:?}", t.id)).into());
    }
    arm(tx, tenant, t)
}

fn current(
    tx: &mut Transaction<'_>,
    tenant: &str,
    id: &str,
    expected: Option<u64>,
) -> TxResult<Task> {
    let row = tx.query_opt(
        "SELECT value FROM tasks WHERE tenant = $1 AND id = $2 FOR UPDATE",
        &[&tenant, &id],
    )?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("task {id:?}")).into());
    };
    let t: Task = dec("a task", row.get::<_, &[u8]>(0))?;
    match expected {
        Some(v) if v != t.version => Err(StoreError::VersionConflict {
            what: format!("task {id:?}"),
            expected: v,
            found: t.version,
        }
        .into()),
        _ => Ok(t),
    }
}

fn replace(tx: &mut Transaction<'_>, tenant: &str, old: &Task, new: &Task) -> TxResult<()> {
    if old.record != new.record {
        return Err(StoreError::Refused(format!(
            "task {:?} belongs to record {:?}; a task cannot move to another record",
            old.id, old.record
        ))
        .into());
    }
    store(tx, tenant, new, true)?;
    arm(tx, tenant, new)
}

pub fn update(tx: &mut Transaction<'_>, tenant: &str, t: &Task, expected: u64) -> TxResult<()> {
    let old = current(tx, tenant, &t.id, Some(expected))?;
    replace(tx, tenant, &old, t)
}

pub fn complete(
    tx: &mut Transaction<'_>,
    tenant: &str,
    id: &str,
    by: &Actor,
    at: chrono::DateTime<chrono::Utc>,
    expected: Option<u64>,
) -> TxResult<Task> {
    let old = current(tx, tenant, id, expected)?;
    let mut new = old.clone();
    if !new.complete(by.clone(), at) {
        return Err(StoreError::Refused(format!("task {id:?} is done already")).into());
    }
    new.version = old.version + 1;
    replace(tx, tenant, &old, &new)?;
    Ok(new)
}

pub fn add_comment(
    tx: &mut Transaction<'_>,
    tenant: &str,
    c: &Comment,
    caps: &TaskCaps,
) -> TxResult<()> {
    record_exists(tx, tenant, &c.record)?;
    let n = count(
        tx,
        "SELECT count(*) FROM comments WHERE tenant = $1 AND record = $2",
        &[&tenant, &c.record],
    )?;
    if let Some(e) = caps.comments_on_record(&c.record, n + 1) {
        return Err(e.into());
    }
    let inserted = tx.execute(
        "INSERT INTO comments (tenant, id, record, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, id) DO NOTHING",
        &[&tenant, &c.id, &c.record, &enc("a comment", c)?],
    )?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(format!("comment {:?}", c.id)).into());
    }
    Ok(())
}

pub fn read(c: &mut Client, tenant: &str, id: &str) -> TxResult<Option<Row>> {
    match c.query_opt(
        "SELECT value FROM tasks WHERE tenant = $1 AND id = $2",
        &[&tenant, &id],
    )? {
        Some(row) => Ok(Some(Row::Task(dec("a task", row.get::<_, &[u8]>(0))?))),
        None => Ok(None),
    }
}

/// A page of `table` under `w`, ordered by (and resumed after) the text column `ord`.
fn ordered<T: stagecraft_store::Stored, C: GenericClient>(
    c: &mut C,
    what: &str,
    table: &str,
    ord: &str,
    mut w: Where,
    req: &PageRequest,
    row: impl Fn(T) -> Row,
) -> TxResult<Page<Row>> {
    if let Some(after) = &req.after {
        w.raw(
            &format!("{ord} COLLATE \"C\" > {{}}"),
            vec![Box::new(after.clone())],
        );
    }
    let limit = w.push(fetch_limit(req));
    let sql = format!(
        "SELECT {ord}, value FROM {table} {} ORDER BY {ord} COLLATE \"C\" LIMIT ${limit}",
        w.clause()
    );
    let page = fill(fetch::<T, _>(c, what, &sql, &w.params())?, req);
    Ok(Page {
        items: page.items.into_iter().map(row).collect(),
        next: page.next,
    })
}

fn in_tenant(tenant: &str) -> Where {
    let mut w = Where::default();
    w.and("tenant", "=", tenant.to_string());
    w
}

pub fn record_tasks(
    c: &mut Client,
    tenant: &str,
    record: &str,
    req: &PageRequest,
) -> TxResult<Page<Row>> {
    let mut w = in_tenant(tenant);
    w.and("record", "=", record.to_string());
    ordered(c, "a task", "tasks", "id", w, req, Row::Task)
}

pub fn tasks(
    c: &mut Client,
    tenant: &str,
    f: &TaskFilter,
    req: &PageRequest,
) -> TxResult<Page<Row>> {
    let mut w = in_tenant(tenant);
    if let Some(a) = &f.assignee {
        w.and("assignee", "=", a.clone());
    }
    if let Some(now) = f.overdue_at {
        if f.status == Some(TaskStatus::Done) {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        w.raw(
            "due_ord IS NOT NULL AND due_ms <= {}",
            vec![Box::new(ms(now))],
        );
        return ordered(c, "a task", "tasks", "due_ord", w, req, Row::Task);
    }
    if let Some(s) = f.status {
        w.and("open", "=", s == TaskStatus::Open);
    }
    ordered(c, "a task", "tasks", "status_ord", w, req, Row::Task)
}

pub fn record_comments(
    c: &mut Client,
    tenant: &str,
    record: &str,
    req: &PageRequest,
) -> TxResult<Page<Row>> {
    let mut w = in_tenant(tenant);
    w.and("record", "=", record.to_string());
    ordered(c, "a comment", "comments", "id", w, req, Row::Comment)
}

/// A record's events, comments and tasks in one time order: by the ULID after each id's
/// prefix, then the id ([`timeline_order`]).
pub fn timeline(
    c: &mut Client,
    tenant: &str,
    record: &str,
    req: &PageRequest,
) -> TxResult<Page<Row>> {
    const ULID: &str = "substr(id, strpos(id, '_') + 1) COLLATE \"C\"";
    let (ulid, id) = match &req.after {
        Some(a) => {
            let (u, i) = timeline_order(a);
            (Some(u.to_string()), Some(i.to_string()))
        }
        None => (None, None),
    };
    let sql = format!(
        "SELECT k, id, value FROM ( \
            SELECT 'e' AS k, id, value FROM events WHERE tenant = $1 AND record = $2 \
            UNION ALL SELECT 'c', id, value FROM comments WHERE tenant = $1 AND record = $2 \
            UNION ALL SELECT 't', id, value FROM tasks WHERE tenant = $1 AND record = $2) x \
         WHERE $3::text IS NULL OR ({ULID}, id COLLATE \"C\") > ($3, $4::text COLLATE \"C\") \
         ORDER BY {ULID}, id COLLATE \"C\" LIMIT $5"
    );
    let rows = c.query(&sql, &[&tenant, &record, &ulid, &id, &fetch_limit(req)])?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (k, id, bytes): (&str, String, &[u8]) = (r.get(0), r.get(1), r.get(2));
        let item = match k {
            "e" => TimelineItem::Event(Box::new(dec::<Event>("an event", bytes)?)),
            "c" => TimelineItem::Comment(dec("a comment", bytes)?),
            _ => TimelineItem::Task(dec("a task", bytes)?),
        };
        out.push((id, bytes.len(), item));
    }
    let page = fill(out, req);
    Ok(Page {
        items: page.items.into_iter().map(Row::Timeline).collect(),
        next: page.next,
    })
}
