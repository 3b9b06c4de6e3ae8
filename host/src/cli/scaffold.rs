//! `stagecraft new` (a rule crate wired to stagecraft-sdk, with a working rule and unit tests
//! on the SDK's mock host) and `stagecraft build` (cargo, release, `wasm32-wasip2`, printing
//! the component it produced). The crate's files are the templates in `cli/template/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::serve::shell_word;
use super::CliError;

const TARGET: &str = "wasm32-wasip2";

/// The SDK source next to the host crate this binary was built from.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const LIB_RS: &str = include_str!("template/lib.rs.in");
const README: &str = include_str!("template/README.md.in");
const GITIGNORE: &str = include_str!("template/gitignore.in");

/// Creates the rule crate at `path` (its last component is the crate name).
pub fn new(path: &Path, sdk_path: Option<&Path>) -> Result<(), CliError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CliError::Usage(format!("{} has no crate name", path.display())))?;
    check_name(name)?;
    let sdk = sdk_dir(sdk_path)?;
    if path.exists() {
        let non_empty = std::fs::read_dir(path)
            .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?
            .next()
            .is_some();
        if non_empty {
            return Err(CliError::Failed(format!(
                "{} already exists and is not empty; nothing was written",
                path.display()
            )));
        }
    }
    let sdk_text = sdk
        .to_str()
        .ok_or_else(|| CliError::Failed(format!("the SDK path {} is not UTF-8", sdk.display())))?;
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk_path}}", &toml_escape(sdk_text))
    };
    let mut files = vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("README.md", fill(README)),
        (".gitignore", fill(GITIGNORE)),
    ];
    // The lock file Stagecraft itself is built and tested with, next to the SDK: the crate's
    // first build uses those versions (cargo drops the packages the crate does not use).
    let lock = sdk
        .parent()
        .map(|checkout| checkout.join("Cargo.lock"))
        .and_then(|l| std::fs::read_to_string(l).ok());
    let pinned = lock.is_some();
    files.extend(lock.map(|l| ("Cargo.lock", l)));
    for (rel, text) in &files {
        let file = path.join(rel);
        let write = || -> std::io::Result<()> {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&file, text)
        };
        write().map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
    }
    outln!(
        "created rule crate {name} in {} (stagecraft-sdk from {}{})",
        path.display(),
        sdk.display(),
        if pinned {
            "; Cargo.lock pins its dependencies to the versions Stagecraft uses"
        } else {
            ""
        }
    );
    let me = invocation();
    outln!("next:");
    outln!("  cd {}", shell_word(path));
    outln!("  cargo test");
    outln!("  {me} build");
    if me != "stagecraft" {
        let host = sdk.parent().map(|c| c.join("host"));
        outln!(
            "(`stagecraft` is not on your PATH{}; the line above runs this build of it)",
            host.map(|h| format!(": `cargo install --path {}` puts it there", shell_word(&h)))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// How to run this very `stagecraft` from anywhere: `stagecraft` when that is what PATH
/// finds, the `cargo run` line for this checkout when cargo started it, else its full path.
fn invocation() -> String {
    let me = std::env::current_exe().and_then(|p| p.canonicalize()).ok();
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let found = dir.join("stagecraft").canonicalize().ok();
            found.is_some() && found == me
        })
    });
    if on_path {
        return "stagecraft".into();
    }
    // `cargo run` gives the program its package's environment.
    let by_cargo = std::env::var("CARGO_PKG_NAME").is_ok_and(|n| n == "stagecraft");
    if let (true, Some(dir)) = (by_cargo, std::env::var_os("CARGO_MANIFEST_DIR")) {
        let manifest = Path::new(&dir).join("../Cargo.toml");
        if let Ok(manifest) = manifest.canonicalize() {
            return format!(
                "cargo run -q --manifest-path {} -p stagecraft --",
                shell_word(&manifest)
            );
        }
    }
    match me {
        Some(p) => shell_word(&p),
        None => "stagecraft".into(),
    }
}

/// A crate name that is also a module name: a letter, then letters, digits, `-` or `_`.
fn check_name(name: &str) -> Result<(), CliError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{name:?} is not a crate name: a letter, then up to 63 letters, digits, '-' or '_'"
        )))
    }
}

/// The SDK directory: `--sdk-path`, else the source tree this binary was built from.
fn sdk_dir(given: Option<&Path>) -> Result<PathBuf, CliError> {
    let (dir, hint) = match given {
        Some(d) => (d.to_path_buf(), "--sdk-path"),
        None => (
            PathBuf::from(BUILT_FROM_SDK),
            "the source tree this binary was built from",
        ),
    };
    let is_sdk = std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|t| t.contains("name = \"stagecraft-sdk\""));
    if !is_sdk {
        return Err(CliError::Failed(match given {
            Some(_) => format!(
                "--sdk-path {}: no stagecraft-sdk crate there (expected its Cargo.toml)",
                dir.display()
            ),
            None => format!(
                "no stagecraft-sdk source found at {} ({hint}); pass --sdk-path <the guest-sdk directory of a Stagecraft checkout>",
                dir.display()
            ),
        }));
    }
    dir.canonicalize()
        .map_err(|e| CliError::Failed(format!("{}: {e}", dir.display())))
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Builds the crate at `path` for `wasm32-wasip2` in release mode and prints the component's
/// path (under `CARGO_TARGET_DIR` when set, as cargo decides).
pub fn build(path: &Path, json: bool) -> Result<(), CliError> {
    let manifest = path.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(CliError::Failed(format!(
            "{} is not a crate directory (no Cargo.toml); run `stagecraft new` first or pass --path",
            path.display()
        )));
    }
    check_target(path)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CliError::Failed(format!("running {cargo}: {e}")))?;
    let mut components = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            for f in msg["filenames"].as_array().into_iter().flatten() {
                if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                    components.push(PathBuf::from(f));
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| CliError::Failed(format!("waiting for {cargo}: {e}")))?;
    if !status.success() {
        return Err(CliError::Failed(format!(
            "cargo build --release --target {TARGET} failed in {} ({status})",
            path.display()
        )));
    }
    let Some(component) = components.pop() else {
        return Err(CliError::Failed(format!(
            "the build produced no .wasm; is {} a `crate-type = [\"cdylib\"]` crate?",
            manifest.display()
        )));
    };
    let size = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
    if json {
        super::table::print_json(&serde_json::json!({
            "component": component, "size": size
        }));
    } else {
        outln!("{}", component.display());
        eprintln!("built component ({})", super::table::bytes(size));
    }
    Ok(())
}

/// Refuses clearly when the toolchain used in `dir` has no `wasm32-wasip2` standard library.
fn check_target(dir: &Path) -> Result<(), CliError> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .map_err(|e| CliError::Failed(format!("running {rustc}: {e}; is Rust installed?")))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "the Rust target {TARGET} is not installed (no {sysroot}/lib/rustlib/{TARGET}); run `rustup target add {TARGET}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names() {
        assert!(check_name("my-rule").is_ok());
        assert!(check_name("rule_2").is_ok());
        for bad in ["", "2rule", "my rule", "my.rule", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates_are_filled_completely() {
        for t in [CARGO_TOML, LIB_RS, README, GITIGNORE] {
            let filled = t
                .replace("{{name}}", "n")
                .replace("{{crate}}", "n")
                .replace("{{sdk_path}}", "p");
            assert!(
                !filled.contains("{{"),
                "a placeholder is left in:\n{filled}"
            );
        }
    }
}
