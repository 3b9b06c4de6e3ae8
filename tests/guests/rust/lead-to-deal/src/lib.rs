//! lead-to-deal, the conversion automation of the Bitrix24 guide (issue 19's new example;
//! it lives with the test guests until bindings may be granted creates, then moves to
//! `examples/` and the demo): when a lead reaches `qualified`, create its contact, its
//! company (when new) and a deal linked to both, a kickoff task for the lead's owner, and a
//! comment on the lead saying what it became.
//!
//! It never creates duplicates when it runs again: the contact is looked up by email among
//! the tenant's contacts (at most `records.find`'s 100: a find by email needs a store index,
//! issue 17) and the company by name, and a lead that carries `converted_deal` is skipped.
//! Config: `{"deal_pipeline": "deals", "stage": "qualified", "company_field": "company_name"}`.
//! Grants: `create:contact`, `create:company`, `create:deal`, `create:task`, `comment`, and
//! the field `converted_deal`.

use stagecraft_sdk::prelude::*;

struct LeadToDeal;

fn text<'a>(config: &'a serde_json::Value, key: &str, default: &'a str) -> &'a str {
    config[key].as_str().unwrap_or(default)
}

/// The first record of `kind` for which `same` holds, among the first 100.
fn existing(
    ctx: &mut Ctx<'_>,
    kind: RecordKind,
    same: impl Fn(&Record) -> bool,
) -> Result<Option<String>, HostError> {
    let filter = Filter {
        kind: Some(kind),
        ..Filter::default()
    };
    Ok(ctx
        .find(&filter, 100)?
        .into_iter()
        .find(|r| same(r))
        .map(|r| r.id))
}

impl Rule for LeadToDeal {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config = ctx.config_value();
        if event.entered_stage() != Some(text(&config, "stage", "qualified")) {
            return Ok(());
        }
        let lead = ctx.get(&event.record()?.id)?;
        if lead.custom_value("converted_deal").is_some() {
            ctx.info(format!("{} was converted already", lead.id));
            return Ok(());
        }
        let company_name = lead
            .custom_field::<String>(text(&config, "company_field", "company_name"))
            .filter(|n| !n.trim().is_empty());
        let company = match company_name {
            None => None,
            Some(name) => Some(
                match existing(ctx, RecordKind::Company, |r| r.name == name)? {
                    Some(id) => id,
                    None => ctx.create_record(NewRecord::company(name.as_str()))?,
                },
            ),
        };
        let email = lead.email.clone();
        let found = match &email {
            Some(e) => existing(ctx, RecordKind::Contact, |r| r.email.as_ref() == Some(e))?,
            None => None,
        };
        let contact = match found {
            Some(id) => id,
            None => {
                let mut c = NewRecord::contact(lead.name.as_str());
                if let Some(e) = &email {
                    c = c.field("email", e);
                }
                if let Some(p) = &lead.phone {
                    c = c.field("phone", p);
                }
                if let Some(co) = &company {
                    c = c.link_company(co);
                }
                ctx.create_record(c)?
            }
        };
        let mut deal = NewRecord::deal(
            text(&config, "deal_pipeline", "deals"),
            format!("{} deal", lead.name),
        )
        .link_contact(&contact);
        if let Some(co) = &company {
            deal = deal.link_company(co);
        }
        if let Some(owner) = &lead.owner {
            deal = deal.field("owner", owner);
        }
        let deal = ctx.create_record(deal)?;
        let mut kickoff = NewTask::new(&deal, format!("Kickoff call with {}", lead.name))
            .due_in(24 * 3600)
            .priority(Priority::High)
            .tag("kickoff");
        if let Some(owner) = &lead.owner {
            kickoff = kickoff.assignee(owner);
        }
        ctx.create_task(kickoff)?;
        ctx.set_field(&lead.id, "converted_deal", &deal)?;
        ctx.comment(
            &lead.id,
            format!("Converted: contact {contact}, deal {deal}"),
        )?;
        Ok(())
    }
}

export_rule!(LeadToDeal);
