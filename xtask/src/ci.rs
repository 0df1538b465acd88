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
    let mut macos =
        vec!["--target", "aarch64-apple-darwin", "--all-targets", "--features", "mach-task/contract"];
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

    // Snapshots are checked, never written, in CI. Every test binary runs even after a failure, so one run
    // shows every failure.
    let totals = cmd::run_tests(
        &["test", "--workspace", "--all-features", "--no-fail-fast"],
        &[("INSTA_UPDATE", "no")],
    )?;
    // One plain closing line with the totals over every test binary (cargo's own last line is only the last
    // binary's, often the doc tests').
    println!("{} passed, {} failed", totals.passed, totals.failed);
    if totals.failed > 0 || !totals.success {
        return Err("tests failed".to_string());
    }
    if totals.passed == 0 {
        return Err("no test ran".to_string());
    }
    // The hot-reload scenarios end to end (tests/e2e/), with ASLR on and off, against the simulator here.
    crate::e2e::run(&[])?;
    crate::bench::run(&["--quick".to_string()])?; // smoke test of `cargo xtask bench`: no timing assertions
    Ok(())
}
