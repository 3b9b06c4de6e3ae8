//! The outbox as delivery sees it: the due index (read in bounded steps, so no backlog hides
//! what lies behind it), claiming one message for an attempt, recording the result; channel
//! settings, webhook secrets and in-app notifications.

use std::ops::Bound;

use chrono::{DateTime, Utc};

use super::codec::{Decode, Marker, MessageHead};
use super::page::{fill, Fetched};
use super::postings::Dir;
use super::tx::Tx;
use super::{family, index, SledBackend};
use crate::query::{DueMessage, ListLimits, MessageFilter, Page};
use crate::{Result, StoreError};
use stagecraft_model::{ChannelConfig, MessageStatus, Notification, OutboxMessage};

impl SledBackend {
    /// Messages matching `filter`, oldest first (ids sort by time), after message id
    /// `after`, at most `limit` within the page's byte budget: read from the message
    /// indexes (status, channel, record; several intersected), or the outbox itself.
    pub(super) fn messages(
        &self,
        tenant: &str,
        filter: &MessageFilter,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<OutboxMessage>> {
        let mut lists = Vec::new();
        if let Some(s) = filter.status {
            lists.push(index::prefix("ms", tenant, &[index::status_name(s)]));
        }
        if let Some(c) = filter.channel {
            lists.push(index::prefix("mc", tenant, &[c.as_str()]));
        }
        if let Some(r) = &filter.record {
            lists.push(index::prefix("mr", tenant, &[r]));
        }
        if lists.is_empty() {
            lists.push(family::messages(tenant));
        }
        fill(self, &lists, after, Dir::Up, limit, limits, None, |id| {
            let key = family::message(tenant, id);
            let Some(bytes) = self.data.get(&key)? else {
                return Ok(Fetched::Mismatch { key, bytes: None });
            };
            let m = MessageHead::decode(&key, &bytes)?;
            let keep = filter.status.is_none_or(|s| m.status == s)
                && filter.channel.is_none_or(|c| m.channel == c)
                && filter
                    .record
                    .as_ref()
                    .is_none_or(|r| m.record.as_ref() == Some(r));
            Ok(if keep {
                Fetched::Item(bytes.len(), Decode::decode(&key, &bytes)?)
            } else {
                Fetched::Mismatch {
                    key,
                    bytes: Some(bytes),
                }
            })
        })
    }

    /// How many messages wait for a delivery attempt, across tenants (the `due/` index).
    pub(super) fn outbox_depth(&self) -> Result<u64> {
        let mut n = 0;
        for item in self.data.scan_prefix(family::DUE) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Reads the due index (entries due by `until`) in time order from `start`, looking at
    /// `budget` entries at most. Returns them with the last key looked at, where the next
    /// read goes on, or None once the end was reached. An entry costs one key read and
    /// nothing else, so a sweep that goes on where it stopped passes a tenant's backlog in
    /// bounded steps and reaches every other tenant's entries behind it.
    pub(super) fn due_range(
        &self,
        start: Bound<Vec<u8>>,
        until: DateTime<Utc>,
        budget: usize,
    ) -> Result<(Vec<DueMessage>, Option<String>)> {
        let end = family::due(until.timestamp_millis().saturating_add(1), "", "").into_bytes();
        if matches!(&start, Bound::Included(s) | Bound::Excluded(s) if *s >= end) {
            return Ok((Vec::new(), None));
        }
        let mut out = Vec::new();
        let mut last: Option<sled::IVec> = None;
        for (looked, item) in self.data.range((start, Bound::Excluded(end))).enumerate() {
            if looked == budget {
                return Ok((out, last.map(|k| String::from_utf8_lossy(&k).into_owned())));
            }
            let (k, _) = item?;
            if let Ok(key) = std::str::from_utf8(&k) {
                let mut parts = key.split('/').skip(2);
                if let (Some(tenant), Some(id)) = (parts.next(), parts.next()) {
                    out.push(DueMessage {
                        tenant: tenant.to_string(),
                        id: id.to_string(),
                        key: key.to_string(),
                    });
                }
            }
            last = Some(k);
        }
        Ok((out, None))
    }

    /// Moves a due message to `sending` for one attempt. None when it is no longer queued
    /// (its stale due entry is dropped). Not flushed: the attempt's result is, and a claim
    /// lost in a crash leaves the message queued — the same single extra attempt a
    /// `sending` message gets at start-up.
    pub(super) fn claim_message(&self, due: &DueMessage) -> Result<Option<OutboxMessage>> {
        self.transact_as(crate::Durability::Lazy, |tx| {
            if !tx.remove(&due.key)? {
                return Ok(None);
            }
            let key = family::message(&due.tenant, &due.id);
            let Some(mut m) = tx.get::<OutboxMessage>(&key)? else {
                return Ok(None);
            };
            if m.status != MessageStatus::Queued {
                return Ok(None);
            }
            m.status = MessageStatus::Sending;
            tx.put(&key, &m)?;
            index::message_status(
                tx,
                &due.tenant,
                &due.id,
                Some(MessageStatus::Queued),
                MessageStatus::Sending,
            )?;
            Ok(Some(m))
        })
    }

    /// After a crash, messages caught mid-attempt go back to the queue: each is delivered at
    /// most once more, with the same id and idempotency key.
    pub(super) fn requeue_interrupted(&self) -> Result<u64> {
        let mut n = 0;
        let stuck: Vec<(String, OutboxMessage)> = self
            .scan::<OutboxMessage>("out/", None)
            .filter_map(|r| r.ok())
            .filter(|(_, m)| m.status == MessageStatus::Sending)
            .collect();
        for (key, mut m) in stuck {
            let tenant = key.split('/').nth(1).unwrap_or_default().to_string();
            m.status = MessageStatus::Queued;
            m.next_attempt_at = Some(Utc::now());
            self.transact(|tx| {
                finish(tx, &tenant, &m)?;
                let (id, sending) = (&m.id, Some(MessageStatus::Sending));
                index::message_status(tx, &tenant, id, sending, MessageStatus::Queued)
            })?;
            n += 1;
        }
        Ok(n)
    }

    /// The tenant's channel settings (the default when it has none).
    pub(super) fn channels(&self, tenant: &str) -> Result<Option<ChannelConfig>> {
        self.get(&family::channels(tenant))
    }

    /// A user's notifications, oldest first, after notification id `after`, at most
    /// `limit` and within the page's byte budget.
    pub(super) fn notifications(
        &self,
        tenant: &str,
        user: &str,
        after: Option<&str>,
        limit: usize,
        limits: &ListLimits,
    ) -> Result<Page<Notification>> {
        let lists = [family::notifications(tenant, user)];
        fill(self, &lists, after, Dir::Up, limit, limits, None, |id| {
            self.fetch(&family::notification(tenant, user, id))
        })
    }
}

/// Leaves a due message queued but looks at it again at `at`.
pub(super) fn defer(tx: &Tx<'_>, due: &DueMessage, at: DateTime<Utc>) -> Result<()> {
    if tx.remove(&due.key)? {
        tx.put(
            &family::due(at.timestamp_millis(), &due.tenant, &due.id),
            &Marker,
        )?;
    }
    Ok(())
}

/// Stores a message after an attempt; a queued one is due again at `next_attempt_at`.
pub(super) fn finish(tx: &Tx<'_>, tenant: &str, m: &OutboxMessage) -> Result<()> {
    tx.put(&family::message(tenant, &m.id), m)?;
    if m.status == MessageStatus::Queued {
        let at = m.next_attempt_at.unwrap_or_else(Utc::now);
        tx.put(&family::due(at.timestamp_millis(), tenant, &m.id), &Marker)?;
    }
    if m.status == MessageStatus::Sent {
        // Retention finds delivered messages by when they were sent.
        let at = m.sent_at.unwrap_or_else(Utc::now);
        tx.put(&family::sent(at.timestamp_millis(), tenant, &m.id), &Marker)?;
    }
    // Stats count sent and dead messages per module and binding.
    super::stats::add_delivery(tx, tenant, m)?;
    Ok(())
}

/// Puts a dead letter back in the queue.
pub(super) fn retry(tx: &Tx<'_>, tenant: &str, id: &str) -> Result<OutboxMessage> {
    let key = family::message(tenant, id);
    let Some(mut m) = tx.get::<OutboxMessage>(&key)? else {
        return Err(StoreError::NotFound(format!("message {id:?}")));
    };
    if m.status != MessageStatus::Dead {
        return Err(StoreError::Refused(format!(
            "only dead letters can be retried; message {id:?} is {:?}",
            m.status
        )));
    }
    let now = Utc::now();
    m.status = MessageStatus::Queued;
    m.next_attempt_at = Some(now);
    m.created_at = now; // the retry window starts again
    tx.put(&key, &m)?;
    tx.put(&family::due(now.timestamp_millis(), tenant, id), &Marker)?;
    Ok(m)
}

/// Replaces the tenant's channel settings; write-only secrets left out keep their value.
pub(super) fn put_channels(
    tx: &Tx<'_>,
    tenant: &str,
    cfg: &ChannelConfig,
) -> Result<ChannelConfig> {
    let key = family::channels(tenant);
    let old: ChannelConfig = tx.get(&key)?.unwrap_or_default();
    let mut new = cfg.clone();
    // A kept secret only ever goes where it went before: changing the destination
    // without resending the secret drops it.
    if let (Some(n), Some(o)) = (&mut new.email, &old.email) {
        if n.password.is_none() && n.host == o.host && n.port == o.port {
            n.password = o.password.clone();
        }
    }
    if let (Some(n), Some(o)) = (&mut new.sms, &old.sms) {
        if n.token.is_none() && n.url == o.url {
            n.token = o.token.clone();
        }
    }
    tx.put(&key, &new)?;
    Ok(new)
}

/// Stores `secret` as the tenant's webhook signing secret unless it has one; returns the
/// one it has now.
pub(super) fn init_webhook_secret(tx: &Tx<'_>, tenant: &str, secret: &str) -> Result<String> {
    let key = family::webhook_secret(tenant);
    if let Some(s) = tx.get::<String>(&key)? {
        return Ok(s);
    }
    tx.put(&key, secret)?;
    Ok(secret.to_string())
}

pub(super) fn put_notification(tx: &Tx<'_>, tenant: &str, n: &Notification) -> Result<()> {
    tx.put(&family::notification(tenant, &n.user, &n.id), n)
}
