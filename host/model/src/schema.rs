//! What the OpenAPI document says about values whose rules derive attributes cannot spell
//! out on their own: arrays of patterned strings. The patterns repeat the validation in
//! `stagecraft_rules::field` (`tests/tests/openapi.rs` holds the two to the same answers), so
//! generated clients and fuzzers send what the server accepts.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};

/// An id or slug: [`stagecraft_rules::field::is_slug`] as a regular expression.
pub const SLUG_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";

/// A field a trigger watches: a core field or a custom one (both slugs).
pub fn field_names() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(SLUG_PATTERN)),
        )
        .build()
}

/// Fields a module may write: field names, or `*` for any.
pub fn granted_fields() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^(\\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")),
        )
        .description(Some(
            "Field names the module may write (`owner` included); `\"*\"` for any.",
        ))
        .build()
}

/// A task's priority (`stagecraft_rules::task::Priority`).
pub fn priority() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["low", "normal", "high"]))
        .default(Some("normal".into()))
        .build()
}

/// Create, complete and comment grants (`stagecraft_rules::grant::Action`), by name.
pub fn granted_actions() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(stagecraft_rules::Action::ALL.map(|a| a.name()))),
        )
        .description(Some(
            "What the module may create, complete or comment: `create:lead`, `create:contact`, \
             `create:company`, `create:deal`, `create:task`, `complete:task`, `comment`.",
        ))
        .build()
}
