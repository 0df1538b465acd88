//! Raw declarations that `mach2` 0.7 and `libc` 0.2 lack, each with the header it comes from and a layout
//! assertion. Nothing else in the crate declares an `extern` item.
//!
//! What is deliberately *not* here because `mach2` 0.7 has it: `mach_vm_machine_attribute`, `MATTR_CACHE`,
//! `MATTR_VAL_CACHE_FLUSH` (`mach2::vm`, `mach2::vm_attributes`), `mach_vm_region_recurse` and
//! `vm_region_submap_info_64` (`mach2::vm`, `mach2::vm_region`), `task_threads`, `task_suspend`, `task_resume`,
//! `task_info` with `MACH_TASK_BASIC_INFO` and `TASK_DYLD_INFO`, `thread_get_state`, `task_for_pid`,
//! `mach_port_deallocate`. From `libc`: `posix_spawn` and its attribute and file-action functions (all but
//! `posix_spawn_file_actions_addinherit_np`), `ptrace` with `PT_ATTACH`/`PT_DETACH`, `kill`, `waitpid`,
//! `pipe`, `fcntl`.
//!
//! What `mach2` has but in a form this crate cannot use: `ARM_THREAD_STATE64` is a `pub static` and
//! `arm_thread_state64_t` exists only when *compiling for* aarch64, while the layout is a fact about the
//! kernel's interface; both are restated here as constants so the module reads the same on every Mac.

#![allow(unsafe_code)] // FFI declarations; every call site has its own `// SAFETY:` comment.

use core::ffi::{c_int, c_short, c_void};
use core::mem::size_of;

use mach2::kern_return::kern_return_t;
use mach2::mach_types::thread_act_t;
use mach2::message::mach_msg_type_number_t;
use mach2::vm_region::vm_region_submap_info_64;

// ---------------------------------------------------------------------------------------------------------
// <mach/vm_region.h>

/// `VM_REGION_SUBMAP_INFO_COUNT_64`: the V2 count, in 4-byte `natural_t` units (xnu osfmk/mach/vm_region.h).
/// `mach2` only offers `vm_region_submap_info_64::count()`.
pub const VM_REGION_SUBMAP_INFO_COUNT_64: mach_msg_type_number_t = 19;
const _: () = assert!(size_of::<vm_region_submap_info_64>() == 76);
const _: () = assert!(size_of::<vm_region_submap_info_64>() / 4 == VM_REGION_SUBMAP_INFO_COUNT_64 as usize);

// ---------------------------------------------------------------------------------------------------------
// <mach/arm/thread_status.h>, <mach/arm/_structs.h>

/// `ARM_THREAD_STATE64`, the flavor of [`ArmThreadState64`].
pub const ARM_THREAD_STATE64: c_int = 6;

/// `struct __darwin_arm_thread_state64`: x0–x28, fp (x29), lr (x30), sp, pc, cpsr and padding.
///
/// A process running as `arm64` (not `arm64e`) always receives raw register values: the kernel marks the
/// state `NO_PTRAUTH` when either side has user pointer authentication disabled (xnu osfmk/arm64/status.c).
/// An `arm64e` target inspected by an `arm64` patcher would still get stripped values, so no masking is done.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ArmThreadState64 {
    pub x: [u64; 29],
    pub fp: u64,
    pub lr: u64,
    pub sp: u64,
    pub pc: u64,
    pub cpsr: u32,
    pub pad: u32,
}

/// `ARM_THREAD_STATE64_COUNT`: the size of [`ArmThreadState64`] in 4-byte words.
pub const ARM_THREAD_STATE64_COUNT: mach_msg_type_number_t = 68;
const _: () = assert!(size_of::<ArmThreadState64>() == 272);
const _: () = assert!(size_of::<ArmThreadState64>() / 4 == ARM_THREAD_STATE64_COUNT as usize);
#[cfg(target_arch = "aarch64")]
const _: () = assert!(size_of::<ArmThreadState64>() == size_of::<mach2::structs::arm_thread_state64_t>());

// ---------------------------------------------------------------------------------------------------------
// <mach/thread_info.h>

/// `THREAD_IDENTIFIER_INFO`: the flavor of [`ThreadIdentifierInfo`].
pub const THREAD_IDENTIFIER_INFO: c_int = 4;

/// `struct thread_identifier_info`. `thread_id` is system-wide unique and stable for the thread's life, unlike
/// the port name a `task_threads` call hands out.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadIdentifierInfo {
    pub thread_id: u64,
    pub thread_handle: u64,
    pub dispatch_qaddr: u64,
}

/// `THREAD_IDENTIFIER_INFO_COUNT`.
pub const THREAD_IDENTIFIER_INFO_COUNT: mach_msg_type_number_t = 6;
const _: () = assert!(size_of::<ThreadIdentifierInfo>() / 4 == THREAD_IDENTIFIER_INFO_COUNT as usize);

unsafe extern "C" {
    /// `kern_return_t thread_info(thread_inspect_t, thread_flavor_t, thread_info_t, mach_msg_type_number_t *)`
    /// (<mach/thread_act.h>).
    pub fn thread_info(
        target_act: thread_act_t,
        flavor: c_int,
        thread_info_out: *mut c_int,
        thread_info_out_cnt: *mut mach_msg_type_number_t,
    ) -> kern_return_t;
}

// ---------------------------------------------------------------------------------------------------------
// <spawn.h> (xnu bsd/sys/spawn.h). `libc` has the public flags as `c_int`, but `posix_spawnattr_setflags`
// takes a `short`, so they are restated with the right type and checked against `libc`.

pub const POSIX_SPAWN_SETSIGDEF: c_short = 0x0004;
pub const POSIX_SPAWN_SETSIGMASK: c_short = 0x0008;
pub const POSIX_SPAWN_START_SUSPENDED: c_short = 0x0080;
/// Close every descriptor in the child except those the file actions name (dup2, open, inherit).
pub const POSIX_SPAWN_CLOEXEC_DEFAULT: c_short = 0x4000;
/// Private (`_POSIX_SPAWN_DISABLE_ASLR`): load the image without a slide. Ignored for setuid binaries and
/// inherited by the children of a process that has it.
pub const POSIX_SPAWN_DISABLE_ASLR: c_short = 0x0100;
const _: () = assert!(POSIX_SPAWN_SETSIGDEF as c_int == libc::POSIX_SPAWN_SETSIGDEF);
const _: () = assert!(POSIX_SPAWN_SETSIGMASK as c_int == libc::POSIX_SPAWN_SETSIGMASK);
const _: () = assert!(POSIX_SPAWN_START_SUSPENDED as c_int == libc::POSIX_SPAWN_START_SUSPENDED);
const _: () = assert!(POSIX_SPAWN_CLOEXEC_DEFAULT as c_int == libc::POSIX_SPAWN_CLOEXEC_DEFAULT);

unsafe extern "C" {
    /// `int posix_spawn_file_actions_addinherit_np(posix_spawn_file_actions_t *, int filedes)`: keep `filedes`
    /// open in the child despite `POSIX_SPAWN_CLOEXEC_DEFAULT`. Returns an errno value.
    pub fn posix_spawn_file_actions_addinherit_np(
        actions: *mut libc::posix_spawn_file_actions_t,
        filedes: c_int,
    ) -> c_int;
}

// ---------------------------------------------------------------------------------------------------------
// <sys/codesign.h> (xnu bsd/sys/codesign.h). The `CS_*` flag values are in `crate::CsFlags`.

/// `CS_OPS_STATUS`: read the process's code-signing flags (a `uint32_t`). Allowed for non-root callers.
pub const CS_OPS_STATUS: u32 = 0;

unsafe extern "C" {
    /// `int csops(pid_t pid, unsigned int ops, void *useraddr, size_t usersize)`: -1 and `errno` on failure.
    pub fn csops(pid: libc::pid_t, ops: u32, useraddr: *mut c_void, usersize: usize) -> c_int;
}
