//! A run report has a size. What a module writes into it — its error text, its log, the host
//! calls it made — is the module's to choose, and the report becomes a dry-run response, an
//! inline 422 and a stored run record. So the outcome's message keeps at most
//! `Limits::error_bytes`, and logs, host calls and error together at most
//! `Limits::report_bytes`; whatever is cut leaves a note saying what.

use stagecraft_model::LogLine;

use crate::limits::Limits;
use crate::RunReport;

/// Bytes kept back for the note that says what was cut.
const NOTE: usize = 256;

/// How many of `items` fit in `budget` bytes of JSON (taken off the budget), in order.
fn fitting<T: serde::Serialize>(items: &[T], budget: &mut usize) -> (usize, usize) {
    let mut keep = 0;
    for item in items {
        let b = stagecraft_rules::value::size_within(item, *budget).map_or(usize::MAX, |n| n + 1);
        if b > *budget {
            break;
        }
        *budget -= b;
        keep += 1;
    }
    let cut: usize = items[keep..]
        .iter()
        .map(|i| stagecraft_rules::value::size_within(i, usize::MAX).unwrap_or(0) + 1)
        .sum();
    (keep, cut)
}

impl RunReport {
    /// Cuts the report down to the limits (see the module docs): the error first, then the
    /// log and the host calls, in that order of preference.
    pub(crate) fn bound(&mut self, limits: &Limits) {
        self.outcome = std::mem::replace(&mut self.outcome, stagecraft_model::Outcome::Ok)
            .bounded(limits.error_bytes);
        let error = self.outcome.message().map_or(0, str::len);
        let mut budget = limits.report_bytes.saturating_sub(error + NOTE);
        let (logs, logs_cut) = fitting(&self.logs, &mut budget);
        let (calls, calls_cut) = fitting(&self.host_calls, &mut budget);
        let mut cut = Vec::new();
        if logs < self.logs.len() {
            cut.push(format!(
                "the last {} log lines ({logs_cut} bytes)",
                self.logs.len() - logs
            ));
            self.logs.truncate(logs);
        }
        if calls < self.host_calls.len() {
            cut.push(format!(
                "the last {} host calls ({calls_cut} bytes)",
                self.host_calls.len() - calls
            ));
            self.host_calls.truncate(calls);
        }
        if !cut.is_empty() {
            self.logs.push(LogLine {
                level: "host".into(),
                message: format!(
                    "[cut: {} are not kept; a run keeps {} bytes of logs, host calls and error]",
                    cut.join(" and "),
                    limits.report_bytes
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagecraft_model::{HostCall, Outcome};

    fn report(calls: usize, error: usize) -> RunReport {
        RunReport {
            outcome: Outcome::GuestError {
                message: "e".repeat(error),
            },
            effects: Vec::new(),
            logs: vec![LogLine {
                level: "info".into(),
                message: "hello".into(),
            }],
            host_calls: (0..calls)
                .map(|i| HostCall {
                    call: "records.get".into(),
                    target: format!("{i:0>200}"),
                    error: Some("x".repeat(300)),
                })
                .collect(),
            http: Vec::new(),
            fuel_used: 0,
            peak_memory: 0,
            duration_us: 0,
            instantiate_us: 0,
            records: Vec::new(),
        }
    }

    #[test]
    fn reports_keep_their_budget_and_say_what_was_cut() {
        let limits = Limits::default();
        let mut r = report(1000, 50 * 1024 * 1024);
        r.bound(&limits);
        let error = r.outcome.message().map_or(0, str::len);
        assert!(error < limits.error_bytes + 100, "{error}");
        let total = serde_json::to_vec(&r.logs).map_or(0, |v| v.len())
            + serde_json::to_vec(&r.host_calls).map_or(0, |v| v.len())
            + error;
        assert!(total <= limits.report_bytes, "{total}");
        assert!(r.host_calls.len() > 300, "{}", r.host_calls.len());
        let note = &r.logs.last().map(|l| l.message.clone()).unwrap_or_default();
        assert!(
            note.contains(&format!(
                "the last {} host calls",
                1000 - r.host_calls.len()
            )),
            "{note}"
        );

        let mut small = report(10, 10);
        let before = small.host_calls.clone();
        small.bound(&limits);
        assert_eq!(small.host_calls, before);
        assert_eq!(small.logs.len(), 1);
    }
}
