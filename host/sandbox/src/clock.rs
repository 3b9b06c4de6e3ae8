//! Virtual time: the clocks a run reads and the waits it makes never touch the real clock.
//!
//! The wall clock starts at the event's time and the monotonic clock at 0. A wait
//! (`subscribe-duration`, `subscribe-instant`, and so `std::thread::sleep`, Python's
//! `time.sleep`, a JavaScript timer) does not hold the thread: its pollable is ready at once
//! and both clocks move forward by the time it would have slept. So a run is still a pure
//! function of its inputs, a guest that sleeps and then checks the clock sees the time it
//! expected, and no host call can wait: a loop of sleeps spins like any other loop and ends
//! by fuel or by the epoch deadline, which only counts while Wasm runs.
//!
//! wasmtime-wasi's `wasi:clocks/monotonic-clock` waits on the real clock (a tokio sleep);
//! [`add_to_linker`] shadows it with this one. The interface is the same for every 0.2.x
//! guest (the linker resolves any 0.2 import to it).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// Nanoseconds a run has slept so far; both of its clocks read it.
#[derive(Clone, Default)]
pub struct VirtualTime(Arc<AtomicU64>);

impl VirtualTime {
    pub fn elapsed(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Moves the clocks forward by `nanos` (saturating: time never wraps).
    fn advance(&self, nanos: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(nanos))
            });
    }

    /// Moves the monotonic clock to `instant`, if that is later than now.
    fn advance_to(&self, instant: u64) {
        self.0.fetch_max(instant, Ordering::Relaxed);
    }
}

/// The wall clock: the event's time plus what the run slept.
pub struct EventClock {
    pub since_epoch: Duration,
    pub time: VirtualTime,
}

impl HostWallClock for EventClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.since_epoch
            .saturating_add(Duration::from_nanos(self.time.elapsed()))
    }
}

/// The monotonic clock: 0 at the start of the run, plus what the run slept.
pub struct VirtualMonotonic(pub VirtualTime);

impl HostMonotonicClock for VirtualMonotonic {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.0.elapsed()
    }
}

/// A wait that is over as soon as it starts.
struct Ready;

impl Pollable for Ready {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

/// What the clock functions see of a run.
pub struct ClockView<'a> {
    pub table: &'a mut ResourceTable,
    pub time: &'a VirtualTime,
}

impl ClockView<'_> {
    fn ready(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let r = self.table.push(Ready)?;
        subscribe(self.table, r)
    }
}

impl monotonic_clock::Host for ClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.time.elapsed())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.time.advance_to(when);
        self.ready()
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.time.advance(duration);
        self.ready()
    }
}

struct Clocks;

impl HasData for Clocks {
    type Data<'a> = ClockView<'a>;
}

/// Replaces wasmtime-wasi's `wasi:clocks/monotonic-clock` in `linker` with virtual time.
/// Call after `wasmtime_wasi::p2::add_to_linker_sync`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> ClockView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = monotonic_clock::add_to_linker::<T, Clocks>(linker, view);
    linker.allow_shadowing(false);
    added
}
