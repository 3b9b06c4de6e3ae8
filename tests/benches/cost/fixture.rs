//! The one scenario every measurement shares: a hot lead (CTO, 2,000 people, referral) in the
//! `leads` pipeline, a team of two with one lead already on ann's desk, and the lead-scoring
//! rule configured to assign to that team. The rule reads its config, gets the lead, logs the
//! score, writes two fields, looks up both members' loads, moves the lead and queues a note:
//! every kind of host call, eight of them.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use stagecraft::automation::{Automation, AutomationConfig};
use stagecraft::crm;
use stagecraft::model::{Binding, Event, ModuleVersion, Record};
use stagecraft::sandbox::{Limits, Sandbox};
use stagecraft::store::Store;

pub const TENANT: &str = "default";
pub const CONFIG: &str = r#"{"team": ["ann", "bob"]}"#;

/// The rule's input record, as the API would take it.
pub fn hot_lead(name: &str) -> Value {
    json!({"kind": "lead", "name": name, "email": "ada@acme.io", "pipeline": "leads",
           "custom": {"job_title": "CTO", "company_size": 2000, "source": "Referral"}})
}

pub fn busy_lead() -> Value {
    json!({"kind": "lead", "name": "Busy", "pipeline": "leads", "owner": "ann"})
}

/// The Rust lead-scoring component, as built from examples/ and embedded in the host.
pub fn rust_component() -> Vec<u8> {
    stagecraft::demo::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "lead-scoring")
        .map(|(_, b)| b.to_vec())
        .expect("the host embeds the lead-scoring example")
}

/// A guest built by tests/build.rs (`python-lead-scoring`, `js-lead-scoring`).
pub fn guest(name: &str) -> Option<Vec<u8>> {
    std::fs::read(Path::new(env!("STAGECRAFT_GUESTS_DIR")).join(format!("{name}.wasm"))).ok()
}

/// A real host in a temp dir: sled store, sandbox, automation (workers not started).
pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub sandbox: Arc<Sandbox>,
    pub automation: Arc<Automation>,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("stagecraft-bench-")
            .tempdir()
            .expect("temp dir");
        let store = Store::open(&dir.path().join("db")).expect("open store");
        crm::tenants::bootstrap(&store, Some("bench-admin-key-0123456789")).expect("bootstrap");
        let sandbox = Sandbox::new(&dir.path().join("modules"), World::limits()).expect("sandbox");
        let automation = Automation::new(
            store.clone(),
            sandbox.clone(),
            AutomationConfig {
                // The bench runs one record many times a minute on purpose.
                runs_per_minute: u32::MAX,
                ..AutomationConfig::default()
            },
        );
        World {
            dir,
            store,
            sandbox,
            automation,
        }
    }

    /// The default limits, but for `STAGECRAFT_BENCH_SLOTS` run slots when set (the pool's
    /// size decides how many modules keep a warm slot; see section 5).
    pub fn limits() -> Limits {
        let slots = std::env::var("STAGECRAFT_BENCH_SLOTS")
            .ok()
            .and_then(|s| s.parse().ok());
        Limits {
            concurrent_runs: slots.unwrap_or(Limits::default().concurrent_runs),
            ..Limits::default()
        }
    }

    /// Publishes `bytes` as the next version of `name` (inspect, compile, cache, record).
    pub fn publish(&self, name: &str, bytes: &[u8]) -> ModuleVersion {
        stagecraft::registry::publish(
            &self.store,
            &self.sandbox,
            stagecraft::store::ModuleQuota::default(),
            TENANT,
            name,
            bytes,
            "bench",
        )
        .unwrap_or_else(|e| panic!("publishing {name}: {e}"))
    }

    /// Creates a record without automation; returns it and its `created` event.
    pub fn create(&self, body: Value) -> (Record, Event) {
        self.create_in(TENANT, body)
    }

    pub fn create_in(&self, tenant: &str, body: Value) -> (Record, Event) {
        let input = serde_json::from_value(body).expect("record body");
        let (record, cs) =
            crm::records::create(&self.store, tenant, input, Utc::now()).expect("valid record");
        self.store.commit(&cs).expect("commit record");
        let event = cs.events.first().cloned().expect("a created event");
        (record, event)
    }

    /// A background binding of `module`@`version` on `leads`, with the scenario's config.
    pub fn bind(&self, module: &str, version: u32, mode: &str, trigger: Value) -> Binding {
        self.bind_in(TENANT, module, version, mode, trigger)
    }

    pub fn bind_in(
        &self,
        tenant: &str,
        module: &str,
        version: u32,
        mode: &str,
        trigger: Value,
    ) -> Binding {
        let input = serde_json::from_value(json!({
            "pipeline": "leads", "module": module, "version": version, "mode": mode,
            "triggers": [trigger],
            "config": serde_json::from_str::<Value>(CONFIG).expect("config"),
            "grants": {"fields": ["score", "owner"], "channels": ["notify"]}
        }))
        .expect("binding body");
        crm::bindings::create(&self.store, tenant, input).expect("binding")
    }
}
