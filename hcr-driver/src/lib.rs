//! The `hcr` driver: compile, link, launch, watch, patch, report.
//!
//! Architecture invariant: contains no format or relocation logic; that lives in `got-linker` and
//! `macho-layout`.

#![forbid(unsafe_code)]

pub mod apply;
pub mod build;
pub mod build_graph;
pub mod compile;
pub mod depfile;
pub mod exe_file;
#[cfg(test)]
mod fake_task;
pub mod layout_view;
pub mod liveness;
pub mod protocol;
pub mod repl;
pub mod report;
pub mod serve;
pub mod session;
pub mod watch;
