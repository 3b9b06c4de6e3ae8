//! lead-scoring: on lead created/updated, score it from configurable rules (job title, company
//! size, source, email domain) into a field; when the score passes the threshold, assign an
//! owner from the team (least busy, or round robin), move the lead to the qualified stage and
//! notify the owner; with `call_within_hours` set, also give the owner a "Call within N h"
//! task on the lead, due N hours after the event (host API 0.2).
//!
//! Config (every key optional):
//! ```json
//! {"title_points": {"cto": 30, "vp": 20}, "size_points": [{"min": 100, "points": 15}],
//!  "source_points": {"referral": 25}, "domain_points": {"gmail.com": -15},
//!  "threshold": 50, "team": ["ann", "bob"], "assign": "least_busy",
//!  "qualified_stage": "qualified", "score_field": "score", "call_within_hours": 24}
//! ```
//! Reads custom fields `job_title`, `company_size`, `source` and the core `email`.
//! Grants needed: fields `score` (the score field) and `owner`; channel `notify`; and
//! `create:task` when `call_within_hours` is set (unset by default, so a binding granted
//! only the 0.1 calls keeps working).

use std::collections::BTreeMap;

use serde::Deserialize;
use stagecraft_sdk::prelude::*;

/// Points for a company of at least `min` people.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
pub struct SizeRule {
    pub min: u64,
    pub points: i64,
}

/// How a qualified lead gets its owner.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, ConfigSchema)]
#[serde(rename_all = "snake_case")]
pub enum Assign {
    #[default]
    LeastBusy,
    RoundRobin,
}

/// How lead-scoring scores, assigns and qualifies leads. Every key is optional.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Points per word in the job title (lowercase), e.g. {"cto": 30}.
    pub title_points: BTreeMap<String, i64>,
    /// First rule (highest `min` first) the company size reaches wins.
    pub size_points: Vec<SizeRule>,
    /// Points per lead source, e.g. {"referral": 25}.
    pub source_points: BTreeMap<String, i64>,
    /// Points per email domain, e.g. {"gmail.com": -15}.
    pub domain_points: BTreeMap<String, i64>,
    /// The score at which a lead qualifies (default 50).
    pub threshold: i64,
    /// Users qualified leads are assigned to.
    pub team: Vec<String>,
    /// Least busy team member first, or in turn.
    pub assign: Assign,
    /// The stage qualified leads move to (default "qualified").
    pub qualified_stage: String,
    /// The custom field the score is written to (default "score").
    pub score_field: String,
    /// Give the new owner a "Call within N h" task on the lead, due in N hours (needs the
    /// `create:task` grant). Unset: no task.
    #[config(minimum = 1, maximum = 8784)]
    pub call_within_hours: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            title_points: BTreeMap::from([
                ("cto".into(), 30),
                ("ceo".into(), 30),
                ("vp".into(), 20),
                ("head".into(), 15),
                ("manager".into(), 10),
            ]),
            size_points: vec![
                SizeRule {
                    min: 1000,
                    points: 25,
                },
                SizeRule {
                    min: 100,
                    points: 15,
                },
                SizeRule { min: 10, points: 5 },
            ],
            source_points: BTreeMap::from([("referral".into(), 25), ("webinar".into(), 15)]),
            domain_points: BTreeMap::from([("gmail.com".into(), -15), ("yahoo.com".into(), -15)]),
            threshold: 50,
            team: Vec::new(),
            assign: Assign::LeastBusy,
            qualified_stage: "qualified".into(),
            score_field: "score".into(),
            call_within_hours: None,
        }
    }
}

/// The score and the reasons behind it, from the record's fields alone.
pub fn score(config: &Config, lead: &Record) -> (i64, Vec<String>) {
    let mut total = 0;
    let mut why = Vec::new();
    if let Some(title) = lead.custom_field::<String>("job_title") {
        let title = title.to_lowercase();
        if let Some((k, p)) = config
            .title_points
            .iter()
            .filter(|(k, _)| title.contains(k.as_str()))
            .max_by_key(|(_, p)| **p)
        {
            total += p;
            why.push(format!("title {k} {p:+}"));
        }
    }
    if let Some(size) = lead.custom_field::<u64>("company_size") {
        let mut rules = config.size_points.clone();
        rules.sort_by_key(|r| std::cmp::Reverse(r.min));
        if let Some(r) = rules.iter().find(|r| size >= r.min) {
            total += r.points;
            why.push(format!("size {size} {:+}", r.points));
        }
    }
    if let Some(source) = lead.custom_field::<String>("source") {
        if let Some(p) = config.source_points.get(&source.to_lowercase()) {
            total += p;
            why.push(format!("source {source} {p:+}"));
        }
    }
    if let Some(domain) = lead
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d.to_lowercase())
    {
        if let Some(p) = config.domain_points.get(&domain) {
            total += p;
            why.push(format!("domain {domain} {p:+}"));
        }
    }
    (total, why)
}

/// Picks an owner from the team by current load (or in turn).
fn pick_owner(ctx: &mut Ctx<'_>, config: &Config, lead: &Record) -> Result<Option<String>, String> {
    if config.team.is_empty() {
        return Ok(None);
    }
    let mut loads = Vec::new();
    for member in &config.team {
        let mut filter = Filter::default()
            .of_kind(RecordKind::Lead)
            .owned_by(member.clone());
        if let Some(p) = &lead.pipeline {
            filter = filter.in_pipeline(p.clone());
        }
        loads.push(ctx.find(&filter, 100)?.len());
    }
    let index = match config.assign {
        Assign::LeastBusy => loads
            .iter()
            .enumerate()
            .min_by_key(|(i, n)| (**n, *i))
            .map_or(0, |(i, _)| i),
        Assign::RoundRobin => loads.iter().sum::<usize>() % config.team.len(),
    };
    Ok(config.team.get(index).cloned())
}

/// The task a newly assigned owner gets: call the lead within `hours`.
pub fn call_task(lead: &Record, owner: &str, hours: u64) -> NewTask {
    NewTask::new(&lead.id, format!("Call within {hours} h"))
        .description(format!(
            "{} was qualified and assigned to you: call them within {hours} hours.",
            lead.name
        ))
        .due_in(hours * 3600)
        .priority(Priority::High)
        .assignee(owner)
        .tag("call")
}

pub struct LeadScoring;

impl Rule for LeadScoring {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config: Config = ctx.config()?;
        let lead = ctx.get(&event.record()?.id)?;
        if lead.kind != RecordKind::Lead {
            return Ok(());
        }
        let (points, why) = score(&config, &lead);
        ctx.info(format!(
            "{} scores {points} ({})",
            lead.id,
            if why.is_empty() {
                "no signals".into()
            } else {
                why.join(", ")
            }
        ));
        if lead.custom_field::<i64>(&config.score_field) != Some(points) {
            ctx.set_field(&lead.id, &config.score_field, &points)?;
        }
        if points < config.threshold
            || lead.owner.is_some()
            || lead.in_stage(&config.qualified_stage)
        {
            return Ok(());
        }
        let Some(owner) = pick_owner(ctx, &config, &lead)? else {
            ctx.warn("qualified, but the config has no team to assign to");
            return Ok(());
        };
        ctx.set_field(&lead.id, "owner", &owner)?;
        ctx.move_to(&lead.id, &config.qualified_stage)?;
        ctx.queue(
            Message::notify(
                owner.clone(),
                "New qualified lead",
                format!("{} (score {points}) is yours", lead.name),
            )
            .idempotency_key(format!("lead-scoring/assigned/{}", lead.id)),
        )?;
        if let Some(hours) = config.call_within_hours {
            ctx.create_task(call_task(&lead, &owner, hours))?;
        }
        Ok(())
    }
}

stagecraft_sdk::export_rule!(LeadScoring);
stagecraft_sdk::export_config_schema!(Config);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stagecraft_sdk::testing::{self, Effect, MockHost};

    fn lead(id: &str, title: &str, size: u64, source: &str, email: &str) -> Record {
        let mut r = testing::lead(id, "Lead", "leads", "new");
        r.email = Some(email.into());
        r.custom.insert("job_title".into(), json!(title));
        r.custom.insert("company_size".into(), json!(size));
        r.custom.insert("source".into(), json!(source));
        r
    }

    #[test]
    fn scores_from_every_signal() {
        let c = Config::default();
        let (s, why) = score(&c, &lead("l1", "VP Sales", 250, "Referral", "x@acme.io"));
        assert_eq!(s, 20 + 15 + 25);
        assert_eq!(why.len(), 3);
        let (s, _) = score(&c, &lead("l2", "intern", 5, "ads", "x@gmail.com"));
        assert_eq!(s, -15);
    }

    #[test]
    fn hot_leads_go_to_the_least_busy_member() -> Result<(), String> {
        let mut busy = testing::lead("other", "Other", "leads", "qualified");
        busy.owner = Some("ann".into());
        let mut host = MockHost::new()
            .with_record(busy)
            .with_record(lead("l1", "CTO", 2000, "referral", "cto@acme.io"))
            .with_config(r#"{"team": ["ann", "bob"]}"#)
            .with_pipeline("leads", &["new", "contacted", "qualified", "converted"]);
        host.run::<LeadScoring>(&Event::created(lead(
            "l1",
            "CTO",
            2000,
            "referral",
            "cto@acme.io",
        )))?;
        let l1 = host.record("l1").ok_or("no l1")?;
        assert_eq!(l1.owner.as_deref(), Some("bob"));
        assert!(l1.in_stage("qualified"));
        assert_eq!(l1.custom_field::<i64>("score"), Some(80));
        assert_eq!(host.queued()[0].to, "bob");
        Ok(())
    }

    fn hot_host(config: &str) -> MockHost {
        MockHost::new()
            .with_record(lead("l1", "CTO", 2000, "referral", "cto@acme.io"))
            .with_config(config)
    }

    fn hot_event() -> Event {
        Event::created(lead("l1", "CTO", 2000, "referral", "cto@acme.io"))
    }

    #[test]
    fn the_new_owner_gets_a_call_task() -> Result<(), String> {
        let mut host =
            hot_host(r#"{"team": ["ann"], "call_within_hours": 24}"#).with_grant("create:task");
        host.run::<LeadScoring>(&hot_event())?;
        let tasks: Vec<&NewTask> = host
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::CreateTask { task, .. } => Some(task),
                _ => None,
            })
            .collect();
        assert_eq!(tasks.len(), 1, "{:?}", host.effects);
        let t = tasks[0];
        assert_eq!(t.record, "l1");
        assert_eq!(t.title, "Call within 24 h");
        assert_eq!(t.assignee.as_deref(), Some("ann"));
        assert_eq!(t.due_in_seconds, Some(86_400));
        assert_eq!(t.priority, Priority::High);
        assert_eq!(t.tags, vec!["call".to_string()]);
        // Assigned once, so a later run (the lead has an owner now) adds no second task.
        let assigned = host.record("l1").cloned().ok_or("no l1")?;
        host.run::<LeadScoring>(&Event::updated(assigned, &["source"]))?;
        assert_eq!(host.tasks.len(), 1);
        Ok(())
    }

    #[test]
    fn no_call_task_unless_configured() -> Result<(), String> {
        let mut host = hot_host(r#"{"team": ["ann"]}"#);
        host.run::<LeadScoring>(&hot_event())?;
        assert!(host.tasks.is_empty());
        assert_eq!(
            host.record("l1").and_then(|r| r.owner.clone()).as_deref(),
            Some("ann")
        );
        Ok(())
    }

    #[test]
    fn a_call_task_without_its_grant_fails_the_run_by_name() {
        let mut host = hot_host(r#"{"team": ["ann"], "call_within_hours": 24}"#);
        let err = host.run::<LeadScoring>(&hot_event()).unwrap_err();
        assert!(err.contains("create:task"), "{err}");
        assert!(
            host.effects.is_empty(),
            "nothing applies: {:?}",
            host.effects
        );
        assert!(host.record("l1").is_some_and(|r| r.owner.is_none()));
    }

    #[test]
    fn round_robin_counts_assigned_leads() -> Result<(), String> {
        let mut a = testing::lead("a", "A", "leads", "qualified");
        a.owner = Some("ann".into());
        let mut host = MockHost::new().with_record(a).with_config(
            r#"{"team": ["ann", "bob", "cy"], "assign": "round_robin", "threshold": 0}"#,
        );
        host.run::<LeadScoring>(&Event::created(testing::lead("l1", "L", "leads", "new")))?;
        assert_eq!(
            host.record("l1").and_then(|r| r.owner.clone()).as_deref(),
            Some("bob")
        );
        Ok(())
    }

    #[test]
    fn cold_leads_only_get_a_score() -> Result<(), String> {
        let cold = lead("l1", "student", 1, "ads", "kid@gmail.com");
        let mut host = MockHost::new()
            .with_record(cold.clone())
            .with_config(r#"{"team": ["ann"]}"#);
        host.run::<LeadScoring>(&Event::created(cold))?;
        assert_eq!(
            host.effects,
            vec![Effect::SetField {
                record: "l1".into(),
                name: "score".into(),
                value: json!(-15)
            }]
        );
        Ok(())
    }

    #[test]
    fn bad_config_names_the_problem() {
        let l = testing::lead("l1", "L", "leads", "new");
        let mut host = MockHost::new()
            .with_record(l.clone())
            .with_config(r#"{"treshold": 3}"#);
        let err = host.run::<LeadScoring>(&Event::created(l)).unwrap_err();
        assert!(err.contains("treshold"), "{err}");
    }
}
