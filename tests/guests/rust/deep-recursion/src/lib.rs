//! Hostile: recurses until the (wasm) call stack runs out.
use stagecraft_sdk::prelude::*;

struct Deep;

fn down(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    std::hint::black_box(down(std::hint::black_box(n + 1))).wrapping_add(n)
}

impl Rule for Deep {
    fn handle(_ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> {
        std::hint::black_box(down(0));
        Ok(())
    }
}

export_rule!(Deep);
