//! The arm64 Mach-O executable image as values.
//!
//! Architecture invariant: no IO, no processes, no object files. It is given atoms and bytes and renders a
//! file; it can say which ranges changed since the last render.

#![forbid(unsafe_code)]

pub mod addr;
pub mod alloc;
pub mod codesign;
pub mod image;
pub mod linkedit;
pub mod load_commands;
pub mod read;

pub use addr::{FileOffset, PAGE_SIZE, VmAddr};
pub use image::{
    Atom, AtomId, IMAGE_BASE, Image, Import, LayoutConfig, LayoutError, Placement, Rendered, Section,
};
