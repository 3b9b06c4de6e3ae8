//! Dry runs: a module version run on one event exactly as automation would run it, with
//! nothing committed and nothing sent. The one path both `…/dry-run` and replay use, so what
//! a developer tries and what replay compares is what a real run does.

use crate::model::{Event, EventKind, Grants};
use crate::sandbox::{RunClass, RunInput, RunReport, Sandbox, SandboxError};
use crate::store::Store;

/// What a dry run runs on.
pub struct DryRunInput<'a> {
    pub tenant: &'a str,
    /// Who waits for it: a developer (`Interactive`), or nobody (`Background`: replay).
    pub class: RunClass,
    pub event: &'a Event,
    /// Seeds message and follow-up ids; a real run's id reproduces its ids exactly.
    pub run_key: String,
    pub config: String,
    pub grants: Grants,
    /// Reads of the event's record see its journal snapshot (the record right after the
    /// triggering change; gone for `deleted`) instead of the record as it is now. Other
    /// records are read as they are now.
    pub as_of_event: bool,
    /// `None`: granted HTTP calls go out (`live`). `Some`: answered from these recorded
    /// exchanges of a past run, and nothing is sent.
    pub recorded_http: Option<Vec<crate::model::HttpExchange>>,
}

/// Runs module version `hash` on the dry run's event. Only the report comes back.
pub fn dry_run(
    sandbox: &Sandbox,
    store: &Store,
    hash: &str,
    input: DryRunInput<'_>,
) -> Result<RunReport, SandboxError> {
    let module = sandbox.load(hash)?;
    if let Some(message) = super::pruned(input.event) {
        // As a real run would end: the module never sees an event without its record.
        return Ok(RunReport {
            outcome: crate::model::Outcome::EventPruned { message },
            effects: Vec::new(),
            logs: Vec::new(),
            host_calls: Vec::new(),
            http: Vec::new(),
            fuel_used: 0,
            peak_memory: 0,
            duration_us: 0,
            instantiate_us: 0,
            records: Vec::new(),
        });
    }
    let (mut pending, mut deleted) = (Vec::new(), Vec::new());
    if input.as_of_event {
        match (
            &input.event.kind,
            &input.event.snapshot,
            &input.event.record,
        ) {
            (EventKind::Deleted, _, Some(id)) => deleted.push(id.clone()),
            (_, Some(snapshot), _) => pending.push(snapshot.clone()),
            _ => {}
        }
    }
    Ok(sandbox.run(
        &module,
        RunInput {
            tenant: input.tenant,
            class: input.class,
            source: super::source::StoreSource::for_tenant(store, input.tenant),
            event: input.event,
            run_key: input.run_key,
            config: input.config,
            grants: input.grants,
            pending,
            deleted,
            recorded_http: input.recorded_http,
        },
    ))
}
