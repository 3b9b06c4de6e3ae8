//! Hostile: grows memory without bound.
use stagecraft_sdk::prelude::*;

struct Hog;

impl Rule for Hog {
    fn handle(_ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            chunks.push(vec![7u8; 1 << 20]);
            std::hint::black_box(&chunks);
        }
    }
}

export_rule!(Hog);
