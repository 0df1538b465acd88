//! The crate's error type: launch failures worded like dyld's, and emulator failures naming the address.

use std::path::PathBuf;

/// Everything that can stop a program from being launched or run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The executable could not be read.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is not a linked arm64 executable the simulator understands.
    #[error("{}: {message}", path.display())]
    BadImage { path: PathBuf, message: String },
    /// An import that no library provides: dyld refuses to launch the program.
    #[error("dyld: Symbol not found: {symbol}\n  Referenced from: {}\n  Expected in:     {expected_in}", referenced_from.display())]
    SymbolNotFound { symbol: String, referenced_from: PathBuf, expected_in: String },
    /// A library the simulator does not provide.
    #[error("dyld: Library not loaded: {library}\n  Referenced from: {}", referenced_from.display())]
    LibraryNotLoaded { library: String, referenced_from: PathBuf },
    /// Unicorn refused an operation.
    #[error("unicorn: {op} at {addr:#x}: {message}")]
    Emulator { op: &'static str, addr: u64, message: String },
    /// The emulator thread could not be started or went away.
    #[error("the emulator thread {0}")]
    Thread(String),
}
