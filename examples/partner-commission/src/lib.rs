//! partner-commission: when a deal brought in by a partner is won, compute the partner's
//! commission with marginal tiers, record it on the deal, email the partner and tell
//! accounting, each exactly once.
//!
//! On a deal event (typically entering won), if the deal is in one of `won_stages`, has an
//! `amount` and a custom field `partner` holding a company record id, the rule reads the
//! partner company and computes the commission on the amount with MARGINAL `tiers` (each rate
//! applies to the slice of the amount inside its tier; the last tier has no `up_to`), rounded
//! to cents. It writes custom fields `commission` (number; skipped when already equal) and
//! `commission_partner` (the partner's record id), emails the partner's `email` (idempotency
//! key `commission-email/{deal}`; a partner without an email is a warning) and POSTs
//! `{"deal", "partner", "amount", "currency", "commission"}` to `accounting_url` (key
//! `commission/{deal}`, so a re-run never pays twice). A zero commission is recorded but
//! neither emailed nor posted. No `partner` or no `amount`: logged, nothing done.
//!
//! Config (every key optional; defaults shown except for `accounting_url`):
//! ```json
//! {"won_stages": ["won"],
//!  "tiers": [{"up_to": 10000, "rate": 0.05}, {"up_to": 50000, "rate": 0.07}, {"rate": 0.10}],
//!  "accounting_url": "https://accounting.example/hooks/commission"}
//! ```
//! Bind to: `entered_stage` won (one trigger per won stage).
//! Grants needed: fields `commission` and `commission_partner`; channels `email` and `webhook`;
//! no backward moves.

use serde::Deserialize;
use serde_json::json;
use stagecraft_sdk::prelude::*;

/// The custom field naming the partner company's record id.
pub const PARTNER: &str = "partner";
/// The custom field the commission is written to.
pub const COMMISSION: &str = "commission";
/// The custom field recording which partner the commission was computed for.
pub const COMMISSION_PARTNER: &str = "commission_partner";

/// One commission tier: `rate` applies to the part of the amount between the previous tier's
/// `up_to` (0 for the first) and this one's (unbounded when absent, only in the last tier).
#[derive(Debug, Deserialize, Clone, PartialEq, ConfigSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[serde(default)]
    pub up_to: Option<f64>,
    #[config(minimum = 0, maximum = 1)]
    pub rate: f64,
}

/// Which deals earn a commission, at which rates, and who hears of it. Every key is
/// optional.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Stages that count as won.
    pub won_stages: Vec<String>,
    /// Marginal tiers, lowest first.
    pub tiers: Vec<Tier>,
    /// Where to POST each commission (no call when unset).
    pub accounting_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            won_stages: vec!["won".into()],
            tiers: vec![
                Tier {
                    up_to: Some(10_000.0),
                    rate: 0.05,
                },
                Tier {
                    up_to: Some(50_000.0),
                    rate: 0.07,
                },
                Tier {
                    up_to: None,
                    rate: 0.10,
                },
            ],
            accounting_url: None,
        }
    }
}

impl Config {
    /// Checks what serde cannot: tiers ascend, every rate is 0-1, only the last is unbounded.
    pub fn validate(&self) -> Result<(), String> {
        if self.tiers.is_empty() {
            return Err("binding config: `tiers` is empty".into());
        }
        let last = self.tiers.len() - 1;
        let mut below = 0.0;
        for (i, tier) in self.tiers.iter().enumerate() {
            if !tier.rate.is_finite() || !(0.0..=1.0).contains(&tier.rate) {
                return Err(format!(
                    "binding config: `tiers[{i}].rate` must be between 0 and 1, not {}",
                    tier.rate
                ));
            }
            match (tier.up_to, i == last) {
                (None, true) => {}
                (None, false) => {
                    return Err(format!("binding config: `tiers[{i}].up_to` is missing; only the last tier is unbounded"))
                }
                (Some(_), true) => {
                    return Err(format!("binding config: the last tier (`tiers[{i}]`) must have no `up_to`"))
                }
                (Some(up_to), false) => {
                    if !up_to.is_finite() || up_to <= below {
                        return Err(format!(
                            "binding config: `tiers[{i}].up_to` must be above {below}, not {up_to}"
                        ));
                    }
                    below = up_to;
                }
            }
        }
        Ok(())
    }
}

/// The commission on `amount` under marginal `tiers`, rounded to cents (half away from zero).
///
/// Works in cents so binary floating point does not tip `x.xx5` the wrong way.
pub fn commission(tiers: &[Tier], amount: f64) -> f64 {
    let amount = (amount.max(0.0) * 100.0).round();
    let mut lower = 0.0;
    let mut cents = 0.0;
    for tier in tiers {
        let upper = tier.up_to.map_or(f64::INFINITY, |u| (u * 100.0).round());
        if amount > lower {
            cents += (amount.min(upper) - lower) * tier.rate;
        }
        if amount <= upper {
            break;
        }
        lower = upper;
    }
    // Snap away float noise (…4999999) first, then round to whole cents.
    ((cents * 1e6).round() / 1e6).round() / 100.0
}

pub struct PartnerCommission;

impl Rule for PartnerCommission {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config: Config = ctx.config()?;
        config.validate()?;
        if matches!(event.kind, EventKind::Deleted) {
            return Ok(());
        }
        let Some(record) = &event.record else {
            ctx.debug(format!(
                "{} event {} has no record; nothing to do",
                event.kind.name(),
                event.id
            ));
            return Ok(());
        };
        let deal = ctx.get(&record.id)?;
        let id = deal.id.as_str();
        if deal.kind != RecordKind::Deal {
            ctx.debug(format!(
                "{id} is a {}, not a deal; nothing to do",
                deal.kind
            ));
            return Ok(());
        }
        if !deal
            .stage
            .as_ref()
            .is_some_and(|s| config.won_stages.contains(s))
        {
            ctx.debug(format!(
                "{id} is in {:?}, not a won stage; no commission",
                deal.stage
            ));
            return Ok(());
        }
        let Some(partner_id) = deal
            .custom_field::<String>(PARTNER)
            .filter(|p| !p.trim().is_empty())
        else {
            ctx.info(format!("{id} has no partner; no commission"));
            return Ok(());
        };
        let Some(amount) = deal.amount else {
            ctx.info(format!("{id} has no amount; no commission"));
            return Ok(());
        };
        let partner = match ctx.get(&partner_id) {
            Ok(p) if p.kind == RecordKind::Company => p,
            Ok(p) => {
                ctx.warn(format!(
                    "{id}: partner {partner_id} is a {}, not a company; no commission",
                    p.kind
                ));
                return Ok(());
            }
            Err(HostError::NotFound(_)) => {
                ctx.warn(format!(
                    "{id}: partner {partner_id} does not exist; no commission"
                ));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };

        let due = commission(&config.tiers, amount);
        if deal.custom_field::<f64>(COMMISSION) != Some(due) {
            ctx.set_field(id, COMMISSION, &due)?;
        }
        if deal.custom_field::<String>(COMMISSION_PARTNER).as_deref() != Some(partner_id.as_str()) {
            ctx.set_field(id, COMMISSION_PARTNER, &partner_id)?;
        }
        let currency = deal.currency.as_deref();
        let money = format!(
            "{due:.2}{}",
            currency.map(|c| format!(" {c}")).unwrap_or_default()
        );
        ctx.info(format!(
            "{id}: commission {money} on {amount:.2} for partner {partner_id}"
        ));
        if due <= 0.0 {
            ctx.info(format!(
                "{id}: nothing to pay; partner and accounting not contacted"
            ));
            return Ok(());
        }

        match partner.email.as_deref().filter(|e| !e.trim().is_empty()) {
            Some(to) => {
                ctx.queue(
                    Message::email(
                        to,
                        format!("Your commission on {}", deal.name),
                        format!(
                            "Hello {},\n\nthe deal \"{}\" you referred was won. Your commission is {money}.",
                            partner.name, deal.name
                        ),
                    )
                    .idempotency_key(format!("commission-email/{id}")),
                )?;
            }
            None => ctx.warn(format!(
                "{id}: partner {partner_id} has no email; not notified"
            )),
        }
        match config
            .accounting_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            Some(url) => {
                let body = json!({
                    "deal": id,
                    "partner": partner_id,
                    "amount": amount,
                    "currency": currency,
                    "commission": due,
                });
                ctx.queue(
                    Message::webhook(url, body.to_string())
                        .idempotency_key(format!("commission/{id}")),
                )?;
            }
            None => ctx.warn(format!(
                "{id}: no accounting_url configured; accounting not told"
            )),
        }
        Ok(())
    }
}

stagecraft_sdk::export_rule!(PartnerCommission);
stagecraft_sdk::export_config_schema!(Config);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use stagecraft_sdk::testing::{self, Effect, MockHost};

    const URL: &str = r#"{"accounting_url": "https://acct.example/commission"}"#;

    fn deal(stage: &str, amount: f64) -> Record {
        let mut d = testing::deal("d1", "Globex rollout", "sales", stage, amount);
        d.currency = Some("EUR".into());
        d.custom.insert(PARTNER.into(), json!("c1"));
        d
    }

    fn partner(email: Option<&str>) -> Record {
        let mut c = testing::company("c1", "Initech Partners");
        c.email = email.map(Into::into);
        c
    }

    fn won(d: Record) -> Event {
        Event::stage_changed(d, "negotiation", "won")
    }

    fn tiers(spec: &[(Option<f64>, f64)]) -> Vec<Tier> {
        spec.iter()
            .map(|&(up_to, rate)| Tier { up_to, rate })
            .collect()
    }

    fn warned(host: &MockHost, text: &str) -> bool {
        host.logs
            .iter()
            .any(|(l, m)| *l == Level::Warn && m.contains(text))
    }

    // --- tier math -------------------------------------------------------------------------

    #[test]
    fn default_tiers_are_marginal() {
        let t = Config::default().tiers;
        assert_eq!(commission(&t, 0.0), 0.0);
        assert_eq!(commission(&t, 5_000.0), 250.0);
        assert_eq!(commission(&t, 10_000.0), 500.0);
        assert_eq!(commission(&t, 10_001.0), 500.07);
        assert_eq!(commission(&t, 12_345.67), 664.2); // 500 + 2345.67 × 7% = 664.1969
        assert_eq!(commission(&t, 50_000.0), 3_300.0);
        assert_eq!(commission(&t, 100_000.0), 8_300.0);
        assert_eq!(commission(&t, 1_000_000.0), 98_300.0);
    }

    #[test]
    fn rounds_half_cents_away_from_zero() {
        let flat = |rate| tiers(&[(None, rate)]);
        assert_eq!(commission(&flat(0.05), 10.10), 0.51); // 0.505
        assert_eq!(commission(&flat(0.05), 10.30), 0.52); // 0.515
        assert_eq!(commission(&flat(0.3), 0.05), 0.02); // 0.015, and 0.3 is below 0.3 in binary
        assert_eq!(commission(&flat(0.07), 0.07), 0.0); // 0.0049
        assert_eq!(commission(&flat(0.1), 0.15), 0.02); // 0.015
        assert_eq!(commission(&flat(1.0), 1234.565), 1234.57);
    }

    #[test]
    fn custom_tiers() {
        let t = tiers(&[(Some(100.0), 0.0), (Some(200.0), 0.5), (None, 1.0)]);
        assert_eq!(commission(&t, 50.0), 0.0);
        assert_eq!(commission(&t, 150.0), 25.0);
        assert_eq!(commission(&t, 250.0), 100.0);
        assert_eq!(commission(&tiers(&[(None, 0.2)]), 99.99), 20.0);
    }

    #[test]
    fn tier_validation() {
        let check = |t: Vec<Tier>| {
            Config {
                tiers: t,
                ..Config::default()
            }
            .validate()
        };
        assert_eq!(check(Config::default().tiers), Ok(()));
        assert_eq!(check(tiers(&[(None, 0.1)])), Ok(()));
        for (bad, needle) in [
            (tiers(&[]), "`tiers` is empty"),
            (tiers(&[(Some(10.0), 0.1)]), "last tier"),
            (
                tiers(&[(None, 0.1), (None, 0.2)]),
                "tiers[0].up_to` is missing",
            ),
            (
                tiers(&[(Some(10.0), 0.1), (Some(10.0), 0.2), (None, 0.3)]),
                "tiers[1].up_to` must be above 10",
            ),
            (
                tiers(&[(Some(0.0), 0.1), (None, 0.2)]),
                "tiers[0].up_to` must be above 0",
            ),
            (tiers(&[(Some(10.0), -0.1), (None, 0.2)]), "tiers[0].rate"),
            (tiers(&[(Some(10.0), 0.1), (None, 5.0)]), "tiers[1].rate"),
            (tiers(&[(None, f64::NAN)]), "tiers[0].rate"),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    // --- the rule --------------------------------------------------------------------------

    #[test]
    fn pays_the_partner_on_a_won_deal() -> Result<(), String> {
        let mut host = MockHost::new()
            .with_config(URL)
            .with_record(partner(Some("ap@initech.example")));
        host.run::<PartnerCommission>(&won(deal("negotiation", 12_345.67)))?;

        let d1 = host.record("d1").ok_or("no d1")?;
        assert_eq!(d1.custom_field::<f64>(COMMISSION), Some(664.2));
        assert_eq!(
            d1.custom_field::<String>(COMMISSION_PARTNER).as_deref(),
            Some("c1")
        );

        let sent = host.queued();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            (sent[0].channel, sent[0].to.as_str()),
            (Channel::Email, "ap@initech.example")
        );
        assert_eq!(
            sent[0].idempotency_key.as_deref(),
            Some("commission-email/d1")
        );
        assert!(
            sent[0].body.contains("664.20 EUR") && sent[0].body.contains("Initech Partners"),
            "{}",
            sent[0].body
        );

        assert_eq!(
            (sent[1].channel, sent[1].to.as_str()),
            (Channel::Webhook, "https://acct.example/commission")
        );
        assert_eq!(sent[1].idempotency_key.as_deref(), Some("commission/d1"));
        let body: Value = serde_json::from_str(&sent[1].body).map_err(|e| e.to_string())?;
        assert_eq!(
            body,
            json!({"deal": "d1", "partner": "c1", "amount": 12345.67, "currency": "EUR", "commission": 664.2})
        );
        Ok(())
    }

    #[test]
    fn a_rerun_reuses_the_keys_and_skips_equal_writes() -> Result<(), String> {
        let mut host = MockHost::new()
            .with_config(URL)
            .with_record(partner(Some("ap@initech.example")));
        let event = won(deal("negotiation", 20_000.0));
        host.run::<PartnerCommission>(&event)?;
        host.run::<PartnerCommission>(&event)?;
        let writes = host
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::SetField { .. }))
            .count();
        assert_eq!(writes, 2, "second run writes nothing");
        let keys: Vec<_> = host
            .queued()
            .iter()
            .filter_map(|m| m.idempotency_key.clone())
            .collect();
        assert_eq!(
            keys,
            [
                "commission-email/d1",
                "commission/d1",
                "commission-email/d1",
                "commission/d1"
            ]
        );
        assert_eq!(
            host.record("d1")
                .and_then(|d| d.custom_field::<f64>(COMMISSION)),
            Some(1_200.0)
        );
        Ok(())
    }

    #[test]
    fn an_already_equal_commission_is_not_rewritten() -> Result<(), String> {
        let mut d = deal("won", 10_000.0);
        d.custom.insert(COMMISSION.into(), json!(500.0));
        let mut host = MockHost::new()
            .with_config(URL)
            .with_record(partner(Some("ap@initech.example")));
        host.run::<PartnerCommission>(&Event::updated(d, &["amount"]))?;
        assert!(!host
            .effects
            .iter()
            .any(|e| matches!(e, Effect::SetField { name, .. } if name == COMMISSION)));
        assert!(host
            .effects
            .iter()
            .any(|e| matches!(e, Effect::SetField { name, .. } if name == COMMISSION_PARTNER)));
        assert_eq!(host.queued().len(), 2);
        Ok(())
    }

    #[test]
    fn a_partner_without_email_still_gets_paid() -> Result<(), String> {
        let mut host = MockHost::new().with_config(URL).with_record(partner(None));
        host.run::<PartnerCommission>(&won(deal("negotiation", 1_000.0)))?;
        let sent = host.queued();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].channel, Channel::Webhook);
        assert!(warned(&host, "has no email"));
        Ok(())
    }

    #[test]
    fn without_accounting_url_only_the_partner_hears() -> Result<(), String> {
        let mut host = MockHost::new().with_record(partner(Some("ap@initech.example")));
        host.run::<PartnerCommission>(&won(deal("negotiation", 1_000.0)))?;
        assert_eq!(
            host.queued().iter().map(|m| m.channel).collect::<Vec<_>>(),
            [Channel::Email]
        );
        assert!(warned(&host, "no accounting_url"));
        Ok(())
    }

    #[test]
    fn a_zero_commission_is_recorded_not_paid() -> Result<(), String> {
        let mut host = MockHost::new()
            .with_config(URL)
            .with_record(partner(Some("ap@initech.example")));
        host.run::<PartnerCommission>(&won(deal("negotiation", 0.0)))?;
        assert!(host.queued().is_empty());
        assert_eq!(
            host.record("d1")
                .and_then(|d| d.custom_field::<f64>(COMMISSION)),
            Some(0.0)
        );
        Ok(())
    }

    #[test]
    fn does_nothing_without_partner_amount_or_win() -> Result<(), String> {
        let mut no_partner = deal("won", 1_000.0);
        no_partner.custom.remove(PARTNER);
        let mut blank_partner = deal("won", 1_000.0);
        blank_partner.custom.insert(PARTNER.into(), json!(""));
        let mut no_amount = deal("won", 0.0);
        no_amount.amount = None;
        for (d, log) in [
            (no_partner, Some("no partner")),
            (blank_partner, Some("no partner")),
            (no_amount, Some("no amount")),
            (deal("negotiation", 1_000.0), None),
        ] {
            let mut host = MockHost::new()
                .with_config(URL)
                .with_record(partner(Some("ap@initech.example")));
            host.run::<PartnerCommission>(&Event::updated(d, &["amount"]))?;
            assert!(host.effects.is_empty());
            if let Some(log) = log {
                assert!(
                    host.logs
                        .iter()
                        .any(|(l, m)| *l == Level::Info && m.contains(log)),
                    "{:?}",
                    host.logs
                );
            }
        }
        Ok(())
    }

    #[test]
    fn a_bad_partner_reference_only_warns() -> Result<(), String> {
        let mut host = MockHost::new().with_config(URL);
        host.run::<PartnerCommission>(&won(deal("negotiation", 1_000.0)))?;
        assert!(host.effects.is_empty());
        assert!(warned(&host, "does not exist"));

        let mut host = MockHost::new()
            .with_config(URL)
            .with_record(testing::contact("c1", "Pat", "pat@x.example"));
        host.run::<PartnerCommission>(&won(deal("negotiation", 1_000.0)))?;
        assert!(host.effects.is_empty());
        assert!(warned(&host, "not a company"));
        Ok(())
    }

    #[test]
    fn won_stages_are_configurable_and_other_records_ignored() -> Result<(), String> {
        let mut host = MockHost::new()
            .with_config(r#"{"won_stages": ["closed_won", "won_upsell"]}"#)
            .with_record(partner(Some("ap@initech.example")));
        host.run::<PartnerCommission>(&won(deal("negotiation", 1_000.0)))?;
        assert!(host.effects.is_empty(), "\"won\" is not a won stage here");
        host.insert(deal("closed_won", 1_000.0)); // MockHost keeps the stored d1 otherwise
        host.run::<PartnerCommission>(&Event::stage_changed(
            deal("won", 1_000.0),
            "won",
            "closed_won",
        ))?;
        assert_eq!(
            host.record("d1")
                .and_then(|d| d.custom_field::<f64>(COMMISSION)),
            Some(50.0)
        );

        let mut host = MockHost::new().with_config(URL);
        let mut lead = testing::lead("l1", "Lead", "leads", "won");
        lead.custom.insert(PARTNER.into(), json!("c1"));
        host.run::<PartnerCommission>(&Event::created(lead))?;
        host.run::<PartnerCommission>(&Event::deleted(deal("won", 1_000.0)))?;
        host.run::<PartnerCommission>(&Event::inbound("ping", json!({}), None))?;
        assert!(host.effects.is_empty());
        Ok(())
    }

    #[test]
    fn bad_config_names_the_problem() {
        for (config, needle) in [
            (r#"{"accounting_uri": "https://x"}"#, "accounting_uri"),
            (
                r#"{"tiers": [{"upto": 5, "rate": 0.1}, {"rate": 0.2}]}"#,
                "upto",
            ),
            (r#"{"tiers": [{"up_to": 5}]}"#, "rate"),
            (r#"{"tiers": [{"up_to": 5, "rate": 0.1}]}"#, "last tier"),
            (r#"{"tiers": [{"rate": 2}]}"#, "tiers[0].rate"),
        ] {
            let mut host = MockHost::new()
                .with_config(config)
                .with_record(partner(Some("ap@initech.example")));
            let err = host
                .run::<PartnerCommission>(&won(deal("negotiation", 1_000.0)))
                .unwrap_err();
            assert!(err.contains(needle), "{config}: {err}");
            assert!(host.effects.is_empty());
        }
    }
}
