//! An incremental arm64 Mach-O linker for clang's objects.
//!
//! Architecture invariant: produces data (a `Patch`); never touches a live process.

#![forbid(unsafe_code)]

pub mod arm64;
mod error;
pub mod input;
pub mod link;
pub mod patch;
pub mod prepare;
pub mod resolve;
mod reuse;
pub mod stub;
pub mod tbd;
pub mod verify;

pub use error::{InputError, UnsupportedReloc};
pub use link::{LinkError, Linker, Liveness, NothingLive, SymbolMap};
pub use patch::{NewImport, Patch, Summary, Write, WriteKind};
