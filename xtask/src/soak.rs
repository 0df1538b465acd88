//! `cargo xtask soak [--updates N] [--functions F] [--check-every K] [--threads T]`: many consecutive hot
//! updates on one running program.
//!
//! A generated program (`progen`) runs under `hcr run` in the simulator, printing a checksum every round while T
//! worker threads (default 2) compute the same checksum in a loop, and one random function after another is edited
//! and hot-applied through the control socket. Checked throughout: every update is applied, and the program keeps
//! running and printing and its workers keep computing; after every update, `hcr verify` finds the executable
//! readable and its code signature valid; every K updates, the executable hcr keeps rewriting, launched fresh,
//! prints exactly what a fresh `ld64.lld-19` link of the same sources prints (so the file stays valid after
//! hundreds of incremental rewrites); hcr's memory stays flat; and the text reserve stays bounded (retired code
//! comes back once no thread can return into it). The summary is printed at the end.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cmd;
use crate::e2e::{
    self,
    hcr::{Hcr, Launch},
    json::Json,
};
use crate::progen::{self, Params};

struct Options {
    updates: usize,
    functions: usize,
    check_every: usize,
    /// Worker threads that compute the checksum over and over, so that updates find threads inside the edited
    /// functions.
    threads: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options { updates: 1000, functions: 200, check_every: 50, threads: 2 };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} takes a number"))
        };
        match arg.as_str() {
            "--updates" => options.updates = value("--updates")?,
            "--functions" => options.functions = value("--functions")?.max(2),
            "--check-every" => options.check_every = value("--check-every")?.max(1),
            "--threads" => options.threads = value("--threads")?,
            other => return Err(format!("soak: unknown argument `{other}`")),
        }
    }
    Ok(options)
}

/// The program's `main`: a checksum over the first functions each round, forever, while `threads` workers
/// compute the same checksum in a loop (they count their rounds, which main prints); with an argument, one round
/// and exit (for comparing fresh launches).
fn main_source(functions: usize, threads: usize) -> String {
    let mut text = String::from(
        "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\n#include \"prog.h\"\n\n\
         static unsigned round_sum(void) {\n    unsigned sum = 0;\n",
    );
    for k in 0..functions.min(16) {
        let _ = writeln!(text, "    sum = sum * 31u + (unsigned)f_{k}({k}, 2);");
    }
    let workers = threads.max(1);
    let _ = write!(
        text,
        "    return sum;\n}}\n\n\
         static volatile unsigned long worker_rounds[{workers}];\n\
         static volatile unsigned worker_sum[{workers}];\n\n\
         static void *worker(void *arg) {{\n    long id = (long)arg;\n    for (;;) {{\n\
         \x20       worker_sum[id] = round_sum();\n        worker_rounds[id]++;\n    }}\n    return NULL;\n}}\n\n\
         int main(int argc, char **argv) {{\n    (void)argv;\n    if (argc > 1) {{\n\
         \x20       printf(\"checksum %u\\n\", round_sum());\n        return 0;\n    }}\n\
         \x20   for (long i = 0; i < {threads}; i++) {{\n        pthread_t t;\n\
         \x20       pthread_create(&t, NULL, worker, (void *)i);\n    }}\n\
         \x20   for (int round = 0; round < 100000000; round++) {{\n        unsigned long work = 0;\n\
         \x20       for (int i = 0; i < {threads}; i++) work += worker_rounds[i];\n\
         \x20       printf(\"round %d checksum %u worker rounds %lu\\n\", round, round_sum(), work);\n\
         \x20       fflush(stdout);\n        usleep(5000);\n    }}\n    return 0;\n}}\n"
    );
    text
}

/// The last "worker rounds N" main printed in `lines`.
fn worker_rounds(lines: &[String]) -> Option<u64> {
    lines.iter().rev().find_map(|l| l.rsplit_once("worker rounds ").and_then(|(_, n)| n.trim().parse().ok()))
}

/// hcr's resident memory in KiB, from `/proc`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The span of `__TEXT,__text` the image uses, from `hcr layout`.
fn text_used(hcr: &Path, exe: &Path) -> Result<u64, String> {
    let out = Command::new(hcr).arg("layout").arg(exe).output().map_err(|e| format!("hcr layout: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut end = 0u64;
    let mut start = u64::MAX;
    for line in text.lines().filter(|l| l.contains("__TEXT,__text") && !l.ends_with("__mh_execute_header")) {
        let mut words = line.split_whitespace();
        let (Some(addr), Some(size)) = (words.next(), words.next()) else { continue };
        let addr =
            u64::from_str_radix(addr.trim_start_matches("0x"), 16).map_err(|e| format!("{line}: {e}"))?;
        let size: u64 = size.parse().map_err(|e| format!("{line}: {e}"))?;
        start = start.min(addr);
        end = end.max(addr + size);
    }
    Ok(end.saturating_sub(start))
}

/// `hcr verify EXE`: the file reads back and its code signature holds (the kernel would run it).
fn verify(hcr: &Path, exe: &Path) -> Result<(), String> {
    let out = Command::new(hcr).arg("verify").arg(exe).output().map_err(|e| format!("hcr verify: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

/// What `darwin-run EXE once` prints.
fn run_once(darwin_run: &Path, exe: &Path) -> Result<String, String> {
    let out =
        Command::new(darwin_run).arg(exe).arg("once").output().map_err(|e| format!("darwin-run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A fresh link of the sources in `src` by ld64.lld-19.
fn fresh_link(src: &Path, out: &Path) -> Result<(), String> {
    let sdk = cmd::workspace_root().join("sim-sdk");
    let mut objects = Vec::new();
    for entry in std::fs::read_dir(src).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "c") {
            let object = out.with_file_name(path.file_name().unwrap_or_default()).with_extension("o");
            let status = Command::new("clang-19")
                .args(["--target=arm64-apple-macos13", "-isysroot"])
                .arg(&sdk)
                .args(["-O0", "-fno-asynchronous-unwind-tables", "-c"])
                .arg(&path)
                .arg("-o")
                .arg(&object)
                .status()
                .map_err(|e| format!("clang-19: {e}"))?;
            if !status.success() {
                return Err(format!("clang-19 failed on {}", path.display()));
            }
            objects.push(object);
        }
    }
    let status = Command::new("ld64.lld-19")
        .args(["-arch", "arm64", "-platform_version", "macos", "13.0", "13.0", "-lSystem", "-syslibroot"])
        .arg(&sdk)
        .args(&objects)
        .arg("-o")
        .arg(out)
        .status()
        .map_err(|e| format!("ld64.lld-19: {e}"))?;
    if status.success() { Ok(()) } else { Err("ld64.lld-19 failed".into()) }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let hcr_bin = e2e::build_hcr()?;
    cmd::run("cargo", &["build", "-p", "darwin-sim", "--bin", "darwin-run"])?;
    let darwin_run = hcr_bin.with_file_name("darwin-run");

    let work = cmd::workspace_root().join("target").join("soak");
    let _ = std::fs::remove_dir_all(&work);
    let src = work.join("src");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    let params = Params { functions: options.functions, units: (options.functions / 50).max(2), seed: 7 };
    for file in progen::generate(params) {
        let text =
            if file.name == "main.c" { main_source(options.functions, options.threads) } else { file.text };
        std::fs::write(src.join(&file.name), text).map_err(|e| e.to_string())?;
    }
    let mut sources: Vec<String> = (0..params.units).map(|u| format!("unit_{u}.c")).collect();
    sources.push("main.c".into());
    let flags = ["-O".to_string(), "0".to_string()];
    let launch = Launch {
        hcr: &hcr_bin,
        backend: e2e::backend(),
        src: &src,
        work: &work,
        sources: &sources,
        flags: &flags,
        args: &[],
        aslr: true,
        echo: false,
    };
    let mut hcr = Hcr::launch(&launch)?;
    let pid = hcr.pid();
    let exe = work.join("prog");
    let (_, running) = hcr.out.wait(0, Duration::from_secs(60), |l| l.len() >= 2);
    if !running {
        return Err("the program did not start printing".into());
    }
    let started = Instant::now();
    let text_at_start = text_used(&hcr_bin, &exe)?;
    let mut rss = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut divergences = Vec::new();
    let mut max_text = text_at_start;
    let mut verified = 0;
    let mut live_moves = 0;
    let mut last_worker_rounds = 0;
    for update in 1..=options.updates {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let edited = (rng % params.functions as u64) as usize;
        let file = progen::edit_one(params, edited, (update % 40) as u32 + 1);
        std::fs::write(src.join(&file.name), &file.text).map_err(|e| e.to_string())?;
        let mark = hcr.out.len();
        let (raw, value) = hcr.request(|id| format!("{{\"id\":{id},\"cmd\":\"hot_update\"}}"))?;
        if value.get("ok") != Some(&Json::Bool(true)) {
            return Err(format!("update {update} (f_{edited}) was not applied: {raw}"));
        }
        // A function moved because a thread was inside it (the workers make that common).
        live_moves += raw.matches("\"reason\":\"live\"").count();
        let (_, progressing) = hcr.out.wait(mark, Duration::from_secs(30), |l| !l.is_empty());
        if !progressing {
            let (state, status) = hcr.process_state()?;
            return Err(format!("after update {update} the program stopped printing ({state} {status})"));
        }
        if let Some(kib) = rss_kib(pid) {
            rss.push(kib);
        }
        verify(&hcr_bin, &exe)
            .map_err(|e| format!("after update {update} (f_{edited}) the file is invalid: {e}"))?;
        verified += 1;
        if update % options.check_every == 0 || update == options.updates {
            // The workers are all still computing: the rounds they did together keep growing.
            let rounds = worker_rounds(&hcr.out.since(mark))
                .ok_or_else(|| format!("after update {update} main printed no worker rounds"))?;
            if options.threads > 0 && rounds <= last_worker_rounds {
                return Err(format!(
                    "after update {update} the workers stopped: {rounds} rounds, {last_worker_rounds} before"
                ));
            }
            last_worker_rounds = rounds;
            max_text = max_text.max(text_used(&hcr_bin, &exe)?);
            let fresh = work.join("fresh").join("prog");
            std::fs::create_dir_all(fresh.parent().unwrap_or(&work)).map_err(|e| e.to_string())?;
            fresh_link(&src, &fresh)?;
            let (ours, theirs) = (run_once(&darwin_run, &exe)?, run_once(&darwin_run, &fresh)?);
            if ours != theirs {
                divergences.push(format!(
                    "after update {update}: hcr's file prints {ours:?}, a fresh link {theirs:?}"
                ));
            }
            println!(
                "soak: {update} updates, {} s, hcr RSS {} KiB, text used {} KiB, {} divergences",
                started.elapsed().as_secs(),
                rss.last().copied().unwrap_or(0),
                max_text / 1024,
                divergences.len()
            );
        }
    }
    let (state, status) = hcr.process_state()?;
    hcr.exit()?;
    // Memory after the first tenth (warm caches) against the end: flat means no growth per update.
    let warm = rss.get(rss.len() / 10).copied().unwrap_or(0);
    let peak = rss.iter().copied().max().unwrap_or(0);
    println!(
        "soak summary: {} updates in {} s with {} worker threads; {} divergences; the file read back and its \
         signature held after all {verified} updates; {live_moves} functions moved because a thread was inside; \
         program {state}{}; hcr RSS {warm} KiB after warm-up, {} KiB at the end, {peak} KiB at most; text reserve \
         used {} KiB at start, {} KiB at most",
        options.updates,
        started.elapsed().as_secs(),
        options.threads,
        divergences.len(),
        if status.is_empty() { String::new() } else { format!(" ({status})") },
        rss.last().copied().unwrap_or(0),
        text_at_start / 1024,
        max_text / 1024,
    );
    if state != "running" {
        return Err(format!("the program is not running at the end: {state} {status}"));
    }
    if !divergences.is_empty() {
        return Err(divergences.join("\n"));
    }
    Ok(())
}
