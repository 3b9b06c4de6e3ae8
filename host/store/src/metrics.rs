//! What the store reports through the `metrics` facade (the host's exporter serves it on
//! `/metrics`): runs as they commit, counted once, where the commit succeeds.

use std::time::Duration;

use metrics::{counter, histogram};
use stagecraft_model::{Mode, RunRecord};

/// Runs that just committed.
pub(crate) fn runs_committed(runs: &[RunRecord]) {
    for r in runs {
        let mode = match r.mode {
            Mode::Inline => "inline",
            Mode::Background => "background",
        };
        counter!("stagecraft_runs_total", "outcome" => r.outcome.name(), "mode" => mode)
            .increment(1);
        histogram!("stagecraft_run_duration_seconds")
            .record(Duration::from_micros(r.duration_us).as_secs_f64());
        histogram!("stagecraft_run_fuel").record(r.fuel_used as f64);
    }
}
