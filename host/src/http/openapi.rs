//! The OpenAPI document's frame: info, security scheme, tags. Paths come from the routes;
//! [`complete`] adds what every operation can answer.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "Stagecraft", description = "CRM records, pipelines and automation modules running in WebAssembly."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "records", description = "Leads, contacts, companies and deals"),
        (name = "pipelines", description = "Stages that leads and deals move through"),
        (name = "events", description = "The event journal"),
        (name = "access", description = "Tenants and API keys"),
        (name = "modules", description = "Automation modules: upload, inspect, dry-run"),
        (name = "automation", description = "Bindings, runs and the outbox"),
        (name = "tasks", description = "Tasks, comments and a record's timeline"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Adds to every operation that does not list its own the 503 any of them can answer: every
/// request authenticates and reads or writes through the store, which refuses with
/// `store_busy` when a tenant's requests wait too long for it and `storage_unavailable`
/// while the disk is full. (Operations that can also answer `busy` list their own 503.)
pub fn complete(doc: &mut utoipa::openapi::OpenApi) {
    let unavailable = ResponseBuilder::new()
        .description(
            "`store_busy`: this tenant's requests waited too long for the store; \
             `storage_unavailable`: the disk is full (it heals by itself once space is freed). \
             `Retry-After` says when to try again.",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(u32::schema())
                .description(Some("Seconds to wait before trying again"))
                .build(),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            op.responses
                .responses
                .entry("503".to_string())
                .or_insert_with(|| unavailable.clone().into());
        }
    }
}
