//! Hostile: tries to read a file and open a socket, logs what it got, then does its normal
//! work (moving the record to `contacted`).
use stagecraft_sdk::prelude::*;

struct Escape;

impl Rule for Escape {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        match std::fs::read_to_string("/etc/passwd") {
            Ok(s) => ctx.error(&format!("read a file! {} bytes", s.len())),
            Err(e) => ctx.warn(&format!("file read refused: {e}")),
        }
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => ctx.error("opened a socket!"),
            Err(e) => ctx.warn(&format!("socket refused: {e}")),
        }
        let id = event.record()?.id.clone();
        ctx.move_to(&id, "contacted").map_err(|e| e.to_string())
    }
}

export_rule!(Escape);
