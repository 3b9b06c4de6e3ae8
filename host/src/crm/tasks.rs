//! Tasks and comments through the API: validate a request with the shared rules
//! (`stagecraft_rules::task`, the copy modules and `MockHost` are held to) and turn it into a
//! changeset — the store's task op plus the journal event it causes (`task_created`,
//! `task_completed`, with the record's snapshot), so inline automation sees it and the
//! commit is one transaction.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::records::{event, get as get_record};
use super::{CrmError, Result};
use crate::model::id::new_id;
use crate::model::{Actor, Comment, EventKind, Priority, Record, Task, TaskStatus};
use crate::store::{Changeset, Op, Store, TaskCaps};
use stagecraft_rules::task as rules;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Call Ada", "due_at": "2026-06-01T09:00:00Z",
    "priority": "high", "assignee": "ann", "tags": ["call"]}))]
pub struct NewTask {
    /// 1-255 bytes, not blank.
    #[schema(min_length = 1, max_length = 255)]
    pub title: String,
    /// At most 16 KiB.
    #[schema(max_length = 16384)]
    pub description: Option<String>,
    /// When it falls due (RFC 3339), at most 366 days ahead; a past time makes it overdue
    /// at once.
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(schema_with = crate::model::schema::priority)]
    pub priority: Priority,
    /// A CRM user (like a record's `owner`); defaults to the caller's key's user.
    #[schema(max_length = 200)]
    pub assignee: Option<String>,
    /// Slugs a task trigger can filter on, at most 16.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Asked for a quote; calling back Monday."}))]
pub struct NewComment {
    /// 1 byte to 16 KiB, not blank.
    #[schema(min_length = 1, max_length = 16384)]
    pub body: String,
}

/// Who a request acts as: its key, and the key's CRM user.
pub fn actor(key: &str, user: Option<&str>) -> Actor {
    Actor::Key {
        key: key.to_string(),
        user: user.map(str::to_string),
    }
}

fn invalid(e: String) -> CrmError {
    CrmError::Invalid(e)
}

fn check_due(due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<()> {
    if let Some(d) = due {
        let ahead = (d - now).num_seconds();
        if ahead > 0 {
            rules::check_due_in(ahead as u64).map_err(invalid)?;
        }
    }
    Ok(())
}

/// The event a task change causes on its record's journal.
fn task_event(
    cs: &Changeset,
    kind: EventKind,
    record: &Record,
    now: DateTime<Utc>,
) -> crate::model::Event {
    event(&cs.tenant, kind, Some(record), now, None)
}

pub fn get(store: &Store, tenant: &str, id: &str) -> Result<Task> {
    store
        .task(tenant, id)?
        .ok_or_else(|| CrmError::NotFound(format!("task {id:?}")))
}

/// A new task on `record` by `by`, with its `task_created` event.
pub fn create(
    store: &Store,
    tenant: &str,
    record: &str,
    body: NewTask,
    by: Actor,
    caps: TaskCaps,
    now: DateTime<Utc>,
) -> Result<(Task, Changeset)> {
    let rec = get_record(store, tenant, record)?;
    let assignee = body.assignee.or_else(|| match &by {
        Actor::Key { user, .. } => user.clone(),
        Actor::Run { .. } => None,
    });
    rules::check_new(
        &body.title,
        body.description.as_deref(),
        assignee.as_deref(),
        None,
    )
    .map_err(invalid)?;
    rules::check_tags(&body.tags).map_err(invalid)?;
    check_due(body.due_at, now)?;
    let task = Task {
        id: new_id("tsk"),
        record: rec.id.clone(),
        title: body.title,
        description: body.description,
        due_at: body.due_at,
        priority: body.priority,
        assignee,
        tags: body.tags,
        status: TaskStatus::Open,
        created_by: by,
        completed_by: None,
        completed_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let mut cs = Changeset::new(tenant);
    let kind = EventKind::TaskCreated {
        task: Box::new(task.clone()),
    };
    cs.events.push(task_event(&cs, kind, &rec, now));
    cs.ops.push(Op::CreateTask {
        task: task.clone(),
        caps,
    });
    Ok((task, cs))
}

fn text(field: &str, v: &Value) -> Result<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| CrmError::Invalid(format!("{field} must be a string")))
}

fn optional_text(field: &str, v: &Value) -> Result<Option<String>> {
    if v.is_null() {
        return Ok(None);
    }
    text(field, v).map(Some)
}

/// Applies a patch (title, description, due_at, priority, assignee, tags; null clears the
/// optional ones) to `t`.
fn patch_fields(t: &mut Task, patch: Map<String, Value>, now: DateTime<Utc>) -> Result<()> {
    for (field, v) in patch {
        match field.as_str() {
            "title" => {
                let title = text("title", &v)?;
                rules::check_title(&title).map_err(invalid)?;
                t.title = title;
            }
            "description" => {
                let d = optional_text("description", &v)?;
                if let Some(d) = &d {
                    rules::check_description(d).map_err(invalid)?;
                }
                t.description = d;
            }
            "assignee" => {
                let a = optional_text("assignee", &v)?;
                if let Some(a) = &a {
                    rules::check_assignee(a).map_err(invalid)?;
                }
                t.assignee = a;
            }
            "due_at" => {
                let due = match optional_text("due_at", &v)? {
                    None => None,
                    Some(s) => Some(
                        DateTime::parse_from_rfc3339(&s)
                            .map_err(|e| {
                                CrmError::Invalid(format!(
                                    "due_at must be an RFC 3339 time, not {s:?}: {e}"
                                ))
                            })?
                            .with_timezone(&Utc),
                    ),
                };
                check_due(due, now)?;
                t.due_at = due;
            }
            "priority" => {
                t.priority = serde_json::from_value(v).map_err(|_| {
                    CrmError::Invalid("priority must be \"low\", \"normal\" or \"high\"".into())
                })?;
            }
            "tags" => {
                let tags: Vec<String> = serde_json::from_value(v)
                    .map_err(|_| CrmError::Invalid("tags must be a list of strings".into()))?;
                rules::check_tags(&tags).map_err(invalid)?;
                t.tags = tags;
            }
            "version" => {}
            other => {
                return Err(CrmError::UnknownField(format!(
                    "a task has no field {other:?}; it has title, description, due_at, \
                     priority, assignee, tags (and version)"
                )))
            }
        }
    }
    Ok(())
}

/// Changes a task's fields (optimistically at `expected`, or the `version` in the patch).
/// A done task can still be edited; its record cannot change.
pub fn update(
    store: &Store,
    tenant: &str,
    id: &str,
    patch: Map<String, Value>,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(Task, Changeset)> {
    let old = get(store, tenant, id)?;
    let expected = match (expected, patch.get("version")) {
        (Some(v), _) => v,
        (None, Some(v)) => v
            .as_u64()
            .ok_or_else(|| CrmError::Invalid("version must be a positive integer".into()))?,
        (None, None) => old.version,
    };
    if expected != old.version {
        return Err(CrmError::Conflict(format!(
            "task {id:?} was changed concurrently: expected version {expected}, found {}",
            old.version
        )));
    }
    let mut task = old.clone();
    patch_fields(&mut task, patch, now)?;
    task.version = old.version + 1;
    task.updated_at = now;
    let mut cs = Changeset::new(tenant);
    cs.ops.push(Op::UpdateTask {
        task: task.clone(),
        expected,
    });
    Ok((task, cs))
}

/// Marks an open task done by `by`, with its `task_completed` event. A done task is refused
/// (409 `refused`).
pub fn complete(
    store: &Store,
    tenant: &str,
    id: &str,
    by: Actor,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(Task, Changeset)> {
    let old = get(store, tenant, id)?;
    if let Some(v) = expected.filter(|v| *v != old.version) {
        return Err(CrmError::Conflict(format!(
            "task {id:?} was changed concurrently: expected version {v}, found {}",
            old.version
        )));
    }
    let mut task = old.clone();
    if !task.complete(by.clone(), now) {
        return Err(CrmError::Refused(format!("task {id:?} is done already")));
    }
    task.version = old.version + 1;
    let rec = get_record(store, tenant, &task.record)?;
    let mut cs = Changeset::new(tenant);
    let kind = EventKind::TaskCompleted {
        task: Box::new(task.clone()),
    };
    cs.events.push(task_event(&cs, kind, &rec, now));
    cs.ops.push(Op::CompleteTask {
        id: id.to_string(),
        by,
        at: now,
        expected: Some(old.version),
    });
    Ok((task, cs))
}

/// A comment on `record`'s timeline by `by`.
pub fn comment(
    store: &Store,
    tenant: &str,
    record: &str,
    body: NewComment,
    by: Actor,
    caps: TaskCaps,
    now: DateTime<Utc>,
) -> Result<(Comment, Changeset)> {
    let rec = get_record(store, tenant, record)?;
    rules::check_body(&body.body).map_err(invalid)?;
    let comment = Comment {
        id: new_id("cmt"),
        record: rec.id,
        body: body.body,
        author: by,
        created_at: now,
    };
    let mut cs = Changeset::new(tenant);
    cs.ops.push(Op::AddComment {
        comment: comment.clone(),
        caps,
    });
    Ok((comment, cs))
}
