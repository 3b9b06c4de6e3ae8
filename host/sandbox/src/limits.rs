//! Per-run limits, and the memory limiter that enforces the memory cap.

use std::time::Duration;

use crate::cache::CacheLimits;
use crate::compiler::CompileLimits;
use crate::shape::Shape;
use crate::slots::SlotPolicy;

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
    /// Follow-ups (`schedule.after`) one run may schedule; one more ends it `timer_limit`.
    pub follow_ups: u32,
    /// Bytes of effects one run may produce (field values, messages, follow-up payloads,
    /// as JSON); past it the run ends `effect_limit`. Bounds what a run commits and what its
    /// run record keeps. (How deep and large one value may be is `stagecraft_rules::value`.)
    pub effect_bytes: usize,
    /// Records one run may create (`records.create`); one more ends it `create_limit`.
    pub records_created: u32,
    /// Tasks one run may create or complete (`tasks.create`, `tasks.complete`); one more
    /// ends it `create_limit`.
    pub tasks: u32,
    /// Comments one run may add (`timeline.comment`); one more ends it `create_limit`.
    pub comments: u32,
    /// Captured log text kept per run; the rest is cut with a note.
    pub log_bytes: usize,
    /// Bytes of an outcome's message kept (a module's error text, a panic message); the rest
    /// is cut with a note.
    pub error_bytes: usize,
    /// Bytes of logs, host calls and error a run report (and so a run record) keeps in all;
    /// host calls past it are cut with a note in the log.
    pub report_bytes: usize,
    /// Largest `records.find` page.
    pub find_limit: u32,
    /// Largest follow-up delay.
    pub max_delay: Duration,
    /// Largest module upload, in bytes.
    pub module_bytes: usize,
    /// Runs that may be instantiated at once (sizes the pooling allocator).
    pub concurrent_runs: u32,
    /// Runs one tenant may have at once; `None`: a quarter of `concurrent_runs` (at least 1).
    pub runs_per_tenant: Option<u32>,
    /// Slots only inline runs may use; `None`: an eighth of `concurrent_runs` (at least 1
    /// when there are 2 slots or more).
    pub inline_reserve: Option<u32>,
    /// How long an inline run or a dry-run waits for a slot before it ends `busy`.
    pub slot_wait: Duration,
    /// What an upload may hold, checked before it is compiled.
    pub shape: Shape,
    /// The compile pool's size and queue shares.
    pub compile: CompileLimits,
    /// How many compiled module versions, and how many bytes of them, stay ready in memory.
    pub module_cache: CacheLimits,
    /// Outbound HTTP (`wasi:http`), where a binding grants it.
    pub http: HttpLimits,
}

/// What a run's outbound HTTP may consume. Every wait is also bounded by the run's own
/// deadline ([`Limits::timeout`]), which covers time spent waiting on the network.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Requests one run may make; past it each one fails `request_limit`.
    pub requests: u32,
    /// Largest request body, bytes (`request_too_large`).
    pub request_bytes: usize,
    /// Largest response body, bytes (`response_too_large`).
    pub response_bytes: usize,
    /// One request, from its start to its whole response (`request_timeout`).
    pub request_timeout: Duration,
    /// The same for inline runs, shorter: a person is waiting.
    pub inline_request_timeout: Duration,
    /// All the time an inline run may spend waiting on the network, its requests together;
    /// a wait that would go past it ends the run `network_timeout` (an inline change is then
    /// refused whole). A person is waiting for the answer.
    pub inline_network_wait: Duration,
    /// Bytes of each response body the run record keeps.
    pub recorded_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            requests: 10,
            request_bytes: 1024 * 1024,
            response_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(4),
            inline_request_timeout: Duration::from_millis(1500),
            inline_network_wait: Duration::from_secs(2),
            recorded_body_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    /// How run slots are shared (see `slots`).
    pub fn slot_policy(&self) -> SlotPolicy {
        let total = self.concurrent_runs.max(1);
        let reserve = self
            .inline_reserve
            .unwrap_or((total / 8).max(u32::from(total > 1)))
            .min(total - 1);
        SlotPolicy {
            total,
            per_tenant: self.runs_per_tenant.unwrap_or(total / 4).clamp(1, total),
            inline_reserve: reserve,
            wait: self.slot_wait,
        }
    }
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
            follow_ups: 25,
            effect_bytes: 2 * 1024 * 1024,
            records_created: 25,
            tasks: 50,
            comments: 25,
            log_bytes: 64 * 1024,
            error_bytes: 4 * 1024,
            report_bytes: 256 * 1024,
            find_limit: 100,
            max_delay: Duration::from_secs(366 * 24 * 3600),
            module_bytes: 24 * 1024 * 1024,
            concurrent_runs: 32,
            runs_per_tenant: None,
            inline_reserve: None,
            slot_wait: Duration::from_secs(10),
            shape: Shape::maxima(),
            compile: CompileLimits::default(),
            http: HttpLimits::default(),
            module_cache: CacheLimits::default(),
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
