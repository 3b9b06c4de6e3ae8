//! Run statistics: the hourly rollups kept as runs commit, and the fixed log-bucket
//! histogram that lets p50/p95/p99 come from rollups instead of from the run history.
//!
//! A histogram bucket `i ≥ 1` holds values in `[2^((i-1)/8), 2^(i/8))`, bucket 0 holds 0; a
//! percentile is reported as the upper bound of the bucket holding it (capped at the largest
//! value seen). So a reported percentile is never below the true one and at most one bucket
//! (a factor 2^(1/8), about 9.05%) above it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::automation::RunRecord;
use super::run::Effect;

/// Buckets per doubling.
const STEPS: f64 = 8.0;

/// A log-bucket histogram of non-negative integers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    /// Bucket index → how many values fell in it.
    pub buckets: BTreeMap<u16, u64>,
    pub count: u64,
    pub max: u64,
}

/// The bucket a value falls in.
pub fn bucket(v: u64) -> u16 {
    if v == 0 {
        return 0;
    }
    let mut i = ((v as f64).log2() * STEPS).floor() as i64 + 1;
    // Guard float rounding at the edges: bucket i must satisfy lower(i) <= v < upper(i).
    while i > 1 && lower(i as u16) > v as f64 {
        i -= 1;
    }
    while upper(i as u16) <= v as f64 {
        i += 1;
    }
    i as u16
}

fn lower(i: u16) -> f64 {
    if i == 0 {
        0.0
    } else {
        2f64.powf(f64::from(i - 1) / STEPS)
    }
}

fn upper(i: u16) -> f64 {
    if i == 0 {
        1.0
    } else {
        2f64.powf(f64::from(i) / STEPS)
    }
}

impl Histogram {
    pub fn add(&mut self, v: u64) {
        *self.buckets.entry(bucket(v)).or_default() += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// The `q` quantile (0 < q ≤ 1): the upper bound of the bucket holding the value of rank
    /// ⌈q·count⌉, capped at the maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                if *b == 0 {
                    return 0;
                }
                // Values are integers below upper(b): the largest is ⌈upper⌉ - 1.
                let top = (upper(*b).ceil() as u64).saturating_sub(1);
                return top.min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Distribution {
        Distribution {
            p50: self.quantile(0.50),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }
}

/// Percentiles of one measure (bucket precision: see the module docs).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Distribution {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

/// What the runs of one module or binding in one hour add up to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Rollup {
    pub runs: u64,
    /// Outcome name → runs.
    pub outcomes: BTreeMap<String, u64>,
    /// Messages the committed runs queued (`queue_message` effects of `ok` runs).
    pub messages: u64,
    /// Messages of these runs delivered in this hour (counted when delivery succeeds).
    #[serde(default)]
    pub sent: u64,
    /// Messages of these runs dead-lettered in this hour.
    #[serde(default)]
    pub dead: u64,
    pub fuel_sum: u64,
    pub duration_us_sum: u64,
    pub duration_us: Histogram,
    pub fuel: Histogram,
    pub peak_memory: Histogram,
}

impl Rollup {
    pub fn add(&mut self, run: &RunRecord) {
        self.runs += 1;
        *self
            .outcomes
            .entry(run.outcome.name().to_string())
            .or_default() += 1;
        self.messages += run
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::QueueMessage { .. }))
            .count() as u64;
        self.fuel_sum = self.fuel_sum.saturating_add(run.fuel_used);
        self.duration_us_sum = self.duration_us_sum.saturating_add(run.duration_us);
        self.duration_us.add(run.duration_us);
        self.fuel.add(run.fuel_used);
        self.peak_memory.add(run.peak_memory);
    }

    /// A delivery of one of these runs' messages ended: `sent` or dead-lettered.
    pub fn add_delivery(&mut self, sent: bool) {
        if sent {
            self.sent += 1;
        } else {
            self.dead += 1;
        }
    }

    pub fn merge(&mut self, other: &Rollup) {
        self.runs += other.runs;
        for (k, n) in &other.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += n;
        }
        self.messages += other.messages;
        self.sent += other.sent;
        self.dead += other.dead;
        self.fuel_sum = self.fuel_sum.saturating_add(other.fuel_sum);
        self.duration_us_sum = self.duration_us_sum.saturating_add(other.duration_us_sum);
        self.duration_us.merge(&other.duration_us);
        self.fuel.merge(&other.fuel);
        self.peak_memory.merge(&other.peak_memory);
    }
}

/// The hour (whole hours since the Unix epoch) a run is counted in: when it started.
pub fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600)
}

/// Statistics of a module's or a binding's runs over a window of whole hours.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stats {
    /// Start of the first hour counted.
    pub since: DateTime<Utc>,
    /// End of the last hour counted (exclusive).
    pub until: DateTime<Utc>,
    pub runs: u64,
    /// Outcome name (`ok`, `guest_error`, `fuel_exhausted`, …) → runs.
    pub outcomes: BTreeMap<String, u64>,
    /// Wall-clock run time in microseconds.
    pub duration_us: Distribution,
    pub fuel: Distribution,
    pub fuel_total: u64,
    /// Peak linear memory in bytes.
    pub peak_memory: Distribution,
    pub messages_queued: u64,
    /// Messages of these runs delivered in the window (by when delivery succeeded).
    pub messages_sent: u64,
    /// Messages of these runs dead-lettered in the window.
    pub messages_dead: u64,
    /// One entry per hour that had runs or deliveries, oldest first.
    pub series: Vec<HourStats>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HourStats {
    pub hour: DateTime<Utc>,
    pub runs: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub duration_us: Distribution,
    /// Fuel per run.
    pub fuel: Distribution,
    pub fuel_total: u64,
    pub messages_queued: u64,
    pub messages_sent: u64,
    pub messages_dead: u64,
}

impl Stats {
    /// Stats over `hours` (hour number → its rollup, any order) for the window
    /// `[since_hour, until_hour)`.
    pub fn from_rollups(since_hour: i64, until_hour: i64, hours: &[(i64, Rollup)]) -> Stats {
        let at = |h: i64| DateTime::from_timestamp(h * 3600, 0).unwrap_or_default();
        let mut total = Rollup::default();
        let mut sorted: Vec<&(i64, Rollup)> = hours.iter().collect();
        sorted.sort_by_key(|(h, _)| *h);
        let mut series = Vec::new();
        for (h, r) in sorted {
            total.merge(r);
            series.push(HourStats {
                hour: at(*h),
                runs: r.runs,
                outcomes: r.outcomes.clone(),
                duration_us: r.duration_us.summary(),
                fuel: r.fuel.summary(),
                fuel_total: r.fuel_sum,
                messages_queued: r.messages,
                messages_sent: r.sent,
                messages_dead: r.dead,
            });
        }
        Stats {
            since: at(since_hour),
            until: at(until_hour),
            runs: total.runs,
            outcomes: total.outcomes,
            duration_us: total.duration_us.summary(),
            fuel: total.fuel.summary(),
            fuel_total: total.fuel_sum,
            peak_memory: total.peak_memory.summary(),
            messages_queued: total.messages,
            messages_sent: total.sent,
            messages_dead: total.dead,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values() {
        for v in [
            1u64,
            2,
            3,
            7,
            8,
            9,
            100,
            1000,
            65_536,
            1 << 40,
            u64::MAX / 3,
        ] {
            let b = bucket(v);
            assert!(
                lower(b) <= v as f64 && (v as f64) < upper(b),
                "value {v} bucket {b}"
            );
        }
        assert_eq!(bucket(0), 0);
        assert!(bucket(u64::MAX) > 0);
    }

    #[test]
    fn quantiles_are_within_one_bucket_above_the_truth() {
        let mut h = Histogram::default();
        let values: Vec<u64> = (1..=1000).map(|i| i * 37).collect();
        for v in &values {
            h.add(*v);
        }
        for (q, truth) in [(0.5, values[499]), (0.95, values[949]), (0.99, values[989])] {
            let got = h.quantile(q);
            assert!(got >= truth, "q{q}: {got} < {truth}");
            assert!(
                (got as f64) < truth as f64 * 2f64.powf(1.0 / STEPS) + 1.0,
                "q{q}: {got} too far above {truth}"
            );
        }
        assert_eq!(h.quantile(1.0), 37_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn merged_rollups_equal_one_rollup_of_everything() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        let mut all = Histogram::default();
        for v in 0..200u64 {
            if v % 3 == 0 { &mut a } else { &mut b }.add(v * v);
            all.add(v * v);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }
}
