//! The command line: `stagecraft serve` runs the server and `admin-key` repairs its data dir
//! offline; the other subcommands are a plain HTTP client of its API (`push`, `modules`,
//! `enable`, `dry-run`, `runs`, `logs`, `messages`, `records`, `pipelines`, `keys`, `tasks`) plus the
//! rule-crate tools (`new`, `build`). Lives in the library so test harnesses run the real
//! binary as a separate process.
//!
//! Exit codes: 0 success, 1 the server refused or a local step failed, 2 usage (bad flags or
//! arguments), 3 the server could not be reached. A closed stdout (`… | head`) ends a
//! command quietly with 0.

/// `println!` for command output: a reader that went away (`stagecraft runs | head -3`)
/// ends the process quietly instead of panicking (see [`stdout`]).
macro_rules! outln {
    () => {
        $crate::cli::stdout::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::line(format_args!($($arg)*))
    };
}

mod admin_key;
mod bindings;
mod client;
mod keys;
mod messages;
mod migrate;
mod modules;
mod pipelines;
mod records;
mod runs;
mod scaffold;
mod serve;
mod stdout;
mod syntax;
mod table;
mod tasks;

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
    #[command(subcommand)]
    command: Command,
}

/// Where a client subcommand finds the server, and how it prints. Only the subcommands that
/// talk to a server take these (global within a subcommand: `records show ID --json` works).
#[derive(Args, Clone)]
#[command(next_help_heading = "Server connection")]
struct Conn {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "STAGECRAFT_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// API key (the one `serve` printed at first start is an admin key).
    #[arg(long, global = true, env = "STAGECRAFT_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(serve::ServeArgs),
    /// Issue a new admin key offline, on the data dir of a stopped server (a lost key).
    AdminKey(admin_key::AdminKeyArgs),
    /// Copy a stopped server's data dir (sled) into a PostgreSQL database, for many hosts.
    Migrate(migrate::MigrateArgs),
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
        /// Print `{"component", "size"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload a component as the next version of a module (developer or admin key).
    Push {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The module's name.
        #[arg(long)]
        module: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The modules, or one module's versions and where each is enabled.
    Modules {
        /// A module's name: list its versions.
        name: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Enable a module version on a pipeline (admin key): creates its binding there, or
    /// switches the existing one to this version (that is also how you roll back).
    Enable(EnableArgs),
    /// Run a module version against a real record or past event; commits and sends nothing.
    DryRun(DryRunArgs),
    /// The run history, newest first (`--follow` keeps printing new runs).
    Runs(RunsArgs),
    /// One run: its logs, host calls, effects, fuel, memory and duration.
    Logs {
        /// The run's id (from `stagecraft runs`).
        run: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The outbox: messages modules queued, and their delivery state.
    Messages(MessagesArgs),
    /// CRM records: list and search, show one with its events, create, move to a stage.
    Records(records::RecordsArgs),
    /// Pipelines and their stages; create one.
    Pipelines(pipelines::PipelinesArgs),
    /// API keys (admin key): list, create, revoke.
    Keys(keys::KeysArgs),
    /// Tasks: yours (`--mine`), someone's (`--assignee`), open or done, or the overdue ones.
    Tasks(tasks::TasksArgs),
}

const SERVE_AFTER_HELP: &str = "\
Environment:
  STAGECRAFT_BOOTSTRAP_KEY  the admin key of the first start (at least 16 characters) instead
                            of a random one; ignored once the data dir has a tenant
  RUST_LOG                  log filter, e.g. info or stagecraft=debug

The first start creates tenant `default` and prints its admin key once. Lost it? Stop the
server and run `stagecraft admin-key --data-dir DIR` for a new one.

The client commands (push, runs, records, …) take the server's URL and an API key; serve
takes neither.";

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
    #[command(flatten)]
    conn: Conn,
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
    #[command(flatten)]
    conn: Conn,
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
    #[command(flatten)]
    conn: Conn,
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
    #[command(flatten)]
    conn: Conn,
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
        Command::Serve(a) => a.log_format,
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
    match cli.command {
        Command::Serve(a) => serve::run(a).await.map_err(CliError::Serve),
        Command::AdminKey(a) => admin_key::run(a),
        Command::Migrate(a) => migrate::run(a).await,
        Command::New { path, sdk_path } => scaffold::new(&path, sdk_path.as_deref()),
        Command::Build { path, json } => scaffold::build(&path, json),
        Command::Push { file, module, conn } => {
            modules::push(&client(&conn)?, &file, &module, conn.json).await
        }
        Command::Modules { name, conn } => {
            modules::list(&client(&conn)?, name.as_deref(), conn.json).await
        }
        Command::Enable(a) => bindings::enable(&client(&a.conn)?, a).await,
        Command::DryRun(a) => modules::dry_run(&client(&a.conn)?, a).await,
        Command::Runs(a) => runs::list(&client(&a.conn)?, a).await,
        Command::Logs { run, conn } => runs::show(&client(&conn)?, &run, conn.json).await,
        Command::Messages(a) => {
            let json = a.conn.json;
            messages::list(&client(&a.conn)?, a, json).await
        }
        Command::Records(a) => records::run(&client(&a.conn)?, a).await,
        Command::Pipelines(a) => pipelines::run(&client(&a.conn)?, a).await,
        Command::Keys(a) => keys::run(&client(&a.conn)?, a).await,
        Command::Tasks(a) => tasks::list(&client(&a.conn)?, a).await,
    }
}

fn client(c: &Conn) -> Result<Client, CliError> {
    let key = c
        .key
        .clone()
        .ok_or_else(|| CliError::Usage("no API key: pass --key or set STAGECRAFT_KEY".into()))?;
    Client::new(&c.url, &key).map_err(|e| CliError::Usage(e.to_string()))
}
