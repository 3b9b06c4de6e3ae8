//! The command line: `stagecraft serve`. Lives in the library so test harnesses can run the
//! real server as a separate process.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::Config;
use crate::telemetry::LogFormat;
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "stagecraft", version, about = "CRM automation host")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Where sled and compiled modules live.
        #[arg(long, default_value = "./stagecraft-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed the default tenant with the example modules, bindings and sample records.
        #[arg(long)]
        demo: bool,
        /// Let webhooks reach loopback, private and link-local addresses (off: modules pick
        /// webhook URLs and must not reach this host's network).
        #[arg(long)]
        allow_internal_webhooks: bool,
        /// Log lines as text or as JSON objects (with the request / event / run spans).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Days to keep run history, journal snapshots and delivered messages.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=36500))]
        retention_days: u64,
    },
}

impl Command {
    fn log_format(&self) -> LogFormat {
        match self {
            Command::Serve { log_format, .. } => *log_format,
        }
    }
}

/// Parses the command line and runs it.
pub async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    crate::telemetry::init_logs(cli.command.log_format());
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            demo,
            allow_internal_webhooks,
            retention_days,
            ..
        } => {
            let mut config = Config::new(data_dir);
            config.delivery.allow_internal_webhooks = allow_internal_webhooks;
            config.retention.max_age = std::time::Duration::from_secs(retention_days * 24 * 3600);
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
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "stagecraft listening");
            println!("listening on {addr}");
            crate::http::serve(listener, started.state, shutdown_signal()).await?;
            tracing::info!("stopped; data flushed");
        }
    }
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
