//! [`WitHost`]: the [`Host`] implementation that calls the real Stagecraft host through the
//! component's WIT imports.
//!
//! It exists so [`Ctx`](crate::Ctx) can be written once against the [`Host`] trait. It
//! compiles on every target (keeping plugin crates buildable natively), but its methods only
//! work inside a `wasm32` component instantiated by the host: natively, wit-bindgen's import
//! stubs panic. Native tests use [`MockHost`](crate::testing::MockHost) instead.

use crate::bindings::stagecraft::automation as wit;
use crate::create::{NewRecord, NewTask};
use crate::rule::Host;
use crate::types::{Filter, HostError, Level, Message, Record};

/// The real host, reached through the component's imports. Only usable on `wasm32`.
#[derive(Debug, Default, Clone, Copy)]
pub struct WitHost;

impl WitHost {
    /// The host this component was instantiated by.
    pub fn new() -> Self {
        WitHost
    }
}

/// A record the host sent that the SDK cannot decode (invalid custom JSON) is reported as
/// [`HostError::Invalid`] rather than panicking.
fn decode(record: wit::types::CrmRecord) -> Result<Record, HostError> {
    Record::try_from(record).map_err(HostError::Invalid)
}

impl Host for WitHost {
    fn get(&mut self, id: &str) -> Result<Record, HostError> {
        decode(wit::records::get(id)?)
    }

    fn find(&mut self, filter: &Filter, limit: u32) -> Result<Vec<Record>, HostError> {
        wit::records::find(&filter.into(), limit)?
            .into_iter()
            .map(decode)
            .collect()
    }

    fn move_to(&mut self, id: &str, stage: &str) -> Result<(), HostError> {
        Ok(wit::stages::move_to(id, stage)?)
    }

    fn set_field(&mut self, id: &str, name: &str, json: &str) -> Result<(), HostError> {
        Ok(wit::fields::set(id, name, json)?)
    }

    fn queue(&mut self, msg: &Message) -> Result<String, HostError> {
        Ok(wit::messages::queue(&msg.into())?)
    }

    fn schedule_after(&mut self, seconds: u64, payload_json: &str) -> Result<String, HostError> {
        Ok(wit::schedule::after(seconds, payload_json)?)
    }

    fn log(&mut self, level: Level, msg: &str) {
        wit::log::write(level.into(), msg);
    }

    fn config(&mut self) -> String {
        wit::config::get()
    }

    fn create_record(&mut self, record: &NewRecord) -> Result<String, HostError> {
        Ok(wit::records::create(&record.into())?)
    }

    fn create_task(&mut self, task: &NewTask) -> Result<String, HostError> {
        Ok(wit::tasks::create(&task.into())?)
    }

    fn complete_task(&mut self, id: &str) -> Result<(), HostError> {
        Ok(wit::tasks::complete(id)?)
    }

    fn comment(&mut self, record: &str, body: &str) -> Result<String, HostError> {
        Ok(wit::timeline::comment(record, body)?)
    }
}

/// Export glue called by [`export_rule!`](crate::export_rule): decodes the WIT event, runs
/// `R` over a [`WitHost`] and returns its result.
#[doc(hidden)]
pub fn handle_wit_event<R: crate::Rule>(
    event: crate::bindings::stagecraft::automation::types::Event,
) -> Result<(), String> {
    let event = crate::Event::try_from(event)
        .map_err(|e| format!("stagecraft-sdk could not decode the event: {e}"))?;
    crate::rule::run::<R>(&mut WitHost, &event)
}
