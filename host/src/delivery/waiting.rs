//! Why a queued message is still queued, as the API shows it. Worked out when the message is
//! read, from the tenant's channel settings as they are at that moment (plus the server's),
//! not stored: settings change without touching the messages they affect, so a stored reason
//! would say "not configured" until the worker next looked, and storing one would mean a
//! write per message on every recheck.

use std::ops::Deref;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::configured;
use crate::model::{ChannelConfig, MessageStatus, OutboxMessage};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// The channel has no settings (tenant's or server's): nothing is tried until it has.
    ChannelNotConfigured,
    /// An attempt failed; the next one is due at `next_attempt_at`.
    RetryScheduled,
    /// Due now or soon: waiting for a delivery slot.
    Due,
}

/// The reason, and the same in words.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Waiting {
    pub reason: WaitReason,
    /// E.g. `email channel not configured`.
    pub message: String,
}

/// A message as the API shows it: what is stored, plus why it waits while it is queued.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct MessageView {
    #[serde(flatten)]
    pub message: OutboxMessage,
    /// Present while the message is `queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

impl Deref for MessageView {
    type Target = OutboxMessage;

    fn deref(&self) -> &OutboxMessage {
        &self.message
    }
}

impl MessageView {
    /// `m` with its waiting reason under `settings` (the settings in force for its tenant).
    pub fn new(message: OutboxMessage, settings: &ChannelConfig) -> MessageView {
        let waiting = waiting(&message, settings);
        MessageView { message, waiting }
    }
}

fn waiting(m: &OutboxMessage, settings: &ChannelConfig) -> Option<Waiting> {
    if m.status != MessageStatus::Queued {
        return None;
    }
    let (reason, message) = if !configured(settings, m.channel) {
        (
            WaitReason::ChannelNotConfigured,
            format!("{} channel not configured", m.channel.as_str()),
        )
    } else if !m.attempts.is_empty() {
        let n = m.attempts.len();
        let s = if n == 1 { "" } else { "s" };
        (
            WaitReason::RetryScheduled,
            format!("retry after {n} failed attempt{s}"),
        )
    } else {
        (WaitReason::Due, "due: waiting for a delivery slot".into())
    };
    Some(Waiting { reason, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Channel;

    fn message(channel: Channel, status: MessageStatus, attempts: usize) -> OutboxMessage {
        let attempt = crate::model::Attempt {
            at: chrono::Utc::now(),
            status: Some(503),
            error: Some("HTTP 503 Service Unavailable".into()),
            duration_ms: 1,
        };
        OutboxMessage {
            id: "msg_1".into(),
            channel,
            to: "ada@example.com".into(),
            subject: "hi".into(),
            body: "hello".into(),
            idempotency_key: None,
            record: None,
            run: "run_1".into(),
            status,
            created_at: chrono::Utc::now(),
            attempts: vec![attempt; attempts],
            next_attempt_at: None,
            sent_at: None,
        }
    }

    #[test]
    fn the_reason_follows_the_settings_in_force() {
        let none = ChannelConfig::default();
        let v = MessageView::new(message(Channel::Email, MessageStatus::Queued, 0), &none);
        let w = v.waiting.clone().expect("waiting");
        assert_eq!(w.reason, WaitReason::ChannelNotConfigured);
        assert_eq!(w.message, "email channel not configured");
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(json["waiting"]["reason"], "channel_not_configured");
        assert_eq!(
            json["id"], "msg_1",
            "the message's own fields stay at the top level"
        );

        let sms: ChannelConfig =
            serde_json::from_value(serde_json::json!({"sms": {"url": "https://sms.example.com"}}))
                .expect("settings");
        let v = MessageView::new(message(Channel::Sms, MessageStatus::Queued, 2), &sms);
        assert_eq!(
            v.waiting.map(|w| (w.reason, w.message)),
            Some((
                WaitReason::RetryScheduled,
                "retry after 2 failed attempts".into()
            ))
        );
        let v = MessageView::new(message(Channel::Notify, MessageStatus::Queued, 0), &none);
        assert_eq!(v.waiting.map(|w| w.reason), Some(WaitReason::Due));
        for status in [
            MessageStatus::Sending,
            MessageStatus::Sent,
            MessageStatus::Dead,
        ] {
            let v = MessageView::new(message(Channel::Email, status, 1), &none);
            assert_eq!(v.waiting, None);
            assert!(serde_json::to_value(&v)
                .expect("json")
                .get("waiting")
                .is_none());
        }
    }
}
