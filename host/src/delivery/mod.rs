//! Delivery: workers drain the outbox. Each queued message gets an attempt on its channel —
//! webhook (HMAC-signed POST), SMS (a provider's HTTP endpoint), email (an SMTP relay) or
//! notify (an in-app notification) — under a global, a per-tenant and a per-destination
//! concurrency limit ([`slots`]), tenants taking turns for the free slots ([`sweep`]).
//! Network errors, 429 and 5xx retry with exponential backoff and jitter (honoring
//! `Retry-After`); other 4xx and permanent SMTP errors dead-letter at once; retries stop at
//! the retry window. A channel with no settings keeps its messages queued. Every destination
//! passes the one [`Guard`] first, and an attempt records a short status, never a reply.

pub mod address;
mod backoff;
mod email;
pub mod guard;
mod http;
pub mod settings;
mod slots;
mod status;
mod sweep;
pub mod waiting;

pub use guard::{Guard, Refused};
pub use waiting::{MessageView, WaitReason, Waiting};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

use slots::{Busy, Slots};
use sweep::Sweep;

use crate::model::{Attempt, Channel, ChannelConfig, MessageStatus, Notification, OutboxMessage};
use crate::store::{Changeset, DueMessage, Op, Store, StoreError};

/// The longest rest between outbox reads while the store fails.
const READ_BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Server-wide channel settings; a tenant's own settings win, channel by channel.
    pub channels: ChannelConfig,
    /// Give up (dead-letter) when a retry would fall past this long after queueing.
    pub retry_window: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Per attempt, unless the channel sets its own `timeout_seconds` (at most
    /// [`settings::MAX_TIMEOUT_SECONDS`]).
    pub timeout: Duration,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Attempts in flight at once for one tenant; None: a quarter of `concurrency`, at least 1.
    /// A tenant never holds more, even when the others are idle: an attempt cannot be taken
    /// back, and a receiver may hold one for the channel's whole timeout.
    pub per_tenant: Option<usize>,
    /// Attempts in flight at once to one destination (host, relay or provider) of a tenant.
    pub per_destination: usize,
    /// How often the worker reads the due index.
    pub tick: Duration,
    /// How often a message on an unconfigured channel is looked at again.
    pub recheck: Duration,
    /// Let webhooks, SMS providers and SMTP relays be on loopback, private, link-local and
    /// unique-local addresses (`serve --allow-internal-destinations`). Off by default:
    /// tenants and modules choose destinations, and must not reach the host's own network.
    pub allow_internal_destinations: bool,
    /// At shutdown, how long attempts in flight may take to finish. Those still running then
    /// are abandoned: their messages stay `sending` and are re-queued at the next start.
    pub shutdown_grace: Duration,
}

impl DeliveryConfig {
    /// The per-tenant share in force.
    pub fn per_tenant(&self) -> usize {
        self.per_tenant
            .unwrap_or(self.concurrency / 4)
            .clamp(1, self.concurrency.max(1))
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            channels: ChannelConfig::default(),
            retry_window: Duration::from_secs(24 * 3600),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            concurrency: 16,
            per_tenant: None,
            per_destination: 4,
            tick: Duration::from_millis(100),
            recheck: Duration::from_secs(5),
            allow_internal_destinations: false,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// How one attempt went.
#[derive(Debug)]
pub enum Attempted {
    Sent {
        status: Option<u16>,
    },
    /// Worth trying again, no sooner than `after` if the other side said so.
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    /// Will never work as it is: dead-letter now.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

pub struct Delivery {
    store: Store,
    config: DeliveryConfig,
    guard: Guard,
    http: reqwest::Client,
    slots: Slots,
    /// Told whenever an attempt ends and frees its slots.
    freed: Notify,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Delivery {
    /// Fails when the HTTP client cannot be built: falling back to a default client would
    /// silently drop the resolver that keeps deliveries off internal addresses.
    pub fn new(store: Store, config: DeliveryConfig) -> Result<Arc<Delivery>, reqwest::Error> {
        let (stop, _) = watch::channel(false);
        let guard = Guard::new(config.allow_internal_destinations);
        // Names resolve through the guard, which is where connections get their addresses; no
        // proxy from the environment (it would resolve names the guard never sees); no redirect
        // is followed (its target would be unchecked). Each request sets its channel's timeout.
        let http = reqwest::Client::builder()
            .dns_resolver(guard.resolver())
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(u64::from(
                settings::MAX_TIMEOUT_SECONDS,
            )))
            .user_agent(concat!("stagecraft/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Delivery {
            slots: Slots::new(
                config.concurrency,
                config.per_tenant(),
                config.per_destination,
            ),
            freed: Notify::new(),
            store,
            config,
            guard,
            http,
            stop,
            task: Mutex::new(None),
        }))
    }

    /// The destination guard every channel's connections pass.
    pub fn guard(&self) -> Guard {
        self.guard
    }

    /// The settings in force for a tenant: its own, channel by channel, else the server's.
    pub fn settings(&self, tenant: &str) -> ChannelConfig {
        let own = self.store.channels(tenant).unwrap_or_default();
        let server = &self.config.channels;
        ChannelConfig {
            email: own.email.or_else(|| server.email.clone()),
            webhook: own.webhook.or_else(|| server.webhook.clone()),
            sms: own.sms.or_else(|| server.sms.clone()),
        }
    }

    /// Requeues what a crash interrupted, then starts the worker.
    pub fn start(self: &Arc<Self>) {
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_some() {
            return;
        }
        match self.store.requeue_interrupted() {
            Ok(0) => {}
            Ok(n) => tracing::warn!(messages = n, "requeued messages interrupted mid-delivery"),
            Err(e) => tracing::error!(error = %e, "cannot requeue interrupted messages"),
        }
        *task = Some(tokio::spawn(self.clone().run(self.stop.subscribe())));
    }

    /// Stops taking new messages and waits for the attempts in flight, `shutdown_grace` at
    /// most; those still running then are abandoned (their messages stay `sending` and are
    /// re-queued at the next start: at most one extra delivery).
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut inflight = JoinSet::new();
        let mut sweep = Sweep::default();
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // While the outbox cannot be read (a full disk), reads rest longer and longer, and
        // the failure is logged once per doubling, not every tick.
        let mut failures: u32 = 0;
        let mut rest_until = Instant::now();
        loop {
            // The index is read once a tick; a slot freed in between is refilled at once
            // from this tick's candidates.
            let read = tokio::select! {
                _ = tick.tick() => true,
                _ = self.freed.notified() => false,
                _ = stop.changed() => false,
            };
            while inflight.try_join_next().is_some() {}
            if *stop.borrow() {
                break;
            }
            if read && Instant::now() >= rest_until {
                self.slots.prune();
                let (next, result) = self.refill(sweep).await;
                sweep = next;
                match result {
                    Ok(()) if failures > 0 => {
                        tracing::info!(failures, "the outbox is readable again");
                        failures = 0;
                    }
                    Ok(()) => {}
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let rest = self
                            .config
                            .tick
                            .saturating_mul(1 << failures.min(16))
                            .min(READ_BACKOFF_MAX);
                        rest_until = Instant::now() + rest;
                        if failures.is_power_of_two() {
                            tracing::error!(error = %e, retry_in = ?rest, "cannot read the outbox");
                        }
                    }
                }
            }
            while self.slots.global_free() > 0 {
                let Some(d) = sweep.next(&self.slots) else {
                    break;
                };
                self.start_attempt(d, &mut inflight);
            }
        }
        self.drain(inflight).await;
    }

    /// This tick's candidates, read off the async threads.
    async fn refill(&self, mut sweep: Sweep) -> (Sweep, Result<(), String>) {
        let store = self.store.clone();
        let offer = self.config.per_tenant() * sweep::OFFER_PER_SLOT;
        let tick = self.config.tick;
        let read = tokio::task::spawn_blocking(move || {
            let r = sweep.refill(&store, offer, Utc::now(), tick);
            (sweep, r)
        })
        .await;
        match read {
            Ok((sweep, r)) => (sweep, r.map_err(|e| e.to_string())),
            Err(e) => (
                Sweep::default(),
                Err(format!("the outbox read failed: {e}")),
            ),
        }
    }

    /// Takes the slots for `d` and, with all of them in hand, claims it and starts its
    /// attempt. A message whose destination is busy steps aside (due a moment later) instead
    /// of holding slots that other destinations need.
    fn start_attempt(self: &Arc<Self>, d: DueMessage, inflight: &mut JoinSet<()>) {
        let Some(tenant_slot) = self.slots.tenant(&d.tenant) else {
            return;
        };
        let Some((message, settings)) = self.ready(&d) else {
            return;
        };
        let place = destination(&message, &settings);
        let held = match self.slots.attempt(tenant_slot, &d.tenant, &place) {
            Ok(h) => h,
            Err(Busy::Destination) => {
                let later = Utc::now() + chrono::Duration::milliseconds(250);
                if let Err(e) = self.defer(&d, later) {
                    tracing::error!(error = %e, "cannot defer a message");
                }
                return;
            }
            // Left due: the next tick finds it again.
            Err(Busy::Server) => return,
        };
        // Claimed only now, with every slot in hand.
        let claimed = match self.store.claim_message(&d) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim a message");
                return;
            }
        };
        let this = self.clone();
        inflight.spawn(async move {
            this.deliver(d.tenant, claimed, settings).await;
            drop(held);
            this.freed.notify_one();
        });
    }

    /// Waits for the attempts in flight, `shutdown_grace` at most, then abandons the rest.
    async fn drain(&self, mut inflight: JoinSet<()>) {
        let all = async { while inflight.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.shutdown_grace, all)
            .await
            .is_err()
        {
            tracing::warn!(
                attempts = inflight.len(),
                "abandoning delivery attempts still in flight at shutdown; their messages are re-queued at the next start"
            );
            inflight.shutdown().await;
        }
    }

    /// Leaves a due message queued but looks at it again `at`. Not flushed: a lost deferral
    /// only makes the message due sooner.
    fn defer(&self, d: &DueMessage, at: chrono::DateTime<Utc>) -> Result<(), StoreError> {
        let op = Op::DeferMessage { due: d.clone(), at };
        self.store.commit(&Changeset::op(&d.tenant, op)).map(|_| ())
    }

    /// The due message and its channel settings when its channel can deliver; else the
    /// message is pushed back (unconfigured channel) or its stale due entry dropped.
    fn ready(&self, d: &DueMessage) -> Option<(OutboxMessage, ChannelConfig)> {
        let settings = self.settings(&d.tenant);
        let m = match self.store.message(&d.tenant, &d.id) {
            Ok(Some(m)) => m,
            Ok(None) => {
                let _ = self.store.claim_message(d); // drops the stale due entry
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read a message");
                return None;
            }
        };
        if !configured(&settings, m.channel) {
            let later =
                Utc::now() + chrono::Duration::from_std(self.config.recheck).unwrap_or_default();
            if let Err(e) = self.defer(d, later) {
                tracing::error!(error = %e, "cannot defer a message");
            }
            return None;
        }
        Some((m, settings))
    }

    async fn deliver(&self, tenant: String, m: OutboxMessage, settings: ChannelConfig) {
        let span = tracing::info_span!(
            "delivery",
            message = %m.id,
            channel = m.channel.as_str(),
            run = %m.run,
            event_id = %crate::automation::event_of_run(&m.run).unwrap_or_default()
        );
        self.deliver_in_span(tenant, m, settings)
            .instrument(span)
            .await
    }

    async fn deliver_in_span(&self, tenant: String, mut m: OutboxMessage, settings: ChannelConfig) {
        let started = Instant::now();
        let at = Utc::now();
        let result = self.attempt(&tenant, &m, &settings).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let now = Utc::now();
        let (status, error) = match &result {
            Attempted::Sent { status } => (*status, None),
            Attempted::Retry { status, error, .. } | Attempted::Failed { status, error } => {
                (*status, Some(error.clone()))
            }
        };
        m.attempts.push(Attempt {
            at,
            status,
            error,
            duration_ms,
        });
        match result {
            Attempted::Sent { .. } => {
                m.status = MessageStatus::Sent;
                m.sent_at = Some(now);
                m.next_attempt_at = None;
            }
            Attempted::Retry { after, .. } => {
                let delay = backoff::delay(&self.config, m.attempts.len() as u32, after);
                let window =
                    chrono::Duration::from_std(self.config.retry_window).unwrap_or_default();
                // Checked arithmetic: no receiver-supplied delay can overflow the clock.
                let next = chrono::Duration::from_std(delay)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d));
                let give_up = m.created_at.checked_add_signed(window);
                match (next, give_up) {
                    (Some(next), Some(give_up)) if next <= give_up => {
                        m.status = MessageStatus::Queued;
                        m.next_attempt_at = Some(next);
                    }
                    _ => {
                        m.status = MessageStatus::Dead;
                        m.next_attempt_at = None;
                    }
                }
            }
            Attempted::Failed { .. } => {
                m.status = MessageStatus::Dead;
                m.next_attempt_at = None;
            }
        }
        tracing::info!(message = %m.id, channel = m.channel.as_str(), status = ?m.status, attempts = m.attempts.len(), "delivery attempt");
        crate::telemetry::delivery_attempt(
            m.channel.as_str(),
            match m.status {
                MessageStatus::Sent => "sent",
                MessageStatus::Dead => "dead",
                _ => "retry",
            },
        );
        let finish = Op::FinishMessage { message: m.clone() };
        if let Err(e) = self.store.commit(&Changeset::op(&tenant, finish)) {
            tracing::error!(error = %e, message = %m.id, "cannot record a delivery attempt");
        }
    }

    async fn attempt(
        &self,
        tenant: &str,
        m: &OutboxMessage,
        settings: &ChannelConfig,
    ) -> Attempted {
        match m.channel {
            Channel::Notify => {
                let n = Notification {
                    id: m.id.clone(),
                    user: m.to.clone(),
                    subject: m.subject.clone(),
                    body: m.body.clone(),
                    record: m.record.clone(),
                    created_at: Utc::now(),
                };
                let op = Op::PutNotification { notification: n };
                match self.store.commit(&Changeset::op(tenant, op)) {
                    Ok(_) => Attempted::Sent { status: None },
                    Err(e) => Attempted::Retry {
                        status: None,
                        error: e.to_string(),
                        after: None,
                    },
                }
            }
            Channel::Webhook => {
                let Some(cfg) = &settings.webhook else {
                    return not_configured();
                };
                let secret = match self.store.webhook_secret(tenant) {
                    Ok(s) => s,
                    Err(e) => {
                        return Attempted::Retry {
                            status: None,
                            error: e.to_string(),
                            after: None,
                        }
                    }
                };
                let timeout = self.timeout(cfg.timeout_seconds);
                http::webhook(&self.http, self.guard, tenant, m, cfg, &secret, timeout).await
            }
            Channel::Sms => match &settings.sms {
                Some(cfg) => {
                    let timeout = self.timeout(cfg.timeout_seconds);
                    http::sms(&self.http, self.guard, tenant, m, cfg, timeout).await
                }
                None => not_configured(),
            },
            Channel::Email => match &settings.email {
                Some(cfg) => {
                    email::send(m, cfg, self.guard, self.timeout(cfg.timeout_seconds)).await
                }
                None => not_configured(),
            },
        }
    }
}

/// Whether `channel` can deliver under `settings` (`notify` needs none).
pub fn configured(settings: &ChannelConfig, channel: Channel) -> bool {
    match channel {
        Channel::Email => settings.email.is_some(),
        Channel::Webhook => settings.webhook.is_some(),
        Channel::Sms => settings.sms.is_some(),
        Channel::Notify => true,
    }
}

impl Delivery {
    /// One attempt's time limit on a channel with this `timeout_seconds` setting.
    fn timeout(&self, own: Option<u32>) -> Duration {
        settings::timeout(own, self.config.timeout)
    }
}

/// Where an attempt goes, for the per-destination limit: the webhook's host, the SMS
/// provider's host, the SMTP relay, or the in-process notification store.
fn destination(m: &OutboxMessage, settings: &ChannelConfig) -> String {
    let place = match m.channel {
        Channel::Webhook => http::host_of(&m.to).unwrap_or_else(|| m.to.clone()),
        Channel::Sms => settings
            .sms
            .as_ref()
            .and_then(|s| http::host_of(&s.url))
            .unwrap_or_default(),
        Channel::Email => settings
            .email
            .as_ref()
            .map(|e| e.host.clone())
            .unwrap_or_default(),
        Channel::Notify => "notify".into(),
    };
    format!("{}:{place}", m.channel.as_str())
}

fn not_configured() -> Attempted {
    Attempted::Retry {
        status: None,
        error: "channel not configured".into(),
        after: None,
    }
}
