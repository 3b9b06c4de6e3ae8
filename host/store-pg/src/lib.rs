//! PostgreSQL storage (`stagecraft-store-pg`): the second backend behind the store's seam
//! ([`stagecraft_store::Backend`]), so any number of stateless hosts can serve one set of
//! tenants from one database. sled stays the embedded default; this crate is only linked
//! in by the host to answer `serve --database postgres://…`.
//!
//! - [`connect`]: where the server is (a URL or the libpq `PG*` variables) and the bounded
//!   connection pool ([`PoolError`] when no connection frees up in time).
//! - [`schema`]: the embedded, versioned migrations run at start; a database migrated by a
//!   newer binary is refused ([`SchemaError::TooNew`]). `conversion` is migration 6's Rust
//!   step: version 5's JSON values rewritten as storage rows.
//!
//! Every stored value (the `value` columns) is its storage row, the bytes sled stores
//! (`stagecraft_store::Stored`), never the JSON of the API's model types; what SQL filters,
//! orders or joins on is a column beside it.
//! - [`commit`] and [`ops`]: one SERIALIZABLE transaction per changeset, with the rules in
//!   SQL: conditional updates on versions, `ON CONFLICT` on the exactly-once keys (a run's
//!   id is its (event, binding) id), occupancy counts read inside the transaction.
//! - [`read`], [`list`] (with [`page`]): point reads and indexed lists with cursors.
//! - [`lease`]: due jobs and timers taken with `FOR UPDATE SKIP LOCKED` and a lease-expiry
//!   column; a message's lease is its `sending` status with the same expiry.
//! - [`rollup`]: hourly run statistics as append-only deltas, summed on read and compacted
//!   in the background, so concurrent commits never write one hot row.
//! - [`retention`]: pruning in bounded batches (and compacting every rollup delta).
//! - [`shared`]: console sign-ins and replay results, so any host answers for them.
//! - [`listen`]: LISTEN/NOTIFY, so every host forgets cached bindings and pipelines as soon
//!   as any host changes them (a one-second tick while the listener is down).
//!
//! Every table is keyed by tenant first (see `schema`), so a deployment can distribute the
//! tables by tenant with Citus later without a schema change.

pub mod backend;
mod blobs;
mod blocking;
pub mod commit;
pub mod connect;
mod conversion;
pub mod lease;
pub mod list;
pub mod listen;
pub mod ops;
pub mod page;
pub mod read;
pub mod retention;
pub mod rollup;
pub mod schema;
pub mod shared;
mod sql;
pub mod tasks;

pub use backend::PgBackend;
pub use connect::{PgOptions, PoolError};
pub use schema::SchemaError;
