//! Hostile: panics.
use stagecraft_sdk::prelude::*;

struct Panicker;

impl Rule for Panicker {
    fn handle(_ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        if std::hint::black_box(!event.id.is_empty()) {
            panic!("the rule broke on purpose");
        }
        Ok(())
    }
}

export_rule!(Panicker);
