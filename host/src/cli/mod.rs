//! The command line: `stagecraft serve` runs the server; the other subcommands are a plain
//! HTTP client of its API (`push`, `modules`, `enable`, `dry-run`, `runs`, `logs`, `messages`) plus the
//! rule-crate tools (`new`, `build`). Lives in the library so test harnesses run the real
//! binary as a separate process.
//!
//! Exit codes: 0 success, 1 the server refused or a local step failed, 2 usage (bad flags or
//! arguments), 3 the server could not be reached.

mod bindings;
mod client;
mod messages;
mod modules;
mod runs;
mod scaffold;
mod serve;
mod syntax;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

pub use client::{Client, ClientError};
use syntax::{GrantArg, ModuleRef, TriggerArg};

#[derive(Parser)]
#[command(
    name = "stagecraft",
    version,
    about = "CRM automation host",
    after_help = "Exit codes: 0 ok, 1 refused by the server or failed, 2 usage, 3 server unreachable."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where the client subcommands find the server, and how they print.
#[derive(Args, Clone)]
struct Global {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "STAGECRAFT_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// API key (admin for `enable`; developer or admin for `push`, `dry-run`, `runs`, `logs`,
    /// `messages`; any for `modules` without a name).
    #[arg(long, global = true, env = "STAGECRAFT_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
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
        /// Let webhooks, SMS providers and SMTP relays be on loopback, private and link-local
        /// addresses, for tests and demos (off: tenants and modules pick destinations and must
        /// not reach this host's network). Also accepted as --allow-internal-webhooks.
        #[arg(long, alias = "allow-internal-webhooks")]
        allow_internal_destinations: bool,
        /// Log lines as text or as JSON objects (with the request / event / run spans).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Days to keep run history, journal snapshots and delivered messages.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=36500))]
        retention_days: u64,
    },
    /// Create a rule crate wired to stagecraft-sdk, with a unit test on the mock host.
    New {
        /// Directory to create; its last component is the crate name.
        path: PathBuf,
        /// The stagecraft-sdk source directory (default: the one this binary was built from).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build the rule crate to a WebAssembly component (cargo, target wasm32-wasip2, release).
    Build {
        /// The crate's directory.
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Upload a component as the next version of a module.
    Push {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The module's name.
        #[arg(long)]
        module: String,
    },
    /// The modules, or one module's versions and where each is enabled.
    Modules {
        /// A module's name: list its versions.
        name: Option<String>,
    },
    /// Enable a module version on a pipeline: creates its binding there, or switches the
    /// existing one to this version (that is also how you roll back).
    Enable(EnableArgs),
    /// Run a module version against a real record or past event; commits and sends nothing.
    DryRun(DryRunArgs),
    /// The run history, newest first (`--follow` keeps printing new runs).
    Runs(RunsArgs),
    /// One run: its logs, host calls, effects, fuel, memory and duration.
    Logs {
        /// The run's id (from `stagecraft runs`).
        run: String,
    },
    /// The outbox: messages modules queued, and their delivery state.
    Messages(MessagesArgs),
}

#[derive(Args)]
struct EnableArgs {
    /// `module@version`.
    module: ModuleRef,
    /// The pipeline's id or name.
    #[arg(long)]
    pipeline: String,
    /// `inline` (inside the triggering request) or `background` (the server's default).
    #[arg(long, value_parser = ["inline", "background"])]
    mode: Option<String>,
    /// When it runs, repeatable: `created`, `updated[:field,…]`, `entered_stage:<stage>`,
    /// `stage_changed`, `assigned`, `deleted`, `inbound:<name>`; add `+<n>[s|m|h|d]` to delay
    /// it (e.g. `entered_stage:qualified+2d`). Replaces an existing binding's triggers.
    #[arg(long = "on", value_name = "TRIGGER")]
    on: Vec<TriggerArg>,
    /// The binding config the module reads, a JSON object.
    #[arg(long)]
    config: Option<String>,
    /// What the module may do, repeatable: `field:<name>` (`field:*` for any), `channel:<email|sms|webhook|notify>`,
    /// `backward`. Replaces an existing binding's grants.
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<GrantArg>,
    /// Lower runs first among the pipeline's bindings for the same event.
    #[arg(long, allow_hyphen_values = true)]
    order: Option<i32>,
    /// The binding to change, when the module has more than one on the pipeline.
    #[arg(long)]
    binding: Option<String>,
}

#[derive(Args)]
struct DryRunArgs {
    /// `module@version`.
    module: ModuleRef,
    /// Run on this record now, with a synthetic event (`--kind`, default created).
    #[arg(long)]
    record: Option<String>,
    /// Or replay this journal event exactly as it happened.
    #[arg(long, conflicts_with_all = ["record", "kind"])]
    event: Option<String>,
    /// The synthetic event as JSON, e.g. `{"type":"stage_changed","from":"new","to":"contacted"}`
    /// (an `inbound` one needs no record).
    #[arg(long)]
    kind: Option<String>,
    /// The binding config the module reads, a JSON object.
    #[arg(long)]
    config: Option<String>,
    /// Narrow what the module may do (default: everything, to see every effect it tries).
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<GrantArg>,
}

#[derive(Args)]
struct RunsArgs {
    #[arg(long)]
    module: Option<String>,
    #[arg(long)]
    binding: Option<String>,
    /// `ok`, `guest_error`, `trap`, `denied`, …
    #[arg(long)]
    outcome: Option<String>,
    #[arg(long)]
    record: Option<String>,
    /// How many runs to show (1-200).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=200))]
    limit: u16,
    /// Keep polling and print new runs as they appear, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Seconds between polls with `--follow` (0.2-60).
    #[arg(long, default_value_t = 1.0, value_parser = syntax::poll_interval)]
    interval: f64,
}

#[derive(Args)]
struct MessagesArgs {
    /// `queued`, `sending`, `sent` or `dead`.
    #[arg(long, value_parser = ["queued", "sending", "sent", "dead"])]
    status: Option<String>,
    /// `email`, `sms`, `webhook` or `notify`.
    #[arg(long, value_parser = ["email", "sms", "webhook", "notify"])]
    channel: Option<String>,
    #[arg(long)]
    record: Option<String>,
    /// How many messages to show (1-500), oldest first.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
    limit: u16,
}

/// Why a subcommand failed; decides the message on stderr and the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server refused, or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Flags or arguments that cannot work (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A local step failed or what was asked for does not exist.
    #[error("{0}")]
    Failed(String),
    /// Server start-up glue.
    #[error("{0:#}")]
    Serve(anyhow::Error),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(ClientError::Unreachable { .. }) => 3,
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Parses the command line, runs it, prints any error as `error: …` and returns the exit
/// code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init_logs(match &cli.command {
        Command::Serve { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    });
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let g = cli.global;
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            demo,
            allow_internal_destinations,
            retention_days,
            ..
        } => serve::run(serve::Options {
            data_dir,
            listen,
            demo,
            allow_internal_destinations,
            retention: std::time::Duration::from_secs(retention_days * 24 * 3600),
        })
        .await
        .map_err(CliError::Serve),
        Command::New { path, sdk_path } => scaffold::new(&path, sdk_path.as_deref()),
        Command::Build { path } => scaffold::build(&path, g.json),
        Command::Push { file, module } => modules::push(&client(&g)?, &file, &module, g.json).await,
        Command::Modules { name } => modules::list(&client(&g)?, name.as_deref(), g.json).await,
        Command::Enable(a) => bindings::enable(&client(&g)?, a, g.json).await,
        Command::DryRun(a) => modules::dry_run(&client(&g)?, a, g.json).await,
        Command::Runs(a) => runs::list(&client(&g)?, a, g.json).await,
        Command::Logs { run } => runs::show(&client(&g)?, &run, g.json).await,
        Command::Messages(a) => messages::list(&client(&g)?, a, g.json).await,
    }
}

fn client(g: &Global) -> Result<Client, CliError> {
    let key = g
        .key
        .clone()
        .ok_or_else(|| CliError::Usage("no API key: pass --key or set STAGECRAFT_KEY".into()))?;
    Client::new(&g.url, &key).map_err(|e| CliError::Usage(e.to_string()))
}
