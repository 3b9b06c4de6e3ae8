//! Upload validation: is this a component, of a compatible world, importing only what the host
//! allows? Every rejection names the problem (and the offending import).

use wasmparser::{KnownCustom, Parser, Payload};

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the body is empty: send the module's .wasm bytes")]
    Empty,
    #[error("the module is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the body is not a WebAssembly binary (it does not start with \\0asm)")]
    NotWasm,
    #[error("this is a core WebAssembly module, not a component: build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)")]
    CoreModule,
    #[error("the component is invalid: {0}")]
    Invalid(String),
    #[error("import `{import}` is not allowed: {reason}")]
    ForbiddenImport { import: String, reason: String },
    #[error("export `{export}` is not allowed: {reason}")]
    ForbiddenExport { export: String, reason: String },
    #[error("the component does not export `handle`: build it against the `rule` world of stagecraft:automation@0.2 (or 0.1)")]
    MissingExport,
    #[error("the component cannot be linked: {0}")]
    Link(String),
    /// A structural count over its maximum (see `shape`): refused before compiling.
    #[error("the component has {found} {what}; the limit `{limit}` allows at most {max}", what = crate::shape::Shape::noun(limit))]
    OverLimit {
        limit: &'static str,
        found: u64,
        max: u64,
    },
    /// The compile pool will not take it now (see `compiler`).
    #[error(transparent)]
    Busy(crate::compiler::Busy),
    #[error("the config schema (custom section `stagecraft:config-schema`) {0}")]
    ConfigSchema(String),
}

/// WASI 0.2 packages a module may import (backed by a context that grants nothing).
const WASI_PACKAGES: &[&str] = &["cli", "clocks", "io", "random", "filesystem", "sockets"];

/// The `wasi:http` 0.2 interfaces a module may import: calling out, where its binding grants
/// it (see `http`). Serving HTTP (`incoming-handler`) is not something a rule does.
const HTTP_INTERFACES: &[&str] = &["outgoing-handler", "types"];

/// Checks one import name against the policy.
pub fn check_import(name: &str) -> Result<(), UploadError> {
    let forbid = |reason: &str| UploadError::ForbiddenImport {
        import: name.to_string(),
        reason: reason.to_string(),
    };
    let Some((path, version)) = name.split_once('@') else {
        return Err(forbid(
            "modules may import only versioned stagecraft:automation@0.1 or 0.2 and WASI 0.2 interfaces",
        ));
    };
    let Some((package, interface)) = path.split_once('/') else {
        return Err(forbid("not an interface import"));
    };
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    match package.split_once(':') {
        Some(("wasi", pkg)) if WASI_PACKAGES.contains(&pkg) => {
            if major == "0" && minor == "2" {
                Ok(())
            } else {
                Err(forbid("only WASI 0.2.x interfaces are linked"))
            }
        }
        Some(("wasi", "http")) => {
            if !(major == "0" && minor == "2") {
                Err(forbid("only WASI 0.2.x interfaces are linked"))
            } else if HTTP_INTERFACES.contains(&interface) {
                Ok(())
            } else {
                Err(forbid(
                    "of wasi:http only outgoing-handler and types are linked: a module may call out where its binding grants it, never serve HTTP",
                ))
            }
        }
        Some(("wasi", _)) => Err(forbid(
            "modules get no network or other outside capability; allowed WASI packages are cli, clocks, io, random, filesystem and sockets (all granting nothing) and http (outgoing-handler and types: calls the binding grants)",
        )),
        Some(("stagecraft", "automation")) => match crate::versions::interfaces(minor) {
            Some(_) if major != "0" => Err(forbid(
                "it needs an incompatible version of the Stagecraft API; this host provides stagecraft:automation@0.1.x and 0.2.x",
            )),
            None => Err(forbid(
                "it needs an incompatible version of the Stagecraft API; this host provides stagecraft:automation@0.1.x and 0.2.x",
            )),
            Some(names) if !names.contains(&interface) => Err(forbid(&format!(
                "stagecraft:automation@0.{minor} has no such interface"
            ))),
            Some(_) => Ok(()),
        },
        _ => Err(forbid(
            "unknown package; modules may import only stagecraft:automation@0.1 or 0.2 and WASI 0.2 interfaces",
        )),
    }
}

/// Checks one export name: a rule exports `handle`; one that would serve HTTP
/// (`wasi:http/incoming-handler`) is refused by name. Other exports (toolchains add a few)
/// are never called.
pub fn check_export(name: &str) -> Result<(), UploadError> {
    let path = name.split_once('@').map_or(name, |(p, _)| p);
    if path == "wasi:http/incoming-handler" {
        return Err(UploadError::ForbiddenExport {
            export: name.to_string(),
            reason: "a module runs when the host calls its `handle`; it cannot serve HTTP (build JavaScript with `--disable fetch-event`)".into(),
        });
    }
    Ok(())
}

/// Cheap checks before compiling: size, magic, component vs core module.
pub fn precheck(bytes: &[u8], limit: usize) -> Result<(), UploadError> {
    if bytes.is_empty() {
        return Err(UploadError::Empty);
    }
    if bytes.len() > limit {
        return Err(UploadError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(UploadError::NotWasm);
    }
    if Parser::is_core_wasm(bytes) {
        return Err(UploadError::CoreModule);
    }
    if !Parser::is_component(bytes) {
        return Err(UploadError::Invalid(
            "unknown WebAssembly binary version or layer".into(),
        ));
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The source language, e.g. `Rust`, `Python`, `JavaScript`. Python and JavaScript
/// components embed an interpreter written in C and Rust, so their producers sections say
/// "C" or "Rust"; the embedded runtimes' names tell them apart first.
pub fn language(bytes: &[u8]) -> Option<String> {
    if contains(bytes, b"componentize_py_runtime") || contains(bytes, b"libpython3.") {
        return Some("Python".into());
    }
    if contains(bytes, b"StarlingMonkey") || contains(bytes, b"ComponentizeJS") {
        return Some("JavaScript".into());
    }
    let mut found: Vec<String> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CustomSection(section)) = payload else {
            continue;
        };
        if let KnownCustom::Producers(reader) = section.as_known() {
            for field in reader.into_iter().flatten() {
                if field.name != "language" && field.name != "processed-by" {
                    continue;
                }
                for value in field.values.into_iter().flatten() {
                    found.push(value.name.to_string());
                }
            }
        }
    }
    let has = |needle: &str| {
        found
            .iter()
            .any(|f| f.to_ascii_lowercase().contains(needle))
    };
    if has("componentize-py") || has("python") {
        Some("Python".into())
    } else if has("componentize-js") || has("javascript") || has("starlingmonkey") {
        Some("JavaScript".into())
    } else if has("rust") {
        Some("Rust".into())
    } else {
        found.into_iter().find(|f| !f.is_empty())
    }
}

/// The custom section a module declares its config's JSON Schema in.
pub const CONFIG_SCHEMA_SECTION: &str = "stagecraft:config-schema";

/// The largest config schema a module may declare.
pub const CONFIG_SCHEMA_BYTES: usize = 32 * 1024;

/// The bytes of the component's config schema section, if it has one (at the top level, or
/// in the core module where the Rust SDK's linker puts it). At most [`CONFIG_SCHEMA_BYTES`];
/// declaring it twice is refused. Whether the bytes are a JSON Schema is the caller's check.
pub fn config_schema(bytes: &[u8]) -> Result<Option<&[u8]>, UploadError> {
    let mut found: Option<&[u8]> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CustomSection(section)) = payload else {
            continue;
        };
        if section.name() != CONFIG_SCHEMA_SECTION {
            continue;
        }
        if found.is_some() {
            return Err(UploadError::ConfigSchema(
                "appears more than once; declare the schema once".into(),
            ));
        }
        let data = section.data();
        if data.len() > CONFIG_SCHEMA_BYTES {
            return Err(UploadError::ConfigSchema(format!(
                "is {} bytes; the limit is {CONFIG_SCHEMA_BYTES}",
                data.len()
            )));
        }
        found = Some(data);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_policy() {
        assert!(check_import("wasi:cli/environment@0.2.9").is_ok());
        assert!(check_import("wasi:io/streams@0.2.0").is_ok());
        assert!(check_import("stagecraft:automation/records@0.1.0").is_ok());
        assert!(check_import("stagecraft:automation/records@0.1.7").is_ok());
        assert!(check_import("wasi:http/outgoing-handler@0.2.0").is_ok());
        assert!(check_import("wasi:http/types@0.2.12").is_ok());
        let e = check_import("wasi:http/incoming-handler@0.2.0").unwrap_err();
        assert!(
            e.to_string().contains("wasi:http/incoming-handler@0.2.0"),
            "{e}"
        );
        assert!(e.to_string().contains("never serve HTTP"), "{e}");
        let e = check_import("wasi:http/outgoing-handler@0.3.0").unwrap_err();
        assert!(e.to_string().contains("0.2.x"), "{e}");
        assert!(check_import("wasi:keyvalue/store@0.2.0").is_err());
        let e = check_export("wasi:http/incoming-handler@0.2.3").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("export `wasi:http/incoming-handler@0.2.3` is not allowed"),
            "{e}"
        );
        assert!(check_export("handle").is_ok());
        let e = check_import("stagecraft:automation/records@1.0.0").unwrap_err();
        assert!(e.to_string().contains("incompatible version"), "{e}");
        assert!(check_import("acme:evil/steal@1.0.0").is_err());
        assert!(check_import("wasi:cli/environment@0.3.0").is_err());
        assert!(check_import("stagecraft:automation/payments@0.1.0").is_err());
        assert!(check_import("stagecraft:automation/tasks@0.2.0").is_ok());
        assert!(check_import("stagecraft:automation/records@0.2.3").is_ok());
        let e = check_import("stagecraft:automation/tasks@0.1.0").unwrap_err();
        assert!(e.to_string().contains("0.1 has no such interface"), "{e}");
        assert!(check_import("stagecraft:automation/records@0.3.0").is_err());
        assert!(check_import("env").is_err());
    }

    /// A component with custom sections `sections` at the top level.
    fn with_sections(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut c = vec![0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        for (name, data) in sections {
            let mut body = vec![name.len() as u8];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(data);
            let mut n = body.len();
            c.push(0);
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                c.push(if n == 0 { byte } else { byte | 0x80 });
                if n == 0 {
                    break;
                }
            }
            c.extend(body);
        }
        c
    }

    #[test]
    fn the_config_schema_section_is_found_and_bounded() {
        let schema = br#"{"type": "object"}"#;
        let c = with_sections(&[("other", b"x"), (CONFIG_SCHEMA_SECTION, schema)]);
        assert_eq!(config_schema(&c).unwrap(), Some(&schema[..]));
        assert_eq!(
            config_schema(&with_sections(&[("other", b"x")])).unwrap(),
            None
        );
        let twice = with_sections(&[
            (CONFIG_SCHEMA_SECTION, b"{}"),
            (CONFIG_SCHEMA_SECTION, b"{}"),
        ]);
        let e = config_schema(&twice).unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
        let big = vec![b' '; CONFIG_SCHEMA_BYTES + 1];
        let e = config_schema(&with_sections(&[(CONFIG_SCHEMA_SECTION, &big)])).unwrap_err();
        assert!(e.to_string().contains("the limit is 32768"), "{e}");
    }

    #[test]
    fn prechecks_name_the_problem() {
        assert!(matches!(precheck(b"", 10), Err(UploadError::Empty)));
        assert!(matches!(
            precheck(b"hello world", 100),
            Err(UploadError::NotWasm)
        ));
        assert!(matches!(
            precheck(&[0; 20], 10),
            Err(UploadError::TooLarge { .. })
        ));
        let core = [0, b'a', b's', b'm', 1, 0, 0, 0];
        assert!(matches!(precheck(&core, 100), Err(UploadError::CoreModule)));
    }
}
