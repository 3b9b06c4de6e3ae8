//! Builds the Wasm the integration tests upload, from source, on every test build:
//! the Rust guest fixtures (tests/guests) for wasm32-wasip2 (the example modules come
//! embedded in the host, built by its own build.rs), and the Python and JavaScript fixtures
//! with their real toolchains
//! (scripts/build-polyglot-guests; the tools come from scripts/install-guest-tools).
//! The tests find the results in `STAGECRAFT_GUESTS_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let out = PathBuf::from(env("OUT_DIR")).join("guests");
    std::fs::create_dir_all(&out).expect("create guests out dir");
    // A target dir of its own: the outer build holds a lock on the main one.
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("guests");

    for p in [
        "tests/guests/Cargo.toml",
        "tests/guests/rust",
        "guest-sdk/src",
        "guest-sdk/wit",
        "guest-sdk/Cargo.toml",
        "tests/guests/python",
        "tests/guests/js",
        "scripts/build-polyglot-guests",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=STAGECRAFT_TOOLS");

    build_rust(&root.join("tests/guests/Cargo.toml"), &target, &out);

    let script = root.join("scripts/build-polyglot-guests");
    if script.exists() {
        let status = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .status()
            .expect("run scripts/build-polyglot-guests");
        if !status.success() {
            println!("cargo:warning=Python/JavaScript fixtures were not built (scripts/build-polyglot-guests failed); run scripts/install-guest-tools");
        }
    }
    println!("cargo:rustc-env=STAGECRAFT_GUESTS_DIR={}", out.display());
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by cargo"))
}

/// `cargo build --release --target wasm32-wasip2` of a guest workspace, copying every
/// produced component into `out` as `<crate-name>.wasm` (dashes kept).
fn build_rust(manifest: &Path, target: &Path, out: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(manifest)
    .env("CARGO_TARGET_DIR", target);
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
    let status = cmd.status().expect("run cargo for the guests");
    assert!(
        status.success(),
        "building {} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)",
        manifest.display()
    );
    let dir = target.join("wasm32-wasip2/release");
    for entry in std::fs::read_dir(&dir).expect("guest output dir").flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "wasm") {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .replace('_', "-");
            std::fs::copy(&p, out.join(format!("{name}.wasm"))).expect("copy guest wasm");
        }
    }
}
