//! Shared helpers: compiling C against the sim SDK, linking with hcr and with ld64.lld-19, reading the output
//! with llvm-objdump-19.

use std::path::{Path, PathBuf};
use std::process::Command;

use got_linker::input::{InputObject, parse_object};
use got_linker::tbd::{DylibStub, parse_tbd};
use got_linker::{Linker, NothingLive, Patch};
use macho_layout::LayoutConfig;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate is in the workspace").to_path_buf()
}

/// The sim SDK: prototype headers and `libSystem.tbd`.
pub fn sdk() -> PathBuf {
    root().join("sim-sdk")
}

/// The optimisation levels every corpus program is built at.
pub const LEVELS: [&str; 4] = ["-O0", "-O1", "-O2", "-O3"];

/// Compiles one C file against the sim SDK, as `hcr` does.
pub fn compile_c(source: &Path, object: &Path, level: &str) {
    let out = Command::new("clang-19")
        .args(["--target=arm64-apple-macos13", "-isysroot"])
        .arg(sdk())
        .args([
            "-fno-asynchronous-unwind-tables",
            "-mllvm",
            "-aarch64-enable-global-merge=false",
            "-c",
            level,
        ])
        .arg(source)
        .arg("-o")
        .arg(object)
        .output()
        .expect("clang-19 must be installed (cargo xtask setup)");
    assert!(out.status.success(), "{}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
}

/// Compiles every `.c` file of a corpus program into `dir`; returns the object paths, sorted.
pub fn compile_program(program: &Path, dir: &Path, level: &str) -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(program)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    sources
        .iter()
        .map(|source| {
            let object = dir.join(source.file_name().unwrap()).with_extension("o");
            compile_c(source, &object, level);
            object
        })
        .collect()
}

/// The sim SDK's libSystem stub.
pub fn libsystem() -> DylibStub {
    let path = sdk().join("usr/lib/libSystem.tbd");
    parse_tbd(&path, &std::fs::read_to_string(&path).unwrap()).unwrap()
}

pub fn parse_all(objects: &[PathBuf]) -> Vec<InputObject> {
    objects
        .iter()
        .map(|p| parse_object(p, &std::fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// A full link by hcr: an update from the empty image.
pub fn hcr_link(objects: &[InputObject]) -> (Linker, Patch) {
    let mut linker = Linker::new("prog", None, LayoutConfig::default(), vec![libsystem()]);
    let patch = linker.update(objects, &NothingLive).unwrap_or_else(|e| panic!("hcr link: {e}"));
    (linker, patch)
}

/// Links with ld64.lld-19; `chained` selects chained fixups over opcode-style `LC_DYLD_INFO_ONLY`.
pub fn lld_link(objects: &[PathBuf], out: &Path, chained: bool) -> Result<(), String> {
    let mut cmd = Command::new("ld64.lld-19");
    cmd.args(["-arch", "arm64", "-platform_version", "macos", "13.0", "13.0", "-lSystem", "-syslibroot"])
        .arg(sdk());
    if !chained {
        cmd.arg("-no_fixup_chains");
    }
    let out_ = cmd.args(objects).arg("-o").arg(out).output().expect("ld64.lld-19 must be installed");
    if out_.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out_.stderr).into_owned()) }
}

/// `llvm-objdump-19 --macho --all-headers --rebase --bind -d`: its output, or what it complained about.
pub fn objdump(exe: &Path) -> Result<String, String> {
    let out = Command::new("llvm-objdump-19")
        .args(["--macho", "--all-headers", "--rebase", "--bind", "-d"])
        .arg(exe)
        .output()
        .expect("llvm-objdump-19 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(format!("status {}\n{stderr}", out.status));
    }
    Ok(stdout)
}
