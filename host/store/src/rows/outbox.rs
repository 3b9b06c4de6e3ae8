//! Outbox rows: messages (head first: status, channel, record), notifications, and a
//! tenant's channel settings.

use serde::{Deserialize, Serialize};
use stagecraft_model::delivery::{EmailConfig, SmsConfig, TlsMode, WebhookConfig};
use stagecraft_model::{
    Attempt, Channel, ChannelConfig, MessageStatus, Notification, OutboxMessage,
};

use super::{opt_ts, stored_row, ts_opt, RowError, Ts};

/// Delivery channels (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum ChannelRow {
    Email,
    Sms,
    Webhook,
    Notify,
}

impl From<Channel> for ChannelRow {
    fn from(c: Channel) -> ChannelRow {
        match c {
            Channel::Email => ChannelRow::Email,
            Channel::Sms => ChannelRow::Sms,
            Channel::Webhook => ChannelRow::Webhook,
            Channel::Notify => ChannelRow::Notify,
        }
    }
}

impl From<ChannelRow> for Channel {
    fn from(c: ChannelRow) -> Channel {
        match c {
            ChannelRow::Email => Channel::Email,
            ChannelRow::Sms => Channel::Sms,
            ChannelRow::Webhook => Channel::Webhook,
            ChannelRow::Notify => Channel::Notify,
        }
    }
}

/// Message statuses (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum StatusRow {
    Queued,
    Sending,
    Sent,
    Dead,
}

impl From<MessageStatus> for StatusRow {
    fn from(s: MessageStatus) -> StatusRow {
        match s {
            MessageStatus::Queued => StatusRow::Queued,
            MessageStatus::Sending => StatusRow::Sending,
            MessageStatus::Sent => StatusRow::Sent,
            MessageStatus::Dead => StatusRow::Dead,
        }
    }
}

impl From<StatusRow> for MessageStatus {
    fn from(s: StatusRow) -> MessageStatus {
        match s {
            StatusRow::Queued => MessageStatus::Queued,
            StatusRow::Sending => MessageStatus::Sending,
            StatusRow::Sent => MessageStatus::Sent,
            StatusRow::Dead => MessageStatus::Dead,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AttemptRow {
    at: Ts,
    status: Option<u16>,
    error: Option<String>,
    duration_ms: u64,
}

/// An outbox message. The first three fields are [`MessageHeadRow`]: keep them first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MessageRow {
    status: StatusRow,
    channel: ChannelRow,
    record: Option<String>,
    id: String,
    to: String,
    subject: String,
    body: String,
    idempotency_key: Option<String>,
    run: String,
    created_at: Ts,
    attempts: Vec<AttemptRow>,
    next_attempt_at: Option<Ts>,
    sent_at: Option<Ts>,
}

/// The leading fields of a [`MessageRow`]: what a message filter looks at.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageHeadRow {
    pub status: StatusRow,
    pub channel: ChannelRow,
    pub record: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NotificationRow {
    id: String,
    user: String,
    subject: String,
    body: String,
    record: Option<String>,
    created_at: Ts,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum TlsRow {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EmailRow {
    host: String,
    port: u16,
    tls: TlsRow,
    username: Option<String>,
    password: Option<String>,
    from: String,
    timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WebhookRow {
    allowed_hosts: Vec<String>,
    timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SmsRow {
    url: String,
    token: Option<String>,
    timeout_seconds: Option<u32>,
}

/// A tenant's channel settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChannelConfigRow {
    email: Option<EmailRow>,
    webhook: Option<WebhookRow>,
    sms: Option<SmsRow>,
}

stored_row!(
    MessageRow => "message", 1;
    NotificationRow => "notification", 1;
    ChannelConfigRow => "channel settings", 1;
);

impl From<&OutboxMessage> for MessageRow {
    fn from(m: &OutboxMessage) -> MessageRow {
        MessageRow {
            status: m.status.into(),
            channel: m.channel.into(),
            record: m.record.clone(),
            id: m.id.clone(),
            to: m.to.clone(),
            subject: m.subject.clone(),
            body: m.body.clone(),
            idempotency_key: m.idempotency_key.clone(),
            run: m.run.clone(),
            created_at: (&m.created_at).into(),
            attempts: m
                .attempts
                .iter()
                .map(|a| AttemptRow {
                    at: (&a.at).into(),
                    status: a.status,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                })
                .collect(),
            next_attempt_at: ts_opt(&m.next_attempt_at),
            sent_at: ts_opt(&m.sent_at),
        }
    }
}

impl TryFrom<MessageRow> for OutboxMessage {
    type Error = RowError;

    fn try_from(m: MessageRow) -> Result<OutboxMessage, RowError> {
        Ok(OutboxMessage {
            id: m.id,
            channel: m.channel.into(),
            to: m.to,
            subject: m.subject,
            body: m.body,
            idempotency_key: m.idempotency_key,
            record: m.record,
            run: m.run,
            status: m.status.into(),
            created_at: m.created_at.get()?,
            attempts: m
                .attempts
                .into_iter()
                .map(|a| {
                    Ok(Attempt {
                        at: a.at.get()?,
                        status: a.status,
                        error: a.error,
                        duration_ms: a.duration_ms,
                    })
                })
                .collect::<Result<_, RowError>>()?,
            next_attempt_at: opt_ts(m.next_attempt_at)?,
            sent_at: opt_ts(m.sent_at)?,
        })
    }
}

impl From<&Notification> for NotificationRow {
    fn from(n: &Notification) -> NotificationRow {
        NotificationRow {
            id: n.id.clone(),
            user: n.user.clone(),
            subject: n.subject.clone(),
            body: n.body.clone(),
            record: n.record.clone(),
            created_at: (&n.created_at).into(),
        }
    }
}

impl TryFrom<NotificationRow> for Notification {
    type Error = RowError;

    fn try_from(n: NotificationRow) -> Result<Notification, RowError> {
        Ok(Notification {
            id: n.id,
            user: n.user,
            subject: n.subject,
            body: n.body,
            record: n.record,
            created_at: n.created_at.get()?,
        })
    }
}

impl From<&ChannelConfig> for ChannelConfigRow {
    fn from(c: &ChannelConfig) -> ChannelConfigRow {
        ChannelConfigRow {
            email: c.email.as_ref().map(|e| EmailRow {
                host: e.host.clone(),
                port: e.port,
                tls: match e.tls {
                    TlsMode::None => TlsRow::None,
                    TlsMode::Starttls => TlsRow::Starttls,
                    TlsMode::Tls => TlsRow::Tls,
                },
                username: e.username.clone(),
                password: e.password.clone(),
                from: e.from.clone(),
                timeout_seconds: e.timeout_seconds,
            }),
            webhook: c.webhook.as_ref().map(|w| WebhookRow {
                allowed_hosts: w.allowed_hosts.clone(),
                timeout_seconds: w.timeout_seconds,
            }),
            sms: c.sms.as_ref().map(|s| SmsRow {
                url: s.url.clone(),
                token: s.token.clone(),
                timeout_seconds: s.timeout_seconds,
            }),
        }
    }
}

impl From<ChannelConfigRow> for ChannelConfig {
    fn from(c: ChannelConfigRow) -> ChannelConfig {
        ChannelConfig {
            email: c.email.map(|e| EmailConfig {
                host: e.host,
                port: e.port,
                tls: match e.tls {
                    TlsRow::None => TlsMode::None,
                    TlsRow::Starttls => TlsMode::Starttls,
                    TlsRow::Tls => TlsMode::Tls,
                },
                username: e.username,
                password: e.password,
                from: e.from,
                timeout_seconds: e.timeout_seconds,
            }),
            webhook: c.webhook.map(|w| WebhookConfig {
                allowed_hosts: w.allowed_hosts,
                timeout_seconds: w.timeout_seconds,
            }),
            sms: c.sms.map(|s| SmsConfig {
                url: s.url,
                token: s.token,
                timeout_seconds: s.timeout_seconds,
            }),
        }
    }
}
