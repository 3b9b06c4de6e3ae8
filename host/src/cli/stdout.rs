//! Command output on stdout that survives its reader going away. Rust ignores SIGPIPE, so a
//! plain `println!` to a closed pipe (`stagecraft messages | head -3`) panics; here a broken
//! pipe ends the process quietly with exit 0, as the reader asked for no more. Other write
//! errors (a full disk behind a redirect) are reported and exit 1.

use std::io::{ErrorKind, Write};

/// Writes `args` and a newline to stdout (see [`outln!`](crate::cli)).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}
