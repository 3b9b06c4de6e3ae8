//! Tasks and comments on the console: a record's timeline (its events, comments and tasks in
//! one time order, a page at a time) for the record page, the forms that comment, add a task
//! and complete one, and "My tasks" (the signed-in key's CRM user's overdue and open tasks).
//! Like every console page it only calls the API (`/v1/records/{id}/timeline`, `/comments`,
//! `/tasks`, `/v1/tasks`), so its roles, validation, caps and automation apply unchanged.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::enc;
use super::i18n;
use super::page::{self, Page};
use super::{Console, Out, Posted, Stop};
use crate::model::{Actor, Comment, Event, EventKind, Task, TaskStatus};

/// How many timeline entries one page of the record page shows.
pub const TIMELINE_PAGE: usize = 50;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Entry {
    Event { event: Box<Event> },
    Comment { comment: Comment },
    Task { task: Task },
}

#[derive(Deserialize)]
struct TimelinePage {
    entries: Vec<Entry>,
    next: Option<String>,
}

/// One row of the record page's timeline.
pub struct TimelineRow {
    pub time: String,
    /// `event`, `comment` or `task`: a CSS class and the row's label key.
    pub class: &'static str,
    pub what: String,
    pub detail: String,
    pub by: String,
    /// The run that caused it, for a link (developers and admins).
    pub run: Option<String>,
    /// An open task's id, for its "complete" button.
    pub open_task: Option<String>,
}

/// The record page's timeline: one page of rows, and the cursor of the next.
pub struct Timeline {
    pub rows: Vec<TimelineRow>,
    pub next: Option<String>,
}

fn who(page: &Page, actor: &Actor) -> (String, Option<String>) {
    match actor {
        Actor::Key { user: Some(u), .. } => (u.clone(), None),
        Actor::Key { user: None, .. } => (page.t("by-person"), None),
        Actor::Run { run, .. } => (page.t("by-run"), Some(run.clone())),
    }
}

fn event_detail(e: &Event, stage_name: &(dyn Fn(&str) -> String + Sync)) -> String {
    match &e.kind {
        EventKind::StageChanged { from, to } => {
            format!("{} → {}", stage_name(from), stage_name(to))
        }
        EventKind::Updated { fields } => fields.join(", "),
        EventKind::Assigned { from, to } => format!(
            "{} → {}",
            from.as_deref().unwrap_or("—"),
            to.as_deref().unwrap_or("—")
        ),
        EventKind::Inbound { name, .. } => name.clone(),
        _ => String::new(),
    }
}

/// A task's one-line summary: title, status, due time, assignee.
fn task_detail(page: &Page, t: &Task) -> String {
    let mut parts = vec![t.title.clone()];
    parts.push(match t.status {
        TaskStatus::Open => page.t("task-open"),
        TaskStatus::Done => page.t("task-done"),
    });
    if let Some(due) = t.due_at {
        parts.push(page.t1("task-due", "time", page.date(due)));
    }
    if let Some(a) = &t.assignee {
        parts.push(page.t1("task-for", "user", a));
    }
    parts.join(" · ")
}

/// One page of `record`'s timeline, from `cursor`.
pub async fn timeline(
    c: &Console,
    page: &Page,
    record: &str,
    cursor: Option<&str>,
    stage_name: &(dyn Fn(&str) -> String + Sync),
) -> Result<Timeline, Stop> {
    let mut path = format!("/v1/records/{}/timeline?limit={TIMELINE_PAGE}", enc(record));
    if let Some(cur) = cursor {
        path.push_str(&format!("&cursor={}", enc(cur)));
    }
    let got: TimelinePage = c.ok(c.api.get(&path).await)?;
    let rows = got
        .entries
        .iter()
        .map(|entry| match entry {
            Entry::Event { event } => TimelineRow {
                time: page.date(event.occurred_at),
                class: "event",
                what: event.kind.name().to_string(),
                detail: event_detail(event, stage_name),
                by: if event.cause.is_some() {
                    page.t("by-run")
                } else {
                    page.t("by-person")
                },
                run: event.cause.as_ref().map(|c| c.run.clone()),
                open_task: None,
            },
            Entry::Comment { comment } => {
                let (by, run) = who(page, &comment.author);
                TimelineRow {
                    time: page.date(comment.created_at),
                    class: "comment",
                    what: page.t("timeline-comment"),
                    detail: comment.body.clone(),
                    by,
                    run,
                    open_task: None,
                }
            }
            Entry::Task { task } => {
                let (by, run) = who(page, &task.created_by);
                TimelineRow {
                    time: page.date(task.created_at),
                    class: "task",
                    what: page.t("timeline-task"),
                    detail: task_detail(page, task),
                    by,
                    run,
                    open_task: (task.status == TaskStatus::Open).then(|| task.id.clone()),
                }
            }
        })
        .collect();
    Ok(Timeline {
        rows,
        next: got.next,
    })
}

#[derive(Deserialize)]
pub struct CommentForm {
    pub body: String,
}

/// Comments on a record, then back to its page with what the API said.
pub async fn comment(Path(id): Path<String>, Posted(c, f): Posted<CommentForm>) -> Response {
    let back = format!("/console/records/{}", enc(&id));
    let r = c
        .api
        .json(
            Method::POST,
            &format!("/v1/records/{}/comments", enc(&id)),
            &json!({"body": f.body}),
        )
        .await;
    done(
        &c,
        &back,
        r.map(|_| ()),
        "flash-commented",
        "flash-comment-refused",
    )
}

#[derive(Deserialize)]
pub struct TaskForm {
    pub title: String,
    /// `datetime-local` (`2026-12-01T10:30`, read as UTC) or empty.
    #[serde(default)]
    pub due: String,
    #[serde(default)]
    pub assignee: String,
    #[serde(default)]
    pub priority: String,
}

/// The API body for a task form; a due time that is not one is the form's own refusal.
fn task_body(f: &TaskForm) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert("title".into(), json!(f.title));
    let due = f.due.trim();
    if !due.is_empty() {
        let at = NaiveDateTime::parse_from_str(due, "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(due, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| format!("{due:?} is not a date and time"))?;
        let at: DateTime<Utc> = at.and_utc();
        body.insert("due_at".into(), json!(at));
    }
    if !f.assignee.trim().is_empty() {
        body.insert("assignee".into(), json!(f.assignee.trim()));
    }
    if !f.priority.is_empty() {
        body.insert("priority".into(), json!(f.priority));
    }
    Ok(Value::Object(body))
}

/// Adds a task to a record, then back to its page.
pub async fn add_task(Path(id): Path<String>, Posted(c, f): Posted<TaskForm>) -> Response {
    let back = format!("/console/records/{}", enc(&id));
    let r = match task_body(&f) {
        Ok(body) => c
            .api
            .json(
                Method::POST,
                &format!("/v1/records/{}/tasks", enc(&id)),
                &body,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.message),
        Err(message) => Err(message),
    };
    done_text(&c, &back, r, "flash-task-added", "flash-task-refused")
}

#[derive(Deserialize)]
pub struct CompleteForm {
    pub back: Option<String>,
}

/// Completes a task, then back to the page the button was on.
pub async fn complete(Path(id): Path<String>, Posted(c, f): Posted<CompleteForm>) -> Response {
    let back = super::safe_back(f.back.as_deref(), "/console/tasks");
    let r = c
        .api
        .json(
            Method::POST,
            &format!("/v1/tasks/{}/complete", enc(&id)),
            &json!({}),
        )
        .await;
    done(
        &c,
        &back,
        r.map(|_| ()),
        "flash-task-completed",
        "flash-task-refused",
    )
}

fn done(
    c: &Console,
    back: &str,
    r: Result<(), super::api::ApiFailure>,
    ok: &str,
    refused: &str,
) -> Response {
    done_text(c, back, r.map_err(|e| e.message), ok, refused)
}

fn done_text(c: &Console, back: &str, r: Result<(), String>, ok: &str, refused: &str) -> Response {
    match r {
        Ok(()) => c.redirect_with(back, false, i18n::text(c.page.lang, ok, &[])),
        Err(message) => c.redirect_with(
            back,
            true,
            i18n::text(c.page.lang, refused, &[("message", message)]),
        ),
    }
}

#[derive(Deserialize)]
struct TaskList {
    tasks: Vec<Task>,
}

/// A row of "My tasks".
pub struct MyTask {
    pub id: String,
    pub record: String,
    pub title: String,
    pub due: String,
    pub priority: &'static str,
}

#[derive(askama::Template)]
#[template(path = "console/tasks.html")]
struct MyTasksPage<'a> {
    page: &'a Page,
    /// Why there is no list (the key has no CRM user), as the API said.
    refused: Option<String>,
    overdue: Vec<MyTask>,
    open: Vec<MyTask>,
}

#[derive(Deserialize)]
pub struct MyTasksQuery {}

fn rows(page: &Page, tasks: &[Task]) -> Vec<MyTask> {
    tasks
        .iter()
        .map(|t| MyTask {
            id: t.id.clone(),
            record: t.record.clone(),
            title: t.title.clone(),
            due: t.due_at.map(|d| page.date(d)).unwrap_or_default(),
            priority: t.priority.as_str(),
        })
        .collect()
}

/// "My tasks": the signed-in key's CRM user's overdue tasks, then all their open ones.
pub async fn mine(c: Console, Query(_): Query<MyTasksQuery>) -> Out {
    let page = c.page("tasks", c.page.t("nav-tasks"));
    let overdue = c
        .api
        .get::<TaskList>("/v1/tasks?mine=true&overdue=true&limit=200")
        .await;
    let (refused, overdue, open) = match overdue {
        Err(f) if f.status.is_client_error() => (Some(f.message), Vec::new(), Vec::new()),
        other => {
            let overdue = c.ok(other)?;
            let open: TaskList =
                c.ok(c.api.get("/v1/tasks?mine=true&status=open&limit=200").await)?;
            (None, rows(&page, &overdue.tasks), rows(&page, &open.tasks))
        }
    };
    Ok(page::render(&MyTasksPage {
        page: &page,
        refused,
        overdue,
        open,
    }))
}
