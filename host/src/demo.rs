//! `stagecraft serve --demo`: seeds the default tenant with a support pipeline, the example
//! modules (built from `examples/` and embedded at build time) bound to pipelines, and sample
//! records whose creation sets automation off — so a newcomer sees it work in the first
//! minute. Seeding is skipped when the tenant already has the example modules.

use anyhow::Context;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::crm::{bindings, pipelines, records};
use crate::http::AppState;
use crate::model::{PipelineKind, Record, Stage, StageSemantic};

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// The bindings the demo creates: (module, pipeline, binding JSON without pipeline/module).
fn binding_specs() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "lead-scoring",
            "leads",
            json!({"mode": "inline",
            "triggers": [{"on": "created"}, {"on": "updated", "fields": ["job_title", "company_size", "source", "email"]}],
            "config": {"team": ["ann", "bob", "cy"], "threshold": 50, "call_within_hours": 24},
            "grants": {"fields": ["score", "owner"], "channels": ["notify"], "actions": ["create:task"]}}),
        ),
        (
            "lead-to-deal",
            "leads",
            json!({"mode": "background",
            "triggers": [{"on": "entered_stage", "stage": "qualified"}],
            "config": {"deal_pipeline": "deals"},
            "grants": {"fields": ["converted_deal"],
                       "actions": ["create:contact", "create:company", "create:deal", "create:task", "comment"]}}),
        ),
        (
            "onboarding",
            "deals",
            json!({"mode": "background",
            "triggers": [{"on": "entered_stage", "stage": "won"}],
            "config": {"follow_up_seconds": 60, "check_in_seconds": 120, "product": "Stagecraft",
                       "fallback_email": "customer@example.com", "kickoff_within_hours": 48},
            "grants": {"fields": ["onboarding_step"], "channels": ["email"], "actions": ["create:task"]}}),
        ),
        // Reminders are timers tied to the deal's stage, so they start once it is won.
        (
            "renewal-reminder",
            "deals",
            json!({"mode": "background",
            "triggers": [{"on": "entered_stage", "stage": "won"}, {"on": "updated", "fields": ["contract_end"]}],
            "config": {"default_email": "renewals@example.com", "managers": {"ann": "head-of-sales@example.com"}},
            "grants": {"fields": ["renewal_reminded"], "channels": ["email"]}}),
        ),
        (
            "sla-escalation",
            "support",
            json!({"mode": "background",
            "triggers": [{"on": "created"}],
            "config": {"response_seconds": 45, "on_call": "dana", "webhook_url": "http://127.0.0.1:9/on-call", "comment": true},
            "grants": {"fields": ["owner", "sla_breached_at"], "channels": ["webhook"], "actions": ["comment"]}}),
        ),
        (
            "partner-commission",
            "deals",
            json!({"mode": "background",
            "triggers": [{"on": "entered_stage", "stage": "won"}],
            "config": {"accounting_url": "http://127.0.0.1:9/accounting"},
            "grants": {"fields": ["commission", "commission_partner"], "channels": ["email", "webhook"]}}),
        ),
    ]
}

/// What the demo created, for the start-up banner.
pub struct Seeded {
    pub modules: usize,
    pub records: usize,
}

/// Seeds `tenant` unless it already has the example modules.
pub async fn seed(state: &AppState, tenant: &str) -> anyhow::Result<Option<Seeded>> {
    if state.store.module(tenant, "lead-scoring")?.is_some() {
        return Ok(None);
    }
    if state.store.pipeline(tenant, "support")?.is_none() {
        let stage = |id: &str, name: &str, semantic| Stage {
            id: id.into(),
            name: name.into(),
            semantic,
        };
        pipelines::create(
            &state.store,
            tenant,
            pipelines::NewPipeline {
                id: Some("support".into()),
                name: "Support".into(),
                kind: PipelineKind::Lead,
                stages: vec![
                    stage("new", "New", StageSemantic::Open),
                    stage("in_progress", "In progress", StageSemantic::Open),
                    stage("escalated", "Escalated", StageSemantic::Open),
                    stage("resolved", "Resolved", StageSemantic::Won),
                    stage("closed", "Closed", StageSemantic::Lost),
                ],
            },
        )?;
    }
    let mut modules = 0;
    for (name, bytes) in EXAMPLES {
        let ticket = state.sandbox.compiler().reserve(tenant)?;
        crate::registry::publish_async(
            &state.store,
            &state.sandbox,
            ticket,
            state.config.modules,
            name,
            *bytes,
            "demo",
        )
        .await
        .with_context(|| format!("publishing example {name}"))?;
        modules += 1;
    }
    for (module, pipeline, mut spec) in binding_specs() {
        if !EXAMPLES.iter().any(|(n, _)| *n == module) {
            continue;
        }
        spec["pipeline"] = json!(pipeline);
        spec["module"] = json!(module);
        spec["version"] = json!(1);
        let input: bindings::NewBinding = serde_json::from_value(spec)?;
        bindings::create(&state.store, tenant, input)?;
    }

    let mut created = 0;
    let mut create = |body: Value| {
        let state = state.clone();
        let tenant = tenant.to_string();
        created += 1;
        async move {
            let input: records::NewRecord = serde_json::from_value(body)?;
            let (r, cs) = records::create(&state.store, &tenant, input, Utc::now())?;
            let committed = state.automation.submit(cs).await?;
            Ok::<Record, anyhow::Error>(match committed.pending(&r.id) {
                Some(Some(after)) => after.clone(),
                _ => r,
            })
        }
    };
    let globex = create(
        json!({"kind": "company", "name": "Globex Partners", "email": "partners@globex.example"}),
    )
    .await?;
    let acme = create(json!({"kind": "company", "name": "Acme Corp"})).await?;
    let grace = create(json!({"kind": "contact", "name": "Grace Hopper", "email": "grace@acme.example", "company": acme.id})).await?;
    create(
        json!({"kind": "lead", "name": "Ada Lovelace", "email": "ada@analytical.example",
        "custom": {"job_title": "CTO", "company_size": 2000, "source": "referral",
                   "company_name": "Analytical Engines"}}),
    )
    .await?;
    create(
        json!({"kind": "lead", "name": "Bob Student", "email": "bob@gmail.com",
        "custom": {"job_title": "Intern", "company_size": 1, "source": "ads"}}),
    )
    .await?;
    let contract_end = (Utc::now() + Duration::days(100))
        .format("%Y-%m-%d")
        .to_string();
    let deal = create(
        json!({"kind": "deal", "name": "Acme rollout", "amount": 42000, "currency": "EUR",
        "stage": "negotiation", "owner": "ann", "contact": grace.id, "company": acme.id,
        "custom": {"partner": globex.id, "contract_end": contract_end}}),
    )
    .await?;
    create(json!({"kind": "lead", "pipeline": "support", "name": "Printer on fire", "email": "it@acme.example"})).await?;
    // Winning the deal sets off onboarding and the partner's commission.
    let (_, cs) = records::move_stage(&state.store, tenant, &deal.id, "won", None, Utc::now())?;
    state.automation.submit(cs).await?;
    Ok(Some(Seeded {
        modules,
        records: created,
    }))
}
