//! Domain types shared by every layer: tenants and keys, pipelines, records, events, tasks and
//! comments.
//!
//! These are plain data with validation; they know nothing about sled, HTTP or Wasm, so the
//! store, the API and the sandbox all speak the same language.

pub mod automation;
pub mod binding;
pub mod delivery;
pub mod event;
pub mod id;
pub mod module;
pub mod outbound;
pub mod pipeline;
pub mod record;
pub mod run;
pub mod schema;
pub mod stats;
pub mod task;
pub mod tenant;

pub use automation::{Job, MessageStatus, OutboxMessage, RunRecord, Timer, TimerKind};
pub use binding::{Binding, Mode, Trigger};
pub use delivery::{Attempt, ChannelConfig, Notification};
pub use event::{Cause, Event, EventKind};
pub use module::{Module, ModuleVersion};
pub use outbound::{HttpExchange, HttpGrant};
pub use pipeline::{Pipeline, PipelineKind, Stage, StageSemantic};
pub use record::{Record, RecordFilter, RecordKind};
pub use run::{Channel, Effect, Grants, HostCall, LogLine, Outcome};
pub use task::{Actor, Comment, Priority, Task, TaskStatus};
pub use tenant::{ApiKey, Role, Tenant};
