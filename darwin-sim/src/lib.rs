//! Runs linked arm64 Mach-O executables on Linux inside Unicorn, playing dyld and a libSystem subset, and
//! exposes a running program as a [`mach_task::Task`] with the kernel's rules.
//!
//! - [`loader`]: dyld's part (segments, slide, rebases and binds from opcodes or chained fixups).
//! - [`machine`]: the emulator, memory, hooks, and the launch; [`shims`]: libSystem in Rust; [`threads`]: guest
//!   threads (pthreads), scheduled round-robin on the one emulated CPU.
//! - [`process`]: the emulator thread and the [`Process`] handle; `task.rs`: the `Task` implementation.
//! - [`sdk`]: the sim SDK that test programs compile and link against.
//!
//! Architecture invariant: a test harness only (GPL-2.0 through Unicorn); nothing published depends on it.

pub mod dyld_info;
pub mod error;
pub mod heap;
pub mod loader;
pub mod machine;
pub mod output;
pub mod printf;
pub mod process;
pub mod sdk;
pub mod shims;
mod task;
pub mod threads;
pub mod vm;

pub use error::SimError;
pub use machine::ExitStatus;
pub use output::{Output, Sink, Stream};
pub use process::{Outcome, Process, RunOptions, run_exe};
