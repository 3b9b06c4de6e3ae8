//! The `stagecraft` binary; everything happens in [`stagecraft::cli`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    stagecraft::cli::main().await
}
