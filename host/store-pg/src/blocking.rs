//! The sync `postgres` client drives its socket with a small runtime of its own, which
//! cannot start on a thread that is already running async tasks. The host calls its store
//! from blocking threads (`spawn_blocking`), but a few calls happen on its async workers
//! (start-up, cheap reads), where a sled read was harmless: [`off_runtime`] moves such a
//! call off the async machinery (`block_in_place` on a multi-thread runtime, a scoped
//! thread on a current-thread one) and runs every other call as it is.

use tokio::runtime::{Handle, RuntimeFlavor};

pub fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => f(),
    }
}
