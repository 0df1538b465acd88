//! [`MachTask`]: the [`Task`] primitives over a Mach task port, through `mach2`.
//!
//! Every call follows `reference/macos-task-port.md` (xnu and lldb's debugserver); the crate documentation's
//! review table lists each call, the fact it relies on, and the test that covers it. The recipes that combine
//! these primitives (`write_code`, `write_data`, `main_image_base`) are not here: they are the trait's provided
//! methods, shared with the simulator.

#![allow(unsafe_code)] // Mach FFI; every block has a `// SAFETY:` comment.

use std::fmt;
use std::ptr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mach2::kern_return::{KERN_INVALID_ADDRESS, KERN_SUCCESS, kern_return_t};
use mach2::mach_port::mach_port_deallocate;
use mach2::mach_types::thread_act_t;
use mach2::port::{MACH_PORT_NULL, mach_port_t};
use mach2::task::{task_info, task_resume, task_suspend, task_threads};
use mach2::task_info::{MACH_TASK_BASIC_INFO, MACH_TASK_BASIC_INFO_COUNT, mach_task_basic_info};
use mach2::thread_act::thread_get_state;
use mach2::traps::{mach_task_self, task_for_pid};
use mach2::vm::{
    mach_vm_allocate, mach_vm_deallocate, mach_vm_machine_attribute, mach_vm_protect, mach_vm_read_overwrite,
    mach_vm_region_recurse, mach_vm_write,
};
use mach2::vm_attributes::{MATTR_CACHE, MATTR_VAL_CACHE_FLUSH};
use mach2::vm_region::vm_region_submap_info_64;
use mach2::vm_statistics::{VM_FLAGS_ANYWHERE, VM_MEMORY_APPLICATION_SPECIFIC_16};
use mach2::vm_types::natural_t;

use crate::sys;
use crate::{KernError, Region, Task, TaskError, ThreadState, VmProt};

/// How often `task_for_pid` is tried before giving up, and the pause between tries. xnu refuses the port while
/// the new image's IPC is not active yet (`task_is_ipc_active`), so debugserver retries too.
const TASK_FOR_PID_TRIES: u32 = 10;
const TASK_FOR_PID_PAUSE: Duration = Duration::from_millis(10);

/// How long [`MachTask::for_pid`] waits. A non-root caller can block inside `task_for_pid` on the taskgated
/// authorization prompt; on a headless machine nobody answers it.
pub const TASK_FOR_PID_TIMEOUT: Duration = Duration::from_secs(30);

/// The submap nesting depth asked of `mach_vm_region_recurse` first: deep enough that the kernel returns leaf
/// entries (debugserver asks for 1024). An entry that still comes back as a submap is asked for again deeper.
const REGION_DEPTH: natural_t = 64;
const REGION_MAX_DEPTH: natural_t = 1024;

/// `VM_MAKE_TAG(VM_MEMORY_APPLICATION_SPECIFIC_16)`: the tag sits in the top byte of the allocation flags.
const SCRATCH_TAG: i32 = (VM_MEMORY_APPLICATION_SPECIFIC_16 << 24) as i32;

/// A task port and the process it belongs to. The send right is released when this is dropped (except for the
/// own task, whose port name is the process's `mach_task_self()` and is never released).
pub struct MachTask {
    port: mach_port_t,
    pid: u32,
    own: bool,
}

impl fmt::Debug for MachTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachTask")
            .field("pid", &self.pid)
            .field("port", &self.port)
            .field("own", &self.own)
            .finish()
    }
}

impl MachTask {
    /// The task port of process `pid`, waiting at most [`TASK_FOR_PID_TIMEOUT`].
    pub fn for_pid(pid: u32) -> Result<MachTask, TaskError> {
        MachTask::for_pid_within(pid, TASK_FOR_PID_TIMEOUT)
    }

    /// The task port of process `pid`: `task_for_pid`, retried while the kernel is not ready, with the
    /// "KERN_SUCCESS but port 0" answer (a process without a task: exiting, or not yet created) treated as a
    /// failure.
    ///
    /// The call runs on a helper thread so that a caller blocked on the taskgated authorization prompt gets an
    /// error after `timeout` instead of hanging. If the prompt is answered later, the helper releases the port.
    pub fn for_pid_within(pid: u32, timeout: Duration) -> Result<MachTask, TaskError> {
        // A rendezvous channel: the helper's send completes only if this thread takes the port, and fails once
        // this thread has given up and dropped the receiver, so a late port is always released, never lost.
        let (tx, rx) = mpsc::sync_channel(0);
        thread::Builder::new()
            .name(format!("task_for_pid({pid})"))
            .spawn(move || {
                let result = task_for_pid_retrying(pid);
                if let Err(mpsc::SendError(Ok(port))) = tx.send(result) {
                    // The caller gave up waiting; nobody will own this right.
                    release_port(port);
                }
            })
            .map_err(|source| TaskError::Os { op: "starting the task_for_pid thread", source })?;
        match rx.recv_timeout(timeout) {
            Ok(Ok(port)) => Ok(MachTask { port, pid, own: false }),
            Ok(Err(reason)) => Err(TaskError::TaskPort { pid, reason }),
            Err(_) => Err(TaskError::TaskPort {
                pid,
                reason: format!(
                    "no answer within {} s (a non-root caller blocks on the taskgated authorization prompt)",
                    timeout.as_secs()
                ),
            }),
        }
    }

    /// The calling process's own task, for tests. Everything works on it except suspending, which would stop
    /// the calling thread too.
    pub fn current() -> MachTask {
        // SAFETY: `mach_task_self` reads the process's task port name, set up before `main`.
        let port = unsafe { mach_task_self() };
        MachTask { port, pid: std::process::id(), own: true }
    }

    /// The task port name in this process's IPC space, for calls this crate does not wrap.
    pub fn port(&self) -> mach_port_t {
        self.port
    }

    /// Whether this is the calling process's own task (from [`MachTask::current`], or `for_pid` of the own pid).
    pub fn is_current(&self) -> bool {
        self.own || self.pid == std::process::id()
    }

    /// The task's suspend count (`task_info(MACH_TASK_BASIC_INFO).suspend_count`): 1 for a child that was
    /// spawned suspended and not yet resumed, plus one per outstanding `task_suspend`.
    pub fn suspend_count(&self) -> Result<i32, TaskError> {
        let mut info = mach_task_basic_info::default();
        let mut count = MACH_TASK_BASIC_INFO_COUNT;
        // SAFETY: `info` is a `mach_task_basic_info` of `count` words, which is what this flavor fills.
        let kr = unsafe { task_info(self.port, MACH_TASK_BASIC_INFO, (&raw mut info).cast(), &mut count) };
        KernError(kr).check("task_info(MACH_TASK_BASIC_INFO)", None)?;
        Ok(info.suspend_count)
    }

    /// Allocates `size` bytes of zeroed `rw-` memory (maximum `rwx`) anywhere in the task
    /// (`mach_vm_allocate`). Used by tests to get scratch pages whose contents nothing else depends on.
    ///
    /// The memory carries its own VM tag (`VM_MEMORY_APPLICATION_SPECIFIC_16`): `vmmap` shows it apart, and the
    /// kernel never merges it into a neighbouring allocation, so its region keeps its bounds.
    pub fn allocate(&self, size: u64) -> Result<u64, TaskError> {
        let mut addr = 0;
        // SAFETY: plain values; the kernel chooses the address and writes it to `addr`.
        let kr = unsafe { mach_vm_allocate(self.port, &mut addr, size, VM_FLAGS_ANYWHERE | SCRATCH_TAG) };
        KernError(kr).check("mach_vm_allocate", None)?;
        Ok(addr)
    }

    /// Releases memory obtained from [`MachTask::allocate`] (`mach_vm_deallocate`).
    pub fn deallocate(&self, addr: u64, size: u64) -> Result<(), TaskError> {
        // SAFETY: only the target task's mapping changes; this process's memory is untouched unless this is
        // the own task, and then the caller promises nothing uses the range.
        let kr = unsafe { mach_vm_deallocate(self.port, addr, size) };
        KernError(kr).check("mach_vm_deallocate", Some(addr))
    }
}

impl Drop for MachTask {
    fn drop(&mut self) {
        if !self.own {
            release_port(self.port);
        }
    }
}

/// Drops one user reference to a send right held in this process's IPC space.
fn release_port(port: mach_port_t) {
    if port != MACH_PORT_NULL {
        // SAFETY: `port` is a right this process holds and no longer uses; a stale name only yields an error.
        let _ = unsafe { mach_port_deallocate(mach_task_self(), port) };
    }
}

/// `task_for_pid` with debugserver's retries and the port-0 check.
fn task_for_pid_retrying(pid: u32) -> Result<mach_port_t, String> {
    let Ok(pid_c) = libc::pid_t::try_from(pid) else {
        return Err(format!("{pid} is not a valid pid"));
    };
    let mut last = String::new();
    for attempt in 0..TASK_FOR_PID_TRIES {
        if attempt > 0 {
            thread::sleep(TASK_FOR_PID_PAUSE);
        }
        let mut port: mach_port_t = MACH_PORT_NULL;
        // SAFETY: `port` is a valid out-pointer; the kernel writes a port name into it.
        let kr = unsafe { task_for_pid(mach_task_self(), pid_c, &mut port) };
        match (kr, port) {
            (KERN_SUCCESS, MACH_PORT_NULL) => {
                last = "KERN_SUCCESS with a null port (the process has no task: exiting, or not yet created)"
                    .to_string();
            }
            (KERN_SUCCESS, port) => return Ok(port),
            (kr, _) => last = KernError(kr).to_string(),
        }
    }
    Err(format!("{last} after {TASK_FOR_PID_TRIES} attempts"))
}

impl Task for MachTask {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), TaskError> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut got = 0;
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf` (`mach_vm_read_overwrite` copies into
        // the caller's existing buffer; `mach_vm_read` would allocate one instead).
        let kr = unsafe {
            mach_vm_read_overwrite(self.port, addr, buf.len() as u64, buf.as_mut_ptr() as u64, &mut got)
        };
        KernError(kr).check("mach_vm_read_overwrite", Some(addr))?;
        if got != buf.len() as u64 {
            return Err(TaskError::Kern {
                op: "mach_vm_read_overwrite (short read)",
                addr: Some(addr + got),
                code: KernError::INVALID_ADDRESS,
            });
        }
        Ok(())
    }

    fn write_raw(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let Ok(len) = u32::try_from(bytes.len()) else {
            return Err(TaskError::Kern {
                op: "mach_vm_write (more than 4 GiB at once)",
                addr: Some(addr),
                code: KernError::INVALID_ARGUMENT,
            });
        };
        // SAFETY: the kernel only reads `len` bytes from `bytes`, which outlives the call.
        let kr = unsafe { mach_vm_write(self.port, addr, bytes.as_ptr() as usize, len) };
        KernError(kr).check("mach_vm_write", Some(addr))
    }

    fn protect(&self, addr: u64, size: u64, prot: VmProt) -> Result<(), TaskError> {
        // arm64 macOS answers any request with both WRITE and EXECUTE (with or without COPY) with
        // KERN_PROTECTION_FAILURE and a kernel log line; it is never sent.
        if prot.is_write_execute() {
            return Err(TaskError::WriteExecute { addr, prot });
        }
        // SAFETY: plain values; `set_maximum` is false, so only the current protection changes.
        let kr = unsafe { mach_vm_protect(self.port, addr, size, 0, prot.bits()) };
        KernError(kr).check("mach_vm_protect", Some(addr))
    }

    fn region(&self, addr: u64) -> Result<Option<Region>, TaskError> {
        let mut depth = REGION_DEPTH;
        loop {
            let mut start = addr;
            let mut size = 0;
            let mut nesting = depth;
            let mut info = vm_region_submap_info_64::default();
            let mut count = sys::VM_REGION_SUBMAP_INFO_COUNT_64;
            // SAFETY: `info` is a `vm_region_submap_info_64` and `count` its size in natural_t words, so the
            // kernel writes inside it; the other pointers are valid out-parameters.
            let kr = unsafe {
                mach_vm_region_recurse(
                    self.port,
                    &mut start,
                    &mut size,
                    &mut nesting,
                    (&raw mut info).cast(),
                    &mut count,
                )
            };
            if kr == KERN_INVALID_ADDRESS {
                return Ok(None); // nothing at or above `addr`
            }
            KernError(kr).check("mach_vm_region_recurse", Some(addr))?;
            // The struct is packed: copy fields out, never borrow them.
            let is_submap = info.is_submap;
            if is_submap != 0 {
                // A submap the depth did not reach into: its protections are the submap's, not a leaf's.
                depth = nesting.max(depth) + 1;
                if depth > REGION_MAX_DEPTH {
                    return Err(TaskError::Kern {
                        op: "mach_vm_region_recurse (submaps nested too deep)",
                        addr: Some(start),
                        code: KernError::FAILURE,
                    });
                }
                continue;
            }
            let (prot, max_prot) = (info.protection, info.max_protection);
            return Ok(Some(Region {
                start,
                size,
                prot: VmProt::from_bits_truncate(prot),
                max_prot: VmProt::from_bits_truncate(max_prot),
            }));
        }
    }

    fn suspend_raw(&self) -> Result<(), TaskError> {
        if self.is_current() {
            return Err(TaskError::Unsupported {
                op: "task_suspend on the own task",
                why: "it would stop the calling thread too, and nothing could resume it",
            });
        }
        // SAFETY: plain port value.
        let kr = unsafe { task_suspend(self.port) };
        KernError(kr).check("task_suspend", None)
    }

    fn resume_raw(&self) -> Result<(), TaskError> {
        // SAFETY: plain port value.
        let kr = unsafe { task_resume(self.port) };
        KernError(kr).check("task_resume", None)
    }

    fn threads(&self) -> Result<Vec<ThreadState>, TaskError> {
        if !cfg!(target_arch = "aarch64") {
            return Err(TaskError::Unsupported {
                op: "reading arm64 thread state",
                why: "this build is not for arm64, and neither are the tasks it can see",
            });
        }
        let list = ThreadList::take(self.port)?;
        let mut out = Vec::with_capacity(list.threads().len());
        for &thread in list.threads() {
            let mut state = sys::ArmThreadState64::default();
            let mut count = sys::ARM_THREAD_STATE64_COUNT;
            // SAFETY: `state` is an `ArmThreadState64` of `count` words, the size this flavor fills.
            let kr = unsafe {
                thread_get_state(thread, sys::ARM_THREAD_STATE64, (&raw mut state).cast(), &mut count)
            };
            if thread_is_gone(kr) {
                continue; // it exited between task_threads and now (only possible while the task runs)
            }
            KernError(kr).check("thread_get_state(ARM_THREAD_STATE64)", None)?;
            let id = match thread_id(thread) {
                Ok(id) => id,
                Err(kr) if thread_is_gone(kr) => continue,
                Err(kr) => {
                    return Err(TaskError::Kern {
                        op: "thread_info(THREAD_IDENTIFIER_INFO)",
                        addr: None,
                        code: KernError(kr),
                    });
                }
            };
            out.push(ThreadState {
                id,
                pc: state.pc,
                lr: state.lr,
                sp: state.sp,
                fp: state.fp,
                x16: state.x[16],
            });
        }
        Ok(out)
    }

    fn flush_icache(&self, addr: u64, len: u64) -> Result<(), TaskError> {
        // xnu ignores the value and cleans the data cache and invalidates the instruction cache for every
        // resident page of the range (vm_map_machine_attribute → pmap_attribute_cache_sync); debugserver
        // makes the same call after each write.
        let mut value = MATTR_VAL_CACHE_FLUSH;
        // SAFETY: `value` is a valid in/out pointer; the rest are plain values.
        let kr = unsafe { mach_vm_machine_attribute(self.port, addr, len, MATTR_CACHE, &mut value) };
        KernError(kr).check("mach_vm_machine_attribute(MATTR_CACHE, MATTR_VAL_CACHE_FLUSH)", Some(addr))
    }
}

/// Whether a thread call failed because the thread has terminated (its port became a dead name or its
/// kernel object was disabled).
fn thread_is_gone(kr: kern_return_t) -> bool {
    [KernError::TERMINATED, KernError::SEND_INVALID_DEST, KernError::INVALID_ARGUMENT]
        .contains(&KernError(kr))
}

/// The system-wide id of a thread (`thread_info(THREAD_IDENTIFIER_INFO).thread_id`).
fn thread_id(thread: thread_act_t) -> Result<u64, kern_return_t> {
    let mut info = sys::ThreadIdentifierInfo::default();
    let mut count = sys::THREAD_IDENTIFIER_INFO_COUNT;
    // SAFETY: `info` is a `thread_identifier_info` of `count` words, the size this flavor fills.
    let kr =
        unsafe { sys::thread_info(thread, sys::THREAD_IDENTIFIER_INFO, (&raw mut info).cast(), &mut count) };
    if kr == KERN_SUCCESS { Ok(info.thread_id) } else { Err(kr) }
}

/// The array `task_threads` returns, and the send rights in it; both belong to this process and are released on
/// drop (each right with `mach_port_deallocate`, then the array's pages with `mach_vm_deallocate`).
struct ThreadList {
    ptr: *mut thread_act_t,
    len: u32,
}

impl ThreadList {
    fn take(task: mach_port_t) -> Result<ThreadList, TaskError> {
        let mut ptr: *mut thread_act_t = ptr::null_mut();
        let mut len = 0;
        // SAFETY: valid out-pointers; on success the kernel maps an array of `len` port names into this task.
        let kr = unsafe { task_threads(task, &mut ptr, &mut len) };
        KernError(kr).check("task_threads", None)?;
        Ok(ThreadList { ptr, len })
    }

    fn threads(&self) -> &[thread_act_t] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: `task_threads` returned `len` initialised port names at `ptr`, mapped until this list drops.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len as usize) }
    }
}

impl Drop for ThreadList {
    fn drop(&mut self) {
        for &thread in self.threads() {
            release_port(thread);
        }
        if !self.ptr.is_null() {
            let bytes = u64::from(self.len) * size_of::<thread_act_t>() as u64;
            // SAFETY: the array was mapped into this task by `task_threads` and nothing refers to it any more.
            let _ = unsafe { mach_vm_deallocate(mach_task_self(), self.ptr as u64, bytes) };
        }
    }
}
