//! lead-to-deal, the conversion automation of the Bitrix24 guide (host API 0.2): when a lead
//! reaches the qualified stage, create its contact, its company (when new) and a deal linked
//! to both, give the lead's owner a discovery-call task on the deal, mark the lead with the
//! deal's id and say so on the lead's timeline.
//!
//! It never creates duplicates when it runs again: a lead that carries `converted_deal` is
//! left alone, the contact is looked up by email (case-insensitive) among the tenant's
//! contacts and the company by name, and an existing one is linked instead of a new one.
//! The lookups see the first 100 contacts and companies (`records.find`'s cap; the host API
//! has no find by email yet), so in a larger tenant an older contact with the same email can
//! be missed.
//!
//! Config (every key optional):
//! ```json
//! {"stage": "qualified", "deal_pipeline": "deals", "company_field": "company_name",
//!  "call_within_hours": 24}
//! ```
//! Bind to: leads, `entered_stage` qualified. Grants needed: `create:contact`,
//! `create:company`, `create:deal`, `create:task`, `comment`; field `converted_deal`.

use serde::Deserialize;
use stagecraft_sdk::prelude::*;

/// The lead field that marks a converted lead with its deal's id.
pub const CONVERTED: &str = "converted_deal";

/// When a lead is converted, and into what. Every key is optional.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The stage whose entry converts a lead (default "qualified").
    pub stage: String,
    /// The deal pipeline new deals start in (its first stage; default "deals").
    pub deal_pipeline: String,
    /// The lead's custom field that names its company (default "company_name").
    pub company_field: String,
    /// The owner's discovery-call task falls due this many hours after the conversion
    /// (default 24).
    #[config(minimum = 1, maximum = 8784)]
    pub call_within_hours: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stage: "qualified".into(),
            deal_pipeline: "deals".into(),
            company_field: "company_name".into(),
            call_within_hours: 24,
        }
    }
}

/// The first record of `kind` (among the first 100) for which `same` holds.
fn existing(
    ctx: &mut Ctx<'_>,
    kind: RecordKind,
    same: impl Fn(&Record) -> bool,
) -> Result<Option<String>, HostError> {
    let found = ctx.find(&Filter::default().of_kind(kind), 100)?;
    Ok(found.into_iter().find(|r| same(r)).map(|r| r.id))
}

/// The company named `name`: an existing one, or a new one.
fn company(ctx: &mut Ctx<'_>, name: &str) -> Result<String, HostError> {
    let same = |r: &Record| r.name.trim().eq_ignore_ascii_case(name.trim());
    match existing(ctx, RecordKind::Company, same)? {
        Some(id) => Ok(id),
        None => ctx.create_record(NewRecord::company(name.trim())),
    }
}

/// The lead's contact: the one with its email, or a new one (linked to `company`).
fn contact(ctx: &mut Ctx<'_>, lead: &Record, company: Option<&str>) -> Result<String, HostError> {
    if let Some(email) = &lead.email {
        let same = |r: &Record| {
            r.email
                .as_ref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        };
        if let Some(id) = existing(ctx, RecordKind::Contact, same)? {
            return Ok(id);
        }
    }
    let mut new = NewRecord::contact(lead.name.as_str());
    if let Some(e) = &lead.email {
        new = new.field("email", e);
    }
    if let Some(p) = &lead.phone {
        new = new.field("phone", p);
    }
    if let Some(co) = company {
        new = new.link_company(co);
    }
    ctx.create_record(new)
}

pub struct LeadToDeal;

impl Rule for LeadToDeal {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config: Config = ctx.config()?;
        if event.entered_stage() != Some(config.stage.as_str()) {
            return Ok(());
        }
        let lead = ctx.get(&event.record()?.id)?;
        if lead.kind != RecordKind::Lead {
            return Ok(());
        }
        if let Some(deal) = lead.custom_value(CONVERTED) {
            ctx.info(format!("{} was converted already (deal {deal})", lead.id));
            return Ok(());
        }
        let company_name = lead
            .custom_field::<String>(&config.company_field)
            .filter(|n| !n.trim().is_empty());
        let company = match company_name {
            Some(name) => Some(company(ctx, &name)?),
            None => None,
        };
        let contact = contact(ctx, &lead, company.as_deref())?;
        let mut deal = NewRecord::deal(&config.deal_pipeline, format!("{} deal", lead.name))
            .link_contact(&contact);
        if let Some(co) = &company {
            deal = deal.link_company(co);
        }
        if let Some(owner) = &lead.owner {
            deal = deal.field("owner", owner);
        }
        let deal = ctx.create_record(deal)?;
        let hours = config.call_within_hours;
        let mut call = NewTask::new(&deal, format!("Discovery call with {}", lead.name))
            .due_in(hours * 3600)
            .priority(Priority::High)
            .tag("discovery");
        if let Some(owner) = &lead.owner {
            call = call.assignee(owner);
        }
        ctx.create_task(call)?;
        ctx.set_field(&lead.id, CONVERTED, &deal)?;
        ctx.comment(
            &lead.id,
            format!("Converted: contact {contact}, deal {deal}"),
        )?;
        ctx.info(format!("{} converted to deal {deal}", lead.id));
        Ok(())
    }
}

stagecraft_sdk::export_rule!(LeadToDeal);
stagecraft_sdk::export_config_schema!(Config);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stagecraft_sdk::testing::{self, Effect, MockHost};

    const GRANTS: &[&str] = &[
        "create:contact",
        "create:company",
        "create:deal",
        "create:task",
        "comment",
    ];

    fn lead() -> Record {
        let mut l = testing::lead("l1", "Ada Lovelace", "leads", "qualified");
        l.email = Some("ada@engines.example".into());
        l.phone = Some("+44 20 0000".into());
        l.owner = Some("ann".into());
        l.custom
            .insert("company_name".into(), json!("Analytical Engines"));
        l
    }

    fn host() -> MockHost {
        GRANTS
            .iter()
            .fold(MockHost::new(), |h, g| h.with_grant(g))
            .with_record(lead())
            .with_pipeline("deals", &["new", "negotiation", "won", "lost"])
    }

    fn qualified() -> Event {
        Event::stage_changed(lead(), "contacted", "qualified")
    }

    fn created(host: &MockHost) -> Vec<&Record> {
        host.effects
            .iter()
            .filter_map(|e| match e {
                Effect::CreateRecord { record, .. } => Some(record),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn converts_a_qualified_lead() -> Result<(), String> {
        let mut host = host();
        host.run::<LeadToDeal>(&qualified())?;
        let made = created(&host);
        assert_eq!(made.len(), 3, "{:?}", host.effects);
        let (company, contact, deal) = (made[0], made[1], made[2]);
        assert_eq!(company.kind, RecordKind::Company);
        assert_eq!(company.name, "Analytical Engines");
        assert_eq!(contact.kind, RecordKind::Contact);
        assert_eq!(contact.email.as_deref(), Some("ada@engines.example"));
        assert_eq!(contact.phone.as_deref(), Some("+44 20 0000"));
        assert_eq!(contact.company.as_ref(), Some(&company.id));
        assert_eq!(deal.kind, RecordKind::Deal);
        assert_eq!(deal.stage.as_deref(), Some("new"));
        assert_eq!(deal.contact.as_ref(), Some(&contact.id));
        assert_eq!(deal.company.as_ref(), Some(&company.id));
        assert_eq!(deal.owner.as_deref(), Some("ann"));
        let deal_id = deal.id.clone();

        let task = host.effects.iter().find_map(|e| match e {
            Effect::CreateTask { task, .. } => Some(task),
            _ => None,
        });
        let task = task.ok_or("no task")?;
        assert_eq!(task.record, deal_id);
        assert_eq!(task.title, "Discovery call with Ada Lovelace");
        assert_eq!(task.assignee.as_deref(), Some("ann"));
        assert_eq!(task.due_in_seconds, Some(24 * 3600));
        let l1 = host.record("l1").ok_or("no l1")?;
        assert_eq!(l1.custom_value(CONVERTED), Some(&json!(deal_id)));
        assert!(host.effects.iter().any(|e| matches!(e,
            Effect::Comment { record, body, .. } if record == "l1" && body.contains(&deal_id))));
        Ok(())
    }

    #[test]
    fn running_again_creates_nothing() -> Result<(), String> {
        let mut host = host();
        host.run::<LeadToDeal>(&qualified())?;
        let before = host.effects.len();
        host.run::<LeadToDeal>(&qualified())?;
        assert_eq!(host.effects.len(), before, "{:?}", host.effects);
        assert!(host
            .logs
            .iter()
            .any(|(_, m)| m.contains("converted already")));
        Ok(())
    }

    #[test]
    fn an_existing_contact_and_company_are_linked_not_copied() -> Result<(), String> {
        let mut host = host()
            .with_record(testing::contact("c1", "Ada L.", "ADA@engines.example"))
            .with_record(testing::company("co1", "analytical engines "));
        host.run::<LeadToDeal>(&qualified())?;
        let made = created(&host);
        assert_eq!(made.len(), 1, "only the deal: {:?}", host.effects);
        assert_eq!(made[0].kind, RecordKind::Deal);
        assert_eq!(made[0].contact.as_deref(), Some("c1"));
        assert_eq!(made[0].company.as_deref(), Some("co1"));
        Ok(())
    }

    #[test]
    fn a_lead_without_company_or_email_still_converts() -> Result<(), String> {
        let mut bare = testing::lead("l1", "Grace", "leads", "qualified");
        bare.owner = None;
        let mut host = host().with_record(bare.clone());
        host.run::<LeadToDeal>(&Event::stage_changed(bare, "new", "qualified"))?;
        let made = created(&host);
        let kinds: Vec<RecordKind> = made.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [RecordKind::Contact, RecordKind::Deal]);
        assert!(made[0].email.is_none() && made[1].company.is_none());
        Ok(())
    }

    #[test]
    fn other_events_and_stages_are_ignored() -> Result<(), String> {
        let mut host = host();
        host.run::<LeadToDeal>(&Event::created(lead()))?;
        host.run::<LeadToDeal>(&Event::stage_changed(lead(), "new", "contacted"))?;
        let mut config = host.clone().with_config(r#"{"stage": "won"}"#);
        config.run::<LeadToDeal>(&qualified())?;
        assert!(host.effects.is_empty() && config.effects.is_empty());
        Ok(())
    }

    #[test]
    fn each_missing_grant_fails_the_run_by_name_with_nothing_applied() {
        for missing in GRANTS {
            let mut host = GRANTS
                .iter()
                .filter(|g| *g != missing)
                .fold(MockHost::new(), |h, g| h.with_grant(g))
                .with_record(lead());
            let err = host.run::<LeadToDeal>(&qualified()).unwrap_err();
            assert!(err.contains(&format!("{missing:?}")), "{missing}: {err}");
            assert!(host.effects.is_empty(), "{missing}: {:?}", host.effects);
            assert!(host
                .record("l1")
                .is_some_and(|l| l.custom_value(CONVERTED).is_none()));
        }
    }

    #[test]
    fn bad_config_names_the_problem() {
        let mut host = host().with_config(r#"{"stag": "won"}"#);
        let err = host.run::<LeadToDeal>(&qualified()).unwrap_err();
        assert!(err.contains("stag"), "{err}");
    }
}
