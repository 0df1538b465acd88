//! Addresses of library functions that are valid in another process: how a new import is resolved in a running
//! child.
//!
//! The dyld shared cache, which holds libSystem and every other system library, is mapped at the same address in
//! every process of one architecture for the whole boot session (macos-task-port.md §5), so the address `dlsym`
//! returns here is the address the child would bind.

#![allow(unsafe_code)] // One libc call; the block has a `// SAFETY:` comment.

use std::ffi::CString;

/// The address of the C function or variable `name` (as C spells it, without the leading underscore of its
/// Mach-O symbol) in the shared cache, or `None` if no loaded library exports it.
pub fn shared_cache_symbol(name: &str) -> Option<u64> {
    let name = CString::new(name).ok()?;
    // SAFETY: `RTLD_DEFAULT` searches every loaded image; `name` is a NUL-terminated string that lives across the
    // call, and dlsym only reads it and dyld's own tables.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!address.is_null()).then_some(address as u64)
}
