//! [`MockHost`]'s host API 0.2 calls (create records and tasks, complete tasks, comment),
//! following the host's own rules: the grant by name first (`stagecraft_rules::grant`), then
//! the shared field and task bounds (`stagecraft_rules::field`, `stagecraft_rules::task`),
//! then that the records involved exist. Per-run caps are not simulated.

use serde_json::Value;
use stagecraft_rules::{task, Action};

use super::{apply_field, record, rules_kind, Effect, MockHost, MockTask};
use crate::convert::parse_value;
use crate::create::{NewRecord, NewTask};
use crate::types::{HostError, RecordKind};

impl MockHost {
    fn granted(&mut self, action: Action) -> Result<(), HostError> {
        stagecraft_rules::grant::check(&self.grants, action).map_err(|m| self.deny(m))
    }

    fn exists(&self, id: &str) -> Result<(), HostError> {
        match self.records.contains_key(id) {
            true => Ok(()),
            false => Err(HostError::NotFound(format!("record {id:?} not found"))),
        }
    }

    pub(super) fn mock_create_record(&mut self, new: &NewRecord) -> Result<String, HostError> {
        self.granted(Action::Create(rules_kind(new.kind)))?;
        let fields = Value::Object(new.fields.clone());
        // The host receives the fields as JSON text and checks it like any stored value.
        let fields = parse_value("the new record's fields", &fields.to_string())
            .map_err(HostError::Invalid)?;
        stagecraft_rules::value::check("the new record's fields", &fields)
            .map_err(|e| HostError::Limit(e.to_string()))?;
        let has_pipeline = matches!(new.kind, RecordKind::Lead | RecordKind::Deal);
        let stage = if !has_pipeline {
            if new.pipeline.is_some() || new.stage.is_some() {
                return Err(HostError::Invalid(format!(
                    "a {} has no pipeline or stage",
                    new.kind.as_str()
                )));
            }
            None
        } else {
            let Some(p) = &new.pipeline else {
                return Err(HostError::Invalid(format!(
                    "a new {} needs a pipeline",
                    new.kind.as_str()
                )));
            };
            // Declared pipelines check the stage (and give the first); others accept any.
            match (self.pipelines.get(p), &new.stage) {
                (Some(stages), Some(s)) if !stages.contains(s) => {
                    return Err(HostError::Invalid(format!(
                        "stage {s:?} is not in pipeline {p:?}"
                    )))
                }
                (Some(stages), None) => stages.first().cloned(),
                (_, s) => s.clone(),
            }
        };
        let id = self.fresh_id("rec");
        let mut r = record(&id, new.kind, "");
        r.pipeline = new.pipeline.clone();
        r.stage = stage;
        apply_field(&mut r, "name", Value::String(new.name.clone())).map_err(HostError::Invalid)?;
        for (name, value) in &new.fields {
            if name == "name" {
                return Err(HostError::Invalid(
                    "give the new record's name as `name`, not among its fields".into(),
                ));
            }
            apply_field(&mut r, name, value.clone()).map_err(HostError::Invalid)?;
        }
        stagecraft_rules::value::check_custom(&r.custom)
            .map_err(|e| HostError::Limit(format!("record {id:?}: {e}")))?;
        for (field, target, kind) in [
            ("company", &r.company, RecordKind::Company),
            ("contact", &r.contact, RecordKind::Contact),
        ] {
            let Some(target) = target else { continue };
            match self.records.get(target) {
                Some(t) if t.kind == kind => {}
                Some(t) => {
                    return Err(HostError::Invalid(format!(
                        "field {field:?}: record {target:?} is a {}, not a {}",
                        t.kind.as_str(),
                        kind.as_str()
                    )))
                }
                None => {
                    return Err(HostError::Invalid(format!(
                        "field {field:?}: record {target:?} does not exist"
                    )))
                }
            }
        }
        self.created.insert(id.clone());
        self.records.insert(id.clone(), r.clone());
        self.effects.push(Effect::CreateRecord {
            id: id.clone(),
            record: r,
        });
        Ok(id)
    }

    pub(super) fn mock_create_task(&mut self, new: &NewTask) -> Result<String, HostError> {
        self.granted(Action::CreateTask)?;
        task::check_new(
            &new.title,
            new.description.as_deref(),
            new.assignee.as_deref(),
            new.due_in_seconds,
        )
        .and_then(|()| task::check_tags(&new.tags))
        .map_err(HostError::Invalid)?;
        self.exists(&new.record)?;
        let id = self.fresh_id("tsk");
        self.tasks.insert(
            id.clone(),
            MockTask {
                record: new.record.clone(),
                done: false,
            },
        );
        self.effects.push(Effect::CreateTask {
            id: id.clone(),
            task: new.clone(),
        });
        Ok(id)
    }

    pub(super) fn mock_complete_task(&mut self, id: &str) -> Result<(), HostError> {
        self.granted(Action::CompleteTask)?;
        let Some(t) = self.tasks.get_mut(id) else {
            return Err(HostError::NotFound(format!("task {id:?}")));
        };
        if t.done {
            return Ok(());
        }
        t.done = true;
        self.effects
            .push(Effect::CompleteTask { id: id.to_string() });
        Ok(())
    }

    pub(super) fn mock_comment(&mut self, record: &str, body: &str) -> Result<String, HostError> {
        self.granted(Action::Comment)?;
        task::check_body(body).map_err(HostError::Invalid)?;
        self.exists(record)?;
        let id = self.fresh_id("cmt");
        self.effects.push(Effect::Comment {
            id: id.clone(),
            record: record.to_string(),
            body: body.to_string(),
        });
        Ok(id)
    }
}

/// The grant a name stands for, or a panic naming the valid ones (a test's own mistake).
pub(super) fn action(name: &str) -> Action {
    Action::parse(name).unwrap_or_else(|| {
        panic!(
            "unknown grant {name:?}; grants are {}",
            Action::ALL.map(Action::name).join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::prelude::*;
    use crate::testing::{self, Effect, MockHost};

    /// Converts a qualified lead: company, contact linked to it, deal linked to both, a task
    /// and a comment; then completes the task.
    struct Convert;
    impl Rule for Convert {
        fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
            let lead = event.record()?;
            let company = ctx.create_record(NewRecord::company("Engines Ltd"))?;
            let contact = ctx.create_record(
                NewRecord::contact(&lead.name)
                    .field("email", "ada@example.com")
                    .link_company(&company),
            )?;
            let deal = ctx.create_record(
                NewRecord::deal("deals", format!("{} deal", lead.name))
                    .link_company(&company)
                    .link_contact(&contact),
            )?;
            let task = ctx.create_task(NewTask::new(&deal, "Kickoff call").due_in(3600))?;
            ctx.comment(&lead.id, format!("converted to {deal}"))?;
            ctx.complete_task(&task)?;
            Ok(())
        }
    }

    /// One rule body, run by `Once`.
    type Op = fn(&mut Ctx<'_>) -> Result<(), HostError>;

    fn host() -> MockHost {
        MockHost::new().with_pipeline("deals", &["open", "won"])
    }

    fn lead() -> Event {
        Event::created(testing::lead("l1", "Ada", "sales", "qualified"))
    }

    #[test]
    fn granted_calls_create_link_and_complete() {
        let mut h = host()
            .with_grant("create:company")
            .with_grant("create:contact")
            .with_grant("create:deal")
            .with_grant("create:task")
            .with_grant("complete:task")
            .with_grant("comment");
        h.run::<Convert>(&lead()).unwrap();
        let kinds: Vec<&str> = h
            .effects
            .iter()
            .map(|e| match e {
                Effect::CreateRecord { record, .. } => record.kind.as_str(),
                Effect::CreateTask { .. } => "task",
                Effect::Comment { .. } => "comment",
                Effect::CompleteTask { .. } => "complete",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["company", "contact", "deal", "task", "comment", "complete"]
        );
        let Some(Effect::CreateRecord { id, record }) = h.effects.get(2) else {
            panic!("{:?}", h.effects)
        };
        assert_eq!(record.stage.as_deref(), Some("open"));
        assert!(record.company.is_some() && record.contact.is_some());
        assert_eq!(h.record(id), Some(record));
        assert!(h.tasks.values().all(|t| t.done));
    }

    #[test]
    fn each_call_is_denied_by_the_grant_it_lacks_and_the_run_rolls_back() {
        let mut h = host()
            .with_grant("create:company")
            .with_grant("create:contact");
        let e = h.run::<Convert>(&lead()).unwrap_err();
        assert!(e.contains("\"create:deal\" grant"), "{e}");
        assert!(h.effects.is_empty());
        assert!(h.tasks.is_empty());
    }

    #[test]
    fn bounds_and_links_follow_the_host_rules() {
        let mut h = host()
            .with_grant("create:deal")
            .with_grant("create:contact")
            .with_grant("create:task")
            .with_grant("comment")
            .with_record(testing::company("c1", "Acme"));
        let mut ctx_run = |f: Op| {
            struct Once;
            thread_local! {
                static F: std::cell::Cell<Option<Op>> = const { std::cell::Cell::new(None) };
            }
            impl Rule for Once {
                fn handle(ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> {
                    let f = F.with(|f| f.get()).ok_or("no op")?;
                    f(ctx).map_err(|e| e.to_string())
                }
            }
            F.with(|c| c.set(Some(f)));
            h.run::<Once>(&lead())
        };
        let long = |ctx: &mut Ctx<'_>| {
            ctx.create_task(NewTask::new("l1", "t".repeat(256)))
                .map(drop)
        };
        assert!(ctx_run(long).unwrap_err().contains("255"));
        let blank = |ctx: &mut Ctx<'_>| ctx.comment("l1", " ").map(drop);
        assert!(ctx_run(blank).unwrap_err().starts_with("invalid"));
        let missing = |ctx: &mut Ctx<'_>| ctx.comment("nope", "hi").map(drop);
        assert!(ctx_run(missing).unwrap_err().starts_with("not found"));
        let bad_link = |ctx: &mut Ctx<'_>| {
            ctx.create_record(NewRecord::deal("deals", "D").link_contact("c1"))
                .map(drop)
        };
        assert!(ctx_run(bad_link).unwrap_err().contains("is a company"));
        let no_pipeline = |ctx: &mut Ctx<'_>| {
            let mut d = NewRecord::deal("deals", "D");
            d.pipeline = None;
            ctx.create_record(d).map(drop)
        };
        assert!(ctx_run(no_pipeline)
            .unwrap_err()
            .contains("needs a pipeline"));
        let frozen = |ctx: &mut Ctx<'_>| {
            let id = ctx.create_record(NewRecord::contact("Bob"))?;
            ctx.set_field(&id, "score", &json!(1))
        };
        assert!(ctx_run(frozen).unwrap_err().contains("created by this run"));
        let unknown_task = |ctx: &mut Ctx<'_>| ctx.complete_task("tsk-x");
        assert!(ctx_run(unknown_task).unwrap_err().contains("denied"));
    }
}
