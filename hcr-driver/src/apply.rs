//! Applying an update to a live process, safely (contract item 8).
//!
//! The process is suspended before the linker plans the update (so the liveness scan it planned with is still
//! true), and stays suspended until every write is done. Everything that can be checked without touching the
//! process is checked first — the order of the writes, the shape of every cell store, and that no code write
//! overlaps an address a thread is executing or may return into — so that a refusal leaves the process exactly
//! as it was. Then code and data are written (`Task::write_code` flushes and verifies each chunk), and the cells
//! that publish them come last. If a write fails half-way, the process is left suspended, never half-patched and
//! running, and the error lists what was written.

use std::collections::BTreeSet;

use mach_task::{PAGE_SIZE, Suspended, Task, TaskError};

use crate::liveness::LiveCode;
use crate::report::Writes;

/// One write into the process, in link-time addresses, exactly as the linker's `Patch` lists it.
pub use got_linker::patch::{Write as MemWrite, WriteKind};

/// Why an update was not applied, or not completely.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "refusing to patch: writing {what} at {addr:#x} would overwrite code that a thread is running or may \
         return into; nothing was written"
    )]
    LiveCode { what: String, addr: u64 },
    #[error(
        "refusing to patch: the store to cell {what} at {addr:#x} comes before code or data it may publish"
    )]
    CellsNotLast { what: String, addr: u64 },
    #[error("refusing to patch: cell {what} at {addr:#x} is not one aligned 8-byte store")]
    BadCell { what: String, addr: u64 },
    #[error(
        "refusing to patch: {what} at {addr:#x} lists a pointer at offset {offset} outside its {len} bytes"
    )]
    BadPointer { what: String, addr: u64, offset: u32, len: usize },
    #[error(
        "the process is stopped half-patched: {error} while writing {what} at {addr:#x}; {written} of {total} \
         writes were applied before it"
    )]
    Partial { what: String, addr: u64, error: TaskError, written: usize, total: usize },
    #[error("the update was applied but the process could not be resumed: {0}")]
    Resume(TaskError),
}

/// Applies `writes` to the suspended process and resumes it. On [`ApplyError::Partial`] the process stays
/// suspended: the caller decides whether to kill it, and must not let it run.
pub fn apply<T: Task + ?Sized>(
    suspended: Suspended<'_, T>,
    live: &LiveCode,
    slide: u64,
    writes: &[MemWrite],
) -> Result<Writes, ApplyError> {
    check(live, writes)?;
    let task = suspended.task();
    let mut stats = Writes::default();
    let mut pages = BTreeSet::new();
    for (index, write) in writes.iter().enumerate() {
        let runtime = write.addr.wrapping_add(slide);
        let bytes = slid(write, slide);
        let result = match write.kind {
            WriteKind::Code => task.write_code(runtime, &bytes),
            WriteKind::Data | WriteKind::Cell => task.write_data(runtime, &bytes),
        };
        if let Err(error) = result {
            // Keep the process suspended: running half-patched code is worse than not running.
            std::mem::forget(suspended);
            return Err(ApplyError::Partial {
                what: write.what.clone(),
                addr: write.addr,
                error,
                written: index,
                total: writes.len(),
            });
        }
        stats.writes += 1;
        stats.bytes += bytes.len() as u64;
        let last = runtime + bytes.len().max(1) as u64 - 1;
        pages.extend(runtime / PAGE_SIZE..=last / PAGE_SIZE);
    }
    stats.pages = pages.len() as u32;
    suspended.resume().map_err(ApplyError::Resume)?;
    Ok(stats)
}

/// Everything that can be refused before the first write.
fn check(live: &LiveCode, writes: &[MemWrite]) -> Result<(), ApplyError> {
    let mut seen_cell = None::<&MemWrite>;
    for write in writes {
        let (what, addr) = (write.what.clone(), write.addr);
        match write.kind {
            WriteKind::Cell => {
                if write.bytes.len() != 8 || write.addr % 8 != 0 {
                    return Err(ApplyError::BadCell { what, addr });
                }
                seen_cell = Some(write);
            }
            WriteKind::Code | WriteKind::Data => {
                if let Some(cell) = seen_cell {
                    return Err(ApplyError::CellsNotLast { what: cell.what.clone(), addr: cell.addr });
                }
            }
        }
        if write.kind == WriteKind::Code && live.any_in(write.addr..write.addr + write.bytes.len() as u64) {
            return Err(ApplyError::LiveCode { what, addr });
        }
        if let Some(&offset) = write.pointers.iter().find(|&&o| o as usize + 8 > write.bytes.len()) {
            return Err(ApplyError::BadPointer { what, addr, offset, len: write.bytes.len() });
        }
    }
    Ok(())
}

/// The bytes with every listed pointer slid.
fn slid(write: &MemWrite, slide: u64) -> Vec<u8> {
    let mut bytes = write.bytes.clone();
    for &offset in &write.pointers {
        let at = offset as usize;
        let value = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("checked: 8 bytes in range"));
        bytes[at..at + 8].copy_from_slice(&value.wrapping_add(slide).to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use mach_task::{ThreadState, VmProt};

    use super::*;
    use crate::fake_task::FakeTask;

    const SLIDE: u64 = 0x8000;
    const TEXT: u64 = 0x1_0000_4000;
    const CELLS: u64 = 0x1_0400_0000;

    /// Text is `r-x/r-x` as the kernel maps it; cells are `r--/rw-` as dyld leaves `__DATA_CONST`.
    fn process() -> FakeTask {
        let mut task = FakeTask::default();
        task.map(TEXT + SLIDE, PAGE_SIZE, VmProt::RX, VmProt::RX);
        task.map(CELLS + SLIDE, PAGE_SIZE, VmProt::READ, VmProt::RW);
        task.threads = vec![ThreadState { id: 0, pc: TEXT + SLIDE + 0x40, lr: 0, sp: 0, fp: 0, x16: 0 }];
        task
    }

    fn code(addr: u64, bytes: &[u8]) -> MemWrite {
        MemWrite { kind: WriteKind::Code, addr, bytes: bytes.to_vec(), pointers: vec![], what: "_bar".into() }
    }

    fn cell(addr: u64, target: u64) -> MemWrite {
        MemWrite {
            kind: WriteKind::Cell,
            addr,
            bytes: target.to_le_bytes().to_vec(),
            pointers: vec![0],
            what: "_bar$cell".into(),
        }
    }

    #[test]
    fn writes_code_then_slid_cells_and_resumes() {
        let task = process();
        let live = LiveCode::from_addrs(vec![TEXT + 0x40]);
        let body = [0xc0, 0x03, 0x5f, 0xd6]; // ret
        let writes = [code(TEXT + 0x100, &body), cell(CELLS + 8, TEXT + 0x100)];

        let stats = apply(task.suspend().unwrap(), &live, SLIDE, &writes).unwrap();

        assert_eq!(task.peek(TEXT + SLIDE + 0x100, 4), body);
        assert_eq!(task.peek(CELLS + SLIDE + 8, 8), (TEXT + 0x100 + SLIDE).to_le_bytes());
        assert_eq!(stats, Writes { writes: 2, bytes: 12, pages: 2 });
        assert_eq!(task.suspend_count.get(), 0, "resumed");
        assert!(task.flushes.borrow().contains(&(TEXT + SLIDE + 0x100, 4)), "code was flushed");
        // Protections are as they were: code executable again, cells read-only again.
        assert_eq!(task.region_containing(TEXT + SLIDE).unwrap().prot, VmProt::RX);
        assert_eq!(task.region_containing(CELLS + SLIDE).unwrap().prot, VmProt::READ);
    }

    #[test]
    fn refuses_to_overwrite_live_code_and_writes_nothing() {
        let task = process();
        let live = LiveCode::from_addrs(vec![TEXT + 0x40]);
        let before = task.peek(TEXT + SLIDE, 0x80);
        let writes = [code(TEXT + 0x20, &[0; 0x40])];

        let err = apply(task.suspend().unwrap(), &live, SLIDE, &writes).unwrap_err();

        assert!(matches!(err, ApplyError::LiveCode { addr, .. } if addr == TEXT + 0x20), "{err}");
        assert_eq!(task.peek(TEXT + SLIDE, 0x80), before);
        assert_eq!(task.suspend_count.get(), 0, "a refusal resumes the untouched process");
    }

    #[test]
    fn refuses_cells_before_code_and_misshapen_cells() {
        let task = process();
        let live = LiveCode::default();
        let early = [cell(CELLS, TEXT), code(TEXT + 0x100, &[0; 4])];
        let err = apply(task.suspend().unwrap(), &live, SLIDE, &early).unwrap_err();
        assert!(matches!(err, ApplyError::CellsNotLast { .. }), "{err}");

        let mut unaligned = cell(CELLS + 4, TEXT);
        let err = apply(task.suspend().unwrap(), &live, SLIDE, std::slice::from_ref(&unaligned)).unwrap_err();
        assert!(matches!(err, ApplyError::BadCell { .. }), "{err}");
        unaligned.addr = CELLS;
        unaligned.pointers = vec![4];
        let err = apply(task.suspend().unwrap(), &live, SLIDE, &[unaligned]).unwrap_err();
        assert!(matches!(err, ApplyError::BadPointer { offset: 4, .. }), "{err}");

        assert_eq!(task.peek(CELLS + SLIDE, 16), [0; 16], "nothing was written");
        assert_eq!(task.suspend_count.get(), 0);
    }

    #[test]
    fn a_failure_half_way_leaves_the_process_suspended_and_says_what_was_written() {
        let task = process();
        // The code write makes one raw write; the cell's write is the second.
        task.fail_write.set(Some(1));
        let writes = [code(TEXT + 0x100, &[1, 2, 3, 4]), cell(CELLS, TEXT + 0x100)];

        let err = apply(task.suspend().unwrap(), &LiveCode::default(), SLIDE, &writes).unwrap_err();

        match &err {
            ApplyError::Partial { what, written, total, .. } => {
                assert_eq!((what.as_str(), *written, *total), ("_bar$cell", 1, 2));
            }
            other => panic!("expected a partial failure, got {other}"),
        }
        assert_eq!(task.suspend_count.get(), 1, "still suspended");
        assert_eq!(task.peek(CELLS + SLIDE, 8), [0; 8], "the cell was not published");
    }
}
