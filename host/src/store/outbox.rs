//! The outbox as delivery sees it: due messages, claiming one for an attempt, recording the
//! result; channel settings, webhook secrets and in-app notifications.

use chrono::{DateTime, Utc};
use rand::Rng;

use super::{family, Result, Store, StoreError};
use crate::model::{ChannelConfig, MessageStatus, Notification, OutboxMessage};

/// A queued message whose next attempt is due.
pub struct DueMessage {
    pub key: String,
    pub tenant: String,
    pub id: String,
}

#[derive(Debug, Default, Clone)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub channel: Option<crate::model::Channel>,
    pub record: Option<String>,
}

impl Store {
    pub fn message(&self, tenant: &str, id: &str) -> Result<Option<OutboxMessage>> {
        self.get(&family::message(tenant, id))
    }

    pub fn messages(
        &self,
        tenant: &str,
        filter: &MessageFilter,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>> {
        let mut out = Vec::new();
        for item in self.scan::<OutboxMessage>(&family::messages(tenant), None) {
            let (_, m) = item?;
            let keep = filter.status.is_none_or(|s| m.status == s)
                && filter.channel.is_none_or(|c| m.channel == c)
                && filter
                    .record
                    .as_ref()
                    .is_none_or(|r| m.record.as_ref() == Some(r));
            if keep {
                out.push(m);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// How many messages wait for a delivery attempt, across tenants (the `due/` index).
    pub fn outbox_depth(&self) -> Result<usize> {
        let mut n = 0;
        for item in self.data.scan_prefix(family::DUE) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Messages due at `now`, oldest first.
    pub fn due_messages(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<DueMessage>> {
        let end = family::due(now.timestamp_millis() + 1, "", "");
        let mut out = Vec::new();
        for item in self
            .data
            .range(family::DUE.as_bytes().to_vec()..end.into_bytes())
            .take(limit)
        {
            let (k, _) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let mut parts = key.split('/').skip(2);
            let (Some(tenant), Some(id)) = (parts.next(), parts.next()) else {
                continue;
            };
            out.push(DueMessage {
                tenant: tenant.to_string(),
                id: id.to_string(),
                key,
            });
        }
        Ok(out)
    }

    /// Moves a due message to `sending` for one attempt. None when it is no longer queued.
    /// Not flushed: the attempt's result is, and a claim lost in a crash leaves the message
    /// queued — the same single extra attempt a `sending` message gets at start-up.
    pub fn claim_message(&self, due: &DueMessage) -> Result<Option<OutboxMessage>> {
        self.transact_unflushed(|tx| {
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
            Ok(Some(m))
        })
    }

    /// Leaves a due message queued but looks at it again at `at` (its channel has no
    /// setting yet). Not flushed: a lost deferral only makes the message due sooner.
    pub fn defer_message(&self, due: &DueMessage, at: DateTime<Utc>) -> Result<()> {
        self.transact_unflushed(|tx| {
            if tx.remove(&due.key)? {
                tx.put(
                    &family::due(at.timestamp_millis(), &due.tenant, &due.id),
                    &(),
                )?;
            }
            Ok(())
        })
    }

    /// Stores a message after an attempt; a queued one is due again at `next_attempt_at`.
    pub fn finish_message(&self, tenant: &str, m: &OutboxMessage) -> Result<()> {
        self.transact(|tx| {
            tx.put(&family::message(tenant, &m.id), m)?;
            if m.status == MessageStatus::Queued {
                let at = m.next_attempt_at.unwrap_or_else(Utc::now);
                tx.put(&family::due(at.timestamp_millis(), tenant, &m.id), &())?;
            }
            if m.status == MessageStatus::Sent {
                // Retention finds delivered messages by when they were sent.
                let at = m.sent_at.unwrap_or_else(Utc::now);
                tx.put(&family::sent(at.timestamp_millis(), tenant, &m.id), &())?;
            }
            // Stats count sent and dead messages per module and binding.
            super::stats::add_delivery(tx, tenant, m)?;
            Ok(())
        })
    }

    /// After a crash, messages caught mid-attempt go back to the queue: each is delivered at
    /// most once more, with the same id and idempotency key.
    pub fn requeue_interrupted(&self) -> Result<usize> {
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
            self.finish_message(&tenant, &m)?;
            n += 1;
        }
        Ok(n)
    }

    /// Puts a dead letter back in the queue.
    pub fn retry_message(&self, tenant: &str, id: &str) -> Result<OutboxMessage> {
        self.transact(|tx| {
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
            tx.put(&family::due(now.timestamp_millis(), tenant, id), &())?;
            Ok(m)
        })
    }

    pub fn channels(&self, tenant: &str) -> Result<ChannelConfig> {
        Ok(self.get(&family::channels(tenant))?.unwrap_or_default())
    }

    /// Replaces the tenant's channel settings; write-only secrets left out keep their value.
    pub fn put_channels(&self, tenant: &str, cfg: &ChannelConfig) -> Result<ChannelConfig> {
        self.transact(|tx| {
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
            Ok(new.clone())
        })
    }

    /// The tenant's webhook signing secret, created on first use. Read on every webhook
    /// attempt, so only the first call pays for a (durable) transaction.
    pub fn webhook_secret(&self, tenant: &str) -> Result<String> {
        if let Some(s) = self.get::<String>(&family::webhook_secret(tenant))? {
            return Ok(s);
        }
        self.transact(|tx| {
            let key = family::webhook_secret(tenant);
            if let Some(s) = tx.get::<String>(&key)? {
                return Ok(s);
            }
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let s = format!("whsec_{}", hex::encode(bytes));
            tx.put(&key, &s)?;
            Ok(s)
        })
    }

    pub fn put_notification(&self, tenant: &str, n: &Notification) -> Result<()> {
        self.transact(|tx| tx.put(&family::notification(tenant, &n.user, &n.id), n))
    }

    pub fn notifications(
        &self,
        tenant: &str,
        user: &str,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        self.scan(&family::notifications(tenant, user), None)
            .take(limit)
            .map(|r| r.map(|(_, n)| n))
            .collect()
    }
}
