//! `stagecraft records`: the CRM records rules work on, without curl — list them (the API's
//! filters, plus `--search` over name and email), `show` one with its journal events,
//! `create` one with typed fields, and `move` one to another stage. Writes go through the
//! API, so inline automation runs on them exactly as for any other client.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{typed, Client};
use super::syntax::FieldArg;
use super::{table, CliError, Conn};
use crate::model::record::CORE_FIELDS;
use crate::model::{Event, EventKind, Record};

/// Records one `--search` reads at most (20 pages of the API's largest page).
const SEARCH_SCAN: usize = 10_000;
const PAGE: usize = 500;
/// Journal events `show` reads at most.
const EVENT_SCAN: usize = 10_000;

const KINDS: [&str; 4] = ["lead", "contact", "company", "deal"];

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RecordsArgs {
    #[command(subcommand)]
    command: Option<RecordsCommand>,
    #[command(flatten)]
    list: ListArgs,
    #[command(flatten)]
    pub conn: Conn,
}

/// Without a subcommand: list records, oldest first.
#[derive(Args)]
struct ListArgs {
    /// `lead`, `contact`, `company` or `deal`.
    #[arg(long, value_parser = KINDS)]
    kind: Option<String>,
    /// A pipeline's id.
    #[arg(long)]
    pipeline: Option<String>,
    /// A stage's id.
    #[arg(long)]
    stage: Option<String>,
    /// The user records are assigned to.
    #[arg(long)]
    owner: Option<String>,
    /// Only records whose name or email contains this text (any case). The API has no
    /// search, so the CLI pages through the filtered list and matches; it reads at most
    /// 10,000 records and says so when it stopped there.
    #[arg(long)]
    search: Option<String>,
    /// How many records to show (1-500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
    limit: u16,
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// One record: its fields, and its journal events (what happened to it, and which
    /// automation run did it).
    Show {
        /// The record's id.
        id: String,
        /// How many of its latest events to show (1-500).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=500))]
        events: u16,
    },
    /// Create a record (agent or admin key); inline automation has run when it answers.
    Create(CreateArgs),
    /// Move a lead or deal to another stage of its pipeline (agent or admin key).
    Move {
        /// The record's id.
        id: String,
        /// The stage's id, e.g. `contacted`.
        stage: String,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// `lead`, `contact`, `company` or `deal`.
    #[arg(long, value_parser = KINDS)]
    kind: String,
    /// The person's or company's name, or the deal's title.
    #[arg(long)]
    name: String,
    /// The email address.
    #[arg(long)]
    email: Option<String>,
    /// The user it is assigned to.
    #[arg(long)]
    owner: Option<String>,
    /// Leads and deals: the pipeline (default: the first of that kind).
    #[arg(long)]
    pipeline: Option<String>,
    /// Leads and deals: the stage (default: the pipeline's first).
    #[arg(long)]
    stage: Option<String>,
    /// `NAME=VALUE`, repeatable: a custom field, or a core one (`phone`, `amount`,
    /// `currency`, `company`, `contact`). VALUE is JSON when it parses as JSON (`70`, `true`,
    /// `["a","b"]`, `"007"`), else text (`--field source=web form`).
    #[arg(long = "field", value_name = "NAME=VALUE")]
    fields: Vec<FieldArg>,
}

pub async fn run(client: &Client, a: RecordsArgs) -> Result<(), CliError> {
    let json = a.conn.json;
    match a.command {
        None => list(client, a.list, json).await,
        Some(RecordsCommand::Show { id, events }) => show(client, &id, events, json).await,
        Some(RecordsCommand::Create(c)) => create(client, c, json).await,
        Some(RecordsCommand::Move { id, stage }) => move_to(client, &id, &stage, json).await,
    }
}

async fn list(client: &Client, a: ListArgs, json: bool) -> Result<(), CliError> {
    let mut filters: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("kind", a.kind),
        ("pipeline", a.pipeline),
        ("stage", a.stage),
        ("owner", a.owner),
    ] {
        if let Some(v) = v {
            filters.push((k, v));
        }
    }
    let limit = usize::from(a.limit);
    let Some(needle) = a.search.map(|s| s.to_lowercase()) else {
        let mut q = filters;
        q.push(("limit", limit.to_string()));
        let v = client.get(&["v1", "records"], &q).await?;
        if json {
            table::print_json(&v);
            return Ok(());
        }
        let records: Vec<Record> = typed(&v["records"], "record list")?;
        print_list(&records);
        if v["next"].is_string() {
            eprintln!("(more records: narrow the filters, or show up to 500 with --limit)");
        }
        return Ok(());
    };

    let mut found: Vec<Record> = Vec::new();
    let mut scanned = 0;
    let mut after: Option<String> = None;
    let mut stopped_early = false;
    loop {
        let mut q = filters.clone();
        q.push(("limit", PAGE.to_string()));
        if let Some(cursor) = &after {
            q.push(("after", cursor.clone()));
        }
        let v = client.get(&["v1", "records"], &q).await?;
        let page: Vec<Record> = typed(&v["records"], "record list")?;
        scanned += page.len();
        found.extend(page.into_iter().filter(|r| matches(r, &needle)));
        after = v["next"].as_str().map(String::from);
        if found.len() >= limit || after.is_none() {
            break;
        }
        if scanned >= SEARCH_SCAN {
            stopped_early = true;
            break;
        }
    }
    found.truncate(limit);
    if json {
        table::print_json(&json!({ "records": found }));
    } else {
        print_list(&found);
    }
    if stopped_early {
        eprintln!(
            "(searched the first {scanned} records only: narrow the search with --kind, \
             --pipeline, --stage or --owner)"
        );
    }
    Ok(())
}

/// `--search`: name or email contains `needle` (already lower case).
fn matches(r: &Record, needle: &str) -> bool {
    r.name.to_lowercase().contains(needle)
        || r.email
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains(needle))
}

fn print_list(records: &[Record]) {
    let mut t = table::new(&[
        "RECORD", "KIND", "NAME", "EMAIL", "STAGE", "OWNER", "FIELDS", "UPDATED",
    ]);
    for r in records {
        t.add_row([
            r.id.clone(),
            r.kind.as_str().to_string(),
            table::clip(&r.name, 30),
            r.email.clone().unwrap_or_else(|| "-".into()),
            place(r),
            r.owner.clone().unwrap_or_else(|| "-".into()),
            table::clip(&custom(r), 40),
            table::time(&r.updated_at),
        ]);
    }
    table::print(&t, "no records");
}

/// `pipeline/stage`, or `-` for contacts and companies.
fn place(r: &Record) -> String {
    match (&r.pipeline, &r.stage) {
        (Some(p), Some(s)) => format!("{p}/{s}"),
        (None, Some(s)) => s.clone(),
        _ => "-".into(),
    }
}

/// Custom fields as `name=value, …` (JSON values).
fn custom(r: &Record) -> String {
    r.custom
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn show(client: &Client, id: &str, shown: u16, json: bool) -> Result<(), CliError> {
    let v = client.get(&["v1", "records", id], &[]).await?;
    let (mut events, total, complete) = events_of(client, id).await?;
    // Oldest first by when they happened; keep the latest `shown`.
    events.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then(a.id.cmp(&b.id)));
    let skip = events.len().saturating_sub(shown.into());
    let events = events.split_off(skip);
    let (mut notes, notes_complete) = notes_of(client, id).await?;
    let notes_total = notes.len();
    let notes = notes.split_off(notes.len().saturating_sub(shown.into()));
    if json {
        table::print_json(&json!({ "record": v, "events": events, "timeline": notes }));
        return Ok(());
    }
    let r: Record = typed(&v, "record")?;
    outln!(
        "record   {} ({}, version {})",
        r.id,
        r.kind.as_str(),
        r.version
    );
    outln!("name     {}", r.name);
    let optional = [
        ("email", r.email.clone()),
        ("phone", r.phone.clone()),
        (
            "amount",
            r.amount.map(|a| match &r.currency {
                Some(c) => format!("{a} {c}"),
                None => a.to_string(),
            }),
        ),
        ("stage", (r.stage.is_some()).then(|| place(&r))),
        ("owner", r.owner.clone()),
        ("company", r.company.clone()),
        ("contact", r.contact.clone()),
    ];
    for (label, value) in optional {
        if let Some(value) = value {
            outln!("{label:<8} {value}");
        }
    }
    for (k, v) in &r.custom {
        outln!("{:<8} {k} = {v}", "field");
    }
    outln!(
        "created  {}, updated {}",
        table::time(&r.created_at),
        table::time(&r.updated_at)
    );
    let of = if complete {
        total.to_string()
    } else {
        format!("the first {total}")
    };
    if events.is_empty() {
        outln!("events: none");
    } else {
        outln!("events (the latest {} of {of}):", events.len());
        for e in &events {
            outln!(
                "  {}  {}  {}",
                table::time(&e.occurred_at),
                e.id,
                event_line(e)
            );
        }
    }
    let of = if notes_complete {
        notes_total.to_string()
    } else {
        format!("the first {notes_total}")
    };
    if notes.is_empty() {
        outln!("tasks and comments: none");
    } else {
        outln!("tasks and comments (the latest {} of {of}):", notes.len());
        for n in &notes {
            if let Some(line) = super::tasks::timeline_line(n)? {
                outln!("  {line}");
            }
        }
    }
    Ok(())
}

/// The record's tasks and comments from its timeline, oldest first (reading at most
/// [`EVENT_SCAN`] timeline entries), and whether that was all of them.
async fn notes_of(client: &Client, id: &str) -> Result<(Vec<Value>, bool), CliError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut read = 0;
    while read < EVENT_SCAN {
        let mut q = vec![("limit", PAGE.to_string())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let v = client.get(&["v1", "records", id, "timeline"], &q).await?;
        let entries = v["entries"].as_array().cloned().unwrap_or_default();
        read += entries.len();
        out.extend(entries.into_iter().filter(|e| e["type"] != "event"));
        match v["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return Ok((out, true)),
        }
    }
    Ok((out, false))
}

/// The record's journal events (up to [`EVENT_SCAN`]), how many were read, and whether that
/// was all of them.
async fn events_of(client: &Client, id: &str) -> Result<(Vec<Event>, usize, bool), CliError> {
    let mut all: Vec<Event> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![("record", id.to_string()), ("limit", PAGE.to_string())];
        if let Some(cursor) = &after {
            q.push(("after", cursor.clone()));
        }
        let v = client.get(&["v1", "events"], &q).await?;
        let page: Vec<Event> = typed(&v["events"], "event list")?;
        all.extend(page);
        after = v["next"].as_str().map(String::from);
        if after.is_none() {
            let n = all.len();
            return Ok((all, n, true));
        }
        if all.len() >= EVENT_SCAN {
            let n = all.len();
            return Ok((all, n, false));
        }
    }
}

/// What an event says, on one line.
fn event_line(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::Updated { fields } => format!("updated {}", fields.join(", ")),
        EventKind::StageChanged { from, to } => format!("stage_changed {from} → {to}"),
        EventKind::Assigned { from, to } => format!(
            "assigned {} → {}",
            from.as_deref().unwrap_or("nobody"),
            to.as_deref().unwrap_or("nobody")
        ),
        EventKind::Scheduled { payload } => format!("scheduled {payload}"),
        EventKind::Inbound { name, .. } => format!("inbound {name}"),
        EventKind::TaskCreated { task }
        | EventKind::TaskCompleted { task }
        | EventKind::TaskOverdue { task } => format!("{} {:?}", e.kind.name(), task.title),
        other => other.name().to_string(),
    };
    match &e.cause {
        Some(c) => format!("{what}  (by run {})", c.run),
        None => what,
    }
}

async fn create(client: &Client, a: CreateArgs, json: bool) -> Result<(), CliError> {
    let mut body = Map::new();
    body.insert("kind".into(), json!(a.kind));
    body.insert("name".into(), json!(a.name));
    for (k, v) in [
        ("email", a.email),
        ("owner", a.owner),
        ("pipeline", a.pipeline),
        ("stage", a.stage),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    let mut custom = Map::new();
    for f in a.fields {
        let core = CORE_FIELDS.contains(&f.name.as_str())
            || ["pipeline", "stage"].contains(&f.name.as_str());
        // Core fields other than `amount` are text: `--field phone=5551234` stays "5551234".
        let value = match f.value {
            Value::Number(_) | Value::Bool(_) if core && f.name != "amount" => Value::from(f.raw),
            v => v,
        };
        let target = if core { &mut body } else { &mut custom };
        if target.insert(f.name.clone(), value).is_some() {
            return Err(CliError::Usage(format!(
                "--field {}: that field is given twice (or also as --{})",
                f.name, f.name
            )));
        }
    }
    if !custom.is_empty() {
        body.insert("custom".into(), Value::Object(custom));
    }
    let v = client
        .post(&["v1", "records"], &Value::Object(body))
        .await?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let r: Record = typed(&v, "record")?;
    let at = if r.stage.is_some() {
        format!(" in {}", place(&r))
    } else {
        String::new()
    };
    outln!("created {} {} {:?}{at}", r.kind.as_str(), r.id, r.name);
    Ok(())
}

async fn move_to(client: &Client, id: &str, stage: &str, json: bool) -> Result<(), CliError> {
    let v = client
        .post(&["v1", "records", id, "stage"], &json!({ "stage": stage }))
        .await?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let r: Record = typed(&v, "record")?;
    let now = r.stage.as_deref().unwrap_or("-");
    if now == stage {
        outln!("moved {} to {} (version {})", r.id, place(&r), r.version);
    } else {
        outln!(
            "moved {} to {stage}; automation then moved it to {} (version {})",
            r.id,
            place(&r),
            r.version
        );
    }
    Ok(())
}
