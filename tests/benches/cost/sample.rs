//! Timing samples and what a report says about them: runs per second, p50 and p99.

use std::time::{Duration, Instant};

/// Durations of individual operations, plus the wall time they took together.
pub struct Samples {
    pub each: Vec<Duration>,
    pub wall: Duration,
}

impl Samples {
    /// Times `n` sequential calls of `f` (after `warmup` untimed ones).
    pub fn time(n: usize, warmup: usize, mut f: impl FnMut(usize)) -> Samples {
        for i in 0..warmup {
            f(i);
        }
        let mut each = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            f(warmup + i);
            each.push(t.elapsed());
        }
        Samples {
            each,
            wall: start.elapsed(),
        }
    }

    pub fn from(each: Vec<Duration>, wall: Duration) -> Samples {
        Samples { each, wall }
    }

    /// Operations per second of wall time.
    pub fn per_sec(&self) -> f64 {
        self.each.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn quantile(&self, q: f64) -> Duration {
        if self.each.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.each.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i.min(v.len() - 1)]
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }
}

/// `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// `12,345`.
pub fn count(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One row of a side-by-side table, in runs per second.
pub fn row(label: &str, s: &Samples) -> String {
    row_of("runs", label, s)
}

/// One row of a side-by-side table, in `unit`s per second.
pub fn row_of(unit: &str, label: &str, s: &Samples) -> String {
    format!(
        "  {label:<46} {:>10} {unit}/s   p50 {:>10}   p99 {:>10}",
        count(s.per_sec()),
        fmt(s.p50()),
        fmt(s.p99())
    )
}
