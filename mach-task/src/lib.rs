//! A live process seen from outside, through its Mach task port.
//!
//! [`Task`] is the interface the patcher programs against: read, write code, write data, protect, regions,
//! suspend/resume, threads and their registers, instruction-cache flush. Implementations provide the kernel's
//! primitives; the recipes built on them (how to write into `r-x` code without ever asking for W+X, when to add
//! `VM_PROT_COPY`, flushing per chunk, verifying, restoring) live once, in [`task`], so every implementation
//! runs the same code. `darwin-sim` implements the trait over an emulator, with the same rules as the kernel.
//!
//! On macOS:
//! - `MachTask` implements [`Task`] over `mach2` (`MachTask::for_pid`, or `MachTask::current` for the own
//!   process). Ports and thread lists are released on drop.
//! - `Spawn` starts a program suspended before its first instruction (optionally without ASLR, or attached
//!   with `ptrace` in debugged mode) and returns a `Child`: its task, its slide, its code-signing flags
//!   ([`CsFlags`]), `resume` with `SIGCONT`, its output pipes. A child is killed and reaped on every error path
//!   and when dropped, never left stopped.
//!
//! With the `contract` feature, `contract` holds the checks every implementation of [`Task`] must pass;
//! `tests/macos.rs` runs them against the kernel, `darwin-sim` against the emulator.
//!
//! Architecture invariant: this crate knows nothing of linking and no more of Mach-O than the two header fields
//! that identify the main executable in memory. `unsafe` is confined to the macOS FFI modules (`sys`, `mach`,
//! `spawn`), each block with a `// SAFETY:` comment; the public API is safe.
//!
//! The review table below ties every Mach and BSD call to the kernel fact it relies on and the macOS test that
//! covers it (it is also `REVIEW.md` beside this crate's `Cargo.toml`).
//!
#![doc = include_str!("../REVIEW.md")]
#![deny(unsafe_code)] // Only the macOS FFI modules allow it, each block with a `// SAFETY:` comment.

mod codesign;
mod error;
mod prot;
pub mod task;

#[cfg(feature = "contract")]
pub mod contract;

#[cfg(target_os = "macos")]
pub mod dylib;
#[cfg(target_os = "macos")]
mod mach;
#[cfg(target_os = "macos")]
mod spawn;
#[cfg(target_os = "macos")]
mod sys;

pub use codesign::CsFlags;
pub use error::{KernError, TaskError};
#[cfg(target_os = "macos")]
pub use mach::{MachTask, TASK_FOR_PID_TIMEOUT};
pub use prot::VmProt;
#[cfg(target_os = "macos")]
pub use spawn::{Child, Spawn, Stdio};
pub use task::{PAGE_SIZE, Region, Suspended, Task, ThreadState};
