//! Lists: each [`List`] variant as one indexed query in list order, starting after its
//! cursor; paged ones through [`crate::page`].

use postgres::Client;
use stagecraft_model::ApiKey;
use stagecraft_store::{DueMessage, List, Page, PageRequest, Row, Scope, Stored};

use crate::page::{fetch, fetch_limit, fill, Where};
use crate::sql::{channel_name, dec, kind_name, ms, status_name, TxResult};

/// A complete list: every row `sql` selects (`id, value`), decoded.
fn all<T: Stored>(
    c: &mut Client,
    what: &str,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    row: impl Fn(T) -> Row,
) -> TxResult<Page<Row>> {
    let rows = fetch::<T, _>(c, what, sql, params)?;
    Ok(Page {
        items: rows.into_iter().map(|(_, _, v)| row(v)).collect(),
        next: None,
    })
}

/// A paged list of `table` under `w` (plus the cursor), in `id` order (`desc`: newest
/// first, the cursor being the id to go on before).
fn paged<T: Stored>(
    c: &mut Client,
    what: &str,
    table: &str,
    mut w: Where,
    req: &PageRequest,
    desc: bool,
    row: impl Fn(T) -> Row,
) -> TxResult<Page<Row>> {
    if let Some(after) = &req.after {
        w.and("id", if desc { "<" } else { ">" }, after.clone());
    }
    let limit = w.push(fetch_limit(req));
    let order = if desc { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT id, value FROM {table} {} ORDER BY id {order} LIMIT ${limit}",
        w.clause()
    );
    let rows = fetch::<T, _>(c, what, &sql, &w.params())?;
    let page = fill(rows, req);
    Ok(Page {
        items: page.items.into_iter().map(row).collect(),
        next: page.next,
    })
}

fn tenant_where(tenant: &str) -> Where {
    let mut w = Where::default();
    w.and("tenant", "=", tenant.to_string());
    w
}

pub fn list(c: &mut Client, l: &List, req: &PageRequest) -> TxResult<Page<Row>> {
    match l {
        List::Tenants => all(
            c,
            "a tenant",
            "SELECT tenant, value FROM tenants ORDER BY tenant",
            &[],
            Row::Tenant,
        ),
        List::Keys { tenant } => {
            let rows = c.query(
                "SELECT hash, value FROM api_keys WHERE tenant = $1 ORDER BY hash",
                &[tenant],
            )?;
            let mut items = Vec::with_capacity(rows.len());
            for r in rows {
                let mut k: ApiKey = dec("a key", r.get::<_, &[u8]>(1))?;
                k.hash = r.get(0);
                items.push(Row::Key(k));
            }
            Ok(Page { items, next: None })
        }
        List::Pipelines { tenant } => all(
            c,
            "a pipeline",
            "SELECT id, value FROM pipelines WHERE tenant = $1 ORDER BY id",
            &[tenant],
            Row::Pipeline,
        ),
        List::Bindings { tenant } => all(
            c,
            "a binding",
            "SELECT id, value FROM bindings WHERE tenant = $1 ORDER BY id",
            &[tenant],
            Row::Binding,
        ),
        List::Modules { tenant } => all(
            c,
            "a module",
            "SELECT name, value FROM modules m WHERE tenant = $1 AND EXISTS \
             (SELECT 1 FROM module_versions v WHERE v.tenant = m.tenant AND v.module = m.name) \
             ORDER BY name",
            &[tenant],
            Row::Module,
        ),
        List::ModuleVersions { tenant, module } => all(
            c,
            "a module version",
            "SELECT module, value FROM module_versions WHERE tenant = $1 AND module = $2 \
             ORDER BY version",
            &[tenant, module],
            Row::ModuleVersion,
        ),
        List::Records {
            tenant,
            filter,
            text,
        } => {
            let mut w = tenant_where(tenant);
            if let Some(k) = filter.kind {
                w.and("kind", "=", kind_name(k));
            }
            if let Some(p) = &filter.pipeline {
                w.and("pipeline", "=", p.clone());
            }
            if let Some(s) = &filter.stage {
                w.and("stage", "=", s.clone());
            }
            if let Some(o) = &filter.owner {
                w.and("owner", "=", o.clone());
            }
            if let Some(t) = text {
                let t = t.trim().to_lowercase();
                if t.matches('@').count() == 1 && !t.contains(char::is_whitespace) {
                    // An email address: that email exactly, from its index.
                    w.and("lower(btrim(email))", "=", t);
                } else {
                    w.raw(
                        "(strpos(lower(name), {}) > 0 OR lower(btrim(email)) = {})",
                        vec![Box::new(t.clone()), Box::new(t)],
                    );
                }
            }
            paged(c, "a record", "records", w, req, false, Row::Record)
        }
        List::Events { tenant } => paged(
            c,
            "an event",
            "events",
            tenant_where(tenant),
            req,
            false,
            |e| Row::Event(Box::new(e)),
        ),
        List::RecordEvents { tenant, record } => {
            let mut w = tenant_where(tenant);
            w.and("record", "=", record.clone());
            paged(c, "an event", "events", w, req, false, |e| {
                Row::Event(Box::new(e))
            })
        }
        List::Runs { tenant, filter } => {
            let mut w = tenant_where(tenant);
            for (column, v) in [
                ("record", &filter.record),
                ("binding", &filter.binding),
                ("module", &filter.module),
                ("outcome", &filter.outcome),
            ] {
                if let Some(v) = v {
                    w.and(column, "=", v.clone());
                }
            }
            paged(c, "a run", "runs", w, req, true, Row::Run)
        }
        List::Messages { tenant, filter } => {
            let mut w = tenant_where(tenant);
            if let Some(s) = filter.status {
                w.and("status", "=", status_name(s));
            }
            if let Some(ch) = filter.channel {
                w.and("channel", "=", channel_name(ch));
            }
            if let Some(r) = &filter.record {
                w.and("record", "=", r.clone());
            }
            paged(c, "a message", "messages", w, req, false, Row::Message)
        }
        List::Notifications { tenant, user } => {
            let mut w = tenant_where(tenant);
            w.and("\"user\"", "=", user.clone());
            paged(
                c,
                "a notification",
                "notifications",
                w,
                req,
                false,
                Row::Notification,
            )
        }
        List::Timers { tenant } => all(
            c,
            "a timer",
            "SELECT id, value FROM timers WHERE tenant = $1 ORDER BY due_ms, id",
            &[tenant],
            Row::Timer,
        ),
        List::Jobs { tenant } => {
            let limit = i64::try_from(req.limit).unwrap_or(i64::MAX);
            let rows = c.query(
                "SELECT id, value FROM jobs WHERE tenant = $1 ORDER BY id LIMIT $2",
                &[tenant, &limit],
            )?;
            let items = rows
                .iter()
                .map(|r| Row::Job(crate::lease::queued_job(tenant, r.get(0), r.get(1))))
                .collect();
            Ok(Page { items, next: None })
        }
        List::Rollups {
            tenant,
            scope,
            name,
            since_hour,
            until_hour,
        } => {
            let scope = match scope {
                Scope::Module => "m",
                Scope::Binding => "b",
            };
            let crate::rollup::Summed { hours, deltas } =
                crate::rollup::read(c, tenant, scope, name, *since_hour, *until_hour)?;
            // Many deltas: fold them now, so the next read finds them compacted. This read's
            // answer is already whole; a failed fold only leaves them for the next one.
            for (hour, _) in deltas
                .iter()
                .filter(|(_, n)| *n >= crate::rollup::COMPACT_AT)
            {
                if let Err(e) = crate::rollup::compact(c, tenant, scope, name, *hour) {
                    tracing::warn!(error = ?e, "compacting rollups failed");
                }
            }
            Ok(Page {
                items: hours
                    .into_iter()
                    .map(|(hour, rollup)| Row::Rollup { hour, rollup })
                    .collect(),
                next: None,
            })
        }
        List::BindingRuns {
            tenant,
            binding,
            since,
            until,
            last,
        } => {
            let since = since.map(|t| ms(t).max(0)).unwrap_or(i64::MIN);
            let until = until.map(|t| ms(t).max(0)).unwrap_or(i64::MAX);
            let cap = last.unwrap_or(usize::MAX).min(req.limit);
            let cap = i64::try_from(cap).unwrap_or(i64::MAX);
            let order = if last.is_some() { "DESC" } else { "ASC" };
            let rows = c.query(
                &format!(
                    "SELECT started_ms, id FROM runs WHERE tenant = $1 AND binding = $2 \
                     AND started_ms >= $3 AND started_ms < $4 \
                     ORDER BY started_ms {order}, id {order} LIMIT $5"
                ),
                &[tenant, binding, &since, &until, &cap],
            )?;
            let mut items: Vec<Row> = rows
                .iter()
                .map(|r| Row::BindingRun {
                    started_ms: r.get(0),
                    run: r.get(1),
                })
                .collect();
            if last.is_some() {
                items.reverse();
            }
            Ok(Page { items, next: None })
        }
        List::RecordTasks { tenant, record } => crate::tasks::record_tasks(c, tenant, record, req),
        List::Tasks { tenant, filter } => crate::tasks::tasks(c, tenant, filter, req),
        List::RecordComments { tenant, record } => {
            crate::tasks::record_comments(c, tenant, record, req)
        }
        List::Timeline { tenant, record } => crate::tasks::timeline(c, tenant, record, req),
        List::JobTenants => {
            let limit = i64::try_from(req.limit).unwrap_or(i64::MAX);
            let after = req.after.clone().unwrap_or_default();
            let mut names: Vec<String> = c
                .query(
                    "SELECT DISTINCT tenant FROM jobs WHERE tenant > $1 ORDER BY tenant LIMIT $2",
                    &[&after, &limit],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if req.after.is_some() && names.len() < req.limit {
                let more = c.query(
                    "SELECT DISTINCT tenant FROM jobs WHERE tenant <= $1 ORDER BY tenant LIMIT $2",
                    &[&after, &limit],
                )?;
                for r in more {
                    let t: String = r.get(0);
                    if names.len() >= req.limit || names.contains(&t) {
                        break;
                    }
                    names.push(t);
                }
            }
            Ok(Page {
                items: names.into_iter().map(Row::Name).collect(),
                next: None,
            })
        }
        List::DueMessages { since, until } => {
            let limit = i64::try_from(req.limit.max(1)).unwrap_or(i64::MAX - 1);
            let until = ms(*until);
            let rows = match (&req.after, since) {
                (Some(key), _) => {
                    let (at, tenant, id) = crate::lease::split_due(key);
                    c.query(
                        "SELECT due_ms, tenant, id FROM messages \
                         WHERE status IN ('queued', 'sending') AND due_ms <= $1 \
                         AND (due_ms, tenant, id) > ($2, $3, $4) \
                         ORDER BY due_ms, tenant, id LIMIT $5",
                        &[&until, &at, &tenant, &id, &(limit + 1)],
                    )?
                }
                (None, s) => {
                    let from = s.map(ms).unwrap_or(i64::MIN);
                    c.query(
                        "SELECT due_ms, tenant, id FROM messages \
                         WHERE status IN ('queued', 'sending') AND due_ms <= $1 AND due_ms >= $2 \
                         ORDER BY due_ms, tenant, id LIMIT $3",
                        &[&until, &from, &(limit + 1)],
                    )?
                }
            };
            let more = rows.len() > req.limit.max(1);
            let items: Vec<DueMessage> = rows
                .iter()
                .take(req.limit.max(1))
                .map(|r| {
                    let (at, tenant, id): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
                    DueMessage {
                        key: crate::lease::due_key(at, &tenant, &id),
                        tenant,
                        id,
                    }
                })
                .collect();
            let next = if more {
                items.last().map(|d| d.key.clone())
            } else {
                None
            };
            Ok(Page {
                items: items.into_iter().map(Row::Due).collect(),
                next,
            })
        }
    }
}
