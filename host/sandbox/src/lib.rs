//! The sandbox: one wasmtime engine with the pooling allocator, modules compiled once (on the
//! compile pool, after cheap structural checks) and cached by content hash (on disk, so a
//! restart does not recompile; in memory up to a bound, see `cache`), and runs on fresh
//! instances under hard limits (fuel, epoch deadline, memory cap, host-call and message caps).
//!
//! A run only *collects* effects; committing them is automation's job.

mod cache;
mod clock;
pub mod compiler;
mod host_api;
pub mod http;
pub mod inspect;
pub mod limits;
mod report;
pub mod shape;
mod shared;
pub mod slots;
pub mod source;
pub mod versions;
mod wait;
pub use shared::SharedModules;
mod wasi;
mod wit;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use cache::CacheLimits;
use cache::ModuleCache;
pub use compiler::{Busy, CompileLimits, Compiler, Ticket};
use host_api::{HostApi, HostApiInput};
pub use http::secrets::SecretSource;
pub use http::AddressGuard;
pub use inspect::UploadError;
pub use limits::Limits;
use limits::MemoryLimiter;
pub use shape::Shape;
pub use slots::RunClass;
use slots::Slots;
pub use source::{RecordSource, SourceError};
use stagecraft_model as model;
use stagecraft_model::{Effect, Event, Grants, HostCall, LogLine, Outcome, Record};

/// How often the epoch advances; the wall-clock deadline is counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the wasmtime engine could not be configured: {0}")]
    Engine(String),
    #[error("module {hash} has no stored bytes to load")]
    Missing { hash: String },
    #[error("module {hash} failed to compile: {message}")]
    Compile { hash: String, message: String },
    #[error("the compile pool could not be started: {0}")]
    Pool(std::io::Error),
}

/// The store data of one run.
struct RunState {
    wasi: WasiCtx,
    time: clock::VirtualTime,
    table: ResourceTable,
    limiter: MemoryLimiter,
    api: HostApi,
    http: WasiHttpCtx,
    hooks: http::Hooks,
    /// Every wait in `wasi:io` ends here (see `wait`).
    deadline: wait::Deadline,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// A compiled, linked module version, ready to instantiate.
pub struct Loaded {
    pub hash: String,
    /// What it holds in memory, as the module cache counts it: its compiled image.
    pub bytes: u64,
    pre: wit::RulePre<RunState>,
}

/// What upload validation learned about a component.
pub struct Inspected {
    pub hash: String,
    pub size: usize,
    pub language: Option<String>,
    pub imports: Vec<String>,
    component: Component,
}

/// The inputs of one run.
pub struct RunInput<'a> {
    /// Whose run it is: slots are shared per tenant.
    pub tenant: &'a str,
    /// Who is waiting for it: decides its place in the queue for a slot.
    pub class: RunClass,
    /// What the run may read: one tenant's records and pipelines, as automation sees them.
    pub source: Arc<dyn RecordSource>,
    pub event: &'a Event,
    /// Unique per (event, binding); seeds the ids of queued messages and follow-ups.
    pub run_key: String,
    pub config: String,
    pub grants: Grants,
    /// Uncommitted records the run must see as current (reads prefer them to the store).
    pub pending: Vec<Record>,
    /// Ids of records the uncommitted change deletes (the run sees them as gone).
    pub deleted: Vec<String>,
    /// `None`: granted HTTP calls go out. `Some(exchanges)`: they are answered from these,
    /// a past run's (dry-runs and replays), and nothing is sent.
    pub recorded_http: Option<Vec<model::HttpExchange>>,
}

/// Everything a run produced.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RunReport {
    pub outcome: Outcome,
    pub effects: Vec<Effect>,
    pub logs: Vec<LogLine>,
    pub host_calls: Vec<HostCall>,
    /// The HTTP calls the run made (or tried), in order.
    pub http: Vec<model::HttpExchange>,
    pub fuel_used: u64,
    /// Peak linear memory, bytes.
    pub peak_memory: u64,
    pub duration_us: u64,
    /// The part of `duration_us` spent creating the instance (before the module's code ran).
    pub instantiate_us: u64,
    /// The records this run changed, as they would be after commit (version not yet bumped).
    #[serde(skip)]
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct SandboxStats {
    /// Modules compiled from Wasm by this process.
    pub compiles: u64,
    /// Modules loaded from a precompiled artifact on disk.
    pub artifact_loads: u64,
    /// Module versions currently held ready in memory.
    pub loaded: u64,
    /// Their estimated bytes (compiled images; see [`CacheLimits`]).
    pub loaded_bytes: u64,
    /// Versions dropped from memory to stay within [`Limits::module_cache`].
    pub evictions: u64,
}

pub struct Sandbox {
    slots: Slots,
    compiler: Compiler,
    engine: Engine,
    linker: Linker<RunState>,
    limits: Limits,
    dir: PathBuf,
    loaded: Mutex<ModuleCache<Loaded>>,
    /// Held while files are stored under a hash and recorded, or found unused and removed,
    /// so a removal never takes the files of a version being recorded with the same bytes.
    files: Mutex<()>,
    compiles: AtomicU64,
    artifact_loads: AtomicU64,
    /// Outbound HTTP's guard and client; without it every call is refused.
    outbound: std::sync::OnceLock<Arc<http::Outbound>>,
    /// Where the tenants' secrets come from; without it no placeholder is filled.
    secrets: std::sync::OnceLock<Arc<dyn SecretSource>>,
    /// Where module bytes are shared between hosts, if they are (see `shared`).
    shared: std::sync::OnceLock<Arc<dyn SharedModules>>,
}

pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes of each linear memory and table kept mapped between runs (reset with memset).
const KEEP_RESIDENT: usize = 4 << 20;
/// Slot decommits gathered before one batch of system calls.
const DECOMMIT_BATCH: usize = 8;

fn engine(limits: &Limits) -> Result<Engine, SandboxError> {
    Engine::new(&engine_config(limits)).map_err(|e| SandboxError::Engine(e.to_string()))
}

/// The engine configuration the sandbox runs under `limits` (public so the cost bench can
/// hold bare wasmtime to the same pool and the same metering).
pub fn engine_config(limits: &Limits) -> wasmtime::Config {
    let n = limits.concurrent_runs.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n * 16)
        .total_memories(n * 4)
        .total_tables(n * 8)
        .max_core_instances_per_component(32)
        .max_memories_per_component(8)
        .max_tables_per_component(16)
        .max_memory_size(limits.memory_bytes)
        .table_elements(100_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        // A run is short and its instance is thrown away, so resetting a slot is a large part
        // of its cost (the benchmark's profile: ~40% of a run went to madvise, page faults and
        // TLB shootdowns on drop). Reset the pages a run touched with memset instead (found
        // with PAGEMAP_SCAN where the kernel has it), and batch the rest of the decommits.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .decommit_batch_size(DECOMMIT_BATCH);
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(1 << 20)
        // Stated, not defaulted: `shape::measure` predicts from it which data segments become
        // a memory image and which are compiled into start-up code.
        .memory_guaranteed_dense_image_size(shape::DENSE_IMAGE_BYTES)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

impl Sandbox {
    /// A sandbox keeping compiled modules under `dir`. Starts the epoch ticker.
    pub fn new(dir: &Path, limits: Limits) -> Result<Arc<Sandbox>, SandboxError> {
        std::fs::create_dir_all(dir).map_err(|source| SandboxError::Io {
            what: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let engine = engine(&limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| SandboxError::Engine(e.to_string()))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
            .map_err(|e| SandboxError::Engine(e.to_string()))?;
        clock::add_to_linker(&mut linker, |s: &mut RunState| clock::ClockView {
            table: &mut s.table,
            time: &s.time,
        })
        .map_err(|e| SandboxError::Engine(e.to_string()))?;
        wait::add_to_linker(&mut linker, |s: &mut RunState| wait::Waits {
            table: &mut s.table,
            deadline: &mut s.deadline,
        })
        .map_err(|e| SandboxError::Engine(e.to_string()))?;
        wit::Rule::add_to_linker::<RunState, HasSelf<HostApi>>(&mut linker, |s| &mut s.api)
            .map_err(|e| SandboxError::Engine(e.to_string()))?;
        versions::link_v01(&mut linker).map_err(|e| SandboxError::Engine(e.to_string()))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("stagecraft-epoch".into())
            .spawn(move || {
                // Ticks follow the real clock: on a loaded machine this thread wakes late, so
                // it adds every tick that has passed, or deadlines would stretch with load.
                let start = Instant::now();
                let mut ticked: u128 = 0;
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    let Some(e) = weak.upgrade() else { break };
                    let due = start.elapsed().as_millis() / EPOCH_TICK.as_millis();
                    while ticked < due {
                        e.increment_epoch();
                        ticked += 1;
                    }
                }
            })
            .map_err(|source| SandboxError::Io {
                what: "starting the epoch thread for",
                path: dir.to_path_buf(),
                source,
            })?;
        let compiler = Compiler::new(limits.compile.clone()).map_err(SandboxError::Pool)?;
        let loaded = Mutex::new(ModuleCache::new(limits.module_cache));
        Ok(Arc::new(Sandbox {
            slots: Slots::new(limits.slot_policy()),
            compiler,
            engine,
            linker,
            limits,
            dir: dir.to_path_buf(),
            loaded,
            files: Mutex::new(()),
            compiles: AtomicU64::new(0),
            artifact_loads: AtomicU64::new(0),
            outbound: std::sync::OnceLock::new(),
            secrets: std::sync::OnceLock::new(),
            shared: std::sync::OnceLock::new(),
        }))
    }

    /// Hands in the host's destination policy; modules' HTTP calls pass it. Until then every
    /// call is refused (`address_refused`). Set once; a second guard is ignored.
    pub fn set_address_guard(&self, guard: Arc<dyn AddressGuard>) -> Result<(), SandboxError> {
        let outbound = http::Outbound::new(guard).map_err(SandboxError::Engine)?;
        let _ = self.outbound.set(Arc::new(outbound));
        Ok(())
    }

    /// Hands in the tenants' secrets, filled into granted requests' placeholders (set once).
    pub fn set_secret_source(&self, source: Arc<dyn SecretSource>) {
        let _ = self.secrets.set(source);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Run slots in use: in total, and by `tenant`.
    pub fn slots_in_use(&self, tenant: &str) -> (u32, u32) {
        self.slots.in_use(tenant)
    }

    /// The compile pool every compile of this sandbox runs on.
    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }

    pub fn stats(&self) -> SandboxStats {
        let (loaded, loaded_bytes, evictions) = self
            .loaded
            .lock()
            .map(|m| (m.len() as u64, m.bytes(), m.evictions()))
            .unwrap_or_default();
        SandboxStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            artifact_loads: self.artifact_loads.load(Ordering::Relaxed),
            loaded,
            loaded_bytes,
            evictions,
        }
    }

    /// The cheap checks of an upload, before any compile: size, format, and its [`Shape`]
    /// against the limits. Parses only; milliseconds even for a bomb.
    pub fn check(&self, bytes: &[u8]) -> Result<Shape, UploadError> {
        inspect::precheck(bytes, self.limits.module_bytes)?;
        let mut max = self.limits.shape;
        // A bigger initial memory could never be instantiated under the run's memory cap.
        max.initial_memory_bytes = max
            .initial_memory_bytes
            .min(self.limits.memory_bytes as u64);
        shape::measure(bytes, &max)
    }

    /// Checks `bytes` at once ([`Sandbox::check`]), then compiles them on the compile pool in
    /// the turn of the ticket's tenant ([`Compiler::reserve`]); `done` runs there, on a compile
    /// thread, with the compiled upload or why it failed (storing it is `done`'s business:
    /// [`Sandbox::install`]). An immediate refusal is returned instead (the ticket's place
    /// is given back), and `done` is dropped uncalled.
    pub fn compile_upload(
        self: &Arc<Self>,
        ticket: Ticket,
        bytes: Arc<[u8]>,
        done: impl FnOnce(Result<Inspected, UploadError>) + Send + 'static,
    ) -> Result<(), UploadError> {
        self.check(&bytes)?;
        let sandbox = self.clone();
        self.compiler
            .submit(ticket, move || sandbox.inspect(&bytes), done)
            .map_err(UploadError::Busy)
    }

    /// Compiles and validates a checked upload without storing anything (on a compile
    /// thread).
    fn inspect(&self, bytes: &[u8]) -> Result<Inspected, UploadError> {
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| UploadError::Invalid(format!("{e:#}")))?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        count_compile();
        let ty = component.component_type();
        let mut imports = Vec::new();
        for (name, _) in ty.imports(&self.engine) {
            inspect::check_import(name)?;
            imports.push(name.to_string());
        }
        for (name, _) in ty.exports(&self.engine) {
            inspect::check_export(name)?;
        }
        if !ty.exports(&self.engine).any(|(name, _)| name == "handle") {
            return Err(UploadError::MissingExport);
        }
        self.prepare(&component)
            .map_err(|e| UploadError::Link(format!("{e:#}")))?;
        Ok(Inspected {
            hash: content_hash(bytes),
            size: bytes.len(),
            language: inspect::language(bytes),
            imports,
            component,
        })
    }

    fn prepare(&self, component: &Component) -> wasmtime::Result<wit::RulePre<RunState>> {
        let pre = self.linker.instantiate_pre(component)?;
        wit::RulePre::new(pre)
    }

    fn path(&self, hash: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{hash}.{ext}"))
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
        write(path, bytes)
    }

    /// Persists an inspected upload (source and precompiled artifact, by content hash) and
    /// keeps it ready in memory.
    pub fn install(&self, ins: Inspected, bytes: &[u8]) -> Result<Arc<Loaded>, SandboxError> {
        let compile_err = |e: wasmtime::Error| SandboxError::Compile {
            hash: ins.hash.clone(),
            message: format!("{e:#}"),
        };
        self.write(&self.path(&ins.hash, "wasm"), bytes)?;
        let artifact = ins.component.serialize().map_err(compile_err)?;
        let path = self.path(&ins.hash, "cwasm");
        self.write(&path, &artifact)?;
        let component = file_backed(&self.engine, &path, ins.component);
        let pre = self.prepare(&component).map_err(compile_err)?;
        Ok(self.keep(&ins.hash, &component, pre))
    }

    /// Bytes of the compiled artifact stored for `hash` (0 when there is none).
    pub fn artifact_size(&self, hash: &str) -> u64 {
        std::fs::metadata(self.path(hash, "cwasm")).map_or(0, |m| m.len())
    }

    /// The lock to hold from storing a hash's files until its version is recorded, and from
    /// finding a hash unused until its files are removed ([`Sandbox::remove`]).
    pub fn lock_files(&self) -> std::sync::MutexGuard<'_, ()> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the module stored under `hash`: its files and its ready copy in memory. For
    /// a hash no stored version has any more; call it holding [`Sandbox::lock_files`].
    pub fn remove(&self, hash: &str) {
        if let Ok(mut m) = self.loaded.lock() {
            m.remove(hash);
            cache_gauges(&m);
        }
        for ext in ["cwasm", "wasm"] {
            let path = self.path(hash, ext);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an unused module file")
                }
            }
        }
    }

    /// The ready module for `hash`: from memory, else from its precompiled artifact, else
    /// compiled again from its stored bytes (e.g. after a wasmtime upgrade). That recompile
    /// runs on the compile pool ahead of queued uploads while the caller (a run, on a
    /// blocking thread) waits; a run of the same module queued behind it finds the artifact
    /// the first one wrote instead of compiling again. Stored bytes are not checked against
    /// today's shape limits: they passed the limits of their upload.
    pub fn load(&self, hash: &str) -> Result<Arc<Loaded>, SandboxError> {
        if let Some(l) = self.loaded.lock().ok().and_then(|mut m| m.get(hash)) {
            count_load("memory");
            return Ok(l);
        }
        let compile_err = |e: wasmtime::Error| SandboxError::Compile {
            hash: hash.to_string(),
            message: format!("{e:#}"),
        };
        let artifact = self.path(hash, "cwasm");
        let component = match deserialize(&self.engine, &artifact) {
            Some(c) => {
                self.artifact_loads.fetch_add(1, Ordering::Relaxed);
                count_load("artifact");
                tracing::info!(module = hash, "module loaded from its precompiled artifact");
                c
            }
            None => {
                let source = self.path(hash, "wasm");
                let bytes = match std::fs::read(&source) {
                    Ok(b) => b,
                    // Uploaded through another host: its bytes are in the shared store.
                    Err(_) => self.fetch_shared(hash, &source)?,
                };
                let engine = self.engine.clone();
                let (c, compiled) = self
                    .compiler
                    .run_urgent(move || recompile(&engine, &bytes, &artifact))
                    .ok_or_else(|| SandboxError::Compile {
                        hash: hash.to_string(),
                        message: "the compile was interrupted (the pool shut down, or the compiler crashed)".into(),
                    })?
                    .map_err(compile_err)?;
                if compiled {
                    self.compiles.fetch_add(1, Ordering::Relaxed);
                    count_load("compile");
                    count_compile();
                    tracing::info!(module = hash, "module recompiled from its stored bytes");
                } else {
                    self.artifact_loads.fetch_add(1, Ordering::Relaxed);
                    count_load("artifact");
                }
                c
            }
        };
        let pre = self.prepare(&component).map_err(compile_err)?;
        Ok(self.keep(hash, &component, pre))
    }

    /// Puts a ready version in the module cache, which may drop the least recently used ones
    /// (runs holding them keep them until they end).
    fn keep(&self, hash: &str, component: &Component, pre: wit::RulePre<RunState>) -> Arc<Loaded> {
        let image = component.image_range();
        let loaded = Arc::new(Loaded {
            hash: hash.to_string(),
            bytes: image.end.addr().saturating_sub(image.start.addr()) as u64,
            pre,
        });
        if let Ok(mut m) = self.loaded.lock() {
            let dropped = m.insert(hash, loaded.clone(), loaded.bytes);
            metrics::counter!("stagecraft_module_evictions_total").increment(dropped);
            cache_gauges(&m);
        }
        loaded
    }

    /// Runs `module` on `input.event` in a fresh instance under the sandbox limits.
    pub fn run(&self, module: &Loaded, input: RunInput<'_>) -> RunReport {
        let started = Instant::now();
        let _slot = match self.slots.take(input.tenant, input.class) {
            Ok(slot) => slot,
            Err(busy) => return busy_report(input.class, busy, &self.slots),
        };
        let event = input.event;
        let grant = input.grants.http.clone();
        let time = clock::VirtualTime::default();
        let (wasi, captured) = wasi::context(&event.id, event.occurred_at, &time);
        let api = HostApi::new(HostApiInput {
            source: input.source,
            event_record: event.record.clone(),
            event_at: event.occurred_at,
            run_key: input.run_key,
            config: input.config,
            grants: input.grants,
            limits: self.limits.clone(),
            pending: input.pending,
            deleted: input.deleted,
        });
        let journal = Arc::new(http::Journal::default());
        let request_timeout = match input.class {
            RunClass::Inline => self.limits.http.inline_request_timeout,
            _ => self.limits.http.request_timeout,
        };
        let hooks = http::Hooks::new(http::HooksInput {
            journal: journal.clone(),
            grant,
            limits: self.limits.http.clone(),
            request_timeout,
            outbound: self.outbound.get().cloned(),
            tenant: input.tenant.to_string(),
            secrets: self.secrets.get().cloned(),
            answers: match input.recorded_http {
                Some(x) => http::Answers::Recorded(Arc::new(http::Recorded::new(x))),
                None => http::Answers::Live,
            },
        });
        let mut store = wasmtime::Store::new(
            &self.engine,
            RunState {
                wasi,
                time,
                table: ResourceTable::new(),
                limiter: MemoryLimiter::new(self.limits.memory_bytes),
                api,
                http: WasiHttpCtx::new(),
                hooks,
                deadline: match input.class {
                    RunClass::Inline => wait::Deadline::with_budget(
                        Instant::now() + self.limits.timeout,
                        self.limits.http.inline_network_wait,
                    ),
                    _ => wait::Deadline::new(Instant::now() + self.limits.timeout),
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        let ticks = (self.limits.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        let fuel_ready = store.set_fuel(self.limits.fuel);
        let wit_event = wit::event_to_wit(event);
        let instantiating = Instant::now();
        let instance = fuel_ready.and_then(|_| module.pre.instantiate(&mut store));
        let instantiate_us = instantiating.elapsed().as_micros() as u64;
        let result = instance.and_then(|rule| rule.call_handle(&mut store, &wit_event));
        let fuel_used = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.into_data();
        let stderr = String::from_utf8_lossy(&captured.stderr.contents()).into_owned();
        let outcome = classify(result, &state, &stderr);
        let mut api = state.api;
        for line in captured
            .refused
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
        {
            api.log_line("host", &line);
        }
        let (notes, exchanges) = journal.take(
            started.elapsed().as_millis() as u64,
            matches!(outcome, Outcome::NetworkTimeout { .. }),
        );
        for note in notes {
            api.log_line(&note.level, &note.message);
        }
        let stdout = String::from_utf8_lossy(&captured.stdout.contents()).into_owned();
        for line in stdout.lines().filter(|l| !l.is_empty()) {
            api.log_line("stdout", line);
        }
        for line in stderr.lines().filter(|l| !l.is_empty()) {
            api.log_line("stderr", line);
        }
        let mut report = RunReport {
            outcome,
            effects: api.effects,
            logs: api.logs,
            host_calls: api.calls,
            http: exchanges,
            fuel_used,
            peak_memory: state.limiter.peak as u64,
            duration_us: started.elapsed().as_micros() as u64,
            instantiate_us,
            records: api.overlay.into_values().collect(),
        };
        report.bound(&self.limits);
        report
    }
}

/// The report of a run that never started: no slot came free in time.
fn busy_report(class: RunClass, busy: slots::Busy, slots: &Slots) -> RunReport {
    metrics::counter!("stagecraft_runs_busy_total", "class" => class.name()).increment(1);
    let p = slots.policy();
    RunReport {
        outcome: Outcome::Busy {
            message: format!(
                "no run slot came free within {} ms (waited {} ms; {} slots, at most {} per tenant)",
                p.wait.as_millis(),
                busy.waited.as_millis(),
                p.total,
                p.per_tenant
            ),
        },
        effects: Vec::new(),
        logs: Vec::new(),
        host_calls: Vec::new(),
        http: Vec::new(),
        fuel_used: 0,
        peak_memory: 0,
        duration_us: 0,
        instantiate_us: 0,
        records: Vec::new(),
    }
}

/// A compile of stored bytes, on the compile pool: the artifact another run's recompile wrote
/// meanwhile if there is one (`false`), else a compile whose artifact is written for the next
/// load (`true`).
fn recompile(
    engine: &Engine,
    bytes: &[u8],
    artifact: &Path,
) -> wasmtime::Result<(Component, bool)> {
    if let Some(c) = deserialize(engine, artifact) {
        return Ok((c, false));
    }
    let c = Component::new(engine, bytes)?;
    match c.serialize() {
        Ok(a) if write(artifact, &a).is_ok() => Ok((file_backed(engine, artifact, c), true)),
        _ => Ok((c, true)),
    }
}

/// Publishes what the module cache holds as the `/metrics` gauges.
fn cache_gauges(m: &ModuleCache<Loaded>) {
    metrics::gauge!("stagecraft_modules_loaded").set(m.len() as f64);
    metrics::gauge!("stagecraft_modules_loaded_bytes").set(m.bytes() as f64);
}

/// The component as read back from its artifact file, else `compiled` itself. Instances of a
/// component read from a file map their initial memory from that file; a component compiled
/// in memory gets a sealed memfd on its first instantiation instead, and sealing fails now
/// and then under load (`EBUSY` while the freshly written pages are still pinned), which
/// would fail that run for no fault of its module.
fn file_backed(engine: &Engine, artifact: &Path, compiled: Component) -> Component {
    deserialize(engine, artifact).unwrap_or(compiled)
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the artifact was produced by `Component::serialize` of this host into its
    // own data directory, which is as trusted as the database next to it. wasmtime
    // checks that it matches this engine's version and configuration and refuses it
    // otherwise, in which case we recompile from the stored bytes.
    unsafe { Component::deserialize_file(engine, path) }.ok()
}

/// Writes `bytes` to `path` whole or not at all (through a temporary file and a rename).
/// The temporary file is this writer's own: two runs loading the same module at once (its
/// first use on a host of many) both write it, and with one shared temporary name the
/// second rename found the file the first had moved, failing its run.
fn write(path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            SandboxError::Io {
                what: "writing",
                path: path.to_path_buf(),
                source,
            }
        })
}

/// A module load: `memory` (cache hit), `artifact` (precompiled on disk) or `compile`.
fn count_load(source: &'static str) {
    metrics::counter!("stagecraft_module_loads_total", "source" => source).increment(1);
}

/// A module compiled from Wasm (uploads and cache misses without an artifact).
fn count_compile() {
    metrics::counter!("stagecraft_module_compiles_total").increment(1);
}

/// Names how a run ended.
fn classify(
    result: wasmtime::Result<Result<(), String>>,
    state: &RunState,
    stderr: &str,
) -> Outcome {
    let denied = state.api.denied.clone();
    match result {
        Ok(Ok(())) => match denied {
            Some(message) => Outcome::Denied { message },
            None => Outcome::Ok,
        },
        Ok(Err(message)) => match denied {
            Some(message) => Outcome::Denied { message },
            None => Outcome::GuestError { message },
        },
        Err(e) => {
            if let Some(o) = &state.api.tripped {
                return o.clone();
            }
            if state.limiter.hit {
                return Outcome::MemoryLimit;
            }
            if state.deadline.budget_hit {
                let given = state.deadline.budget_given.unwrap_or_default();
                return Outcome::NetworkTimeout {
                    message: format!(
                        "network_timeout: an inline run may wait on the network {} ms in all, and this one waited longer (a person is waiting for the change)",
                        given.as_millis()
                    ),
                };
            }
            if state.deadline.hit {
                return Outcome::Timeout;
            }
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                return Outcome::Exit { code: exit.0 };
            }
            match e.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel) => Outcome::FuelExhausted,
                Some(Trap::Interrupt) => Outcome::Timeout,
                Some(trap) => match panic_message(stderr) {
                    Some(message) => Outcome::Panic { message },
                    None => Outcome::Trap {
                        message: trap.to_string(),
                    },
                },
                None => Outcome::Trap {
                    message: format!("{e:#}")
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                },
            }
        }
    }
}

/// The message of a Rust panic, from the guest's stderr
/// (`thread '…' panicked at src/lib.rs:5:9:\nmessage\nnote: …`).
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, after) = rest.split_once('\n')?;
    let message: Vec<&str> = after
        .lines()
        .take_while(|l| !l.starts_with("note:"))
        .collect();
    Some(format!(
        "{} (at {})",
        message.join("\n"),
        location.trim_end_matches(':')
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn writers_of_the_same_file_at_once_all_succeed() {
        let dir = std::env::temp_dir().join(format!(
            "stagecraft-sandbox-write-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("abc.wasm");
        for round in 0..200u8 {
            let barrier = std::sync::Barrier::new(4);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        barrier.wait();
                        super::write(&path, &[round; 4096]).unwrap();
                    });
                }
            });
            assert_eq!(std::fs::read(&path).unwrap(), [round; 4096]);
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:5:\nthe rule broke\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("the rule broke (at src/lib.rs:12:5)")
        );
        assert_eq!(panic_message("nothing here"), None);
    }
}
