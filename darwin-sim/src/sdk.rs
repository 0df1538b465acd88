//! The sim SDK (`sim-sdk/` at the repository root): prototype-only headers and a `libSystem.tbd` listing exactly
//! the libSystem functions and data this crate implements, and the flags that compile and link against it.
//!
//! Programs built this way also compile against the real macOS SDK; against the sim SDK, a call to anything the
//! simulator does not implement fails at link time (`undefined symbol: _getenv`), not at run time.

use std::ffi::OsString;
use std::path::PathBuf;

/// The folder holding `usr/include` and `usr/lib/libSystem.tbd`.
pub fn path() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join("sim-sdk")
}

/// The clang flags that select the target; [`clang_args`] adds `-isysroot` with the SDK's path.
///
/// No `-ffreestanding` is needed: for Darwin targets clang searches only its own resource headers and
/// `SYSROOT/usr/include`, so the host's Linux headers never leak in, and clang's `stdint.h`, `stddef.h`,
/// `stdarg.h`, `stdbool.h` and `limits.h` stand alone when the sysroot has none of their own.
pub const CLANG_FLAGS: &[&str] = &["--target=arm64-apple-macos13"];

/// The `ld64.lld-19` flags before the objects; [`ld_args`] adds `-syslibroot` with the SDK's path. Append
/// `-no_fixup_chains` for `LC_DYLD_INFO_ONLY` output instead of chained fixups.
pub const LD_FLAGS: &[&str] = &["-arch", "arm64", "-platform_version", "macos", "13.0", "13.0", "-lSystem"];

/// Every clang argument for compiling against the sim SDK: [`CLANG_FLAGS`] and `-isysroot SDK`.
pub fn clang_args() -> Vec<OsString> {
    let mut args: Vec<OsString> = CLANG_FLAGS.iter().map(OsString::from).collect();
    args.push("-isysroot".into());
    args.push(path().into_os_string());
    args
}

/// Every `ld64.lld-19` argument for linking against the sim SDK: [`LD_FLAGS`] and `-syslibroot SDK`.
pub fn ld_args() -> Vec<OsString> {
    let mut args: Vec<OsString> = LD_FLAGS.iter().map(OsString::from).collect();
    args.push("-syslibroot".into());
    args.push(path().into_os_string());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_holds_headers_and_the_text_stub() {
        let sdk = path();
        assert!(sdk.join("usr/include/stdio.h").is_file(), "{}", sdk.display());
        assert!(sdk.join("usr/lib/libSystem.tbd").is_file(), "{}", sdk.display());
    }
}
