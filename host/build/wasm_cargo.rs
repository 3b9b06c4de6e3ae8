//! Shared by the build scripts (`host/build.rs`, and `tests/build.rs` by path): a nested
//! `cargo build --release --target wasm32-wasip2` of guest crates, in a target dir of its own
//! (the outer build holds a lock on the main one) and without the outer build's wrappers or
//! flags (clippy's driver, host RUSTFLAGS). Installs the wasm target with rustup if missing,
//! and says on the terminal that it is building (see [`tell_terminal`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The nested cargo command for `manifest`, and the directory its components land in.
pub fn wasm_cargo(root: &Path, manifest: &Path) -> (Command, PathBuf) {
    ensure_wasm_target();
    let what = match manifest.parent().and_then(|d| d.strip_prefix(root).ok()) {
        Some(d) if d.as_os_str().is_empty() => "the example modules (examples/)".to_string(),
        Some(d) => format!("the guest crates in {}", d.display()),
        None => manifest.display().to_string(),
    };
    tell_terminal(&format!(
        "{:>12} {what} for wasm32-wasip2 (a nested cargo; a first build takes several minutes)",
        "Building"
    ));
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("guests");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(manifest)
    .env("CARGO_TARGET_DIR", &target);
    for k in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(k);
    }
    (cmd, target.join("wasm32-wasip2/release"))
}

/// `rustup target add wasm32-wasip2` unless the standard library for it is already there.
fn ensure_wasm_target() {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed =
        sysroot.is_some_and(|s| Path::new(&s).join("lib/rustlib/wasm32-wasip2").exists());
    if !installed {
        let _ = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .status();
    }
}

/// Cargo shows a build script's output only once the script has finished (`cargo:warning`
/// included), so the minutes of a first nested build look stuck. When cargo itself writes
/// to a terminal, this puts one line on that terminal right away (on Linux: the build
/// script's parent is cargo, its stderr is `/proc/<parent>/fd/2`). Anywhere else (CI logs,
/// an editor running build scripts, other systems) it says nothing.
fn tell_terminal(line: &str) {
    #[cfg(target_os = "linux")]
    {
        use std::io::{IsTerminal, Write};
        let cargo_stderr = format!("/proc/{}/fd/2", std::os::unix::process::parent_id());
        if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open(cargo_stderr) {
            if tty.is_terminal() {
                // Start on a clean line: cargo may be drawing its progress bar there.
                let _ = writeln!(tty, "\r\x1b[2K{line}");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = line;
}
