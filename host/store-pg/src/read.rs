//! Point reads: one indexed row each, decoded from its stored row.

use postgres::types::ToSql;
use postgres::Client;
use stagecraft_model::ApiKey;
use stagecraft_store::{Read, Row, Stored};

use crate::sql::{dec, TxResult};

/// The stored value of the one row `sql` selects (`value` first), decoded.
fn one<T: Stored>(
    c: &mut Client,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> TxResult<Option<T>> {
    match c.query_opt(sql, params)? {
        Some(row) => Ok(Some(dec(what, row.get::<_, &[u8]>(0))?)),
        None => Ok(None),
    }
}

fn count(c: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> TxResult<Row> {
    let n: i64 = c.query_one(sql, params)?.get(0);
    Ok(Row::Count(u64::try_from(n).unwrap_or(0)))
}

pub fn read(c: &mut Client, r: &Read) -> TxResult<Option<Row>> {
    const BY_ID: &str = "WHERE tenant = $1 AND id = $2";
    Ok(match r {
        Read::Record { tenant, id } => one(
            c,
            "a record",
            &format!("SELECT value FROM records {BY_ID}"),
            &[tenant, id],
        )?
        .map(Row::Record),
        Read::Event { tenant, id } => one(
            c,
            "an event",
            &format!("SELECT value FROM events {BY_ID}"),
            &[tenant, id],
        )?
        .map(|e| Row::Event(Box::new(e))),
        Read::Run { tenant, id } => one(
            c,
            "a run",
            &format!("SELECT value FROM runs {BY_ID}"),
            &[tenant, id],
        )?
        .map(Row::Run),
        Read::Message { tenant, id } => one(
            c,
            "a message",
            &format!("SELECT value FROM messages {BY_ID}"),
            &[tenant, id],
        )?
        .map(Row::Message),
        Read::Binding { tenant, id } => one(
            c,
            "a binding",
            &format!("SELECT value FROM bindings {BY_ID}"),
            &[tenant, id],
        )?
        .map(Row::Binding),
        Read::Pipeline { tenant, id } => one(
            c,
            "a pipeline",
            &format!("SELECT value FROM pipelines {BY_ID}"),
            &[tenant, id],
        )?
        .map(Row::Pipeline),
        Read::Module { tenant, name } => one(
            c,
            "a module",
            "SELECT value FROM modules WHERE tenant = $1 AND name = $2",
            &[tenant, name],
        )?
        .map(Row::Module),
        Read::ModuleVersion {
            tenant,
            module,
            version,
        } => one(
            c,
            "a module version",
            "SELECT value FROM module_versions WHERE tenant = $1 AND module = $2 AND version = $3",
            &[tenant, module, &i64::from(*version)],
        )?
        .map(Row::ModuleVersion),
        Read::KeyByHash { hash } => one::<ApiKey>(
            c,
            "a key",
            "SELECT value FROM api_keys WHERE hash = $1",
            &[hash],
        )?
        .map(|mut k| {
            k.hash = hash.clone();
            Row::Key(k)
        }),
        Read::Channels { tenant } => one(
            c,
            "channel settings",
            "SELECT value FROM channels WHERE tenant = $1",
            &[tenant],
        )?
        .map(Row::Channels),
        Read::WebhookSecret { tenant } => c
            .query_opt(
                "SELECT secret FROM webhook_secrets WHERE tenant = $1",
                &[tenant],
            )?
            .map(|r| Row::Secret(r.get(0))),
        Read::FollowUps {
            tenant,
            binding,
            record,
        } => {
            let (pair, all) = crate::commit::follow_ups(c, tenant, binding, record)?;
            Some(Row::FollowUps { pair, all })
        }
        Read::ModuleUsage { tenant, module } => {
            Some(Row::ModuleUsage(crate::ops::usage(c, tenant, module)?))
        }
        Read::ModuleFileUses { hash } => Some(count(
            c,
            "SELECT count(*) FROM module_versions WHERE hash = $1",
            &[hash],
        )?),
        Read::Task { tenant, id } => crate::tasks::read(c, tenant, id)?,
        Read::QueuedJobs => Some(count(c, "SELECT count(*) FROM jobs", &[])?),
        Read::OutboxDepth => Some(count(
            c,
            "SELECT count(*) FROM messages WHERE status = 'queued'",
            &[],
        )?),
    })
}
