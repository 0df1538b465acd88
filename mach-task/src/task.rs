//! The `Task` trait: a live process seen from outside, and the code-patching recipe built on its primitives.
//!
//! Implementations provide only the kernel's primitives (read, raw write, protect, region query,
//! suspend/resume, threads, cache flush). The recipes that combine them — [`Task::write_code`],
//! [`Task::write_data`], [`Task::main_image_base`] — are provided methods, written once here. That is
//! deliberate: the strict simulator (`darwin-sim`) runs exactly the code that runs against the real kernel, so a
//! mistake in the recipe shows up on Linux.

use crate::{KernError, TaskError, VmProt};

/// The page size of arm64 macOS. Protections apply to whole pages and writes are split so that no chunk
/// crosses one (as lldb's debugserver does).
pub const PAGE_SIZE: u64 = 16 * 1024;

/// One mapped region of a task's address space (a leaf of `mach_vm_region_recurse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub size: u64,
    /// The current protection.
    pub prot: VmProt,
    /// The most the region may ever be given without `VM_PROT_COPY`.
    pub max_prot: VmProt,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end()).contains(&addr)
    }
}

/// The registers of one thread that the patcher needs to decide what is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadState {
    /// A stable identifier for the thread within this task (the Mach thread port name, or the simulator's index).
    pub id: u64,
    pub pc: u64,
    /// x30, the link register.
    pub lr: u64,
    pub sp: u64,
    /// x29, the frame pointer.
    pub fp: u64,
    /// x16, the first intra-procedure-call register. A call stub loads its target from the cell into x16 and
    /// branches to it: a thread stopped between the two will jump to the address x16 holds, so that code is live
    /// although neither the PC nor any return address points at it.
    pub x16: u64,
}

/// A live process, reached from outside.
///
/// All methods take `&self`: a task port is a handle, and a [`Suspended`] guard must be able to hold the task
/// while the patcher keeps using it.
pub trait Task {
    /// The process id, for messages.
    fn pid(&self) -> u32;

    /// Reads `buf.len()` bytes at `addr` (`mach_vm_read_overwrite`).
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), TaskError>;

    /// Writes bytes as they are (`mach_vm_write`). The range's current protection must include WRITE, and the
    /// caller flushes the instruction cache for code. Use [`Task::write_code`] or [`Task::write_data`] instead.
    fn write_raw(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError>;

    /// Sets the current protection of the pages covering `[addr, addr + size)` (`mach_vm_protect`, not the
    /// maximum). A request with WRITE and EXECUTE together must fail.
    fn protect(&self, addr: u64, size: u64, prot: VmProt) -> Result<(), TaskError>;

    /// The region holding `addr`, or else the first region above it; `None` past the last region
    /// (`mach_vm_region_recurse` at leaf depth).
    fn region(&self, addr: u64) -> Result<Option<Region>, TaskError>;

    /// Stops every thread of the task (`task_suspend`). Calls nest; prefer [`Task::suspend`].
    fn suspend_raw(&self) -> Result<(), TaskError>;

    /// Undoes one [`Task::suspend_raw`] (`task_resume`).
    fn resume_raw(&self) -> Result<(), TaskError>;

    /// Every thread's registers (`task_threads` + `thread_get_state(ARM_THREAD_STATE64)`). Meaningful while
    /// suspended.
    fn threads(&self) -> Result<Vec<ThreadState>, TaskError>;

    /// Makes the instruction cache coherent with memory for `[addr, addr + len)`
    /// (`mach_vm_machine_attribute(MATTR_CACHE, MATTR_VAL_CACHE_FLUSH)`).
    fn flush_icache(&self, addr: u64, len: u64) -> Result<(), TaskError>;

    /// Suspends the task until the returned guard is dropped or [`Suspended::resume`]d.
    fn suspend(&self) -> Result<Suspended<'_, Self>, TaskError> {
        self.suspend_raw()?;
        Ok(Suspended { task: self, resumed: false })
    }

    /// Reads `len` bytes at `addr` into a new vector.
    fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, TaskError> {
        let mut buf = vec![0; len];
        self.read(addr, &mut buf)?;
        Ok(buf)
    }

    /// Reads a little-endian `u64` at `addr`.
    fn read_u64(&self, addr: u64) -> Result<u64, TaskError> {
        let mut buf = [0; 8];
        self.read(addr, &mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    /// Every region, in ascending address order.
    fn regions(&self) -> Result<Vec<Region>, TaskError> {
        let mut out = Vec::new();
        let mut addr = 0;
        while let Some(region) = self.region(addr)? {
            addr = region.end();
            out.push(region);
        }
        Ok(out)
    }

    /// The region that holds `addr`, or an error naming the address.
    fn region_containing(&self, addr: u64) -> Result<Region, TaskError> {
        match self.region(addr)? {
            Some(region) if region.contains(addr) => Ok(region),
            _ => Err(TaskError::Unmapped { addr }),
        }
    }

    /// The runtime address of the main executable's `mach_header_64`: the first readable region that starts
    /// with `MH_MAGIC_64` and `filetype == MH_EXECUTE` (dyld is `MH_DYLINKER`, shared-cache images are
    /// `MH_DYLIB`). The ASLR slide is this minus the file's `__TEXT` vmaddr. This crate knows no more of Mach-O
    /// than these two fields.
    fn main_image_base(&self) -> Result<u64, TaskError> {
        const MH_MAGIC_64: u32 = 0xfeed_facf;
        const MH_EXECUTE: u32 = 2;
        for region in self.regions()? {
            if !region.prot.contains(VmProt::READ) || region.size < 16 {
                continue;
            }
            let mut header = [0u8; 16];
            if self.read(region.start, &mut header).is_err() {
                continue;
            }
            let word =
                |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
            if word(0) == MH_MAGIC_64 && word(12) == MH_EXECUTE {
                return Ok(region.start);
            }
        }
        Err(TaskError::NoMainImage { pid: self.pid() })
    }

    /// Writes data cells (GOT entries, `__DATA_CONST` made read-only by dyld, globals): writes directly where
    /// the pages are writable, else makes them `rw-` (with `VM_PROT_COPY` if their maximum protection lacks
    /// WRITE), writes, and restores the original protection. Never touches executable pages: those go through
    /// [`Task::write_code`].
    fn write_data(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        for_each_region_piece(self, addr, bytes, |region, piece_addr, piece| {
            if region.prot.contains(VmProt::EXECUTE) {
                return Err(TaskError::Kern {
                    op: "write_data (executable page: use write_code)",
                    addr: Some(piece_addr),
                    code: KernError::PROTECTION_FAILURE,
                });
            }
            if region.prot.contains(VmProt::WRITE) {
                return self.write_raw(piece_addr, piece);
            }
            let (start, len) = page_span(piece_addr, piece.len() as u64);
            make_writable(self, start, len, &region)?;
            let written = self.write_raw(piece_addr, piece);
            let restored = restore(self, start, len, region.prot);
            written.and(restored)
        })
    }

    /// Writes code into executable pages following lldb's debugserver: make the pages `rw-` (adding
    /// `VM_PROT_COPY` if their maximum protection lacks WRITE, and then checking that the maximum still has
    /// EXECUTE); write in chunks that never cross a page, flushing the instruction cache after each chunk; read
    /// the bytes back and compare; restore the original protection and check that it took.
    ///
    /// Never requests WRITE and EXECUTE together. The caller keeps the task suspended, so no thread runs while
    /// the pages are not executable.
    fn write_code(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        for_each_region_piece(self, addr, bytes, |region, piece_addr, piece| {
            let (start, len) = page_span(piece_addr, piece.len() as u64);
            make_writable(self, start, len, &region)?;
            let result = write_chunks_and_verify(self, piece_addr, piece);
            // Restore even when the write failed: leaving code pages non-executable would crash the target.
            let restored = restore(self, start, len, region.prot);
            result.and(restored)
        })
    }
}

/// Resumes the task when dropped. Dropping ignores a resume error (a dead task cannot be resumed, and there is
/// nothing more to do); call [`Suspended::resume`] to see it.
#[derive(Debug)]
pub struct Suspended<'a, T: Task + ?Sized> {
    task: &'a T,
    resumed: bool,
}

impl<T: Task + ?Sized> Suspended<'_, T> {
    /// Resumes now and reports the kernel's answer.
    pub fn resume(mut self) -> Result<(), TaskError> {
        self.resumed = true;
        self.task.resume_raw()
    }

    /// The suspended task.
    pub fn task(&self) -> &T {
        self.task
    }
}

impl<T: Task + ?Sized> Drop for Suspended<'_, T> {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = self.task.resume_raw();
        }
    }
}

/// The page-aligned span `(start, len)` covering `[addr, addr + len)`.
pub fn page_span(addr: u64, len: u64) -> (u64, u64) {
    let start = addr & !(PAGE_SIZE - 1);
    let end = (addr + len.max(1)).next_multiple_of(PAGE_SIZE);
    (start, end - start)
}

/// Splits `[addr, addr + bytes.len())` at region boundaries (each region has its own protections) and calls `f`
/// with each region and the piece of the write that falls in it.
fn for_each_region_piece<T: Task + ?Sized>(
    task: &T,
    addr: u64,
    bytes: &[u8],
    mut f: impl FnMut(Region, u64, &[u8]) -> Result<(), TaskError>,
) -> Result<(), TaskError> {
    let mut offset = 0usize;
    while offset < bytes.len() {
        let piece_addr = addr + offset as u64;
        let region = task.region_containing(piece_addr)?;
        let take = ((region.end() - piece_addr) as usize).min(bytes.len() - offset);
        f(region, piece_addr, &bytes[offset..offset + take])?;
        offset += take;
    }
    Ok(())
}

/// Makes `[start, start + len)` of `region` writable and not executable: `rw-`, else `rw-` with
/// `VM_PROT_COPY`. After a COPY of executable code, checks that the maximum protection still allows EXECUTE:
/// on machines with a code-signing monitor the kernel may strip it, and the code could never run again.
fn make_writable<T: Task + ?Sized>(task: &T, start: u64, len: u64, region: &Region) -> Result<(), TaskError> {
    if task.protect(start, len, VmProt::RW).is_ok() {
        return Ok(());
    }
    task.protect(start, len, VmProt::RW | VmProt::COPY)?;
    if region.prot.contains(VmProt::EXECUTE) {
        let after = task.region_containing(start)?;
        if !after.max_prot.contains(VmProt::EXECUTE) {
            return Err(TaskError::ExecuteLost { addr: start, max: after.max_prot });
        }
    }
    Ok(())
}

/// Writes in chunks that never cross a page, flushes each chunk from the instruction cache, then reads the
/// whole piece back and compares.
fn write_chunks_and_verify<T: Task + ?Sized>(task: &T, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
    let mut offset = 0usize;
    while offset < bytes.len() {
        let chunk_addr = addr + offset as u64;
        let left_in_page = (PAGE_SIZE - chunk_addr % PAGE_SIZE) as usize;
        let n = left_in_page.min(bytes.len() - offset);
        task.write_raw(chunk_addr, &bytes[offset..offset + n])?;
        task.flush_icache(chunk_addr, n as u64)?;
        offset += n;
    }
    if task.read_vec(addr, bytes.len())? != bytes {
        return Err(TaskError::VerifyMismatch { addr, len: bytes.len() });
    }
    Ok(())
}

/// Restores `prot` on `[start, start + len)` and checks that the region really has it now.
fn restore<T: Task + ?Sized>(task: &T, start: u64, len: u64, prot: VmProt) -> Result<(), TaskError> {
    task.protect(start, len, prot)?;
    let got = task.region_containing(start)?.prot;
    if got != prot {
        return Err(TaskError::RestoreFailed { addr: start, want: prot, got });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_span_covers_the_range_in_whole_pages() {
        assert_eq!(page_span(0x1_0000_4000, 4), (0x1_0000_4000, PAGE_SIZE));
        assert_eq!(page_span(0x1_0000_7ffe, 4), (0x1_0000_4000, 2 * PAGE_SIZE));
        assert_eq!(page_span(0x1_0000_4000, PAGE_SIZE), (0x1_0000_4000, PAGE_SIZE));
        assert_eq!(page_span(0x1_0000_4000, 0), (0x1_0000_4000, PAGE_SIZE));
    }
}
