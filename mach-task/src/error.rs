//! Errors: the kernel's `kern_return_t` as a newtype, and the task-level error that names the operation and
//! address that failed.

use std::fmt;

use crate::VmProt;

/// A `kern_return_t`. Unknown codes are kept as they are: a new kernel must not break error reporting.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernError(pub i32);

impl KernError {
    pub const SUCCESS: KernError = KernError(0);
    pub const INVALID_ADDRESS: KernError = KernError(1);
    pub const PROTECTION_FAILURE: KernError = KernError(2);
    pub const NO_SPACE: KernError = KernError(3);
    pub const INVALID_ARGUMENT: KernError = KernError(4);
    pub const FAILURE: KernError = KernError(5);
    pub const RESOURCE_SHORTAGE: KernError = KernError(6);
    pub const NO_ACCESS: KernError = KernError(8);
    pub const MEMORY_FAILURE: KernError = KernError(9);
    pub const MEMORY_ERROR: KernError = KernError(10);
    pub const ABORTED: KernError = KernError(14);
    pub const INVALID_NAME: KernError = KernError(15);
    pub const INVALID_TASK: KernError = KernError(16);
    pub const INVALID_RIGHT: KernError = KernError(17);
    pub const INVALID_VALUE: KernError = KernError(18);
    pub const TERMINATED: KernError = KernError(37);
    pub const NOT_SUPPORTED: KernError = KernError(46);
    pub const OPERATION_TIMED_OUT: KernError = KernError(49);
    pub const CODESIGN_ERROR: KernError = KernError(50);
    pub const DENIED: KernError = KernError(53);
    pub const NOT_FOUND: KernError = KernError(56);
    /// `MACH_SEND_INVALID_DEST`: what every call on the port of a task that has died returns.
    pub const SEND_INVALID_DEST: KernError = KernError(0x1000_0003);

    /// The constant's name, for codes this crate knows.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SUCCESS => "KERN_SUCCESS",
            Self::INVALID_ADDRESS => "KERN_INVALID_ADDRESS",
            Self::PROTECTION_FAILURE => "KERN_PROTECTION_FAILURE",
            Self::NO_SPACE => "KERN_NO_SPACE",
            Self::INVALID_ARGUMENT => "KERN_INVALID_ARGUMENT",
            Self::FAILURE => "KERN_FAILURE",
            Self::RESOURCE_SHORTAGE => "KERN_RESOURCE_SHORTAGE",
            Self::NO_ACCESS => "KERN_NO_ACCESS",
            Self::MEMORY_FAILURE => "KERN_MEMORY_FAILURE",
            Self::MEMORY_ERROR => "KERN_MEMORY_ERROR",
            Self::ABORTED => "KERN_ABORTED",
            Self::INVALID_NAME => "KERN_INVALID_NAME",
            Self::INVALID_TASK => "KERN_INVALID_TASK",
            Self::INVALID_RIGHT => "KERN_INVALID_RIGHT",
            Self::INVALID_VALUE => "KERN_INVALID_VALUE",
            Self::TERMINATED => "KERN_TERMINATED",
            Self::NOT_SUPPORTED => "KERN_NOT_SUPPORTED",
            Self::OPERATION_TIMED_OUT => "KERN_OPERATION_TIMED_OUT",
            Self::CODESIGN_ERROR => "KERN_CODESIGN_ERROR",
            Self::DENIED => "KERN_DENIED",
            Self::NOT_FOUND => "KERN_NOT_FOUND",
            Self::SEND_INVALID_DEST => "MACH_SEND_INVALID_DEST",
            _ => return None,
        })
    }

    /// The system's description of the code: `mach_error_string`'s text for the codes this crate knows (the
    /// same on every host, so messages read alike in the simulator and on a Mac).
    pub fn message(self) -> &'static str {
        match self {
            Self::SUCCESS => "(os/kern) successful",
            Self::INVALID_ADDRESS => "(os/kern) invalid address",
            Self::PROTECTION_FAILURE => "(os/kern) protection failure",
            Self::NO_SPACE => "(os/kern) no space available",
            Self::INVALID_ARGUMENT => "(os/kern) invalid argument",
            Self::FAILURE => "(os/kern) failure",
            Self::RESOURCE_SHORTAGE => "(os/kern) resource shortage",
            Self::NO_ACCESS => "(os/kern) no access",
            Self::MEMORY_FAILURE => "(os/kern) memory failure",
            Self::MEMORY_ERROR => "(os/kern) memory error",
            Self::ABORTED => "(os/kern) aborted",
            Self::INVALID_NAME => "(os/kern) invalid name",
            Self::INVALID_TASK => "(os/kern) invalid task",
            Self::INVALID_RIGHT => "(os/kern) invalid right",
            Self::INVALID_VALUE => "(os/kern) invalid value",
            Self::TERMINATED => "(os/kern) terminated",
            Self::NOT_SUPPORTED => "(os/kern) not supported",
            Self::OPERATION_TIMED_OUT => "(os/kern) operation timed out",
            Self::CODESIGN_ERROR => "(os/kern) code signing error",
            Self::DENIED => "(os/kern) denied",
            Self::NOT_FOUND => "(os/kern) not found",
            Self::SEND_INVALID_DEST => "(ipc/send) invalid destination port",
            _ => "unknown error code",
        }
    }

    /// `Ok(())` for `KERN_SUCCESS`, else the code wrapped with the operation and address.
    pub fn check(self, op: &'static str, addr: Option<u64>) -> Result<(), TaskError> {
        if self == Self::SUCCESS { Ok(()) } else { Err(TaskError::Kern { op, addr, code: self }) }
    }
}

impl fmt::Debug for KernError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "KernError({:#x})", self.0),
        }
    }
}

impl fmt::Display for KernError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.message()),
            None => write!(f, "kern_return_t {:#x}", self.0),
        }
    }
}

/// Formats an optional address as ` at 0x…`, or nothing.
struct At(Option<u64>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, " at {addr:#x}"),
            None => Ok(()),
        }
    }
}

/// Everything that can go wrong when reaching into a task.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A kernel call returned an error.
    #[error("{op}{at}: {code}", at = At(*addr))]
    Kern { op: &'static str, addr: Option<u64>, code: KernError },
    /// A protection request asked for WRITE and EXECUTE together; arm64 macOS always refuses it, so this crate
    /// never sends one.
    #[error("refusing to request {prot} at {addr:#x}: arm64 macOS never grants write and execute together")]
    WriteExecute { addr: u64, prot: VmProt },
    /// After `VM_PROT_COPY` the kernel removed EXECUTE from the region's maximum protection, so the code could
    /// never be made executable again (a code-signing monitor refused a debug region).
    #[error(
        "after VM_PROT_COPY at {addr:#x} the region's max protection is {max}: it can no longer execute; \
         the target is not debuggable on this machine (spawn it in debugged mode)"
    )]
    ExecuteLost { addr: u64, max: VmProt },
    /// Restoring the original protection after a write did not take.
    #[error("restoring protection {want} at {addr:#x} left it {got}")]
    RestoreFailed { addr: u64, want: VmProt, got: VmProt },
    /// The bytes read back after a write differ from the bytes written.
    #[error("wrote {len} bytes at {addr:#x} but read back different bytes")]
    VerifyMismatch { addr: u64, len: usize },
    /// No region holds the address.
    #[error("no mapped region holds {addr:#x}")]
    Unmapped { addr: u64 },
    /// No `MH_EXECUTE` header was found in any readable region.
    #[error("no MH_EXECUTE image is mapped in process {pid}")]
    NoMainImage { pid: u32 },
    /// The process has exited or was killed.
    #[error("process {pid} is not running ({status})")]
    Dead { pid: u32, status: String },
    /// An operating-system call failed (spawn, signals, wait).
    #[error("{op}: {source}")]
    Os { op: &'static str, source: std::io::Error },
    /// The task port of another process could not be taken.
    #[error(
        "task_for_pid({pid}) failed: {reason}; taking another process's task port needs root, or the \
         com.apple.security.cs.debugger entitlement and a target with get-task-allow (see scripts/mac-runner.sh)"
    )]
    TaskPort { pid: u32, reason: String },
    /// `posix_spawn` refused to start the program.
    #[error("posix_spawn {}: {source}", path.display())]
    Spawn { path: std::path::PathBuf, source: std::io::Error },
    /// Attaching to a process with `ptrace` (debugged mode) failed.
    #[error("attaching to process {pid} with ptrace failed: {reason}")]
    Attach { pid: u32, reason: String },
    /// The operation cannot be done on this task at all.
    #[error("{op} is not possible here: {why}")]
    Unsupported { op: &'static str, why: &'static str },
}

impl TaskError {
    /// The kernel code inside, if this is a kernel error.
    pub fn kern_code(&self) -> Option<KernError> {
        match self {
            TaskError::Kern { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_operation_address_and_code() {
        let err = KernError::PROTECTION_FAILURE.check("mach_vm_protect", Some(0x1_0000_4000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mach_vm_protect at 0x100004000: (os/kern) protection failure (KERN_PROTECTION_FAILURE)"
        );
        assert_eq!(err.kern_code(), Some(KernError::PROTECTION_FAILURE));
        assert!(KernError::SUCCESS.check("x", None).is_ok());
    }

    #[test]
    fn unknown_codes_survive() {
        let code = KernError(0x1234_5678);
        assert_eq!(code.name(), None);
        assert_eq!(code.to_string(), "kern_return_t 0x12345678");
        assert_eq!(format!("{code:?}"), "KernError(0x12345678)");
    }
}
