//! Per-run limits, and the memory limiter that enforces the memory cap.

use std::time::Duration;

use crate::compiler::CompileLimits;
use crate::shape::Shape;

/// The hard limits every run lives under. Defaults fit a Python or JavaScript guest (their
/// initial heaps are about 12 MiB and 9 MiB) with room to work.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Instruction budget (wasmtime fuel).
    pub fuel: u64,
    /// Wall-clock deadline for one run.
    pub timeout: Duration,
    /// Total linear memory a run may hold, across all of its memories.
    pub memory_bytes: usize,
    /// Host calls per run (log lines included).
    pub host_calls: u32,
    /// Messages a run may queue.
    pub messages: u32,
    /// Largest message (recipient + subject + body), in bytes.
    pub message_bytes: usize,
    /// Largest JSON value for a field write or follow-up payload, in bytes.
    pub value_bytes: usize,
    /// Captured log text kept per run; the rest is cut with a note.
    pub log_bytes: usize,
    /// Largest `records.find` page.
    pub find_limit: u32,
    /// Largest follow-up delay.
    pub max_delay: Duration,
    /// Largest module upload, in bytes.
    pub module_bytes: usize,
    /// Runs that may be instantiated at once (sizes the pooling allocator).
    pub concurrent_runs: u32,
    /// What an upload may hold, checked before it is compiled.
    pub shape: Shape,
    /// The compile pool's size and queue shares.
    pub compile: CompileLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 2_000_000_000,
            timeout: Duration::from_secs(5),
            memory_bytes: 64 * 1024 * 1024,
            host_calls: 1_000,
            messages: 25,
            message_bytes: 64 * 1024,
            value_bytes: 16 * 1024,
            log_bytes: 64 * 1024,
            find_limit: 100,
            max_delay: Duration::from_secs(366 * 24 * 3600),
            module_bytes: 24 * 1024 * 1024,
            concurrent_runs: 32,
            shape: Shape::maxima(),
            compile: CompileLimits::default(),
        }
    }
}

/// Tracks the run's total linear memory and refuses growth past the cap by trapping, so the
/// run ends with a `memory_limit` outcome rather than whatever the guest makes of a failed
/// `memory.grow`.
pub struct MemoryLimiter {
    cap: usize,
    total: usize,
    pub peak: usize,
    pub hit: bool,
}

impl MemoryLimiter {
    pub fn new(cap: usize) -> MemoryLimiter {
        MemoryLimiter {
            cap,
            total: 0,
            peak: 0,
            hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.total - current.min(self.total) + desired;
        if next > self.cap {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit: the run would hold {next} bytes of linear memory; the cap is {}",
                self.cap
            )));
        }
        self.total = next;
        self.peak = self.peak.max(next);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
