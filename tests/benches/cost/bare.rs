//! The floor: bare wasmtime with none of Stagecraft. An engine with the pooling allocator, an
//! `InstancePre` of the same component, a fresh instance per event, and a trivial host that
//! answers every call from memory (the same records the real host would return) and keeps
//! nothing. WASI is linked with an empty context because the component imports it.
//! `metered` adds what the sandbox arms on every run (fuel and an epoch deadline) so the
//! report can separate the cost of metering from the cost of the host.
//!
//! For section 5 it also holds distinct copies of the component ([`Bare::copy_to`]), each
//! deserialized from its own artifact file as the sandbox loads distinct module versions, so
//! a round robin over them is the floor of the sandbox's.

use std::path::Path;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod wit {
    wasmtime::component::bindgen!({
        world: "rule",
        path: "../guest-sdk/wit",
    });
}

use wit::stagecraft::automation as api;
use wit::{Rule, RulePre};

pub use api::types::{CrmRecord, Event, HostError, RecordKind};

/// What the trivial host answers with.
#[derive(Clone)]
pub struct Canned {
    pub lead: CrmRecord,
    pub busy: CrmRecord,
    pub config: String,
}

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    canned: Canned,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl api::types::Host for State {}

impl api::records::Host for State {
    fn get(&mut self, id: String) -> Result<CrmRecord, HostError> {
        if id == self.canned.lead.id {
            Ok(self.canned.lead.clone())
        } else {
            Err(HostError::NotFound(id))
        }
    }

    fn find(
        &mut self,
        filter: api::records::Filter,
        _limit: u32,
    ) -> Result<Vec<CrmRecord>, HostError> {
        let hit = filter.kind == Some(RecordKind::Lead)
            && filter.owner.as_deref() == self.canned.busy.owner.as_deref();
        Ok(if hit {
            vec![self.canned.busy.clone()]
        } else {
            Vec::new()
        })
    }

    // Host API 0.2: the benchmarked rule never creates; answer like a host without the grant.
    fn create(&mut self, _spec: api::records::NewRecord) -> Result<String, HostError> {
        Err(HostError::Denied("not granted".into()))
    }
}

impl api::tasks::Host for State {
    fn create(&mut self, _task: api::tasks::NewTask) -> Result<String, HostError> {
        Err(HostError::Denied("not granted".into()))
    }

    fn complete(&mut self, _id: String) -> Result<(), HostError> {
        Err(HostError::Denied("not granted".into()))
    }
}

impl api::timeline::Host for State {
    fn comment(&mut self, _record: String, _body: String) -> Result<String, HostError> {
        Err(HostError::Denied("not granted".into()))
    }
}

impl api::stages::Host for State {
    fn move_to(&mut self, _id: String, _stage: String) -> Result<(), HostError> {
        Ok(())
    }
}

impl api::fields::Host for State {
    fn set(&mut self, _id: String, _name: String, _value: String) -> Result<(), HostError> {
        Ok(())
    }
}

impl api::messages::Host for State {
    fn queue(&mut self, _m: api::messages::Message) -> Result<String, HostError> {
        Ok("msg_1".into())
    }
}

impl api::schedule::Host for State {
    fn after(&mut self, _seconds: u64, _payload: String) -> Result<String, HostError> {
        Ok("tmr_1".into())
    }
}

impl api::log::Host for State {
    fn write(&mut self, _level: api::log::Level, _message: String) {}
}

impl api::config::Host for State {
    fn get(&mut self) -> String {
        self.canned.config.clone()
    }
}

/// A bare wasmtime host for one component (and its copies).
pub struct Bare {
    engine: Engine,
    linker: Linker<State>,
    component: Component,
    /// The component, then its copies.
    pres: Vec<RulePre<State>>,
    canned: Canned,
    metered: bool,
}

impl Bare {
    pub fn new(component: &[u8], canned: Canned, metered: bool) -> Bare {
        let mut pool = PoolingAllocationConfig::default();
        pool.max_memory_size(64 << 20)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .table_elements(100_000)
            // The slot-reset tuning the sandbox uses (see `stagecraft::sandbox`): without it
            // the floor would be a straw man, since any host running short-lived instances
            // should set it.
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(4 << 20)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .decommit_batch_size(8);
        let mut c = Config::new();
        c.wasm_component_model(true)
            .consume_fuel(metered)
            .epoch_interruption(metered)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Bare::with_config(component, canned, &c, metered)
    }

    /// A bare host under `config`, e.g. the sandbox's own (`stagecraft::sandbox::engine_config`,
    /// which meters: pass `metered` to match).
    pub fn with_config(component: &[u8], canned: Canned, config: &Config, metered: bool) -> Bare {
        let engine = Engine::new(config).expect("engine");
        let component = Component::new(&engine, component).expect("compile");
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("link wasi");
        Rule::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)
            .expect("link host api");
        let pre = RulePre::new(linker.instantiate_pre(&component).expect("instantiate_pre"))
            .expect("rule exports");
        Bare {
            engine,
            linker,
            component,
            pres: vec![pre],
            canned,
            metered,
        }
    }

    /// Adds copies of the component until this host holds `n`: each is the component's
    /// artifact written to a file of its own under `dir` and deserialized from it, as the
    /// sandbox loads a module version from its `.cwasm` (distinct files, so distinct code
    /// pages, as `n` distinct versions would have).
    ///
    /// For locating the cost, `STAGECRAFT_BENCH_COPIES` changes that: `one-file` deserializes
    /// every copy from the same file (separate mappings and modules, but the page cache
    /// shares their physical pages), `one-module` makes every copy an `InstancePre` of the
    /// same component (one module: nothing but the pre is distinct).
    pub fn copy_to(&mut self, n: usize, dir: &Path) {
        let artifact = self.component.serialize().expect("serialize");
        let how = std::env::var("STAGECRAFT_BENCH_COPIES").unwrap_or_default();
        while self.pres.len() < n {
            let path = match how.as_str() {
                "one-file" => dir.join("bare-shared.cwasm"),
                _ => dir.join(format!("bare-{}.cwasm", self.pres.len())),
            };
            if !path.exists() {
                std::fs::write(&path, &artifact).expect("write artifact");
            }
            // SAFETY: the artifact was serialized just above by this engine.
            #[allow(unsafe_code)]
            let c = match how.as_str() {
                "one-module" => self.component.clone(),
                _ => unsafe { Component::deserialize_file(&self.engine, &path) }
                    .expect("deserialize"),
            };
            let pre = RulePre::new(self.linker.instantiate_pre(&c).expect("instantiate_pre"))
                .expect("rule exports");
            self.pres.push(pre);
        }
    }

    /// The component and its copies.
    pub fn copies(&self) -> usize {
        self.pres.len()
    }

    /// One run on `event` in a fresh instance; the guest's answer.
    pub fn run(&self, event: &Event) -> Result<(), String> {
        self.run_copy(0, event)
    }

    /// One run of copy `i` on `event` in a fresh instance.
    pub fn run_copy(&self, i: usize, event: &Event) -> Result<(), String> {
        let mut store = Store::new(
            &self.engine,
            State {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
                canned: self.canned.clone(),
            },
        );
        if self.metered {
            store.set_fuel(2_000_000_000).expect("fuel");
            store.set_epoch_deadline(100);
        }
        let rule = self.pres[i].instantiate(&mut store).expect("instantiate");
        rule.call_handle(&mut store, event).expect("no trap")
    }
}

/// The host's record in this host's generated types.
pub fn record(r: &::stagecraft::model::Record) -> CrmRecord {
    use ::stagecraft::model::RecordKind as K;
    CrmRecord {
        id: r.id.clone(),
        kind: match r.kind {
            K::Lead => RecordKind::Lead,
            K::Contact => RecordKind::Contact,
            K::Company => RecordKind::Company,
            K::Deal => RecordKind::Deal,
        },
        name: r.name.clone(),
        email: r.email.clone(),
        phone: r.phone.clone(),
        amount: r.amount,
        currency: r.currency.clone(),
        owner: r.owner.clone(),
        company: r.company.clone(),
        contact: r.contact.clone(),
        pipeline: r.pipeline.clone(),
        stage: r.stage.clone(),
        custom: serde_json::Value::Object(r.custom.clone()).to_string(),
        version: r.version,
        created_at: r.created_at.to_rfc3339(),
        updated_at: r.updated_at.to_rfc3339(),
    }
}

/// A `created` event carrying `record`.
pub fn event(e: &::stagecraft::model::Event, record: CrmRecord) -> Event {
    Event {
        id: e.id.clone(),
        kind: api::types::EventKind::Created,
        record: Some(record),
        occurred_at: e.occurred_at.to_rfc3339(),
    }
}
