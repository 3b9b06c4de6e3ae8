//! `stagecraft runs` (the run history, and `--follow` to watch it) and `stagecraft logs`
//! (one run in full: outcome, effects, logs, host calls, fuel, memory, duration).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::client::{typed, Client, ClientError};
use super::{table, CliError, RunsArgs};
use crate::model::{Effect, HostCall, LogLine, Outcome, RunRecord};

/// How many runs a `--follow` poll reads: new runs beyond this many between two polls are
/// not shown.
const FOLLOW_WINDOW: u16 = 200;

/// Lists runs, newest first; with `--follow`, then prints new ones (oldest first) as they
/// appear until Ctrl-C.
pub async fn list(client: &Client, a: RunsArgs) -> Result<(), CliError> {
    let json = a.conn.json;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("module", &a.module),
        ("binding", &a.binding),
        ("outcome", &a.outcome),
        ("record", &a.record),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let page = |limit: u16| {
        let mut q = query.clone();
        q.push(("limit", limit.to_string()));
        q
    };
    if !a.follow {
        let v = client.get(&["v1", "runs"], &page(a.limit)).await?;
        let mut runs = runs_of(&v)?;
        if json {
            table::print_json(&v);
        } else {
            // Newest first by the time they started, whatever order their ids sort in.
            runs.sort_by(|a, b| by_time(b, a));
            table::print(&runs_table(&runs), "no runs");
        }
        return Ok(());
    }

    // Follow: show the latest page oldest first, then whatever appears, one line (or one JSON
    // document) per run.
    let mut seen: HashSet<String> = HashSet::new();
    let mut shown_header = false;
    let mut emit = |fresh: Vec<(RunRecord, Value)>| {
        for (r, raw) in &fresh {
            if json {
                outln!("{raw}");
                continue;
            }
            // Fixed widths: rows printed poll by poll still line up.
            if !std::mem::replace(&mut shown_header, true) {
                outln!("{}", follow_line(&RUN_HEADERS.map(String::from)));
            }
            outln!("{}", follow_line(&run_row(r)));
        }
    };
    let raw_runs = |v: &Value| -> Result<Vec<(RunRecord, Value)>, CliError> {
        let raws = v["runs"].as_array().cloned().unwrap_or_default();
        let parsed = runs_of(v)?;
        Ok(parsed.into_iter().zip(raws).collect())
    };
    let v = client.get(&["v1", "runs"], &page(FOLLOW_WINDOW)).await?;
    let window = raw_runs(&v)?;
    seen.extend(window.iter().map(|(r, _)| r.id.clone()));
    // The latest `limit` runs by start time, printed oldest first.
    let mut first = window;
    first.sort_by(|(a, _), (b, _)| by_time(b, a));
    first.truncate(a.limit.into());
    first.reverse();
    emit(first);
    let interval = Duration::from_secs_f64(a.interval);
    let mut away = false;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
        let q = page(FOLLOW_WINDOW);
        let v = tokio::select! {
            _ = &mut stop => return Ok(()),
            v = client.get(&["v1", "runs"], &q) => v,
        };
        // A server restarting is waited for; anything else ends the follow.
        let v = match v {
            Ok(v) => {
                if std::mem::take(&mut away) {
                    eprintln!("reconnected to {}", client.base());
                }
                v
            }
            Err(e @ ClientError::Unreachable { .. }) => {
                if !std::mem::replace(&mut away, true) {
                    eprintln!("{e}; still trying (Ctrl-C to stop)");
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let window = raw_runs(&v)?;
        let ids: HashSet<String> = window.iter().map(|(r, _)| r.id.clone()).collect();
        let mut fresh: Vec<(RunRecord, Value)> = window
            .into_iter()
            .filter(|(r, _)| !seen.contains(&r.id))
            .collect();
        fresh.sort_by(|(a, _), (b, _)| by_time(a, b));
        // Runs are only ever added, so a run that left the window never comes back:
        // remembering the window is enough, and keeps memory bounded. (A run committed for an
        // event older than the whole window is not shown.)
        seen = ids;
        emit(fresh);
    }
}

/// Oldest first: by start time, then id.
fn by_time(a: &RunRecord, b: &RunRecord) -> std::cmp::Ordering {
    a.started_at
        .cmp(&b.started_at)
        .then_with(|| a.id.cmp(&b.id))
}

fn runs_of(v: &Value) -> Result<Vec<RunRecord>, CliError> {
    Ok(typed(&v["runs"], "run list")?)
}

const RUN_HEADERS: [&str; 8] = [
    "RUN", "STARTED", "MODULE", "EVENT", "RECORD", "OUTCOME", "EFFECTS", "TIME",
];

fn run_row(r: &RunRecord) -> [String; 8] {
    [
        r.id.clone(),
        table::time(&r.started_at),
        format!("{}@{}", r.module, r.version),
        r.event_kind.clone(),
        r.record.clone().unwrap_or_else(|| "-".into()),
        r.outcome.name().to_string(),
        r.effects.len().to_string(),
        table::micros(r.duration_us),
    ]
}

fn runs_table(runs: &[RunRecord]) -> comfy_table::Table {
    let mut t = table::new(&RUN_HEADERS);
    for r in runs {
        t.add_row(run_row(r));
    }
    t
}

/// One `--follow` line, in columns wide enough for typical ids and names.
fn follow_line(c: &[String; 8]) -> String {
    format!(
        "{:<42}  {:<19}  {:<24}  {:<13}  {:<30}  {:<15}  {:<7}  {}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    )
    .trim_end()
    .to_string()
}

/// Prints one run in full.
pub async fn show(client: &Client, id: &str, json: bool) -> Result<(), CliError> {
    let v = client.get(&["v1", "runs", id], &[]).await?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let r: RunRecord = typed(&v, "run")?;
    outln!("run      {}", r.id);
    outln!(
        "module   {}@{} (binding {}, {})",
        r.module,
        r.version,
        r.binding,
        match r.mode {
            crate::model::Mode::Inline => "inline",
            crate::model::Mode::Background => "background",
        }
    );
    outln!(
        "event    {} {}{}",
        r.event,
        r.event_kind,
        r.record
            .as_ref()
            .map(|rec| format!(" on {rec}"))
            .unwrap_or_default()
    );
    outln!(
        "started  {} (cascade depth {})",
        table::time(&r.started_at),
        r.depth
    );
    print_report(&Report {
        outcome: &r.outcome,
        effects: &r.effects,
        discarded: &r.discarded,
        logs: &r.logs,
        host_calls: &r.host_calls,
        fuel_used: r.fuel_used,
        peak_memory: r.peak_memory,
        duration_us: r.duration_us,
    });
    Ok(())
}

/// What a run (or a dry-run) reports.
pub struct Report<'a> {
    pub outcome: &'a Outcome,
    pub effects: &'a [Effect],
    pub discarded: &'a [Effect],
    pub logs: &'a [LogLine],
    pub host_calls: &'a [HostCall],
    pub fuel_used: u64,
    pub peak_memory: u64,
    pub duration_us: u64,
}

/// Prints a report: outcome and cost, then effects, discarded effects, logs and host calls.
pub fn print_report(r: &Report<'_>) {
    outln!("outcome  {}", table::outcome(r.outcome));
    outln!(
        "cost     {} fuel, {} peak memory, {}",
        r.fuel_used,
        table::bytes(r.peak_memory),
        table::micros(r.duration_us)
    );
    section("effects", r.effects.iter().map(table::effect));
    if !r.discarded.is_empty() {
        section(
            "discarded (the run failed)",
            r.discarded.iter().map(table::effect),
        );
    }
    section(
        "logs",
        r.logs
            .iter()
            .map(|l| format!("[{}] {}", l.level, l.message)),
    );
    section("host calls", r.host_calls.iter().map(table::host_call));
}

fn section(title: &str, lines: impl Iterator<Item = String>) {
    let lines: Vec<String> = lines.collect();
    if lines.is_empty() {
        outln!("{title}: none");
    } else {
        outln!("{title}:");
        for l in lines {
            outln!("  {l}");
        }
    }
}
