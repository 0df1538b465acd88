//! The linker's errors: each names the file, and where it applies the section, offset and symbol, so that a
//! user can find the line of C that caused it.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{path}: not a Mach-O object file: {reason}", path = path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: built for {arch}, but hcr links arm64 objects (compile with --target=arm64-apple-macos13)", path = path.display())]
    WrongArch { path: PathBuf, arch: String },
    #[error("{path}: a {kind} file, not an object file (MH_OBJECT)", path = path.display())]
    NotObject { path: PathBuf, kind: String },
    /// Boxed: it carries the most context, and errors travel through every `Result` of the reader.
    #[error("{0}")]
    UnsupportedReloc(Box<UnsupportedReloc>),
    #[error("{path}: {section}+{offset:#x}: bad relocation: {reason}", path = path.display())]
    BadReloc { path: PathBuf, section: String, offset: u64, reason: String },
    #[error("{path}: symbol #{index}: {reason}", path = path.display())]
    BadSymbol { path: PathBuf, index: usize, reason: String },
    #[error("{path}: section {section}: {reason}", path = path.display())]
    Unsupported { path: PathBuf, section: String, reason: String },
}

/// Where an unsupported relocation is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {section}+{offset:#x}: unsupported relocation {kind} against {symbol}{why}", path = path.display())]
pub struct UnsupportedReloc {
    pub path: PathBuf,
    pub section: String,
    pub offset: u64,
    pub kind: String,
    pub symbol: String,
    pub why: String,
}
