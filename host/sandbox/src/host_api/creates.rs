//! Host API 0.2: what a run may create (records, tasks, comments) and complete (tasks). Each
//! call needs its grant by name (`stagecraft_rules::grant`), is checked by the shared rules
//! (`stagecraft_rules::field`, `stagecraft_rules::task`), counts against the run's caps
//! (`Limits::records_created`, `tasks`, `comments`: one more ends the run `create_limit`) and
//! its effect bytes, and is only buffered as an effect, like every other write.

use serde_json::Value;
use stagecraft_rules::{field, task, Action};

use super::{t, HostApi, HostResult};
use crate::model::{Effect, Outcome, Priority, Record, RecordKind, TaskStatus};
use crate::wit::kind_from_wit;
use crate::wit::stagecraft::automation::{records, tasks, timeline};

/// Where a new record starts: its pipeline and stage (none for contacts and companies).
type Placement = (Option<String>, Option<String>);

/// A task this run created or completed, as later calls of the run see it.
#[derive(Debug, Clone)]
pub(super) struct RunTask {
    pub record: String,
    pub done: bool,
}

impl HostApi {
    /// `Err(denial)` unless the binding grants `action`.
    fn granted<T>(&mut self, action: Action) -> Option<HostResult<T>> {
        match self.grants.check(action) {
            Ok(()) => None,
            Err(message) => Some(self.deny(message)),
        }
    }

    /// Counts one more against a per-run cap; past it the run ends `create_limit`.
    fn count(&mut self, what: &str, used: u32, cap: u32) -> wasmtime::Result<()> {
        if used >= cap {
            return Err(self.trip(Outcome::CreateLimit {
                message: format!("more than {cap} {what} in one run"),
            }));
        }
        Ok(())
    }

    /// Whether `id` names a record this run created (which later calls may not change).
    pub(super) fn created_here(&self, id: &str) -> bool {
        self.created.contains_key(id)
    }

    /// The problem with `r`'s links, if any: each must name a record of the right kind,
    /// committed or pending in this run (created by it included).
    fn link_problem(&self, r: &Record) -> wasmtime::Result<Option<String>> {
        for (field, target, kind) in r.links() {
            match self.read(target)? {
                Some(t) if t.kind == kind => continue,
                Some(t) => {
                    return Ok(Some(format!(
                        "field {field:?}: record {target:?} is a {}, not a {}",
                        t.kind.as_str(),
                        kind.as_str()
                    )))
                }
                None => {
                    return Ok(Some(format!(
                        "field {field:?}: record {target:?} does not exist"
                    )))
                }
            }
        }
        Ok(None)
    }

    /// The new record's pipeline and first stage (leads and deals), or why not.
    fn placement(
        &self,
        kind: RecordKind,
        pipeline: Option<String>,
        stage: Option<String>,
    ) -> HostResult<Placement> {
        if !kind.has_pipeline() {
            if pipeline.is_some() || stage.is_some() {
                return Ok(Err(t::HostError::Invalid(format!(
                    "a {} has no pipeline or stage",
                    kind.as_str()
                ))));
            }
            return Ok(Ok((None, None)));
        }
        let Some(pid) = pipeline else {
            return Ok(Err(t::HostError::Invalid(format!(
                "a new {} needs a pipeline",
                kind.as_str()
            ))));
        };
        let Some(p) = self
            .source
            .pipeline(&pid)
            .map_err(|e| wasmtime::Error::msg(format!("storage failure: {e}")))?
        else {
            return Ok(Err(t::HostError::NotFound(format!("pipeline {pid:?}"))));
        };
        if p.kind.record_kind() != kind {
            return Ok(Err(t::HostError::Invalid(format!(
                "pipeline {pid:?} holds {}s, not {}s",
                p.kind.record_kind().as_str(),
                kind.as_str()
            ))));
        }
        let stage = match stage {
            Some(s) if p.stage(&s).is_some() => s,
            Some(s) => {
                return Ok(Err(t::HostError::Invalid(format!(
                    "stage {s:?} is not in pipeline {pid:?}"
                ))))
            }
            None => match p.stages.first() {
                Some(s) => s.id.clone(),
                None => {
                    return Ok(Err(t::HostError::Invalid(format!(
                        "pipeline {pid:?} has no stages"
                    ))))
                }
            },
        };
        Ok(Ok((Some(pid), Some(stage))))
    }

    /// `records.create`.
    pub(super) fn create_record(&mut self, spec: records::NewRecord) -> HostResult<String> {
        let kind = kind_from_wit(spec.kind);
        self.begin(
            "records.create",
            &format!("{} {}", kind.as_str(), spec.name),
        )?;
        if let Some(denied) = self.granted(Action::Create(kind.rules_kind())) {
            return denied;
        }
        self.count(
            "records created",
            self.records_created,
            self.limits.records_created,
        )?;
        let text_len = spec.name.len() + spec.fields.len();
        let fields = match self.parse_json("the new record's fields", &spec.fields) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                return self.fail(t::HostError::Invalid(format!(
                    "the new record's fields must be a JSON object, not {}",
                    crate::model::record::type_name(&other)
                )))
            }
            Err(e) => return self.fail(e),
        };
        let (pipeline, stage) = match self.placement(kind, spec.pipeline, spec.stage)? {
            Ok(p) => p,
            Err(e) => return self.fail(e),
        };
        let id = self.next_id("rec", self.event_at);
        let mut r = Record {
            id: id.clone(),
            kind,
            name: String::new(),
            email: None,
            phone: None,
            amount: None,
            currency: None,
            owner: None,
            company: None,
            contact: None,
            pipeline: pipeline.clone(),
            stage: stage.clone(),
            custom: serde_json::Map::new(),
            version: 0,
            created_at: self.event_at,
            updated_at: self.event_at,
        };
        if let Err(m) = r.set_field("name", Value::String(spec.name.clone())) {
            return self.fail(t::HostError::Invalid(m));
        }
        for (name, value) in &fields {
            if name == "name" {
                return self.fail(t::HostError::Invalid(
                    "give the new record's name as `name`, not among its fields".into(),
                ));
            }
            if let Err(m) = r.set_field(name, value.clone()) {
                return self.fail(t::HostError::Invalid(m));
            }
        }
        if let Err(m) = field::check_links(
            kind.rules_kind(),
            r.company.as_deref(),
            r.contact.as_deref(),
        ) {
            return self.fail(t::HostError::Invalid(m));
        }
        if let Err(m) = r.check_size() {
            return self.fail(t::HostError::Limit(m));
        }
        if let Some(problem) = self.link_problem(&r)? {
            return self.fail(t::HostError::Invalid(problem));
        }
        self.spend(text_len)?;
        self.records_created += 1;
        self.created.insert(id.clone(), r);
        self.effects.push(Effect::CreateRecord {
            id: id.clone(),
            kind,
            name: spec.name,
            pipeline,
            stage,
            fields,
        });
        Ok(Ok(id))
    }
}

fn priority_from_wit(p: tasks::Priority) -> Priority {
    match p {
        tasks::Priority::Low => Priority::Low,
        tasks::Priority::Normal => Priority::Normal,
        tasks::Priority::High => Priority::High,
    }
}

impl tasks::Host for HostApi {
    fn create(&mut self, spec: tasks::NewTask) -> HostResult<String> {
        self.begin("tasks.create", &format!("{}: {}", spec.record, spec.title))?;
        if let Some(denied) = self.granted(Action::CreateTask) {
            return denied;
        }
        self.count(
            "tasks created or completed",
            self.tasks_written,
            self.limits.tasks,
        )?;
        let checked = task::check_new(
            &spec.title,
            spec.description.as_deref(),
            spec.assignee.as_deref(),
            spec.due_in_seconds,
        )
        .and_then(|()| task::check_tags(&spec.tags));
        if let Err(m) = checked {
            return self.fail(t::HostError::Invalid(m));
        }
        if self.read(&spec.record)?.is_none() {
            return self.fail(t::HostError::NotFound(format!("record {:?}", spec.record)));
        }
        let text_len = spec.title.len()
            + spec.description.as_ref().map_or(0, String::len)
            + spec.assignee.as_ref().map_or(0, String::len)
            + spec.tags.iter().map(String::len).sum::<usize>();
        self.spend(text_len)?;
        self.tasks_written += 1;
        let id = self.next_id("tsk", self.event_at);
        self.run_tasks.insert(
            id.clone(),
            RunTask {
                record: spec.record.clone(),
                done: false,
            },
        );
        self.effects.push(Effect::CreateTask {
            id: id.clone(),
            record: spec.record,
            title: spec.title,
            description: spec.description,
            due_at: spec
                .due_in_seconds
                .map(|s| self.event_at + chrono::Duration::seconds(s as i64)),
            priority: priority_from_wit(spec.priority),
            assignee: spec.assignee,
            tags: spec.tags,
        });
        Ok(Ok(id))
    }

    fn complete(&mut self, id: String) -> HostResult<()> {
        self.begin("tasks.complete", &id)?;
        if let Some(denied) = self.granted(Action::CompleteTask) {
            return denied;
        }
        let task = match self.run_tasks.get(&id) {
            Some(t) => Some(t.clone()),
            None => self
                .source
                .task(&id)
                .map_err(|e| wasmtime::Error::msg(format!("storage failure: {e}")))?
                .map(|t| RunTask {
                    record: t.record,
                    done: t.status == TaskStatus::Done,
                }),
        };
        let Some(task) = task else {
            return self.fail(t::HostError::NotFound(format!("task {id:?}")));
        };
        if task.done {
            return Ok(Ok(()));
        }
        self.count(
            "tasks created or completed",
            self.tasks_written,
            self.limits.tasks,
        )?;
        self.spend(id.len())?;
        self.tasks_written += 1;
        self.run_tasks.insert(
            id.clone(),
            RunTask {
                record: task.record.clone(),
                done: true,
            },
        );
        self.effects.push(Effect::CompleteTask {
            task: id,
            record: task.record,
        });
        Ok(Ok(()))
    }
}

impl timeline::Host for HostApi {
    fn comment(&mut self, record: String, body: String) -> HostResult<String> {
        self.begin("timeline.comment", &record)?;
        if let Some(denied) = self.granted(Action::Comment) {
            return denied;
        }
        self.count("comments", self.comments, self.limits.comments)?;
        if let Err(m) = task::check_body(&body) {
            return self.fail(t::HostError::Invalid(m));
        }
        if self.read(&record)?.is_none() {
            return self.fail(t::HostError::NotFound(format!("record {record:?}")));
        }
        self.spend(body.len())?;
        self.comments += 1;
        let id = self.next_id("cmt", self.event_at);
        self.effects.push(Effect::Comment {
            id: id.clone(),
            record,
            body,
        });
        Ok(Ok(id))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::super::{HostApi, HostApiInput};
    use super::*;
    use crate::limits::Limits;
    use crate::model::{Actor, Grants, Task};
    use crate::source::MemorySource;

    fn task(id: &str, status: TaskStatus) -> Task {
        let now = Utc::now();
        Task {
            id: id.into(),
            record: "rec_1".into(),
            title: "Call".into(),
            description: None,
            due_at: None,
            priority: Priority::Normal,
            assignee: None,
            tags: Vec::new(),
            status,
            created_by: Actor::Key {
                key: "key_1".into(),
                user: None,
            },
            completed_by: None,
            completed_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn api(grants: Grants) -> HostApi {
        let mut source = MemorySource::default();
        for t in [
            task("tsk_open", TaskStatus::Open),
            task("tsk_done", TaskStatus::Done),
        ] {
            source.tasks.insert(t.id.clone(), t);
        }
        HostApi::new(HostApiInput {
            source: Arc::new(source),
            event_record: Some("rec_1".into()),
            event_at: Utc::now(),
            run_key: "run".into(),
            config: "{}".into(),
            grants,
            limits: Limits::default(),
            pending: Vec::new(),
            deleted: Vec::new(),
        })
    }

    /// Completing reads stored tasks through `RecordSource::task`: an open one is completed
    /// once, a done one stays as it is, an unknown one is not found.
    #[test]
    fn completing_reads_stored_tasks_through_the_source() {
        let mut a = api(Grants::all());
        assert!(matches!(
            tasks::Host::complete(&mut a, "tsk_open".into()),
            Ok(Ok(()))
        ));
        assert!(matches!(
            tasks::Host::complete(&mut a, "tsk_open".into()),
            Ok(Ok(()))
        ));
        assert!(matches!(
            tasks::Host::complete(&mut a, "tsk_done".into()),
            Ok(Ok(()))
        ));
        assert!(matches!(
            tasks::Host::complete(&mut a, "tsk_nope".into()),
            Ok(Err(t::HostError::NotFound(_)))
        ));
        assert_eq!(
            a.effects,
            [Effect::CompleteTask {
                task: "tsk_open".into(),
                record: "rec_1".into()
            }]
        );
        assert!(a.denied.is_none());

        let mut a = api(Grants::default());
        let r = tasks::Host::complete(&mut a, "tsk_open".into());
        assert!(matches!(r, Ok(Err(t::HostError::Denied(m))) if m.contains("\"complete:task\"")));
        assert!(a.denied.is_some() && a.effects.is_empty());
    }
}
