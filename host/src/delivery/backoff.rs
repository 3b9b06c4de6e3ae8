//! Retry delays: exponential with jitter, never sooner than the other side asked.

use std::time::Duration;

use rand::RngExt;

use super::DeliveryConfig;

/// The delay before attempt `attempts + 1`: `base · 2^(attempts-1)`, capped, jittered into its
/// upper half; at least `retry_after` when the receiver sent one, but never past the retry
/// window (a hostile `Retry-After` cannot park a message forever).
pub fn delay(config: &DeliveryConfig, attempts: u32, retry_after: Option<Duration>) -> Duration {
    let exp = config
        .base_backoff
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(config.max_backoff);
    let half = exp / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    let backoff = half + Duration::from_millis(jitter);
    match retry_after {
        Some(r) => r.max(backoff).min(config.retry_window),
        None => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honors_retry_after() {
        let c = DeliveryConfig::default();
        let d1 = delay(&c, 1, None);
        assert!(
            d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1),
            "{d1:?}"
        );
        let d5 = delay(&c, 5, None);
        assert!(
            d5 >= Duration::from_secs(8) && d5 <= Duration::from_secs(16),
            "{d5:?}"
        );
        assert!(delay(&c, 40, None) <= c.max_backoff);
        assert_eq!(
            delay(&c, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
