//! Domain types shared by every layer: tenants and keys, pipelines, records, events.
//!
//! These are plain data with validation; they know nothing about sled, HTTP or Wasm, so the
//! store, the API and the sandbox all speak the same language.

pub mod event;
pub mod id;
pub mod pipeline;
pub mod record;
pub mod tenant;

pub use event::{Cause, Event, EventKind};
pub use pipeline::{Pipeline, PipelineKind, Stage, StageSemantic};
pub use record::{Record, RecordKind};
pub use tenant::{ApiKey, Role, Tenant};
