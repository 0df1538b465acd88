//! The libSystem subset, in Rust. Each exported function is bound to its own `brk #n; ret` trampoline in a
//! "libSystem" text page; the `brk` traps into [`dispatch`], which runs the Rust implementation with the guest's
//! registers and memory and then lets the `ret` return to the caller.
//!
//! Arguments follow Apple's arm64 ABI: fixed arguments in `x0..x7`/`d0..d7`, every variadic argument in its own
//! 8-byte stack slot from `sp` up, and a `va_list` is a plain pointer to such slots. The exported set is exactly
//! `sim-sdk/usr/lib/libSystem.tbd` (an integration test compares the two).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mach_task::{PAGE_SIZE, VmProt};
use unicorn_engine::RegisterARM64;

use crate::error::SimError;
use crate::heap::HeapError;
use crate::machine::{
    self, Crash, Emu, ExitStatus, SIGSEGV, Stop, emit, guest_cstr, guest_read, guest_write,
};
use crate::output::Stream;
use crate::printf::{self, Args};
use crate::threads::{self, PTHREAD_SIZE, Wait};

/// What a shim does after it returns.
#[derive(Debug)]
pub enum Flow {
    /// Continue at the trampoline's `ret`.
    Return,
    /// Stop running: the process or the thread ended.
    Stop(Stop),
    /// The thread waits. When [`Wait::retries`], the shim runs again once the thread wakes; otherwise its result is
    /// set and the thread goes on after the call.
    Block(Wait),
}

type ShimFn = fn(&mut Emu<'_>) -> Result<Flow, Crash>;

/// One trampoline: its symbol (with the Mach-O underscore) and implementation.
struct Shim {
    name: &'static str,
    run: ShimFn,
}

/// Trampoline 0 is where `main` returns to, trampoline 1 where a thread's start routine returns to, trampoline 2
/// where a function called from outside returns to (the emulator stops before it); none is exported.
const MAIN_RETURNED: &str = "<main returned>";
const THREAD_RETURNED: &str = "<thread returned>";
const CALL_RETURNED: &str = "<call returned>";

/// Every function trampoline, in trampoline order.
static FUNCTIONS: &[Shim] = &[
    Shim { name: MAIN_RETURNED, run: exit },
    Shim { name: THREAD_RETURNED, run: threads::pthread_exit },
    Shim {
        name: CALL_RETURNED,
        run: |_| Err(Crash::abort("returned into the end of a call made from outside")),
    },
    Shim { name: "_printf", run: printf },
    Shim { name: "_fprintf", run: fprintf },
    Shim { name: "_sprintf", run: sprintf },
    Shim { name: "_snprintf", run: snprintf },
    Shim { name: "_vprintf", run: vprintf },
    Shim { name: "_vfprintf", run: vfprintf },
    Shim { name: "_vsnprintf", run: vsnprintf },
    Shim { name: "_puts", run: puts },
    Shim { name: "_putchar", run: putchar },
    Shim { name: "_fputs", run: fputs },
    Shim { name: "_fputc", run: fputc },
    Shim { name: "_fwrite", run: fwrite },
    Shim { name: "_fflush", run: fflush },
    Shim { name: "_write", run: write },
    Shim { name: "_malloc", run: malloc },
    Shim { name: "_calloc", run: calloc },
    Shim { name: "_realloc", run: realloc },
    Shim { name: "_free", run: free },
    Shim { name: "_memcpy", run: memmove },
    Shim { name: "_memmove", run: memmove },
    Shim { name: "_memset", run: memset },
    Shim { name: "_memcmp", run: memcmp },
    Shim { name: "_strlen", run: strlen },
    Shim { name: "_strcmp", run: strcmp },
    Shim { name: "_strncmp", run: strncmp },
    Shim { name: "_strcpy", run: strcpy },
    Shim { name: "_bzero", run: bzero },
    Shim { name: "_memset_pattern16", run: memset_pattern16 },
    Shim { name: "_abs", run: abs },
    Shim { name: "_atoi", run: atoi },
    Shim { name: "_exit", run: exit },
    Shim { name: "__exit", run: exit },
    Shim { name: "_abort", run: abort },
    Shim { name: "___assert_rtn", run: assert_rtn },
    Shim { name: "___stack_chk_fail", run: stack_chk_fail },
    Shim { name: "_usleep", run: usleep },
    Shim { name: "_nanosleep", run: nanosleep },
    Shim { name: "_clock_gettime", run: clock_gettime },
    Shim { name: "_time", run: time },
    Shim { name: "_getpid", run: getpid },
    Shim { name: "_sqrt", run: |e| math1(e, f64::sqrt) },
    Shim { name: "_sin", run: |e| math1(e, f64::sin) },
    Shim { name: "_cos", run: |e| math1(e, f64::cos) },
    Shim { name: "_tan", run: |e| math1(e, f64::tan) },
    Shim { name: "_atan2", run: |e| math2(e, f64::atan2) },
    Shim { name: "_pow", run: |e| math2(e, f64::powf) },
    Shim { name: "_exp", run: |e| math1(e, f64::exp) },
    Shim { name: "_exp2", run: |e| math1(e, f64::exp2) },
    Shim { name: "___exp10", run: |e| math1(e, |x| 10f64.powf(x)) },
    Shim { name: "_log", run: |e| math1(e, f64::ln) },
    Shim { name: "_ldexp", run: ldexp },
    Shim { name: "_floor", run: |e| math1(e, f64::floor) },
    Shim { name: "_ceil", run: |e| math1(e, f64::ceil) },
    Shim { name: "_fabs", run: |e| math1(e, f64::abs) },
    Shim { name: "_fmod", run: |e| math2(e, |x, y| x % y) },
    Shim { name: "___sincos_stret", run: sincos_stret },
    Shim { name: "_pthread_create", run: threads::pthread_create },
    Shim { name: "_pthread_join", run: threads::pthread_join },
    Shim { name: "_pthread_exit", run: threads::pthread_exit },
    Shim { name: "_pthread_detach", run: threads::pthread_detach },
    Shim { name: "_pthread_self", run: threads::pthread_self },
    Shim { name: "_pthread_equal", run: threads::pthread_equal },
    Shim { name: "_pthread_attr_init", run: threads::pthread_attr_init },
    Shim { name: "_pthread_attr_destroy", run: threads::pthread_attr_destroy },
    Shim { name: "_pthread_attr_setdetachstate", run: threads::pthread_attr_setdetachstate },
    Shim { name: "_pthread_attr_getdetachstate", run: threads::pthread_attr_getdetachstate },
    Shim { name: "_pthread_attr_setstacksize", run: threads::pthread_attr_setstacksize },
    Shim { name: "_pthread_attr_getstacksize", run: threads::pthread_attr_getstacksize },
    Shim { name: "_pthread_mutexattr_init", run: threads::pthread_mutexattr_init },
    Shim { name: "_pthread_mutexattr_destroy", run: threads::pthread_mutexattr_destroy },
    Shim { name: "_pthread_mutexattr_settype", run: threads::pthread_mutexattr_settype },
    Shim { name: "_pthread_mutexattr_gettype", run: threads::pthread_mutexattr_gettype },
    Shim { name: "_pthread_mutex_init", run: threads::pthread_mutex_init },
    Shim { name: "_pthread_mutex_destroy", run: threads::pthread_mutex_destroy },
    Shim { name: "_pthread_mutex_lock", run: threads::pthread_mutex_lock },
    Shim { name: "_pthread_mutex_trylock", run: threads::pthread_mutex_trylock },
    Shim { name: "_pthread_mutex_unlock", run: threads::pthread_mutex_unlock },
    Shim { name: "_pthread_cond_init", run: threads::pthread_cond_init },
    Shim { name: "_pthread_cond_destroy", run: threads::pthread_cond_destroy },
    Shim { name: "_pthread_cond_wait", run: threads::pthread_cond_wait },
    Shim { name: "_pthread_cond_signal", run: threads::pthread_cond_signal },
    Shim { name: "_pthread_cond_broadcast", run: threads::pthread_cond_broadcast },
    Shim { name: "_sched_yield", run: threads::sched_yield },
    Shim { name: "dyld_stub_binder", run: stub_binder },
];

/// Whether a trampoline is reached only from inside the simulator.
fn internal(name: &str) -> bool {
    name == MAIN_RETURNED || name == THREAD_RETURNED || name == CALL_RETURNED
}

/// Exported data, by offset in the libSystem data page.
const STACK_CHK_GUARD: u64 = 0x0;
const STDOUTP: u64 = 0x8;
const STDERRP: u64 = 0x10;
const STDOUT_FILE: u64 = 0x100;
const STDERR_FILE: u64 = 0x200;
/// The main thread's `struct _opaque_pthread_t` (its `pthread_t`).
const MAIN_THREAD: u64 = 0x1000;
const _: () = assert!(MAIN_THREAD + PTHREAD_SIZE <= PAGE_SIZE);
static DATA: &[(&str, u64)] =
    &[("___stack_chk_guard", STACK_CHK_GUARD), ("___stdoutp", STDOUTP), ("___stderrp", STDERRP)];
/// `struct __sFILE`'s `_file` (the descriptor), a `short` at offset 18 on arm64 Darwin.
const FILE_FD_OFFSET: u64 = 18;
/// `sizeof(struct __sFILE)` on arm64 Darwin: the two objects (0x100 apart) must not overlap.
const FILE_SIZE: u64 = 152;
const _: () = assert!(FILE_FD_OFFSET + 2 <= FILE_SIZE && STDOUT_FILE + FILE_SIZE <= STDERR_FILE);

/// Where the libSystem region of one process is: a text page of trampolines and a data page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibSystem {
    text: u64,
    data: u64,
}

impl LibSystem {
    /// The region at `base` (a page-aligned address).
    pub fn at(base: u64) -> LibSystem {
        LibSystem { text: base, data: base + PAGE_SIZE }
    }

    /// The runtime address of an exported symbol (Mach-O name, with its underscore), as dyld would bind it.
    pub fn address(&self, symbol: &str) -> Option<u64> {
        if let Some(i) = FUNCTIONS.iter().position(|s| s.name == symbol && !internal(s.name)) {
            return Some(self.text + 8 * i as u64);
        }
        DATA.iter().find(|(name, _)| *name == symbol).map(|(_, off)| self.data + off)
    }

    /// Where `main` returns to.
    pub fn exit_trampoline(&self) -> u64 {
        self.text
    }

    /// Where a thread's start routine returns to: `pthread_exit` with its result.
    pub fn thread_return_trampoline(&self) -> u64 {
        self.text + 8
    }

    /// Where a function called from outside returns to ([`machine::call`]). Unicorn compiles "stop here" into the
    /// translation of the address a run stops at, so that address must be one the program never executes.
    pub fn call_return_trampoline(&self) -> u64 {
        self.text + 16
    }

    /// The main thread's `pthread_t`.
    pub fn main_thread(&self) -> u64 {
        self.data + MAIN_THREAD
    }

    /// Whether `pc` is a trampoline's `brk`.
    pub fn is_trampoline(&self, pc: u64) -> bool {
        pc >= self.text && pc < self.text + 8 * FUNCTIONS.len() as u64 && (pc - self.text).is_multiple_of(8)
    }

    /// The guest `FILE *` of stdout and stderr.
    pub fn stdout_file(&self) -> u64 {
        self.data + STDOUT_FILE
    }

    pub fn stderr_file(&self) -> u64 {
        self.data + STDERR_FILE
    }
}

/// Every symbol the shims export, as the `.tbd` spells them.
pub fn exported_symbols() -> Vec<&'static str> {
    let functions = FUNCTIONS.iter().map(|s| s.name).filter(|n| !internal(n));
    functions.chain(DATA.iter().map(|(n, _)| *n)).collect()
}

/// Maps the libSystem text and data pages and fills them: trampolines, a random stack guard, and the stdout and
/// stderr `FILE` objects.
pub fn install(emu: &mut Emu<'_>) -> Result<(), SimError> {
    let lib = emu.get_data().libsystem;
    let err = |op, addr| {
        move |e: unicorn_engine::uc_error| SimError::Emulator { op, addr, message: format!("{e:?}") }
    };
    machine::map(emu, lib.text, PAGE_SIZE, VmProt::RX, VmProt::RX, "libSystem __TEXT", 0)?;
    let mut code = Vec::with_capacity(FUNCTIONS.len() * 8);
    for i in 0..FUNCTIONS.len() as u32 {
        // brk #i ; ret
        code.extend_from_slice(&(0xd420_0000 | (i << 5)).to_le_bytes());
        code.extend_from_slice(&0xd65f_03c0u32.to_le_bytes());
    }
    emu.mem_write(lib.text, &code).map_err(err("uc_mem_write", lib.text))?;
    machine::map(emu, lib.data, PAGE_SIZE, VmProt::RW, VmProt::RW, "libSystem __DATA", 0)?;
    let mut data = vec![0u8; PAGE_SIZE as usize];
    let guard: u64 = rand::random();
    let mut put = |off: u64, v: u64| data[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    put(STACK_CHK_GUARD, guard);
    put(STDOUTP, lib.stdout_file());
    put(STDERRP, lib.stderr_file());
    for (file, fd) in [(STDOUT_FILE, 1u16), (STDERR_FILE, 2u16)] {
        let at = (file + FILE_FD_OFFSET) as usize;
        data[at..at + 2].copy_from_slice(&fd.to_le_bytes());
    }
    data[MAIN_THREAD as usize..MAIN_THREAD as usize + 8].copy_from_slice(&threads::PTHREAD_SIG.to_le_bytes());
    emu.mem_write(lib.data, &data).map_err(err("uc_mem_write", lib.data))?;
    Ok(())
}

/// Runs the shim whose trampoline is at `pc` and arranges what happens next.
pub fn dispatch(emu: &mut Emu<'_>, pc: u64) {
    let lib = emu.get_data().libsystem;
    let shim = &FUNCTIONS[((pc - lib.text) / 8) as usize];
    if emu.get_data().trace {
        let lr = emu.reg_read(RegisterARM64::X30).unwrap_or(0);
        eprintln!(
            "[darwin-sim] call {} (x0={:#x}, x1={:#x}, x2={:#x}) from {lr:#x}",
            shim.name,
            x(emu, 0),
            x(emu, 1),
            x(emu, 2)
        );
    }
    match (shim.run)(emu) {
        Ok(Flow::Return) => {
            let _ = emu.set_pc(pc + 4);
        }
        Ok(Flow::Stop(stop)) => {
            let _ = emu.set_pc(pc + 4);
            emu.get_data_mut().stop = Some(stop);
            let _ = emu.emu_stop();
        }
        Ok(Flow::Block(wait)) => {
            let _ = emu.set_pc(if wait.retries() { pc } else { pc + 4 });
            emu.get_data_mut().stop = Some(Stop::Block(wait));
            let _ = emu.emu_stop();
        }
        Err(crash) => machine::die(emu, crash),
    }
}

// ---- registers ----

/// `x<n>` (n ≤ 28).
pub(crate) fn x(emu: &Emu<'_>, n: i32) -> u64 {
    emu.reg_read(RegisterARM64::X0 as i32 + n).unwrap_or(0)
}

/// `d<n>` as a double.
fn d(emu: &Emu<'_>, n: i32) -> f64 {
    f64::from_bits(emu.reg_read(RegisterARM64::D0 as i32 + n).unwrap_or(0))
}

fn ret(emu: &mut Emu<'_>, value: u64) -> Result<Flow, Crash> {
    let _ = emu.reg_write(RegisterARM64::X0, value);
    Ok(Flow::Return)
}

pub(crate) fn ret_int(emu: &mut Emu<'_>, value: i64) -> Result<Flow, Crash> {
    ret(emu, value as u64)
}

fn ret_double(emu: &mut Emu<'_>, value: f64) -> Result<Flow, Crash> {
    let _ = emu.reg_write(RegisterARM64::D0, value.to_bits());
    Ok(Flow::Return)
}

fn sp(emu: &Emu<'_>) -> u64 {
    emu.reg_read(RegisterARM64::SP).unwrap_or(0)
}

// ---- stdio ----

/// `printf`'s arguments: 8-byte slots in guest memory from `next` on.
struct GuestArgs<'a, 'u> {
    emu: &'a Emu<'u>,
    next: u64,
    crash: Option<Crash>,
}

impl Args for GuestArgs<'_, '_> {
    fn next_slot(&mut self) -> Result<u64, String> {
        let bytes = guest_read(self.emu, self.next, 8).map_err(|c| {
            let msg = c.reason.clone();
            self.crash = Some(c);
            msg
        })?;
        self.next += 8;
        Ok(u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
    }

    fn string(&mut self, addr: u64, max: Option<usize>) -> Result<Vec<u8>, String> {
        guest_cstr(self.emu, addr, max).map_err(|c| {
            let msg = c.reason.clone();
            self.crash = Some(c);
            msg
        })
    }
}

/// Formats the guest format string at `fmt` with argument slots starting at `slots`.
fn format(emu: &Emu<'_>, fmt: u64, slots: u64) -> Result<Vec<u8>, Crash> {
    let fmt = guest_cstr(emu, fmt, None)?;
    let mut args = GuestArgs { emu, next: slots, crash: None };
    printf::format(&fmt, &mut args)
        .map_err(|message| args.crash.take().unwrap_or_else(|| Crash::abort(format!("printf: {message}"))))
}

/// The stream behind a guest `FILE *`.
fn stream_of(emu: &Emu<'_>, file: u64) -> Result<Stream, Crash> {
    let lib = emu.get_data().libsystem;
    if file == lib.stdout_file() {
        Ok(Stream::Stdout)
    } else if file == lib.stderr_file() {
        Ok(Stream::Stderr)
    } else {
        Err(Crash {
            signal: SIGSEGV,
            reason: format!(
                "FILE * {file:#x} is neither stdout nor stderr, the only streams darwin-sim provides"
            ),
        })
    }
}

fn print_to(emu: &mut Emu<'_>, stream: Stream, bytes: &[u8]) -> Result<Flow, Crash> {
    emit(emu, stream, bytes);
    ret_int(emu, bytes.len() as i64)
}

fn printf(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let out = format(emu, x(emu, 0), sp(emu))?;
    print_to(emu, Stream::Stdout, &out)
}

fn fprintf(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let stream = stream_of(emu, x(emu, 0))?;
    let out = format(emu, x(emu, 1), sp(emu))?;
    print_to(emu, stream, &out)
}

fn vprintf(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let out = format(emu, x(emu, 0), x(emu, 1))?;
    print_to(emu, Stream::Stdout, &out)
}

fn vfprintf(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let stream = stream_of(emu, x(emu, 0))?;
    let out = format(emu, x(emu, 1), x(emu, 2))?;
    print_to(emu, stream, &out)
}

/// Stores `out` at `buf` truncated to `size` bytes including the NUL (`size == None`: unbounded, `sprintf`).
fn store(emu: &mut Emu<'_>, buf: u64, size: Option<u64>, out: &[u8]) -> Result<Flow, Crash> {
    let keep = match size {
        Some(0) => None,
        Some(n) => Some(out.len().min(n as usize - 1)),
        None => Some(out.len()),
    };
    if let Some(keep) = keep {
        let mut bytes = out[..keep].to_vec();
        bytes.push(0);
        guest_write(emu, buf, &bytes)?;
    }
    ret_int(emu, out.len() as i64)
}

fn sprintf(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let out = format(emu, x(emu, 1), sp(emu))?;
    store(emu, x(emu, 0), None, &out)
}

fn snprintf(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let out = format(emu, x(emu, 2), sp(emu))?;
    store(emu, x(emu, 0), Some(x(emu, 1)), &out)
}

fn vsnprintf(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let out = format(emu, x(emu, 2), x(emu, 3))?;
    store(emu, x(emu, 0), Some(x(emu, 1)), &out)
}

fn puts(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let mut s = guest_cstr(emu, x(emu, 0), None)?;
    s.push(b'\n');
    emit(emu, Stream::Stdout, &s);
    ret_int(emu, 1)
}

fn putchar(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let c = x(emu, 0) as u8;
    emit(emu, Stream::Stdout, &[c]);
    ret_int(emu, i64::from(c))
}

fn fputs(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let stream = stream_of(emu, x(emu, 1))?;
    let s = guest_cstr(emu, x(emu, 0), None)?;
    emit(emu, stream, &s);
    ret_int(emu, 0)
}

fn fputc(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let stream = stream_of(emu, x(emu, 1))?;
    let c = x(emu, 0) as u8;
    emit(emu, stream, &[c]);
    ret_int(emu, i64::from(c))
}

fn fwrite(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let stream = stream_of(emu, x(emu, 3))?;
    let (size, count) = (x(emu, 1), x(emu, 2));
    let total = size.checked_mul(count).ok_or_else(|| Crash::abort("fwrite: size * nitems overflows"))?;
    let bytes = guest_read(emu, x(emu, 0), total as usize)?;
    emit(emu, stream, &bytes);
    ret(emu, if size == 0 { 0 } else { count })
}

fn fflush(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    // Output is unbuffered in the simulator; a stream other than stdout/stderr (or NULL, "all") is still checked.
    let file = x(emu, 0);
    if file != 0 {
        stream_of(emu, file)?;
    }
    ret_int(emu, 0)
}

fn write(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (fd, buf, n) = (x(emu, 0) as i32, x(emu, 1), x(emu, 2));
    let stream = match fd {
        1 => Stream::Stdout,
        2 => Stream::Stderr,
        _ => return ret_int(emu, -1),
    };
    let bytes = guest_read(emu, buf, n as usize)?;
    emit(emu, stream, &bytes);
    ret(emu, n)
}

// ---- malloc ----

fn alloc(emu: &mut Emu<'_>, size: u64) -> Result<u64, Crash> {
    let Some((addr, grown)) = emu.get_data_mut().heap.alloc(size, machine::HEAP_STEP) else {
        return Ok(0);
    };
    if let Some((from, to)) = grown {
        machine::map(emu, from, to - from, VmProt::RW, VmProt::all() - VmProt::COPY, "MALLOC", 0)
            .map_err(|e| Crash::abort(format!("malloc: cannot grow the heap: {e}")))?;
    }
    Ok(addr)
}

fn malloc_error(emu: &Emu<'_>, addr: u64, what: &str) -> Crash {
    let pid = emu.get_data().pid;
    let message = format!(
        "darwin-sim({pid}) malloc: *** error for object {addr:#x}: pointer being {what} was not allocated\n"
    );
    emit(emu, Stream::Stderr, message.as_bytes());
    Crash::abort(message.trim_end())
}

fn malloc(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let p = alloc(emu, x(emu, 0))?;
    ret(emu, p)
}

fn calloc(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let Some(total) = x(emu, 0).checked_mul(x(emu, 1)) else {
        return ret(emu, 0);
    };
    let p = alloc(emu, total)?;
    if p != 0 {
        let size = emu.get_data().heap.size_of(p).unwrap_or(total);
        guest_write(emu, p, &vec![0; size as usize])?;
    }
    ret(emu, p)
}

fn realloc(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (old, size) = (x(emu, 0), x(emu, 1));
    if old == 0 {
        let p = alloc(emu, size)?;
        return ret(emu, p);
    }
    let Some(old_size) = emu.get_data().heap.size_of(old) else {
        return Err(malloc_error(emu, old, "realloc'd"));
    };
    let p = alloc(emu, size)?;
    if p == 0 {
        return ret(emu, 0);
    }
    let bytes = guest_read(emu, old, old_size.min(size.max(1)) as usize)?;
    guest_write(emu, p, &bytes)?;
    let _ = emu.get_data_mut().heap.free(old);
    ret(emu, p)
}

fn free(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let p = x(emu, 0);
    if p != 0 {
        match emu.get_data_mut().heap.free(p) {
            Ok(()) => {}
            Err(HeapError::NotAllocated(addr)) => return Err(malloc_error(emu, addr, "freed")),
        }
    }
    Ok(Flow::Return)
}

// ---- string.h ----

fn memmove(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (dst, src, n) = (x(emu, 0), x(emu, 1), x(emu, 2));
    if n > 0 {
        let bytes = guest_read(emu, src, n as usize)?;
        guest_write(emu, dst, &bytes)?;
    }
    ret(emu, dst)
}

fn memset(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (dst, c, n) = (x(emu, 0), x(emu, 1) as u8, x(emu, 2));
    if n > 0 {
        guest_write(emu, dst, &vec![c; n as usize])?;
    }
    ret(emu, dst)
}

fn bzero(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (dst, n) = (x(emu, 0), x(emu, 1));
    if n > 0 {
        guest_write(emu, dst, &vec![0; n as usize])?;
    }
    Ok(Flow::Return)
}

fn memset_pattern16(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (dst, pattern, n) = (x(emu, 0), x(emu, 1), x(emu, 2));
    let pattern = guest_read(emu, pattern, 16)?;
    let bytes: Vec<u8> = pattern.iter().copied().cycle().take(n as usize).collect();
    guest_write(emu, dst, &bytes)?;
    Ok(Flow::Return)
}

/// The sign of the first difference, as the difference of the two bytes (Darwin returns exactly that).
fn compare(a: &[u8], b: &[u8]) -> i64 {
    a.iter().zip(b).find(|(x, y)| x != y).map_or(0, |(x, y)| i64::from(*x) - i64::from(*y))
}

fn memcmp(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let n = x(emu, 2) as usize;
    let a = guest_read(emu, x(emu, 0), n)?;
    let b = guest_read(emu, x(emu, 1), n)?;
    ret_int(emu, compare(&a, &b))
}

fn strlen(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let s = guest_cstr(emu, x(emu, 0), None)?;
    ret(emu, s.len() as u64)
}

fn strcmp(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let mut a = guest_cstr(emu, x(emu, 0), None)?;
    let mut b = guest_cstr(emu, x(emu, 1), None)?;
    a.push(0);
    b.push(0);
    ret_int(emu, compare(&a, &b))
}

fn strncmp(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let n = x(emu, 2) as usize;
    let mut a = guest_cstr(emu, x(emu, 0), Some(n))?;
    let mut b = guest_cstr(emu, x(emu, 1), Some(n))?;
    a.push(0);
    b.push(0);
    a.truncate(n);
    b.truncate(n);
    ret_int(emu, compare(&a, &b))
}

fn strcpy(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let dst = x(emu, 0);
    let mut s = guest_cstr(emu, x(emu, 1), None)?;
    s.push(0);
    guest_write(emu, dst, &s)?;
    ret(emu, dst)
}

// ---- stdlib.h ----

fn abs(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let v = x(emu, 0) as i32;
    ret_int(emu, i64::from(v.wrapping_abs()))
}

fn atoi(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let s = guest_cstr(emu, x(emu, 0), None)?;
    let mut it =
        s.iter().copied().skip_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)).peekable();
    let negative = match it.peek() {
        Some(b'-') => {
            it.next();
            true
        }
        Some(b'+') => {
            it.next();
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    for c in it.take_while(u8::is_ascii_digit) {
        v = v.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
    }
    let v = if negative { v.wrapping_neg() } else { v };
    ret_int(emu, i64::from(v as i32))
}

fn exit(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let code = (x(emu, 0) as i32) & 0xff;
    Ok(Flow::Stop(Stop::Dead(ExitStatus::Exited(code))))
}

fn abort(_emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    Err(Crash::abort("abort() called"))
}

fn assert_rtn(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let func = guest_cstr(emu, x(emu, 0), None)?;
    let file = guest_cstr(emu, x(emu, 1), None)?;
    let line = x(emu, 2) as i32;
    let expr = guest_cstr(emu, x(emu, 3), None)?;
    let message = format!(
        "Assertion failed: ({}), function {}, file {}, line {line}.\n",
        String::from_utf8_lossy(&expr),
        String::from_utf8_lossy(&func),
        String::from_utf8_lossy(&file)
    );
    emit(emu, Stream::Stderr, message.as_bytes());
    Err(Crash::abort(message.trim_end()))
}

fn stack_chk_fail(_emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    Err(Crash::abort("stack buffer overflow detected (__stack_chk_fail)"))
}

fn stub_binder(_emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    Err(Crash::abort(
        "dyld_stub_binder called: darwin-sim binds lazy pointers at launch, so nothing should call it",
    ))
}

// ---- time and process ----

fn usleep(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let us = x(emu, 0) as u32;
    ret_int(emu, 0)?;
    Ok(Flow::Block(Wait::Sleep(Instant::now() + Duration::from_micros(u64::from(us)))))
}

fn nanosleep(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let ts = guest_read(emu, x(emu, 0), 16)?;
    let secs = i64::from_le_bytes(ts[..8].try_into().unwrap_or([0; 8]));
    let nanos = i64::from_le_bytes(ts[8..].try_into().unwrap_or([0; 8]));
    if secs < 0 || !(0..1_000_000_000).contains(&nanos) {
        return ret_int(emu, -1);
    }
    ret_int(emu, 0)?;
    Ok(Flow::Block(Wait::Sleep(Instant::now() + Duration::new(secs as u64, nanos as u32))))
}

fn clock_gettime(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (clock, tp) = (x(emu, 0) as i32, x(emu, 1));
    let now = match clock {
        0 => SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default(),
        // CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC, and the uptime clocks: time since launch, plus a boot offset.
        4 | 5 | 6 | 8 | 12 | 16 => emu.get_data().started.elapsed() + Duration::from_secs(1000),
        _ => return ret_int(emu, -1),
    };
    let mut bytes = (now.as_secs() as i64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&i64::from(now.subsec_nanos()).to_le_bytes());
    guest_write(emu, tp, &bytes)?;
    ret_int(emu, 0)
}

fn time(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let tloc = x(emu, 0);
    if tloc != 0 {
        guest_write(emu, tloc, &secs.to_le_bytes())?;
    }
    ret(emu, secs)
}

fn getpid(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let pid = emu.get_data().pid;
    ret(emu, u64::from(pid))
}

// ---- math.h ----

fn math1(emu: &mut Emu<'_>, f: fn(f64) -> f64) -> Result<Flow, Crash> {
    let v = f(d(emu, 0));
    ret_double(emu, v)
}

fn math2(emu: &mut Emu<'_>, f: fn(f64, f64) -> f64) -> Result<Flow, Crash> {
    let v = f(d(emu, 0), d(emu, 1));
    ret_double(emu, v)
}

fn ldexp(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (mut v, mut e) = (d(emu, 0), x(emu, 0) as i32);
    // Scale in steps so that the power of two itself never overflows or underflows.
    while e > 1000 {
        v *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        v *= 2f64.powi(-1000);
        e += 1000;
    }
    ret_double(emu, v * 2f64.powi(e))
}

fn sincos_stret(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let v = d(emu, 0);
    let _ = emu.reg_write(RegisterARM64::D1, v.cos().to_bits());
    ret_double(emu, v.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_resolve_to_distinct_trampolines_and_data() {
        let lib = LibSystem::at(0x1_8000_0000);
        let printf = lib.address("_printf").unwrap();
        assert!(lib.is_trampoline(printf));
        assert_ne!(lib.address("_puts"), Some(printf));
        assert_eq!(lib.address(MAIN_RETURNED), None);
        assert_eq!(lib.address("_getenv"), None);
        assert_eq!(lib.address("___stdoutp"), Some(0x1_8000_4008));
        assert!(!lib.is_trampoline(lib.exit_trampoline() + 4), "the ret is not a trampoline");
        assert_eq!(compare(b"abc\0", b"abd\0"), -1);
        assert_eq!(compare(b"\xff\0", b"a\0"), 0xff - 0x61);
    }
}
