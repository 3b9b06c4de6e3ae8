//! The real `stagecraft` command, built inside the tests crate so tests can run it as a
//! separate process (and kill it).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    stagecraft::cli::main().await
}
