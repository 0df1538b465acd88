//! Running commands: echo them, run them from the workspace root, and turn failure into a message.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (xtask's manifest lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives inside the workspace").to_path_buf()
}

/// Runs `program args...` in the workspace root with inherited stdio, failing with the command line if it
/// does not succeed.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_with_env(program, args, &[])
}

/// Like [`run`], with extra environment variables.
pub fn run_with_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let line = format!("{program} {}", args.join(" "));
    eprintln!("$ {line}");
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{line}` failed ({status})")) }
}

/// Runs a command quietly and returns its stdout if it succeeded.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` can be found on `PATH` and runs.
pub fn exists(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Test counts summed over every `test result:` line cargo printed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TestTotals {
    pub passed: u64,
    pub failed: u64,
    /// Whether cargo itself exited successfully (a build failure has no `test result:` line).
    pub success: bool,
}

/// Runs `cargo <args>` in the workspace root, passing its output through while adding up the results.
pub fn run_tests(args: &[&str], env: &[(&str, &str)]) -> Result<TestTotals, String> {
    let line = format!("cargo {}", args.join(" "));
    eprintln!("$ {line}");
    let mut child = Command::new("cargo")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut totals = TestTotals::default();
    for text in BufReader::new(stdout).lines() {
        let text = text.map_err(|e| format!("reading the output of `{line}`: {e}"))?;
        println!("{text}");
        if let Some((passed, failed)) = parse_test_result(&text) {
            totals.passed += passed;
            totals.failed += failed;
        }
    }
    totals.success = child.wait().map_err(|e| format!("waiting for `{line}`: {e}"))?.success();
    Ok(totals)
}

/// The passed and failed counts of a libtest summary line:
/// `test result: ok. 33 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.48s`.
pub fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let count = |name: &str| {
        rest.split(';')
            .find_map(|part| part.trim().trim_start_matches(|c: char| !c.is_ascii_digit()).strip_suffix(name))
    };
    let passed = count(" passed")?.trim().parse().ok()?;
    let failed = count(" failed")?.trim().parse().ok()?;
    Some((passed, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libtest_summaries() {
        let ok =
            "test result: ok. 33 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.48s";
        assert_eq!(parse_test_result(ok), Some((33, 0)));
        let bad = "test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.32s";
        assert_eq!(parse_test_result(bad), Some((3, 1)));
        assert_eq!(parse_test_result("test foo ... ok"), None);
        assert_eq!(parse_test_result("running 4 tests"), None);
    }
}
