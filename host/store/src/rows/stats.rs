//! The hourly rollup row of a module's or a binding's runs.

use serde::{Deserialize, Serialize};
use stagecraft_model::stats::{Histogram, Rollup};

use super::stored_row;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HistogramRow {
    buckets: Vec<(u16, u64)>,
    count: u64,
    max: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RollupRow {
    runs: u64,
    outcomes: Vec<(String, u64)>,
    messages: u64,
    sent: u64,
    dead: u64,
    fuel_sum: u64,
    duration_us_sum: u64,
    duration_us: HistogramRow,
    fuel: HistogramRow,
    peak_memory: HistogramRow,
}

stored_row!(RollupRow => "rollup", 1);

impl From<&Histogram> for HistogramRow {
    fn from(h: &Histogram) -> HistogramRow {
        HistogramRow {
            buckets: h.buckets.iter().map(|(b, n)| (*b, *n)).collect(),
            count: h.count,
            max: h.max,
        }
    }
}

impl From<HistogramRow> for Histogram {
    fn from(h: HistogramRow) -> Histogram {
        Histogram {
            buckets: h.buckets.into_iter().collect(),
            count: h.count,
            max: h.max,
        }
    }
}

impl From<&Rollup> for RollupRow {
    fn from(r: &Rollup) -> RollupRow {
        RollupRow {
            runs: r.runs,
            outcomes: r.outcomes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            messages: r.messages,
            sent: r.sent,
            dead: r.dead,
            fuel_sum: r.fuel_sum,
            duration_us_sum: r.duration_us_sum,
            duration_us: (&r.duration_us).into(),
            fuel: (&r.fuel).into(),
            peak_memory: (&r.peak_memory).into(),
        }
    }
}

impl From<RollupRow> for Rollup {
    fn from(r: RollupRow) -> Rollup {
        Rollup {
            runs: r.runs,
            outcomes: r.outcomes.into_iter().collect(),
            messages: r.messages,
            sent: r.sent,
            dead: r.dead,
            fuel_sum: r.fuel_sum,
            duration_us_sum: r.duration_us_sum,
            duration_us: r.duration_us.into(),
            fuel: r.fuel.into(),
            peak_memory: r.peak_memory.into(),
        }
    }
}
