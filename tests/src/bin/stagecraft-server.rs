//! The real `stagecraft` command (every subcommand: `serve` and the client ones), built inside
//! the tests crate so tests can run it as a separate process (and kill it).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    stagecraft::cli::main().await
}
