//! The arm64 Mach-O executable image as values.
//!
//! Architecture invariant: no IO, no processes, no object files. It is given atoms and bytes and renders a
//! file; it can say which ranges changed since the last render.

#![forbid(unsafe_code)]

pub mod codesign;
pub mod linkedit;
