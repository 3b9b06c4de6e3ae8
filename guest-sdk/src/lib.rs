//! Write Stagecraft automation rules in Rust.
//!
//! Stagecraft runs each customer rule as a WebAssembly component implementing the
//! `stagecraft:automation/rule` world (`wit/stagecraft.wit`). This crate hides the generated
//! bindings behind a small typed API, so a rule is an ordinary Rust function:
//!
//! * [`Rule`] — implement `handle(ctx, event)` for one event per run;
//! * [`Ctx`] — read records, move stages, set fields, queue messages, schedule follow-ups,
//!   log, read the binding's config; since host API 0.2 also create records ([`NewRecord`])
//!   and tasks ([`NewTask`]), complete tasks and comment on timelines;
//! * [`export_rule!`] — turns the rule into the component's export;
//! * [`ConfigSchema`] and [`export_config_schema!`] — derive a JSON Schema from the config
//!   type and embed it, so the host validates binding configs and the console shows a form;
//! * [`http`] — outbound HTTP where the binding grants it (`http::get(url).send()`), with
//!   secrets as `{{secret:NAME}}` placeholders the host fills in;
//! * [`testing::MockHost`] — runs the same rule natively under `cargo test`.
//!
//! A run is all-or-nothing: writes and messages apply only if `handle` returns `Ok`.
//!
//! # A rule
//!
//! ```no_run
//! use serde::Deserialize;
//! use stagecraft_sdk::prelude::*;
//!
//! #[derive(Deserialize, Default)]
//! #[serde(default)]
//! struct Config {
//!     /// Who to notify; the record's owner when unset.
//!     notify: Option<String>,
//! }
//!
//! pub struct Welcome;
//!
//! impl Rule for Welcome {
//!     fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
//!         if !event.is_created() {
//!             return Ok(());
//!         }
//!         let config: Config = ctx.config()?;
//!         let lead = event.record()?;
//!         ctx.set_field(&lead.id, "touched", &true)?;
//!         ctx.move_to(&lead.id, "contacted")?;
//!         if let Some(user) = config.notify.or_else(|| lead.owner.clone()) {
//!             ctx.queue(Message::notify(user, "New lead", &lead.name))?;
//!         }
//!         ctx.info(format!("welcomed {}", lead.id));
//!         Ok(())
//!     }
//! }
//!
//! // In a `crate-type = ["cdylib"]` crate built for `wasm32-wasip2`:
//! stagecraft_sdk::export_rule!(Welcome);
//! ```
//!
//! # Testing it natively
//!
//! ```
//! # use stagecraft_sdk::prelude::*;
//! # pub struct Welcome;
//! # impl Rule for Welcome {
//! #     fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
//! #         let lead = event.record()?;
//! #         ctx.set_field(&lead.id, "touched", &true)?;
//! #         ctx.move_to(&lead.id, "contacted")?;
//! #         if let Some(user) = lead.owner.clone() {
//! #             ctx.queue(Message::notify(user, "New lead", &lead.name))?;
//! #         }
//! #         ctx.info(format!("welcomed {}", lead.id));
//! #         Ok(())
//! #     }
//! # }
//! use stagecraft_sdk::testing::{self, Effect, MockHost};
//!
//! let mut lead = testing::lead("l1", "Ada", "sales", "new");
//! lead.owner = Some("u1".into());
//!
//! let mut host = MockHost::new();
//! host.run::<Welcome>(&Event::created(lead))?;
//!
//! assert_eq!(host.record("l1").map(|r| r.in_stage("contacted")), Some(true));
//! assert_eq!(host.queued(), [&Message::notify("u1", "New lead", "Ada")]);
//! assert!(host.effects.contains(&Effect::MoveStage {
//!     record: "l1".into(),
//!     stage: "contacted".into(),
//! }));
//! assert_eq!(host.logs, [(Level::Info, "welcomed l1".to_string())]);
//! # Ok::<(), String>(())
//! ```
//!
//! See the crate's `README.md` for building, uploading and enabling a rule.

// The derive names `::stagecraft_sdk::…`, also inside this crate's own tests.
extern crate self as stagecraft_sdk;

#[doc(hidden)]
pub mod bindings;
pub mod config_schema;
mod convert;
pub mod create;
pub mod http;
pub mod rule;
pub mod task_event;
pub mod testing;
pub mod types;
mod wit_host;

pub use config_schema::ConfigSchema;
pub use create::{NewRecord, NewTask, Priority};
pub use rule::{Ctx, Host, Rule};
/// `#[derive(ConfigSchema)]`: see [`config_schema`].
pub use stagecraft_sdk_macros::ConfigSchema;
pub use task_event::{EventTask, TaskChange};
pub use types::{Channel, Event, EventKind, Filter, HostError, Level, Message, Record, RecordKind};
pub use wit_host::WitHost;

pub mod prelude {
    //! Everything a rule author needs: `use stagecraft_sdk::prelude::*;`.
    //!
    //! Test helpers stay in [`crate::testing`] so they do not leak into rule code.
    pub use crate::config_schema::ConfigSchema;
    pub use crate::create::{NewRecord, NewTask, Priority};
    pub use crate::rule::{Ctx, Host, Rule};
    pub use crate::task_event::{EventTask, TaskChange};
    pub use crate::types::{
        Channel, Event, EventKind, Filter, HostError, Level, Message, Record, RecordKind,
    };
    pub use crate::{export_config_schema, export_rule};
    pub use stagecraft_sdk_macros::ConfigSchema;
}

#[doc(hidden)]
pub mod __private {
    //! Not public API: used by [`export_rule!`](crate::export_rule) expansions in plugin crates.
    pub use crate::wit_host::handle_wit_event;
}

/// Exports a [`Rule`] as this component's `handle` function.
///
/// Use it once, at the top level of a `cdylib` crate:
///
/// ```no_run
/// use stagecraft_sdk::prelude::*;
///
/// pub struct Noop;
/// impl Rule for Noop {
///     fn handle(_ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> {
///         Ok(())
///     }
/// }
///
/// stagecraft_sdk::export_rule!(Noop);
/// ```
///
/// The expansion implements the generated `Guest` trait on a private type whose `handle`
/// decodes the WIT event, runs `$rule` over a [`WitHost`] and returns its result, then emits
/// the component's export glue and type section. The plugin crate needs no other dependency.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        const _: () = {
            struct __StagecraftRuleExport;

            impl $crate::bindings::Guest for __StagecraftRuleExport {
                fn handle(
                    event: $crate::bindings::stagecraft::automation::types::Event,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::handle_wit_event::<$rule>(event)
                }
            }

            $crate::bindings::__export_rule_world!(
                __StagecraftRuleExport with_types_in $crate::bindings
            );
        };
    };
}

/// Compiles the README's Rust examples as doctests so the guide cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
