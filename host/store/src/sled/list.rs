//! Lists: each [`List`] variant answered by its family's scan, as rows.

use std::ops::Bound;

use super::{family, SledBackend};
use crate::query::{List, Page, PageRequest, Row};
use crate::Result;

/// A complete list, as one page.
fn all<T>(items: Vec<T>, row: impl Fn(T) -> Row) -> Page<Row> {
    Page {
        items: items.into_iter().map(row).collect(),
        next: None,
    }
}

fn rows<T>(page: Page<T>, row: impl Fn(T) -> Row) -> Page<Row> {
    Page {
        items: page.items.into_iter().map(row).collect(),
        next: page.next,
    }
}

pub(super) fn list(b: &SledBackend, l: &List, p: &PageRequest) -> Result<Page<Row>> {
    let after = p.after.as_deref();
    Ok(match l {
        List::Tenants => all(b.tenants()?, Row::Tenant),
        List::Keys { tenant } => all(b.keys(tenant)?, Row::Key),
        List::Pipelines { tenant } => all(b.pipelines(tenant)?, Row::Pipeline),
        List::Bindings { tenant } => all(b.bindings(tenant)?, Row::Binding),
        List::Modules { tenant } => all(b.modules(tenant)?, Row::Module),
        List::ModuleVersions { tenant, module } => {
            all(b.module_versions(tenant, module)?, Row::ModuleVersion)
        }
        List::Records {
            tenant,
            filter,
            text,
        } => rows(
            b.search_records(tenant, filter, text.as_deref(), after, p.limit, &p.limits)?,
            Row::Record,
        ),
        List::Events { tenant } => rows(b.events(tenant, after, p.limit, &p.limits)?, |e| {
            Row::Event(Box::new(e))
        }),
        List::RecordEvents { tenant, record } => rows(
            b.record_events(tenant, record, after, p.limit, &p.limits)?,
            |e| Row::Event(Box::new(e)),
        ),
        List::Runs { tenant, filter } => {
            rows(b.runs(tenant, filter, after, p.limit, &p.limits)?, Row::Run)
        }
        List::Messages { tenant, filter } => rows(
            b.messages(tenant, filter, after, p.limit, &p.limits)?,
            Row::Message,
        ),
        List::Notifications { tenant, user } => rows(
            b.notifications(tenant, user, after, p.limit, &p.limits)?,
            Row::Notification,
        ),
        List::Timers { tenant } => all(b.timers(tenant)?, Row::Timer),
        List::Jobs { tenant } => all(b.tenant_jobs(tenant, p.limit, |_| false)?, Row::Job),
        List::Rollups {
            tenant,
            scope,
            name,
            since_hour,
            until_hour,
        } => all(
            b.rollups(tenant, *scope, name, *since_hour, *until_hour)?,
            |(hour, rollup)| Row::Rollup { hour, rollup },
        ),
        List::BindingRuns {
            tenant,
            binding,
            since,
            until,
            last,
        } => all(
            b.binding_runs(tenant, binding, *since, *until, *last, p.limit)?,
            |(started_ms, run)| Row::BindingRun { started_ms, run },
        ),
        List::RecordTasks { tenant, record } => rows(
            b.record_tasks(tenant, record, after, p.limit, &p.limits)?,
            Row::Task,
        ),
        List::Tasks { tenant, filter } => rows(
            b.tasks(tenant, filter, after, p.limit, &p.limits)?,
            Row::Task,
        ),
        List::RecordComments { tenant, record } => rows(
            b.record_comments(tenant, record, after, p.limit, &p.limits)?,
            Row::Comment,
        ),
        List::Timeline { tenant, record } => rows(
            b.timeline(tenant, record, after, p.limit, &p.limits)?,
            Row::Timeline,
        ),
        List::JobTenants => all(b.job_tenants(after, p.limit)?, Row::Name),
        List::DueMessages { since, until } => {
            let start = match (after, since) {
                (Some(key), _) => Bound::Excluded(key.as_bytes().to_vec()),
                (None, Some(t)) => {
                    Bound::Included(family::due(t.timestamp_millis(), "", "").into_bytes())
                }
                (None, None) => Bound::Included(family::DUE.as_bytes().to_vec()),
            };
            let (due, next) = b.due_range(start, *until, p.limit)?;
            Page {
                items: due.into_iter().map(Row::Due).collect(),
                next,
            }
        }
    })
}
