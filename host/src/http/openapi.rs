//! The OpenAPI document's frame: info, security scheme, tags. Paths come from the routes.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
