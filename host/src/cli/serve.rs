//! `stagecraft serve`: start the server (store, automation, delivery, HTTP) and run until
//! Ctrl-C or SIGTERM, flushing the store on the way out.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::Config;

/// What `stagecraft serve` was asked for.
pub struct Options {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Seed the default tenant with the example modules.
    pub demo: bool,
    pub allow_internal_webhooks: bool,
    /// Age after which run history, journal snapshots and delivered messages are pruned.
    pub retention: std::time::Duration,
}

/// Starts the server on `listen` with data in `data_dir`, optionally seeding the demo.
pub async fn run(o: Options) -> anyhow::Result<()> {
    let Options {
        data_dir,
        listen,
        demo,
        allow_internal_webhooks,
        retention,
    } = o;
    let mut config = Config::new(data_dir);
    config.delivery.allow_internal_webhooks = allow_internal_webhooks;
    config.retention.max_age = retention;
    // Bind before touching the data dir: a taken port leaves the data as it was (no tenant
    // bootstrapped, no demo seeded). Connections wait in the backlog until serving starts.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let bootstrap = std::env::var("STAGECRAFT_BOOTSTRAP_KEY").ok();
    let started = crate::server::start(config, bootstrap.as_deref())?;
    if let Some(key) = &started.bootstrap_key {
        println!("admin key: {key}");
    }
    if demo {
        match crate::demo::seed(&started.state, "default").await? {
            Some(s) => println!(
                "demo: {} example modules enabled, {} sample records created in tenant default",
                s.modules, s.records
            ),
            None => println!("demo: tenant default already has the example modules"),
        }
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "stagecraft listening");
    println!("listening on {addr}");
    crate::http::serve(listener, started.state, shutdown_signal()).await?;
    tracing::info!("stopped; data flushed");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
