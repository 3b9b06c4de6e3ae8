//! renewal-reminder: reminds a deal's owner before its contract ends, and escalates to the
//! owner's manager when the end is close.
//!
//! The deal's custom field `contract_end` holds the end date as `YYYY-MM-DD`. On any
//! non-scheduled event (created, `contract_end` updated, entered a won stage, ...) the rule
//! schedules one follow-up per entry of `days_before` at `hour_utc` on that many days before
//! the end, skipping those no longer ahead of the event's time. When a follow-up comes due it
//! re-reads the deal: if `contract_end` changed meanwhile (renewed, corrected) the reminder is
//! dropped; otherwise it emails the owner (`owner_emails[owner]`, else `default_email`) and,
//! when `days_before <= escalate_at_days`, the owner's manager (`managers[owner]`), then sets
//! `renewal_reminded` to the number of days. Idempotency keys
//! `renewal/{deal}/{contract_end}/{days}` and `renewal-escalation/{deal}/{contract_end}` make
//! re-triggers harmless: each reminder (and the escalation) goes out once per contract end.
//!
//! Reminders further away than `max_delay_days` (the host caps a follow-up at 366 days) are
//! scheduled in hops: the follow-up fires early, sees its time is still ahead and schedules
//! the rest. A follow-up whose `days_before` was removed from the config meanwhile is dropped.
//! A missing or invalid `contract_end` is a warning in the run log, not a failed run.
//!
//! Config (every key optional; defaults shown except for the maps):
//! ```json
//! {"days_before": [90, 30, 7], "hour_utc": 9, "escalate_at_days": 7,
//!  "owner_emails": {"u_ann": "ann@acme.example"}, "default_email": "renewals@acme.example",
//!  "managers": {"u_ann": "boss@acme.example"}, "max_delay_days": 365}
//! ```
//! Bind to: `entered_stage` won and `updated` with fields `["contract_end"]`. The host cancels
//! a follow-up when the deal leaves the stage it was in when scheduled, so bind where deals
//! stay (the won stage).
//! Grants needed: field `renewal_reminded`; channel `email`; no backward moves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stagecraft_sdk::prelude::*;

/// The custom field holding the contract's end date (`YYYY-MM-DD`).
pub const CONTRACT_END: &str = "contract_end";
/// The custom field set to the `days_before` of the last reminder sent.
pub const REMINDED: &str = "renewal_reminded";

const DAY: i64 = 24 * 3600;

/// When renewal reminders go out, and to whom. Every key is optional.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Days before the contract end to remind at.
    pub days_before: Vec<u32>,
    /// Hour of the day (UTC) reminders go out.
    #[config(maximum = 23)]
    pub hour_utc: u32,
    /// Owner (CRM user) → email address.
    pub owner_emails: BTreeMap<String, String>,
    /// Where reminders go when the owner has no entry in `owner_emails`.
    pub default_email: Option<String>,
    /// Owner → their manager's email address.
    pub managers: BTreeMap<String, String>,
    /// Reminders this close to the end (or closer) also go to the manager.
    pub escalate_at_days: u32,
    /// Longest single follow-up delay; further reminders hop.
    pub max_delay_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            days_before: vec![90, 30, 7],
            hour_utc: 9,
            owner_emails: BTreeMap::new(),
            default_email: None,
            managers: BTreeMap::new(),
            escalate_at_days: 7,
            max_delay_days: 365,
        }
    }
}

impl Config {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.hour_utc > 23 {
            return Err(format!(
                "binding config: `hour_utc` must be 0-23, not {}",
                self.hour_utc
            ));
        }
        if self.days_before.is_empty() {
            return Err(
                "binding config: `days_before` is empty, so no reminder would ever go out".into(),
            );
        }
        if !(1..=366).contains(&self.max_delay_days) {
            return Err(format!(
                "binding config: `max_delay_days` must be 1-366, not {}",
                self.max_delay_days
            ));
        }
        Ok(())
    }

    /// Where the owner's reminders go.
    pub fn owner_email(&self, owner: Option<&str>) -> Option<&str> {
        owner
            .and_then(|o| self.owner_emails.get(o))
            .or(self.default_email.as_ref())
            .map(String::as_str)
            .filter(|e| !e.trim().is_empty())
    }
}

/// The payload of a reminder follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    pub days_before: u32,
    pub contract_end: String,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A fixed-width run of ASCII digits as a number.
fn digits(s: Option<&str>) -> Option<i64> {
    let s = s?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date; `None` unless it is exactly that and real.
pub fn parse_date(s: &str) -> Option<i64> {
    if s.len() != 10 || s.get(4..5) != Some("-") || s.get(7..8) != Some("-") {
        return None;
    }
    let year = digits(s.get(0..4))?;
    let month = u32::try_from(digits(s.get(5..7))?).ok()?;
    let day = u32::try_from(digits(s.get(8..10))?).ok()?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Unix seconds of an RFC 3339 timestamp (`2025-01-01T09:30:00Z`, `...T09:30:00.123+02:00`);
/// fractions of a second are dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let days = parse_date(s.get(0..10)?)?;
    if !matches!(s.get(10..11)?, "T" | "t" | " ") || s.get(13..14)? != ":" || s.get(16..17)? != ":"
    {
        return None;
    }
    let (h, m, sec) = (
        digits(s.get(11..13))?,
        digits(s.get(14..16))?,
        digits(s.get(17..19))?,
    );
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = frac.get(n..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.get(3..4)? != ":" {
                return None;
            }
            let (oh, om) = (digits(rest.get(1..3))?, digits(rest.get(4..6))?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days * DAY + h * 3600 + m * 60 + sec - offset)
}

/// When the reminder `days_before` days ahead of the contract end goes out (Unix seconds).
pub fn reminder_at(contract_end_day: i64, days_before: u32, hour_utc: u32) -> i64 {
    (contract_end_day - i64::from(days_before)) * DAY + i64::from(hour_utc) * 3600
}

/// The reminders still ahead of `now`: `(days_before, due)` pairs, earliest first.
pub fn plan(
    days_before: &[u32],
    hour_utc: u32,
    contract_end_day: i64,
    now: i64,
) -> Vec<(u32, i64)> {
    let mut days = days_before.to_vec();
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    days.into_iter()
        .map(|n| (n, reminder_at(contract_end_day, n, hour_utc)))
        .filter(|(_, at)| *at > now)
        .collect()
}

/// The follow-up delay to `at`, at most `max_days` days (a longer wait hops).
pub fn delay_until(at: i64, now: i64, max_days: u32) -> u64 {
    u64::try_from((at - now).clamp(0, i64::from(max_days) * DAY)).unwrap_or(0)
}

fn event_time(event: &Event) -> Result<i64, String> {
    parse_rfc3339(&event.occurred_at).ok_or_else(|| {
        format!(
            "event {} has an unreadable time {:?}",
            event.id, event.occurred_at
        )
    })
}

pub struct RenewalReminder;

impl RenewalReminder {
    /// A deal changed: schedule the reminders still ahead.
    fn schedule(ctx: &mut Ctx<'_>, config: &Config, event: &Event, id: &str) -> Result<(), String> {
        let deal = ctx.get(id)?;
        if deal.kind != RecordKind::Deal {
            ctx.debug(format!(
                "{id} is a {}, not a deal; nothing to do",
                deal.kind
            ));
            return Ok(());
        }
        let raw = deal.custom_value(CONTRACT_END);
        let Some((end, end_day)) = raw
            .and_then(|v| v.as_str())
            .and_then(|s| parse_date(s).map(|d| (s, d)))
        else {
            let what = raw.map_or_else(
                || "missing".to_string(),
                |v| format!("{v} is not a YYYY-MM-DD date"),
            );
            ctx.warn(format!("{id}: {CONTRACT_END} {what}; no renewal reminders"));
            return Ok(());
        };
        let now = event_time(event)?;
        let due = plan(&config.days_before, config.hour_utc, end_day, now);
        if due.is_empty() {
            ctx.info(format!(
                "{id}: contract ends {end}; no reminder is still ahead"
            ));
            return Ok(());
        }
        let mut days = Vec::new();
        for (n, at) in due {
            let reminder = Reminder {
                days_before: n,
                contract_end: end.to_string(),
            };
            ctx.schedule_after(delay_until(at, now, config.max_delay_days), &reminder)?;
            days.push(n.to_string());
        }
        ctx.info(format!(
            "{id}: contract ends {end}; reminders scheduled at -{} days",
            days.join("/-")
        ));
        Ok(())
    }

    /// A reminder came due: send it unless the contract changed meanwhile.
    fn remind(ctx: &mut Ctx<'_>, config: &Config, event: &Event, id: &str) -> Result<(), String> {
        let due: Reminder = match event.payload_as() {
            Ok(r) => r,
            Err(e) => {
                ctx.warn(format!(
                    "ignoring a follow-up that is not a renewal reminder: {e}"
                ));
                return Ok(());
            }
        };
        let n = due.days_before;
        let deal = match ctx.get(id) {
            Ok(d) => d,
            Err(HostError::NotFound(_)) => {
                ctx.info(format!("{id} is gone; -{n} day reminder dropped"));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let current = deal.custom_field::<String>(CONTRACT_END);
        if current.as_deref() != Some(due.contract_end.as_str()) {
            ctx.info(format!(
                "{id}: {CONTRACT_END} is now {current:?}, not {:?}; -{n} day reminder dropped",
                due.contract_end
            ));
            return Ok(());
        }
        if !config.days_before.contains(&n) {
            ctx.info(format!(
                "{id}: -{n} day reminders are no longer configured; dropped"
            ));
            return Ok(());
        }
        let Some(end_day) = parse_date(&due.contract_end) else {
            ctx.warn(format!(
                "{id}: {CONTRACT_END} {:?} is not a YYYY-MM-DD date",
                due.contract_end
            ));
            return Ok(());
        };
        let now = event_time(event)?;
        let at = reminder_at(end_day, n, config.hour_utc);
        if at > now {
            ctx.schedule_after(delay_until(at, now, config.max_delay_days), &due)?;
            ctx.info(format!(
                "{id}: -{n} day reminder is {}s ahead; waiting",
                at - now
            ));
            return Ok(());
        }

        let end = &due.contract_end;
        let amount = match (deal.amount, &deal.currency) {
            (Some(a), Some(c)) => format!(" worth {a:.2} {c}"),
            (Some(a), None) => format!(" worth {a:.2}"),
            _ => String::new(),
        };
        let owner = deal.owner.as_deref();
        let mut sent = false;
        match config.owner_email(owner) {
            Some(to) => {
                ctx.queue(
                    Message::email(
                        to,
                        format!("Renewal in {n} days: {}", deal.name),
                        format!(
                            "The contract for \"{}\"{amount} ends on {end}, in {n} days. Time to plan the renewal.",
                            deal.name
                        ),
                    )
                    .idempotency_key(format!("renewal/{id}/{end}/{n}")),
                )?;
                sent = true;
            }
            None => ctx.warn(format!("{id}: no email for owner {owner:?} and no default_email; -{n} day reminder not sent")),
        }
        if n <= config.escalate_at_days {
            match owner
                .and_then(|o| config.managers.get(o))
                .filter(|m| !m.trim().is_empty())
            {
                Some(manager) => {
                    ctx.queue(
                        Message::email(
                            manager.as_str(),
                            format!("Renewal at risk: {} ends in {n} days", deal.name),
                            format!(
                                "The contract for \"{}\"{amount}, owned by {}, ends on {end}, in {n} days, and is not renewed yet.",
                                deal.name,
                                owner.unwrap_or("nobody")
                            ),
                        )
                        .idempotency_key(format!("renewal-escalation/{id}/{end}")),
                    )?;
                    sent = true;
                }
                None => ctx.warn(format!(
                    "{id}: no manager configured for owner {owner:?}; not escalated"
                )),
            }
        }
        if sent && deal.custom_field::<u32>(REMINDED) != Some(n) {
            ctx.set_field(id, REMINDED, &n)?;
        }
        if sent {
            ctx.info(format!(
                "{id}: -{n} day renewal reminder sent (contract ends {end})"
            ));
        }
        Ok(())
    }
}

impl Rule for RenewalReminder {
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
        match event.kind {
            EventKind::Scheduled { .. } => Self::remind(ctx, &config, event, &record.id),
            _ => Self::schedule(ctx, &config, event, &record.id),
        }
    }
}

stagecraft_sdk::export_rule!(RenewalReminder);
stagecraft_sdk::export_config_schema!(Config);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use stagecraft_sdk::testing::{self, Effect, MockHost};

    /// 2025-01-01 (`testing::EPOCH`) as days since 1970-01-01.
    const EPOCH_DAY: i64 = 20_089;
    const H: u64 = 3600;
    const D: u64 = 24 * H;

    fn deal(end: Value) -> Record {
        let mut d = testing::deal("d1", "Acme renewal", "sales", "won", 12_000.0);
        d.currency = Some("EUR".into());
        d.owner = Some("ann".into());
        d.custom.insert(CONTRACT_END.into(), end);
        d
    }

    fn config() -> &'static str {
        r#"{"owner_emails": {"ann": "ann@acme.io"}, "managers": {"ann": "boss@acme.io"}}"#
    }

    fn due(end: &str, n: u32, at: &str) -> Event {
        let mut e = Event::scheduled(
            deal(json!(end)),
            json!({"days_before": n, "contract_end": end}),
        );
        e.occurred_at = at.into();
        e
    }

    fn schedules(host: &MockHost) -> Vec<(u64, Value)> {
        host.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Schedule { seconds, payload } => Some((*seconds, payload.clone())),
                _ => None,
            })
            .collect()
    }

    fn warned(host: &MockHost, text: &str) -> bool {
        host.logs
            .iter()
            .any(|(l, m)| *l == Level::Warn && m.contains(text))
    }

    // --- date math -------------------------------------------------------------------------

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2025, 1, 1), EPOCH_DAY);
        assert_eq!(days_from_civil(2025, 6, 30), EPOCH_DAY + 180);
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28),
            2
        );
        assert_eq!(
            days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28),
            1
        );
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(parse_date("2025-01-01"), Some(EPOCH_DAY));
        assert_eq!(parse_date("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(parse_date("2000-02-29"), Some(days_from_civil(2000, 2, 29)));
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2025-04-31",
            "2025-13-01",
            "2025-00-10",
            "2025-01-00",
            "2025-1-01",
            "25-01-01",
            "2025/01/01",
            "2025-01-01T00:00:00Z",
            " 2025-01-01",
            "+202-01-01",
            "2025-01-0é",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_parse_with_offsets_and_fractions() {
        let epoch = EPOCH_DAY * DAY;
        assert_eq!(parse_rfc3339("2025-01-01T00:00:00Z"), Some(epoch));
        assert_eq!(
            parse_rfc3339("2025-01-01t09:30:15z"),
            Some(epoch + 9 * 3600 + 30 * 60 + 15)
        );
        assert_eq!(parse_rfc3339("2025-01-01T00:00:00.999999Z"), Some(epoch));
        assert_eq!(parse_rfc3339("2025-01-01T02:00:00+02:00"), Some(epoch));
        assert_eq!(parse_rfc3339("2024-12-31T19:00:00-05:00"), Some(epoch));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+00:00"), Some(0));
        for bad in [
            "2025-01-01",
            "2025-01-01T00:00:00",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:60:00Z",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00+0200",
            "2025-01-01X00:00:00Z",
            "2025-01-01T00:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn plan_keeps_future_reminders_in_order() {
        let now = EPOCH_DAY * DAY;
        let end = EPOCH_DAY + 180; // 2025-06-30
        let plan = plan(&[7, 90, 30, 30], 9, end, now);
        let days: Vec<u32> = plan.iter().map(|(n, _)| *n).collect();
        assert_eq!(days, [90, 30, 7]);
        assert_eq!(plan[0].1 - now, 90 * DAY + 9 * 3600);
        // 8 days out at 09:00: only the -7 reminder (tomorrow 09:00) is ahead.
        assert_eq!(
            super::plan(&[90, 30, 7], 9, EPOCH_DAY + 8, now),
            [(7, now + DAY + 9 * 3600)]
        );
        // A reminder due exactly now is not ahead.
        assert!(super::plan(&[7], 0, EPOCH_DAY + 7, now).is_empty());
        assert!(super::plan(&[7], 0, EPOCH_DAY - 1, now).is_empty());
    }

    #[test]
    fn long_delays_are_capped() {
        assert_eq!(delay_until(100, 40, 365), 60);
        assert_eq!(delay_until(1000 * DAY, 0, 365), 365 * D);
        assert_eq!(delay_until(0, 10, 365), 0);
    }

    // --- scheduling ------------------------------------------------------------------------

    #[test]
    fn schedules_every_reminder_still_ahead() -> Result<(), String> {
        let mut host = MockHost::new().with_config(config());
        host.run::<RenewalReminder>(&Event::stage_changed(
            deal(json!("2025-06-30")),
            "negotiation",
            "won",
        ))?;
        assert_eq!(
            schedules(&host),
            vec![
                (
                    90 * D + 9 * H,
                    json!({"days_before": 90, "contract_end": "2025-06-30"})
                ),
                (
                    150 * D + 9 * H,
                    json!({"days_before": 30, "contract_end": "2025-06-30"})
                ),
                (
                    173 * D + 9 * H,
                    json!({"days_before": 7, "contract_end": "2025-06-30"})
                ),
            ]
        );
        assert_eq!(
            host.effects.len(),
            3,
            "scheduling writes nothing and sends nothing"
        );
        Ok(())
    }

    #[test]
    fn skips_reminders_already_past_and_honours_config() -> Result<(), String> {
        let mut host =
            MockHost::new().with_config(r#"{"days_before": [60, 14, 1], "hour_utc": 15}"#);
        host.run::<RenewalReminder>(&Event::updated(deal(json!("2025-01-20")), &[CONTRACT_END]))?;
        assert_eq!(
            schedules(&host),
            vec![
                (
                    5 * D + 15 * H,
                    json!({"days_before": 14, "contract_end": "2025-01-20"})
                ),
                (
                    18 * D + 15 * H,
                    json!({"days_before": 1, "contract_end": "2025-01-20"})
                ),
            ]
        );
        Ok(())
    }

    #[test]
    fn measures_from_the_event_time_not_the_clock() -> Result<(), String> {
        let mut host = MockHost::new();
        let mut e = Event::created(deal(json!("2025-06-30")));
        e.occurred_at = "2025-06-22T10:00:00+02:00".into(); // 08:00 UTC, 8 days before the end
        host.run::<RenewalReminder>(&e)?;
        assert_eq!(
            schedules(&host),
            vec![(
                D + H,
                json!({"days_before": 7, "contract_end": "2025-06-30"})
            )]
        );
        Ok(())
    }

    #[test]
    fn far_reminders_hop_within_the_host_limit() -> Result<(), String> {
        let mut host = MockHost::new();
        host.run::<RenewalReminder>(&Event::created(deal(json!("2027-06-30"))))?;
        let s = schedules(&host);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|(secs, _)| *secs == 365 * D), "{s:?}");

        // The hop comes due early: it schedules the rest and sends nothing.
        let mut host = MockHost::new().with_config(config());
        host.run::<RenewalReminder>(&due("2027-06-30", 90, "2026-06-01T00:00:00Z"))?;
        let end = days_from_civil(2027, 6, 30);
        let rest = u64::try_from(reminder_at(end, 90, 9) - days_from_civil(2026, 6, 1) * DAY)
            .map_err(|e| e.to_string())?;
        assert_eq!(
            schedules(&host),
            vec![(
                rest,
                json!({"days_before": 90, "contract_end": "2027-06-30"})
            )]
        );
        assert!(host.queued().is_empty());
        Ok(())
    }

    #[test]
    fn past_contracts_schedule_nothing() -> Result<(), String> {
        let mut host = MockHost::new();
        host.run::<RenewalReminder>(&Event::created(deal(json!("2024-12-31"))))?;
        assert!(host.effects.is_empty());
        assert!(host
            .logs
            .iter()
            .any(|(_, m)| m.contains("no reminder is still ahead")));
        Ok(())
    }

    #[test]
    fn missing_or_invalid_contract_end_only_warns() -> Result<(), String> {
        for end in [
            json!("2025-02-30"),
            json!("June 30th"),
            json!(20250630),
            json!(null),
        ] {
            let mut d = deal(end.clone());
            if end.is_null() {
                d.custom.remove(CONTRACT_END);
            }
            let mut host = MockHost::new();
            host.run::<RenewalReminder>(&Event::created(d))?;
            assert!(host.effects.is_empty(), "{end}");
            assert!(
                warned(&host, "no renewal reminders"),
                "{end}: {:?}",
                host.logs
            );
        }
        Ok(())
    }

    #[test]
    fn ignores_other_records_and_deletions() -> Result<(), String> {
        let mut lead = testing::lead("l1", "Lead", "leads", "new");
        lead.custom.insert(CONTRACT_END.into(), json!("2025-06-30"));
        let mut host = MockHost::new();
        host.run::<RenewalReminder>(&Event::created(lead))?;
        host.run::<RenewalReminder>(&Event::deleted(deal(json!("2025-06-30"))))?;
        host.run::<RenewalReminder>(&Event::inbound("ping", json!({}), None))?;
        assert!(host.effects.is_empty());
        Ok(())
    }

    // --- reminding -------------------------------------------------------------------------

    #[test]
    fn reminds_the_owner_once_per_contract_end() -> Result<(), String> {
        let mut host = MockHost::new().with_config(config());
        let event = due("2025-06-30", 90, "2025-04-01T09:00:00Z");
        host.run::<RenewalReminder>(&event)?;
        let sent = host.queued();
        assert_eq!(sent.len(), 1, "no escalation at -90");
        assert_eq!(sent[0].channel, Channel::Email);
        assert_eq!(sent[0].to, "ann@acme.io");
        assert_eq!(sent[0].subject, "Renewal in 90 days: Acme renewal");
        assert!(
            sent[0].body.contains("12000.00 EUR") && sent[0].body.contains("2025-06-30"),
            "{}",
            sent[0].body
        );
        assert_eq!(
            sent[0].idempotency_key.as_deref(),
            Some("renewal/d1/2025-06-30/90")
        );
        assert_eq!(
            host.record("d1")
                .and_then(|d| d.custom_field::<u32>(REMINDED)),
            Some(90)
        );

        // The same reminder again (re-trigger): the same key, so the host sends it once, and
        // the field is already right.
        host.run::<RenewalReminder>(&event)?;
        let keys: Vec<_> = host
            .queued()
            .iter()
            .map(|m| m.idempotency_key.clone())
            .collect();
        assert_eq!(keys[0], keys[1]);
        let writes = host
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::SetField { .. }))
            .count();
        assert_eq!(writes, 1);
        Ok(())
    }

    #[test]
    fn escalates_to_the_manager_at_the_threshold() -> Result<(), String> {
        let mut host = MockHost::new().with_config(config());
        host.run::<RenewalReminder>(&due("2025-06-30", 7, "2025-06-23T09:00:00Z"))?;
        let sent = host.queued();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[0].idempotency_key.as_deref(),
            Some("renewal/d1/2025-06-30/7")
        );
        assert_eq!(sent[1].to, "boss@acme.io");
        assert_eq!(
            sent[1].idempotency_key.as_deref(),
            Some("renewal-escalation/d1/2025-06-30")
        );
        assert!(sent[1].body.contains("owned by ann"), "{}", sent[1].body);
        assert_eq!(
            host.record("d1")
                .and_then(|d| d.custom_field::<u32>(REMINDED)),
            Some(7)
        );
        Ok(())
    }

    #[test]
    fn escalation_threshold_is_configurable() -> Result<(), String> {
        let mut host = MockHost::new().with_config(
            r#"{"escalate_at_days": 30, "default_email": "renewals@acme.io", "managers": {"ann": "boss@acme.io"}}"#,
        );
        host.run::<RenewalReminder>(&due("2025-06-30", 30, "2025-05-31T09:00:00Z"))?;
        let to: Vec<_> = host.queued().iter().map(|m| m.to.clone()).collect();
        assert_eq!(
            to,
            ["renewals@acme.io", "boss@acme.io"],
            "default_email stands in for unmapped owners"
        );
        Ok(())
    }

    #[test]
    fn without_any_recipient_nothing_is_sent_or_marked() -> Result<(), String> {
        let mut host = MockHost::new();
        host.run::<RenewalReminder>(&due("2025-06-30", 7, "2025-06-23T09:00:00Z"))?;
        assert!(host.effects.is_empty());
        assert!(warned(&host, "no default_email"));
        assert!(warned(&host, "not escalated"));
        Ok(())
    }

    #[test]
    fn a_changed_contract_end_drops_the_old_reminder() -> Result<(), String> {
        let renewed = deal(json!("2026-06-30"));
        let mut host = MockHost::new().with_config(config()).with_record(renewed);
        host.run::<RenewalReminder>(&due("2025-06-30", 30, "2025-05-31T09:00:00Z"))?;
        assert!(host.effects.is_empty());
        assert!(host.logs.iter().any(|(_, m)| m.contains("dropped")));

        let mut cleared = deal(json!(null));
        cleared.custom.remove(CONTRACT_END);
        let mut host = MockHost::new().with_config(config()).with_record(cleared);
        host.run::<RenewalReminder>(&due("2025-06-30", 30, "2025-05-31T09:00:00Z"))?;
        assert!(host.effects.is_empty());
        Ok(())
    }

    #[test]
    fn reminders_removed_from_the_config_are_dropped() -> Result<(), String> {
        let mut host = MockHost::new()
            .with_config(r#"{"days_before": [30, 7], "default_email": "r@acme.io"}"#);
        host.run::<RenewalReminder>(&due("2025-06-30", 90, "2025-04-01T09:00:00Z"))?;
        assert!(host.effects.is_empty());
        Ok(())
    }

    #[test]
    fn foreign_payloads_and_vanished_deals_are_ignored() -> Result<(), String> {
        let mut host = MockHost::new().with_config(config());
        host.run::<RenewalReminder>(&Event::scheduled(
            deal(json!("2025-06-30")),
            json!({"step": 1}),
        ))?;
        assert!(host.effects.is_empty());
        assert!(warned(&host, "not a renewal reminder"));

        // The deal was deleted before the reminder came due (`rule::run` does not store the
        // event's record the way `MockHost::run` does).
        let mut host = MockHost::new().with_config(config());
        stagecraft_sdk::rule::run::<RenewalReminder>(
            &mut host,
            &due("2025-06-30", 30, "2025-05-31T09:00:00Z"),
        )?;
        assert!(host.effects.is_empty());
        assert!(host.logs.iter().any(|(_, m)| m.contains("d1 is gone")));
        Ok(())
    }

    #[test]
    fn bad_config_names_the_problem() {
        for (config, needle) in [
            (r#"{"days_befor": [1]}"#, "days_befor"),
            (r#"{"hour_utc": 24}"#, "hour_utc"),
            (r#"{"days_before": []}"#, "days_before"),
            (r#"{"max_delay_days": 400}"#, "max_delay_days"),
            (r#"{"days_before": [-1]}"#, "-1"),
        ] {
            let mut host = MockHost::new().with_config(config);
            let err = host
                .run::<RenewalReminder>(&Event::created(deal(json!("2025-06-30"))))
                .unwrap_err();
            assert!(err.contains(needle), "{config}: {err}");
            assert!(host.effects.is_empty());
        }
    }

    #[test]
    fn an_unreadable_event_time_fails_the_run() {
        let mut e = Event::created(deal(json!("2025-06-30")));
        e.occurred_at = "yesterday".into();
        let err = MockHost::new().run::<RenewalReminder>(&e).unwrap_err();
        assert!(err.contains("unreadable time"), "{err}");
    }
}
