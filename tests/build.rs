//! Builds the Wasm the integration tests upload, from source, on every test build:
//! the Rust guest fixtures (tests/guests) for wasm32-wasip2 (the example modules come
//! embedded in the host, built by its own build.rs), and the Python and JavaScript fixtures
//! with their real toolchains
//! (scripts/build-polyglot-guests; the tools come from scripts/install-guest-tools).
//! The tests find the results in `STAGECRAFT_GUESTS_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../host/build/wasm_cargo.rs"]
mod wasm_cargo;
use wasm_cargo::wasm_cargo;

fn main() {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace root").to_path_buf();
    let out = PathBuf::from(env("OUT_DIR")).join("guests");
    std::fs::create_dir_all(&out).expect("create guests out dir");

    for p in [
        "tests/guests/Cargo.toml",
        "tests/guests/rust",
        "guest-sdk/src",
        "guest-sdk/wit",
        "guest-sdk/wit-0.1",
        "guest-sdk/Cargo.toml",
        "tests/guests/python",
        "tests/guests/js",
        "scripts/build-polyglot-guests",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=STAGECRAFT_TOOLS");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host/build/wasm_cargo.rs").display()
    );

    build_rust(&root, &root.join("tests/guests/Cargo.toml"), &out);

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
fn build_rust(root: &Path, manifest: &Path, out: &Path) {
    let (mut cmd, dir) = wasm_cargo(root, manifest);
    let status = cmd.status().expect("run cargo for the guests");
    assert!(
        status.success(),
        "building {} for wasm32-wasip2 failed",
        manifest.display()
    );
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
