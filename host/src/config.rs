//! Server configuration: where data lives, where to listen, and the limits that protect the host.

use std::path::PathBuf;

use crate::automation::AutomationConfig;
use crate::delivery::DeliveryConfig;
use crate::retention::RetentionConfig;
use crate::sandbox::Limits;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Limits for module uploads and runs.
    pub limits: Limits,
    /// Cascade depth, rate guard, scheduler tick.
    pub automation: AutomationConfig,
    /// Server-wide channel settings, retries, concurrency.
    pub delivery: DeliveryConfig,
    /// How long run history, journal snapshots and delivered messages are kept.
    pub retention: RetentionConfig,
    /// How long an admin console sign-in lasts.
    pub console_session_ttl: std::time::Duration,
    /// How many store operations requests run at once, and how long one may wait for a turn.
    pub store_pool: crate::http::StorePoolConfig,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            max_body_bytes: 1024 * 1024,
            limits: Limits::default(),
            automation: AutomationConfig::default(),
            delivery: DeliveryConfig::default(),
            retention: RetentionConfig::default(),
            console_session_ttl: std::time::Duration::from_secs(12 * 3600),
            store_pool: crate::http::StorePoolConfig::default(),
        }
    }
}
