//! `cargo xtask setup`: install what the project needs, idempotently, and never skip silently.
//!
//! On Debian/Ubuntu as root: the missing ones of `clang-19 lld-19 llvm-19 cmake` through apt (they give the
//! arm64 Mach-O compiler, the reference linker `ld64.lld-19`, `llvm-objdump-19`/`llvm-readtapi-19` and the
//! tools Unicorn's build needs), and the `aarch64-apple-darwin` rustup target (to type-check the macOS code).
//! On macOS: checks for the Xcode command-line tools. Anywhere else, or without root: prints exactly what to
//! install and fails.

use crate::cmd;

/// Each apt package with a program it provides, which tells whether it is installed.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("clang-19", "clang-19"),
    ("lld-19", "ld64.lld-19"),
    ("llvm-19", "llvm-objdump-19"),
    ("cmake", "cmake"),
];

const RUST_TARGET: &str = "aarch64-apple-darwin";
const RUST_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

pub fn run() -> Result<(), String> {
    match std::env::consts::OS {
        "linux" => setup_linux()?,
        "macos" => setup_macos()?,
        other => {
            return Err(format!(
                "unsupported host `{other}`: install LLVM 19 (clang, lld, llvm tools) and cmake, then run \
                 `rustup target add {RUST_TARGET}`"
            ));
        }
    }
    setup_rust()?;
    eprintln!("setup: everything is installed");
    Ok(())
}

fn setup_linux() -> Result<(), String> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(_, program)| !cmd::exists(program))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        eprintln!("setup: clang-19, lld-19, llvm-19 and cmake are installed");
        return Ok(());
    }
    let install = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !is_debian_like() {
        return Err(format!(
            "missing {}; this is not a Debian/Ubuntu system, so install LLVM 19 (clang-19, ld64.lld-19, \
             llvm-objdump-19) and cmake with its package manager",
            missing.join(", ")
        ));
    }
    if !is_root() {
        return Err(format!("missing {}; as root, run: {install}", missing.join(", ")));
    }
    cmd::run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q"];
    args.extend(&missing);
    cmd::run_with_env("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])?;
    let still: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(_, program)| !cmd::exists(program))
        .map(|(_, program)| *program)
        .collect();
    if !still.is_empty() {
        return Err(format!("apt-get reported success but {} still does not run", still.join(", ")));
    }
    Ok(())
}

fn setup_macos() -> Result<(), String> {
    if cmd::output("xcode-select", &["-p"]).is_none() || !cmd::exists("clang") {
        return Err("the Xcode command-line tools are missing: run `xcode-select --install`".to_string());
    }
    eprintln!("setup: the Xcode command-line tools are installed");
    Ok(())
}

fn setup_rust() -> Result<(), String> {
    let Some(targets) = cmd::output("rustup", &["target", "list", "--installed"]) else {
        return Err(format!(
            "rustup is not available; install the Rust target {RUST_TARGET} and the components {} with your \
             toolchain manager",
            RUST_COMPONENTS.join(", ")
        ));
    };
    if !targets.lines().any(|t| t.trim() == RUST_TARGET) {
        cmd::run("rustup", &["target", "add", RUST_TARGET])?;
    }
    let components = cmd::output("rustup", &["component", "list", "--installed"]).unwrap_or_default();
    for component in RUST_COMPONENTS {
        if !components.lines().any(|c| c.trim().starts_with(component)) {
            cmd::run("rustup", &["component", "add", component])?;
        }
    }
    Ok(())
}

fn is_debian_like() -> bool {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    os_release.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        (line.starts_with("id=") || line.starts_with("id_like="))
            && (line.contains("debian") || line.contains("ubuntu"))
    })
}

fn is_root() -> bool {
    cmd::output("id", &["-u"]).is_some_and(|uid| uid.trim() == "0")
}
