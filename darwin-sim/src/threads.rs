//! Guest threads: `pthread_create`, `pthread_join`, mutexes and condition variables, scheduled round-robin on the
//! one emulated CPU.
//!
//! Each thread owns a saved Unicorn context (the whole CPU state: general, vector and system registers) while it
//! is off the CPU. The emulator thread runs the current guest thread for one slice, then hands the CPU to the next
//! thread that can run ([`schedule`]); a thread also gives it up when it blocks in a shim ([`settle`]). Switches
//! happen only between basic blocks or inside a shim, so a single instruction (an LSE atomic such as `ldadd` or
//! `cas`, which clang emits for `apple-m1`) is atomic with respect to the other threads, as on a real core.
//!
//! A shim that must wait (a lock held by another thread, a thread not yet ended) leaves the program counter on its
//! trampoline's `brk` and blocks: when the thread runs again the shim runs again from the start with the same
//! arguments. Mutexes are handed to their longest waiter on unlock, so a thread that unlocks and relocks at once
//! cannot starve the others (macOS's default mutexes are fair too).
//!
//! The layouts follow Darwin's arm64 ABI, so programs built against the real SDK run unchanged: `pthread_t` points
//! at an 8 KiB thread structure at the top of the thread's stack, `pthread_mutex_t` and `pthread_cond_t` are
//! recognised by their signature word (`PTHREAD_MUTEX_INITIALIZER`, or what `pthread_mutex_init` writes). What a
//! lock holds is kept here, keyed by its guest address. Thread attributes give the detach state and the stack
//! size; mutex attributes the type (normal, error-checking, recursive).

use std::collections::HashMap;
use std::time::Instant;

use mach_task::{ThreadState, VmProt};
use unicorn_engine::{Context, RegisterARM64};

use crate::machine::{self, Crash, Emu, ExitStatus, Stop, guest_read, guest_write};
use crate::shims::{Flow, ret_int, x};

/// Secondary threads' stacks, as macOS gives them by default.
pub const STACK_SIZE: u64 = 512 << 10;
/// `PTHREAD_STACK_MIN`; stack sizes are multiples of it (macOS wants whole pages).
const STACK_MIN: u64 = 16 << 10;
/// An unmapped gap below each stack catches an overflow.
const GUARD: u64 = 16 << 10;
/// At most this many threads exist at once (the main thread included).
pub const MAX_THREADS: usize = 256;
/// `sizeof(struct _opaque_pthread_t)` on arm64 Darwin: `__sig`, `__cleanup_stack`, `__opaque[8176]`.
pub const PTHREAD_SIZE: u64 = 8192;

/// Darwin's signature words.
pub(crate) const PTHREAD_SIG: u64 = 0x5448_5244; // "THRD"
const MUTEX_SIG_INIT: u64 = 0x32AA_ABA7; // PTHREAD_MUTEX_INITIALIZER
const MUTEX_SIG: u64 = 0x4D55_5458; // "MUTX"
const COND_SIG_INIT: u64 = 0x3CB0_B1BB; // PTHREAD_COND_INITIALIZER
const COND_SIG: u64 = 0x434F_4E44; // "COND"
const ATTR_SIG: u64 = 0x5448_4441; // "THDA"
const MUTEXATTR_SIG: u64 = 0x4D54_5841; // "MTXA"

/// `pthread_attr_t`'s fields, in its opaque part (only this library reads them).
const ATTR_DETACH: u64 = 8;
const ATTR_STACKSIZE: u64 = 16;
const PTHREAD_CREATE_JOINABLE: u32 = 1;
const PTHREAD_CREATE_DETACHED: u32 = 2;
/// `pthread_mutexattr_t`'s type field, and the types.
const MUTEXATTR_TYPE: u64 = 8;
const PTHREAD_MUTEX_NORMAL: u32 = 0;
const PTHREAD_MUTEX_ERRORCHECK: u32 = 1;
const PTHREAD_MUTEX_RECURSIVE: u32 = 2;

/// Darwin's errno values.
const EPERM: i64 = 1;
const ESRCH: i64 = 3;
const EDEADLK: i64 = 11;
const EBUSY: i64 = 16;
const EINVAL: i64 = 22;
const EAGAIN: i64 = 35;

/// What a blocked thread waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Nothing: it gave up the rest of its slice (`sched_yield`).
    Yield,
    /// The time (`usleep`, `nanosleep`).
    Sleep(Instant),
    /// The end of the thread with this `pthread_t`.
    Join(u64),
    /// The mutex at this address, which its holder hands over on unlock.
    Mutex(u64),
    /// A signal of the condition variable at this address.
    Cond(u64),
}

impl Wait {
    /// Whether the shim runs again when the thread wakes (its result is not known yet); otherwise the thread goes
    /// on after the call.
    pub fn retries(&self) -> bool {
        matches!(self, Wait::Join(_) | Wait::Mutex(_) | Wait::Cond(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Ready,
    /// `since` orders the waiters of one lock: the longest waiter gets it first.
    Waiting {
        wait: Wait,
        since: u64,
    },
    Exited {
        value: u64,
    },
}

/// A thread's saved CPU state (Unicorn's context is not `Debug`-friendly).
struct Saved(Context);

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Saved(..)")
    }
}

#[derive(Debug)]
struct GuestThread {
    /// Stable and never reused: the `ThreadState` id.
    id: u64,
    /// Its `pthread_t`.
    handle: u64,
    /// The CPU state while the thread is off the CPU. The current thread's is stale (its state is on the CPU) and
    /// only kept as the buffer the next switch saves into; `None` until the first switch.
    saved: Option<Saved>,
    run: Run,
    /// Its stack mapping, `(base, size)` (the main thread has the process's stack instead).
    stack: Option<(u64, u64)>,
    detached: bool,
    /// A mutex handed to it while it waited: the retried shim finds it already locked for it.
    granted: Option<u64>,
    /// Inside `pthread_cond_wait(cond, mutex)`, after releasing the mutex, and how many extra times it held that
    /// mutex (a recursive one), to hold it as often again on return.
    in_cond_wait: Option<(u64, u64)>,
    cond_depth: u32,
}

/// Every thread of the process and every lock's holder.
#[derive(Debug)]
pub struct Threads {
    list: Vec<GuestThread>,
    /// Index in `list` of the thread whose state is on the CPU.
    current: usize,
    next_id: u64,
    /// Orders waits.
    clock: u64,
    /// Where the next new stack goes, and where the stack area ends (the main thread's stack).
    stacks_next: u64,
    stacks_end: u64,
    /// Stacks of ended threads, `(base, size)`, for new threads that want that size.
    free: Vec<(u64, u64)>,
    /// Locked mutexes: address → holder's id.
    mutexes: HashMap<u64, u64>,
    /// How many more times than once a recursive mutex is held.
    depth: HashMap<u64, u32>,
    /// Mutexes initialised with a type other than the default.
    kinds: HashMap<u64, u32>,
    /// The current thread's slice is over: the next [`schedule`] picks another thread if one can run.
    rotate: bool,
    /// A debugger-style call runs (see [`machine::call`]): shims must not block or switch.
    pub calling: bool,
}

impl Threads {
    /// The main thread alone, with `main_handle` as its `pthread_t`; new threads' stacks go in `stacks`.
    pub fn new(main_handle: u64, stacks: std::ops::Range<u64>) -> Threads {
        let main = GuestThread {
            id: 1,
            handle: main_handle,
            saved: None,
            run: Run::Ready,
            stack: None,
            detached: false,
            granted: None,
            in_cond_wait: None,
            cond_depth: 0,
        };
        Threads {
            list: vec![main],
            current: 0,
            next_id: 2,
            clock: 0,
            stacks_next: stacks.start,
            stacks_end: stacks.end,
            free: Vec::new(),
            mutexes: HashMap::new(),
            depth: HashMap::new(),
            kinds: HashMap::new(),
            rotate: false,
            calling: false,
        }
    }

    fn current(&self) -> &GuestThread {
        &self.list[self.current]
    }

    fn current_mut(&mut self) -> &mut GuestThread {
        &mut self.list[self.current]
    }

    fn index_of(&self, handle: u64) -> Option<usize> {
        self.list.iter().position(|t| t.handle == handle)
    }

    /// The number of threads that have not ended.
    fn live(&self) -> usize {
        self.list.iter().filter(|t| !matches!(t.run, Run::Exited { .. })).count()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Whether the thread at `i` can run now.
    fn can_run(&self, i: usize, now: Instant) -> bool {
        match self.list[i].run {
            Run::Ready => true,
            Run::Waiting { wait: Wait::Yield, .. } => true,
            Run::Waiting { wait: Wait::Sleep(until), .. } => now >= until,
            Run::Waiting { wait: Wait::Join(handle), .. } => {
                self.index_of(handle).is_none_or(|t| matches!(self.list[t].run, Run::Exited { .. }))
            }
            // Woken explicitly, by an unlock or a signal.
            Run::Waiting { wait: Wait::Mutex(_) | Wait::Cond(_), .. } => false,
            Run::Exited { .. } => false,
        }
    }

    /// Releases the mutex at `addr`, handing it to its longest waiter if there is one.
    fn release(&mut self, addr: u64) {
        let next = self
            .list
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t.run {
                Run::Waiting { wait: Wait::Mutex(m), since } if m == addr => Some((since, i)),
                _ => None,
            })
            .min();
        match next {
            Some((_, i)) => {
                let t = &mut self.list[i];
                self.mutexes.insert(addr, t.id);
                t.granted = Some(addr);
                t.run = Run::Ready;
            }
            None => {
                self.mutexes.remove(&addr);
            }
        }
    }

    /// Wakes one waiter (`all == false`) or every waiter of the condition variable at `cond`: each then waits for
    /// its mutex, or takes it at once if it is free.
    fn wake(&mut self, cond: u64, all: bool) {
        let mut waiters: Vec<(u64, usize)> = self
            .list
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t.run {
                Run::Waiting { wait: Wait::Cond(c), since } if c == cond => Some((since, i)),
                _ => None,
            })
            .collect();
        waiters.sort_unstable();
        if !all {
            waiters.truncate(1);
        }
        for (_, i) in waiters {
            let Some((_, mutex)) = self.list[i].in_cond_wait else { continue };
            let since = self.tick();
            if self.mutexes.contains_key(&mutex) {
                self.list[i].run = Run::Waiting { wait: Wait::Mutex(mutex), since };
            } else {
                let id = self.list[i].id;
                self.mutexes.insert(mutex, id);
                self.list[i].granted = Some(mutex);
                self.list[i].run = Run::Ready;
            }
        }
    }
}

fn threads<'e>(emu: &'e Emu<'_>) -> &'e Threads {
    &emu.get_data().threads
}

fn threads_mut<'e>(emu: &'e mut Emu<'_>) -> &'e mut Threads {
    &mut emu.get_data_mut().threads
}

// ---- scheduling (emulator thread, between slices) ----

/// What the emulator thread does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Run a slice: the current thread can go on.
    Run,
    /// Every thread waits; the first sleeper wakes then.
    IdleUntil(Instant),
    /// Every thread waits for another one: the program is deadlocked and only a kill ends it, as on a real system.
    Idle,
}

/// Records how the last slice ended for the current thread. `Err` with the process's exit status when it ended:
/// `exit`, a crash in any thread, or the last thread's `pthread_exit`.
pub fn settle(emu: &mut Emu<'_>, stop: Option<Stop>) -> Result<(), ExitStatus> {
    let threads = threads_mut(emu);
    match stop {
        None => threads.rotate = true,
        Some(Stop::Dead(status)) => return Err(status),
        Some(Stop::Block(wait)) => {
            let since = threads.tick();
            threads.current_mut().run = Run::Waiting { wait, since };
            threads.rotate = true;
        }
        Some(Stop::ThreadExit(value)) => {
            // A detached thread is reaped once it is off the CPU (in `schedule`).
            threads.current_mut().run = Run::Exited { value };
            threads.rotate = true;
            if threads.live() == 0 {
                // The main thread called pthread_exit and the last other thread has now ended: exit(0).
                return Err(ExitStatus::Exited(0));
            }
        }
    }
    Ok(())
}

/// Picks the thread to run next, round-robin from the one after the current thread, and puts its state on the
/// CPU.
pub fn schedule(emu: &mut Emu<'_>, now: Instant) -> Schedule {
    let threads = threads(emu);
    let n = threads.list.len();
    let start = if threads.rotate { threads.current + 1 } else { threads.current };
    let Some(next) = (0..n).map(|k| (start + k) % n).find(|&i| threads.can_run(i, now)) else {
        let wake = threads
            .list
            .iter()
            .filter_map(|t| match t.run {
                Run::Waiting { wait: Wait::Sleep(until), .. } => Some(until),
                _ => None,
            })
            .min();
        return wake.map_or(Schedule::Idle, Schedule::IdleUntil);
    };
    let threads = threads_mut(emu);
    threads.rotate = false;
    threads.list[next].run = Run::Ready;
    if next != threads.current {
        switch_to(emu, next);
    }
    let threads = threads_mut(emu);
    while let Some(i) = (0..threads.list.len()).find(|&i| {
        i != threads.current && threads.list[i].detached && matches!(threads.list[i].run, Run::Exited { .. })
    }) {
        reap(threads, i);
    }
    Schedule::Run
}

/// Saves the CPU state into the current thread and loads `next`'s.
fn switch_to(emu: &mut Emu<'_>, next: usize) {
    let current = threads(emu).current;
    let mut saved = match threads_mut(emu).list[current].saved.take() {
        Some(saved) => saved,
        None => match emu.context_alloc() {
            Ok(context) => Saved(context),
            Err(e) => panic!("darwin-sim: no memory for a thread's CPU state: {e:?}"),
        },
    };
    if let Err(e) = emu.context_save(&mut saved.0) {
        panic!("darwin-sim: saving thread {current}'s CPU state failed: {e:?}");
    }
    let incoming = threads_mut(emu).list[next].saved.take().expect("a thread off the CPU has a saved state");
    if let Err(e) = emu.context_restore(&incoming.0) {
        panic!("darwin-sim: restoring a thread's CPU state failed: {e:?}");
    }
    let threads = threads_mut(emu);
    threads.list[current].saved = Some(saved);
    // The incoming context is kept for reuse by the next switch away from this thread.
    threads.list[next].saved = Some(incoming);
    threads.current = next;
    let id = threads.list[next].id;
    if emu.get_data().trace {
        eprintln!("[darwin-sim] switch to thread {id}");
    }
}

/// Every live thread's registers: the current one's from the CPU, the others' from their saved state.
pub fn states(emu: &Emu<'_>) -> Vec<ThreadState> {
    let threads = threads(emu);
    threads
        .list
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.run, Run::Exited { .. }))
        .map(|(i, t)| {
            let read = |reg: RegisterARM64| -> u64 {
                if i == threads.current {
                    emu.reg_read(reg).unwrap_or(0)
                } else {
                    t.saved.as_ref().and_then(|s| s.0.reg_read(reg).ok()).unwrap_or(0)
                }
            };
            ThreadState {
                id: t.id,
                pc: read(RegisterARM64::PC),
                lr: read(RegisterARM64::X30),
                sp: read(RegisterARM64::SP),
                fp: read(RegisterARM64::X29),
                x16: read(RegisterARM64::X16),
            }
        })
        .collect()
}

/// Removes an ended thread; its stack becomes free for a new thread.
fn reap(threads: &mut Threads, index: usize) {
    let thread = threads.list.remove(index);
    if let Some(stack) = thread.stack {
        threads.free.push(stack);
    }
    if index < threads.current {
        threads.current -= 1;
    }
}

// ---- shims ----

fn read_u64(emu: &Emu<'_>, addr: u64) -> Result<u64, Crash> {
    let bytes = guest_read(emu, addr, 8)?;
    Ok(u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
}

fn read_u32(emu: &Emu<'_>, addr: u64) -> Result<u32, Crash> {
    let bytes = guest_read(emu, addr, 4)?;
    Ok(u32::from_le_bytes(bytes.try_into().unwrap_or([0; 4])))
}

fn block(emu: &Emu<'_>, wait: Wait) -> Result<Flow, Crash> {
    if threads(emu).calling {
        return Err(Crash::abort(format!(
            "a function called from outside would block ({wait:?}) while the program is stopped"
        )));
    }
    Ok(Flow::Block(wait))
}

/// `int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg)`
pub fn pthread_create(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (out, attr, start, arg) = (x(emu, 0), x(emu, 1), x(emu, 2), x(emu, 3));
    let (detached, size) = if attr == 0 {
        (false, STACK_SIZE)
    } else {
        if read_u64(emu, attr)? != ATTR_SIG {
            return ret_int(emu, EINVAL);
        }
        (read_u32(emu, attr + ATTR_DETACH)? == PTHREAD_CREATE_DETACHED, read_u64(emu, attr + ATTR_STACKSIZE)?)
    };
    if threads(emu).list.len() >= MAX_THREADS {
        return ret_int(emu, EAGAIN);
    }
    let stack = match threads(emu).free.iter().position(|&(_, s)| s == size) {
        Some(i) => threads_mut(emu).free.swap_remove(i),
        None => {
            let base = threads(emu).stacks_next + GUARD;
            if base + size > threads(emu).stacks_end {
                return ret_int(emu, EAGAIN);
            }
            machine::map(emu, base, size, VmProt::RW, VmProt::all() - VmProt::COPY, "thread stack", 0)
                .map_err(|e| Crash::abort(format!("pthread_create: mapping a stack: {e}")))?;
            threads_mut(emu).stacks_next = base + size;
            (base, size)
        }
    };
    let handle = stack.0 + stack.1 - PTHREAD_SIZE;
    let mut header = PTHREAD_SIG.to_le_bytes().to_vec();
    header.resize(PTHREAD_SIZE as usize, 0);
    guest_write(emu, handle, &header)?;
    if let Err(crash) = guest_write(emu, out, &handle.to_le_bytes()) {
        threads_mut(emu).free.push(stack);
        return Err(crash);
    }
    let mut context = emu.context_init().map_err(|e| Crash::abort(format!("pthread_create: {e:?}")))?;
    let thread_return = emu.get_data().libsystem.thread_return_trampoline();
    for (reg, value) in [
        (RegisterARM64::PC, start),
        (RegisterARM64::X0, arg),
        (RegisterARM64::SP, handle),
        (RegisterARM64::X29, 0),
        (RegisterARM64::X30, thread_return),
    ] {
        context.reg_write(reg, value).map_err(|e| Crash::abort(format!("pthread_create: {e:?}")))?;
    }
    let threads = threads_mut(emu);
    let id = threads.next_id;
    threads.next_id += 1;
    threads.list.push(GuestThread {
        id,
        handle,
        saved: Some(Saved(context)),
        run: Run::Ready,
        stack: Some(stack),
        detached,
        granted: None,
        in_cond_wait: None,
        cond_depth: 0,
    });
    if emu.get_data().trace {
        eprintln!("[darwin-sim] thread {id} created at {start:#x}");
    }
    ret_int(emu, 0)
}

/// `int pthread_attr_init(pthread_attr_t *attr)`: joinable, a 512 KiB stack.
pub fn pthread_attr_init(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let attr = x(emu, 0);
    let mut bytes = vec![0u8; 64];
    bytes[..8].copy_from_slice(&ATTR_SIG.to_le_bytes());
    bytes[ATTR_DETACH as usize..][..4].copy_from_slice(&PTHREAD_CREATE_JOINABLE.to_le_bytes());
    bytes[ATTR_STACKSIZE as usize..][..8].copy_from_slice(&STACK_SIZE.to_le_bytes());
    guest_write(emu, attr, &bytes)?;
    ret_int(emu, 0)
}

/// `int pthread_attr_destroy(pthread_attr_t *attr)`
pub fn pthread_attr_destroy(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    attr_destroy(emu, ATTR_SIG)
}

/// `int pthread_attr_setdetachstate(pthread_attr_t *attr, int state)`
pub fn pthread_attr_setdetachstate(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let known =
        |state| state == u64::from(PTHREAD_CREATE_JOINABLE) || state == u64::from(PTHREAD_CREATE_DETACHED);
    attr_set(emu, ATTR_SIG, ATTR_DETACH, 4, known)
}

/// `int pthread_attr_getdetachstate(const pthread_attr_t *attr, int *state)`
pub fn pthread_attr_getdetachstate(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    attr_get(emu, ATTR_SIG, ATTR_DETACH, 4)
}

/// `int pthread_attr_setstacksize(pthread_attr_t *attr, size_t size)`: at least `PTHREAD_STACK_MIN` and a whole
/// number of pages, as macOS requires.
pub fn pthread_attr_setstacksize(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    attr_set(emu, ATTR_SIG, ATTR_STACKSIZE, 8, |size| size >= STACK_MIN && size.is_multiple_of(STACK_MIN))
}

/// `int pthread_attr_getstacksize(const pthread_attr_t *attr, size_t *size)`
pub fn pthread_attr_getstacksize(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    attr_get(emu, ATTR_SIG, ATTR_STACKSIZE, 8)
}

/// Clears the signature of the attributes object at `x0` (`EINVAL` unless it carries `sig`).
fn attr_destroy(emu: &mut Emu<'_>, sig: u64) -> Result<Flow, Crash> {
    let attr = x(emu, 0);
    if read_u64(emu, attr)? != sig {
        return ret_int(emu, EINVAL);
    }
    guest_write(emu, attr, &0u64.to_le_bytes())?;
    ret_int(emu, 0)
}

/// Stores `x1` (its low `len` bytes: an `int` argument's upper half is undefined) in the field at `offset` of the
/// attributes object at `x0`; `EINVAL` unless the object carries `sig` and `valid` accepts the value.
fn attr_set(
    emu: &mut Emu<'_>,
    sig: u64,
    offset: u64,
    len: usize,
    valid: impl Fn(u64) -> bool,
) -> Result<Flow, Crash> {
    let (attr, value) = (x(emu, 0), x(emu, 1));
    let value = if len < 8 { value & ((1 << (8 * len)) - 1) } else { value };
    if read_u64(emu, attr)? != sig || !valid(value) {
        return ret_int(emu, EINVAL);
    }
    guest_write(emu, attr + offset, &value.to_le_bytes()[..len])?;
    ret_int(emu, 0)
}

/// Copies the `len`-byte field at `offset` of the attributes object at `x0` to `*x1`; `EINVAL` unless the object
/// carries `sig`.
fn attr_get(emu: &mut Emu<'_>, sig: u64, offset: u64, len: usize) -> Result<Flow, Crash> {
    let (attr, out) = (x(emu, 0), x(emu, 1));
    if read_u64(emu, attr)? != sig {
        return ret_int(emu, EINVAL);
    }
    let field = guest_read(emu, attr + offset, len)?;
    guest_write(emu, out, &field)?;
    ret_int(emu, 0)
}

/// `int pthread_join(pthread_t thread, void **value)`
pub fn pthread_join(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (handle, out) = (x(emu, 0), x(emu, 1));
    let threads = threads(emu);
    if handle == threads.current().handle {
        return ret_int(emu, EDEADLK);
    }
    let Some(index) = threads.index_of(handle) else { return ret_int(emu, ESRCH) };
    if threads.list[index].detached {
        return ret_int(emu, EINVAL);
    }
    let Run::Exited { value } = threads.list[index].run else { return block(emu, Wait::Join(handle)) };
    if out != 0 {
        guest_write(emu, out, &value.to_le_bytes())?;
    }
    reap(threads_mut(emu), index);
    ret_int(emu, 0)
}

/// `void pthread_exit(void *value)`, and where a thread's start routine returns to.
pub fn pthread_exit(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    if threads(emu).calling {
        return Err(Crash::abort("a function called from outside called pthread_exit"));
    }
    Ok(Flow::Stop(Stop::ThreadExit(x(emu, 0))))
}

/// `int pthread_detach(pthread_t thread)`
pub fn pthread_detach(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let handle = x(emu, 0);
    let threads = threads_mut(emu);
    let Some(index) = threads.index_of(handle) else { return ret_int(emu, ESRCH) };
    if threads.list[index].detached {
        return ret_int(emu, EINVAL);
    }
    threads.list[index].detached = true;
    if matches!(threads.list[index].run, Run::Exited { .. }) {
        reap(threads, index);
    }
    ret_int(emu, 0)
}

/// `pthread_t pthread_self(void)`
pub fn pthread_self(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let handle = threads(emu).current().handle;
    ret_int(emu, handle as i64)
}

/// `int pthread_equal(pthread_t a, pthread_t b)`
pub fn pthread_equal(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let equal = x(emu, 0) == x(emu, 1);
    ret_int(emu, i64::from(equal))
}

/// `int sched_yield(void)`
pub fn sched_yield(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    ret_int(emu, 0)?;
    if threads(emu).calling {
        return Ok(Flow::Return);
    }
    Ok(Flow::Block(Wait::Yield))
}

/// The signature word of a lock, which must be `initializer` or `initialized`; `Ok(false)` otherwise (`EINVAL`).
fn signed(emu: &Emu<'_>, addr: u64, initializer: u64, initialized: u64) -> Result<bool, Crash> {
    let sig = read_u64(emu, addr)?;
    Ok(sig == initializer || sig == initialized)
}

/// `int pthread_mutex_init(pthread_mutex_t *mutex, const pthread_mutexattr_t *attr)`
pub fn pthread_mutex_init(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (mutex, attr) = (x(emu, 0), x(emu, 1));
    let kind = if attr == 0 {
        PTHREAD_MUTEX_NORMAL
    } else if read_u64(emu, attr)? == MUTEXATTR_SIG {
        read_u32(emu, attr + MUTEXATTR_TYPE)?
    } else {
        return ret_int(emu, EINVAL);
    };
    guest_write(emu, mutex, &MUTEX_SIG.to_le_bytes())?;
    let threads = threads_mut(emu);
    threads.mutexes.remove(&mutex);
    threads.depth.remove(&mutex);
    threads.kinds.insert(mutex, kind);
    ret_int(emu, 0)
}

/// `int pthread_mutexattr_init(pthread_mutexattr_t *attr)`: the default type.
pub fn pthread_mutexattr_init(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let attr = x(emu, 0);
    let mut bytes = MUTEXATTR_SIG.to_le_bytes().to_vec();
    bytes.extend_from_slice(&u64::from(PTHREAD_MUTEX_NORMAL).to_le_bytes());
    guest_write(emu, attr, &bytes)?;
    ret_int(emu, 0)
}

/// `int pthread_mutexattr_destroy(pthread_mutexattr_t *attr)`
pub fn pthread_mutexattr_destroy(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    attr_destroy(emu, MUTEXATTR_SIG)
}

/// `int pthread_mutexattr_settype(pthread_mutexattr_t *attr, int type)`: normal, error-checking or recursive.
pub fn pthread_mutexattr_settype(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let known = |kind| {
        [PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_RECURSIVE]
            .map(u64::from)
            .contains(&kind)
    };
    attr_set(emu, MUTEXATTR_SIG, MUTEXATTR_TYPE, 4, known)
}

/// `int pthread_mutexattr_gettype(const pthread_mutexattr_t *attr, int *type)`
pub fn pthread_mutexattr_gettype(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    attr_get(emu, MUTEXATTR_SIG, MUTEXATTR_TYPE, 4)
}

/// Whether the mutex at `addr` was initialised as recursive.
fn recursive(emu: &Emu<'_>, mutex: u64) -> bool {
    threads(emu).kinds.get(&mutex) == Some(&PTHREAD_MUTEX_RECURSIVE)
}

/// `int pthread_mutex_destroy(pthread_mutex_t *mutex)`
pub fn pthread_mutex_destroy(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let mutex = x(emu, 0);
    if !signed(emu, mutex, MUTEX_SIG_INIT, MUTEX_SIG)? {
        return ret_int(emu, EINVAL);
    }
    if threads(emu).mutexes.contains_key(&mutex) {
        return ret_int(emu, EBUSY);
    }
    guest_write(emu, mutex, &0u64.to_le_bytes())?;
    threads_mut(emu).kinds.remove(&mutex);
    ret_int(emu, 0)
}

/// `int pthread_mutex_lock(pthread_mutex_t *mutex)`: waits while another thread holds it. Relocking a mutex the
/// thread holds counts once more for a recursive mutex and is `EDEADLK` for the others (as for an
/// error-checking mutex, where a normal one would hang).
pub fn pthread_mutex_lock(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let mutex = x(emu, 0);
    if threads(emu).current().granted == Some(mutex) {
        threads_mut(emu).current_mut().granted = None;
        return ret_int(emu, 0);
    }
    if !signed(emu, mutex, MUTEX_SIG_INIT, MUTEX_SIG)? {
        return ret_int(emu, EINVAL);
    }
    let me = threads(emu).current().id;
    match threads(emu).mutexes.get(&mutex) {
        None => {
            threads_mut(emu).mutexes.insert(mutex, me);
            ret_int(emu, 0)
        }
        Some(&holder) if holder == me && recursive(emu, mutex) => {
            *threads_mut(emu).depth.entry(mutex).or_default() += 1;
            ret_int(emu, 0)
        }
        Some(&holder) if holder == me => ret_int(emu, EDEADLK),
        Some(_) => block(emu, Wait::Mutex(mutex)),
    }
}

/// `int pthread_mutex_trylock(pthread_mutex_t *mutex)`
pub fn pthread_mutex_trylock(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let mutex = x(emu, 0);
    if !signed(emu, mutex, MUTEX_SIG_INIT, MUTEX_SIG)? {
        return ret_int(emu, EINVAL);
    }
    let me = threads(emu).current().id;
    match threads(emu).mutexes.get(&mutex) {
        None => {
            threads_mut(emu).mutexes.insert(mutex, me);
            ret_int(emu, 0)
        }
        Some(&holder) if holder == me && recursive(emu, mutex) => {
            *threads_mut(emu).depth.entry(mutex).or_default() += 1;
            ret_int(emu, 0)
        }
        Some(_) => ret_int(emu, EBUSY),
    }
}

/// `int pthread_mutex_unlock(pthread_mutex_t *mutex)`: `EPERM` unless the thread holds it.
pub fn pthread_mutex_unlock(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let mutex = x(emu, 0);
    if !signed(emu, mutex, MUTEX_SIG_INIT, MUTEX_SIG)? {
        return ret_int(emu, EINVAL);
    }
    let me = threads(emu).current().id;
    if threads(emu).mutexes.get(&mutex) != Some(&me) {
        return ret_int(emu, EPERM);
    }
    let threads = threads_mut(emu);
    match threads.depth.get_mut(&mutex) {
        Some(depth) if *depth > 0 => *depth -= 1,
        _ => threads.release(mutex),
    }
    ret_int(emu, 0)
}

/// `int pthread_cond_init(pthread_cond_t *cond, const pthread_condattr_t *attr)`
pub fn pthread_cond_init(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (cond, attr) = (x(emu, 0), x(emu, 1));
    if attr != 0 {
        return ret_int(emu, EINVAL);
    }
    guest_write(emu, cond, &COND_SIG.to_le_bytes())?;
    ret_int(emu, 0)
}

/// `int pthread_cond_destroy(pthread_cond_t *cond)`: `EBUSY` while a thread waits on it.
pub fn pthread_cond_destroy(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let cond = x(emu, 0);
    if !signed(emu, cond, COND_SIG_INIT, COND_SIG)? {
        return ret_int(emu, EINVAL);
    }
    let waited = threads(emu).list.iter().any(|t| t.in_cond_wait.is_some_and(|(c, _)| c == cond));
    if waited {
        return ret_int(emu, EBUSY);
    }
    guest_write(emu, cond, &0u64.to_le_bytes())?;
    ret_int(emu, 0)
}

/// `int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex)`: releases the mutex, waits for a
/// signal, and returns holding the mutex again. Runs twice: once to start waiting, once (retried) to return.
pub fn pthread_cond_wait(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    let (cond, mutex) = (x(emu, 0), x(emu, 1));
    if threads(emu).current().in_cond_wait == Some((cond, mutex)) {
        // Signalled; the mutex was handed over (or taken at the signal).
        let threads = threads_mut(emu);
        let me = threads.current_mut();
        if me.granted == Some(mutex) {
            me.granted = None;
            me.in_cond_wait = None;
            let depth = std::mem::take(&mut me.cond_depth);
            if depth > 0 {
                threads.depth.insert(mutex, depth);
            }
            return ret_int(emu, 0);
        }
        return block(emu, Wait::Mutex(mutex));
    }
    if !signed(emu, cond, COND_SIG_INIT, COND_SIG)? || !signed(emu, mutex, MUTEX_SIG_INIT, MUTEX_SIG)? {
        return ret_int(emu, EINVAL);
    }
    let me = threads(emu).current().id;
    if threads(emu).mutexes.get(&mutex) != Some(&me) {
        return ret_int(emu, EPERM);
    }
    let flow = block(emu, Wait::Cond(cond))?;
    let threads = threads_mut(emu);
    // A recursive mutex is released however often it is held, and held as often again on return.
    let depth = threads.depth.remove(&mutex).unwrap_or(0);
    threads.release(mutex);
    let me = threads.current_mut();
    me.in_cond_wait = Some((cond, mutex));
    me.cond_depth = depth;
    Ok(flow)
}

/// `int pthread_cond_signal(pthread_cond_t *cond)`
pub fn pthread_cond_signal(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    signal(emu, false)
}

/// `int pthread_cond_broadcast(pthread_cond_t *cond)`
pub fn pthread_cond_broadcast(emu: &mut Emu<'_>) -> Result<Flow, Crash> {
    signal(emu, true)
}

fn signal(emu: &mut Emu<'_>, all: bool) -> Result<Flow, Crash> {
    let cond = x(emu, 0);
    if !signed(emu, cond, COND_SIG_INIT, COND_SIG)? {
        return ret_int(emu, EINVAL);
    }
    threads_mut(emu).wake(cond, all);
    ret_int(emu, 0)
}
