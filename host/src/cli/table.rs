//! Human output for the client subcommands: borderless tables (comfy-table), and the short
//! forms of times, sizes, durations, outcomes and effects they show. `--json` bypasses all of
//! this and prints the server's JSON.

use chrono::{DateTime, Utc};
use comfy_table::{presets, ContentArrangement, Table};
use serde_json::Value;

use crate::model::{Effect, HostCall, Outcome};

/// A table with `headers`, no borders, columns two spaces apart.
pub fn new(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// Prints a table (nothing but `empty` when it has no rows).
pub fn print(t: &Table, empty: &str) {
    if t.row_count() == 0 {
        outln!("{empty}");
    } else {
        for line in t.lines() {
            outln!("{}", line.trim_end());
        }
    }
}

/// Prints the server's JSON, pretty.
pub fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => outln!("{s}"),
        Err(_) => outln!("{v}"),
    }
}

/// At most `n` characters of `s`, with `…` when cut.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f < KIB {
        format!("{n} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else {
        format!("{:.1} MiB", f / (KIB * KIB))
    }
}

pub fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", us as f64 / 1_000_000.0)
    }
}

/// `ok`, or the outcome's name and what it means.
pub fn outcome(o: &Outcome) -> String {
    if o.is_ok() {
        "ok".into()
    } else {
        format!("{}: {}", o.name(), o.describe())
    }
}

/// An effect on one line.
pub fn effect(e: &Effect) -> String {
    match e {
        Effect::MoveStage { record, from, to } => format!("move {record}: {from} → {to}"),
        Effect::SetField {
            record,
            field,
            value,
        } => format!("set {record}.{field} = {value}"),
        Effect::QueueMessage {
            id, channel, to, ..
        } => format!("queue {} to {to} ({id})", channel.as_str()),
        Effect::Schedule {
            id,
            record,
            seconds,
            ..
        } => format!("schedule {record} in {seconds}s ({id})"),
        Effect::CreateRecord { id, kind, name, .. } => {
            format!("create {} {id}: {name}", kind.as_str())
        }
        Effect::CreateTask {
            id, record, title, ..
        } => format!("task on {record}: {title} ({id})"),
        Effect::CompleteTask { task, record } => format!("complete task {task} on {record}"),
        Effect::Comment { id, record, body } => format!("comment on {record}: {body} ({id})"),
    }
}

/// A host call on one line.
pub fn host_call(c: &HostCall) -> String {
    match &c.error {
        Some(e) => format!("{} {} → error: {e}", c.call, c.target),
        None => format!("{} {}", c.call, c.target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(micros(12), "12 µs");
        assert_eq!(micros(1500), "1.5 ms");
        assert_eq!(micros(2_500_000), "2.50 s");
    }

    #[test]
    fn tables_have_no_borders() {
        let mut t = new(&["ID", "OUTCOME"]);
        t.add_row(["run_1", "ok"]);
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
        assert_eq!(lines, ["ID     OUTCOME", "run_1  ok"]);
    }
}
