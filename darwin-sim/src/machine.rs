//! The emulated machine: a Unicorn arm64 CPU, the guest's address space mirrored from [`VmMap`], the libSystem
//! region (shim trampolines and data), the heap and the stack, and the launch that plays dyld.
//!
//! Everything here runs on the emulator thread ([`crate::process`]); Unicorn's handle never leaves it.
//!
//! Memory is backed by host allocations mapped with `uc_mem_map_ptr`, so a protection change that splits a
//! Unicorn region never copies it. Unicorn drops the translations of a region it splits, which would make a
//! patched page coherent without a cache flush; to keep stale code stale until [`Machine::flush_icache`] the
//! file-backed pages of executable segments are mapped one 16 KiB page per region from the start, and
//! protections are mirrored page by page, so a split only ever hits pages that never held code.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mach_task::{KernError, PAGE_SIZE, TaskError, VmProt};
use unicorn_engine::{Arch, HookType, MemType, Mode, Prot, RegisterARM64, Unicorn};

use crate::error::SimError;
use crate::heap::Heap;
use crate::loader::Image;
use crate::output::{Output, Stream};
use crate::shims::{self, LibSystem};
use crate::threads::{Threads, Wait};
use crate::vm::VmMap;

/// The emulator with the guest state as its user data.
pub type Emu<'a> = Unicorn<'a, Guest>;

/// Where the libSystem region goes when the image leaves room: the arm64 dyld shared cache's address.
const SHARED_REGION: u64 = 0x1_8000_0000;
/// The heap starts this far above the libSystem region and may grow to [`HEAP_LIMIT`] bytes.
const HEAP_OFFSET: u64 = 0x1000_0000;
const HEAP_LIMIT: u64 = 0x4000_0000;
pub const HEAP_STEP: u64 = 1 << 20;
/// The top of the main thread's stack, relative to the libSystem region.
const STACK_TOP_OFFSET: u64 = 0x7000_0000;
/// Other threads' stacks go up from here, relative to the libSystem region (above the heap's limit).
const THREAD_STACKS_OFFSET: u64 = HEAP_OFFSET + HEAP_LIMIT;
const DEFAULT_STACK: u64 = 8 << 20;
/// Unicorn's arm64 CPU model with every architecture feature (LSE atomics, etc.), as clang's `apple-m1` needs.
const CPU_ARM64_MAX: i32 = 3;
/// Unicorn's interrupt numbers for arm64 exceptions (QEMU's `EXCP_*`).
const EXCP_UDEF: u32 = 1;
const EXCP_SWI: u32 = 2;
const EXCP_BKPT: u32 = 7;

/// Darwin's signal numbers, for exit statuses.
pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGABRT: i32 = 6;
pub const SIGKILL: i32 = 9;
pub const SIGBUS: i32 = 10;
pub const SIGSEGV: i32 = 11;
pub const SIGSYS: i32 = 12;

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)` or `main` returned `code` (the low 8 bits, as `wait` reports them).
    Exited(i32),
    /// Killed by a signal: a crash, `abort`, or [`crate::Process::kill`]. `reason` says what happened and where.
    Signaled { signal: i32, reason: String },
}

impl ExitStatus {
    /// The status a shell would report: the exit code, or 128 + the signal.
    pub fn shell_code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) => *code,
            ExitStatus::Signaled { signal, .. } => 128 + signal,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signaled { signal, reason } => {
                write!(f, "killed by {}: {reason}", signal_name(*signal))
            }
        }
    }
}

/// `SIGSEGV` and friends.
pub fn signal_name(signal: i32) -> String {
    match signal {
        SIGILL => "SIGILL".into(),
        SIGTRAP => "SIGTRAP".into(),
        SIGABRT => "SIGABRT".into(),
        SIGKILL => "SIGKILL".into(),
        SIGBUS => "SIGBUS".into(),
        SIGSEGV => "SIGSEGV".into(),
        SIGSYS => "SIGSYS".into(),
        n => format!("signal {n}"),
    }
}

/// A guest crash raised inside a shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    pub signal: i32,
    pub reason: String,
}

impl Crash {
    pub fn abort(reason: impl Into<String>) -> Crash {
        Crash { signal: SIGABRT, reason: reason.into() }
    }
}

/// Why the last slice of execution ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The process ended.
    Dead(ExitStatus),
    /// The current thread waits (a sleep, a lock, another thread); the others run meanwhile.
    Block(Wait),
    /// The current thread ended (`pthread_exit`, or its start routine returned) with this value.
    ThreadExit(u64),
}

/// A host allocation that backs guest memory.
#[derive(Debug)]
struct HostMem {
    ptr: *mut u8,
    layout: Layout,
}

impl Drop for HostMem {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed(layout)` and is freed once, here. The Unicorn instance that maps it
        // is closed before its user data (which owns this) is dropped: `UnicornInner`'s `Drop` runs `uc_close`
        // before its fields are dropped.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Everything the hooks and shims need besides the CPU.
#[derive(Debug)]
pub struct Guest {
    pub vm: VmMap,
    host: Vec<HostMem>,
    pub heap: Heap,
    pub libsystem: LibSystem,
    pub output: Arc<Output>,
    pub stop: Option<Stop>,
    /// Basic blocks left in the current slice.
    pub blocks_left: u64,
    pub trace: bool,
    pub pid: u32,
    /// The address and kind of the last invalid memory access, for the crash report.
    pub fault: Option<(MemType, u64)>,
    pub started: Instant,
    /// The end of `__PAGEZERO`: mapped in the VM map, but nothing backs it in Unicorn.
    pub pagezero_end: u64,
    pub threads: Threads,
    /// Set by the host when a request is waiting: the running slice ends at the next basic block, so a request
    /// (a suspension above all) is served within microseconds, as a kernel's would be, not at the end of a slice.
    pub interrupt: Arc<AtomicBool>,
}

/// What a launch produced, for the process handle.
#[derive(Debug, Clone, Copy)]
pub struct Launch {
    pub slide: u64,
    /// Runtime address of the Mach header.
    pub base: u64,
    pub libsystem: LibSystem,
}

/// Launch options.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    pub aslr: bool,
    pub trace: bool,
    pub pid: u32,
    pub args: Vec<String>,
    pub env: Vec<String>,
}

fn uc_prot(p: VmProt) -> Prot {
    let mut out = Prot::NONE;
    if p.contains(VmProt::READ) {
        out |= Prot::READ;
    }
    if p.contains(VmProt::WRITE) {
        out |= Prot::WRITE;
    }
    if p.contains(VmProt::EXECUTE) {
        out |= Prot::EXEC;
    }
    out
}

fn emu_err(op: &'static str, addr: u64) -> impl Fn(unicorn_engine::uc_error) -> SimError {
    move |e| SimError::Emulator { op, addr, message: format!("{e:?}") }
}

/// Maps `[start, start + size)` as `tag` in both the VM map and Unicorn, backed by fresh zeroed host memory;
/// the first `split` bytes get one Unicorn region per page.
pub fn map(
    emu: &mut Emu<'_>,
    start: u64,
    size: u64,
    prot: VmProt,
    max: VmProt,
    tag: &str,
    split: u64,
) -> Result<(), SimError> {
    emu.get_data_mut().vm.map(start, size, prot, max, tag).map_err(|message| SimError::Emulator {
        op: "map",
        addr: start,
        message,
    })?;
    let layout = Layout::from_size_align(size as usize, PAGE_SIZE as usize)
        .map_err(|e| SimError::Emulator { op: "map", addr: start, message: e.to_string() })?;
    // SAFETY: the layout has a non-zero size (VmMap::map refuses empty mappings).
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        return Err(SimError::Emulator {
            op: "map",
            addr: start,
            message: format!("out of host memory for {size:#x} bytes"),
        });
    }
    emu.get_data_mut().host.push(HostMem { ptr, layout });
    let split = split.min(size);
    let mut at = 0;
    while at < size {
        let len = if at < split { PAGE_SIZE } else { size - at };
        // SAFETY: `ptr + at .. ptr + at + len` lies inside the allocation above, which is owned by the guest state
        // and outlives the Unicorn instance (see `HostMem`'s drop), and no other mapping uses it.
        unsafe { emu.mem_map_ptr(start + at, len, uc_prot(prot), ptr.add(at as usize).cast::<c_void>()) }
            .map_err(emu_err("uc_mem_map_ptr", start + at))?;
        at += len;
    }
    Ok(())
}

/// Mirrors the VM map's protections for `[start, end)` into Unicorn, one page at a time (see the module notes).
/// `__PAGEZERO` has nothing behind it in Unicorn, so whatever protection it is given, guest accesses still fault.
pub fn mirror_protections(emu: &mut Emu<'_>, start: u64, end: u64) -> Result<(), TaskError> {
    let mut page = start.max(emu.get_data().pagezero_end);
    while page < end {
        let Some(entry) = emu.get_data().vm.entry(page).cloned() else {
            return Err(TaskError::Unmapped { addr: page });
        };
        emu.mem_protect(page, PAGE_SIZE, uc_prot(entry.prot)).map_err(|_| TaskError::Kern {
            op: "mach_vm_protect",
            addr: Some(page),
            code: KernError::FAILURE,
        })?;
        page += PAGE_SIZE;
    }
    Ok(())
}

/// Drops the translations of `[addr, addr + len)`, so the next execution decodes what memory holds now
/// (`MATTR_VAL_CACHE_FLUSH`). Works whatever the pages' current protection: the write recipe flushes while the
/// page is still `rw-`.
pub fn flush_icache(emu: &mut Emu<'_>, addr: u64, len: u64) -> Result<(), TaskError> {
    const OP: &str = "mach_vm_machine_attribute";
    emu.get_data().vm.check_access(OP, addr, len, VmProt::empty())?;
    emu.ctl_remove_cache(addr, addr + len.max(1)).map_err(|_| TaskError::Kern {
        op: OP,
        addr: Some(addr),
        code: KernError::FAILURE,
    })
}

/// Loads `image` into a new machine, playing dyld: maps it at a slide, binds its imports to the shims, applies
/// rebases, makes `SG_READ_ONLY` segments read-only, builds the stack and points the CPU at `LC_MAIN`.
pub fn launch(
    image: &Image,
    config: &LaunchConfig,
    output: Arc<Output>,
    interrupt: Arc<AtomicBool>,
) -> Result<(Emu<'static>, Launch), SimError> {
    if let Some(library) = image.missing_library() {
        return Err(SimError::LibraryNotLoaded {
            library: library.to_string(),
            referenced_from: image.path.clone(),
        });
    }
    let slide = if config.aslr {
        rand::Rng::gen_range(&mut rand::thread_rng(), 1..0x1_0000u64) * PAGE_SIZE
    } else {
        0
    };
    let image_end = image.segments.iter().map(|s| s.vmaddr + s.vmsize).max().unwrap_or(0) + slide;
    let shared = SHARED_REGION.max(image_end.next_multiple_of(0x4000_0000));
    let libsystem = LibSystem::at(shared);
    let stack_size =
        if image.stack_size == 0 { DEFAULT_STACK } else { image.stack_size.next_multiple_of(PAGE_SIZE) };
    let stack_top = shared + STACK_TOP_OFFSET;
    let guest = Guest {
        vm: VmMap::default(),
        host: Vec::new(),
        heap: Heap::new(shared + HEAP_OFFSET, shared + HEAP_OFFSET + HEAP_LIMIT),
        libsystem,
        output,
        stop: None,
        blocks_left: 0,
        trace: config.trace,
        pid: config.pid,
        fault: None,
        started: Instant::now(),
        pagezero_end: 0,
        threads: Threads::new(libsystem.main_thread(), shared + THREAD_STACKS_OFFSET..stack_top - stack_size),
        interrupt,
    };
    let mut emu: Emu<'static> =
        Unicorn::new_with_data(Arch::ARM64, Mode::ARM, guest).map_err(emu_err("uc_open", 0))?;
    emu.ctl_set_cpu_model(CPU_ARM64_MAX).map_err(emu_err("uc_ctl(CPU_MODEL)", 0))?;

    let bytes = image.segment_bytes(slide, |name| libsystem.address(name))?;
    for (seg, data) in image.segments.iter().zip(&bytes) {
        if seg.vmsize == 0 {
            continue;
        }
        let start = (seg.vmaddr + slide) & !(PAGE_SIZE - 1);
        let end = (seg.vmaddr + slide + seg.vmsize).next_multiple_of(PAGE_SIZE);
        if seg.initprot.is_empty() && seg.maxprot.is_empty() && seg.vmaddr == 0 {
            // __PAGEZERO: the kernel stretches it over the slide too. Nothing backs it; every access faults.
            emu.get_data_mut()
                .vm
                .map(0, end, VmProt::empty(), VmProt::empty(), &seg.name)
                .map_err(|message| SimError::Emulator { op: "map", addr: 0, message })?;
            emu.get_data_mut().pagezero_end = end;
            continue;
        }
        let split = if seg.initprot.contains(VmProt::EXECUTE) {
            (data.len() as u64).next_multiple_of(PAGE_SIZE)
        } else {
            0
        };
        map(&mut emu, start, end - start, seg.initprot, seg.maxprot, &seg.name, split)?;
        emu.mem_write(seg.vmaddr + slide, data).map_err(emu_err("uc_mem_write", seg.vmaddr + slide))?;
        if seg.read_only_after_fixups {
            let prot = seg.initprot - VmProt::WRITE;
            emu.get_data_mut().vm.force_protect(start, end, prot);
            emu.mem_protect(start, end - start, uc_prot(prot)).map_err(emu_err("uc_mem_protect", start))?;
        }
    }

    shims::install(&mut emu)?;

    map(&mut emu, stack_top - stack_size, stack_size, VmProt::RW, VmProt::all() - VmProt::COPY, "stack", 0)?;
    let sp = build_stack(&mut emu, stack_top, image, config)?;
    let regs = [
        (RegisterARM64::SP, sp.sp),
        (RegisterARM64::X0, sp.argc),
        (RegisterARM64::X1, sp.argv),
        (RegisterARM64::X2, sp.envp),
        (RegisterARM64::X3, sp.apple),
        (RegisterARM64::X29, 0),
        (RegisterARM64::X30, libsystem.exit_trampoline()),
        (RegisterARM64::PC, image.entry + slide),
    ];
    for (reg, value) in regs {
        emu.reg_write(reg, value).map_err(emu_err("uc_reg_write", value))?;
    }
    install_hooks(&mut emu)?;
    Ok((emu, Launch { slide, base: image.base + slide, libsystem }))
}

struct InitialStack {
    sp: u64,
    argc: u64,
    argv: u64,
    envp: u64,
    apple: u64,
}

/// Lays out the kernel's initial stack: strings at the top, then `argc`, `argv[]`, `envp[]`, `apple[]`.
fn build_stack(
    emu: &mut Emu<'_>,
    top: u64,
    image: &Image,
    config: &LaunchConfig,
) -> Result<InitialStack, SimError> {
    let exe = image.path.display().to_string();
    let mut argv = vec![exe.clone()];
    argv.extend(config.args.iter().cloned());
    let apple = vec![format!("executable_path={exe}")];
    let mut cursor = top - 16;
    let mut put = |emu: &mut Emu<'_>, s: &str| -> Result<u64, SimError> {
        cursor -= s.len() as u64 + 1;
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        emu.mem_write(cursor, &bytes).map_err(emu_err("uc_mem_write", cursor))?;
        Ok(cursor)
    };
    let mut lists = Vec::new();
    for list in [&argv, &config.env, &apple] {
        let mut ptrs = Vec::new();
        for s in list {
            ptrs.push(put(emu, s)?);
        }
        lists.push(ptrs);
    }
    let words: usize = 1 + lists.iter().map(|l| l.len() + 1).sum::<usize>();
    let sp = (cursor - words as u64 * 8) & !15;
    let mut block = vec![argv.len() as u64];
    let mut starts = Vec::new();
    for list in &lists {
        starts.push(sp + block.len() as u64 * 8);
        block.extend(list);
        block.push(0);
    }
    let bytes: Vec<u8> = block.iter().flat_map(|w| w.to_le_bytes()).collect();
    emu.mem_write(sp, &bytes).map_err(emu_err("uc_mem_write", sp))?;
    Ok(InitialStack { sp, argc: argv.len() as u64, argv: starts[0], envp: starts[1], apple: starts[2] })
}

fn install_hooks(emu: &mut Emu<'_>) -> Result<(), SimError> {
    emu.add_intr_hook(|emu, intno| {
        let pc = emu.pc_read().unwrap_or(0);
        let crash = match intno {
            EXCP_BKPT if emu.get_data().libsystem.is_trampoline(pc) => {
                shims::dispatch(emu, pc);
                return;
            }
            EXCP_BKPT => Crash { signal: SIGTRAP, reason: format!("brk (trap instruction) at pc {pc:#x}") },
            EXCP_SWI => Crash {
                signal: SIGSYS,
                reason: format!("system call at pc {pc:#x}: only libSystem's shims are provided"),
            },
            EXCP_UDEF => Crash { signal: SIGILL, reason: format!("undefined instruction at pc {pc:#x}") },
            n => Crash { signal: SIGILL, reason: format!("CPU exception {n} at pc {pc:#x}") },
        };
        die(emu, crash);
    })
    .map_err(emu_err("uc_hook_add(INTR)", 0))?;
    emu.add_block_hook(1, 0, |emu, addr, _size| {
        let guest = emu.get_data_mut();
        if guest.trace {
            eprintln!("[darwin-sim] block {addr:#x}");
        }
        guest.blocks_left = guest.blocks_left.saturating_sub(1);
        if guest.blocks_left == 0 || guest.interrupt.load(Ordering::Relaxed) {
            let _ = emu.emu_stop();
        }
    })
    .map_err(emu_err("uc_hook_add(BLOCK)", 0))?;
    emu.add_mem_hook(HookType::MEM_INVALID, 1, 0, |emu, kind, addr, _size, _value| {
        emu.get_data_mut().fault = Some((kind, addr));
        false
    })
    .map_err(emu_err("uc_hook_add(MEM_INVALID)", 0))?;
    Ok(())
}

/// Ends the guest with `crash` from inside a hook.
pub fn die(emu: &mut Emu<'_>, crash: Crash) {
    emu.get_data_mut().stop =
        Some(Stop::Dead(ExitStatus::Signaled { signal: crash.signal, reason: crash.reason }));
    let _ = emu.emu_stop();
}

/// The result of running one slice.
#[derive(Debug)]
pub enum Slice {
    /// The budget ran out; the guest can go on.
    Ran,
    Stopped(Stop),
}

/// Runs the guest for at most `blocks` basic blocks.
pub fn run_slice(emu: &mut Emu<'_>, blocks: u64) -> Slice {
    emu.get_data_mut().blocks_left = blocks;
    emu.get_data_mut().stop = None;
    let pc = emu.pc_read().unwrap_or(0);
    let result = emu.emu_start(pc, !3, 0, 0);
    if let Some(stop) = emu.get_data_mut().stop.take() {
        return Slice::Stopped(stop);
    }
    match result {
        Ok(()) => Slice::Ran,
        Err(e) => {
            let pc = emu.pc_read().unwrap_or(0);
            let (signal, what) = match emu.get_data_mut().fault.take() {
                Some((kind, addr)) => fault_signal(kind, addr, &emu.get_data().vm),
                None => (SIGILL, format!("{e:?}")),
            };
            Slice::Stopped(Stop::Dead(ExitStatus::Signaled {
                signal,
                reason: format!("EXC_BAD_ACCESS ({}): {what} at pc {pc:#x}", signal_name(signal)),
            }))
        }
    }
}

fn fault_signal(kind: MemType, addr: u64, vm: &VmMap) -> (i32, String) {
    let verb = match kind {
        MemType::READ_UNMAPPED | MemType::READ_PROT => "reading",
        MemType::WRITE_UNMAPPED | MemType::WRITE_PROT => "writing",
        _ => "executing",
    };
    describe_fault(verb, addr, vm)
}

/// The signal and description of a bad access, as xnu classifies it.
fn describe_fault(verb: &str, addr: u64, vm: &VmMap) -> (i32, String) {
    match vm.entry(addr) {
        // xnu: KERN_PROTECTION_FAILURE becomes SIGBUS on arm64 macOS, KERN_INVALID_ADDRESS SIGSEGV.
        Some(e) if !e.prot.is_empty() => {
            (SIGBUS, format!("{verb} {addr:#x} in {} ({}/{})", e.tag, e.prot, e.max_prot))
        }
        Some(e) => (SIGSEGV, format!("{verb} {addr:#x} in {} (---)", e.tag)),
        None => (SIGSEGV, format!("{verb} unmapped address {addr:#x}")),
    }
}

/// Guest memory access on behalf of a shim, with the guest's protections: a shim that writes to read-only memory
/// crashes the program like the real libc would.
pub fn guest_read(emu: &Emu<'_>, addr: u64, len: usize) -> Result<Vec<u8>, Crash> {
    emu.get_data()
        .vm
        .check_access("read", addr, len as u64, VmProt::READ)
        .map_err(|e| access_crash(emu, &e, "reading"))?;
    emu.mem_read_as_vec(addr, len)
        .map_err(|e| Crash { signal: SIGSEGV, reason: format!("reading {addr:#x}: {e:?}") })
}

/// See [`guest_read`].
pub fn guest_write(emu: &mut Emu<'_>, addr: u64, bytes: &[u8]) -> Result<(), Crash> {
    emu.get_data()
        .vm
        .check_access("write", addr, bytes.len() as u64, VmProt::WRITE)
        .map_err(|e| access_crash(emu, &e, "writing"))?;
    emu.mem_write(addr, bytes)
        .map_err(|e| Crash { signal: SIGSEGV, reason: format!("writing {addr:#x}: {e:?}") })
}

fn access_crash(emu: &Emu<'_>, err: &TaskError, verb: &str) -> Crash {
    let addr = match err {
        TaskError::Kern { addr: Some(a), .. } => *a,
        _ => 0,
    };
    let (signal, what) = describe_fault(verb, addr, &emu.get_data().vm);
    Crash { signal, reason: format!("EXC_BAD_ACCESS ({}): {what}", signal_name(signal)) }
}

/// The NUL-terminated string at `addr` (at most `max` bytes when given).
pub fn guest_cstr(emu: &Emu<'_>, addr: u64, max: Option<usize>) -> Result<Vec<u8>, Crash> {
    let limit = max.unwrap_or(1 << 24);
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < limit {
        let chunk = ((PAGE_SIZE - at % PAGE_SIZE) as usize).min(limit - out.len()).min(256);
        let bytes = guest_read(emu, at, chunk)?;
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            out.extend_from_slice(&bytes[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(&bytes);
        at += chunk as u64;
    }
    Ok(out)
}

/// Writes program output.
pub fn emit(emu: &Emu<'_>, stream: Stream, bytes: &[u8]) {
    emu.get_data().output.write(stream, bytes);
}

/// The argument registers.
const ARG_REGS: [RegisterARM64; 8] = [
    RegisterARM64::X0,
    RegisterARM64::X1,
    RegisterARM64::X2,
    RegisterARM64::X3,
    RegisterARM64::X4,
    RegisterARM64::X5,
    RegisterARM64::X6,
    RegisterARM64::X7,
];

/// How long a function called from outside may run before the call is abandoned.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls the guest function at `addr` with up to eight integer arguments and returns its `x0`, as a debugger's
/// expression evaluator does, on the thread whose state is on the CPU: below its stack (past the 128-byte red
/// zone), returning to a trampoline of its own, where the emulator stops before executing it. The whole CPU state
/// (general, vector and system registers) is saved first and restored afterwards, so the thread resumes as if
/// nothing happened. No other thread runs during the call, and a callee that would wait for one (a lock another
/// thread holds, a join) fails the call instead. A crash inside the call is its error; the program survives it.
pub fn call(emu: &mut Emu<'_>, addr: u64, args: &[u64]) -> Result<u64, TaskError> {
    let failed =
        |why: String| TaskError::Os { op: "call a guest function", source: std::io::Error::other(why) };
    if args.len() > ARG_REGS.len() {
        return Err(failed(format!("{} arguments: at most 8 go in registers", args.len())));
    }
    let saved = emu.context_init().map_err(|e| failed(format!("saving the thread's state: {e:?}")))?;
    let sp = emu.reg_read(RegisterARM64::SP).unwrap_or(0);
    let ret = emu.get_data().libsystem.call_return_trampoline();
    let mut setup = vec![
        (RegisterARM64::SP, ((sp - 128) & !15) - 256),
        (RegisterARM64::X30, ret),
        (RegisterARM64::X29, 0),
    ];
    setup.extend(args.iter().enumerate().map(|(i, &a)| (ARG_REGS[i], a)));
    let mut result = Ok(0);
    for (reg, value) in setup {
        if let Err(e) = emu.reg_write(reg, value) {
            result = Err(failed(format!("{e:?}")));
        }
    }
    emu.get_data_mut().threads.calling = true;
    let deadline = Instant::now() + CALL_TIMEOUT;
    let mut pc = addr;
    while result.is_ok() {
        emu.get_data_mut().blocks_left = u64::MAX;
        emu.get_data_mut().stop = None;
        let left = deadline.saturating_duration_since(Instant::now());
        let ran = emu.emu_start(pc, ret, left.as_micros() as u64, 0);
        pc = emu.pc_read().unwrap_or(0);
        match (emu.get_data_mut().stop.take(), ran) {
            // A sleeping or yielding callee just goes on: nobody else runs while the program is stopped.
            (Some(Stop::Block(Wait::Sleep(_) | Wait::Yield)), _) => continue,
            (Some(Stop::Block(wait)), _) => result = Err(failed(format!("the call would block: {wait:?}"))),
            (Some(Stop::ThreadExit(_)), _) => result = Err(failed("the call ended the thread".into())),
            (Some(Stop::Dead(status)), _) => {
                result = Err(failed(format!("the call ended the thread: {status}")))
            }
            (None, Err(e)) => result = Err(failed(format!("the call faulted at pc {pc:#x}: {e:?}"))),
            (None, Ok(())) if pc == ret => {
                result = emu.reg_read(RegisterARM64::X0).map_err(|e| failed(format!("{e:?}")));
                break;
            }
            // Stopped for a request that waits until this one is done: go on.
            (None, Ok(())) if emu.get_data().interrupt.swap(false, Ordering::Relaxed) => continue,
            (None, Ok(())) => {
                result = Err(failed(format!("the call did not return within {CALL_TIMEOUT:?}")))
            }
        }
    }
    emu.get_data_mut().threads.calling = false;
    emu.get_data_mut().fault = None;
    emu.context_restore(&saved).map_err(|e| failed(format!("restoring the thread's state: {e:?}")))?;
    result
}
