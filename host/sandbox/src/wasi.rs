//! The WASI context a module runs with: every WASI 0.2 CLI interface is linked (real
//! toolchains import them), but the context grants nothing. No preopened directories, no
//! network (no socket can be created, every address is refused and logged, name lookup off),
//! empty environment, arguments and stdin. Stdout and stderr are captured for the run log.
//! Clocks are virtual ([`crate::clock`]: the event's time, plus what the run slept) and random
//! bytes are seeded from the event id, so a run is a pure function of its inputs, and nothing
//! in WASI can make a run wait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::clock::{EventClock, VirtualMonotonic, VirtualTime};

/// What the guest wrote or attempted, collected after the run.
pub struct Captured {
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
    /// Network attempts the context refused.
    pub refused: Arc<Mutex<Vec<String>>>,
}

/// Output beyond this fails the guest's write (Rust guests then panic); the run log keeps
/// only `Limits::log_bytes` of it anyway.
const PIPE_CAPACITY: usize = 1024 * 1024;

fn seed(label: &str, event_id: &str) -> [u8; 32] {
    Sha256::digest(format!("stagecraft/{label}/{event_id}").as_bytes()).into()
}

/// A capability-less context for a run of the event `event_id` that happened `at`, whose
/// clocks advance only by what the run sleeps (`time`).
pub fn context(event_id: &str, at: DateTime<Utc>, time: &VirtualTime) -> (WasiCtx, Captured) {
    let stdout = MemoryOutputPipe::new(PIPE_CAPACITY);
    let stderr = MemoryOutputPipe::new(PIPE_CAPACITY);
    let refused = Arc::new(Mutex::new(Vec::new()));
    let refused_log = refused.clone();
    let since_epoch =
        Duration::from_nanos(u64::try_from(at.timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0));
    let insecure_seed = seed("insecure-seed", event_id);
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(EventClock {
            since_epoch,
            time: time.clone(),
        })
        .monotonic_clock(VirtualMonotonic(time.clone()))
        .secure_random(rand::rngs::StdRng::from_seed(seed("random", event_id)))
        .insecure_random(rand::rngs::StdRng::from_seed(seed("insecure", event_id)))
        .insecure_random_seed(u128::from_le_bytes(
            insecure_seed[..16].try_into().unwrap_or([0; 16]),
        ))
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .socket_addr_check(move |addr, usage| {
            if let Ok(mut v) = refused_log.lock() {
                if v.len() < 100 {
                    v.push(format!("refused network access: {usage:?} {addr}"));
                }
            }
            Box::pin(async { false })
        });
    (
        b.build(),
        Captured {
            stdout,
            stderr,
            refused,
        },
    )
}
