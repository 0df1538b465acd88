//! Text-based dylib stubs (`.tbd`, TAPI version 4): which symbols a system library exports.
//!
//! The SDK ships libraries as these YAML stubs instead of binaries. The linker needs only what resolves an
//! undefined symbol: the install name (for `LC_LOAD_DYLIB`) and the exported names for the arm64 macOS target.
//! A real `libSystem.tbd` holds several documents — libSystem and the libraries it re-exports — and a symbol
//! re-exported through libSystem is bound to libSystem, so the exports of every document are gathered under
//! the first document's install name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// The target hcr links for.
pub const TARGET: &str = "arm64-macos";

/// What a stub tells the linker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DylibStub {
    pub install_name: String,
    /// Every exported symbol (functions and data alike), with its Mach-O leading underscore.
    pub symbols: BTreeSet<String>,
    /// Exported weak definitions (a subset of `symbols`).
    pub weak_symbols: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}", path = path.display())]
pub struct TbdError {
    pub path: PathBuf,
    pub reason: String,
}

/// Parses a `.tbd` file's text.
pub fn parse_tbd(path: &Path, text: &str) -> Result<DylibStub, TbdError> {
    let bad = |reason: String| TbdError { path: path.to_path_buf(), reason };
    let documents = YamlLoader::load_from_str(text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let first = documents.first().ok_or_else(|| bad("no YAML document".into()))?;
    let install_name =
        first["install-name"].as_str().ok_or_else(|| bad("missing `install-name`".into()))?.to_string();
    let mut stub = DylibStub { install_name, symbols: BTreeSet::new(), weak_symbols: BTreeSet::new() };
    for (index, document) in documents.iter().enumerate() {
        match document["tbd-version"].as_i64() {
            Some(4) => {}
            Some(other) => {
                return Err(bad(format!("document {index}: tbd-version {other} is not supported (only 4)")));
            }
            None => return Err(bad(format!("document {index}: missing `tbd-version`"))),
        }
        if !list(&document["targets"]).any(|t| t == TARGET) {
            // A library for other targets only contributes nothing.
            continue;
        }
        for section in ["exports", "reexports"] {
            let Yaml::Array(entries) = &document[section] else {
                if !document[section].is_badvalue() {
                    return Err(bad(format!("document {index}: `{section}` must be a list")));
                }
                continue;
            };
            for entry in entries {
                if !list(&entry["targets"]).any(|t| t == TARGET) {
                    continue;
                }
                stub.symbols.extend(list(&entry["symbols"]).map(str::to_string));
                let weak: Vec<String> = list(&entry["weak-symbols"]).map(str::to_string).collect();
                stub.symbols.extend(weak.iter().cloned());
                stub.weak_symbols.extend(weak);
            }
        }
    }
    Ok(stub)
}

/// The strings of a YAML list (nothing if it is absent or not a list of strings).
fn list(value: &Yaml) -> impl Iterator<Item = &str> {
    let items = match value {
        Yaml::Array(items) => items.as_slice(),
        _ => &[],
    };
    items.iter().filter_map(Yaml::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIBSYSTEM: &str = r#"--- !tapi-tbd
tbd-version:     4
targets:         [ arm64-macos, x86_64-macos ]
install-name:    '/usr/lib/libSystem.B.dylib'
current-version: 1319
reexported-libraries:
  - targets:     [ arm64-macos, x86_64-macos ]
    libraries:   [ '/usr/lib/system/libsystem_c.dylib' ]
exports:
  - targets:     [ arm64-macos, x86_64-macos ]
    symbols:     [ _exit, dyld_stub_binder ]
  - targets:     [ x86_64-macos ]
    symbols:     [ _only_on_intel ]
--- !tapi-tbd
tbd-version:     4
targets:         [ arm64-macos, x86_64-macos ]
install-name:    '/usr/lib/system/libsystem_c.dylib'
exports:
  - targets:     [ arm64-macos, x86_64-macos ]
    symbols:     [ _printf, ___stack_chk_guard ]
    weak-symbols: [ _weakling ]
...
"#;

    #[test]
    fn gathers_reexported_symbols_under_the_first_install_name() {
        let stub = parse_tbd(Path::new("libSystem.tbd"), LIBSYSTEM).unwrap();
        assert_eq!(stub.install_name, "/usr/lib/libSystem.B.dylib");
        let symbols: Vec<&str> = stub.symbols.iter().map(String::as_str).collect();
        assert_eq!(symbols, ["___stack_chk_guard", "_exit", "_printf", "_weakling", "dyld_stub_binder"]);
        assert!(stub.weak_symbols.contains("_weakling"));
    }

    #[test]
    fn malformed_stubs_say_what_is_wrong() {
        let path = Path::new("bad.tbd");
        let err = |text: &str| parse_tbd(path, text).unwrap_err().to_string();
        assert!(err("--- !tapi-tbd\ntbd-version: 4\n").contains("missing `install-name`"));
        assert!(
            err("--- !tapi-tbd\ntbd-version: 3\ninstall-name: x\n")
                .contains("tbd-version 3 is not supported")
        );
        assert!(err("targets: [ unclosed\n").starts_with("bad.tbd: not valid YAML"));
        assert!(
            err("--- !tapi-tbd\ntbd-version: 4\ninstall-name: x\ntargets: [ arm64-macos ]\nexports: 7\n")
                .contains("`exports` must be a list")
        );
    }

    /// The same text is valid for LLVM's own TAPI reader, so the test stub above is a real `.tbd`.
    #[test]
    fn llvm_readtapi_accepts_the_test_stub() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libSystem.tbd");
        std::fs::write(&file, LIBSYSTEM).unwrap();
        let out = std::process::Command::new("llvm-readtapi-19")
            .arg(&file)
            .output()
            .expect("llvm-readtapi-19 must be installed (cargo xtask setup)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("_printf"));
    }
}
