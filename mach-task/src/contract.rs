//! The contract every [`Task`] implementation must keep, written once as checks that any implementation can
//! run against itself (feature `contract`, off by default).
//!
//! The patcher relies on the kernel's rules, not just on the trait's signatures: code pages cannot be written
//! without a protection change, write and execute are never granted together, the write recipe leaves code
//! executable, suspension really stops the target, regions describe the address space faithfully. The macOS
//! backend gets those rules from xnu; the simulator has to reproduce them. These checks hold both to the same
//! behaviour.
//!
//! # Running the checks against an implementation
//!
//! 1. Enable the feature in the implementation's dev-dependencies:
//!    `mach-task = { workspace = true, features = ["contract"] }`.
//! 2. Implement [`Fixture`] for a small struct that owns a running target: a task, a few addresses in it with
//!    known protections (see each method), a counter the target increments, and a way to let it run.
//!    - `MachTask` (in `mach-task/tests/macos.rs`): the own process, with scratch pages it allocates, and a
//!      spawned copy of the test binary spinning in a loop.
//!    - `darwin-sim`: load a small arm64 program whose `main` increments a global in a loop; `scratch_code` is
//!      a function `main` never calls, alone on its 16 KiB page; `scratch_data` a global nothing reads;
//!      `readonly_data` a slot of `__DATA_CONST` (read-only after fixups, as dyld leaves it) that the loop
//!      does not use; `main_image_base` where the loader mapped the image; `run_briefly` executes some
//!      thousands of instructions; `counter` is the global.
//!
//!    For the simulator, in outline (the names on the right are whatever the simulator offers):
//!    ```text
//!    struct SimFixture { sim: Sim, program: LoadedProgram }
//!
//!    impl mach_task::contract::Fixture for SimFixture {
//!        type Task = Sim;                                   // the type that implements mach_task::Task
//!        fn task(&self) -> &Sim { &self.sim }
//!        fn scratch_code(&self) -> u64 { self.program.symbol("_scratch") }
//!        fn scratch_code_bytes(&self) -> Vec<u8> { self.program.file_bytes_of("_scratch", 16) }
//!        fn scratch_data(&self) -> u64 { self.program.symbol("_unused_global") }
//!        fn readonly_data(&self) -> u64 { self.program.segment_end("__DATA_CONST") - 8 }
//!        fn main_image_base(&self) -> u64 { self.program.load_address() }
//!        fn counter(&self) -> u64 { self.program.symbol("_counter") }
//!        fn run_briefly(&self) { self.sim.run_instructions(10_000) }  // a no-op while suspended
//!    }
//!    ```
//!    `is_own_process` keeps its default, `false`.
//! 3. Call the checks from tests, one test per check so that failures are reported separately:
//!    ```text
//!    #[test]
//!    fn write_execute_is_refused() {
//!        mach_task::contract::write_execute_is_refused(&SimFixture::new());
//!    }
//!    ```
//!    or everything at once with [`all`]. `tests/macos.rs` generates one test per check with a small macro.
//!
//! Every check panics with a message naming the address and what was expected, like `assert!`, and leaves
//! the target as it found it when it passes.

use crate::task::page_span;
use crate::{Task, TaskError, VmProt};

/// What the checks need to know about a running target.
pub trait Fixture {
    /// The implementation under test.
    type Task: Task;

    /// The task of the target.
    fn task(&self) -> &Self::Task;

    /// At least 16 bytes of code in an `r-x` region, on a page (16 KiB, [`crate::PAGE_SIZE`]) that nothing
    /// executes while the checks run (they make it `rw-` for a moment and replace its bytes, then restore
    /// both).
    fn scratch_code(&self) -> u64;

    /// The bytes at [`Fixture::scratch_code`] (at least 16), known independently of the task: from the
    /// executable file, or from where the fixture put them.
    fn scratch_code_bytes(&self) -> Vec<u8>;

    /// 8 bytes in an `rw-` region that nothing else reads or writes while the checks run.
    fn scratch_data(&self) -> u64;

    /// 8 bytes in a read-only (`r--`) data region, like `__DATA_CONST` after dyld, that nothing reads while
    /// the checks run (they replace the bytes, then restore them).
    fn readonly_data(&self) -> u64;

    /// Where the main executable's Mach-O header is, known independently of [`Task::main_image_base`] (what
    /// dyld or the loader says).
    fn main_image_base(&self) -> u64;

    /// A little-endian `u64` that the target increments while it runs.
    fn counter(&self) -> u64;

    /// Lets the target run long enough for [`Fixture::counter`] to advance if it is not suspended.
    fn run_briefly(&self);

    /// Whether the task is the calling process itself. It cannot be suspended (the caller would stop too), so
    /// [`suspend_stops_progress`] then checks that suspending is refused, and [`threads_report_pcs_in_code`]
    /// reads the threads while they run.
    fn is_own_process(&self) -> bool {
        false
    }
}

/// Runs every check in this module.
pub fn all<F: Fixture>(fx: &F) {
    reads_what_is_there(fx);
    write_execute_is_refused(fx);
    code_is_not_writable_directly(fx);
    write_code_round_trip(fx);
    write_data_round_trip(fx);
    write_data_into_read_only_pages(fx);
    suspend_stops_progress(fx);
    regions_are_sorted_and_consistent(fx);
    main_image_base_finds_the_executable(fx);
    threads_report_pcs_in_code(fx);
}

/// Reads return the bytes that are there; reading unmapped or unreadable memory (the page at address 0) is an
/// error, not zeroes.
pub fn reads_what_is_there<F: Fixture>(fx: &F) {
    let task = fx.task();
    let code = fx.scratch_code();
    let expected = fx.scratch_code_bytes();
    assert!(expected.len() >= 16, "the fixture must give at least 16 bytes of scratch code");
    let got =
        task.read_vec(code, expected.len()).unwrap_or_else(|e| panic!("reading code at {code:#x}: {e}"));
    assert_eq!(got, expected, "bytes read at {code:#x}");
    // A read that starts mid-way returns the same bytes.
    let tail = task.read_vec(code + 3, 5).unwrap_or_else(|e| panic!("reading code at {:#x}: {e}", code + 3));
    assert_eq!(tail, expected[3..8], "bytes read at {:#x}", code + 3);
    let counter = fx.counter();
    task.read_u64(counter).unwrap_or_else(|e| panic!("reading the counter at {counter:#x}: {e}"));
    let mut buf = [0u8; 8];
    assert!(task.read(0, &mut buf).is_err(), "reading address 0 succeeded (it is never readable)");
}

/// Any protection request with WRITE and EXECUTE together fails, with or without `VM_PROT_COPY`, and leaves
/// the pages as they were.
pub fn write_execute_is_refused<F: Fixture>(fx: &F) {
    let task = fx.task();
    let code = fx.scratch_code();
    let (start, len) = page_span(code, 16);
    let before = region_of(task, code);
    assert_eq!(before.prot, VmProt::RX, "the scratch code's region at {code:#x} must be r-x");
    for prot in [
        VmProt::READ | VmProt::WRITE | VmProt::EXECUTE,
        VmProt::WRITE | VmProt::EXECUTE,
        VmProt::READ | VmProt::WRITE | VmProt::EXECUTE | VmProt::COPY,
    ] {
        let result = task.protect(start, len, prot);
        assert!(result.is_err(), "protect({start:#x}, {len:#x}, {prot}) succeeded; W+X must be refused");
        let after = region_of(task, code);
        assert_eq!(
            after.prot,
            VmProt::RX,
            "refused protect({prot}) still changed {code:#x} to {}",
            after.prot
        );
    }
    // On r-x/r-x code the requests above also exceed the maximum protection, so they would fail even without
    // the W^X rule. Copy the page (the maximum becomes rwx, as the code-write recipe leaves it) and ask again:
    // arm64 macOS refuses every W+X request whatever the maximum (VM_MAP_POLICY_WX_FAIL).
    task.protect(start, len, VmProt::RW | VmProt::COPY).expect("copying the scratch page for writing");
    task.protect(start, len, VmProt::RX).expect("restoring r-x on the copied scratch page");
    let copied = region_of(task, code);
    assert_eq!(copied.prot, VmProt::RX, "the copied scratch page at {code:#x} must be r-x again");
    assert!(
        copied.max_prot.contains(VmProt::READ | VmProt::WRITE | VmProt::EXECUTE),
        "after a COPY the maximum protection at {code:#x} must be rwx, not {}",
        copied.max_prot
    );
    for prot in [VmProt::READ | VmProt::WRITE | VmProt::EXECUTE, VmProt::WRITE | VmProt::EXECUTE] {
        let result = task.protect(start, len, prot);
        assert!(result.is_err(), "protect({start:#x}, {len:#x}, {prot}) succeeded under an rwx maximum");
        assert_eq!(region_of(task, code).prot, VmProt::RX, "refused protect({prot}) changed {code:#x}");
    }
    assert_eq!(task.read_vec(code, 16).unwrap(), fx.scratch_code_bytes()[..16], "code at {code:#x} changed");
}

/// Code pages are not writable as they are: a raw write and [`Task::write_data`] both fail and change nothing.
pub fn code_is_not_writable_directly<F: Fixture>(fx: &F) {
    let task = fx.task();
    let code = fx.scratch_code();
    let original = fx.scratch_code_bytes();
    let patched = inverted(&original[..16]);
    assert!(task.write_raw(code, &patched).is_err(), "a raw write into r-x code at {code:#x} succeeded");
    assert!(task.write_data(code, &patched).is_err(), "write_data into r-x code at {code:#x} succeeded");
    assert_eq!(
        task.read_vec(code, 16).unwrap(),
        original[..16],
        "refused writes changed the code at {code:#x}"
    );
    assert_eq!(region_of(task, code).prot, VmProt::RX, "refused writes changed the protection at {code:#x}");
}

/// [`Task::write_code`] writes code that reads back, leaves the pages `r-x` with EXECUTE still in the maximum
/// protection, and can write the original back the same way.
pub fn write_code_round_trip<F: Fixture>(fx: &F) {
    let task = fx.task();
    let code = fx.scratch_code();
    let original = fx.scratch_code_bytes()[..16].to_vec();
    let patched = inverted(&original);
    for (what, bytes) in [("patched", &patched), ("original", &original)] {
        task.write_code(code, bytes).unwrap_or_else(|e| panic!("write_code({what}) at {code:#x}: {e}"));
        assert_eq!(&task.read_vec(code, 16).unwrap(), bytes, "{what} code read back at {code:#x}");
        let region = region_of(task, code);
        assert_eq!(region.prot, VmProt::RX, "protection at {code:#x} after write_code({what})");
        assert!(
            region.max_prot.contains(VmProt::EXECUTE),
            "max protection at {code:#x} after write_code({what}) is {}: the code could never run again",
            region.max_prot
        );
    }
}

/// [`Task::write_data`] into writable data writes and leaves the protection alone.
pub fn write_data_round_trip<F: Fixture>(fx: &F) {
    let task = fx.task();
    let data = fx.scratch_data();
    let before = region_of(task, data);
    assert_eq!(before.prot, VmProt::RW, "the scratch data's region at {data:#x} must be rw-");
    data_round_trip(task, data);
    assert_eq!(region_of(task, data).prot, VmProt::RW, "protection at {data:#x} after write_data");
}

/// [`Task::write_data`] into read-only data (`__DATA_CONST`) writes, and restores the read-only protection.
pub fn write_data_into_read_only_pages<F: Fixture>(fx: &F) {
    let task = fx.task();
    let data = fx.readonly_data();
    let before = region_of(task, data);
    assert_eq!(before.prot, VmProt::READ, "the read-only data's region at {data:#x} must be r--");
    assert!(task.write_raw(data, &[0; 8]).is_err(), "a raw write into r-- data at {data:#x} succeeded");
    data_round_trip(task, data);
    assert_eq!(region_of(task, data).prot, VmProt::READ, "protection at {data:#x} after write_data");
}

/// Suspension stops the target and calls nest: the counter holds still while suspended (once or twice) and
/// moves again after the last resume. Suspending the own process is refused instead of hanging.
pub fn suspend_stops_progress<F: Fixture>(fx: &F) {
    let task = fx.task();
    if fx.is_own_process() {
        assert!(task.suspend().is_err(), "suspending the own process must fail, not stop the caller");
        return;
    }
    let counter = fx.counter();
    let read =
        || task.read_u64(counter).unwrap_or_else(|e| panic!("reading the counter at {counter:#x}: {e}"));
    let running = read();
    fx.run_briefly();
    assert!(read() > running, "the counter at {counter:#x} does not move while the target runs");

    let outer = task.suspend().unwrap_or_else(|e| panic!("suspend: {e}"));
    let inner = task.suspend().unwrap_or_else(|e| panic!("nested suspend: {e}"));
    let stopped = read();
    fx.run_briefly();
    assert_eq!(read(), stopped, "the counter at {counter:#x} moved while suspended");
    inner.resume().unwrap_or_else(|e| panic!("inner resume: {e}"));
    fx.run_briefly();
    assert_eq!(read(), stopped, "the counter at {counter:#x} moved after one of two resumes");
    outer.resume().unwrap_or_else(|e| panic!("outer resume: {e}"));
    fx.run_briefly();
    assert!(read() > stopped, "the counter at {counter:#x} does not move after the last resume");
}

/// [`Task::regions`] is sorted and non-overlapping, every region's maximum protection includes its current
/// one, and [`Task::region`] agrees with it about the fixture's addresses.
pub fn regions_are_sorted_and_consistent<F: Fixture>(fx: &F) {
    let task = fx.task();
    let regions = task.regions().unwrap_or_else(|e| panic!("regions: {e}"));
    assert!(!regions.is_empty(), "no regions");
    for r in &regions {
        assert!(r.size > 0, "empty region at {:#x}", r.start);
        assert!(
            r.max_prot.contains(r.prot),
            "region at {:#x}: max {} lacks part of {}",
            r.start,
            r.max_prot,
            r.prot
        );
    }
    for pair in regions.windows(2) {
        assert!(
            pair[0].end() <= pair[1].start,
            "regions at {:#x}+{:#x} and {:#x} overlap or are out of order",
            pair[0].start,
            pair[0].size,
            pair[1].start
        );
    }
    for addr in [fx.scratch_code(), fx.scratch_data(), fx.readonly_data(), fx.counter()] {
        let direct = region_of(task, addr);
        assert!(
            regions.contains(&direct),
            "region({addr:#x}) = {:#x}+{:#x} {}/{} is not among regions()",
            direct.start,
            direct.size,
            direct.prot,
            direct.max_prot
        );
        let middle = direct.start + direct.size / 2;
        assert_eq!(region_of(task, middle), direct, "region({middle:#x}) differs from region({addr:#x})");
    }
    assert_eq!(region_of(task, fx.counter()).prot & VmProt::RW, VmProt::RW, "the counter must be writable");
}

/// [`Task::main_image_base`] finds the executable where the fixture knows it is, at a Mach-O header of type
/// `MH_EXECUTE` in an executable region.
pub fn main_image_base_finds_the_executable<F: Fixture>(fx: &F) {
    let task = fx.task();
    let base = task.main_image_base().unwrap_or_else(|e| panic!("main_image_base: {e}"));
    assert_eq!(base, fx.main_image_base(), "main_image_base");
    let header = task.read_vec(base, 16).unwrap();
    let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap());
    assert_eq!(word(0), 0xfeed_facf, "magic at {base:#x}");
    assert_eq!(word(12), 2, "filetype at {base:#x} (MH_EXECUTE)");
    assert!(region_of(task, base).prot.contains(VmProt::EXECUTE), "the header at {base:#x} is not in __TEXT");
}

/// Every thread's PC lies in a mapped executable region, and thread ids are distinct. The target is suspended
/// while its threads are read (unless it is the own process).
pub fn threads_report_pcs_in_code<F: Fixture>(fx: &F) {
    let task = fx.task();
    let guard = if fx.is_own_process() {
        None
    } else {
        Some(task.suspend().unwrap_or_else(|e| panic!("suspend: {e}")))
    };
    let threads = task.threads().unwrap_or_else(|e| panic!("threads: {e}"));
    let regions: Result<Vec<_>, TaskError> = threads.iter().map(|t| task.region_containing(t.pc)).collect();
    drop(guard);
    assert!(!threads.is_empty(), "no threads");
    let regions = regions.unwrap_or_else(|e| panic!("a thread's PC is not mapped: {e} ({threads:x?})"));
    for (thread, region) in threads.iter().zip(&regions) {
        assert!(
            region.prot.contains(VmProt::EXECUTE),
            "thread {} has pc {:#x} in a {} region at {:#x}",
            thread.id,
            thread.pc,
            region.prot,
            region.start
        );
    }
    let mut ids: Vec<u64> = threads.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), threads.len(), "thread ids repeat: {threads:x?}");
}

/// The region holding `addr`, or a panic naming it.
fn region_of<T: Task>(task: &T, addr: u64) -> crate::Region {
    task.region_containing(addr).unwrap_or_else(|e| panic!("region holding {addr:#x}: {e}"))
}

/// Every byte inverted: different from the original at every position.
fn inverted(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| !b).collect()
}

/// Replaces 8 bytes at `addr` through [`Task::write_data`], checks them, and writes the original back.
fn data_round_trip<T: Task>(task: &T, addr: u64) {
    let original = task.read_vec(addr, 8).unwrap_or_else(|e| panic!("reading data at {addr:#x}: {e}"));
    let patched = inverted(&original);
    for (what, bytes) in [("patched", &patched), ("original", &original)] {
        task.write_data(addr, bytes).unwrap_or_else(|e| panic!("write_data({what}) at {addr:#x}: {e}"));
        assert_eq!(&task.read_vec(addr, 8).unwrap(), bytes, "{what} data read back at {addr:#x}");
    }
}

#[cfg(test)]
mod model;
