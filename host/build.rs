//! Builds the example modules (`examples/*`) to wasm32-wasip2 and embeds them, so
//! `stagecraft serve --demo` can seed a tenant with them on any machine with only the Rust
//! toolchain. Installs the wasm target with rustup when it is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[path = "build/wasm_cargo.rs"]
mod wasm_cargo;
use wasm_cargo::wasm_cargo;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let examples_dir = root.join("examples");
    println!("cargo:rerun-if-changed={}", examples_dir.display());
    println!("cargo:rerun-if-changed=build/wasm_cargo.rs");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest-sdk/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest-sdk/wit").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host/rules/src").display()
    );

    let mut names: Vec<String> = std::fs::read_dir(&examples_dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("Cargo.toml").exists())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();

    let mut code = String::from("/// The example modules, built from `examples/` by build.rs: (name, component bytes).\npub const EXAMPLES: &[(&str, &[u8])] = &[\n");
    if !names.is_empty() {
        let (mut cmd, built_dir) = wasm_cargo(&root, &root.join("Cargo.toml"));
        // Small components: no debug info, stripped, optimized for size.
        cmd.args([
            "--config",
            "profile.release.debug=false",
            "--config",
            "profile.release.strip=true",
        ])
        .args([
            "--config",
            "profile.release.opt-level=\"s\"",
            "--config",
            "profile.release.lto=true",
        ]);
        for n in &names {
            cmd.args(["-p", n]);
        }
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "building the example modules for wasm32-wasip2 failed");
        for n in &names {
            let built = built_dir.join(format!("{}.wasm", n.replace('-', "_")));
            let copy = out.join(format!("{n}.wasm"));
            std::fs::copy(&built, &copy)
                .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
            let _ = writeln!(
                code,
                "    ({n:?}, include_bytes!({:?})),",
                copy.display().to_string()
            );
        }
    }
    code.push_str("];\n");
    std::fs::write(out.join("examples.rs"), code)
        .unwrap_or_else(|e| panic!("write examples.rs: {e}"));
}
