//! Runs linked arm64 Mach-O executables on Linux inside Unicorn, playing dyld and a libSystem subset.
//!
//! Architecture invariant: a test harness only; nothing published depends on it.

pub mod heap;
pub mod printf;
pub mod sdk;
pub mod vm;
