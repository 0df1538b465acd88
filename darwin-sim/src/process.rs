//! A simulated process: the emulator on its own thread, advancing in slices only while the process is started
//! and not suspended, and serving requests (memory, protections, threads, suspend/resume) between slices.
//!
//! Unicorn's handle is not `Send`, so it is created on that thread and never leaves it; [`Process`] is the
//! `Send + Sync` handle the rest of the world holds. When the guest ends, the thread records how and exits, so
//! every later request fails with [`TaskError::Dead`], as calls on a dead task's port do.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mach_task::{KernError, Region, TaskError, ThreadState, VmProt};

use crate::error::SimError;
use crate::loader::Image;
use crate::machine::{self, Emu, ExitStatus, Launch, LaunchConfig, SIGKILL, Slice};
use crate::output::{Output, Sink, Stream};
use crate::threads::{self, Schedule};

/// Basic blocks per slice: about a millisecond of guest time in a debug build (some 6 million blocks a second). A
/// request does not wait for the end of a slice (sending it interrupts the slice at the next basic block); this is
/// the time slice of the guest's threads: each runs this long before the next one that can run takes the CPU.
const SLICE_BLOCKS: u64 = 5_000;

/// How to launch and run a program.
#[derive(Clone)]
pub struct RunOptions {
    /// Load at a random 16 KiB-aligned slide (default) or at the link address.
    pub aslr: bool,
    /// Print every basic block and libSystem call to the host's stderr.
    pub trace: bool,
    /// Pass the guest's stdout and stderr through to the host's as they are written (they are collected anyway).
    pub echo: bool,
    /// Kill the program (SIGKILL) if it runs longer than this ([`run_exe`] only).
    pub timeout: Option<Duration>,
    /// `envp`, as `NAME=value` strings.
    pub env: Vec<String>,
    /// Called with every write to stdout or stderr as it happens (after `echo`, if both are set).
    pub on_output: Option<Sink>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { aslr: true, trace: false, echo: false, timeout: None, env: Vec::new(), on_output: None }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("aslr", &self.aslr)
            .field("trace", &self.trace)
            .field("echo", &self.echo)
            .field("timeout", &self.timeout)
            .field("env", &self.env)
            .field("on_output", &self.on_output.is_some())
            .finish()
    }
}

/// What a finished run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
    /// The ASLR slide the program ran at.
    pub slide: u64,
}

impl Outcome {
    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `exe` with `args` to completion: launch, start, wait, and collect its output.
pub fn run_exe(exe: &Path, args: &[&str], options: &RunOptions) -> Result<Outcome, SimError> {
    let process = Process::spawn(exe, args, options)?;
    process.start().map_err(|e| SimError::Thread(e.to_string()))?;
    let status = match options.timeout {
        None => process.wait(),
        Some(limit) => match process.wait_timeout(limit) {
            Some(status) => status,
            None => {
                process.kill();
                let _ = process.wait();
                ExitStatus::Signaled { signal: SIGKILL, reason: format!("timed out after {limit:?}") }
            }
        },
    };
    Ok(Outcome {
        stdout: process.output().contents(Stream::Stdout),
        stderr: process.output().contents(Stream::Stderr),
        status,
        slide: process.slide(),
    })
}

type Reply<T> = Sender<Result<T, TaskError>>;

/// A request to the emulator thread.
#[derive(Debug)]
enum Request {
    Read(u64, usize, Reply<Vec<u8>>),
    Write(u64, Vec<u8>, Reply<()>),
    Protect(u64, u64, VmProt, Reply<()>),
    Region(u64, Reply<Option<Region>>),
    Suspend(Reply<()>),
    Resume(Reply<()>),
    Threads(Reply<Vec<ThreadState>>),
    Flush(u64, u64, Reply<()>),
    Start(Reply<()>),
    Call(u64, Vec<u64>, Reply<u64>),
    Kill,
}

#[derive(Debug)]
struct Shared {
    status: Mutex<Option<ExitStatus>>,
    ended: Condvar,
}

/// A running (or finished) simulated program.
#[derive(Debug)]
pub struct Process {
    pid: u32,
    requests: Mutex<Sender<Request>>,
    /// Ends the running slice early when a request is sent (see `Guest::interrupt`).
    interrupt: Arc<AtomicBool>,
    shared: Arc<Shared>,
    output: Arc<Output>,
    launch: Launch,
    thread: Option<JoinHandle<()>>,
}

static NEXT_PID: AtomicU32 = AtomicU32::new(40_000);

impl Process {
    /// Loads `exe` and stops at its entry point, like `posix_spawn` with `POSIX_SPAWN_START_SUSPENDED`:
    /// nothing runs until [`Process::start`]. Fails like dyld when an import cannot be bound.
    pub fn spawn(exe: &Path, args: &[&str], options: &RunOptions) -> Result<Process, SimError> {
        let image = Image::open(exe)?;
        let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
        let sink: Option<Sink> = match (options.echo, options.on_output.clone()) {
            (false, callback) => callback,
            (true, None) => Some(Arc::new(echo)),
            (true, Some(callback)) => Some(Arc::new(move |stream: Stream, bytes: &[u8]| {
                echo(stream, bytes);
                callback(stream, bytes);
            })),
        };
        let output = Arc::new(Output::new(sink));
        let shared = Arc::new(Shared { status: Mutex::new(None), ended: Condvar::new() });
        let config = LaunchConfig {
            aslr: options.aslr,
            trace: options.trace,
            pid,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: options.env.clone(),
        };
        let (requests, inbox) = channel();
        let (launched_tx, launched) = channel();
        let (thread_output, thread_shared) = (Arc::clone(&output), Arc::clone(&shared));
        let interrupt = Arc::new(AtomicBool::new(false));
        let thread_interrupt = Arc::clone(&interrupt);
        let thread = std::thread::Builder::new()
            .name(format!("darwin-sim pid {pid}"))
            .stack_size(16 << 20)
            .spawn(move || {
                match machine::launch(&image, &config, Arc::clone(&thread_output), thread_interrupt) {
                    Ok((emu, launch)) => {
                        let _ = launched_tx.send(Ok(launch));
                        serve(emu, &inbox, &thread_shared, &thread_output);
                    }
                    Err(e) => {
                        let _ = launched_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| SimError::Thread(format!("could not be started: {e}")))?;
        let launch = match launched.recv() {
            Ok(result) => result?,
            Err(_) => return Err(SimError::Thread("died while loading the program".into())),
        };
        Ok(Process {
            pid,
            requests: Mutex::new(requests),
            interrupt,
            shared,
            output,
            launch,
            thread: Some(thread),
        })
    }

    /// Lets the program run (the `SIGCONT` that releases a spawn-suspended child).
    pub fn start(&self) -> Result<(), TaskError> {
        self.call(Request::Start)
    }

    /// The simulated process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The ASLR slide (0 with ASLR off).
    pub fn slide(&self) -> u64 {
        self.launch.slide
    }

    /// The runtime address of the executable's Mach header.
    pub fn image_base(&self) -> u64 {
        self.launch.base
    }

    /// Where a libSystem symbol (Mach-O name, e.g. `_printf`) lives in this process, for binding imports that
    /// first appear after launch. `None` for symbols the simulator does not provide.
    pub fn libsystem_address(&self, symbol: &str) -> Option<u64> {
        self.launch.libsystem.address(symbol)
    }

    /// The program's stdout and stderr so far.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// How the process ended, if it has.
    pub fn status(&self) -> Option<ExitStatus> {
        self.shared.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for the process to end.
    pub fn wait(&self) -> ExitStatus {
        let mut status = self.shared.status.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = status.as_ref() {
                return s.clone();
            }
            status = self.shared.ended.wait(status).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits up to `limit` for the process to end.
    pub fn wait_timeout(&self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let mut status = self.shared.status.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = status.as_ref() {
                return Some(s.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            status =
                self.shared.ended.wait_timeout(status, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Kills the process (SIGKILL). Does nothing if it already ended.
    pub fn kill(&self) {
        let _ = self.requests.lock().unwrap_or_else(|p| p.into_inner()).send(Request::Kill);
    }

    fn dead(&self) -> TaskError {
        let status = self.wait_timeout(Duration::from_secs(5));
        TaskError::Dead {
            pid: self.pid,
            status: status.map_or_else(|| "the emulator thread stopped".to_string(), |s| s.to_string()),
        }
    }

    /// Sends a request and waits for its answer; a process that has ended answers [`TaskError::Dead`].
    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, TaskError> {
        let (reply, answer) = channel();
        let sent = self.requests.lock().unwrap_or_else(|p| p.into_inner()).send(make(reply));
        self.interrupt.store(true, Ordering::Relaxed);
        if sent.is_err() {
            return Err(self.dead());
        }
        answer.recv().unwrap_or_else(|_| Err(self.dead()))
    }

    /// Calls the guest function at `addr` (a runtime address) with up to eight integer arguments and returns its
    /// `x0`, as a debugger's expression evaluator does. The program must be suspended or not yet started; its
    /// thread resumes afterwards as if nothing happened (see [`machine::call`] for what is restored).
    pub fn call_function(&self, addr: u64, args: &[u64]) -> Result<u64, TaskError> {
        self.call(|r| Request::Call(addr, args.to_vec(), r))
    }

    pub(crate) fn read_raw(&self, addr: u64, len: usize) -> Result<Vec<u8>, TaskError> {
        self.call(|r| Request::Read(addr, len, r))
    }

    pub(crate) fn write_raw_bytes(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        self.call(|r| Request::Write(addr, bytes.to_vec(), r))
    }

    pub(crate) fn protect_raw(&self, addr: u64, len: u64, prot: VmProt) -> Result<(), TaskError> {
        self.call(|r| Request::Protect(addr, len, prot, r))
    }

    pub(crate) fn region_raw(&self, addr: u64) -> Result<Option<Region>, TaskError> {
        self.call(|r| Request::Region(addr, r))
    }

    pub(crate) fn suspend_request(&self) -> Result<(), TaskError> {
        self.call(Request::Suspend)
    }

    pub(crate) fn resume_request(&self) -> Result<(), TaskError> {
        self.call(Request::Resume)
    }

    pub(crate) fn threads_raw(&self) -> Result<Vec<ThreadState>, TaskError> {
        self.call(Request::Threads)
    }

    pub(crate) fn flush_raw(&self, addr: u64, len: u64) -> Result<(), TaskError> {
        self.call(|r| Request::Flush(addr, len, r))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn echo(stream: Stream, bytes: &[u8]) {
    use std::io::Write;
    let _ = match stream {
        Stream::Stdout => std::io::stdout().lock().write_all(bytes).and_then(|()| std::io::stdout().flush()),
        Stream::Stderr => std::io::stderr().lock().write_all(bytes),
    };
}

/// The run state the emulator thread keeps between requests.
#[derive(Debug)]
struct RunState {
    /// The spawn hold, released by `Start`.
    held: bool,
    suspend_count: u32,
}

/// The emulator thread: alternate between serving requests and running slices of the guest's threads until the
/// guest ends or every handle is gone.
fn serve(mut emu: Emu<'static>, inbox: &Receiver<Request>, shared: &Shared, output: &Output) {
    let mut state = RunState { held: true, suspend_count: 0 };
    let status = loop {
        let runnable = !state.held && state.suspend_count == 0;
        let schedule = if runnable { threads::schedule(&mut emu, Instant::now()) } else { Schedule::Idle };
        let next = match schedule {
            Schedule::Run => match inbox.try_recv() {
                Ok(request) => Ok(request),
                Err(TryRecvError::Empty) => {
                    let stop = match machine::run_slice(&mut emu, SLICE_BLOCKS) {
                        Slice::Ran if emu.get_data().interrupt.swap(false, Ordering::Relaxed) => {
                            // Cut short for a request: the thread keeps the CPU once it is served.
                            continue;
                        }
                        Slice::Ran => None,
                        Slice::Stopped(stop) => Some(stop),
                    };
                    if let Err(status) = threads::settle(&mut emu, stop) {
                        break status;
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => Err(()),
            },
            Schedule::IdleUntil(until) => {
                match inbox.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(request) => Ok(request),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                }
            }
            // Suspended, held, or every thread waits for another: only a request changes anything.
            Schedule::Idle => inbox.recv().map_err(|_| ()),
        };
        match next {
            Ok(Request::Kill) => {
                break ExitStatus::Signaled { signal: SIGKILL, reason: "killed".into() };
            }
            Ok(request) => handle(&mut emu, &mut state, request),
            Err(()) => {
                break ExitStatus::Signaled { signal: SIGKILL, reason: "every handle was dropped".into() };
            }
        }
    };
    *shared.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    shared.ended.notify_all();
    output.notify();
}

fn handle(emu: &mut Emu<'_>, state: &mut RunState, request: Request) {
    match request {
        Request::Read(addr, len, reply) => {
            let result = emu
                .get_data()
                .vm
                .check_access("mach_vm_read_overwrite", addr, len as u64, VmProt::READ)
                .and_then(|()| {
                    emu.mem_read_as_vec(addr, len)
                        .map_err(|_| kern("mach_vm_read_overwrite", addr, KernError::INVALID_ADDRESS))
                });
            let _ = reply.send(result);
        }
        Request::Write(addr, bytes, reply) => {
            let result = emu
                .get_data()
                .vm
                .check_access("mach_vm_write", addr, bytes.len() as u64, VmProt::WRITE)
                .and_then(|()| {
                    emu.mem_write(addr, &bytes)
                        .map_err(|_| kern("mach_vm_write", addr, KernError::INVALID_ADDRESS))
                });
            let _ = reply.send(result);
        }
        Request::Protect(addr, len, prot, reply) => {
            let result = emu
                .get_data_mut()
                .vm
                .protect(addr, len, prot)
                .and_then(|(start, end)| machine::mirror_protections(emu, start, end));
            let _ = reply.send(result);
        }
        Request::Region(addr, reply) => {
            let _ = reply.send(Ok(emu.get_data().vm.region(addr)));
        }
        Request::Suspend(reply) => {
            state.suspend_count += 1;
            let _ = reply.send(Ok(()));
        }
        Request::Resume(reply) => {
            let result = if state.suspend_count == 0 {
                Err(TaskError::Kern { op: "task_resume", addr: None, code: KernError::FAILURE })
            } else {
                state.suspend_count -= 1;
                Ok(())
            };
            let _ = reply.send(result);
        }
        Request::Threads(reply) => {
            let _ = reply.send(Ok(threads::states(emu)));
        }
        Request::Flush(addr, len, reply) => {
            let result = machine::flush_icache(emu, addr, len);
            let _ = reply.send(result);
        }
        Request::Start(reply) => {
            state.held = false;
            let _ = reply.send(Ok(()));
        }
        Request::Call(addr, args, reply) => {
            let result = if state.held || state.suspend_count > 0 {
                machine::call(emu, addr, &args)
            } else {
                Err(TaskError::Os {
                    op: "call a guest function",
                    source: std::io::Error::other("the program must be suspended (or not yet started) first"),
                })
            };
            let _ = reply.send(result);
        }
        Request::Kill => {}
    }
}

fn kern(op: &'static str, addr: u64, code: KernError) -> TaskError {
    TaskError::Kern { op, addr: Some(addr), code }
}
