//! Waits with a deadline. Outbound HTTP is the first thing a run really waits for: a response
//! that has not come, a request body the sender has not taken yet. wasmtime-wasi's
//! synchronous `wasi:io` blocks its thread for as long as a pollable is not ready, and the
//! epoch deadline only interrupts Wasm, never a host call, so a guest blocked in `poll`
//! would hold its thread and its run slot for as long as the remote likes.
//!
//! [`add_to_linker`] shadows every function of `wasi:io/poll` and `wasi:io/streams` that can
//! wait (`poll`, `pollable.block`, the streams' `blocking-*` and the output stream's drop)
//! with the same operation bounded by the run's [`Deadline`]. A wait still going when the
//! deadline passes gives up and traps; the run ends `timeout`, like a run whose Wasm ran past
//! it. Everything that cannot wait is wasmtime-wasi's own code, unchanged. Virtual clocks
//! ([`crate::clock`]) never make a wait: their pollables are ready at once.
//!
//! An inline run also has a budget for all of its waits together
//! ([`HttpLimits::inline_network_wait`](crate::limits::HttpLimits)): a person is waiting for
//! the change it belongs to. A wait that would go past it gives up the same way, and the
//! run ends `network_timeout`.

use std::future::Future;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynPollable, StreamError, StreamResult};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    HostInputStream as AsyncIn, HostOutputStream as AsyncOut,
};
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

/// When a run's waiting must end: the run's start plus its wall-clock limit, and for
/// inline runs after a budget of waiting in all.
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    /// What is left of the run's budget for waiting (inline runs); `None`: no budget.
    budget: Option<Duration>,
    /// The whole budget, as it was given (for the message).
    pub budget_given: Option<Duration>,
    /// Set once a wait gave up because the deadline passed.
    pub hit: bool,
    /// Set once a wait gave up because the waiting budget ran out.
    pub budget_hit: bool,
}

impl Deadline {
    pub fn new(at: Instant) -> Deadline {
        Deadline {
            at,
            budget: None,
            budget_given: None,
            hit: false,
            budget_hit: false,
        }
    }

    /// The same, with at most `budget` of waiting in all.
    pub fn with_budget(at: Instant, budget: Duration) -> Deadline {
        Deadline {
            budget: Some(budget),
            budget_given: Some(budget),
            ..Deadline::new(at)
        }
    }

    /// Time left until the deadline (zero once it passed).
    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// What the shadowed `wasi:io` functions see of a run.
pub struct Waits<'a> {
    pub table: &'a mut ResourceTable,
    pub deadline: &'a mut Deadline,
}

const PASSED: &str = "the run's deadline passed while it waited (for an HTTP response or body)";

/// Runs `f` to completion, or until `deadline` or the end of its waiting budget; `None`
/// (and which one marked hit) if one of them came first.
fn bounded<F: Future>(deadline: &mut Deadline, f: F) -> Option<F::Output> {
    let left = deadline.left();
    let limit = deadline.budget.map_or(left, |b| b.min(left));
    let started = Instant::now();
    let result = in_tokio(async move { tokio::time::timeout(limit, f).await });
    if let Some(b) = deadline.budget.as_mut() {
        *b = b.saturating_sub(started.elapsed());
    }
    match result {
        Ok(v) => Some(v),
        Err(_) if limit < left => {
            deadline.budget_hit = true;
            None
        }
        Err(_) => {
            deadline.hit = true;
            None
        }
    }
}

fn trap() -> wasmtime::Error {
    wasmtime::Error::msg(PASSED)
}

impl Waits<'_> {
    fn wait<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut ResourceTable) -> wasmtime::Result<T>,
    ) -> wasmtime::Result<T> {
        let table = &mut *self.table;
        bounded(self.deadline, f(table)).unwrap_or_else(|| Err(trap()))
    }

    fn wait_stream<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut ResourceTable) -> StreamResult<T>,
    ) -> StreamResult<T> {
        let table = &mut *self.table;
        bounded(self.deadline, f(table)).unwrap_or_else(|| Err(StreamError::Trap(trap())))
    }
}

impl poll::Host for Waits<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        self.wait(async |t| async_poll::Host::poll(t, pollables).await)
    }
}

impl poll::HostPollable for Waits<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        self.wait(async |t| async_poll::HostPollable::ready(t, pollable).await)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        self.wait(async |t| async_poll::HostPollable::block(t, pollable).await)
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.table, pollable)
    }
}

impl streams::Host for Waits<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.table, err)
    }
}

impl streams::HostOutputStream for Waits<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        self.wait(async |t| AsyncOut::drop(t, stream).await)
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(self.table, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        self.wait_stream(async |t| AsyncOut::blocking_write_and_flush(t, stream, bytes).await)
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        self.wait_stream(async |t| AsyncOut::blocking_write_zeroes_and_flush(t, stream, len).await)
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(self.table, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        self.wait_stream(async |t| {
            AsyncOut::blocking_flush(t, Resource::new_borrow(stream.rep())).await
        })
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(self.table, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        self.wait_stream(async |t| AsyncOut::blocking_splice(t, dst, src, len).await)
    }
}

impl streams::HostInputStream for Waits<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        self.wait(async |t| AsyncIn::drop(t, stream).await)
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(self.table, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        self.wait_stream(async |t| AsyncIn::blocking_read(t, stream, len).await)
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(self.table, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        self.wait_stream(async |t| AsyncIn::blocking_skip(t, stream, len).await)
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(self.table, stream)
    }
}

struct Bounded;

impl HasData for Bounded {
    type Data<'a> = Waits<'a>;
}

/// Replaces the waiting functions of wasmtime-wasi's `wasi:io/poll` and `wasi:io/streams` in
/// `linker` with deadline-bounded ones. Call after `wasmtime_wasi::p2::add_to_linker_sync`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> Waits<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = poll::add_to_linker::<T, Bounded>(linker, view)
        .and_then(|_| streams::add_to_linker::<T, Bounded>(linker, view));
    linker.allow_shadowing(false);
    added
}
