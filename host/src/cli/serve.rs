//! `stagecraft serve`: start the server (store, automation, delivery, HTTP) and run until
//! Ctrl-C or SIGTERM, flushing the store on the way out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::sandbox::CacheLimits;
use crate::telemetry::LogFormat;

/// What `stagecraft serve` takes (and nothing a client command takes).
#[derive(Args)]
pub struct ServeArgs {
    /// Where sled and compiled modules live.
    #[arg(long, default_value = "./stagecraft-data")]
    pub data_dir: PathBuf,
    /// Keep everything in this PostgreSQL database (postgres://user:password@host:port/db)
    /// instead of sled in the data dir; any number of hosts may share it. The data dir
    /// still holds this host's compiled modules.
    #[arg(long, env = "STAGECRAFT_DATABASE_URL", hide_env_values = true, value_parser = database_url)]
    pub database: Option<String>,
    /// Seconds a job, timer or message this host took stays its own (default: jobs and
    /// messages 600, timers 60). With many hosts on one database, the work of a host that
    /// died waits this long before another host takes it over. Keep it above the longest
    /// run and delivery attempt (a shorter lease can deliver a message twice).
    #[arg(long, env = "STAGECRAFT_LEASE_SECONDS", value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub lease_seconds: Option<u64>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seed the default tenant with the example modules, bindings and sample records.
    #[arg(long)]
    pub demo: bool,
    /// Let webhooks, SMS providers and SMTP relays be on loopback, private and link-local
    /// addresses, for tests and demos (off: tenants and modules pick destinations and must
    /// not reach this host's network). Also accepted as --allow-internal-webhooks.
    #[arg(long, alias = "allow-internal-webhooks")]
    pub allow_internal_destinations: bool,
    /// Log lines as text or as JSON objects (with the request / event / run spans).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Days to keep run history, journal snapshots and delivered messages.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=36500))]
    pub retention_days: u64,
    /// Compiled module versions kept ready in memory, all tenants together; past it the least
    /// recently used is dropped and its next run loads its artifact from disk (no compile).
    #[arg(long, env = "STAGECRAFT_MODULE_CACHE_VERSIONS", default_value_t = CacheLimits::default().modules as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub module_cache_versions: u64,
    /// MiB of compiled module images kept ready in memory (the same bound, by size).
    #[arg(long, env = "STAGECRAFT_MODULE_CACHE_MB", default_value_t = CacheLimits::default().bytes >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub module_cache_mb: u64,
    /// A file holding the key (64 hex digits) tenants' secrets are sealed with; or set
    /// STAGECRAFT_SECRETS_KEY to the key itself. Without either the server keeps no secrets.
    #[arg(long, env = "STAGECRAFT_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
}

impl ServeArgs {
    /// The module cache's bounds these flags ask for.
    pub fn module_cache(&self) -> CacheLimits {
        CacheLimits {
            modules: usize::try_from(self.module_cache_versions).unwrap_or(usize::MAX),
            bytes: self.module_cache_mb << 20,
        }
    }
}

/// A PostgreSQL URL, refused before anything starts when it is not one.
fn database_url(s: &str) -> Result<String, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_string())
    } else {
        Err("expected a PostgreSQL URL: postgres://user:password@host:port/database".into())
    }
}

/// Starts the server on `listen` with data in `data_dir`, optionally seeding the demo.
pub async fn run(a: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::new(a.data_dir.clone());
    config.database = a.database.clone();
    config.delivery.allow_internal_destinations = a.allow_internal_destinations;
    if let Some(s) = a.lease_seconds {
        config.leases = crate::store::Leases::all(std::time::Duration::from_secs(s));
    }
    config.retention.max_age = std::time::Duration::from_secs(a.retention_days * 24 * 3600);
    config.limits.module_cache = a.module_cache();
    config.secrets_key = match (&a.secrets_key_file, std::env::var("STAGECRAFT_SECRETS_KEY")) {
        (Some(path), _) => {
            Some(crate::secrets::SecretsKey::from_file(path).map_err(anyhow::Error::msg)?)
        }
        (None, Ok(hex)) => Some(
            crate::secrets::SecretsKey::from_hex(&hex)
                .map_err(|e| anyhow::anyhow!("STAGECRAFT_SECRETS_KEY: {e}"))?,
        ),
        (None, Err(_)) => None,
    };
    // Bind before touching the data dir: a taken port leaves the data as it was (no tenant
    // bootstrapped, no demo seeded). Connections wait in the backlog until serving starts.
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let bootstrap = std::env::var("STAGECRAFT_BOOTSTRAP_KEY").ok();
    let started = crate::server::start(config, bootstrap.as_deref())?;
    match &started.bootstrap_key {
        Some(key) => println!("admin key: {key}"),
        None if a.database.is_some() => {
            // Another host made the first tenant (maybe at this same moment): it printed
            // the key, or STAGECRAFT_BOOTSTRAP_KEY is that key when all hosts share it.
            println!(
                "the database already has a tenant: its admin key was printed by the host \
                 that created it (STAGECRAFT_BOOTSTRAP_KEY is used only there)"
            );
        }
        None => {
            if bootstrap.is_some() {
                println!("STAGECRAFT_BOOTSTRAP_KEY is ignored: this data dir already has a tenant");
            }
            println!(
                "the admin key was printed at this data dir's first start; lost it? stop the \
                 server and run: stagecraft admin-key --data-dir {}",
                shell_word(&a.data_dir)
            );
        }
    }
    if a.demo {
        match crate::demo::seed(&started.state, "default").await? {
            Some(s) => println!(
                "demo: {} example modules enabled, {} sample records created in tenant default",
                s.modules, s.records
            ),
            None => println!("demo: tenant default already has the example modules"),
        }
    }
    let shutdown = shutdown_signal().context("listening for Ctrl-C and SIGTERM")?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "stagecraft listening");
    println!("listening on {addr}");
    crate::http::serve(listener, started.state, shutdown).await?;
    tracing::info!("stopped; data flushed");
    Ok(())
}

/// `path` as one shell word: as is when that is safe, else single-quoted.
pub fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Ctrl-C or SIGTERM. Both are registered when this is called, before the server says it
/// is listening, so a signal sent right after `listening on` already shuts down gracefully
/// (the default action would kill the process).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dirs_become_one_shell_word() {
        assert_eq!(
            shell_word(Path::new("./stagecraft-data")),
            "./stagecraft-data"
        );
        assert_eq!(shell_word(Path::new("/srv/my data")), "'/srv/my data'");
        assert_eq!(shell_word(Path::new("it's")), r"'it'\''s'");
    }

    #[test]
    fn only_postgres_urls_select_the_database() {
        for ok in [
            "postgres://u:p@127.0.0.1:5432/db",
            "postgresql://u@localhost/db",
        ] {
            assert_eq!(database_url(ok).as_deref(), Ok(ok));
        }
        for bad in ["./data", "mysql://u@127.0.0.1/db", ""] {
            let e = database_url(bad).expect_err(bad);
            assert!(e.contains("postgres://"), "{e}");
        }
    }
}
