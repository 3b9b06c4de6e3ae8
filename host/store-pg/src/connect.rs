//! Where the PostgreSQL server is, and the bounded pool of connections every host keeps to
//! it. A URL (`postgres://user:pass@host:port/db`) or, when none is given, the libpq
//! variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, as `pg_virtualenv`
//! sets them). Connections are plain TCP (or a Unix socket): run the database on a trusted
//! network or loopback.
//!
//! The pool is the limit on what one host holds open: at most [`PgOptions::pool_size`]
//! connections, and a request that finds none free waits at most
//! [`PgOptions::pool_wait`], then fails with [`PoolError::Exhausted`] (the store answers
//! `Unavailable`, so the client gets a 503 it may retry).

use std::time::Duration;

use postgres::{Config, NoTls};
use r2d2_postgres::PostgresConnectionManager;

pub type Manager = PostgresConnectionManager<NoTls>;
pub type Pool = r2d2::Pool<Manager>;
pub type Conn = r2d2::PooledConnection<Manager>;

/// How a host uses its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections one host keeps open at most.
    pub pool_size: u32,
    /// How long an operation waits for a free connection before it fails.
    pub pool_wait: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            pool_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the PostgreSQL address is not valid: {0}")]
    BadAddress(String),
    /// Every connection stayed busy (or the server did not answer) for the whole wait.
    #[error("no PostgreSQL connection came free within {wait:?} (the pool holds at most {size}): {reason}")]
    Exhausted {
        size: u32,
        wait: Duration,
        reason: String,
    },
}

/// The server given by `url`, or by the libpq `PG*` variables when `url` is None; None when
/// neither says where a server is.
pub fn config(url: Option<&str>) -> Result<Option<Config>, PoolError> {
    if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
        return url
            .parse::<Config>()
            .map(Some)
            .map_err(|e| PoolError::BadAddress(e.to_string()));
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(host), Some(user)) = (var("PGHOST"), var("PGUSER")) else {
        return Ok(None);
    };
    let mut c = Config::new();
    c.host(&host).user(&user);
    if let Some(port) = var("PGPORT") {
        let port = port
            .parse::<u16>()
            .map_err(|e| PoolError::BadAddress(format!("PGPORT {port:?}: {e}")))?;
        c.port(port);
    }
    if let Some(p) = var("PGPASSWORD") {
        c.password(p);
    }
    c.dbname(var("PGDATABASE").unwrap_or(user).as_str());
    Ok(Some(c))
}

/// The pool for `config`, with one connection made now (so a wrong address fails at start).
pub fn pool(config: Config, options: &PgOptions) -> Result<Pool, PoolError> {
    let exhausted = |e: r2d2::Error| PoolError::Exhausted {
        size: options.pool_size,
        wait: options.pool_wait,
        reason: e.to_string(),
    };
    r2d2::Pool::builder()
        .max_size(options.pool_size.max(1))
        .min_idle(Some(1))
        .connection_timeout(options.pool_wait)
        .build(PostgresConnectionManager::new(config, NoTls))
        .map_err(exhausted)
}
