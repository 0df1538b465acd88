//! An in-memory `Task` for the driver's unit tests: regions with current and maximum protections, threads
//! with fixed registers, and the kernel's rules that matter to the patcher (no write without WRITE, no W+X,
//! COPY needed to exceed max protection). The emulator (`darwin-sim`) is the full model; this one is small
//! enough to build in every unit test and to make fail on purpose.

use std::cell::{Cell, RefCell};

use mach_task::{KernError, Region, Task, TaskError, ThreadState, VmProt};

/// One region of the fake address space and its bytes.
#[derive(Debug)]
struct Mapping {
    region: Region,
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct FakeTask {
    mappings: RefCell<Vec<Mapping>>,
    pub threads: Vec<ThreadState>,
    pub suspend_count: Cell<u32>,
    /// Fail the n-th `write_raw` (0-based) with KERN_MEMORY_FAILURE, to test partial application.
    pub fail_write: Cell<Option<u32>>,
    writes: Cell<u32>,
    /// Every `flush_icache` call, in order.
    pub flushes: RefCell<Vec<(u64, u64)>>,
}

impl FakeTask {
    /// Adds a region of zeroes.
    pub fn map(&mut self, start: u64, size: u64, prot: VmProt, max_prot: VmProt) {
        let region = Region { start, size, prot, max_prot };
        let mappings = self.mappings.get_mut();
        mappings.push(Mapping { region, bytes: vec![0; size as usize] });
        mappings.sort_by_key(|m| m.region.start);
    }

    /// Sets bytes regardless of protection (the test's own setup).
    pub fn poke(&self, addr: u64, bytes: &[u8]) {
        let mut mappings = self.mappings.borrow_mut();
        let m = mappings.iter_mut().find(|m| m.region.contains(addr)).expect("poke inside a mapping");
        let offset = (addr - m.region.start) as usize;
        m.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Reads bytes regardless of protection.
    pub fn peek(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.read(addr, &mut buf).expect("peek inside a mapping");
        buf
    }

    fn kern(op: &'static str, addr: u64, code: KernError) -> TaskError {
        TaskError::Kern { op, addr: Some(addr), code }
    }
}

impl Task for FakeTask {
    fn pid(&self) -> u32 {
        4242
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), TaskError> {
        let mappings = self.mappings.borrow();
        let m = mappings
            .iter()
            .find(|m| m.region.contains(addr) && addr + buf.len() as u64 <= m.region.end())
            .ok_or(Self::kern("read", addr, KernError::INVALID_ADDRESS))?;
        let offset = (addr - m.region.start) as usize;
        buf.copy_from_slice(&m.bytes[offset..offset + buf.len()]);
        Ok(())
    }

    fn write_raw(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        let n = self.writes.get();
        self.writes.set(n + 1);
        if self.fail_write.get() == Some(n) {
            return Err(Self::kern("mach_vm_write", addr, KernError::MEMORY_FAILURE));
        }
        let mut mappings = self.mappings.borrow_mut();
        let m = mappings
            .iter_mut()
            .find(|m| m.region.contains(addr) && addr + bytes.len() as u64 <= m.region.end())
            .ok_or(Self::kern("mach_vm_write", addr, KernError::INVALID_ADDRESS))?;
        if !m.region.prot.contains(VmProt::WRITE) {
            return Err(Self::kern("mach_vm_write", addr, KernError::PROTECTION_FAILURE));
        }
        let offset = (addr - m.region.start) as usize;
        m.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// Applies to whole regions only (the tests map page-sized regions), which is all the patcher needs.
    fn protect(&self, addr: u64, _size: u64, prot: VmProt) -> Result<(), TaskError> {
        let copy = prot.contains(VmProt::COPY);
        let prot = prot - VmProt::COPY;
        if prot.is_write_execute() || (copy && prot.contains(VmProt::EXECUTE)) {
            return Err(Self::kern("mach_vm_protect", addr, KernError::PROTECTION_FAILURE));
        }
        let mut mappings = self.mappings.borrow_mut();
        let m = mappings.iter_mut().find(|m| m.region.contains(addr)).ok_or(Self::kern(
            "mach_vm_protect",
            addr,
            KernError::INVALID_ADDRESS,
        ))?;
        if copy {
            m.region.max_prot |= VmProt::WRITE;
        }
        if !m.region.max_prot.contains(prot) {
            return Err(Self::kern("mach_vm_protect", addr, KernError::PROTECTION_FAILURE));
        }
        m.region.prot = prot;
        Ok(())
    }

    fn region(&self, addr: u64) -> Result<Option<Region>, TaskError> {
        Ok(self.mappings.borrow().iter().map(|m| m.region).find(|r| r.end() > addr))
    }

    fn suspend_raw(&self) -> Result<(), TaskError> {
        self.suspend_count.set(self.suspend_count.get() + 1);
        Ok(())
    }

    fn resume_raw(&self) -> Result<(), TaskError> {
        let count = self.suspend_count.get();
        if count == 0 {
            return Err(TaskError::Kern { op: "task_resume", addr: None, code: KernError::FAILURE });
        }
        self.suspend_count.set(count - 1);
        Ok(())
    }

    fn threads(&self) -> Result<Vec<ThreadState>, TaskError> {
        Ok(self.threads.clone())
    }

    fn flush_icache(&self, addr: u64, len: u64) -> Result<(), TaskError> {
        self.flushes.borrow_mut().push((addr, len));
        Ok(())
    }
}
