//! Migration 6's Rust step (`schema::V6_ROWS`): every stored value, the JSON of an API
//! model type up to version 5, becomes its storage row (`stagecraft_store::Stored`). SQL
//! cannot write postcard, so each table is read through a cursor, each value decoded as
//! version 5 wrote it (the model's JSON, exactly as version 5 read it back) and written
//! again as its row, all inside the migration's transaction: a database is converted whole
//! or, when one value fails, not at all (the error names the table and the value).

use postgres::Transaction;
use serde::de::DeserializeOwned;
use stagecraft_model::stats::Rollup;
use stagecraft_model::{
    ApiKey, Binding, ChannelConfig, Comment, Event, Job, Module, ModuleVersion, Notification,
    OutboxMessage, Pipeline, Record, RunRecord, Task, Tenant, Timer,
};
use stagecraft_store::Stored;

use crate::schema::{SchemaError, V6_ROWS_DONE};

/// Values read from the cursor at a time.
const BATCH: i32 = 512;

/// Converts every table's JSON (`json`, moved aside by the migration's SQL) into its row
/// (`value`), then drops the JSON.
pub(crate) fn to_rows(tx: &mut Transaction<'_>) -> Result<(), SchemaError> {
    table::<Tenant>(tx, "tenants")?;
    table::<ApiKey>(tx, "api_keys")?;
    table::<Pipeline>(tx, "pipelines")?;
    table::<Record>(tx, "records")?;
    table::<Event>(tx, "events")?;
    table::<RunRecord>(tx, "runs")?;
    table::<Rollup>(tx, "rollups")?;
    table::<OutboxMessage>(tx, "messages")?;
    table::<Timer>(tx, "timers")?;
    table::<Job>(tx, "jobs")?;
    table::<Binding>(tx, "bindings")?;
    table::<Module>(tx, "modules")?;
    table::<ModuleVersion>(tx, "module_versions")?;
    table::<ChannelConfig>(tx, "channels")?;
    table::<Notification>(tx, "notifications")?;
    table::<Task>(tx, "tasks")?;
    table::<Comment>(tx, "comments")?;
    tx.batch_execute(V6_ROWS_DONE)?;
    Ok(())
}

/// Writes each row of `table` as its storage row. The cursor reads the table as it was
/// before this step's own updates, so each row is converted once; rows are found again by
/// their physical address (`ctid`), which an update of this transaction has not moved yet.
fn table<M: Stored + DeserializeOwned>(
    tx: &mut Transaction<'_>,
    table: &str,
) -> Result<u64, SchemaError> {
    let failed = |reason: String| SchemaError::Convert {
        table: table.to_string(),
        reason,
    };
    let cursor = tx.bind(
        format!("SELECT ctid::text, json::text FROM {table}").as_str(),
        &[],
    )?;
    let update = tx.prepare(&format!(
        "UPDATE {table} SET value = $1 WHERE ctid = $2::text::tid"
    ))?;
    let mut n = 0u64;
    loop {
        let rows = tx.query_portal(&cursor, BATCH)?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let (at, json): (&str, &str) = (r.get(0), r.get(1));
            let value: M =
                serde_json::from_str(json).map_err(|e| failed(format!("row {at}: {e}")))?;
            let bytes = value.encode_row().map_err(|e| failed(e.to_string()))?;
            tx.execute(&update, &[&bytes, &at])?;
            n += 1;
        }
    }
    tracing::info!(table, values = n, "stored values converted to storage rows");
    Ok(n)
}
