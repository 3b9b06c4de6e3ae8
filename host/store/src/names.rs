//! The names enum values take where storage keeps them as text (sled's index keys,
//! PostgreSQL's columns): the storage's own, one copy for both backends, so renaming an
//! API variant's serde name never moves an index entry or a row.

use stagecraft_model::{Channel, MessageStatus, RecordKind};

/// A record kind as stored (PostgreSQL's `kind` column).
pub fn kind_name(k: RecordKind) -> &'static str {
    match k {
        RecordKind::Lead => "lead",
        RecordKind::Contact => "contact",
        RecordKind::Company => "company",
        RecordKind::Deal => "deal",
    }
}

/// A message status as stored (sled's `ms` index keys, PostgreSQL's `status` column; its
/// SQL names `queued`, `sending` and `sent` too).
pub fn status_name(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Queued => "queued",
        MessageStatus::Sending => "sending",
        MessageStatus::Sent => "sent",
        MessageStatus::Dead => "dead",
    }
}

/// A channel as stored (PostgreSQL's `channel` column).
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Webhook => "webhook",
        Channel::Notify => "notify",
    }
}
