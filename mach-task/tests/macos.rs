//! The macOS backend against the real kernel: the own process and spawned copies of this test binary.
//!
//! Run on Apple Silicon as root, or signed with `com.apple.security.cs.debugger` (the cargo runner
//! `scripts/mac-runner.sh` does both): `cargo test -p mach-task --features contract`.
//!
//! The child is this very binary, started again with `MACH_TASK_TEST_CHILD` set and `--exact
//! child_process_entry`, which then spins in the assembly loop below (or prints, for the pipe test) instead of
//! testing. Because it is the same executable, every address in it is an address here moved by the difference
//! of the two images' load addresses.
//!
//! The assembly is arm64 only, as is the product; on other Macs this file compiles to nothing.

#![cfg(all(target_os = "macos", target_arch = "aarch64"))]

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use mach_task::{Child, CsFlags, MachTask, PAGE_SIZE, Spawn, Stdio, Task, TaskError, VmProt};
use object::{Object, ObjectSegment};

// `_hcrt_scratch` fills a 16 KiB page by itself, so nothing else ever executes on it: the checks may make it
// writable while other threads run. `_hcrt_spin` increments slot 0 forever and stores what `_hcrt_value`
// returns into slot 1; `_hcrt_value` and `_hcrt_end` are alternate entries of the same atom, so the linker
// keeps the three together in this order.
std::arch::global_asm!(
    ".section __TEXT,__text,regular,pure_instructions",
    ".globl _hcrt_scratch",
    ".p2align 14",
    "_hcrt_scratch:",
    "    mov x0, #42",
    "    ret",
    "    .space 16384 - 8",
    ".globl _hcrt_spin",
    ".globl _hcrt_value",
    ".globl _hcrt_end",
    ".alt_entry _hcrt_value",
    ".alt_entry _hcrt_end",
    ".p2align 14",
    "_hcrt_spin:",
    "    mov x19, x0",
    "1:  bl _hcrt_value",
    "    str x0, [x19, #8]",
    "    ldr x1, [x19]",
    "    add x1, x1, #1",
    "    str x1, [x19]",
    "    b 1b",
    "_hcrt_value:",
    "    mov x0, #1",
    "    ret",
    "_hcrt_end:",
    "    brk #0",
);

unsafe extern "C" {
    fn hcrt_scratch() -> u64;
    fn hcrt_spin(slots: *mut u64) -> !;
    fn hcrt_value() -> u64;
    fn hcrt_end();
}

/// `_hcrt_spin`'s two slots: the iteration count and the last value `_hcrt_value` returned.
static SLOTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

const CHILD_ENV: &str = "MACH_TASK_TEST_CHILD";
const VALUE_ENV: &str = "MACH_TASK_TEST_VALUE";
const MARKER: &str = "mach-task child says: ";

/// `movz x0, #2; ret`: `_hcrt_value` returning 2 instead of 1.
const RETURN_2: [u8; 8] = [0x40, 0x00, 0x80, 0xd2, 0xc0, 0x03, 0x5f, 0xd6];
/// `movz x0, #7; ret`.
const RETURN_7: [u8; 8] = [0xe0, 0x00, 0x80, 0xd2, 0xc0, 0x03, 0x5f, 0xd6];

fn addr_of_fn(f: unsafe extern "C" fn() -> u64) -> u64 {
    f as *const () as u64
}

fn spin_addr() -> u64 {
    hcrt_spin as *const () as u64
}

fn end_addr() -> u64 {
    hcrt_end as *const () as u64
}

/// The entry point of the child processes, and in a normal run a check that the assembly does what the other
/// tests assume.
#[test]
fn child_process_entry() {
    match std::env::var(CHILD_ENV).as_deref() {
        // SAFETY: the slots are two `u64`s inside atomics (interior mutability), alive for the whole program.
        Ok("spin") => unsafe { hcrt_spin(SLOTS.as_ptr().cast_mut().cast()) },
        Ok("print") => println!("{MARKER}{}", std::env::var(VALUE_ENV).unwrap_or_default()),
        Ok(other) => panic!("unknown {CHILD_ENV} mode {other:?}"),
        Err(_) => {
            // SAFETY: both are leaf functions that only set x0 and return.
            let (scratch, value) = unsafe { (hcrt_scratch(), hcrt_value()) };
            assert_eq!((scratch, value), (42, 1));
            let scratch_addr = addr_of_fn(hcrt_scratch);
            assert_eq!(scratch_addr % PAGE_SIZE, 0, "_hcrt_scratch is not page-aligned");
            assert!(spin_addr() >= scratch_addr + PAGE_SIZE, "_hcrt_spin shares the scratch page");
            assert!(spin_addr() < addr_of_fn(hcrt_value) && addr_of_fn(hcrt_value) < end_addr());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Facts about this executable, from dyld and from the file.

/// Where dyld loaded this executable (image 0 is always the main executable).
fn own_base() -> u64 {
    // SAFETY: dyld's image list is valid for the life of the process; index 0 always exists.
    unsafe { mach2::dyld::_dyld_get_image_header(0) as u64 }
}

/// This executable's ASLR slide, as dyld reports it.
fn own_slide() -> i64 {
    // SAFETY: as above.
    unsafe { mach2::dyld::_dyld_get_image_vmaddr_slide(0) as i64 }
}

fn exe_path() -> PathBuf {
    std::env::current_exe().expect("the test binary's path")
}

/// A segment's `(vmaddr, vmsize)` in this executable's file.
fn file_segment(name: &str) -> (u64, u64) {
    let data = std::fs::read(exe_path()).expect("reading the test binary");
    let file = object::File::parse(&*data).expect("parsing the test binary");
    let segment = file
        .segments()
        .find(|s| s.name().ok().flatten() == Some(name))
        .unwrap_or_else(|| panic!("the test binary has no {name} segment"));
    (segment.address(), segment.size())
}

/// Bytes of this process's own memory.
fn own_bytes(addr: u64, len: usize) -> Vec<u8> {
    // SAFETY: the callers pass addresses of this executable's code, mapped readable for the whole run.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len).to_vec() }
}

fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures.

/// The own process, with scratch pages of its own: code (a copy of `_hcrt_scratch`'s page, `r-x`), data
/// (`rw-`) and read-only data (`r--`).
#[derive(Debug)]
struct OwnProcess {
    task: MachTask,
    code_page: u64,
    data_page: u64,
    readonly_page: u64,
    _one_at_a_time: MutexGuard<'static, ()>,
}

/// One own-process fixture at a time: the kernel may merge a fresh allocation into a neighbouring entry with
/// the same tag and protection, which would change another fixture's regions under its checks.
static OWN_LOCK: Mutex<()> = Mutex::new(());

impl OwnProcess {
    fn new() -> OwnProcess {
        let lock = OWN_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let task = MachTask::current();
        let [code_page, data_page, readonly_page] =
            [(); 3].map(|()| task.allocate(PAGE_SIZE).expect("mach_vm_allocate in the own task"));
        let scratch = own_bytes(addr_of_fn(hcrt_scratch), PAGE_SIZE as usize);
        task.write_raw(code_page, &scratch).unwrap();
        task.protect(code_page, PAGE_SIZE, VmProt::RX).unwrap();
        task.write_raw(readonly_page, &0x0123_4567_89ab_cdef_u64.to_le_bytes()).unwrap();
        task.protect(readonly_page, PAGE_SIZE, VmProt::READ).unwrap();
        OwnProcess { task, code_page, data_page, readonly_page, _one_at_a_time: lock }
    }
}

impl Drop for OwnProcess {
    fn drop(&mut self) {
        for page in [self.code_page, self.data_page, self.readonly_page] {
            let _ = self.task.deallocate(page, PAGE_SIZE);
        }
    }
}

/// Only one spinning child at a time: the runners have three cores, and the checks that watch a counter need
/// the child to get CPU time promptly.
static CHILD_LOCK: Mutex<()> = Mutex::new(());

/// A copy of this binary spinning in `_hcrt_spin`.
#[derive(Debug)]
struct SpinningChild {
    child: Child,
    /// The child's load address minus ours.
    delta: u64,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl SpinningChild {
    fn start() -> SpinningChild {
        SpinningChild::start_with(|_| {})
    }

    fn start_with(configure: impl FnOnce(&mut Spawn)) -> SpinningChild {
        let lock = CHILD_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut child = spawn_self("spin", configure);
        let delta = child.main_image_base().expect("the child's main image").wrapping_sub(own_base());
        child.resume().expect("resuming the child");
        let me = SpinningChild { child, delta, _one_at_a_time: lock };
        let counter = me.counter_addr();
        eventually("the child spins", Duration::from_secs(30), || me.task().read_u64(counter).unwrap() > 0);
        me
    }

    fn task(&self) -> &MachTask {
        self.child.task()
    }

    /// The child's address of something at `own_addr` here.
    fn there(&self, own_addr: u64) -> u64 {
        own_addr.wrapping_add(self.delta)
    }

    fn counter_addr(&self) -> u64 {
        self.there(SLOTS[0].as_ptr() as u64)
    }

    fn value_addr(&self) -> u64 {
        self.there(SLOTS[1].as_ptr() as u64)
    }
}

/// Starts this binary suspended in `mode` (see [`child_process_entry`]).
fn spawn_self(mode: &str, configure: impl FnOnce(&mut Spawn)) -> Child {
    let mut spawn = Spawn::new(exe_path());
    spawn
        .args(["--exact", "child_process_entry", "--nocapture", "--test-threads=1", "--quiet"])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    configure(&mut spawn);
    spawn.spawn().unwrap_or_else(|e| panic!("spawning {}: {e}", exe_path().display()))
}

/// Where dyld says the child's main executable is, from its `dyld_all_image_infos` (`TASK_DYLD_INFO`): a route
/// independent of the region scan `Task::main_image_base` uses. Valid once dyld has run.
fn main_image_per_dyld(task: &MachTask) -> u64 {
    use mach2::task_info::{TASK_DYLD_INFO, TASK_DYLD_INFO_COUNT, task_dyld_info};
    let mut info = task_dyld_info::default();
    let mut count = TASK_DYLD_INFO_COUNT;
    // SAFETY: `info` is a `task_dyld_info` of `count` words, what this flavor fills.
    let kr =
        unsafe { mach2::task::task_info(task.port(), TASK_DYLD_INFO, (&raw mut info).cast(), &mut count) };
    assert_eq!(kr, 0, "task_info(TASK_DYLD_INFO)");
    let infos = info.all_image_info_addr;
    // dyld_all_image_infos (64-bit): version u32 @0, infoArrayCount u32 @4, infoArray u64 @8; each
    // dyld_image_info is {imageLoadAddress, imageFilePath, imageFileModDate}, 24 bytes.
    let header = task.read_vec(infos, 16).unwrap();
    let count = u32::from_le_bytes(header[4..8].try_into().unwrap());
    let array = u64::from_le_bytes(header[8..16].try_into().unwrap());
    assert!(count > 0 && array != 0, "dyld has not filled its image list yet");
    for i in 0..u64::from(count) {
        let load_address = task.read_u64(array + 24 * i).unwrap();
        let filetype = task.read_vec(load_address + 12, 4).unwrap();
        if filetype == 2u32.to_le_bytes() {
            return load_address;
        }
    }
    panic!("no MH_EXECUTE among dyld's {count} images");
}

#[cfg(feature = "contract")]
mod contract_checks {
    //! The trait's contract (`mach_task::contract`) against the kernel, once on the own process and once on
    //! a spinning child.

    use mach_task::contract::{self, Fixture};

    use super::*;

    /// Data nothing reads, for the data-write checks in the child.
    static SCRATCH_DATA: AtomicU64 = AtomicU64::new(0x5ca7_c4da_7a00_0001);
    /// Data the own-process fixture names as its counter.
    static OWN_COUNTER: AtomicU64 = AtomicU64::new(1);

    impl Fixture for OwnProcess {
        type Task = MachTask;

        fn task(&self) -> &MachTask {
            &self.task
        }
        fn scratch_code(&self) -> u64 {
            self.code_page
        }
        fn scratch_code_bytes(&self) -> Vec<u8> {
            own_bytes(addr_of_fn(hcrt_scratch), 16)
        }
        fn scratch_data(&self) -> u64 {
            self.data_page + 64
        }
        fn readonly_data(&self) -> u64 {
            self.readonly_page
        }
        fn main_image_base(&self) -> u64 {
            own_base()
        }
        /// Nothing increments it: the own process is never suspended, so no check watches it move.
        fn counter(&self) -> u64 {
            OWN_COUNTER.as_ptr() as u64
        }
        fn run_briefly(&self) {
            thread::sleep(Duration::from_millis(20));
        }
        fn is_own_process(&self) -> bool {
            true
        }
    }

    impl Fixture for SpinningChild {
        type Task = MachTask;

        fn task(&self) -> &MachTask {
            self.child.task()
        }
        fn scratch_code(&self) -> u64 {
            self.there(addr_of_fn(hcrt_scratch))
        }
        fn scratch_code_bytes(&self) -> Vec<u8> {
            own_bytes(addr_of_fn(hcrt_scratch), 16)
        }
        fn scratch_data(&self) -> u64 {
            self.there(SCRATCH_DATA.as_ptr() as u64)
        }
        /// The last 8 bytes of `__DATA_CONST`: page padding past its sections, which nothing reads.
        fn readonly_data(&self) -> u64 {
            let (vmaddr, vmsize) = file_segment("__DATA_CONST");
            let (text, _) = file_segment("__TEXT");
            self.there(own_base() - text + vmaddr + vmsize - 8)
        }
        fn main_image_base(&self) -> u64 {
            main_image_per_dyld(self.child.task())
        }
        fn counter(&self) -> u64 {
            self.counter_addr()
        }
        fn run_briefly(&self) {
            thread::sleep(Duration::from_millis(50));
        }
    }

    macro_rules! checks {
        ($($name:ident),* $(,)?) => {
            mod own_process {
                use super::*;
                $(#[test] fn $name() { contract::$name(&OwnProcess::new()); })*
            }
            mod child {
                use super::*;
                $(#[test] fn $name() { contract::$name(&SpinningChild::start()); })*
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
}

// ---------------------------------------------------------------------------------------------------------
// The own process.

#[test]
fn code_written_into_a_copied_page_of_a_function_runs() {
    let own = OwnProcess::new();
    let call = |addr: u64| -> u64 {
        // SAFETY: `addr` is the start of a copy of `_hcrt_scratch`, or of code this test wrote there: a leaf
        // function that sets x0 and returns, in an r-x page that stays mapped until `own` drops.
        let f = unsafe { std::mem::transmute::<*const (), extern "C" fn() -> u64>(addr as *const ()) };
        f()
    };
    assert_eq!(call(own.code_page), 42, "the copied page runs as the original");
    own.task.write_code(own.code_page, &RETURN_7).unwrap();
    assert_eq!(call(own.code_page), 7, "the rewritten copy runs the new code");
    let region = own.task.region_containing(own.code_page).unwrap();
    assert_eq!((region.prot, region.max_prot.contains(VmProt::EXECUTE)), (VmProt::RX, true));
    // SAFETY: the original is a leaf function that sets x0 and returns.
    assert_eq!(unsafe { hcrt_scratch() }, 42, "the original is untouched");
}

#[test]
fn the_slide_is_what_dyld_reports() {
    let base = MachTask::current().main_image_base().unwrap();
    assert_eq!(base, own_base(), "main_image_base");
    let (text_vmaddr, _) = file_segment("__TEXT");
    assert_eq!(base.wrapping_sub(text_vmaddr) as i64, own_slide(), "slide");
}

#[test]
fn suspending_the_own_task_is_refused_however_it_was_named() {
    let by_pid = MachTask::for_pid(std::process::id()).unwrap();
    assert!(by_pid.is_current());
    for task in [MachTask::current(), by_pid] {
        let err = task.suspend().unwrap_err();
        assert!(matches!(err, TaskError::Unsupported { .. }), "{err}");
        // The task is usable all the same.
        let entry = addr_of_fn(hcrt_scratch);
        assert_eq!(task.read_vec(entry, 8).unwrap(), own_bytes(entry, 8));
    }
}

#[test]
fn threads_of_the_own_process_include_this_one() {
    let threads = MachTask::current().threads().unwrap();
    // SAFETY: `pthread_self` is always valid; `pthread_threadid_np` writes the calling thread's id.
    let me = unsafe {
        let mut id = 0u64;
        assert_eq!(libc::pthread_threadid_np(libc::pthread_self(), &mut id), 0);
        id
    };
    assert!(threads.iter().any(|t| t.id == me), "thread {me} is not among {threads:x?}");
}

// ---------------------------------------------------------------------------------------------------------
// Spawned children.

#[test]
fn a_child_without_aslr_loads_at_its_link_address_and_waits_for_sigcont() {
    let _lock = CHILD_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut child = spawn_self("spin", |s| {
        s.disable_aslr(true);
    });
    let (text_vmaddr, _) = file_segment("__TEXT");
    assert_eq!(child.slide(text_vmaddr).unwrap(), 0, "slide with ASLR disabled");
    assert_eq!(child.task().suspend_count().unwrap(), 1, "a START_SUSPENDED child holds one suspension");
    child.resume().unwrap();
    eventually("SIGCONT releases the spawn's suspension", Duration::from_secs(10), || {
        child.task().suspend_count().unwrap() == 0
    });
    let counter = SLOTS[0].as_ptr() as u64 - own_base() + text_vmaddr;
    eventually("the child spins", Duration::from_secs(30), || child.task().read_u64(counter).unwrap() > 0);
    assert_eq!(main_image_per_dyld(child.task()), text_vmaddr, "dyld's record of the main image");
}

#[test]
fn a_suspended_child_is_found_before_it_runs_and_sits_outside_its_image() {
    let _lock = CHILD_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let child = spawn_self("spin", |_| {});
    let base = child.main_image_base().unwrap();
    let (text_vmaddr, text_size) = file_segment("__TEXT");
    assert_eq!(child.slide(text_vmaddr).unwrap(), base.wrapping_sub(text_vmaddr) as i64);
    assert_eq!(child.task().read_vec(base, 4).unwrap(), 0xfeed_facf_u32.to_le_bytes());
    // Only dyld's entry thread exists, and it has not entered the executable yet.
    let threads = child.task().threads().unwrap();
    assert_eq!(threads.len(), 1, "{threads:x?}");
    let pc = threads[0].pc;
    assert!(!(base..base + text_size).contains(&pc), "pc {pc:#x} is already inside the executable");
    assert!(child.task().region_containing(pc).unwrap().prot.contains(VmProt::EXECUTE));
}

#[test]
fn suspend_stops_a_busy_child() {
    let spinning = SpinningChild::start();
    let task = spinning.task();
    let counter = spinning.counter_addr();
    let guard = task.suspend().unwrap();
    let stopped = task.read_u64(counter).unwrap();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(task.read_u64(counter).unwrap(), stopped, "the counter moved while suspended");
    guard.resume().unwrap();
    eventually("the counter moves again", Duration::from_secs(10), || {
        task.read_u64(counter).unwrap() > stopped
    });
}

#[test]
fn a_busy_childs_thread_is_inside_the_spin_loop() {
    let spinning = SpinningChild::start();
    let task = spinning.task();
    let guard = task.suspend().unwrap();
    let threads = task.threads().unwrap();
    drop(guard);
    let loop_range = spinning.there(spin_addr())..spinning.there(end_addr());
    let inside: Vec<_> = threads.iter().filter(|t| loop_range.contains(&t.pc)).collect();
    assert_eq!(inside.len(), 1, "one thread spins in {loop_range:x?}: {threads:x?}");
    let stack = task.region_containing(inside[0].sp).unwrap();
    assert_eq!(stack.prot, VmProt::RW, "the spinning thread's sp {:#x} is not in its stack", inside[0].sp);
}

#[test]
fn code_patched_in_a_running_child_takes_effect() {
    let spinning = SpinningChild::start();
    let task = spinning.task();
    let value_fn = spinning.there(addr_of_fn(hcrt_value));
    let value = spinning.value_addr();
    assert_eq!(task.read_u64(value).unwrap(), 1);
    let original = own_bytes(addr_of_fn(hcrt_value), RETURN_2.len());
    for (bytes, expected) in [(&RETURN_2[..], 2), (&original[..], 1)] {
        let guard = task.suspend().unwrap();
        task.write_code(value_fn, bytes).unwrap_or_else(|e| panic!("write_code at {value_fn:#x}: {e}"));
        let region = task.region_containing(value_fn).unwrap();
        assert_eq!(region.prot, VmProt::RX, "protection after write_code");
        assert!(
            region.max_prot.contains(VmProt::EXECUTE),
            "max protection lost EXECUTE: {}",
            region.max_prot
        );
        guard.resume().unwrap();
        eventually(&format!("the child sees {expected}"), Duration::from_secs(10), || {
            task.read_u64(value).unwrap() == expected
        });
    }
}

#[test]
fn code_signing_flags_of_a_plain_and_a_debugged_child() {
    let plain = SpinningChild::start();
    let flags = plain.child.code_signing_flags().unwrap();
    assert!(flags.contains(CsFlags::ADHOC), "{flags}");
    assert!(!flags.modified_code_is_fatal(), "{flags}");
    assert!(!flags.contains(CsFlags::DEBUGGED), "{flags}");
    drop(plain);

    // Debugged mode: attached with PT_ATTACH, stopped, then detached by `resume`, and running.
    let debugged = SpinningChild::start_with(|s| {
        s.debugged(true);
    });
    assert!(!debugged.child.is_traced(), "resume detaches");
    let flags = debugged.child.code_signing_flags().unwrap();
    assert!(flags.contains(CsFlags::DEBUGGED), "PT_ATTACH did not set CS_DEBUGGED: {flags}");
}

#[test]
fn dropping_a_suspended_child_kills_and_reaps_it() {
    let child = spawn_self("spin", |_| {});
    let pid = child.pid() as libc::pid_t;
    drop(child);
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    assert_eq!((rc, std::io::Error::last_os_error().raw_os_error()), (-1, Some(libc::ESRCH)), "pid {pid}");
}

#[test]
fn a_childs_output_arrives_through_its_pipe_and_its_exit_is_reaped() {
    let mut child = spawn_self("print", |s| {
        s.env(VALUE_ENV, "hello from the pipe").stdout(Stdio::Piped);
    });
    let mut out = child.take_stdout().expect("a piped stdout");
    child.resume().unwrap();
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    assert!(text.contains(&format!("{MARKER}hello from the pipe")), "child stdout: {text:?}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn spawn_errors_name_the_program() {
    let err = Spawn::new("/nonexistent/hcr-child").spawn().unwrap_err();
    assert!(err.to_string().contains("/nonexistent/hcr-child"), "{err}");
}

#[test]
fn the_task_port_of_a_process_that_is_gone_is_refused() {
    let mut child = spawn_self("spin", |_| {});
    let pid = child.pid();
    child.kill().unwrap();
    let err = MachTask::for_pid_within(pid, Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, TaskError::TaskPort { pid: p, .. } if p == pid), "{err}");
}
