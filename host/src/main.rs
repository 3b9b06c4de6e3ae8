//! The `stagecraft` binary; everything happens in [`stagecraft::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    stagecraft::cli::main().await
}
