//! `cargo xtask bench [--quick] [--write-md] [--sizes N,N…] [--reps R] [--hcr PATH]`: patch latency and link
//! speed against `ld64.lld-19`, and how they scale with the program's size.
//!
//! For each size N (100, 1,000, 10,000, 100,000 functions; `--quick`: 100 and 1,000) the program generator
//! (`progen`) writes a program of about N/100 units with a fixed seed; clang-19 compiles it once against the sim
//! SDK and the objects are cached under `target/bench/programs/N/`. Then, one after the other in the same run:
//! cold links by `hcr build` and by `ld64.lld-19` (chained fixups and `-no_fixup_chains`), interleaved; the
//! incremental `hcr build` after a one-function edit; and the same edit hot-applied to the program running in
//! darwin-sim through `hcr run --listen`. Medians and ratios are printed as a table and written to
//! `target/bench/latest.json`; with `--write-md`, to `BENCHMARKS.md` and `docs/bench/latency.svg` too (without
//! it, to `target/bench/BENCHMARKS.md` and `target/bench/latency.svg`, so a smoke run changes no tracked file).
//!
//! hcr is built with `--release` for the full run; `--quick` (the CI smoke test, which has no timing
//! assertions) uses the debug build CI's tests already made, unless `--release` is given.

mod measure;
mod program;
mod report;
mod stats;

use std::path::PathBuf;
use std::time::Instant;

use crate::cmd;

const USAGE: &str =
    "usage: cargo xtask bench [--quick] [--release] [--write-md] [--sizes N,N...] [--reps R] [--hcr PATH]";

/// The sizes measured, in functions.
const SIZES: &[usize] = &[100, 1_000, 10_000, 100_000];
const QUICK_SIZES: &[usize] = &[100, 1_000];

/// What one run measures and where it writes.
#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    release: bool,
    write_md: bool,
    sizes: Vec<usize>,
    reps: Option<usize>,
    hcr: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options =
        Options { quick: false, release: false, write_md: false, sizes: Vec::new(), reps: None, hcr: None };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--release" => options.release = true,
            "--write-md" => options.write_md = true,
            "--sizes" => {
                let list = args.next().ok_or("--sizes takes a list such as 100,1000")?;
                options.sizes = list
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| {
                        format!("--sizes {list}: expected positive numbers separated by commas")
                    })?;
            }
            "--reps" => {
                options.reps = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--reps takes a number ≥ 1")?,
                );
            }
            "--hcr" => {
                options.hcr = Some(PathBuf::from(args.next().ok_or("--hcr takes the path of an hcr binary")?))
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if options.sizes.is_empty() {
        options.sizes = if options.quick { QUICK_SIZES } else { SIZES }.to_vec();
    }
    if !options.quick {
        options.release = true;
    }
    Ok(options)
}

/// Repetitions of each measurement at `functions`: fewer for the biggest program, and for `--quick`.
fn reps_for(options: &Options, functions: usize) -> usize {
    options.reps.unwrap_or(match (options.quick, functions) {
        (true, _) => 2,
        (false, n) if n >= 100_000 => 3,
        (false, _) => 5,
    })
}

/// The target directory cargo builds into (`CARGO_TARGET_DIR`, else the workspace's `target/`).
fn cargo_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| if dir.is_relative() { cmd::workspace_root().join(dir) } else { dir })
        .unwrap_or_else(|| cmd::workspace_root().join("target"))
}

fn build_hcr(release: bool) -> Result<PathBuf, String> {
    let mut args = vec!["build", "-p", "hcr-driver", "--features", "sim"];
    if release {
        args.push("--release");
    }
    cmd::run("cargo", &args)?;
    let hcr = cargo_target_dir().join(if release { "release" } else { "debug" }).join("hcr");
    if hcr.is_file() { Ok(hcr) } else { Err(format!("the build did not produce {}", hcr.display())) }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse_args(args)?;
    let started = Instant::now();
    for tool in ["clang-19", "ld64.lld-19"] {
        if !cmd::exists(tool) {
            return Err(format!("{tool} is not installed: run `cargo xtask setup`"));
        }
    }
    let hcr = match &options.hcr {
        Some(path) => path.clone(),
        None => build_hcr(options.release)?,
    };
    let root = cmd::workspace_root();
    let bench_dir = root.join("target").join("bench");
    let tools = measure::Tools {
        hcr: std::path::absolute(&hcr).unwrap_or(hcr),
        clang: "clang-19".into(),
        lld: "ld64.lld-19".into(),
        sdk: root.join("sim-sdk"),
    };
    let jobs = std::thread::available_parallelism().map_or(1, usize::from).min(2);
    let machine = report::Machine::describe();
    eprintln!("bench: hcr {}, sizes {:?}, on {}", tools.hcr.display(), options.sizes, machine.summary());
    let mut results = Vec::new();
    for &functions in &options.sizes {
        let params = program::params(functions);
        let size_started = Instant::now();
        let programs = bench_dir.join("programs").join(functions.to_string());
        let prog = match program::prepare(&programs, params, &tools.clang, &tools.sdk, jobs) {
            Ok(prog) => prog,
            Err(e) => {
                let mut failed = measure::SizeResult { functions, units: params.units, ..Default::default() };
                failed.problems.push(format!("preparing the program of N = {functions}: {e}"));
                results.push(failed);
                continue;
            }
        };
        match prog.compile_s {
            Some(s) => eprintln!("bench: N = {functions}: compiled {} units in {s:.1} s", params.units),
            None => eprintln!("bench: N = {functions}: cached objects in {}", programs.display()),
        }
        let work = bench_dir.join("work").join(functions.to_string());
        let result = measure::measure(&tools, &prog, &work, reps_for(&options, functions));
        for problem in &result.problems {
            eprintln!("bench: problem: {problem}");
        }
        eprintln!("bench: N = {functions} done in {:.1} s", size_started.elapsed().as_secs_f64());
        results.push(result);
    }
    let run = report::Run {
        machine,
        quick: options.quick,
        profile: match &options.hcr {
            Some(path) => format!("{} (--hcr)", path.display()),
            None if options.release => "release".into(),
            None => "debug".into(),
        },
        seconds: started.elapsed().as_secs_f64(),
        results,
    };
    print!("{}", report::table(&run));
    let json = bench_dir.join("latest.json");
    write(&json, &report::json(&run))?;
    let (md, svg) = if options.write_md {
        (root.join("BENCHMARKS.md"), root.join("docs").join("bench").join("latency.svg"))
    } else {
        (bench_dir.join("BENCHMARKS.md"), bench_dir.join("latency.svg"))
    };
    write(&svg, &report::svg(&run))?;
    write(&md, &report::markdown(&run, "docs/bench/latency.svg"))?;
    println!("bench: {:.1} s; wrote {}, {} and {}", run.seconds, json.display(), md.display(), svg.display());
    let problems: usize = run.results.iter().map(|r| r.problems.len()).sum();
    if problems > 0 {
        println!("bench: {problems} problem(s), recorded in the report");
    }
    Ok(())
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quick_runs_two_sizes_in_debug_and_full_runs_four_in_release() {
        let quick = parse_args(&args(&["--quick"])).unwrap();
        assert_eq!((quick.sizes.as_slice(), quick.release), (QUICK_SIZES, false));
        assert_eq!(reps_for(&quick, 1000), 2);
        let full = parse_args(&[]).unwrap();
        assert_eq!((full.sizes.as_slice(), full.release), (SIZES, true));
        assert_eq!((reps_for(&full, 10_000), reps_for(&full, 100_000)), (5, 3));
        let some = parse_args(&args(&["--sizes", "100,10_000", "--reps", "7"])).unwrap();
        assert_eq!((reps_for(&some, 100), some.sizes), (7, vec![100, 10_000]));
        assert!(parse_args(&args(&["--sizes", "100,x"])).is_err());
        assert!(parse_args(&args(&["--reps", "0"])).is_err());
        assert!(parse_args(&args(&["--fast"])).is_err());
    }
}
