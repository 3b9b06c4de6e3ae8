//! The database's layout, as embedded, numbered migrations run at start. Each migration runs
//! in its own transaction under an advisory lock, so hosts starting together migrate once.
//! `stagecraft_schema` holds the version reached; a database a newer binary migrated is
//! refused ([`SchemaError::TooNew`]) rather than written with rules this binary doesn't
//! know. A migration SQL cannot express whole has a Rust step (`STEPS`), run after its SQL
//! in the same transaction.
//!
//! Every table's primary key starts with `tenant` and every per-tenant index does too, so
//! the tables can be distributed by tenant with Citus without a schema change. The few
//! cross-tenant reads (a key by its hash, due timers and messages, retention) use indexes of
//! their own and touch every shard, as Citus allows.

use postgres::{Client, Transaction};

/// The migrations, in order: `MIGRATIONS[n]` takes the schema from version n to n + 1.
pub const MIGRATIONS: &[&str] = &[
    V1,
    V2,
    V3_INDEXES,
    V4_TASKS,
    V5_SHARED,
    V6_ROWS,
    V7_ROLLUP_DELTAS,
];

/// The schema version this binary writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Serializes migrations between hosts starting at once (an arbitrary, fixed key).
const MIGRATION_LOCK: i64 = 0x5374_6167_6563_7261;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database's schema is version {found}, newer than this binary knows (version {known}); \
         run a stagecraft at least as new as the one that migrated it"
    )]
    TooNew { found: i64, known: i64 },
    #[error("migrating the database failed: {0}")]
    Failed(#[from] postgres::Error),
    /// A stored value the migration to storage rows could not convert (nothing was changed).
    #[error(
        "migrating the database failed: a stored value in {table} cannot be converted: {reason}"
    )]
    Convert { table: String, reason: String },
}

/// What a migration does after its SQL, in Rust, inside the same transaction (what SQL
/// cannot do).
type Step = fn(&mut Transaction<'_>) -> Result<(), SchemaError>;

/// The migrations with a Rust step, found by their SQL (so renumbering keeps each with its
/// step).
const STEPS: &[(&str, Step)] = &[(V6_ROWS, crate::conversion::to_rows)];

/// Brings the database up to [`VERSION`] (nothing to do when it is there already).
pub fn migrate(client: &mut Client) -> Result<i64, SchemaError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // Under the lock: `IF NOT EXISTS` is no guard against another host creating the same
    // table at the same moment (hosts starting at once on an empty database).
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS stagecraft_schema (\
            one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL)",
    )?;
    let found: i64 = tx
        .query_opt("SELECT version FROM stagecraft_schema", &[])?
        .map(|r| r.get(0))
        .unwrap_or(0);
    if found > VERSION {
        return Err(SchemaError::TooNew {
            found,
            known: VERSION,
        });
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        if let Some((_, step)) = STEPS.iter().find(|(s, _)| s == sql) {
            step(&mut tx)?;
        }
        tracing::info!(version = n + 1, "migrated the PostgreSQL schema");
    }
    tx.execute(
        "INSERT INTO stagecraft_schema (version) VALUES ($1) \
         ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
        &[&VERSION],
    )?;
    tx.commit()?;
    Ok(VERSION)
}

/// Version 1: every noun in a table keyed by tenant first. `value` is the stored JSON;
/// the columns beside it are what the rules and indexes need.
const V1: &str = r#"
CREATE TABLE tenants (tenant TEXT PRIMARY KEY, value JSONB NOT NULL);
CREATE TABLE api_keys (
    tenant TEXT NOT NULL, hash TEXT NOT NULL, id TEXT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, hash));
CREATE INDEX api_keys_by_hash ON api_keys (hash);
CREATE TABLE pipelines (
    tenant TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE TABLE records (
    tenant TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, kind TEXT NOT NULL,
    pipeline TEXT, stage TEXT, owner TEXT, name TEXT NOT NULL, email TEXT,
    value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX records_by_stage ON records (tenant, pipeline, stage, id);
CREATE INDEX records_by_owner ON records (tenant, owner, id);
CREATE INDEX records_by_kind ON records (tenant, kind, id);
CREATE INDEX records_by_email ON records (tenant, lower(btrim(email)));
CREATE TABLE events (
    tenant TEXT NOT NULL, id TEXT NOT NULL, record TEXT, occurred_ms BIGINT NOT NULL,
    has_snapshot BOOLEAN NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX events_by_record ON events (tenant, record, id);
CREATE INDEX events_with_snapshot ON events (tenant, occurred_ms) WHERE has_snapshot;
CREATE TABLE runs (
    tenant TEXT NOT NULL, id TEXT NOT NULL, binding TEXT NOT NULL, module TEXT NOT NULL,
    record TEXT, outcome TEXT NOT NULL, started_ms BIGINT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX runs_by_binding ON runs (tenant, binding, started_ms, id);
CREATE INDEX runs_by_record ON runs (tenant, record, id);
CREATE INDEX runs_by_module ON runs (tenant, module, id);
CREATE INDEX runs_by_outcome ON runs (tenant, outcome, id);
CREATE INDEX runs_by_start ON runs (tenant, started_ms);
CREATE TABLE rollups (
    tenant TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL, hour BIGINT NOT NULL,
    value JSONB NOT NULL,
    PRIMARY KEY (tenant, scope, name, hour));
CREATE TABLE messages (
    tenant TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, channel TEXT NOT NULL,
    record TEXT, run TEXT NOT NULL, due_ms BIGINT, sent_ms BIGINT, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX messages_due ON messages (due_ms, tenant, id) WHERE status IN ('queued', 'sending');
CREATE INDEX messages_sent ON messages (tenant, sent_ms) WHERE status = 'sent';
CREATE INDEX messages_by_record ON messages (tenant, record, id);
CREATE TABLE idempotency_keys (
    tenant TEXT NOT NULL, key TEXT NOT NULL, message TEXT NOT NULL,
    PRIMARY KEY (tenant, key));
CREATE TABLE timers (
    tenant TEXT NOT NULL, id TEXT NOT NULL, due_ms BIGINT NOT NULL, record TEXT NOT NULL,
    binding TEXT NOT NULL, stage TEXT, follow_up BOOLEAN NOT NULL,
    holder TEXT, held_until_ms BIGINT, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX timers_due ON timers (due_ms, tenant, id);
CREATE INDEX timers_by_record ON timers (tenant, record);
CREATE INDEX timers_follow_ups ON timers (tenant, binding, record) WHERE follow_up;
CREATE TABLE jobs (
    tenant TEXT NOT NULL, id TEXT NOT NULL, holder TEXT, held_until_ms BIGINT,
    value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE TABLE bindings (
    tenant TEXT NOT NULL, id TEXT NOT NULL, revision BIGINT NOT NULL, module TEXT NOT NULL,
    version BIGINT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX bindings_by_version ON bindings (tenant, module, version);
CREATE TABLE modules (
    tenant TEXT NOT NULL, name TEXT NOT NULL, latest BIGINT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, name));
CREATE TABLE module_versions (
    tenant TEXT NOT NULL, module TEXT NOT NULL, version BIGINT NOT NULL, hash TEXT NOT NULL,
    bytes BIGINT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, module, version));
CREATE INDEX module_versions_by_hash ON module_versions (hash);
CREATE TABLE channels (tenant TEXT PRIMARY KEY, value JSONB NOT NULL);
CREATE TABLE webhook_secrets (tenant TEXT PRIMARY KEY, secret TEXT NOT NULL);
CREATE TABLE notifications (
    tenant TEXT NOT NULL, "user" TEXT NOT NULL, id TEXT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, "user", id));
"#;

/// Version 2: module components, stored once per tenant by content hash, so every host can
/// compile what another host's upload brought (each keeps its own artifacts on disk).
const V2: &str = r#"
CREATE TABLE module_blobs (
    tenant TEXT NOT NULL, hash TEXT NOT NULL, bytes BYTEA NOT NULL,
    PRIMARY KEY (tenant, hash));
CREATE INDEX module_blobs_by_hash ON module_blobs (hash);
"#;

/// Indexes for every list filter and their combinations (storage v2's indexed lists): the
/// single-column ones of version 1 answer one filter in id order; these answer the common
/// combinations without reading rows that do not match (`records.find` in lead-scoring:
/// kind + owner + pipeline), messages by status and channel, and records by update time.
const V3_INDEXES: &str = r#"
CREATE INDEX records_by_owner_kind ON records (tenant, owner, kind, pipeline, id);
CREATE INDEX records_by_kind_stage ON records (tenant, kind, pipeline, stage, id);
CREATE INDEX records_by_email_id ON records (tenant, lower(btrim(email)), id);
CREATE INDEX runs_by_binding_id ON runs (tenant, binding, id);
CREATE INDEX runs_by_binding_outcome ON runs (tenant, binding, outcome, id);
CREATE INDEX runs_by_record_binding ON runs (tenant, record, binding, id);
CREATE INDEX messages_by_status ON messages (tenant, status, id);
CREATE INDEX messages_by_channel ON messages (tenant, channel, status, id);
"#;

/// Version 4: tasks and comments (host API 0.2). `status_ord` (`0/{id}` open, `1/{id}` done)
/// and `due_ord` (`{due_ms}/{id}`, open tasks with a due time only) are the lists' orders and
/// cursors, the same as sled's; `timeline_key` sorts a record's timeline sources by the ULID
/// their ids carry.
const V4_TASKS: &str = r#"
CREATE TABLE tasks (
    tenant TEXT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL, assignee TEXT,
    open BOOLEAN NOT NULL, status_ord TEXT NOT NULL, due_ms BIGINT, due_ord TEXT,
    version BIGINT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX tasks_by_record ON tasks (tenant, record, id);
CREATE INDEX tasks_by_status ON tasks (tenant, status_ord);
CREATE INDEX tasks_by_assignee ON tasks (tenant, assignee, status_ord);
CREATE INDEX tasks_due ON tasks (tenant, due_ord) WHERE due_ord IS NOT NULL;
CREATE INDEX tasks_due_by_assignee ON tasks (tenant, assignee, due_ord) WHERE due_ord IS NOT NULL;
CREATE TABLE comments (
    tenant TEXT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX comments_by_record ON comments (tenant, record, id);
"#;

/// Version 5 (many hosts, #18): what makes every host answer alike.
/// - A change to a binding, pipeline or API key notifies channel `stagecraft_cache` when
///   its transaction commits (row triggers, so every writer is covered); each host LISTENs
///   and forgets its cached copies (`listen`).
/// - Console sign-ins (by the SHA-256 of the session id, holding the key's hash, never the
///   key) and replay results, so a sign-in or a replay started through one host is answered
///   by any host.
const V5_SHARED: &str = r#"
CREATE FUNCTION stagecraft_notify_cache() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stagecraft_cache', TG_TABLE_NAME || '/' || COALESCE(NEW.tenant, OLD.tenant));
    RETURN NULL;
END $$;
CREATE TRIGGER bindings_notify AFTER INSERT OR UPDATE OR DELETE ON bindings
    FOR EACH ROW EXECUTE FUNCTION stagecraft_notify_cache();
CREATE TRIGGER pipelines_notify AFTER INSERT OR UPDATE OR DELETE ON pipelines
    FOR EACH ROW EXECUTE FUNCTION stagecraft_notify_cache();
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION stagecraft_notify_cache();
CREATE TABLE console_sessions (
    tenant TEXT NOT NULL, hash TEXT NOT NULL, key_hash TEXT NOT NULL, csrf TEXT NOT NULL,
    expires_ms BIGINT NOT NULL, flash JSONB,
    PRIMARY KEY (tenant, hash));
CREATE INDEX console_sessions_by_hash ON console_sessions (hash);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_ms);
CREATE TABLE replays (
    tenant TEXT NOT NULL, id TEXT NOT NULL, created_ms BIGINT NOT NULL, value JSONB NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX replays_by_age ON replays (tenant, created_ms);
"#;

/// Version 6: every stored value is its storage row (`stagecraft_store::Stored`: `[0xC2,
/// row version]` then postcard, the bytes sled stores), no longer the JSON of the API's
/// model types, so renaming an API field never rewrites or breaks stored data. `value`
/// becomes BYTEA; SQL no longer looks inside it, so what it filters on is a column: runs
/// gain `event` and `event_kind`, events `kind` (filled from the JSON here). The JSON moves
/// aside to `json`, the Rust step (`conversion::to_rows`) writes each row's `value` from
/// it, then [`V6_ROWS_DONE`] drops it. `replays` stays JSON: it holds the API's own answer
/// for another host to give, not data.
const V6_ROWS: &str = r#"
ALTER TABLE runs ADD COLUMN event TEXT, ADD COLUMN event_kind TEXT;
UPDATE runs SET event = value->>'event', event_kind = value->>'event_kind';
ALTER TABLE runs ALTER COLUMN event SET NOT NULL, ALTER COLUMN event_kind SET NOT NULL;
ALTER TABLE events ADD COLUMN kind TEXT;
UPDATE events SET kind = value->>'type';
ALTER TABLE events ALTER COLUMN kind SET NOT NULL;
ALTER TABLE tenants RENAME COLUMN value TO json;
ALTER TABLE tenants ADD COLUMN value BYTEA;
ALTER TABLE api_keys RENAME COLUMN value TO json;
ALTER TABLE api_keys ADD COLUMN value BYTEA;
ALTER TABLE pipelines RENAME COLUMN value TO json;
ALTER TABLE pipelines ADD COLUMN value BYTEA;
ALTER TABLE records RENAME COLUMN value TO json;
ALTER TABLE records ADD COLUMN value BYTEA;
ALTER TABLE events RENAME COLUMN value TO json;
ALTER TABLE events ADD COLUMN value BYTEA;
ALTER TABLE runs RENAME COLUMN value TO json;
ALTER TABLE runs ADD COLUMN value BYTEA;
ALTER TABLE rollups RENAME COLUMN value TO json;
ALTER TABLE rollups ADD COLUMN value BYTEA;
ALTER TABLE messages RENAME COLUMN value TO json;
ALTER TABLE messages ADD COLUMN value BYTEA;
ALTER TABLE timers RENAME COLUMN value TO json;
ALTER TABLE timers ADD COLUMN value BYTEA;
ALTER TABLE jobs RENAME COLUMN value TO json;
ALTER TABLE jobs ADD COLUMN value BYTEA;
ALTER TABLE bindings RENAME COLUMN value TO json;
ALTER TABLE bindings ADD COLUMN value BYTEA;
ALTER TABLE modules RENAME COLUMN value TO json;
ALTER TABLE modules ADD COLUMN value BYTEA;
ALTER TABLE module_versions RENAME COLUMN value TO json;
ALTER TABLE module_versions ADD COLUMN value BYTEA;
ALTER TABLE channels RENAME COLUMN value TO json;
ALTER TABLE channels ADD COLUMN value BYTEA;
ALTER TABLE notifications RENAME COLUMN value TO json;
ALTER TABLE notifications ADD COLUMN value BYTEA;
ALTER TABLE tasks RENAME COLUMN value TO json;
ALTER TABLE tasks ADD COLUMN value BYTEA;
ALTER TABLE comments RENAME COLUMN value TO json;
ALTER TABLE comments ADD COLUMN value BYTEA;
"#;

/// The end of version 6, run by its Rust step once every row is written.
pub(crate) const V6_ROWS_DONE: &str = r#"
ALTER TABLE tenants DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE api_keys DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE pipelines DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE records DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE events DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE runs DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE rollups DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE messages DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE timers DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE jobs DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE bindings DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE modules DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE module_versions DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE channels DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE notifications DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE tasks DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
ALTER TABLE comments DROP COLUMN json, ALTER COLUMN value SET NOT NULL;
"#;

/// Version 7 (#18, scaling): rollups as append-only deltas. Each run (each ended delivery)
/// inserts a row of its own here instead of reading and rewriting its hour's row in
/// `rollups`, so concurrent commits of a tenant no longer collide on that row; reads sum
/// `rollups` and the deltas, compaction folds deltas into `rollups` (see `rollup`). The rows
/// already in `rollups` stay as they are: they are the compacted totals of what came
/// before.
const V7_ROLLUP_DELTAS: &str = r#"
CREATE TABLE rollup_deltas (
    tenant TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL, hour BIGINT NOT NULL,
    seq BIGINT GENERATED ALWAYS AS IDENTITY, value BYTEA NOT NULL,
    PRIMARY KEY (tenant, scope, name, hour, seq));
"#;
