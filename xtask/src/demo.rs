//! `cargo xtask demo`: a short, scripted hot-reload session of the seed example, narrated.
//!
//! Builds hcr (with the simulator on Linux; the real Mach backend on macOS), launches the seed example from
//! `tests/e2e/seed/` under `hcr run --listen`, and drives it through the control socket as an editor would:
//! `bar` grows and moves while `main` keeps looping and the accumulator keeps its value, then `bar` returns 12
//! and `main`'s assert ends the program. Everything hcr and the program print is shown as it happens (`out |`
//! is the program's stdout, `err |` is hcr's messages and the program's stderr), with each update's report.

use std::fs;
use std::time::Duration;

use crate::cmd;
use crate::e2e::{self, Hcr, Json, Launch};

/// The edits, in order: the step folder under `tests/e2e/seed/steps/` and what it does.
const EDITS: &[(&str, &str)] = &[
    ("01", "bar() grows past its padding (a loop on a static volatile sink) and returns 7: it must move"),
    ("02", "bar() returns 12: main's assert(bar() != 12) fires"),
];

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`cargo xtask demo` takes no arguments (got {arg})"));
    }
    let hcr_bin = e2e::build_hcr()?;
    let seed = cmd::workspace_root().join("tests").join("e2e").join("seed");
    let work = std::env::temp_dir().join(format!("hcr-demo-{}", std::process::id()));
    let src = work.join("src");
    e2e::copy_tree(&seed.join("src"), &src)?;
    let sources = vec!["main.c".to_string(), "bar.c".to_string()];

    println!();
    println!("== the seed example: main.c loops {{ addToBar(&acc); assert(bar() != 12); print; sleep }}");
    print_file(&src.join("bar.c"))?;
    println!("== hcr run --backend {} (ASLR on), driven through its control socket", e2e::backend());
    let launch = Launch {
        hcr: &hcr_bin,
        backend: e2e::backend(),
        src: &src,
        work: &work,
        sources: &sources,
        flags: &[],
        args: &[],
        aslr: true,
        echo: true,
    };
    let mut hcr = Hcr::launch(&launch)?;
    wait_lines(&hcr, 6);

    for (index, (step, what)) in EDITS.iter().enumerate() {
        println!("== edit bar.c: {what}");
        e2e::copy_tree(&seed.join("steps").join(step), &src)?;
        print_file(&src.join("bar.c"))?;
        let (_, response) = hcr.request(|id| format!("{{\"id\":{id},\"cmd\":\"hot_update\"}}"))?;
        println!("== hot_update: {}", describe(&response));
        if index + 1 < EDITS.len() {
            wait_lines(&hcr, 8);
        }
    }

    // hcr prints each `status` answer on its stderr too; the demo shows its own summary instead.
    let (state, status) = final_state(&mut hcr)?;
    println!("== status: {state}: {status}");
    let hcr_lines = hcr.out.since(0);
    let result = hcr.exit();
    let _ = fs::remove_dir_all(&work);
    result?;
    if state != "exited" || !status.contains("abnormal exit") {
        return Err(format!("the demo expected the assert to end the program, but it is {state} {status}"));
    }
    let kept = acc_kept(&hcr_lines)?;
    println!(
        "== done: across the first update acc went from {} to {} (main kept looping with its state); the second made its assert fire",
        kept.0, kept.1
    );
    Ok(())
}

/// The program's `acc` just before and just after `bar` first returned 7, checking that the loop carried on
/// with its state: the step between them is one iteration's worth (5 from the old `bar`, or 7 from the new one
/// when the update landed after `addToBar`).
fn acc_kept(lines: &[String]) -> Result<(i64, i64), String> {
    let parse = |line: &str| -> Option<(i64, i64)> {
        let (acc, bar) = line.strip_prefix("acc=")?.split_once(" bar=")?;
        Some((acc.parse().ok()?, bar.parse().ok()?))
    };
    let values: Vec<(i64, i64)> = lines.iter().filter_map(|l| parse(l)).collect();
    let pair = values.windows(2).find(|w| w[0].1 == 5 && w[1].1 == 7);
    match pair {
        Some(&[(before, _), (after, _)]) if [5, 7].contains(&(after - before)) => Ok((before, after)),
        Some(&[(before, _), (after, _)]) => {
            Err(format!("acc jumped from {before} to {after} across the update: main's state was not kept"))
        }
        _ => Err("the program never printed bar=7 right after bar=5".into()),
    }
}

/// The response in one line: the report's lists and what was written, or the error.
fn describe(response: &Json) -> String {
    if let Some(error) = response.get("error") {
        let field = |name| error.get(name).and_then(Json::as_str).unwrap_or("?").to_string();
        return format!("error {}: {}", field("kind"), field("message"));
    }
    let report = response.get("report").unwrap_or(&Json::Null);
    let number = |outer: &str, inner: &str| match report.get(outer).and_then(|o| o.get(inner)) {
        Some(Json::Number(n)) => n.clone(),
        _ => "?".into(),
    };
    format!(
        "{}; {} bytes in {} writes to the process",
        e2e::report_summary(report),
        number("process", "bytes"),
        number("process", "writes")
    )
}

fn print_file(path: &std::path::Path) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    for line in text.lines() {
        println!("   {line}");
    }
    Ok(())
}

/// The process's state once it has ended (or after 5 s), without echoing hcr's stderr meanwhile.
fn final_state(hcr: &mut Hcr) -> Result<(String, String), String> {
    hcr.err.set_echo(None);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (state, status) = hcr.process_state()?;
        if state == "exited" || std::time::Instant::now() >= deadline {
            return Ok((state, status));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lets the program print `n` more lines (or end), so the effect of the last step shows.
fn wait_lines(hcr: &Hcr, n: usize) {
    let from = hcr.out.len();
    let _ = hcr.out.wait(from, Duration::from_secs(5), |lines| lines.len() >= n);
}
