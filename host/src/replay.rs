//! Replay: what a candidate module version would have done differently on real past events.
//!
//! For each run a binding committed in a window, the candidate runs as a dry run
//! ([`crate::automation::dry_run`]) on the run's journal event — the event's time and seed, its
//! record as the snapshot journaled with it, the binding's config and grants, and the
//! original run's id as the seed of message and follow-up ids — and its outcome and effects
//! are compared, in order, with what the original run committed. Because runs are
//! deterministic (time from the event, randomness seeded from it, ids from the run id) an
//! unchanged module reproduces its effects exactly, so every difference is the candidate's.
//!
//! Replay commits nothing and sends nothing. Replays are kept in memory (each tenant's last
//! [`KEEP`]); they are analyses, not data, and can be run again with the same result. At
//! most [`RUNNING`] run at once in the process, at most [`RUNNING_PER_TENANT`] of one tenant,
//! so one tenant can neither take every replay slot nor push out another's results.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::automation::dry_run::{dry_run, DryRunInput};
use crate::model::id::new_id;
use crate::model::{Binding, Effect, EventKind, ModuleVersion, Outcome};
use crate::sandbox::{RunClass, Sandbox};
use crate::store::{Store, StoreError};

/// Most runs one replay covers.
pub const MAX_EVENTS: usize = 5000;
/// Replays this small run within the request; larger ones in the background.
pub const INLINE_EVENTS: usize = 50;
/// Replays kept per tenant for `GET /v1/replays/{id}` (a tenant's own oldest finished ones
/// make room; never another tenant's).
pub const KEEP: usize = 100;
/// Replays running at once in this process; more are refused until one finishes.
pub const RUNNING: usize = 4;
/// Replays one tenant may run at once.
pub const RUNNING_PER_TENANT: usize = 2;

/// Which past runs to replay.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"binding": "bnd_01j9z3k7q8m2n4p6r8t0v2x4z6", "last": 100}))]
pub struct ReplayRequest {
    /// Replay the events this binding handled…
    #[schema(pattern = "^bnd_[0-9a-z]{26}$")]
    pub binding: Option<String>,
    /// …or those every binding of this pipeline that runs the module handled.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub pipeline: Option<String>,
    /// Runs that started at or after this time…
    pub since: Option<DateTime<Utc>>,
    /// …and before this time.
    pub until: Option<DateTime<Utc>>,
    /// Or: the last N runs (1-5000).
    #[schema(minimum = 1, maximum = 5000)]
    pub last: Option<usize>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    Running,
    Done,
    Failed,
}

/// Totals of one measure for the original runs and for the candidate.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct Compared {
    pub original: u64,
    pub candidate: u64,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ReplaySummary {
    /// Runs replayed and compared.
    pub replayed: u64,
    /// Same outcome and the same effects, in the same order.
    pub same: u64,
    pub different: u64,
    /// The candidate failed where the original succeeded, by the candidate's outcome.
    pub new_failures: BTreeMap<String, u64>,
    /// The candidate succeeded where the original failed.
    pub fixed: u64,
    /// Replayed runs whose candidate asked for different HTTP requests.
    pub http_diverged: u64,
    /// Runs not replayed, by reason (`cascade_limit` / `rate_limited`: the original never
    /// ran; `pruned`: the run, its event or its snapshot is past retention).
    pub skipped: BTreeMap<String, u64>,
    /// Fuel over the replayed runs.
    pub fuel: Compared,
    /// Wall-clock microseconds over the replayed runs.
    pub duration_us: Compared,
}

/// One side of a comparison.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Side {
    pub version: u32,
    pub outcome: Outcome,
    /// Effects committed (for the candidate: that would have been committed).
    pub effects: Vec<Effect>,
    /// Effects asked for but discarded because the run failed.
    pub discarded: Vec<Effect>,
    pub fuel_used: u64,
    pub duration_us: u64,
}

/// An event on which the candidate would have behaved differently.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Difference {
    /// The original run.
    pub run: String,
    pub event: String,
    pub event_kind: String,
    pub record: Option<String>,
    pub binding: String,
    /// Set when the candidate asked for different HTTP requests than the original run made
    /// (what differed first); its calls are answered only from the original's recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_divergence: Option<String>,
    pub original: Side,
    pub candidate: Side,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Replay {
    pub id: String,
    #[serde(skip)]
    pub tenant: String,
    pub module: String,
    /// The candidate version.
    pub version: u32,
    pub bindings: Vec<String>,
    pub status: ReplayStatus,
    /// Runs in the window.
    pub total: u64,
    /// Runs looked at so far (replayed or skipped).
    pub done: u64,
    pub summary: ReplaySummary,
    /// Per differing event, oldest first.
    pub differences: Vec<Difference>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the window holds more than {MAX_EVENTS} runs; narrow it or use \"last\"")]
    TooLarge,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A replay ready to run: the runs to look at, oldest first, and their bindings.
pub struct Plan {
    pub replay: Replay,
    runs: Vec<String>,
    bindings: BTreeMap<String, Binding>,
    hash: String,
}

/// Checks the request and finds the runs it covers.
pub fn plan(
    store: &Store,
    tenant: &str,
    candidate: &ModuleVersion,
    req: &ReplayRequest,
) -> Result<Plan, ReplayError> {
    let invalid = |m: &str| Err(ReplayError::Invalid(m.to_string()));
    match (&req.last, &req.since, &req.until) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return invalid("give either \"last\" or \"since\"/\"until\", not both")
        }
        (None, None, None) => {
            return invalid("give a window: \"since\" (and optionally \"until\"), or \"last\"")
        }
        (Some(n), _, _) if !(1..=MAX_EVENTS).contains(n) => {
            return Err(ReplayError::Invalid(format!(
                "\"last\" must be between 1 and {MAX_EVENTS}"
            )))
        }
        (None, Some(s), Some(u)) if s >= u => return invalid("\"since\" must be before \"until\""),
        (None, None, Some(_)) => return invalid("\"until\" needs \"since\""),
        _ => {}
    }
    let bindings: Vec<Binding> = match (&req.binding, &req.pipeline) {
        (Some(_), Some(_)) => return invalid("give either \"binding\" or \"pipeline\", not both"),
        (None, None) => {
            return invalid("give the \"binding\" (or \"pipeline\") whose events to replay")
        }
        (Some(id), None) => vec![store
            .binding(tenant, id)?
            .ok_or_else(|| ReplayError::NotFound(format!("binding {id:?}")))?],
        (None, Some(p)) => {
            if store.pipeline(tenant, p)?.is_none() {
                return Err(ReplayError::NotFound(format!("pipeline {p:?}")));
            }
            let on: Vec<Binding> = store
                .bindings(tenant)?
                .iter()
                .filter(|b| &b.pipeline == p && b.module == candidate.module)
                .cloned()
                .collect();
            if on.is_empty() {
                return Err(ReplayError::Invalid(format!(
                    "no binding on pipeline {p:?} runs module {:?}",
                    candidate.module
                )));
            }
            on
        }
    };
    let mut runs: Vec<(i64, String)> = Vec::new();
    for b in &bindings {
        let found = store.binding_runs(
            tenant,
            &b.id,
            req.since,
            req.until,
            req.last,
            MAX_EVENTS + 1,
        )?;
        runs.extend(found);
    }
    runs.sort();
    if let Some(n) = req.last {
        let skip = runs.len().saturating_sub(n);
        runs.drain(..skip);
    }
    if runs.len() > MAX_EVENTS {
        return Err(ReplayError::TooLarge);
    }
    Ok(Plan {
        replay: Replay {
            id: new_id("rpl"),
            tenant: tenant.to_string(),
            module: candidate.module.clone(),
            version: candidate.version,
            bindings: bindings.iter().map(|b| b.id.clone()).collect(),
            status: ReplayStatus::Running,
            total: runs.len() as u64,
            done: 0,
            summary: ReplaySummary::default(),
            differences: Vec::new(),
            error: None,
            created_at: Utc::now(),
            finished_at: None,
        },
        runs: runs.into_iter().map(|(_, id)| id).collect(),
        bindings: bindings.into_iter().map(|b| (b.id.clone(), b)).collect(),
        hash: candidate.hash.clone(),
    })
}

/// What looking at one run gave.
enum Step {
    Skipped(String),
    Compared(Box<Difference>),
}

/// Runs the plan to the end, publishing progress into `shared` as it goes. Blocking.
pub fn execute(store: &Store, sandbox: &Sandbox, plan: Plan, shared: &Mutex<Replay>) {
    let tenant = plan.replay.tenant.clone();
    for run_id in &plan.runs {
        let step = compare(store, sandbox, &tenant, &plan, run_id);
        let mut r = shared.lock().unwrap_or_else(|p| p.into_inner());
        match step {
            Ok(Step::Skipped(reason)) => *r.summary.skipped.entry(reason).or_default() += 1,
            Ok(Step::Compared(d)) => {
                let s = &mut r.summary;
                s.replayed += 1;
                s.fuel.original += d.original.fuel_used;
                s.fuel.candidate += d.candidate.fuel_used;
                s.duration_us.original += d.original.duration_us;
                s.duration_us.candidate += d.candidate.duration_us;
                let (was_ok, is_ok) = (d.original.outcome.is_ok(), d.candidate.outcome.is_ok());
                if was_ok && !is_ok {
                    *s.new_failures
                        .entry(d.candidate.outcome.name().to_string())
                        .or_default() += 1;
                }
                if !was_ok && is_ok {
                    s.fixed += 1;
                }
                if d.http_divergence.is_some() {
                    s.http_diverged += 1;
                }
                if d.original.outcome == d.candidate.outcome
                    && d.original.effects == d.candidate.effects
                    && d.http_divergence.is_none()
                {
                    s.same += 1;
                } else {
                    s.different += 1;
                    r.differences.push(*d);
                }
            }
            Err(e) => {
                r.status = ReplayStatus::Failed;
                r.error = Some(format!("replaying run {run_id}: {e}"));
                r.finished_at = Some(Utc::now());
                return;
            }
        }
        r.done += 1;
    }
    let mut r = shared.lock().unwrap_or_else(|p| p.into_inner());
    r.status = ReplayStatus::Done;
    r.finished_at = Some(Utc::now());
}

fn compare(
    store: &Store,
    sandbox: &Sandbox,
    tenant: &str,
    plan: &Plan,
    run_id: &str,
) -> Result<Step, String> {
    let pruned = || Ok(Step::Skipped("pruned".into()));
    let Some(run) = store.run(tenant, run_id).map_err(|e| e.to_string())? else {
        return pruned();
    };
    if matches!(
        run.outcome,
        Outcome::CascadeLimit { .. } | Outcome::RateLimited { .. }
    ) {
        return Ok(Step::Skipped(run.outcome.name().to_string()));
    }
    let journaled = store.event(tenant, &run.event).map_err(|e| e.to_string())?;
    let Some(event) = journaled.or_else(|| run.unjournaled_event.clone().map(|e| *e)) else {
        return pruned();
    };
    if event.record.is_some() && event.snapshot.is_none() && event.kind != EventKind::Deleted {
        return pruned();
    }
    let Some(binding) = plan.bindings.get(&run.binding) else {
        return Err(format!(
            "binding {} is not part of this replay",
            run.binding
        ));
    };
    let report = dry_run(
        sandbox,
        store,
        &plan.hash,
        DryRunInput {
            tenant,
            class: RunClass::Background,
            event: &event,
            // The original run's id: message and follow-up ids come out the same.
            run_key: run.id.clone(),
            config: binding.config.to_string(),
            grants: binding.grants.clone(),
            as_of_event: true,
            // Same request, same answer: what the original run received, nothing sent.
            recorded_http: Some(run.http.clone()),
        },
    )
    .map_err(|e| e.to_string())?;
    let http_divergence = report
        .http
        .iter()
        .find_map(|x| {
            x.error
                .as_deref()
                .filter(|e| e.starts_with("replay_unmatched"))
        })
        .map(|e| e.to_string())
        .or_else(|| {
            let asked = report.http.iter().filter(|x| x.replayed).count();
            let made = run.http.iter().filter(|x| x.status.is_some()).count();
            (asked < made).then(|| {
                format!("the candidate made {asked} of the original's {made} HTTP requests")
            })
        });
    let mut candidate = report.effects;
    legacy_ids(&run.effects, &mut candidate);
    let (effects, discarded) = if report.outcome.is_ok() {
        (candidate, Vec::new())
    } else {
        (Vec::new(), candidate)
    };
    Ok(Step::Compared(Box::new(Difference {
        run: run.id.clone(),
        event: run.event.clone(),
        event_kind: run.event_kind.clone(),
        record: run.record.clone(),
        binding: run.binding.clone(),
        http_divergence,
        original: Side {
            version: run.version,
            outcome: run.outcome,
            effects: run.effects,
            discarded: run.discarded,
            fuel_used: run.fuel_used,
            duration_us: run.duration_us,
        },
        candidate: Side {
            version: plan.replay.version,
            outcome: report.outcome,
            effects,
            discarded,
            fuel_used: report.fuel_used,
            duration_us: report.duration_us,
        },
    })))
}

/// Runs committed before message and follow-up ids became time-ordered ULIDs carry ids of
/// 24 hex characters, which a replay can no longer reproduce. Such an id is compared by
/// position: the candidate's effect at the same place takes it, so only real differences show.
fn legacy_ids(original: &[Effect], candidate: &mut [Effect]) {
    for (o, c) in original.iter().zip(candidate.iter_mut()) {
        match (o, c) {
            (Effect::QueueMessage { id: old, .. }, Effect::QueueMessage { id, .. })
            | (Effect::Schedule { id: old, .. }, Effect::Schedule { id, .. })
                if crate::model::id::time_of(old).is_none() =>
            {
                id.clone_from(old);
            }
            _ => {}
        }
    }
}

/// The replays of this process, newest last; the oldest finished ones go past [`KEEP`].
#[derive(Default)]
pub struct Replays {
    list: Mutex<VecDeque<Arc<Mutex<Replay>>>>,
}

impl Replays {
    /// Registers a replay about to run; None when [`RUNNING`] replays already run, or
    /// [`RUNNING_PER_TENANT`] of its tenant.
    pub fn add(&self, r: Replay) -> Option<Arc<Mutex<Replay>>> {
        let tenant = r.tenant.clone();
        let shared = Arc::new(Mutex::new(r));
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let (mut running, mut theirs) = (0, 0);
        for r in list.iter() {
            let r = r.lock().unwrap_or_else(|p| p.into_inner());
            if r.status == ReplayStatus::Running {
                running += 1;
                theirs += usize::from(r.tenant == tenant);
            }
        }
        if running >= RUNNING || theirs >= RUNNING_PER_TENANT {
            return None;
        }
        list.push_back(shared.clone());
        // Only this tenant's oldest finished replays make room for its new one.
        let mut kept = list
            .iter()
            .filter(|r| r.lock().unwrap_or_else(|p| p.into_inner()).tenant == tenant)
            .count();
        while kept > KEEP {
            let finished = list.iter().position(|r| {
                let r = r.lock().unwrap_or_else(|p| p.into_inner());
                r.tenant == tenant && r.status != ReplayStatus::Running
            });
            match finished {
                Some(i) => {
                    list.remove(i);
                    kept -= 1;
                }
                None => break,
            }
        }
        Some(shared)
    }

    /// The replay `id` of `tenant`, as it is now.
    pub fn get(&self, tenant: &str, id: &str) -> Option<Replay> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().find_map(|r| {
            let r = r.lock().unwrap_or_else(|p| p.into_inner());
            (r.id == id && r.tenant == tenant).then(|| r.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(tenant: &str) -> Replay {
        Replay {
            id: new_id("rpl"),
            tenant: tenant.into(),
            module: "m".into(),
            version: 1,
            bindings: Vec::new(),
            status: ReplayStatus::Running,
            total: 0,
            done: 0,
            summary: ReplaySummary::default(),
            differences: Vec::new(),
            error: None,
            created_at: Utc::now(),
            finished_at: None,
        }
    }

    #[test]
    fn running_replays_are_capped_and_finished_ones_make_room() {
        let r = Replays::default();
        let running: Vec<_> = (0..RUNNING)
            .map(|i| {
                r.add(replay(&format!("t{}", i / RUNNING_PER_TENANT)))
                    .unwrap()
            })
            .collect();
        assert!(r.add(replay("t9")).is_none(), "one over the cap");
        running[0].lock().unwrap().status = ReplayStatus::Done;
        let next = r.add(replay("t")).unwrap();
        let id = next.lock().unwrap().id.clone();
        assert!(r.get("t", &id).is_some());
        assert!(
            r.get("other", &id).is_none(),
            "tenants never see each other's"
        );
    }

    #[test]
    fn a_tenant_runs_at_most_its_share_of_replays() {
        let r = Replays::default();
        let _mine: Vec<_> = (0..RUNNING_PER_TENANT)
            .map(|_| r.add(replay("a")).unwrap())
            .collect();
        assert!(r.add(replay("a")).is_none(), "a is at its share");
        assert!(r.add(replay("b")).is_some(), "b still gets a replay slot");
    }

    #[test]
    fn only_finished_replays_are_forgotten() {
        let r = Replays::default();
        let first = r.add(replay("t")).unwrap();
        let first_id = first.lock().unwrap().id.clone();
        for _ in 0..KEEP + 10 {
            let x = r.add(replay("t")).unwrap();
            x.lock().unwrap().status = ReplayStatus::Done;
        }
        assert!(r.get("t", &first_id).is_some(), "a running replay is kept");
        assert_eq!(r.list.lock().unwrap().len(), KEEP);
    }

    #[test]
    fn ids_of_older_runs_compare_by_position() {
        let schedule = |id: &str, seconds| Effect::Schedule {
            id: id.into(),
            record: "rec_1".into(),
            seconds,
            payload: serde_json::json!({}),
        };
        let fresh = crate::model::id::id_at("tmr", 1_700_000_000_000, 7);
        let original = vec![schedule("tmr_00aa11bb22cc33dd44ee55ff", 60)];
        let mut same = vec![schedule(&fresh, 60)];
        legacy_ids(&original, &mut same);
        assert_eq!(same, original);
        // Only the id: a real difference stays one.
        let mut later = vec![schedule(&fresh, 120)];
        legacy_ids(&original, &mut later);
        assert_ne!(later, original);
        // New ids are compared as they are.
        let current = vec![schedule(&fresh, 60)];
        let mut other = vec![schedule(&crate::model::id::id_at("tmr", 1, 8), 60)];
        legacy_ids(&current, &mut other);
        assert_ne!(other, current);
    }
}
