//! Starting a program stopped before its first instruction, taking its task port, and letting it go.
//!
//! [`Spawn`] describes the program (path, arguments, environment, output, ASLR, debugged mode); [`Child`] is
//! the started process with its [`MachTask`]. The recipe is `reference/macos-task-port.md` §2.1–2.5 and §4.3:
//!
//! - `posix_spawn` with `POSIX_SPAWN_START_SUSPENDED | SETSIGDEF | SETSIGMASK` (plus the private
//!   `_POSIX_SPAWN_DISABLE_ASLR` when asked): the kernel suspends the task before the first user instruction,
//!   the only thread sits at `_dyld_start`, and the signal mask and dispositions are reset (a Rust parent
//!   ignores SIGPIPE, which the child must not inherit). `std::process::Command` cannot set these flags.
//!   `POSIX_SPAWN_CLOEXEC_DEFAULT` keeps every descriptor but the three standard streams out of the child.
//! - The task port comes from [`MachTask::for_pid`] (retries, the port-0 check, a timeout).
//! - Resuming sends `SIGCONT`, as `posix_spawnattr_setflags(3)` says: it drops the spawn's suspension *and*
//!   marks the process runnable; a `task_resume` would leave it marked stopped and park later signals.
//! - Debugged mode: `ptrace(PT_ATTACH)` (which consumes the spawn's suspension and posts SIGSTOP), wait for that
//!   stop, and on resume `ptrace(PT_DETACH)`. Attaching sets `CS_DEBUGGED` and clears `CS_KILL|CS_HARD` until
//!   the next exec, so a hardened target survives running modified code pages.
//! - A child is never left stopped: every error after `posix_spawn` kills and reaps it, and so does dropping a
//!   [`Child`] that was neither waited for nor detached.

#![allow(unsafe_code)] // libc and Mach FFI; every block has a `// SAFETY:` comment.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

use crate::sys;
use crate::{CsFlags, MachTask, TASK_FOR_PID_TIMEOUT, Task, TaskError};

/// How long debugged mode waits for the SIGSTOP that `PT_ATTACH` posts.
const ATTACH_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a child's standard output or standard error goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdio {
    /// The parent's own descriptor.
    #[default]
    Inherit,
    /// A pipe; take the read end with [`Child::take_stdout`] / [`Child::take_stderr`] and keep reading it, or
    /// the child blocks once the pipe is full.
    Piped,
    /// `/dev/null`.
    Null,
}

/// A program to start suspended. Built like `std::process::Command`; [`Spawn::spawn`] starts it.
#[derive(Debug, Clone)]
pub struct Spawn {
    path: PathBuf,
    args: Vec<OsString>,
    env_clear: bool,
    /// In order of the calls: `Some` sets, `None` removes.
    env_changes: Vec<(OsString, Option<OsString>)>,
    disable_aslr: bool,
    debugged: bool,
    stdout: Stdio,
    stderr: Stdio,
    task_port_timeout: Duration,
}

impl Spawn {
    /// The program at `path` (not searched in `PATH`), with `path` as `argv[0]`, the parent's environment,
    /// inherited output, ASLR on, not debugged.
    pub fn new(path: impl Into<PathBuf>) -> Spawn {
        Spawn {
            path: path.into(),
            args: Vec::new(),
            env_clear: false,
            env_changes: Vec::new(),
            disable_aslr: false,
            debugged: false,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            task_port_timeout: TASK_FOR_PID_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Spawn {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args(&mut self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> &mut Spawn {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Spawn {
        self.env_changes.push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable for the child.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Spawn {
        self.env_changes.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts from an empty environment instead of the parent's.
    pub fn env_clear(&mut self) -> &mut Spawn {
        self.env_clear = true;
        self.env_changes.clear();
        self
    }

    /// Loads the program without an ASLR slide (`_POSIX_SPAWN_DISABLE_ASLR`). The slide must still be computed:
    /// the flag is ignored for setuid programs, and a parent that itself runs without ASLR passes that on.
    pub fn disable_aslr(&mut self, yes: bool) -> &mut Spawn {
        self.disable_aslr = yes;
        self
    }

    /// Debugged mode: attach with `ptrace(PT_ATTACH)` after spawning, which makes the kernel let the process
    /// run modified code pages (`CS_DEBUGGED`) even under the hardened runtime. Needed only when
    /// [`Child::code_signing_flags`] says modified code would be fatal.
    pub fn debugged(&mut self, yes: bool) -> &mut Spawn {
        self.debugged = yes;
        self
    }

    /// Where the child's standard output goes.
    pub fn stdout(&mut self, to: Stdio) -> &mut Spawn {
        self.stdout = to;
        self
    }

    /// Where the child's standard error goes.
    pub fn stderr(&mut self, to: Stdio) -> &mut Spawn {
        self.stderr = to;
        self
    }

    /// How long to wait for the task port (see [`MachTask::for_pid_within`]).
    pub fn task_port_timeout(&mut self, timeout: Duration) -> &mut Spawn {
        self.task_port_timeout = timeout;
        self
    }

    /// Starts the program suspended before its first instruction and takes its task port. In debugged mode the
    /// returned child is stopped under `ptrace` instead. Either way it runs only after [`Child::resume`].
    pub fn spawn(&self) -> Result<Child, TaskError> {
        let invalid = |what: &str| TaskError::Spawn {
            path: self.path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, format!("{what} contains a NUL byte")),
        };
        let path = CString::new(self.path.as_os_str().as_bytes()).map_err(|_| invalid("the path"))?;
        let mut argv = vec![path.clone()];
        for arg in &self.args {
            argv.push(CString::new(arg.as_bytes()).map_err(|_| invalid("an argument"))?);
        }
        let mut envp = Vec::new();
        for (key, value) in self.environment() {
            let mut entry = key.into_vec();
            entry.push(b'=');
            entry.extend(value.into_vec());
            envp.push(CString::new(entry).map_err(|_| invalid("an environment variable"))?);
        }

        let os = |op| move |source| TaskError::Os { op, source };
        let stdout = Redirect::new(self.stdout).map_err(os("creating the stdout pipe"))?;
        let stderr = Redirect::new(self.stderr).map_err(os("creating the stderr pipe"))?;
        let mut actions = FileActions::new().map_err(os("posix_spawn_file_actions_init"))?;
        Redirect::Inherit.add_to(&mut actions, libc::STDIN_FILENO).map_err(os("passing stdin on"))?;
        stdout.add_to(&mut actions, libc::STDOUT_FILENO).map_err(os("redirecting stdout"))?;
        stderr.add_to(&mut actions, libc::STDERR_FILENO).map_err(os("redirecting stderr"))?;
        let mut attr = SpawnAttr::new().map_err(os("posix_spawnattr_init"))?;
        // CLOEXEC_DEFAULT: the child gets its three standard streams and nothing else of the patcher's (its
        // sockets, or the pipes of a child spawned at the same moment by another thread).
        let mut flags = sys::POSIX_SPAWN_START_SUSPENDED
            | sys::POSIX_SPAWN_SETSIGDEF
            | sys::POSIX_SPAWN_SETSIGMASK
            | sys::POSIX_SPAWN_CLOEXEC_DEFAULT;
        if self.disable_aslr {
            flags |= sys::POSIX_SPAWN_DISABLE_ASLR;
        }
        attr.configure(flags).map_err(os("posix_spawnattr_setflags"))?;

        let pid = posix_spawn(&path, &actions, &attr, &argv, &envp)
            .map_err(|source| TaskError::Spawn { path: self.path.clone(), source })?;
        // From here on the process exists, stopped: dropping `process` kills and reaps it on every error path.
        let mut process = Process { pid, reaped: false, detached: false };
        drop((actions, attr));
        let (stdout, stderr) = (stdout.into_parent_end(), stderr.into_parent_end());

        let pid_u32 = pid.unsigned_abs();
        let task = MachTask::for_pid_within(pid_u32, self.task_port_timeout)?;
        let traced = if self.debugged {
            attach(&mut process)?;
            true
        } else {
            false
        };
        Ok(Child { task, process, stdout, stderr, traced, resumed: false })
    }

    /// The child's environment: the parent's (unless cleared) with the changes applied in order.
    fn environment(&self) -> BTreeMap<OsString, OsString> {
        let mut env: BTreeMap<OsString, OsString> =
            if self.env_clear { BTreeMap::new() } else { std::env::vars_os().collect() };
        for (key, value) in &self.env_changes {
            match value {
                Some(value) => env.insert(key.clone(), value.clone()),
                None => env.remove(key),
            };
        }
        env
    }
}

/// A process started by [`Spawn::spawn`], with its task port.
#[derive(Debug)]
pub struct Child {
    task: MachTask,
    process: Process,
    stdout: Option<File>,
    stderr: Option<File>,
    /// Attached with `ptrace` and not yet detached.
    traced: bool,
    resumed: bool,
}

impl Child {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid.unsigned_abs()
    }

    /// The child's task.
    pub fn task(&self) -> &MachTask {
        &self.task
    }

    /// The runtime address of the main executable's Mach-O header (see [`Task::main_image_base`]).
    pub fn main_image_base(&self) -> Result<u64, TaskError> {
        self.task.main_image_base()
    }

    /// The ASLR slide: [`Child::main_image_base`] minus `text_vmaddr`, the `__TEXT` segment's `vmaddr` in the
    /// executable file (usually `0x1_0000_0000`). Always computed, even with ASLR disabled (see
    /// [`Spawn::disable_aslr`]).
    pub fn slide(&self, text_vmaddr: u64) -> Result<i64, TaskError> {
        Ok(self.main_image_base()?.wrapping_sub(text_vmaddr) as i64)
    }

    /// The process's code-signing flags (`csops(CS_OPS_STATUS)`); allowed for non-root callers. If
    /// [`CsFlags::modified_code_is_fatal`], patch it only in debugged mode.
    pub fn code_signing_flags(&self) -> Result<CsFlags, TaskError> {
        let mut flags = 0u32;
        // SAFETY: `flags` is a writable `u32`, and its size is what the call is told.
        let rc = unsafe { sys::csops(self.process.pid, sys::CS_OPS_STATUS, (&raw mut flags).cast(), 4) };
        if rc != 0 {
            return Err(TaskError::Os { op: "csops(CS_OPS_STATUS)", source: io::Error::last_os_error() });
        }
        Ok(CsFlags::from_bits_retain(flags))
    }

    /// Whether the child is attached with `ptrace` (debugged mode, before [`Child::resume`]).
    pub fn is_traced(&self) -> bool {
        self.traced
    }

    /// Lets the child run: `ptrace(PT_DETACH)` in debugged mode, else `SIGCONT`, which releases the spawn's
    /// suspension and marks the process runnable. Calling it again does nothing. Suspensions taken with
    /// [`Task::suspend`] are separate and must be released by their guards.
    pub fn resume(&mut self) -> Result<(), TaskError> {
        if self.resumed {
            return Ok(());
        }
        let pid = self.process.pid;
        if self.traced {
            // SAFETY: plain values; `addr == 1` means "continue where it stopped", `data == 0` delivers no
            // signal.
            let rc = unsafe { libc::ptrace(libc::PT_DETACH, pid, ptr::without_provenance_mut(1), 0) };
            if rc != 0 {
                return Err(TaskError::Os { op: "ptrace(PT_DETACH)", source: io::Error::last_os_error() });
            }
            self.traced = false;
        } else {
            // SAFETY: plain values; `pid` is our unreaped child, so it cannot name another process.
            let rc = unsafe { libc::kill(pid, libc::SIGCONT) };
            if rc != 0 {
                return Err(TaskError::Os { op: "kill(SIGCONT)", source: io::Error::last_os_error() });
            }
        }
        self.resumed = true;
        Ok(())
    }

    /// The read end of the child's stdout pipe, once (with [`Stdio::Piped`]).
    pub fn take_stdout(&mut self) -> Option<File> {
        self.stdout.take()
    }

    /// The read end of the child's stderr pipe, once (with [`Stdio::Piped`]).
    pub fn take_stderr(&mut self) -> Option<File> {
        self.stderr.take()
    }

    /// Waits for the child to exit and reaps it. Resume it first, or this waits forever.
    pub fn wait(&mut self) -> Result<ExitStatus, TaskError> {
        self.process.wait(0).map(|status| status.expect("a blocking waitpid returns a status"))
    }

    /// Reaps the child if it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, TaskError> {
        self.process.wait(libc::WNOHANG)
    }

    /// Kills the child with SIGKILL (which works on a stopped or traced process too) and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus, TaskError> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.process.signal_kill()?;
        self.wait()
    }

    /// Leaves the process running on its own: it is not killed when this value drops. Resume it first if it
    /// should run. Returns its pid.
    pub fn detach(mut self) -> u32 {
        self.process.detached = true;
        self.pid()
    }
}

/// The pid of a spawned process and whether it still needs to be reaped. Dropping it kills and reaps the
/// process unless it was waited for or detached.
#[derive(Debug)]
struct Process {
    pid: libc::pid_t,
    reaped: bool,
    detached: bool,
}

impl Process {
    /// `waitpid` without `WUNTRACED` (which would report the spawn's own stop), retried on EINTR; stop reports
    /// (a traced child reports them regardless) are skipped. `None` only with WNOHANG and nothing to report.
    fn wait(&mut self, options: libc::c_int) -> Result<Option<ExitStatus>, TaskError> {
        if self.reaped {
            return Err(TaskError::Dead {
                pid: self.pid.unsigned_abs(),
                status: "already reaped".to_string(),
            });
        }
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer; `pid` is our child.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, options) };
            if rc == -1 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(TaskError::Os { op: "waitpid", source: err });
            }
            if rc == 0 {
                return Ok(None);
            }
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                self.reaped = true;
                return Ok(Some(ExitStatus::from_raw(status)));
            }
            if options & libc::WNOHANG != 0 {
                return Ok(None);
            }
        }
    }

    fn signal_kill(&self) -> Result<(), TaskError> {
        // SAFETY: plain values; `pid` is our unreaped child.
        if unsafe { libc::kill(self.pid, libc::SIGKILL) } != 0 {
            return Err(TaskError::Os { op: "kill(SIGKILL)", source: io::Error::last_os_error() });
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.reaped || self.detached {
            return;
        }
        // A suspended or traced child would otherwise stay stopped forever.
        if self.signal_kill().is_ok() {
            let _ = self.wait(0);
        }
    }
}

/// Debugged mode: `PT_ATTACH`, then wait (bounded) for the SIGSTOP it posts. The first report can be the stale
/// spawn stop with signal 0; it is skipped.
fn attach(process: &mut Process) -> Result<(), TaskError> {
    let pid = process.pid;
    let fail = |reason: String| TaskError::Attach { pid: pid.unsigned_abs(), reason };
    // SAFETY: plain values; `pid` is our stopped child.
    if unsafe { libc::ptrace(libc::PT_ATTACH, pid, ptr::null_mut(), 0) } != 0 {
        return Err(fail(format!("PT_ATTACH: {}", io::Error::last_os_error())));
    }
    let deadline = Instant::now() + ATTACH_STOP_TIMEOUT;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED | libc::WNOHANG) };
        if rc == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(fail(format!("waitpid: {err}")));
        }
        if rc == pid {
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                process.reaped = true;
                return Err(fail(format!("the process ended while attaching (wait status {status:#x})")));
            }
            if libc::WIFSTOPPED(status) {
                match libc::WSTOPSIG(status) {
                    libc::SIGSTOP => return Ok(()),
                    0 => {} // the spawn's own stop, reported once the process is traced
                    sig => return Err(fail(format!("stopped by signal {sig} instead of SIGSTOP"))),
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(fail(format!("no SIGSTOP within {} s", ATTACH_STOP_TIMEOUT.as_secs())));
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// One standard stream of the child: its pipe, if any, until the parent keeps the read end.
enum Redirect {
    Inherit,
    Null,
    Pipe { read: OwnedFd, write: OwnedFd },
}

impl Redirect {
    fn new(to: Stdio) -> io::Result<Redirect> {
        Ok(match to {
            Stdio::Inherit => Redirect::Inherit,
            Stdio::Null => Redirect::Null,
            Stdio::Piped => {
                let mut fds: [RawFd; 2] = [-1; 2];
                // SAFETY: `fds` has room for the two descriptors `pipe` writes.
                if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: `pipe` just returned these descriptors, and nothing else owns them.
                let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
                // Close-on-exec on both ends, so other children (and this one, but for its dup2'd copy) do not
                // inherit them; macOS has no pipe2.
                for fd in fds {
                    // SAFETY: plain values on descriptors this process owns.
                    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Redirect::Pipe { read, write }
            }
        })
    }

    fn add_to(&self, actions: &mut FileActions, fd: RawFd) -> io::Result<()> {
        match self {
            // Only a descriptor that is open can be inherited; a closed one stays closed in the child.
            Redirect::Inherit if is_open(fd) => actions.inherit(fd),
            Redirect::Inherit => Ok(()),
            Redirect::Null => actions.open(fd, c"/dev/null", libc::O_WRONLY),
            Redirect::Pipe { write, .. } => actions.dup2(std::os::fd::AsRawFd::as_raw_fd(write), fd),
        }
    }

    /// Closes the child's end in the parent and returns the parent's end.
    fn into_parent_end(self) -> Option<File> {
        match self {
            Redirect::Pipe { read, write } => {
                drop(write);
                Some(File::from(read))
            }
            Redirect::Inherit | Redirect::Null => None,
        }
    }
}

/// Whether `fd` is an open descriptor of this process.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `posix_spawn_file_actions_t`, destroyed on drop.
struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        let mut raw: libc::posix_spawn_file_actions_t = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the call returns an errno value, not -1.
        errno(unsafe { libc::posix_spawn_file_actions_init(&mut raw) })?;
        Ok(FileActions(raw))
    }

    fn dup2(&mut self, from: RawFd, to: RawFd) -> io::Result<()> {
        // SAFETY: `self.0` was initialised by `posix_spawn_file_actions_init`.
        errno(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, from, to) })
    }

    fn inherit(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: `self.0` was initialised by `posix_spawn_file_actions_init`.
        errno(unsafe { sys::posix_spawn_file_actions_addinherit_np(&mut self.0, fd) })
    }

    fn open(&mut self, fd: RawFd, path: &std::ffi::CStr, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: `self.0` is initialised and `path` is NUL-terminated; the call copies the path.
        errno(unsafe { libc::posix_spawn_file_actions_addopen(&mut self.0, fd, path.as_ptr(), flags, 0) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised by `posix_spawn_file_actions_init` and destroyed only here.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// `posix_spawnattr_t`, destroyed on drop.
struct SpawnAttr(libc::posix_spawnattr_t);

impl SpawnAttr {
    fn new() -> io::Result<SpawnAttr> {
        let mut raw: libc::posix_spawnattr_t = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the call returns an errno value.
        errno(unsafe { libc::posix_spawnattr_init(&mut raw) })?;
        Ok(SpawnAttr(raw))
    }

    /// Sets the flags, an empty signal mask, and default dispositions for every signal (what SETSIGMASK and
    /// SETSIGDEF apply).
    fn configure(&mut self, flags: libc::c_short) -> io::Result<()> {
        let mut empty: libc::sigset_t = 0;
        let mut all: libc::sigset_t = 0;
        // SAFETY: the sets are valid out-pointers.
        unsafe {
            libc::sigemptyset(&mut empty);
            libc::sigfillset(&mut all);
        }
        // SAFETY: `self.0` was initialised by `posix_spawnattr_init`; the sets are read during the calls only.
        unsafe {
            errno(libc::posix_spawnattr_setsigmask(&mut self.0, &empty))?;
            errno(libc::posix_spawnattr_setsigdefault(&mut self.0, &all))?;
            errno(libc::posix_spawnattr_setflags(&mut self.0, flags))
        }
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised by `posix_spawnattr_init` and destroyed only here.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// Calls `posix_spawn` with NULL-terminated `argv` and `envp` built from `args` and `env`.
fn posix_spawn(
    path: &CString,
    actions: &FileActions,
    attr: &SpawnAttr,
    args: &[CString],
    env: &[CString],
) -> io::Result<libc::pid_t> {
    let argv: Vec<*mut libc::c_char> =
        args.iter().map(|a| a.as_ptr().cast_mut()).chain(std::iter::once(ptr::null_mut())).collect();
    let envp: Vec<*mut libc::c_char> =
        env.iter().map(|e| e.as_ptr().cast_mut()).chain(std::iter::once(ptr::null_mut())).collect();
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call: `path` and the strings behind `argv`/`envp` are
    // NUL-terminated and outlive it, both arrays end with NULL, and `actions`/`attr` are initialised. The
    // kernel copies everything before returning.
    let rc = unsafe {
        libc::posix_spawn(&mut pid, path.as_ptr(), &actions.0, &attr.0, argv.as_ptr(), envp.as_ptr())
    };
    errno(rc)?;
    Ok(pid)
}

/// The posix_spawn family returns an errno value instead of setting `errno`.
fn errno(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}
