//! Hostile: never returns.
use stagecraft_sdk::prelude::*;

struct Spin;

impl Rule for Spin {
    fn handle(_ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_rule!(Spin);
