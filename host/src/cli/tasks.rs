//! `stagecraft tasks`: the tenant's tasks from the API — yours (`--mine`: the key's CRM
//! user), someone's (`--assignee`), open or done, or the overdue ones (by due time) — and
//! the lines `records show` prints for a record's tasks and comments.

use clap::Args;
use serde_json::Value;

use super::client::{typed, Client};
use super::{table, CliError, Conn};
use crate::model::{Actor, Comment, Task, TaskStatus};

#[derive(Args)]
pub struct TasksArgs {
    /// Only the tasks of this key's own CRM user.
    #[arg(long, conflicts_with = "assignee")]
    mine: bool,
    /// Only this CRM user's tasks.
    #[arg(long)]
    assignee: Option<String>,
    /// Only open tasks past their due time, by due time.
    #[arg(long, conflicts_with = "status")]
    overdue: bool,
    /// `open` or `done`.
    #[arg(long, value_parser = ["open", "done"])]
    status: Option<String>,
    /// How many tasks to show (1-500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
    limit: u16,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn list(client: &Client, a: TasksArgs) -> Result<(), CliError> {
    let mut query: Vec<(&str, String)> = vec![("limit", a.limit.to_string())];
    if a.mine {
        query.push(("mine", "true".into()));
    }
    if a.overdue {
        query.push(("overdue", "true".into()));
    }
    for (k, v) in [("assignee", a.assignee), ("status", a.status)] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    let v = client.get(&["v1", "tasks"], &query).await?;
    if a.conn.json {
        table::print_json(&v);
        return Ok(());
    }
    let tasks: Vec<Task> = typed(&v["tasks"], "task list")?;
    let mut t = table::new(&[
        "TASK", "STATUS", "DUE", "PRIORITY", "ASSIGNEE", "TITLE", "RECORD",
    ]);
    let now = chrono::Utc::now();
    for task in &tasks {
        t.add_row([
            task.id.clone(),
            status(task, now),
            task.due_at.map_or_else(|| "-".into(), |d| table::time(&d)),
            task.priority.as_str().to_string(),
            task.assignee.clone().unwrap_or_else(|| "-".into()),
            table::clip(&task.title, 50),
            task.record.clone(),
        ]);
    }
    let empty = if a.overdue {
        "no overdue tasks"
    } else {
        "no tasks"
    };
    table::print(&t, empty);
    if v["next"].is_string() {
        outln!("(more: raise --limit to see them)");
    }
    Ok(())
}

/// `open`, `overdue` or `done`.
fn status(t: &Task, now: chrono::DateTime<chrono::Utc>) -> String {
    match t.status {
        TaskStatus::Done => "done".into(),
        TaskStatus::Open if t.is_overdue(now) => "overdue".into(),
        TaskStatus::Open => "open".into(),
    }
}

/// Who made something, on one line.
pub fn actor(a: &Actor) -> String {
    match a {
        Actor::Key { user: Some(u), .. } => u.clone(),
        Actor::Key { key, user: None } => format!("key {key}"),
        Actor::Run { run, .. } => format!("run {run}"),
    }
}

/// A timeline entry that is a task or a comment, on one line (None for events).
pub fn timeline_line(entry: &Value) -> Result<Option<String>, CliError> {
    let now = chrono::Utc::now();
    Ok(match entry["type"].as_str() {
        Some("task") => {
            let t: Task = typed(&entry["task"], "task")?;
            let due = t
                .due_at
                .map(|d| format!(", due {}", table::time(&d)))
                .unwrap_or_default();
            let who = t.assignee.as_deref().unwrap_or("nobody");
            Some(format!(
                "{}  {}  task [{}] {} (for {who}{due}; by {})",
                table::time(&t.created_at),
                t.id,
                status(&t, now),
                table::clip(&t.title, 60),
                actor(&t.created_by)
            ))
        }
        Some("comment") => {
            let c: Comment = typed(&entry["comment"], "comment")?;
            Some(format!(
                "{}  {}  comment by {}: {}",
                table::time(&c.created_at),
                c.id,
                actor(&c.author),
                table::clip(&c.body.replace('\n', " "), 80)
            ))
        }
        _ => None,
    })
}
