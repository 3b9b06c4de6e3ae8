//! The `stagecraft` binary; everything happens in [`stagecraft::cli`].

use std::time::Duration;

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(stagecraft::cli::main());
    // `serve` has flushed the store and bounded its shutdown; a run still on a blocking
    // thread is not waited for (its job is durable and runs again after a restart).
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}
