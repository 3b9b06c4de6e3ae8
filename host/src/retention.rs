//! The retention worker: every `every`, prunes run history, journal snapshots and delivered
//! messages older than `max_age` ([`crate::store::Store::prune`]), in small batches so
//! writers never wait long behind it. Started and stopped with the server.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Store;

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Older than this goes (default 30 days).
    pub max_age: Duration,
    /// How often a pass runs (default hourly; the first right after start).
    pub every: Duration,
    /// Keys removed per transaction.
    pub batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Duration::from_secs(30 * 24 * 3600),
            every: Duration::from_secs(3600),
            batch: 64,
        }
    }
}

/// The running worker.
pub struct Retention {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Retention {
    pub fn start(store: Store, config: RetentionConfig) -> Retention {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let (s, c) = (store.clone(), config.clone());
                let pass = tokio::task::spawn_blocking(move || {
                    let age =
                        chrono::Duration::from_std(c.max_age).unwrap_or(chrono::Duration::MAX);
                    let cutoff = Utc::now().checked_sub_signed(age).unwrap_or_default();
                    s.prune(cutoff, c.batch)
                })
                .await;
                match pass {
                    Ok(Ok(p)) if p != Default::default() => tracing::info!(
                        runs = p.runs,
                        snapshots = p.snapshots,
                        messages = p.messages,
                        unreadable = p.unreadable,
                        "retention pruned"
                    ),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "retention pass failed"),
                    Err(e) => tracing::error!(error = %e, "retention task failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(config.every) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Retention { stop, task }
    }

    /// Stops after the pass in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
