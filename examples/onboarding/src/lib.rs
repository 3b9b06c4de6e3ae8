//! onboarding: when a deal enters its won stage, email the customer a welcome now, a
//! follow-up after 2 days and a check-in after 7 days. The follow-ups are durable timers the
//! host cancels if the deal leaves the won stage (Bitrix24 semantics), so a deal reopened by
//! mistake gets no further mail. With `kickoff_within_hours` set, the first win also gives
//! the deal's owner a kickoff task on the deal (host API 0.2); winning it again later does
//! not add another.
//!
//! Config (every key optional):
//! ```json
//! {"won_stage": "won", "follow_up_seconds": 172800, "check_in_seconds": 604800,
//!  "fallback_email": "success@acme.example", "product": "Acme CRM", "kickoff_within_hours": 48}
//! ```
//! The recipient is the email of the deal's linked contact (else `fallback_email`).
//! Bind to: `entered_stage` won. Grants needed: field `onboarding_step`; channel `email`;
//! `create:task` when `kickoff_within_hours` is set.

use serde::Deserialize;
use serde_json::json;
use stagecraft_sdk::prelude::*;

/// When onboarding emails go out, and what they name. Every key is optional.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The stage whose entry starts onboarding (default "won").
    pub won_stage: String,
    /// Seconds after the welcome until the follow-up (default 2 days).
    #[config(minimum = 1, maximum = 31622400)]
    pub follow_up_seconds: u64,
    /// Seconds after the welcome until the check-in (default 7 days).
    #[config(minimum = 1, maximum = 31622400)]
    pub check_in_seconds: u64,
    /// Where emails go when the deal has no contact with an email.
    pub fallback_email: Option<String>,
    /// The product's name in the emails.
    pub product: String,
    /// Give the deal's owner a kickoff task, due this many hours after the win (needs the
    /// `create:task` grant). Unset: no task.
    #[config(minimum = 1, maximum = 8784)]
    pub kickoff_within_hours: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            won_stage: "won".into(),
            follow_up_seconds: 2 * 24 * 3600,
            check_in_seconds: 7 * 24 * 3600,
            fallback_email: None,
            product: "our product".into(),
            kickoff_within_hours: None,
        }
    }
}

/// Subject and body of each step's email.
pub fn email_for(step: &str, customer: &str, product: &str) -> (String, String) {
    match step {
        "welcome" => (
            format!("Welcome to {product}"),
            format!(
                "Hi {customer},\n\nthank you for choosing {product}. Your onboarding starts today."
            ),
        ),
        "follow_up" => (
            format!("How are your first days with {product}?"),
            format!("Hi {customer},\n\nanything we can help with while you set up?"),
        ),
        _ => (
            format!("A week with {product}"),
            format!("Hi {customer},\n\nit has been a week: shall we review your setup together?"),
        ),
    }
}

fn recipient(
    ctx: &mut Ctx<'_>,
    deal: &Record,
    config: &Config,
) -> Result<Option<(String, String)>, String> {
    if let Some(contact_id) = &deal.contact {
        match ctx.get(contact_id) {
            Ok(c) => {
                if let Some(email) = c.email.clone() {
                    return Ok(Some((email, c.name)));
                }
            }
            Err(HostError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(config
        .fallback_email
        .clone()
        .map(|e| (e, "there".to_string())))
}

/// The linked contact's name, else the deal's.
fn customer_name(ctx: &mut Ctx<'_>, deal: &Record) -> Result<String, String> {
    if let Some(contact_id) = &deal.contact {
        match ctx.get(contact_id) {
            Ok(c) => return Ok(c.name),
            Err(HostError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deal.name.clone())
}

fn send(ctx: &mut Ctx<'_>, deal: &Record, config: &Config, step: &str) -> Result<(), String> {
    let Some((to, name)) = recipient(ctx, deal, config)? else {
        ctx.warn(format!(
            "deal {} has no contact email and no fallback_email: {step} not sent",
            deal.id
        ));
        return Ok(());
    };
    let (subject, body) = email_for(step, &name, &config.product);
    ctx.queue(
        Message::email(to, subject, body).idempotency_key(format!("onboarding/{step}/{}", deal.id)),
    )?;
    ctx.set_field(&deal.id, "onboarding_step", &step)?;
    Ok(())
}

/// The kickoff task of a won deal: for its owner, due in `hours`.
pub fn kickoff_task(deal: &Record, customer: &str, hours: u64) -> NewTask {
    let mut task = NewTask::new(&deal.id, format!("Kickoff call with {customer}"))
        .description(format!(
            "{} is won: plan the onboarding with the customer.",
            deal.name
        ))
        .due_in(hours * 3600)
        .priority(Priority::High)
        .tag("kickoff");
    if let Some(owner) = &deal.owner {
        task = task.assignee(owner);
    }
    task
}

pub struct Onboarding;

impl Rule for Onboarding {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config: Config = ctx.config()?;
        let deal = ctx.get(&event.record()?.id)?;
        if !deal.in_stage(&config.won_stage) {
            return Ok(());
        }
        match &event.kind {
            EventKind::Scheduled { payload } => {
                let step = payload["step"].as_str().unwrap_or("check_in").to_string();
                send(ctx, &deal, &config, &step)
            }
            _ => {
                // The first win only: a deal that was onboarded before has its step set.
                let first = deal.custom_value("onboarding_step").is_none();
                if let (true, Some(hours)) = (first, config.kickoff_within_hours) {
                    let customer = customer_name(ctx, &deal)?;
                    ctx.create_task(kickoff_task(&deal, &customer, hours))?;
                }
                send(ctx, &deal, &config, "welcome")?;
                ctx.schedule_after(config.follow_up_seconds, &json!({"step": "follow_up"}))?;
                ctx.schedule_after(config.check_in_seconds, &json!({"step": "check_in"}))?;
                Ok(())
            }
        }
    }
}

stagecraft_sdk::export_rule!(Onboarding);
stagecraft_sdk::export_config_schema!(Config);

#[cfg(test)]
mod tests {
    use super::*;
    use stagecraft_sdk::testing::{self, Effect, MockHost};

    fn won_deal() -> Record {
        let mut d = testing::deal("d1", "Big deal", "deals", "won", 5000.0);
        d.contact = Some("c1".into());
        d
    }

    #[test]
    fn welcomes_now_and_schedules_two_follow_ups() -> Result<(), String> {
        let mut host = MockHost::new()
            .with_record(won_deal())
            .with_record(testing::contact("c1", "Grace", "grace@navy.example"))
            .with_config(r#"{"product": "Acme CRM"}"#);
        host.run::<Onboarding>(&Event::stage_changed(won_deal(), "negotiation", "won"))?;
        let mail = host.queued();
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].to, "grace@navy.example");
        assert_eq!(mail[0].subject, "Welcome to Acme CRM");
        assert_eq!(
            mail[0].idempotency_key.as_deref(),
            Some("onboarding/welcome/d1")
        );
        let delays: Vec<u64> = host
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Schedule { seconds, .. } => Some(*seconds),
                _ => None,
            })
            .collect();
        assert_eq!(delays, vec![172_800, 604_800]);
        Ok(())
    }

    fn kickoff_host() -> MockHost {
        let mut deal = won_deal();
        deal.owner = Some("ann".into());
        MockHost::new()
            .with_record(deal)
            .with_record(testing::contact("c1", "Grace", "grace@navy.example"))
            .with_config(r#"{"kickoff_within_hours": 48}"#)
    }

    fn tasks(host: &MockHost) -> Vec<&NewTask> {
        host.effects
            .iter()
            .filter_map(|e| match e {
                Effect::CreateTask { task, .. } => Some(task),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_first_win_gives_the_owner_a_kickoff_task() -> Result<(), String> {
        let mut host = kickoff_host().with_grant("create:task");
        let won = host.record("d1").cloned().ok_or("no d1")?;
        host.run::<Onboarding>(&Event::stage_changed(won, "negotiation", "won"))?;
        let t = tasks(&host);
        assert_eq!(t.len(), 1, "{:?}", host.effects);
        assert_eq!(t[0].record, "d1");
        assert_eq!(t[0].title, "Kickoff call with Grace");
        assert_eq!(t[0].assignee.as_deref(), Some("ann"));
        assert_eq!(t[0].due_in_seconds, Some(48 * 3600));
        assert_eq!(t[0].tags, vec!["kickoff".to_string()]);
        assert_eq!(host.queued().len(), 1, "the welcome mail goes out too");

        // Reopened and won again: the welcome is idempotent, and no second kickoff task.
        let again = host.record("d1").cloned().ok_or("no d1")?;
        host.run::<Onboarding>(&Event::stage_changed(again, "negotiation", "won"))?;
        assert_eq!(tasks(&host).len(), 1);
        Ok(())
    }

    #[test]
    fn the_kickoff_task_needs_its_grant() {
        let mut host = kickoff_host();
        let won = won_deal();
        let err = host
            .run::<Onboarding>(&Event::stage_changed(won, "negotiation", "won"))
            .unwrap_err();
        assert!(err.contains("create:task"), "{err}");
        assert!(host.effects.is_empty());
    }

    #[test]
    fn the_follow_up_sends_its_own_mail() -> Result<(), String> {
        let mut host = MockHost::new()
            .with_record(won_deal())
            .with_record(testing::contact("c1", "Grace", "grace@navy.example"));
        host.run::<Onboarding>(&Event::scheduled(won_deal(), json!({"step": "follow_up"})))?;
        assert_eq!(
            host.queued()[0].idempotency_key.as_deref(),
            Some("onboarding/follow_up/d1")
        );
        assert_eq!(
            host.record("d1")
                .and_then(|d| d.custom_field::<String>("onboarding_step"))
                .as_deref(),
            Some("follow_up")
        );
        Ok(())
    }

    #[test]
    fn a_deal_that_left_won_gets_nothing() -> Result<(), String> {
        let mut lost = won_deal();
        lost.stage = Some("negotiation".into());
        let mut host = MockHost::new().with_record(lost.clone());
        host.run::<Onboarding>(&Event::scheduled(lost, json!({"step": "check_in"})))?;
        assert!(host.effects.is_empty());
        Ok(())
    }

    #[test]
    fn no_email_anywhere_is_a_warning_not_a_failure() -> Result<(), String> {
        let mut d = won_deal();
        d.contact = None;
        let mut host = MockHost::new().with_record(d.clone());
        host.run::<Onboarding>(&Event::created(d))?;
        assert!(host.queued().is_empty());
        assert!(host
            .logs
            .iter()
            .any(|(_, m)| m.contains("no contact email")));
        Ok(())
    }
}
