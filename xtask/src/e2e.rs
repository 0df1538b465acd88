//! `cargo xtask e2e [--jobs N] [--keep] [--hcr PATH] [SCENARIO...]`: hot-reload scenarios, end to end.
//!
//! Builds `hcr` (with the simulator on Linux), then runs every scenario folder under `tests/e2e/` (or the named
//! ones): each in a fresh copy of its sources, once per ASLR setting it asks for, driving `hcr run --listen`
//! through its control socket only, as an editor would. A step copies its edited files over the sources, sends
//! a command, and checks the response, the update report, the program's output after the update and the
//! process's state. `tests/e2e/README.md` describes the scenario format; `e2e/scenario.rs` parses it.
//!
//! Each scenario prints one line per step; any failure prints the scenario, the step, what was expected and
//! what actually happened (the response, the program's output and hcr's messages), and the run exits non-zero.

pub mod hcr;
pub mod json;
mod scenario;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cmd;
pub use hcr::{Hcr, Launch, indent};
pub use json::Json;
use scenario::{List, OutputCheck, Pattern, ProcessCheck, ReportCheck, Scenario, Step};

/// How long any one expectation may take to come true.
const WAIT: Duration = Duration::from_secs(10);

/// How many lines `counts` looks at after the command.
const COUNTS_LINES: usize = 3;

/// How many more lines of output the `never` window takes in after a step's last expectation is met.
const NEVER_TAIL_LINES: usize = 3;

pub fn run(args: &[String]) -> Result<(), String> {
    let mut jobs = std::thread::available_parallelism().map_or(1, usize::from).min(4);
    let mut keep = false;
    let mut hcr = None;
    let mut names = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep" => keep = true,
            "--jobs" | "-j" => {
                jobs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--jobs takes a number ≥ 1")?;
            }
            "--hcr" => hcr = Some(PathBuf::from(args.next().ok_or("--hcr takes the path of an hcr binary")?)),
            flag if flag.starts_with('-') => {
                return Err(format!(
                    "unknown option {flag}\nusage: cargo xtask e2e [--jobs N] [--keep] [--hcr PATH] [SCENARIO...]"
                ));
            }
            name => names.push(name.to_string()),
        }
    }
    let started = Instant::now();
    let hcr = match hcr {
        Some(path) => path,
        None => build_hcr()?,
    };
    let scenarios = load_scenarios(&names)?;
    let work_root = std::env::temp_dir().join(format!("hcr-e2e-{}", std::process::id()));
    let mut runs: Vec<(Scenario, bool)> = Vec::new();
    for scenario in &scenarios {
        for &aslr in &scenario.aslr {
            runs.push((scenario.clone(), aslr));
        }
    }
    println!(
        "e2e: {} scenarios, {} runs, {jobs} at a time, hcr {}",
        scenarios.len(),
        runs.len(),
        hcr.display()
    );

    // A small pool: each worker takes the next run; results are printed whole, one run at a time.
    let total = runs.len();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(runs.into_iter().enumerate()));
    let (results, finished) = mpsc::channel();
    for _ in 0..jobs.min(total) {
        let queue = std::sync::Arc::clone(&queue);
        let results = results.clone();
        let hcr = hcr.clone();
        let work_root = work_root.clone();
        std::thread::spawn(move || {
            loop {
                let next = queue.lock().expect("workers do not panic holding the queue").next();
                let Some((index, (scenario, aslr))) = next else { return };
                let work =
                    work_root.join(format!("{}-aslr-{}", scenario.name, if aslr { "on" } else { "off" }));
                let outcome = run_scenario(&hcr, &scenario, aslr, &work);
                if outcome.failure.is_none() && !keep {
                    let _ = fs::remove_dir_all(&work);
                }
                if results.send((index, outcome)).is_err() {
                    return;
                }
            }
        });
    }
    drop(results);
    let mut failures = Vec::new();
    let mut passed = 0;
    for (_, outcome) in finished.iter() {
        for line in &outcome.lines {
            println!("{line}");
        }
        match outcome.failure {
            Some(failure) => {
                println!("{failure}");
                failures.push(outcome.label);
            }
            None => passed += 1,
        }
    }
    if failures.is_empty() && !keep {
        let _ = fs::remove_dir_all(&work_root);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("e2e: {passed} of {total} runs passed in {elapsed:.1} s");
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {total} runs failed: {} (work folders kept under {})",
            failures.len(),
            failures.join(", "),
            work_root.display()
        ))
    }
}

/// The backend `hcr run` uses on this host.
pub fn backend() -> &'static str {
    if cfg!(target_os = "macos") { "mach" } else { "sim" }
}

/// Builds hcr with the backend this host runs and returns the binary's path.
pub fn build_hcr() -> Result<PathBuf, String> {
    if cfg!(target_os = "macos") {
        cmd::run("cargo", &["build", "-p", "hcr-driver"])?;
    } else {
        cmd::run("cargo", &["build", "-p", "hcr-driver", "--features", "sim"])?;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| if dir.is_relative() { cmd::workspace_root().join(dir) } else { dir })
        .unwrap_or_else(|| cmd::workspace_root().join("target"));
    let hcr = target.join("debug").join("hcr");
    if hcr.is_file() { Ok(hcr) } else { Err(format!("the build did not produce {}", hcr.display())) }
}

/// The scenario folders under `tests/e2e/` (every one, or the named ones), sorted by name.
fn load_scenarios(names: &[String]) -> Result<Vec<Scenario>, String> {
    let root = cmd::workspace_root().join("tests").join("e2e");
    let entries = fs::read_dir(&root).map_err(|e| format!("reading {}: {e}", root.display()))?;
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("scenario").is_file()).collect();
    dirs.sort();
    for name in names {
        if !dirs.iter().any(|d| d.file_name().is_some_and(|n| n == name.as_str())) {
            return Err(format!("no scenario `{name}` in {}", root.display()));
        }
    }
    dirs.iter()
        .filter(|d| names.is_empty() || names.iter().any(|n| d.file_name().is_some_and(|f| f == n.as_str())))
        .map(|d| Scenario::load(d))
        .collect()
}

/// What one run of a scenario printed, and its failure if it had one.
#[derive(Debug)]
struct RunOutcome {
    label: String,
    lines: Vec<String>,
    failure: Option<String>,
}

/// Runs one scenario with one ASLR setting in `work` (created fresh).
fn run_scenario(hcr_bin: &Path, scenario: &Scenario, aslr: bool, work: &Path) -> RunOutcome {
    let label = format!("{} (aslr {})", scenario.name, if aslr { "on" } else { "off" });
    let mut outcome = RunOutcome { label: label.clone(), lines: Vec::new(), failure: None };
    let src = work.join("src");
    let prepared = fs::remove_dir_all(work)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .map_err(|e| format!("clearing {}: {e}", work.display()))
        .and_then(|()| copy_tree(&scenario.dir.join("src"), &src));
    if let Err(e) = prepared {
        outcome.failure = Some(format!("FAIL {label}: {e}"));
        return outcome;
    }
    let launch = Launch {
        hcr: hcr_bin,
        backend: backend(),
        src: &src,
        work,
        sources: &scenario.sources,
        flags: &scenario.flags,
        args: &scenario.args,
        aslr,
        echo: false,
    };
    let started = Instant::now();
    let mut hcr = match Hcr::launch(&launch) {
        Ok(hcr) => hcr,
        Err(e) => {
            outcome.failure = Some(format!("FAIL {label} step start: {e}"));
            return outcome;
        }
    };
    for step in &scenario.steps {
        let step_started = Instant::now();
        match run_step(&mut hcr, scenario, step, &src) {
            Ok(summary) => outcome.lines.push(format!(
                "ok   {label:<32} {:<5} {:<48} {summary} ({:.1} s)",
                step.name,
                step.title,
                step_started.elapsed().as_secs_f64()
            )),
            Err(failure) => {
                outcome.lines.push(format!("FAIL {label:<32} {:<5} {}", step.name, step.title));
                outcome.failure = Some(format!(
                    "FAIL {label} step {} ({}):\n  expected: {}\n  actual:   {}\n{}  hcr: {}\n  work folder: {}",
                    step.name,
                    step.title,
                    failure.expected,
                    failure.actual,
                    failure.context,
                    hcr.command_line,
                    work.display()
                ));
                return outcome;
            }
        }
    }
    if let Err(e) = hcr.exit() {
        outcome.failure = Some(format!("FAIL {label} at exit: {e}"));
    }
    outcome.lines.push(format!("ok   {label:<32} done in {:.1} s", started.elapsed().as_secs_f64()));
    outcome
}

/// Why a step failed.
#[derive(Debug)]
struct StepFailure {
    expected: String,
    actual: String,
    /// The response, the program's output and hcr's messages around the failure, already indented.
    context: String,
}

/// What a step's checks can see: the marks taken before its command and the response.
struct StepView<'a> {
    hcr: &'a Hcr,
    /// Program output lines before the command.
    mark: usize,
    /// hcr stderr lines before the command.
    err_mark: usize,
    response: Option<String>,
}

impl StepView<'_> {
    fn fail(&self, expected: impl Into<String>, actual: impl Into<String>) -> StepFailure {
        let mut context = String::new();
        if let Some(response) = &self.response {
            context.push_str(&format!("  response: {response}\n"));
        }
        let out = self.hcr.out.since(self.mark);
        let shown = &out[out.len().saturating_sub(15)..];
        context.push_str(&format!(
            "  program output since the command ({} lines, last {}):\n{}",
            out.len(),
            shown.len(),
            indent(shown)
        ));
        let err = self.hcr.err.since(self.err_mark);
        let shown = &err[err.len().saturating_sub(15)..];
        context.push_str(&format!("  hcr's stderr since the command:\n{}", indent(shown)));
        StepFailure { expected: expected.into(), actual: actual.into(), context }
    }
}

/// Runs one step; on success returns a short summary of the response.
fn run_step(hcr: &mut Hcr, scenario: &Scenario, step: &Step, src: &Path) -> Result<String, StepFailure> {
    let plain = |expected: String, actual: String| StepFailure { expected, actual, context: String::new() };
    if step.name != "start" {
        let edits = scenario.dir.join("steps").join(&step.name);
        if edits.is_dir() {
            copy_tree(&edits, src).map_err(|e| plain("the step's files copied".into(), e))?;
        }
        for name in &step.deletes {
            fs::remove_file(src.join(name)).map_err(|e| plain(format!("{name} deleted"), e.to_string()))?;
        }
    }
    let mark = if step.name == "start" { 0 } else { hcr.out.len() };
    let err_mark = if step.name == "start" { 0 } else { hcr.err.len() };
    let mut summary = String::new();
    let mut response = None;
    if let Some(request) = &step.command {
        let sent = hcr.request(|id| request.to_json(id));
        let view = StepView { hcr, mark, err_mark, response: None };
        let (raw, value) = sent.map_err(|e| view.fail(format!("a response to `{}`", request.cmd), e))?;
        let view = StepView { hcr, mark, err_mark, response: Some(raw.clone()) };
        summary = check_response(&view, step, &value)?;
        response = Some(raw);
    }
    let view = StepView { hcr, mark, err_mark, response };
    let window_start = check_output(&view, step)?;
    check_never(&view, step, window_start)?;
    if let Some(expected) = &step.process {
        check_process(hcr, mark, err_mark, expected)?;
    }
    Ok(summary)
}

/// Checks `ok` / `error KIND` and the report; returns the summary printed on the step's line.
fn check_response(view: &StepView<'_>, step: &Step, value: &Json) -> Result<String, StepFailure> {
    let ok = value.get("ok") == Some(&Json::Bool(true));
    let error_kind = value.get("error").and_then(|e| e.get("kind")).and_then(Json::as_str).unwrap_or("");
    let message = value.get("error").and_then(|e| e.get("message")).and_then(Json::as_str).unwrap_or("");
    let first_line = message.lines().next().unwrap_or("");
    match (&step.error, ok) {
        (None, true) => {}
        (None, false) => {
            return Err(view.fail("the command succeeds", format!("error {error_kind}: {message}")));
        }
        (Some((kind, _)), true) => return Err(view.fail(format!("error {kind}"), "the command succeeded")),
        (Some((kind, text)), false) => {
            if error_kind != kind {
                return Err(view.fail(format!("error {kind}"), format!("error {error_kind}: {message}")));
            }
            if let Some(text) = text
                && !message.contains(text.as_str())
            {
                return Err(view.fail(
                    format!("error {kind} with a message containing `{text}`"),
                    format!("error {error_kind}: {message}"),
                ));
            }
            return Ok(format!("error {error_kind}: {first_line}"));
        }
    }
    let report = value.get("report").unwrap_or(&Json::Null);
    for check in &step.report {
        check_report(view, report, check)?;
    }
    Ok(report_summary(report))
}

/// The names in one report list (`moved` and `globals_reset` hold objects with a `symbol`).
fn names_in(report: &Json, list: List) -> Vec<(String, Option<String>)> {
    report
        .get(list.field())
        .map(Json::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| match item {
            Json::String(name) => Some((name.clone(), None)),
            Json::Object(_) => Some((
                item.get("symbol")?.as_str()?.to_string(),
                item.get("reason").and_then(Json::as_str).map(str::to_string),
            )),
            _ => None,
        })
        .collect()
}

fn check_report(view: &StepView<'_>, report: &Json, check: &ReportCheck) -> Result<(), StepFailure> {
    match check {
        ReportCheck::In { list, symbol, reason } => {
            let names = names_in(report, *list);
            let found = names.iter().find(|(name, _)| name == symbol);
            let field = list.field();
            match (found, reason) {
                (None, _) => Err(view.fail(
                    format!("{symbol} in the report's `{field}`"),
                    format!(
                        "`{field}` is [{}]",
                        names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )),
                (Some((_, got)), Some(reason)) if got.as_deref() != Some(reason.as_str()) => Err(view.fail(
                    format!("{symbol} in `{field}` because it {reason}"),
                    format!("reason {}", got.as_deref().unwrap_or("(none)")),
                )),
                _ => Ok(()),
            }
        }
        ReportCheck::Untouched(symbol) => {
            for list in [List::Added, List::Changed, List::Moved, List::Removed] {
                if names_in(report, list).iter().any(|(name, _)| name == symbol) {
                    return Err(view.fail(
                        format!("{symbol} untouched by the update"),
                        format!("{symbol} is in `{}`", list.field()),
                    ));
                }
            }
            Ok(())
        }
        ReportCheck::Updated(symbol) => {
            let changed = names_in(report, List::Changed);
            let moved = names_in(report, List::Moved);
            if changed.iter().chain(&moved).any(|(name, _)| name == symbol) {
                return Ok(());
            }
            let list = |names: &[(String, Option<String>)]| {
                names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            };
            Err(view.fail(
                format!("{symbol} changed in place or moved"),
                format!("`changed_in_place` is [{}], `moved` is [{}]", list(&changed), list(&moved)),
            ))
        }
    }
}

/// The report in a few words: every non-empty list with its names.
pub fn report_summary(report: &Json) -> String {
    let mut parts = Vec::new();
    for (list, word) in [
        (List::Changed, "changed"),
        (List::Moved, "moved"),
        (List::Added, "added"),
        (List::Removed, "removed"),
        (List::Kept, "kept"),
        (List::Reset, "reset"),
        (List::Import, "imported"),
    ] {
        let names = names_in(report, list);
        if !names.is_empty() {
            let names: Vec<String> = names
                .iter()
                .map(|(n, reason)| match reason {
                    Some(r) if list == List::Moved => format!("{n} ({r})"),
                    _ => n.clone(),
                })
                .collect();
            parts.push(format!("{word} {}", names.join(" ")));
        }
    }
    if parts.is_empty() { "ok".into() } else { parts.join("; ") }
}

/// Checks `line`, `counts` and `restarts` in order; returns where the `never` window starts (the first `line`
/// match, or the command when the step has no `line`).
fn check_output(view: &StepView<'_>, step: &Step) -> Result<usize, StepFailure> {
    let out = &view.hcr.out;
    let mut next = view.mark;
    let mut window_start = None;
    for check in &step.output {
        match check {
            OutputCheck::Line(pattern) => {
                let (lines, found) = out.wait(next, WAIT, |lines| lines.iter().any(|l| pattern.matches(l)));
                if !found {
                    return Err(
                        view.fail(format!("a line `{pattern}` within {} s", WAIT.as_secs()), missing(&lines))
                    );
                }
                let at = next + lines.iter().position(|l| pattern.matches(l)).expect("found above");
                window_start.get_or_insert(at);
                next = at + 1;
            }
            OutputCheck::Counts(pattern) => {
                let before = last_number_before(view, pattern)?;
                let (lines, found) = out.wait(view.mark, WAIT, |lines| {
                    lines.iter().filter(|l| pattern.matches(l)).count() >= COUNTS_LINES
                });
                let values: Vec<i64> = lines.iter().filter_map(|l| pattern.number(l)).collect();
                if !found {
                    return Err(view.fail(
                        format!("{COUNTS_LINES} lines `{pattern}` within {} s", WAIT.as_secs()),
                        missing(&lines),
                    ));
                }
                let mut previous = before;
                for value in &values {
                    if *value <= previous {
                        return Err(view.fail(
                            format!("`{pattern}` keeps counting from {before}"),
                            format!("{before} then {}", join_numbers(&values)),
                        ));
                    }
                    previous = *value;
                }
            }
            OutputCheck::Restarts(pattern) => {
                let before = last_number_before(view, pattern)?;
                let (lines, found) = out.wait(view.mark, WAIT, |lines| {
                    lines.iter().any(|l| pattern.number(l).is_some_and(|n| n < before))
                });
                if !found {
                    return Err(view.fail(
                        format!(
                            "a line `{pattern}` with a number below {before} within {} s",
                            WAIT.as_secs()
                        ),
                        missing(&lines),
                    ));
                }
            }
        }
    }
    Ok(window_start.unwrap_or(view.mark))
}

fn join_numbers(values: &[i64]) -> String {
    values.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// The number in the last line matching `pattern` printed before the command.
fn last_number_before(view: &StepView<'_>, pattern: &Pattern) -> Result<i64, StepFailure> {
    let before = view.hcr.out.since(0);
    before[..view.mark.min(before.len())]
        .iter()
        .rev()
        .find_map(|l| pattern.number(l))
        .ok_or_else(|| view.fail(format!("a line `{pattern}` before the command, to compare with"), "none"))
}

fn missing(lines: &[String]) -> String {
    match lines.len() {
        0 => "no output at all".into(),
        n => format!("no such line among the {n} printed (shown below)"),
    }
}

/// Checks that no `never` pattern matches from `start` to a few lines past the step's last expectation.
fn check_never(view: &StepView<'_>, step: &Step, start: usize) -> Result<(), StepFailure> {
    if step.never.is_empty() {
        return Ok(());
    }
    let want = view.hcr.out.len().max(start) + NEVER_TAIL_LINES;
    // A program that has ended prints no more; the window is then what it printed.
    let _ = view.hcr.out.wait(0, Duration::from_secs(3), |lines| lines.len() >= want);
    for line in view.hcr.out.since(start) {
        if let Some(pattern) = step.never.iter().find(|p| p.matches(&line)) {
            return Err(
                view.fail(format!("no line `{pattern}` after the update took effect"), format!("`{line}`"))
            );
        }
    }
    Ok(())
}

/// Polls `status` until the process is in the expected state.
fn check_process(
    hcr: &mut Hcr,
    mark: usize,
    err_mark: usize,
    expected: &ProcessCheck,
) -> Result<(), StepFailure> {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = hcr.process_state();
        let view = StepView { hcr, mark, err_mark, response: None };
        let (state, status) = state.map_err(|e| view.fail("a status response", e))?;
        let good = match expected {
            ProcessCheck::Running => state == "running",
            ProcessCheck::Exited(text) => {
                state == "exited" && text.as_ref().is_none_or(|t| status.contains(t.as_str()))
            }
        };
        if good {
            return Ok(());
        }
        if Instant::now() >= deadline || (matches!(expected, ProcessCheck::Running) && state == "exited") {
            let expected = match expected {
                ProcessCheck::Running => "the process running".to_string(),
                ProcessCheck::Exited(None) => "the process exited".to_string(),
                ProcessCheck::Exited(Some(t)) => format!("the process exited with a status containing `{t}`"),
            };
            return Err(view.fail(expected, format!("{state} {status}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Copies the files under `from` into `to` (created as needed), overwriting files that exist.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", from.display()))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            // Write through a new file and rename, as editors do, so hcr never reads a half-written source.
            let bytes = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let temp = to.join(format!(".{}.e2e-tmp", entry.file_name().to_string_lossy()));
            fs::write(&temp, bytes).map_err(|e| format!("writing {}: {e}", temp.display()))?;
            fs::rename(&temp, &dest).map_err(|e| format!("renaming onto {}: {e}", dest.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_are_read_by_symbol() {
        let response = json::parse(
            r#"{"id":3,"ok":true,"report":{"added":["_sink"],"changed_in_place":[],"moved":[{"from":1,"reason":"live","symbol":"_work","to":2}],"globals_reset":[{"reason":"its size or alignment changed","symbol":"_counter"}],"new_imports":["_puts"]}}"#,
        )
        .unwrap();
        let report = response.get("report").unwrap();
        assert_eq!(names_in(report, List::Moved), [("_work".to_string(), Some("live".to_string()))]);
        assert_eq!(names_in(report, List::Reset)[0].0, "_counter");
        assert_eq!(names_in(report, List::Added), [("_sink".to_string(), None)]);
        assert!(names_in(report, List::Changed).is_empty());
        assert!(names_in(report, List::Kept).is_empty(), "a missing list is empty");
        assert_eq!(report_summary(report), "moved _work (live); added _sink; reset _counter; imported _puts");
        assert_eq!(report_summary(&Json::Null), "ok");
    }
}
