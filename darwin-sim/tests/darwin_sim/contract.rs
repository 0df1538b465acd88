//! The `Task` contract (`mach_task::contract`) against the simulator: every check as its own test, on
//! `tests/live/contract.c` (a `main` that increments a global forever) running at a random slide and with ASLR
//! off, plus every check in a row on one target, which also shows that each leaves the target as it found it.
//!
//! The fixture knows its addresses from the executable file (symbols and segments read with `object`) moved by
//! the slide the loader chose, never from the `Task` under test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use darwin_sim::{Process, RunOptions};
use mach_task::Task;
use mach_task::contract::{self, Fixture};
use object::read::macho::MachOFile64;
use object::{Endianness, Object, ObjectSegment};

use super::{TIMEOUT, build_live, symbol};

/// How long [`Fixture::run_briefly`] waits at most for the counter to move. It returns as soon as the counter
/// moves, so only a stopped target waits this long, and a busy machine cannot make a running target look stopped.
const RUN_BRIEFLY: Duration = Duration::from_millis(500);

/// The target program and what its file says, built once for every test in this module.
#[derive(Debug)]
struct Program {
    exe: PathBuf,
    /// Link-time addresses.
    scratch: u64,
    scratch_data: u64,
    counter: u64,
    text: u64,
    data_const_end: u64,
    /// The first 16 bytes of `_scratch` in the file.
    scratch_bytes: Vec<u8>,
}

fn program() -> &'static Program {
    static PROGRAM: OnceLock<Program> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("contract");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let exe = build_live("contract.c", &dir);
        let data = std::fs::read(&exe).unwrap_or_else(|e| panic!("reading {}: {e}", exe.display()));
        let file = MachOFile64::<Endianness>::parse(&*data)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", exe.display()));
        let segment = |name: &str| {
            file.segments()
                .find(|s| s.name() == Ok(Some(name)))
                .unwrap_or_else(|| panic!("no segment {name} in {}", exe.display()))
        };
        let scratch = symbol(&exe, "_scratch");
        let scratch_bytes = segment("__TEXT")
            .data_range(scratch, 16)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("_scratch at {scratch:#x} is not in the file's __TEXT"))
            .to_vec();
        let data_const = segment("__DATA_CONST");
        Program {
            scratch,
            scratch_data: symbol(&exe, "_scratch_data"),
            counter: symbol(&exe, "_counter"),
            text: segment("__TEXT").address(),
            data_const_end: data_const.address() + data_const.size(),
            scratch_bytes,
            exe,
        }
    })
}

/// `contract.c` running in the simulator.
#[derive(Debug)]
struct Target {
    process: Process,
    program: &'static Program,
}

impl Target {
    /// Launches the program and waits until its loop runs.
    fn start(aslr: bool) -> Target {
        let program = program();
        let process = Process::spawn(&program.exe, &[], &RunOptions { aslr, ..RunOptions::default() })
            .unwrap_or_else(|e| panic!("launching {}: {e}", program.exe.display()));
        assert_eq!(process.slide() != 0, aslr, "slide {:#x} with ASLR {aslr}", process.slide());
        process.start().unwrap_or_else(|e| panic!("starting {}: {e}", program.exe.display()));
        let target = Target { process, program };
        let deadline = Instant::now() + TIMEOUT;
        while target.count() == 0 {
            assert!(Instant::now() < deadline, "the counter never moved: {:?}", target.process.status());
            std::thread::sleep(Duration::from_millis(1));
        }
        target
    }

    /// A link-time address where the loader put it.
    fn slid(&self, addr: u64) -> u64 {
        addr + self.process.slide()
    }

    fn count(&self) -> u64 {
        let counter = self.counter();
        self.process.read_u64(counter).unwrap_or_else(|e| panic!("reading the counter at {counter:#x}: {e}"))
    }
}

impl Fixture for Target {
    type Task = Process;

    fn task(&self) -> &Process {
        &self.process
    }

    /// `_scratch`, which `main` never calls, alone on its 16 KiB page.
    fn scratch_code(&self) -> u64 {
        self.slid(self.program.scratch)
    }

    fn scratch_code_bytes(&self) -> Vec<u8> {
        self.program.scratch_bytes.clone()
    }

    /// `_scratch_data`, a global nothing reads.
    fn scratch_data(&self) -> u64 {
        self.slid(self.program.scratch_data)
    }

    /// The last 8 bytes of `__DATA_CONST`: page padding past its one pointer table, which nothing reads.
    fn readonly_data(&self) -> u64 {
        self.slid(self.program.data_const_end - 8)
    }

    /// Where the loader says it mapped the header; the same as the file's `__TEXT` moved by the slide.
    fn main_image_base(&self) -> u64 {
        let base = self.process.image_base();
        assert_eq!(base, self.slid(self.program.text), "the loader's image base against the file's __TEXT");
        base
    }

    /// `_counter`, which `main` increments forever.
    fn counter(&self) -> u64 {
        self.slid(self.program.counter)
    }

    /// Waits until the counter moves, for at most [`RUN_BRIEFLY`].
    fn run_briefly(&self) {
        let before = self.count();
        let deadline = Instant::now() + RUN_BRIEFLY;
        while self.count() == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// One test per check, at a random slide and with ASLR off.
macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        mod aslr {
            use super::*;
            $(#[test] fn $name() { contract::$name(&Target::start(true)); })*
        }
        mod no_aslr {
            use super::*;
            $(#[test] fn $name() { contract::$name(&Target::start(false)); })*
        }
    };
}

checks!(
    reads_what_is_there,
    write_execute_is_refused,
    code_is_not_writable_directly,
    write_code_round_trip,
    write_data_round_trip,
    write_data_into_read_only_pages,
    suspend_stops_progress,
    regions_are_sorted_and_consistent,
    main_image_base_finds_the_executable,
    threads_report_pcs_in_code,
);

/// Every check in a row on one target: each leaves the target as it found it, so the next still passes, and a
/// check added to `contract::all` runs here even before it gets a test of its own above.
#[test]
fn all_checks_on_one_target() {
    let target = Target::start(true);
    contract::all(&target);
    let count = target.count();
    target.run_briefly();
    assert!(target.count() > count, "the target no longer runs after every check");
    assert_eq!(target.process.status(), None, "the target ended");
}
