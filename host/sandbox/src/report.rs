//! A run report has a size. What a module writes into it — its error text, its log, the host
//! calls it made — is the module's to choose, and the report becomes a dry-run response, an
//! inline 422 and a stored run record. So the outcome's message keeps at most
//! `Limits::error_bytes`, and logs, recorded HTTP exchanges, host calls and error together at
//! most `Limits::report_bytes`; whatever is cut leaves a note saying what. Exchanges that do
//! not fit whole keep their request and status with their response bodies cut (marked
//! `"response_body_cut": true`); exchanges past even that are left out, counted in the note
//! (`[cut: … HTTP exchanges …]`). A replay answers only what was kept whole.

use stagecraft_model::outbound::HttpExchange;
use stagecraft_model::LogLine;

use crate::limits::Limits;
use crate::RunReport;

/// Bytes kept back for the note that says what was cut.
const NOTE: usize = 512;

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

/// Keeps as many of `exchanges` as fit in `budget`, in order: whole while they fit; then
/// the first that does not keeps as much of its response body as fits, and the ones after it
/// keep no body (both marked `response_body_cut`), while that fits; the rest are left out.
/// Returns how many had their body cut, how many were left out and their size.
fn fit_exchanges(exchanges: &mut Vec<HttpExchange>, budget: &mut usize) -> (usize, usize, usize) {
    let size = |x: &HttpExchange, within: usize| {
        stagecraft_rules::value::size_within(x, within).map_or(usize::MAX, |n| n + 1)
    };
    let mut bodies = 0;
    let mut keep = 0;
    for x in exchanges.iter_mut() {
        let whole = size(x, *budget);
        if bodies == 0 && whole <= *budget {
            *budget -= whole;
            keep += 1;
            continue;
        }
        let mut lean = x.clone();
        lean.response_body = String::new();
        lean.response_complete = false;
        lean.response_body_cut = true;
        let bare = size(&lean, *budget);
        if bare > *budget {
            break;
        }
        if bodies == 0 {
            // As much of the body as the rest of the budget holds, halving until it fits.
            let mut end = (*budget - bare).min(x.response_body.len());
            loop {
                while !x.response_body.is_char_boundary(end) {
                    end -= 1;
                }
                lean.response_body = x.response_body[..end].to_string();
                if end == 0 || size(&lean, *budget) <= *budget {
                    break;
                }
                end /= 2;
            }
        }
        *budget = budget.saturating_sub(size(&lean, usize::MAX));
        *x = lean;
        bodies += 1;
        keep += 1;
    }
    let dropped_bytes = exchanges[keep..].iter().map(|x| size(x, usize::MAX)).sum();
    let dropped = exchanges.len() - keep;
    exchanges.truncate(keep);
    (bodies, dropped, dropped_bytes)
}

impl RunReport {
    /// Cuts the report down to the limits (see the module docs): the error first, then the
    /// log, the HTTP exchanges and the host calls, in that order of preference.
    pub(crate) fn bound(&mut self, limits: &Limits) {
        self.outcome = std::mem::replace(&mut self.outcome, stagecraft_model::Outcome::Ok)
            .bounded(limits.error_bytes);
        let error = self.outcome.message().map_or(0, str::len);
        let mut budget = limits.report_bytes.saturating_sub(error + NOTE);
        let (logs, logs_cut) = fitting(&self.logs, &mut budget);
        let mut cut = Vec::new();
        if logs < self.logs.len() {
            cut.push(format!(
                "the last {} log lines ({logs_cut} bytes)",
                self.logs.len() - logs
            ));
            self.logs.truncate(logs);
        }
        let (bodies, dropped, dropped_bytes) = fit_exchanges(&mut self.http, &mut budget);
        if bodies > 0 {
            cut.push(format!("the response bodies of {bodies} HTTP exchanges"));
        }
        if dropped > 0 {
            cut.push(format!(
                "the last {dropped} HTTP exchanges ({dropped_bytes} bytes)"
            ));
        }
        let (calls, calls_cut) = fitting(&self.host_calls, &mut budget);
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
                    "[cut: {} are not kept; a run keeps {} bytes of logs, HTTP exchanges, host calls and error]",
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

    #[test]
    fn recorded_exchanges_count_in_the_budget_and_are_cut_by_name() {
        let limits = Limits::default();
        let mut r = report(0, 10);
        r.http = (0..40)
            .map(|i| HttpExchange {
                method: "GET".into(),
                url: format!("https://api.example.com/{i}"),
                status: Some(200),
                response_body: "\u{e9}".repeat(8 * 1024),
                response_bytes: 16 * 1024,
                response_complete: true,
                ..Default::default()
            })
            .collect();
        r.bound(&limits);
        let total = serde_json::to_vec(&r.logs).map_or(0, |v| v.len())
            + serde_json::to_vec(&r.http).map_or(0, |v| v.len())
            + serde_json::to_vec(&r.host_calls).map_or(0, |v| v.len())
            + r.outcome.message().map_or(0, str::len);
        assert!(total <= limits.report_bytes, "{total}");
        // The first ones whole, then one with part of its body, then the rest without.
        let whole = r.http.iter().filter(|x| x.response_complete).count();
        assert!(whole > 10 && whole < 20, "{whole}");
        let partial = &r.http[whole];
        assert!(partial.response_body_cut && !partial.response_body.is_empty());
        assert!(r.http[whole + 1..]
            .iter()
            .all(|x| x.response_body_cut && x.response_body.is_empty() && x.status == Some(200)));
        let note = r.logs.last().map(|l| l.message.clone()).unwrap_or_default();
        let cut = r.http.len() - whole;
        assert!(
            note.contains(&format!("the response bodies of {cut} HTTP exchanges")),
            "{note}"
        );

        // Many exchanges: once even a bodiless one does not fit, the rest are left out.
        let mut r = report(0, 10);
        r.http = (0..5000)
            .map(|i| HttpExchange {
                method: "GET".into(),
                url: format!("https://api.example.com/{i:0>200}"),
                status: Some(200),
                ..Default::default()
            })
            .collect();
        r.bound(&limits);
        assert!(r.http.len() < 5000);
        let note = r.logs.last().map(|l| l.message.clone()).unwrap_or_default();
        let left = 5000 - r.http.len();
        assert!(
            note.contains(&format!("the last {left} HTTP exchanges")),
            "{note}"
        );
        let total = serde_json::to_vec(&r.logs).map_or(0, |v| v.len())
            + serde_json::to_vec(&r.http).map_or(0, |v| v.len());
        assert!(total <= limits.report_bytes, "{total}");
    }
}
