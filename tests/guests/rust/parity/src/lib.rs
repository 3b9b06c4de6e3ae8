//! The parity rule (see `rule.rs`) as a component.
mod rule;

stagecraft_sdk::export_rule!(rule::Parity);
