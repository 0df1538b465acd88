//! darwin-sim's integration tests: C programs compiled by clang-19 against the sim SDK and linked by
//! ld64.lld-19, run in the simulator; and the `Task` rules, each broken on purpose.
//!
//! The corpus in `tests/programs/` carries its expectations in its leading comments (`// args:`, `// exit:`,
//! `// signal:`, `// stdout:`, `// stderr:`); every program runs at -O0…-O3 and -Os, linked with chained fixups and
//! with `-no_fixup_chains`, at a random slide and with ASLR off. The expected outputs were checked against the same
//! programs compiled natively for the host (they are portable C), except where Darwin's text differs (`assert`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use darwin_sim::{ExitStatus, Outcome, Process, RunOptions, SimError, Stream, run_exe, sdk};
use mach_task::{KernError, PAGE_SIZE, Task, TaskError, VmProt};
use object::read::macho::MachOFile64;
use object::{Endianness, Object, ObjectSymbol};

#[path = "darwin_sim/contract.rs"]
mod contract;

const OPT_LEVELS: &[&str] = &["-O0", "-O1", "-O2", "-O3", "-Os"];
const TIMEOUT: Duration = Duration::from_secs(60);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a tool and returns its output, or its stderr as the error.
fn tool(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr)))
    }
}

/// Compiles `src` (relative to its own folder, so `__FILE__` is the bare name) to an object in `dir`.
fn compile(src: &Path, opt: &str, dir: &Path) -> PathBuf {
    let stem = src.file_stem().unwrap().to_string_lossy();
    let obj = dir.join(format!("{stem}{opt}.o"));
    tool(
        Command::new("clang-19")
            .args(sdk::clang_args())
            .args([opt, "-c"])
            .arg(src.file_name().unwrap())
            .arg("-o")
            .arg(&obj)
            .current_dir(src.parent().unwrap()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    obj
}

/// Links objects with ld64.lld-19 against the sim SDK, with chained fixups or `LC_DYLD_INFO_ONLY`.
fn link(objs: &[&Path], chained: bool, out: &Path) -> Result<(), String> {
    let mut cmd = Command::new("ld64.lld-19");
    cmd.args(sdk::ld_args());
    if !chained {
        cmd.arg("-no_fixup_chains");
    }
    tool(cmd.args(objs).arg("-o").arg(out))
}

/// Compiles and links a program from `tests/live` at -O1 (chained fixups).
fn build_live(name: &str, dir: &Path) -> PathBuf {
    let src = manifest_dir().join("tests/live").join(name);
    let obj = compile(&src, "-O1", dir);
    let exe = dir.join(name.trim_end_matches(".c"));
    link(&[&obj], true, &exe).unwrap_or_else(|e| panic!("{e}"));
    exe
}

/// The link-time address of a symbol in an executable.
fn symbol(exe: &Path, name: &str) -> u64 {
    let data = std::fs::read(exe).unwrap();
    let file = MachOFile64::<Endianness>::parse(&*data).unwrap();
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("no {name} in {}", exe.display()))
        .address()
}

/// What a corpus program says it does.
#[derive(Debug, Default)]
struct Expect {
    args: Vec<String>,
    stdout: String,
    stderr: String,
    exit: Option<i32>,
    signal: Option<i32>,
}

fn expectations(src: &Path) -> Expect {
    let mut e = Expect::default();
    for line in std::fs::read_to_string(src).unwrap().lines().take_while(|l| l.starts_with("//")) {
        let Some((key, value)) = line[2..].trim_start().split_once(':') else { continue };
        let value = value.strip_prefix(' ').unwrap_or(value);
        match key {
            "args" => e.args = value.split_whitespace().map(String::from).collect(),
            "stdout" => e.stdout += &format!("{value}\n"),
            "stderr" => e.stderr += &format!("{value}\n"),
            "exit" => e.exit = Some(value.parse().unwrap()),
            "signal" => e.signal = Some(value.parse().unwrap()),
            _ => {}
        }
    }
    assert!(e.exit.is_some() != e.signal.is_some(), "{}: give exactly one of exit/signal", src.display());
    e
}

/// Checks one run against the expectations; returns a description of every difference.
fn check(what: &str, outcome: &Outcome, expect: &Expect, aslr: bool) -> Vec<String> {
    let mut bad = Vec::new();
    if outcome.stdout_text() != expect.stdout {
        bad.push(format!("{what}: stdout\n--- got\n{}--- want\n{}", outcome.stdout_text(), expect.stdout));
    }
    if outcome.stderr_text() != expect.stderr {
        bad.push(format!("{what}: stderr\n--- got\n{}--- want\n{}", outcome.stderr_text(), expect.stderr));
    }
    let status_ok = match (&outcome.status, expect.exit, expect.signal) {
        (ExitStatus::Exited(code), Some(want), None) => *code == want,
        (ExitStatus::Signaled { signal, .. }, None, Some(want)) => *signal == want,
        _ => false,
    };
    if !status_ok {
        bad.push(format!(
            "{what}: status {} (want exit {:?} / signal {:?})",
            outcome.status, expect.exit, expect.signal
        ));
    }
    if aslr == (outcome.slide == 0) {
        bad.push(format!("{what}: slide {:#x} with ASLR {}", outcome.slide, if aslr { "on" } else { "off" }));
    }
    bad
}

/// Runs one corpus program through the whole matrix.
fn corpus(name: &str) {
    let src = manifest_dir().join("tests/programs").join(format!("{name}.c"));
    let expect = expectations(&src);
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = expect.args.iter().map(String::as_str).collect();
    let mut bad = Vec::new();
    for opt in OPT_LEVELS {
        let obj = compile(&src, opt, dir.path());
        for chained in [true, false] {
            let style = if chained { "chained" } else { "opcodes" };
            let exe = dir.path().join(format!("{name}{opt}-{style}"));
            link(&[&obj], chained, &exe).unwrap_or_else(|e| panic!("{e}"));
            for aslr in [true, false] {
                let options = RunOptions { aslr, timeout: Some(TIMEOUT), ..RunOptions::default() };
                let what = format!("{name} {opt} {style} aslr={aslr}");
                match run_exe(&exe, &args, &options) {
                    Ok(outcome) => bad.extend(check(&what, &outcome, &expect, aslr)),
                    Err(e) => bad.push(format!("{what}: launch failed: {e}")),
                }
            }
        }
    }
    assert!(bad.is_empty(), "{} of {} runs differ:\n{}", bad.len(), OPT_LEVELS.len() * 4, bad.join("\n"));
}

macro_rules! corpus_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                corpus(stringify!($name));
            }
        )*
    };
}

mod corpus {
    use super::corpus;

    corpus_tests!(
        hello,
        tables,
        heap,
        math,
        stdio,
        exit,
        assert,
        bss,
        time,
        data_const,
        segv,
        threads,
        thread_crash,
        main_thread_exit,
        thread_attrs,
    );

    #[test]
    fn every_program_in_the_folder_is_tested() {
        let listed = [
            "hello",
            "tables",
            "heap",
            "math",
            "stdio",
            "exit",
            "assert",
            "bss",
            "time",
            "data_const",
            "segv",
            "threads",
            "thread_crash",
            "main_thread_exit",
            "thread_attrs",
        ];
        for entry in std::fs::read_dir(super::manifest_dir().join("tests/programs")).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(listed.contains(&stem.as_str()), "{} has no test", path.display());
        }
    }
}

// ---- the sim SDK ----

#[test]
fn every_header_compiles_and_links_against_the_sim_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let src = manifest_dir().join("tests/live/every_header.c");
    for opt in ["-O0", "-O2"] {
        let obj = dir.path().join(format!("every{opt}.o"));
        tool(
            Command::new("clang-19")
                .args(sdk::clang_args())
                .args([opt, "-Wall", "-Wextra", "-Werror", "-c"])
                .arg(&src)
                .arg("-o")
                .arg(&obj),
        )
        .unwrap();
        for chained in [true, false] {
            let exe = dir.path().join(format!("every{opt}{chained}"));
            link(&[&obj], chained, &exe).unwrap();
            let outcome =
                run_exe(&exe, &[], &RunOptions { timeout: Some(TIMEOUT), ..RunOptions::default() }).unwrap();
            assert_eq!(
                outcome.status,
                ExitStatus::Exited(0),
                "{opt} chained={chained}: {}",
                outcome.stderr_text()
            );
            assert!(outcome.stdout_text().starts_with("1 "), "{}", outcome.stdout_text());
        }
    }
    tool(Command::new("llvm-readtapi-19").arg(sdk::path().join("usr/lib/libSystem.tbd"))).unwrap();
}

#[test]
fn host_headers_do_not_leak_into_the_sim_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("errno.c");
    std::fs::write(&src, "#include <errno.h>\nint main(void) { return 0; }\n").unwrap();
    let err = tool(
        Command::new("clang-19")
            .args(sdk::clang_args())
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(dir.path().join("e.o")),
    )
    .unwrap_err();
    assert!(err.contains("'errno.h' file not found"), "{err}");
}

#[test]
fn the_text_stub_lists_exactly_the_shims() {
    let tbd = std::fs::read_to_string(sdk::path().join("usr/lib/libSystem.tbd")).unwrap();
    let list = tbd.split("symbols:").nth(1).unwrap();
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    let mut in_tbd: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut shims = darwin_sim::shims::exported_symbols();
    in_tbd.sort_unstable();
    shims.sort_unstable();
    assert_eq!(in_tbd, shims);
}

#[test]
fn a_function_the_simulator_lacks_fails_to_link() {
    let dir = tempfile::tempdir().unwrap();
    let src = manifest_dir().join("tests/live/unshimmed.c");
    let obj = compile(&src, "-O0", dir.path());
    let err = link(&[&obj], true, &dir.path().join("unshimmed")).unwrap_err();
    assert!(err.contains("undefined symbol: _getenv"), "{err}");
}

#[test]
fn an_import_no_shim_provides_fails_to_launch_like_dyld() {
    // Link against an SDK whose libSystem claims `_getenv`, then launch: dyld's error, before any code runs.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("sdk/usr/lib");
    std::fs::create_dir_all(&fake).unwrap();
    let tbd = std::fs::read_to_string(sdk::path().join("usr/lib/libSystem.tbd")).unwrap();
    std::fs::write(fake.join("libSystem.tbd"), tbd.replace("___assert_rtn,", "___assert_rtn, _getenv,"))
        .unwrap();
    let obj = compile(&manifest_dir().join("tests/live/unshimmed.c"), "-O0", dir.path());
    let exe = dir.path().join("unshimmed");
    let mut cmd = Command::new("ld64.lld-19");
    cmd.args(["-arch", "arm64", "-platform_version", "macos", "13.0", "13.0", "-lSystem", "-syslibroot"]);
    tool(cmd.arg(dir.path().join("sdk")).arg(&obj).arg("-o").arg(&exe)).unwrap();
    let err = Process::spawn(&exe, &[], &RunOptions::default()).unwrap_err();
    assert!(matches!(err, SimError::SymbolNotFound { ref symbol, .. } if symbol == "_getenv"), "{err}");
    let message = err.to_string();
    assert!(message.starts_with("dyld: Symbol not found: _getenv\n  Referenced from: "), "{message}");
    assert!(message.ends_with("Expected in:     /usr/lib/libSystem.B.dylib"), "{message}");
}

#[test]
fn a_library_other_than_libsystem_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("sdk/usr/lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(sdk::path().join("usr/lib/libSystem.tbd"), lib.join("libSystem.tbd")).unwrap();
    std::fs::write(
        lib.join("libfoo.tbd"),
        "--- !tapi-tbd\ntbd-version: 4\ntargets: [ arm64-macos ]\ninstall-name: '/usr/lib/libfoo.dylib'\n\
         exports:\n  - targets: [ arm64-macos ]\n    symbols: [ _foo ]\n...\n",
    )
    .unwrap();
    let src = dir.path().join("usefoo.c");
    std::fs::write(&src, "int foo(void);\nint main(void) { return foo(); }\n").unwrap();
    let obj = compile(&src, "-O0", dir.path());
    let exe = dir.path().join("usefoo");
    let mut cmd = Command::new("ld64.lld-19");
    cmd.args([
        "-arch",
        "arm64",
        "-platform_version",
        "macos",
        "13.0",
        "13.0",
        "-lSystem",
        "-lfoo",
        "-syslibroot",
    ]);
    tool(cmd.arg(dir.path().join("sdk")).arg(&obj).arg("-o").arg(&exe)).unwrap();
    let err = Process::spawn(&exe, &[], &RunOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("dyld: Library not loaded: /usr/lib/libfoo.dylib\n  Referenced from: "),
        "{message}"
    );
}

#[test]
fn files_that_are_not_arm64_executables_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile(&manifest_dir().join("tests/programs/exit.c"), "-O0", dir.path());
    let err = Process::spawn(&obj, &[], &RunOptions::default()).unwrap_err();
    assert!(err.to_string().ends_with("file type 1 is not MH_EXECUTE"), "{err}");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let err = Process::spawn(&text, &[], &RunOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}: not a 64-bit Mach-O", text.display())), "{err}");
    let err = Process::spawn(&dir.path().join("missing"), &[], &RunOptions::default()).unwrap_err();
    assert!(matches!(err, SimError::Io { .. }), "{err}");
}

// ---- the Task rules ----

/// A started `live/counter.c` and its executable.
struct Counter {
    _dir: tempfile::TempDir,
    exe: PathBuf,
    process: Process,
}

impl Counter {
    fn start(aslr: bool) -> Counter {
        let dir = tempfile::tempdir().unwrap();
        let exe = build_live("counter.c", dir.path());
        let process = Process::spawn(&exe, &[], &RunOptions { aslr, ..RunOptions::default() }).unwrap();
        process.start().unwrap();
        let counter = Counter { _dir: dir, exe, process };
        counter.wait_lines(3);
        counter
    }

    fn addr(&self, name: &str) -> u64 {
        symbol(&self.exe, name) + self.process.slide()
    }

    fn lines(&self) -> Vec<(u64, u64)> {
        let text = String::from_utf8(self.process.output().contents(Stream::Stdout)).unwrap();
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
            .collect()
    }

    fn wait_lines(&self, n: usize) {
        let got = self
            .process
            .output()
            .wait_until(Stream::Stdout, TIMEOUT, |b| b.iter().filter(|&&c| c == b'\n').count() >= n);
        assert!(got, "fewer than {n} lines: {:?}", self.process.status());
    }

    fn wait_for_value(&self, value: u64) {
        let needle = format!(" {value}\n");
        let got = self
            .process
            .output()
            .wait_until(Stream::Stdout, TIMEOUT, |b| String::from_utf8_lossy(b).contains(&needle));
        assert!(got, "value {value} never printed");
    }

    fn read_counter(&self) -> u32 {
        let mut buf = [0u8; 4];
        self.process.read(self.addr("_counter"), &mut buf).unwrap();
        u32::from_le_bytes(buf)
    }
}

/// `mov w0, #n; ret`.
fn return_const(n: u32) -> Vec<u8> {
    [0x5280_0000 | (n << 5), 0xd65f_03c0].iter().flat_map(|w: &u32| w.to_le_bytes()).collect()
}

fn kern(result: Result<(), TaskError>) -> KernError {
    result.unwrap_err().kern_code().expect("a kernel error")
}

#[test]
fn regions_report_protections_and_the_main_image() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_live("counter.c", dir.path());
    let process = Process::spawn(&exe, &[], &RunOptions::default()).unwrap();
    let slide = process.slide();
    assert_ne!(slide, 0);
    assert_eq!(slide % PAGE_SIZE, 0);
    assert_eq!(process.main_image_base().unwrap(), 0x1_0000_0000 + slide);
    let text = process.region_containing(symbol(&exe, "_value") + slide).unwrap();
    assert_eq!((text.prot, text.max_prot), (VmProt::RX, VmProt::RX));
    let data = process.region_containing(symbol(&exe, "_counter") + slide).unwrap();
    assert_eq!((data.prot, data.max_prot), (VmProt::RW, VmProt::RW));
    // The GOT sits in __DATA_CONST, which dyld made read-only after binding it: r-- now, rw- at most.
    let regions = process.regions().unwrap();
    let got =
        regions.iter().find(|r| r.prot == VmProt::READ && r.start > text.start).expect("a read-only region");
    assert_eq!(got.max_prot, VmProt::RW);
    let pagezero = regions[0];
    assert_eq!((pagezero.start, pagezero.prot, pagezero.max_prot), (0, VmProt::empty(), VmProt::empty()));
    assert_eq!(pagezero.end(), 0x1_0000_0000 + slide, "__PAGEZERO covers the slide");
    let no_aslr = Process::spawn(&exe, &[], &RunOptions { aslr: false, ..RunOptions::default() }).unwrap();
    assert_eq!(no_aslr.main_image_base().unwrap(), 0x1_0000_0000);
}

#[test]
fn writing_code_without_a_protection_change_fails() {
    let c = Counter::start(true);
    let value = c.addr("_value");
    let _stopped = c.process.suspend().unwrap();
    let original = c.process.read_vec(value, 4).unwrap();
    assert_eq!(kern(c.process.write_raw(value, &return_const(2))), KernError::PROTECTION_FAILURE);
    // __PAGEZERO is mapped with no access at all; past the last region nothing is mapped.
    let mut buf = [0u8; 4];
    assert_eq!(kern(c.process.write_raw(0x10, &[0])), KernError::PROTECTION_FAILURE);
    assert_eq!(kern(c.process.read(0x10, &mut buf)), KernError::PROTECTION_FAILURE);
    let beyond = c.process.regions().unwrap().last().unwrap().end() + PAGE_SIZE;
    assert_eq!(kern(c.process.read(beyond, &mut buf)), KernError::INVALID_ADDRESS);
    assert_eq!(kern(c.process.write_raw(beyond, &buf)), KernError::INVALID_ADDRESS);
    assert_eq!(c.process.read_vec(value, 4).unwrap(), original, "the failed write changed nothing");
    // The VM rules accept a protection within __PAGEZERO's maximum (none, plus WRITE through COPY); nothing backs
    // __PAGEZERO in the emulator, so the call must still succeed without touching it.
    c.process.protect(0, PAGE_SIZE, VmProt::WRITE | VmProt::COPY).unwrap();
    assert_eq!(kern(c.process.protect(0, PAGE_SIZE, VmProt::READ)), KernError::PROTECTION_FAILURE);
}

#[test]
fn write_and_execute_together_are_refused() {
    let c = Counter::start(true);
    let value_page = c.addr("_value") & !(PAGE_SIZE - 1);
    let data_page = c.addr("_counter") & !(PAGE_SIZE - 1);
    let rwx = VmProt::READ | VmProt::WRITE | VmProt::EXECUTE;
    for (page, prot) in [
        (value_page, rwx),
        (value_page, rwx | VmProt::COPY),
        (data_page, rwx),
        (data_page, VmProt::WRITE | VmProt::EXECUTE),
    ] {
        assert_eq!(
            kern(c.process.protect(page, PAGE_SIZE, prot)),
            KernError::PROTECTION_FAILURE,
            "{prot} at {page:#x}"
        );
    }
    assert_eq!(c.process.region_containing(value_page).unwrap().prot, VmProt::RX);
    assert_eq!(c.process.region_containing(data_page).unwrap().prot, VmProt::RW);
    // Where the maximum protection allows both (code after a COPY is rw-/rwx; the stack is rw-/rwx), only the
    // W^X rule refuses them: xnu fails every W+X request on arm64 macOS whatever the maximum.
    let stopped = c.process.suspend().unwrap();
    c.process.protect(value_page, PAGE_SIZE, VmProt::RW | VmProt::COPY).unwrap();
    c.process.protect(value_page, PAGE_SIZE, VmProt::RX).unwrap();
    let sp_page = c.process.threads().unwrap()[0].sp & !(PAGE_SIZE - 1);
    for page in [value_page, sp_page] {
        let before = c.process.region_containing(page).unwrap();
        assert_eq!(before.max_prot, rwx, "the maximum at {page:#x}");
        for prot in [rwx, VmProt::WRITE | VmProt::EXECUTE] {
            assert_eq!(
                kern(c.process.protect(page, PAGE_SIZE, prot)),
                KernError::PROTECTION_FAILURE,
                "{prot} at {page:#x} (max {})",
                before.max_prot
            );
        }
        assert_eq!(c.process.region_containing(page).unwrap(), before, "a refused request changed {page:#x}");
    }
    stopped.resume().unwrap();
}

#[test]
fn adding_write_to_code_needs_copy_and_keeps_execute_in_max() {
    let c = Counter::start(true);
    let page = c.addr("_value") & !(PAGE_SIZE - 1);
    let stopped = c.process.suspend().unwrap();
    assert_eq!(kern(c.process.protect(page, PAGE_SIZE, VmProt::RW)), KernError::PROTECTION_FAILURE);
    c.process.protect(page, PAGE_SIZE, VmProt::RW | VmProt::COPY).unwrap();
    let region = c.process.region_containing(page).unwrap();
    assert_eq!((region.start, region.size, region.prot), (page, PAGE_SIZE, VmProt::RW));
    assert_eq!(region.max_prot, VmProt::READ | VmProt::WRITE | VmProt::EXECUTE, "r-x/r-x becomes rw-/rwx");
    c.process.protect(page, PAGE_SIZE, VmProt::RX).unwrap();
    c.process.protect(page, PAGE_SIZE, VmProt::RW).unwrap();
    c.process.protect(page, PAGE_SIZE, VmProt::RX).unwrap();
    stopped.resume().unwrap();
    let seen = c.lines().len();
    c.wait_lines(seen + 5);
}

#[test]
fn a_suspended_program_does_not_advance() {
    let c = Counter::start(true);
    let stopped = c.process.suspend().unwrap();
    let before = c.read_counter();
    let lines = c.lines().len();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.read_counter(), before);
    assert_eq!(c.lines().len(), lines);
    let threads = c.process.threads().unwrap();
    assert_eq!(threads.len(), 1);
    let t = threads[0];
    assert!(c.process.region_containing(t.sp).is_ok(), "sp {:#x} is mapped", t.sp);
    assert!(c.process.region_containing(t.pc).unwrap().prot.contains(VmProt::EXECUTE), "pc {:#x}", t.pc);
    assert_ne!(t.fp, 0);
    // Suspensions nest: one resume of two leaves it stopped.
    c.process.suspend_raw().unwrap();
    c.process.resume_raw().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(c.read_counter(), before);
    stopped.resume().unwrap();
    c.wait_lines(lines + 5);
    assert!(c.read_counter() > before);
    assert_eq!(kern(c.process.resume_raw()), KernError::FAILURE, "resuming a running task");
}

#[test]
fn stale_code_runs_until_the_instruction_cache_is_flushed() {
    let c = Counter::start(true);
    let value = c.addr("_value");
    let page = value & !(PAGE_SIZE - 1);
    let stopped = c.process.suspend().unwrap();
    c.process.protect(page, PAGE_SIZE, VmProt::RW | VmProt::COPY).unwrap();
    c.process.write_raw(value, &return_const(2)).unwrap();
    c.process.protect(page, PAGE_SIZE, VmProt::RX).unwrap();
    assert_eq!(c.process.read_vec(value, 8).unwrap(), return_const(2), "memory holds the new code");
    let patched_at = c.lines().len();
    stopped.resume().unwrap();
    c.wait_lines(patched_at + 30);
    assert!(c.lines().iter().all(|&(_, v)| v == 1), "the old translation keeps running without a flush");
    let stopped = c.process.suspend().unwrap();
    c.process.flush_icache(value, 8).unwrap();
    stopped.resume().unwrap();
    c.wait_for_value(2);
}

#[test]
fn patching_a_running_program_through_the_task_trait() {
    for aslr in [true, false] {
        let c = Counter::start(aslr);
        let value = c.addr("_value");
        let before = {
            let stopped = c.process.suspend().unwrap();
            let task = stopped.task();
            let threads = task.threads().unwrap();
            assert!(!(value..value + 8).contains(&threads[0].pc) || threads[0].pc == value);
            task.write_code(value, &return_const(2)).unwrap();
            assert_eq!(task.region_containing(value).unwrap().prot, VmProt::RX, "protection restored");
            let counter = c.read_counter();
            stopped.resume().unwrap();
            counter
        };
        c.wait_for_value(2);
        let seen = c.lines().len();
        c.wait_lines(seen + 10);
        let lines = c.lines();
        // The counter carries on through the patch, one step per line, and the value switches once, for good.
        for pair in lines.windows(2) {
            assert_eq!(pair[1].0, pair[0].0 + 1, "counter jumped: {pair:?}");
            assert!(pair[1].1 >= pair[0].1, "value went back: {pair:?}");
        }
        let first_two = lines.iter().find(|l| l.1 == 2).unwrap().0;
        assert!(
            first_two > u64::from(before),
            "the first new line {first_two} comes after the patch at {before}"
        );
        assert!(lines.iter().filter(|l| l.1 == 1).count() >= 3);
        assert!(u64::from(c.read_counter()) >= lines.last().unwrap().0);
    }
}

#[test]
fn write_data_makes_read_only_data_writable_and_restores_it() {
    let c = Counter::start(true);
    let regions = c.process.regions().unwrap();
    let got =
        regions.iter().find(|r| r.prot == VmProt::READ && r.max_prot == VmProt::RW).expect("__DATA_CONST");
    let cell = got.start;
    let old = c.process.read_u64(cell).unwrap();
    assert_eq!(kern(c.process.write_raw(cell, &old.to_le_bytes())), KernError::PROTECTION_FAILURE);
    let stopped = c.process.suspend().unwrap();
    c.process.write_data(cell, &old.to_le_bytes()).unwrap();
    assert_eq!(c.process.region_containing(cell).unwrap().prot, VmProt::READ);
    let text = c.addr("_value");
    assert!(matches!(
        c.process.write_data(text, &[0; 4]),
        Err(TaskError::Kern { code: KernError::PROTECTION_FAILURE, .. })
    ));
    stopped.resume().unwrap();
    let seen = c.lines().len();
    c.wait_lines(seen + 3);
}

#[test]
fn a_dead_process_answers_every_call_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = manifest_dir().join("tests/programs/exit.c");
    let obj = compile(&src, "-O1", dir.path());
    let exe = dir.path().join("exit");
    link(&[&obj], true, &exe).unwrap();
    let process = Process::spawn(&exe, &[], &RunOptions::default()).unwrap();
    let base = process.image_base();
    process.start().unwrap();
    assert_eq!(process.wait(), ExitStatus::Exited(3));
    let dead = |r: Result<(), TaskError>| match r {
        Err(TaskError::Dead { pid, status }) => {
            assert_eq!(pid, process.pid());
            assert_eq!(status, "exited with status 3");
        }
        other => panic!("{other:?}"),
    };
    let mut buf = [0u8; 4];
    dead(process.read(base, &mut buf));
    dead(process.write_raw(base, &buf));
    dead(process.protect(base, PAGE_SIZE, VmProt::RW));
    dead(process.region(base).map(drop));
    dead(process.suspend_raw());
    dead(process.resume_raw());
    dead(process.threads().map(drop));
    dead(process.flush_icache(base, 4));
    dead(process.start());
}

#[test]
fn output_streams_to_a_callback_as_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_live("counter.c", dir.path());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Stream, Vec<u8>)>::new()));
    let sink = std::sync::Arc::clone(&seen);
    let options = RunOptions {
        on_output: Some(std::sync::Arc::new(move |stream, bytes: &[u8]| {
            sink.lock().unwrap().push((stream, bytes.to_vec()))
        })),
        ..RunOptions::default()
    };
    let process = Process::spawn(&exe, &[], &options).unwrap();
    process.start().unwrap();
    assert!(process.output().wait_until(Stream::Stdout, TIMEOUT, |b| b.starts_with(b"1 1\n2 1\n3 1\n")));
    process.kill();
    let streamed: Vec<u8> = seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(s, b)| {
            assert_eq!(*s, Stream::Stdout);
            b.clone()
        })
        .collect();
    assert!(streamed.starts_with(b"1 1\n2 1\n3 1\n"), "{}", String::from_utf8_lossy(&streamed));
    assert!(matches!(process.wait(), ExitStatus::Signaled { signal: 9, .. }));
}

#[test]
fn a_program_that_never_ends_is_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_live("counter.c", dir.path());
    let outcome = run_exe(
        &exe,
        &[],
        &RunOptions { timeout: Some(Duration::from_millis(500)), ..RunOptions::default() },
    )
    .unwrap();
    assert!(matches!(outcome.status, ExitStatus::Signaled { signal: 9, .. }), "{}", outcome.status);
    // It ran until then: some lines, counting up from 1 (its natural end is 500 s away).
    let text = outcome.stdout_text();
    assert!(!text.is_empty());
    for (i, line) in text.lines().enumerate() {
        assert_eq!(line, format!("{} 1", i + 1));
    }
}

#[test]
fn darwin_run_passes_output_and_status_through() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile(&manifest_dir().join("tests/programs/hello.c"), "-O2", dir.path());
    let exe = dir.path().join("hello");
    link(&[&obj], false, &exe).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_darwin-run"))
        .arg("--no-aslr")
        .arg(&exe)
        .args(["one", "two"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stdout).contains("argc=3 argv[1]=one argv[2]=two"));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "counter=5\n");
    let crash = dir.path().join("segv");
    let obj = compile(&manifest_dir().join("tests/programs/segv.c"), "-O0", dir.path());
    link(&[&obj], true, &crash).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_darwin-run")).arg("--trace").arg(&crash).output().unwrap();
    assert_eq!(out.status.code(), Some(128 + 11));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("EXC_BAD_ACCESS (SIGSEGV): reading 0x0 in __PAGEZERO"), "{stderr}");
    assert!(stderr.contains("[darwin-sim] call _puts (x0="), "--trace shows libSystem calls: {stderr}");
    assert!(stderr.contains("[darwin-sim] block 0x"), "--trace shows basic blocks");
}

#[test]
fn a_function_is_called_in_a_stopped_program_like_a_debugger_would_and_the_program_carries_on() {
    let c = Counter::start(true);
    let value = c.addr("_value");
    c.wait_lines(5);
    // Running: refused.
    assert!(c.process.call_function(value, &[]).is_err());
    let stopped = c.process.suspend().unwrap();
    let before = stopped.task().threads().unwrap()[0];
    let counter = c.read_counter();
    assert_eq!(c.process.call_function(value, &[]).unwrap() as u32, 1);
    // The call runs the program's code: it sees the program's globals as they are now.
    let one = c.addr("_one");
    stopped.task().write_data(one, &7u32.to_le_bytes()).unwrap();
    assert_eq!(c.process.call_function(value, &[]).unwrap() as u32, 7);
    // Nothing of the stopped thread changed.
    let after = stopped.task().threads().unwrap()[0];
    assert_eq!((after.pc, after.lr, after.sp, after.fp), (before.pc, before.lr, before.sp, before.fp));
    assert_eq!(c.read_counter(), counter);
    stopped.resume().unwrap();
    c.wait_for_value(7);
    let lines = c.lines();
    for pair in lines.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "the counter jumped: {pair:?}");
    }
    // A call that faults is the call's error, not the program's end.
    let stopped = c.process.suspend().unwrap();
    assert!(c.process.call_function(8, &[]).is_err());
    stopped.resume().unwrap();
    let seen = c.lines().len();
    c.wait_lines(seen + 3);
    assert!(c.process.status().is_none(), "{:?}", c.process.status());
}

#[test]
fn every_thread_stops_with_the_task_and_shows_its_own_stack() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_live("workers.c", dir.path());
    let process = Process::spawn(&exe, &[], &RunOptions::default()).unwrap();
    process.start().unwrap();
    let addr = |name: &str| symbol(&exe, name) + process.slide();
    let progress = |p: &Process| -> Vec<u64> {
        let mut buf = [0u8; 24];
        p.read(addr("_progress"), &mut buf).unwrap();
        buf.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
    };
    let ticked = process
        .output()
        .wait_until(Stream::Stdout, TIMEOUT, |b| String::from_utf8_lossy(b).contains("tick 5\n"));
    assert!(ticked, "{:?}", process.status());
    let all_running = |p: &Process, since: &[u64]| {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while progress(p).iter().zip(since).any(|(now, then)| now <= then) {
            assert!(std::time::Instant::now() < deadline, "a worker made no progress: {:?}", progress(p));
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    all_running(&process, &[0, 0, 0]);

    let stopped = process.suspend().unwrap();
    let threads = stopped.task().threads().unwrap();
    assert_eq!(threads.len(), 4, "main and three workers: {threads:?}");
    let mut ids: Vec<u64> = threads.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "distinct ids: {threads:?}");
    let mut stacks = Vec::new();
    for t in &threads {
        let region = stopped.task().region_containing(t.sp).unwrap();
        assert!(region.prot.contains(VmProt::READ | VmProt::WRITE), "{t:?} {region:?}");
        stacks.push(region.start);
    }
    stacks.sort_unstable();
    stacks.dedup();
    assert_eq!(stacks.len(), 4, "every thread has its own stack: {threads:?}");
    // Nothing runs while the task is suspended, on any thread.
    let frozen = progress(&process);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(progress(&process), frozen);
    // A debugger-style call works among threads and leaves every one of them as it was.
    assert!(process.call_function(addr("_work"), &[0]).is_ok());
    assert_eq!(stopped.task().threads().unwrap(), threads);
    stopped.resume().unwrap();
    all_running(&process, &frozen);

    stopped_quit(&process, addr("_quit"));
    assert_eq!(process.wait(), ExitStatus::Exited(0));
    assert!(process.output().contents(Stream::Stdout).ends_with(b"joined 3\n"));
}

/// Sets the program's `quit` flag through the Task.
fn stopped_quit(process: &Process, quit: u64) {
    let stopped = process.suspend().unwrap();
    stopped.task().write_data(quit, &1u32.to_le_bytes()).unwrap();
    stopped.resume().unwrap();
}
