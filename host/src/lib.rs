//! Stagecraft: a self-hosted CRM automation host.
//!
//! CRM records live in sled ([`store`]); changes are validated by [`crm`] and journaled as
//! events; customer automation modules run as WebAssembly components in [`sandbox`]; the
//! HTTP API is [`http`]. See ARCHITECTURE.md for the map and the invariants.

pub mod automation;
pub mod cli;
pub mod config;
pub mod console;
pub mod crm;
pub mod delivery;
pub mod demo;
pub mod http;
pub use stagecraft_model as model;
pub mod registry;
pub mod replay;
pub mod retention;
pub mod secrets;
pub use stagecraft_sandbox as sandbox;
pub mod server;
pub mod shared_modules;
pub use stagecraft_store as store;
pub mod telemetry;
