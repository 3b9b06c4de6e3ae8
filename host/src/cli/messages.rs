//! `stagecraft messages`: the outbox — what modules queued, where it goes, and whether it
//! was delivered.

use super::client::{typed, Client};
use super::{table, CliError, MessagesArgs};
use crate::delivery::{MessageView, WaitReason};
use crate::model::MessageStatus;

/// Lists outbox messages, oldest first.
pub async fn list(client: &Client, a: MessagesArgs, json: bool) -> Result<(), CliError> {
    let mut query: Vec<(&str, String)> = vec![("limit", a.limit.to_string())];
    for (k, v) in [
        ("status", a.status),
        ("channel", a.channel),
        ("record", a.record),
    ] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    let v = client.get(&["v1", "messages"], &query).await?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let messages: Vec<MessageView> = typed(&v["messages"], "message list")?;
    let mut t = table::new(&[
        "MESSAGE", "CREATED", "CHANNEL", "TO", "SUBJECT", "STATUS", "ATTEMPTS", "RECORD",
    ]);
    for m in &messages {
        let status = status(m);
        t.add_row([
            m.id.clone(),
            table::time(&m.created_at),
            m.channel.as_str().to_string(),
            m.to.clone(),
            clip(&m.subject, 40),
            status,
            m.attempts.len().to_string(),
            m.record.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table::print(&t, "no messages");
    Ok(())
}

/// The status, and for a queued message why it waits: `queued: email channel not
/// configured`, `queued: retry after 2 failed attempts (next …)`.
fn status(m: &MessageView) -> String {
    match m.status {
        MessageStatus::Queued => match (&m.waiting, m.next_attempt_at) {
            (Some(w), Some(at)) if w.reason == WaitReason::RetryScheduled => {
                format!("queued: {} (next {})", w.message, table::time(&at))
            }
            (Some(w), _) if w.reason == WaitReason::ChannelNotConfigured => {
                format!("queued: {}", w.message)
            }
            _ => "queued".into(),
        },
        MessageStatus::Sending => "sending".into(),
        MessageStatus::Sent => "sent".into(),
        MessageStatus::Dead => "dead".into(),
    }
}

/// At most `n` characters of `s`, with `…` when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}
