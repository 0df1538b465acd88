//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use crate::{cmd, setup};

/// The crates that build for macOS: everything except the Linux-only test harness (`darwin-sim`, which needs
/// Unicorn) and xtask itself.
const MACOS_CRATES: &[&str] = &["macho-layout", "got-linker", "mach-task", "hcr-driver"];

pub fn run() -> Result<(), String> {
    setup::run()?;
    cmd::run("cargo", &["fmt", "--all", "--check"])?;
    cmd::run("cargo", &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;

    // The macOS code cannot run here, so every line of it is at least type-checked and linted.
    let mut macos = vec!["--target", "aarch64-apple-darwin", "--all-targets"];
    for krate in MACOS_CRATES {
        macos.extend(["-p", krate]);
    }
    let mut check = vec!["check"];
    check.extend(&macos);
    cmd::run("cargo", &check)?;
    let mut clippy = vec!["clippy"];
    clippy.extend(&macos);
    clippy.extend(["--", "-D", "warnings"]);
    cmd::run("cargo", &clippy)?;

    // Snapshots are checked, never written, in CI.
    cmd::run_with_env("cargo", &["test", "--workspace", "--all-features"], &[("INSTA_UPDATE", "no")])?;
    eprintln!("ci: all checks passed");
    Ok(())
}
