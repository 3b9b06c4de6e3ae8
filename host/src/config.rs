//! Server configuration: where data lives, where to listen, and the limits that protect the host.

use std::path::PathBuf;

use crate::automation::AutomationConfig;
use crate::delivery::DeliveryConfig;
use crate::retention::RetentionConfig;
use crate::sandbox::Limits;

#[derive(Debug, Clone)]
pub struct Config {
    /// sled's database (unless `database` is set) and this host's compiled modules.
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://…`) to keep everything in instead of sled, shared
    /// by every host that names it. None: sled in the data dir.
    pub database: Option<String>,
    /// How long a job, timer or message this host took stays its own; with many hosts, how
    /// soon another host takes over the work of one that died (`serve --lease-seconds`).
    pub leases: crate::store::Leases,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Limits for module uploads and runs.
    pub limits: Limits,
    /// How many modules and versions, and how many bytes of them, one tenant may store.
    pub modules: crate::store::ModuleQuota,
    /// Cascade depth, rate guard, scheduler tick.
    pub automation: AutomationConfig,
    /// Server-wide channel settings, retries, concurrency.
    pub delivery: DeliveryConfig,
    /// How long run history, journal snapshots and delivered messages are kept.
    pub retention: RetentionConfig,
    /// How long an admin console sign-in lasts.
    pub console_session_ttl: std::time::Duration,
    /// On shutdown: how long requests in flight may take to finish, and then how long the
    /// background workers may take to stop. Whatever is still running after that is
    /// abandoned (jobs are durable and run again after a restart).
    pub shutdown_grace: std::time::Duration,
    /// Budgets of one list request: the bytes of items on one page (lists read indexes, so
    /// there is no scan to bound).
    pub lists: crate::store::ListLimits,
    /// How many store operations requests run at once, and how long one may wait for a turn.
    pub store_pool: crate::http::PoolConfig,
    /// The key tenants' secrets are sealed with; without one the server keeps no secrets.
    pub secrets_key: Option<crate::secrets::SecretsKey>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            database: None,
            leases: crate::store::Leases::default(),
            max_body_bytes: 1024 * 1024,
            limits: Limits::default(),
            modules: crate::store::ModuleQuota::default(),
            automation: AutomationConfig::default(),
            delivery: DeliveryConfig::default(),
            retention: RetentionConfig::default(),
            console_session_ttl: std::time::Duration::from_secs(12 * 3600),
            shutdown_grace: std::time::Duration::from_secs(5),
            lists: crate::store::ListLimits::default(),
            store_pool: crate::http::PoolConfig::store(),
            secrets_key: None,
        }
    }
}
