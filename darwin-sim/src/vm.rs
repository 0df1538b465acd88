//! The guest's address-space map: which pages exist, their current and maximum protection, and the kernel's rules
//! for changing them (xnu's `vm_map_protect` as far as a patcher can observe it).
//!
//! This is the authority for every [`mach_task::Task`] call; Unicorn only mirrors the current protections so that
//! guest accesses fault the same way. Pure data: no emulator here, so the rules are unit-tested directly.

use mach_task::{KernError, PAGE_SIZE, Region, TaskError, VmProt};

/// One mapping: a run of pages with one protection pair, named for messages and region listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub start: u64,
    pub size: u64,
    pub prot: VmProt,
    pub max_prot: VmProt,
    /// What the mapping is (`__TEXT`, `stack`, `MALLOC`, …). Entries with different tags never merge, like
    /// distinct VM objects in xnu.
    pub tag: String,
}

impl Entry {
    fn end(&self) -> u64 {
        self.start + self.size
    }

    fn region(&self) -> Region {
        Region { start: self.start, size: self.size, prot: self.prot, max_prot: self.max_prot }
    }
}

/// The address space: non-overlapping entries in ascending order.
#[derive(Debug, Default, Clone)]
pub struct VmMap {
    entries: Vec<Entry>,
}

/// Rounds `[addr, addr + len)` out to whole pages, as the kernel does for protections.
pub fn page_range(addr: u64, len: u64) -> (u64, u64) {
    let start = addr & !(PAGE_SIZE - 1);
    let end = (addr.saturating_add(len)).next_multiple_of(PAGE_SIZE);
    (start, end)
}

impl VmMap {
    /// Adds a mapping. `start` and `size` must be page-aligned and the range free.
    pub fn map(
        &mut self,
        start: u64,
        size: u64,
        prot: VmProt,
        max_prot: VmProt,
        tag: &str,
    ) -> Result<(), String> {
        if !start.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) || size == 0 {
            return Err(format!("mapping {tag} at {start:#x} size {size:#x} is not page-aligned"));
        }
        let end = start + size;
        if let Some(e) = self.entries.iter().find(|e| e.start < end && start < e.end()) {
            return Err(format!(
                "mapping {tag} at {start:#x}..{end:#x} overlaps {} at {:#x}..{:#x}",
                e.tag,
                e.start,
                e.end()
            ));
        }
        let at = self.entries.partition_point(|e| e.start < start);
        self.entries.insert(at, Entry { start, size, prot, max_prot, tag: tag.to_string() });
        self.coalesce();
        Ok(())
    }

    /// Every entry, ascending.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry holding `addr`.
    pub fn entry(&self, addr: u64) -> Option<&Entry> {
        let i = self.entries.partition_point(|e| e.end() <= addr);
        self.entries.get(i).filter(|e| e.start <= addr)
    }

    /// The region holding `addr`, else the first one above it (`mach_vm_region_recurse`).
    pub fn region(&self, addr: u64) -> Option<Region> {
        let i = self.entries.partition_point(|e| e.end() <= addr);
        self.entries.get(i).map(Entry::region)
    }

    /// The highest address any mapping reaches.
    pub fn end(&self) -> u64 {
        self.entries.last().map_or(0, Entry::end)
    }

    /// Checks that every byte of `[addr, addr + len)` is mapped with all of `need` in its current protection:
    /// `KERN_INVALID_ADDRESS` for a hole, `KERN_PROTECTION_FAILURE` for a page without the access.
    pub fn check_access(&self, op: &'static str, addr: u64, len: u64, need: VmProt) -> Result<(), TaskError> {
        let end = addr.checked_add(len).ok_or(TaskError::Kern {
            op,
            addr: Some(addr),
            code: KernError::INVALID_ADDRESS,
        })?;
        let mut at = addr;
        while at < end.max(addr + 1) {
            let Some(e) = self.entry(at) else {
                return Err(TaskError::Kern { op, addr: Some(at), code: KernError::INVALID_ADDRESS });
            };
            if !e.prot.contains(need) {
                return Err(TaskError::Kern { op, addr: Some(at), code: KernError::PROTECTION_FAILURE });
            }
            at = e.end();
            if len == 0 {
                break;
            }
        }
        Ok(())
    }

    /// `mach_vm_protect(set_maximum = false)`: applies the kernel's rules and returns the page range whose
    /// protection changed, so the caller can mirror it into the emulator.
    ///
    /// - WRITE with EXECUTE is refused (arm64 macOS: `KERN_PROTECTION_FAILURE`), with or without COPY.
    /// - Every page in the range must be mapped (`KERN_INVALID_ADDRESS`).
    /// - Without COPY, the request must fit in each entry's maximum (`KERN_PROTECTION_FAILURE`); nothing changes
    ///   unless every entry allows it.
    /// - With COPY, the range becomes a private copy whose maximum gains WRITE and keeps the rest (xnu: "from
    ///   r-x/r-x to rw-/rwx via vm_protect(VM_PROT_COPY)"), then the request must fit in that.
    pub fn protect(&mut self, addr: u64, len: u64, req: VmProt) -> Result<(u64, u64), TaskError> {
        const OP: &str = "mach_vm_protect";
        let fail = |code| TaskError::Kern { op: OP, addr: Some(addr), code };
        let copy = req.contains(VmProt::COPY);
        let prot = req - VmProt::COPY;
        if prot.is_write_execute() {
            return Err(fail(KernError::PROTECTION_FAILURE));
        }
        let (start, end) = page_range(addr, len.max(1));
        self.check_access(OP, start, end - start, VmProt::empty())?;
        for e in self.entries.iter().filter(|e| e.start < end && start < e.end()) {
            let max = if copy { e.max_prot | VmProt::WRITE } else { e.max_prot };
            if !max.contains(prot) {
                return Err(fail(KernError::PROTECTION_FAILURE));
            }
        }
        self.split_at(start);
        self.split_at(end);
        for e in self.entries.iter_mut().filter(|e| e.start >= start && e.end() <= end) {
            if copy {
                e.max_prot |= VmProt::WRITE;
            }
            e.prot = prot;
        }
        self.coalesce();
        Ok((start, end))
    }

    /// Sets the protection of a range unconditionally: the loader's `mprotect` of `__DATA_CONST` after fixups.
    pub fn force_protect(&mut self, start: u64, end: u64, prot: VmProt) {
        self.split_at(start);
        self.split_at(end);
        for e in self.entries.iter_mut().filter(|e| e.start >= start && e.end() <= end) {
            e.prot = prot;
        }
        self.coalesce();
    }

    fn split_at(&mut self, at: u64) {
        let i = self.entries.partition_point(|e| e.end() <= at);
        if let Some(e) = self.entries.get(i)
            && e.start < at
        {
            let mut tail = e.clone();
            tail.start = at;
            tail.size = e.end() - at;
            self.entries[i].size = at - self.entries[i].start;
            self.entries.insert(i + 1, tail);
        }
    }

    fn coalesce(&mut self) {
        let mut out: Vec<Entry> = Vec::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            match out.last_mut() {
                Some(last)
                    if last.end() == e.start
                        && last.tag == e.tag
                        && last.prot == e.prot
                        && last.max_prot == e.max_prot =>
                {
                    last.size += e.size;
                }
                _ => out.push(e),
            }
        }
        self.entries = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: u64 = 0x1_0000_0000;

    fn map() -> VmMap {
        let mut vm = VmMap::default();
        vm.map(TEXT, 4 * PAGE_SIZE, VmProt::RX, VmProt::RX, "__TEXT").unwrap();
        vm.map(TEXT + 4 * PAGE_SIZE, PAGE_SIZE, VmProt::READ, VmProt::RW, "__DATA_CONST").unwrap();
        vm
    }

    fn code(err: TaskError) -> KernError {
        err.kern_code().unwrap()
    }

    #[test]
    fn writing_code_needs_copy_and_copy_keeps_execute_in_max() {
        let mut vm = map();
        assert_eq!(code(vm.protect(TEXT, 4, VmProt::RW).unwrap_err()), KernError::PROTECTION_FAILURE);
        assert_eq!(vm.region(TEXT).unwrap().prot, VmProt::RX, "a refused request changes nothing");
        vm.protect(TEXT + 5, 4, VmProt::RW | VmProt::COPY).unwrap();
        let r = vm.region(TEXT).unwrap();
        assert_eq!(
            (r.start, r.size, r.prot, r.max_prot),
            (TEXT, PAGE_SIZE, VmProt::RW, VmProt::all() - VmProt::COPY)
        );
        assert_eq!(vm.region(TEXT + PAGE_SIZE).unwrap().prot, VmProt::RX, "only the touched page changed");
        vm.protect(TEXT, PAGE_SIZE, VmProt::RX).unwrap();
        vm.protect(TEXT, PAGE_SIZE, VmProt::RW).unwrap();
        assert_eq!(vm.region(TEXT).unwrap().prot, VmProt::RW, "max already has WRITE: no COPY needed again");
    }

    #[test]
    fn write_and_execute_together_always_fail() {
        let mut vm = map();
        let requests = [VmProt::all() - VmProt::COPY, VmProt::all(), VmProt::WRITE | VmProt::EXECUTE];
        for req in requests {
            assert_eq!(code(vm.protect(TEXT, 4, req).unwrap_err()), KernError::PROTECTION_FAILURE, "{req}");
        }
        // After a COPY the maximum is rwx, so only the W^X rule itself can refuse these.
        vm.protect(TEXT, 4, VmProt::RW | VmProt::COPY).unwrap();
        vm.protect(TEXT, 4, VmProt::RX).unwrap();
        assert_eq!(vm.region(TEXT).unwrap().max_prot, VmProt::all() - VmProt::COPY);
        for req in requests {
            assert_eq!(code(vm.protect(TEXT, 4, req).unwrap_err()), KernError::PROTECTION_FAILURE, "{req}");
            assert_eq!(vm.region(TEXT).unwrap().prot, VmProt::RX, "refused {req} changed nothing");
        }
    }

    #[test]
    fn access_checks_name_the_failing_address() {
        let mut vm = map();
        let err = vm.check_access("mach_vm_write", TEXT + 8, 4, VmProt::WRITE).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mach_vm_write at 0x100000008: (os/kern) protection failure (KERN_PROTECTION_FAILURE)"
        );
        let hole = TEXT + 5 * PAGE_SIZE;
        assert_eq!(
            code(vm.check_access("read", hole - 4, 8, VmProt::READ).unwrap_err()),
            KernError::INVALID_ADDRESS
        );
        assert_eq!(code(vm.protect(hole - 4, 8, VmProt::READ).unwrap_err()), KernError::INVALID_ADDRESS);
        vm.protect(TEXT + 4 * PAGE_SIZE, 8, VmProt::RW).unwrap();
        vm.check_access("mach_vm_write", TEXT + 4 * PAGE_SIZE, 8, VmProt::WRITE).unwrap();
    }

    #[test]
    fn regions_split_and_merge_back() {
        let mut vm = map();
        vm.protect(TEXT + PAGE_SIZE, PAGE_SIZE, VmProt::RW | VmProt::COPY).unwrap();
        assert_eq!(vm.entries().len(), 4);
        vm.protect(TEXT + PAGE_SIZE, PAGE_SIZE, VmProt::RX).unwrap();
        // The copied page keeps its wider maximum, so it stays a separate region, like a COW copy in xnu.
        assert_eq!(vm.entries().len(), 4);
        assert_eq!(vm.region(0).unwrap().start, TEXT);
        assert_eq!(vm.region(TEXT + 5 * PAGE_SIZE), None);
        assert!(vm.map(TEXT + PAGE_SIZE, PAGE_SIZE, VmProt::READ, VmProt::READ, "x").is_err());
    }
}
