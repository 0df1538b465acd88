//! The measurements of one program size: cold links by hcr and by ld64.lld-19, the incremental update after a
//! one-function edit, and the same edit hot-applied to the program running in the simulator.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::program::{self, Program};
use super::stats::{Sample, pass_gaps_ms, span_busy_ms, span_gap_ms};
use crate::e2e::{Hcr, Json, Launch};
use crate::progen;

/// `ld64.lld-19`'s flags as `darwin_sim::sdk::LD_FLAGS`, before `-syslibroot SDK`.
pub const LD_FLAGS: &[&str] = &["-arch", "arm64", "-platform_version", "macos", "13.0", "13.0", "-lSystem"];

/// The longest any one command may take before it is stopped and recorded as a failure.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the live program may take to print its first line, or its first line after a patch.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(120);

/// The tools and places a measurement uses.
#[derive(Debug, Clone)]
pub struct Tools {
    pub hcr: PathBuf,
    pub clang: String,
    pub lld: String,
    pub sdk: PathBuf,
}

/// Everything measured for one size. Times are in milliseconds unless the name says `_us`.
#[derive(Debug, Clone, Default)]
pub struct SizeResult {
    pub functions: usize,
    pub units: usize,
    /// Seconds clang took for the whole program in this run (`None`: cached).
    pub compile_s: Option<f64>,
    /// `link.update`'s busy time in `hcr --time build` from an empty state.
    pub hcr_cold_link: Sample,
    /// Wall time of that whole `hcr build` process.
    pub hcr_cold_wall: Sample,
    /// Wall time of `ld64.lld-19` with chained fixups (its default).
    pub lld_chained: Sample,
    /// Wall time of `ld64.lld-19 -no_fixup_chains` (opcode fixups, as hcr writes).
    pub lld_opcodes: Sample,
    /// clang recompiling the edited unit.
    pub incr_clang: Sample,
    /// `link.update`'s busy time in the incremental `hcr --time build` after the edit.
    pub incr_link: Sample,
    /// Wall time of that whole `hcr build` process (loads and saves the state, parses every object).
    pub incr_wall: Sample,
    /// The live update's `timings.compile` (clang, inside hcr).
    pub live_compile: Sample,
    /// The cold build's passes inside `link.update`, as [`SizeResult::incr_passes`].
    pub cold_passes: Vec<(String, Sample)>,
    /// The incremental build's passes inside `link.update`, timed from the arrival of hcr's stderr lines (see
    /// [`pass_gaps_ms`]), in the order they ran.
    pub incr_passes: Vec<(String, Sample)>,
    /// The live update's `parse + diff + relocate`.
    pub live_link: Sample,
    /// The live update's `timings.parse` (every object is read and parsed again).
    pub live_parse: Sample,
    /// The live update's `timings.diff`.
    pub live_diff: Sample,
    /// The live update's `timings.relocate`.
    pub live_relocate: Sample,
    /// The live update's `timings.write_file`.
    pub live_write_file: Sample,
    /// The live update's `timings.patch_process`, in microseconds.
    pub live_patch_us: Sample,
    /// How many functions each live update moved (rather than changing them in place).
    pub live_moved: Sample,
    /// `report.process.bytes` of each live update.
    pub live_bytes: Sample,
    /// `report.process.pages` of each live update.
    pub live_pages: Sample,
    /// From writing the edited source to hcr's response.
    pub edit_to_response: Sample,
    /// From writing the edited source to the first line printed by a pass of `main` that ran after the patch.
    pub edit_to_output: Sample,
    /// Whether hcr printed spans without durations, so that the `link.update` times were taken from the
    /// arrival of its stderr lines (see [`span_gap_ms`]).
    pub link_from_lines: bool,
    /// What failed or looked wrong, with the numbers that were measured before.
    pub problems: Vec<String>,
}

/// A finished command: its wall time and its output.
struct Finished {
    wall_ms: f64,
    stdout: String,
    stderr: String,
    /// Each stderr line with the milliseconds since the spawn at which it was read.
    stderr_lines: Vec<(f64, String)>,
}

impl Finished {
    /// The linker's time in an `hcr --time build`: `link.update`'s `time.busy` when hcr prints durations, else
    /// the gap between the arrival of the `compile` and `link.update` closing lines (`true` in the result).
    fn link_ms(&self) -> Result<(f64, bool), String> {
        if let Some(busy) = span_busy_ms(&self.stderr, "link.update") {
            return Ok((busy, false));
        }
        span_gap_ms(&self.stderr_lines, "compile", "link.update")
            .map(|gap| (gap, true))
            .ok_or_else(|| format!("`hcr --time build` printed no link.update span:\n{}", self.stderr))
    }
}

/// Runs `program args` in `dir` with stdout and stderr going to files in `logs`, timing the process from spawn
/// to exit. Fails with the command line and stderr if it fails, or stops it after [`COMMAND_TIMEOUT`].
fn timed(program: &Path, args: &[OsString], dir: &Path, logs: &Path) -> Result<Finished, String> {
    let line = format!(
        "{} {}{}",
        program.display(),
        args.iter().take(8).map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
        if args.len() > 8 { format!(" … ({} arguments)", args.len()) } else { String::new() }
    );
    fs::create_dir_all(logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;
    let out_path = logs.join("stdout");
    let out_file =
        fs::File::create(&out_path).map_err(|e| format!("creating {}: {e}", out_path.display()))?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let pid = child.id();
    // stderr is read as it comes, each line stamped, so that spans can be timed from outside too.
    let stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for text in BufReader::new(stderr).lines() {
            let Ok(text) = text else { break };
            lines.push((started.elapsed().as_secs_f64() * 1e3, text));
        }
        lines
    });
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = done.send((status, Instant::now()));
    });
    let (status, at) = match ended.recv_timeout(COMMAND_TIMEOUT) {
        Ok(result) => result,
        Err(_) => {
            // Stop the process this function started, by its id, and reap it.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            let _ = ended.recv();
            return Err(format!("`{line}` did not finish within {} s", COMMAND_TIMEOUT.as_secs()));
        }
    };
    let status = status.map_err(|e| format!("waiting for `{line}`: {e}"))?;
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr_lines = reader.join().unwrap_or_default();
    let stderr: String = stderr_lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let _ = fs::write(logs.join("stderr"), &stderr);
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(format!("`{line}` failed ({status}):\n{}", tail.join("\n")));
    }
    Ok(Finished { wall_ms: (at - started).as_secs_f64() * 1e3, stdout, stderr, stderr_lines })
}

/// Adds the time of each pass of `link.update` in `built` to `passes`.
fn add_passes(passes: &mut Vec<(String, Sample)>, built: &Finished) {
    for (pass, ms) in pass_gaps_ms(&built.stderr_lines, "compile", "link.update") {
        match passes.iter_mut().find(|(name, _)| *name == pass) {
            Some((_, sample)) => sample.push(ms),
            None => passes.push((pass, Sample { values: vec![ms] })),
        }
    }
}

fn os_args(args: &[&str], objects: &[PathBuf]) -> Vec<OsString> {
    let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
    all.extend(objects.iter().map(|o| o.clone().into_os_string()));
    all
}

/// Copies the file `from` to `to` through a temporary file and a rename, as editors save.
fn replace_file(to: &Path, bytes: &[u8]) -> Result<(), String> {
    let temp = to.with_extension("bench-tmp");
    fs::write(&temp, bytes).map_err(|e| format!("writing {}: {e}", temp.display()))?;
    fs::rename(&temp, to).map_err(|e| format!("renaming onto {}: {e}", to.display()))
}

/// Measures one program with `reps` repetitions of each measurement, working under `work` (emptied first).
pub fn measure(tools: &Tools, prog: &Program, work: &Path, reps: usize) -> SizeResult {
    let params = prog.params;
    let mut result = SizeResult {
        functions: params.functions,
        units: params.units,
        compile_s: prog.compile_s,
        ..SizeResult::default()
    };
    let _ = fs::remove_dir_all(work);
    // The objects every link reads; the edits overwrite the edited unit's object here, never in the cache.
    let obj = work.join("obj");
    let copied =
        fs::create_dir_all(&obj).map_err(|e| format!("creating {}: {e}", obj.display())).and_then(|()| {
            prog.objects
                .iter()
                .map(|o| {
                    let to = obj.join(o.file_name().expect("objects have names"));
                    fs::copy(o, &to).map(|_| to).map_err(|e| format!("copying {}: {e}", o.display()))
                })
                .collect::<Result<Vec<PathBuf>, String>>()
        });
    let objects = match copied {
        Ok(objects) => objects,
        Err(e) => {
            result.problems.push(e);
            return result;
        }
    };
    let n = params.functions;
    eprintln!("bench: N = {n}: cold links ({reps} each, hcr and ld64.lld interleaved)");
    if let Err(e) = cold_links(tools, &objects, work, reps, &mut result) {
        result.problems.push(format!("cold link at N = {n}: {e}"));
    }
    eprintln!("bench: N = {n}: incremental builds after a one-function edit");
    if let Err(e) = incremental(tools, prog, &objects, work, reps, &mut result) {
        result.problems.push(format!("incremental build at N = {n}: {e}"));
    }
    eprintln!("bench: N = {n}: hot updates of the running program");
    if let Err(e) = live(tools, prog, work, reps, &mut result) {
        result.problems.push(format!("hot update at N = {n}: {e}"));
    }
    result
}

fn cold_links(
    tools: &Tools,
    objects: &[PathBuf],
    work: &Path,
    reps: usize,
    result: &mut SizeResult,
) -> Result<(), String> {
    let root = crate::cmd::workspace_root();
    let logs = work.join("logs");
    let cold = work.join("cold");
    let lld_out = work.join("lld").join("prog");
    fs::create_dir_all(work.join("lld")).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let mut ld = LD_FLAGS.to_vec();
    let sdk = tools.sdk.to_string_lossy().into_owned();
    let out = lld_out.to_string_lossy().into_owned();
    ld.extend(["-syslibroot", &sdk, "-o", &out]);
    let chained = os_args(&ld, objects);
    ld.push("-no_fixup_chains");
    let opcodes = os_args(&ld, objects);
    let cold_out = cold.join("prog").to_string_lossy().into_owned();
    let hcr_args = os_args(&["--time", "build", "-o", &cold_out], objects);
    let lld = PathBuf::from(&tools.lld);
    for _ in 0..reps {
        // From an empty state every time: no executable and no `prog.hcr/`.
        let _ = fs::remove_dir_all(&cold);
        fs::create_dir_all(&cold).map_err(|e| format!("creating {}: {e}", cold.display()))?;
        let built = timed(&tools.hcr, &hcr_args, &root, &logs)?;
        let (link, from_lines) = built.link_ms()?;
        result.link_from_lines |= from_lines;
        result.hcr_cold_link.push(link);
        add_passes(&mut result.cold_passes, &built);
        result.hcr_cold_wall.push(built.wall_ms);
        result.lld_chained.push(timed(&lld, &chained, &root, &logs)?.wall_ms);
        result.lld_opcodes.push(timed(&lld, &opcodes, &root, &logs)?.wall_ms);
    }
    Ok(())
}

fn incremental(
    tools: &Tools,
    prog: &Program,
    objects: &[PathBuf],
    work: &Path,
    reps: usize,
    result: &mut SizeResult,
) -> Result<(), String> {
    let root = crate::cmd::workspace_root();
    let logs = work.join("logs");
    let dir = work.join("incr");
    let edit_src = work.join("edit-src");
    for d in [&dir, &edit_src] {
        fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    fs::copy(prog.src.join("prog.h"), edit_src.join("prog.h")).map_err(|e| format!("copying prog.h: {e}"))?;
    let out = dir.join("prog").to_string_lossy().into_owned();
    let args = os_args(&["--time", "build", "-o", &out], objects);
    // The starting state, not measured.
    timed(&tools.hcr, &args, &root, &logs)?;
    let unit = progen::unit_of(prog.edited, prog.params.units);
    let object = work.join("obj").join(format!("unit_{unit}.o"));
    for generation in 1..=reps as u32 {
        let file = progen::edit_one(prog.params, prog.edited, generation);
        let source = edit_src.join(&file.name);
        fs::write(&source, &file.text).map_err(|e| format!("writing {}: {e}", source.display()))?;
        let started = Instant::now();
        program::compile(&tools.clang, &tools.sdk, &source, &object)?;
        result.incr_clang.push(started.elapsed().as_secs_f64() * 1e3);
        let built = timed(&tools.hcr, &args, &root, &logs)?;
        if !built.stdout.contains("incremental link") {
            return Err(format!("the build after the edit was not incremental: {}", built.stdout.trim()));
        }
        let (link, from_lines) = built.link_ms()?;
        result.link_from_lines |= from_lines;
        result.incr_link.push(link);
        add_passes(&mut result.incr_passes, &built);
        result.incr_wall.push(built.wall_ms);
    }
    Ok(())
}

fn number(value: Option<&Json>) -> Option<f64> {
    match value? {
        Json::Number(text) => text.parse().ok(),
        _ => None,
    }
}

fn live(
    tools: &Tools,
    prog: &Program,
    work: &Path,
    reps: usize,
    result: &mut SizeResult,
) -> Result<(), String> {
    let params = prog.params;
    let dir = work.join("live");
    let src = dir.join("src");
    fs::create_dir_all(&src).map_err(|e| format!("creating {}: {e}", src.display()))?;
    let unit = progen::unit_of(prog.edited, params.units);
    let unit_name = format!("unit_{unit}.c");
    for name in ["prog.h", unit_name.as_str()] {
        fs::copy(prog.src.join(name), src.join(name)).map_err(|e| format!("copying {name}: {e}"))?;
    }
    let main = fs::read_to_string(prog.src.join("main.c")).map_err(|e| format!("reading main.c: {e}"))?;
    fs::write(src.join("main.c"), program::looping_main(&main)?)
        .map_err(|e| format!("writing main.c: {e}"))?;
    // The looping main and the edited unit are sources hcr compiles; every other unit is its cached object.
    let mut inputs = vec!["main.c".to_string(), unit_name.clone()];
    let skip = [format!("unit_{unit}.o"), "main.o".to_string()];
    inputs.extend(
        prog.objects
            .iter()
            .filter(|o| !skip.iter().any(|s| o.file_name().is_some_and(|n| n == s.as_str())))
            .map(|o| o.display().to_string()),
    );
    let flags = ["-O1".to_string()];
    let launch = Launch {
        hcr: &tools.hcr,
        backend: "sim",
        src: &src,
        work: &dir,
        sources: &inputs,
        flags: &flags,
        args: &[],
        aslr: true,
        echo: false,
    };
    let mut hcr = Hcr::launch(&launch)?;
    let (lines, started) =
        hcr.out.wait(0, OUTPUT_TIMEOUT, |lines| lines.iter().any(|l| program::tick_of(l).is_some()));
    if !started {
        return Err(format!("the program printed no tick within {} s: {lines:?}", OUTPUT_TIMEOUT.as_secs()));
    }
    for generation in 1..=reps as u32 {
        let file = progen::edit_one(params, prog.edited, generation);
        let t0 = Instant::now();
        replace_file(&src.join(&unit_name), file.text.as_bytes())?;
        let (raw, value) = hcr.request(|id| format!("{{\"id\":{id},\"cmd\":\"hot_update\"}}"))?;
        let t1 = Instant::now();
        if value.get("ok") != Some(&Json::Bool(true)) {
            return Err(format!("hot_update failed: {raw}"));
        }
        // The last tick received when the response came; the pass after the next one started after the patch
        // (a line printed just before the process was suspended may still be on its way).
        let mark = hcr.out.len();
        let last = hcr.out.since(0).iter().filter_map(|l| program::tick_of(l)).max().unwrap_or(0);
        let (_, printed) = hcr.out.wait(mark, OUTPUT_TIMEOUT, |lines| {
            lines.iter().filter_map(|l| program::tick_of(l)).any(|t| t >= last + 2)
        });
        let t2 = Instant::now();
        if !printed {
            return Err(format!("no new tick within {} s of the update", OUTPUT_TIMEOUT.as_secs()));
        }
        let report = value.get("report").ok_or_else(|| format!("no report in {raw}"))?;
        let timings = report.get("timings");
        let timing = |name| number(timings.and_then(|t| t.get(name)));
        let process = report.get("process");
        let (Some(patch), Some(bytes), Some(pages)) = (
            timing("patch_process"),
            number(process.and_then(|p| p.get("bytes"))),
            number(process.and_then(|p| p.get("pages"))),
        ) else {
            return Err(format!("the report lacks timings.patch_process or process.bytes/pages: {raw}"));
        };
        result.live_patch_us.push(patch);
        result.live_moved.push(report.get("moved").map_or(0, |m| m.items().len()) as f64);
        result.live_bytes.push(bytes);
        result.live_pages.push(pages);
        let link = ["parse", "diff", "relocate"].iter().map(|n| timing(n)).sum::<Option<f64>>();
        if let Some(link) = link {
            result.live_link.push(link / 1e3);
        }
        for (name, sample) in [
            ("parse", &mut result.live_parse),
            ("diff", &mut result.live_diff),
            ("relocate", &mut result.live_relocate),
        ] {
            if let Some(us) = timing(name) {
                sample.push(us / 1e3);
            }
        }
        if let Some(compile) = timing("compile") {
            result.live_compile.push(compile / 1e3);
        }
        if let Some(write) = timing("write_file") {
            result.live_write_file.push(write / 1e3);
        }
        result.edit_to_response.push((t1 - t0).as_secs_f64() * 1e3);
        result.edit_to_output.push((t2 - t0).as_secs_f64() * 1e3);
    }
    hcr.exit()
}
