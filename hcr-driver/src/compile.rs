//! Compiling C translation units to arm64 Mach-O objects with clang, one object per translation unit, and
//! learning from the depfile which headers each one read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::depfile;

/// Flags every hcr compile gets, whatever the user passes.
///
/// - `-mllvm -aarch64-enable-global-merge=false`: at `-O3` LLVM merges static globals into one
///   `__MergedGlobals` blob, which would turn an edit of one global into a change of all of them.
/// - `-MD -MF`: the depfile that tells which headers a translation unit read.
const HCR_FLAGS: &[&str] = &["-mllvm", "-aarch64-enable-global-merge=false"];

/// How to invoke the C compiler for the target.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The compiler (`clang-19` on Linux, `clang` through `xcrun` on macOS, or the user's `--cc`).
    pub cc: PathBuf,
    /// Arguments that select the target and the SDK (`--target=…`, `-isysroot …`).
    pub target_args: Vec<OsString>,
}

impl Toolchain {
    /// clang-19 targeting arm64 macOS 13 with only the given extra target arguments (for tests and for the
    /// simulator's SDK, whose flags its README names).
    pub fn clang19(target_args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        let mut args: Vec<OsString> = vec!["--target=arm64-apple-macos13".into()];
        args.extend(target_args.into_iter().map(Into::into));
        Toolchain { cc: PathBuf::from("clang-19"), target_args: args }
    }
}

/// A compiled translation unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub source: PathBuf,
    pub object: PathBuf,
    /// Every file the compile read, the source first, as clang reported them.
    pub deps: Vec<PathBuf>,
}

/// Why a compile failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{file}: compile failed ({status}):\n{stderr}", file = file.display())]
    Diagnostics { file: PathBuf, status: std::process::ExitStatus, stderr: String },
    #[error("could not run the compiler `{cc}` for {file}: {error}", cc = cc.display(), file = file.display())]
    Spawn { cc: PathBuf, file: PathBuf, error: std::io::Error },
    #[error("{depfile}: not a dependency file written by the compiler", depfile = depfile.display())]
    BadDepfile { depfile: PathBuf },
    #[error("{path}: {error}", path = path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

/// The object path for `source` inside `out_dir`: the file stem plus a hash of the whole path, so that two
/// `util.c` in different folders get different objects and the name is stable across runs.
pub fn object_path(out_dir: &Path, source: &Path) -> PathBuf {
    let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "tu".into());
    let digest = Sha256::digest(source.as_os_str().as_encoded_bytes());
    let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    out_dir.join(format!("{stem}-{tag}.o"))
}

/// Compiles `source` into `out_dir` with the toolchain, hcr's own flags and the user's `flags` (`-I`, `-D`,
/// `-O`, …). The object is written next to a depfile of the same name with `.d`.
pub fn compile(
    toolchain: &Toolchain,
    flags: &[OsString],
    source: &Path,
    out_dir: &Path,
) -> Result<Compiled, CompileError> {
    let object = object_path(out_dir, source);
    let depfile = object.with_extension("d");
    let output = Command::new(&toolchain.cc)
        .args(&toolchain.target_args)
        .args(HCR_FLAGS)
        .args(flags)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(&object)
        .arg("-MD")
        .arg("-MF")
        .arg(&depfile)
        .output()
        .map_err(|error| CompileError::Spawn { cc: toolchain.cc.clone(), file: source.into(), error })?;
    if !output.status.success() {
        return Err(CompileError::Diagnostics {
            file: source.into(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim_end().to_string(),
        });
    }
    let text = std::fs::read_to_string(&depfile)
        .map_err(|error| CompileError::Io { path: depfile.clone(), error })?;
    let deps = depfile::parse(&text).ok_or(CompileError::BadDepfile { depfile })?;
    Ok(Compiled { source: source.into(), object, deps })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolchain() -> Toolchain {
        Toolchain::clang19(["-ffreestanding"])
    }

    #[test]
    fn object_names_are_distinct_per_path_and_stable() {
        let out = Path::new("/out");
        let a = object_path(out, Path::new("src/util.c"));
        let b = object_path(out, Path::new("lib/util.c"));
        assert_ne!(a, b);
        assert_eq!(a, object_path(out, Path::new("src/util.c")));
        assert!(a.file_name().unwrap().to_string_lossy().starts_with("util-"));
    }

    #[test]
    fn compiles_to_an_arm64_object_and_lists_the_headers_read() {
        let dir = tempfile::tempdir().unwrap();
        let header = dir.path().join("config.h");
        std::fs::write(&header, "#define LIMIT 3\n").unwrap();
        let source = dir.path().join("main.c");
        std::fs::write(&source, "#include \"config.h\"\nint limit(void) { return LIMIT; }\n").unwrap();

        let compiled = compile(&toolchain(), &[], &source, dir.path()).unwrap();

        let bytes = std::fs::read(&compiled.object).unwrap();
        // MH_MAGIC_64, CPU_TYPE_ARM64, MH_OBJECT.
        assert_eq!(&bytes[..4], &0xfeed_facf_u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &0x0100_000c_u32.to_le_bytes());
        assert_eq!(&bytes[12..16], &1_u32.to_le_bytes());
        assert_eq!(compiled.deps, [source.clone(), header]);
    }

    #[test]
    fn a_compile_error_names_the_file_and_carries_the_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("broken.c");
        std::fs::write(&source, "int f(void) { return missing_name; }\n").unwrap();

        let err = compile(&toolchain(), &[], &source, dir.path()).unwrap_err();

        let message = err.to_string();
        assert!(message.starts_with(&format!("{}: compile failed", source.display())), "{message}");
        assert!(message.contains("use of undeclared identifier 'missing_name'"), "{message}");
        assert!(!object_path(dir.path(), &source).exists());
    }

    #[test]
    fn user_flags_reach_the_compiler() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("flag.c");
        std::fs::write(&source, "#ifndef WANTED\n#error WANTED not defined\n#endif\nint x;\n").unwrap();
        assert!(compile(&toolchain(), &[], &source, dir.path()).is_err());
        compile(&toolchain(), &["-DWANTED".into()], &source, dir.path()).unwrap();
    }
}
