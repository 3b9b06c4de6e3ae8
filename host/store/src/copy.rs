//! Copying every tenant of one store into another through the seam
//! (`stagecraft migrate --from DATA_DIR --to postgres://…`: sled into PostgreSQL). Each
//! noun is read with the source's lists and written with ordinary changesets, so the
//! target's own rules (occupancy, use counts, exactly-once run ids, idempotency keys) hold
//! for what arrives; module versions keep their numbers ([`Op::ImportModule`]). Afterwards
//! every noun is counted on both sides ([`CopyCounts`]).
//!
//! Not copied: notifications (read per user; they are a convenience inbox) and the hourly
//! rollups, which the target rebuilds from the runs as they are written.

use std::collections::BTreeMap;

use stagecraft_model::TimerKind;

use crate::change::{Changeset, Op, RecordWrite, TaskCaps};
use crate::query::{List, PageRequest, Read, Row};
use crate::{Result, Store, StoreError};

/// Caps that never refuse: what is copied was held within the source's caps already.
const UNCAPPED: TaskCaps = TaskCaps {
    tasks_per_record: u64::MAX,
    open_tasks_per_tenant: u64::MAX,
    comments_per_record: u64::MAX,
};

/// Rows per changeset while copying.
const BATCH: usize = 500;

/// How many of each noun a store holds, per tenant: `(tenant, noun) -> count`.
pub type CopyCounts = BTreeMap<(String, &'static str), u64>;

/// The nouns copied and counted, in copying order.
pub const NOUNS: &[&str] = &[
    "keys",
    "pipelines",
    "modules",
    "module versions",
    "bindings",
    "records",
    "events",
    "tasks",
    "comments",
    "runs",
    "messages",
    "timers",
    "jobs",
];

impl Store {
    /// How many of each noun this store holds (every page of every list).
    pub fn count_everything(&self) -> Result<CopyCounts> {
        let mut counts = CopyCounts::new();
        for tenant in self.tenant_ids()? {
            for noun in NOUNS {
                let mut n = 0u64;
                self.each(&tenant, noun, &mut |_| {
                    n += 1;
                    Ok(())
                })?;
                counts.insert((tenant.clone(), *noun), n);
            }
        }
        Ok(counts)
    }

    /// Whether this store holds any tenant.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.tenant_ids()?.is_empty())
    }

    /// Copies every tenant of this store into `target`, calling `progress(noun, rows)` after
    /// each batch written; each module version's component comes from `component(hash)`
    /// and is kept with it ([`Op::KeepModuleBytes`]). Fails on the first row the target
    /// refuses (e.g. a tenant it already has).
    pub fn copy_into(
        &self,
        target: &Store,
        component: &dyn Fn(&str) -> Option<Vec<u8>>,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<()> {
        for tenant in self.tenant_ids()? {
            self.copy_tenant(&tenant, target, component, progress)?;
        }
        target.flush()
    }

    fn tenant_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .backend
            .list(&List::Tenants, &PageRequest::all())?
            .items
            .into_iter()
            .filter_map(|r| match r {
                Row::Tenant(t) => Some(t.id),
                _ => None,
            })
            .collect())
    }

    fn copy_tenant(
        &self,
        tenant: &str,
        target: &Store,
        component: &dyn Fn(&str) -> Option<Vec<u8>>,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<()> {
        let b = &self.backend;
        let one = |l: List| -> Result<Vec<Row>> { Ok(b.list(&l, &PageRequest::all())?.items) };
        let t = one(List::Tenants)?
            .into_iter()
            .find_map(|r| match r {
                Row::Tenant(t) if t.id == tenant => Some(t),
                _ => None,
            })
            .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant:?}")))?;
        let mut keys: Vec<_> = one(List::Keys {
            tenant: tenant.into(),
        })?
        .into_iter()
        .filter_map(|r| match r {
            Row::Key(k) => Some(k),
            _ => None,
        })
        .collect();
        let pipelines: Vec<_> = one(List::Pipelines {
            tenant: tenant.into(),
        })?
        .into_iter()
        .filter_map(|r| match r {
            Row::Pipeline(p) => Some(p),
            _ => None,
        })
        .collect();
        let Some(first) = keys.pop() else {
            return Err(StoreError::Refused(format!(
                "tenant {tenant:?} has no API key; it cannot be copied"
            )));
        };
        let (nkeys, npipes) = (keys.len() as u64 + 1, pipelines.len() as u64);
        let mut cs = Changeset::op(
            tenant,
            Op::CreateTenant {
                tenant: t,
                key: first,
                pipelines,
            },
        );
        cs.ops
            .extend(keys.into_iter().map(|key| Op::PutKey { key }));
        target.commit(&cs)?;
        progress("keys", nkeys);
        progress("pipelines", npipes);

        // Module versions keep their numbers; then the bindings that use them.
        for m in one(List::Modules {
            tenant: tenant.into(),
        })? {
            let Row::Module(module) = m else { continue };
            let versions: Vec<_> = one(List::ModuleVersions {
                tenant: tenant.into(),
                module: module.name.clone(),
            })?
            .into_iter()
            .filter_map(|r| match r {
                Row::ModuleVersion(v) => Some(v),
                _ => None,
            })
            .collect();
            let n = versions.len() as u64;
            let mut cs = Changeset::new(tenant);
            for v in &versions {
                let bytes = component(&v.hash).ok_or_else(|| {
                    StoreError::Refused(format!(
                        "the component of module {:?} version {} ({}) is missing from the data dir",
                        v.module, v.version, v.hash
                    ))
                })?;
                cs.ops.push(Op::KeepModuleBytes {
                    hash: v.hash.clone(),
                    bytes: bytes.into(),
                });
            }
            cs.ops.push(Op::ImportModule { module, versions });
            target.commit(&cs)?;
            progress("modules", 1);
            progress("module versions", n);
        }
        for r in one(List::Bindings {
            tenant: tenant.into(),
        })? {
            let Row::Binding(binding) = r else { continue };
            let op = Op::PutBinding {
                binding,
                expected: None,
            };
            target.commit(&Changeset::op(tenant, op))?;
            progress("bindings", 1);
        }
        if let Some(Row::Channels(config)) = b.read(&Read::Channels {
            tenant: tenant.into(),
        })? {
            target.commit(&Changeset::op(tenant, Op::PutChannels { config }))?;
        }
        if let Some(Row::Secret(secret)) = b.read(&Read::WebhookSecret {
            tenant: tenant.into(),
        })? {
            target.commit(&Changeset::op(tenant, Op::InitWebhookSecret { secret }))?;
        }

        // The data, in batches: records before the journal, runs, outbox and timers that
        // name them.
        for noun in &NOUNS[5..] {
            let mut cs = Changeset::new(tenant);
            let mut rows = 0usize;
            self.each(tenant, noun, &mut |row| {
                match row {
                    Row::Record(r) => cs.records.push(RecordWrite::Put {
                        record: Box::new(r),
                        expected: None,
                    }),
                    Row::Event(e) => cs.events.push(*e),
                    // Stored as they are (open or done, at their version); an open task's
                    // overdue timer is armed by the op, so the timers below skip theirs. The
                    // source held them within its caps: none apply again.
                    Row::Task(task) => cs.ops.push(Op::CreateTask {
                        task,
                        caps: UNCAPPED,
                    }),
                    Row::Comment(comment) => cs.ops.push(Op::AddComment {
                        comment,
                        caps: UNCAPPED,
                    }),
                    Row::Run(r) => cs.runs.push(r),
                    Row::Message(m) => cs.messages.push(m),
                    Row::Timer(t) if matches!(t.kind, TimerKind::TaskOverdue { .. }) => {
                        return Ok(())
                    }
                    Row::Timer(t) => cs.timers.push(t),
                    Row::Job(q) => match q.job {
                        Ok(j) => cs.jobs.push(j),
                        Err(why) => {
                            return Err(StoreError::Refused(format!(
                                "job {} of tenant {tenant:?} cannot be read ({why}); run the \
                                 server on the data dir until its queue is empty, then copy",
                                q.id
                            )))
                        }
                    },
                    _ => return Ok(()),
                }
                rows += 1;
                if rows == BATCH {
                    target.commit(&std::mem::replace(&mut cs, Changeset::new(tenant)))?;
                    progress(noun, rows as u64);
                    rows = 0;
                }
                Ok(())
            })?;
            if rows > 0 {
                target.commit(&cs)?;
                progress(noun, rows as u64);
            }
        }
        Ok(())
    }

    /// Calls `f` with every row of `noun` in `tenant`, page by page.
    fn each(&self, tenant: &str, noun: &str, f: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        let t = || tenant.to_string();
        let lists = match noun {
            "keys" => vec![List::Keys { tenant: t() }],
            "pipelines" => vec![List::Pipelines { tenant: t() }],
            "modules" => vec![List::Modules { tenant: t() }],
            "module versions" => self
                .backend
                .list(&List::Modules { tenant: t() }, &PageRequest::all())?
                .items
                .into_iter()
                .filter_map(|r| match r {
                    Row::Module(m) => Some(List::ModuleVersions {
                        tenant: t(),
                        module: m.name,
                    }),
                    _ => None,
                })
                .collect(),
            "bindings" => vec![List::Bindings { tenant: t() }],
            "records" => vec![List::Records {
                tenant: t(),
                filter: Default::default(),
                text: None,
            }],
            "events" => vec![List::Events { tenant: t() }],
            "tasks" => vec![List::Tasks {
                tenant: t(),
                filter: Default::default(),
            }],
            // Comments are listed per record: walk the records, then each one's comments.
            "comments" => {
                let records = List::Records {
                    tenant: t(),
                    filter: Default::default(),
                    text: None,
                };
                return self.each_page(&records, BATCH, &mut |row| match row {
                    Row::Record(r) => self.each_page(
                        &List::RecordComments {
                            tenant: t(),
                            record: r.id,
                        },
                        BATCH,
                        f,
                    ),
                    _ => Ok(()),
                });
            }
            "runs" => vec![List::Runs {
                tenant: t(),
                filter: Default::default(),
            }],
            "messages" => vec![List::Messages {
                tenant: t(),
                filter: Default::default(),
            }],
            "timers" => vec![List::Timers { tenant: t() }],
            "jobs" => vec![List::Jobs { tenant: t() }],
            _ => Vec::new(),
        };
        for list in lists {
            // The job queue is read from its front, without a cursor: all of it at once.
            let limit = if noun == "jobs" { usize::MAX } else { BATCH };
            self.each_page(&list, limit, f)?;
        }
        Ok(())
    }

    /// Calls `f` with every row of `list`, `limit` a page.
    fn each_page(
        &self,
        list: &List,
        limit: usize,
        f: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        let mut page = PageRequest {
            after: None,
            limit,
            limits: Default::default(),
        };
        loop {
            let got = self.backend.list(list, &page)?;
            for row in got.items {
                f(row)?;
            }
            match got.next {
                Some(next) => page.after = Some(next),
                None => return Ok(()),
            }
        }
    }
}
