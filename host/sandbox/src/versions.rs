//! Which versions of the host API a module may be built against, and how the older ones are
//! linked. The host implements the newest contract (`guest-sdk/wit`, 0.2); a component built
//! against 0.1 imports `stagecraft:automation/…@0.1.0`, which wasmtime's linker never matches
//! with a 0.2 definition (for 0.x packages only patch releases are semver-compatible:
//! `alternate_lookup_key` in wasmtime-environ's `component/names.rs`). So the 0.2
//! implementation of every interface 0.1 had is also defined under its 0.1 name. That is
//! sound because 0.2 is additive: each 0.1 interface is unchanged in 0.2 or only gained
//! functions (`records.create`), and wasmtime type-checks imports and the `handle` export
//! structurally, so a 0.1 component sees exactly the functions and types it was built with.
//! (Adding a case to a type the `handle` export carries, such as `event-kind`, would break
//! that: 0.1 modules would then need their own bindings.)

use wasmtime::component::{HasSelf, Linker};

use crate::host_api::HostApi;
use crate::wit::stagecraft::automation as v;
use crate::RunState;

/// The Stagecraft interfaces a module may import, by minor version of
/// `stagecraft:automation@0.x` (every patch release of a minor is accepted).
pub const INTERFACES: &[(&str, &[&str])] = &[
    (
        "1",
        &[
            "types", "records", "stages", "fields", "messages", "schedule", "log", "config",
        ],
    ),
    (
        "2",
        &[
            "types", "records", "stages", "fields", "messages", "schedule", "tasks", "timeline",
            "log", "config",
        ],
    ),
];

/// The newest minor version, for messages.
pub const CURRENT: &str = "0.2";

/// The interfaces `stagecraft:automation@0.{minor}` has, if the host provides that minor.
pub fn interfaces(minor: &str) -> Option<&'static [&'static str]> {
    INTERFACES
        .iter()
        .find(|(m, _)| *m == minor)
        .map(|(_, names)| *names)
}

/// Defines the 0.1 interfaces (under their 0.1 names) with the 0.2 implementation.
pub(crate) fn link_v01(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    fn get(s: &mut RunState) -> &mut HostApi {
        &mut s.api
    }
    let name = |i: &str| format!("stagecraft:automation/{i}@0.1.0");
    // `types` defines only types: an empty instance satisfies its import.
    linker.instance(&name("types"))?;
    v::records::add_to_linker_instance::<RunState, HasSelf<HostApi>>(
        &mut linker.instance(&name("records"))?,
        get,
    )?;
    v::stages::add_to_linker_instance::<RunState, HasSelf<HostApi>>(
        &mut linker.instance(&name("stages"))?,
        get,
    )?;
    v::fields::add_to_linker_instance::<RunState, HasSelf<HostApi>>(
        &mut linker.instance(&name("fields"))?,
        get,
    )?;
    v::messages::add_to_linker_instance::<RunState, HasSelf<HostApi>>(
        &mut linker.instance(&name("messages"))?,
        get,
    )?;
    v::schedule::add_to_linker_instance::<RunState, HasSelf<HostApi>>(
        &mut linker.instance(&name("schedule"))?,
        get,
    )?;
    v::log::add_to_linker_instance::<RunState, HasSelf<HostApi>>(
        &mut linker.instance(&name("log"))?,
        get,
    )?;
    v::config::add_to_linker_instance::<RunState, HasSelf<HostApi>>(
        &mut linker.instance(&name("config"))?,
        get,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_minor_keeps_the_interfaces_of_the_one_before() {
        for pair in INTERFACES.windows(2) {
            for i in pair[0].1 {
                assert!(pair[1].1.contains(i), "0.{} dropped {i}", pair[1].0);
            }
        }
        assert_eq!(interfaces("2").map(|i| i.contains(&"tasks")), Some(true));
        assert_eq!(interfaces("1").map(|i| i.contains(&"tasks")), Some(false));
        assert!(interfaces("3").is_none());
    }
}
