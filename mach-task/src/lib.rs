//! A live process seen from outside, through its Mach task port.
//!
//! [`Task`] is the interface the patcher programs against: read, write code, write data, protect, regions,
//! suspend/resume, threads and their registers, instruction-cache flush. Implementations provide the kernel's
//! primitives; the recipes built on them (how to write into `r-x` code without ever asking for W+X, when to add
//! `VM_PROT_COPY`, flushing per chunk, verifying, restoring) live once, in [`task`], so every implementation
//! runs the same code. `MachTask` (macOS only) implements it over `mach2`; `darwin-sim` implements it over an
//! emulator, with the same rules as the kernel.
//!
//! Architecture invariant: this crate knows nothing of linking and no more of Mach-O than the two header fields
//! that identify the main executable in memory.

#![deny(unsafe_code)] // Only the macOS FFI modules allow it, each block with a `// SAFETY:` comment.

mod codesign;
mod error;
mod prot;
pub mod task;

#[cfg(feature = "contract")]
pub mod contract;

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
