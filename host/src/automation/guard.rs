//! The per-record rate guard: a record that triggers more runs in a minute than allowed is
//! locked out until the next minute, so a runaway cascade or integration cannot spin.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

pub struct RateGuard {
    per_minute: u32,
    counts: Mutex<HashMap<(String, String), (i64, u32)>>,
}

impl RateGuard {
    pub fn new(per_minute: u32) -> RateGuard {
        RateGuard {
            per_minute,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a run for `record`; Err (with the reason) when it is locked out.
    pub fn admit(&self, tenant: &str, record: &str, now: DateTime<Utc>) -> Result<(), String> {
        let minute = now.timestamp() / 60;
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() > 100_000 {
            counts.retain(|_, (m, _)| *m == minute);
        }
        let entry = counts
            .entry((tenant.to_string(), record.to_string()))
            .or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        if entry.1 > self.per_minute {
            return Err(format!(
                "record {record:?} triggered more than {} runs this minute and is locked out until the next one",
                self.per_minute
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_past_the_limit_until_the_next_minute() {
        let g = RateGuard::new(2);
        let t = DateTime::from_timestamp(600, 0).unwrap();
        assert!(g.admit("t", "r", t).is_ok());
        assert!(g.admit("t", "r", t).is_ok());
        assert!(g.admit("t", "r", t).unwrap_err().contains("locked out"));
        assert!(g.admit("t", "other", t).is_ok());
        assert!(g.admit("t", "r", t + chrono::Duration::seconds(60)).is_ok());
    }
}
