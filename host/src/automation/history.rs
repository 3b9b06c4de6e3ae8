//! A stored run keeps a short history. The report a run answers with (a dry run, an inline
//! 422) keeps up to `sandbox::Limits::report_bytes` of logs, host calls and error, which is
//! right for someone debugging now; every run record committed keeps far less, because run
//! history accumulates with every event and binding. A stored run keeps its error up to
//! [`STORED_ERROR_BYTES`], each log line up to [`STORED_LINE_BYTES`], and logs, host calls
//! and error together up to [`STORED_HISTORY_BYTES`]; whatever is cut leaves one note saying
//! what (`[not stored: …]`). The host's own notes in the log (the last [`HOST_NOTES`], such as
//! how many HTTP requests a flood had refused) are kept before the module's lines.

use crate::model::{LogLine, RunRecord};

/// A stored run's outcome message.
pub const STORED_ERROR_BYTES: usize = 1024;
/// One stored log line's message.
pub const STORED_LINE_BYTES: usize = 512;
/// A stored run's logs, host calls and error together.
pub const STORED_HISTORY_BYTES: usize = 4 * 1024;
/// Kept back for the note.
const NOTE: usize = 256;
/// The host's own log notes a stored run keeps whatever the module logged.
const HOST_NOTES: usize = 8;

/// JSON bytes of `v` (plus a separator).
fn size(v: &impl serde::Serialize) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len() + 1)
}

/// How many of `items` fit in `budget` (taken off it), in order, and the bytes of the rest.
fn fitting<T: serde::Serialize>(items: &[T], budget: &mut usize) -> (usize, usize) {
    let mut keep = 0;
    for item in items {
        let b = size(item);
        if b > *budget {
            break;
        }
        *budget -= b;
        keep += 1;
    }
    let rest = items[keep..].iter().map(size).sum();
    (keep, rest)
}

/// Cuts `run`'s logs, host calls and error to what a stored run keeps (see the module doc).
pub fn bound(run: &mut RunRecord) {
    run.outcome =
        std::mem::replace(&mut run.outcome, crate::model::Outcome::Ok).bounded(STORED_ERROR_BYTES);
    for line in &mut run.logs {
        if line.message.len() > STORED_LINE_BYTES {
            line.message = crate::model::run::clip_text(
                std::mem::take(&mut line.message),
                STORED_LINE_BYTES,
                "the log line",
            );
        }
    }
    let error = run.outcome.message().map_or(0, str::len);
    let mut budget = STORED_HISTORY_BYTES.saturating_sub(error + NOTE);
    // The host's own notes (requests refused past the limit, what a report cut) say what
    // happened to the run, and the summaries come last: the last HOST_NOTES are kept wherever
    // they are, charged first; the module's lines then fill what is left, in order.
    let notes: Vec<usize> = run
        .logs
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, l)| l.level == "host")
        .map(|(i, _)| i)
        .take(HOST_NOTES)
        .collect();
    for &i in &notes {
        budget = budget.saturating_sub(size(&run.logs[i]));
    }
    let (mut dropped, mut logs_cut, mut full) = (0usize, 0usize, false);
    let mut i = 0;
    run.logs.retain(|line| {
        let keep = if notes.contains(&i) {
            true
        } else {
            let b = size(line);
            full |= b > budget;
            if !full {
                budget -= b;
            } else {
                dropped += 1;
                logs_cut += b;
            }
            !full
        };
        i += 1;
        keep
    });
    let (calls, calls_cut) = fitting(&run.host_calls, &mut budget);
    let mut cut = Vec::new();
    if dropped > 0 {
        cut.push(format!("the last {dropped} log lines ({logs_cut} bytes)"));
    }
    if calls < run.host_calls.len() {
        cut.push(format!(
            "the last {} host calls ({calls_cut} bytes)",
            run.host_calls.len() - calls
        ));
        run.host_calls.truncate(calls);
    }
    if !cut.is_empty() {
        run.logs.push(LogLine {
            level: "host".into(),
            message: format!(
                "[not stored: {}; a stored run keeps {STORED_HISTORY_BYTES} bytes of logs, host calls and error]",
                cut.join(" and ")
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostCall, Mode, Outcome};

    fn run(lines: usize, line: usize, calls: usize, error: usize) -> RunRecord {
        RunRecord {
            id: "run_1".into(),
            event: "evt_1".into(),
            event_kind: "created".into(),
            record: None,
            binding: "bnd_1".into(),
            module: "m".into(),
            version: 1,
            mode: Mode::Background,
            depth: 0,
            outcome: Outcome::GuestError {
                message: "e".repeat(error),
            },
            effects: Vec::new(),
            discarded: Vec::new(),
            logs: (0..lines)
                .map(|_| LogLine {
                    level: "info".into(),
                    message: "l".repeat(line),
                })
                .collect(),
            host_calls: (0..calls)
                .map(|i| HostCall {
                    call: "records.get".into(),
                    target: format!("rec_{i:0>40}"),
                    error: Some("x".repeat(100)),
                })
                .collect(),
            http: Vec::new(),
            fuel_used: 0,
            peak_memory: 0,
            duration_us: 0,
            started_at: chrono::Utc::now(),
            unjournaled_event: None,
        }
    }

    fn history(r: &RunRecord) -> usize {
        size(&r.logs) + size(&r.host_calls) + r.outcome.message().map_or(0, str::len)
    }

    #[test]
    fn a_small_run_is_stored_whole() {
        let mut r = run(3, 40, 4, 20);
        let before = r.clone();
        bound(&mut r);
        assert_eq!(r, before);
    }

    #[test]
    fn a_noisy_run_keeps_its_history_budget_and_says_what_was_cut() {
        let mut r = run(500, 200, 900, 50_000);
        bound(&mut r);
        assert!(history(&r) <= STORED_HISTORY_BYTES, "{}", history(&r));
        let error = r.outcome.message().unwrap_or_default();
        assert!(error.len() < STORED_ERROR_BYTES + 100, "{}", error.len());
        assert!(
            error.contains("[cut: the message was 50000 bytes"),
            "{error}"
        );
        let note = &r.logs.last().expect("a note").message;
        assert!(
            note.starts_with("[not stored: the last ")
                && note.contains("log lines")
                && note.contains("host calls"),
            "{note}"
        );
    }

    #[test]
    fn the_hosts_notes_are_kept_past_a_noisy_module() {
        let mut r = run(200, 100, 0, 0);
        r.logs.push(LogLine {
            level: "host".into(),
            message: "190 more HTTP requests were refused".into(),
        });
        bound(&mut r);
        assert!(history(&r) <= STORED_HISTORY_BYTES, "{}", history(&r));
        let n = r.logs.len();
        assert_eq!(r.logs[n - 2].message, "190 more HTTP requests were refused");
        assert!(r.logs[n - 1].message.starts_with("[not stored: the last "));
    }

    #[test]
    fn a_long_log_line_is_clipped_not_dropped() {
        let mut r = run(2, 10_000, 0, 0);
        bound(&mut r);
        assert_eq!(r.logs.len(), 2, "both lines fit once clipped");
        for l in &r.logs {
            assert!(l.message.len() < STORED_LINE_BYTES + 100);
            assert!(l.message.contains("[cut: the log line was 10000 bytes"));
        }
    }
}
