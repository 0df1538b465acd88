//! [`mach_task::Task`] for a simulated process: the kernel's primitives answered from the emulator thread with
//! xnu's rules (see [`crate::vm`]), so the trait's write recipes run unchanged against the simulator.

use mach_task::{Region, Task, TaskError, ThreadState, VmProt};

use crate::process::Process;

impl Task for Process {
    fn pid(&self) -> u32 {
        Process::pid(self)
    }

    /// Fails with `KERN_INVALID_ADDRESS` for unmapped bytes and `KERN_PROTECTION_FAILURE` for unreadable ones.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), TaskError> {
        let bytes = self.read_raw(addr, buf.len())?;
        buf.copy_from_slice(&bytes);
        Ok(())
    }

    /// Needs WRITE in the current protection of every byte. Code written here keeps running its old translation
    /// until [`Task::flush_icache`] covers it, like a real instruction cache.
    fn write_raw(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        self.write_raw_bytes(addr, bytes)
    }

    fn protect(&self, addr: u64, size: u64, prot: VmProt) -> Result<(), TaskError> {
        self.protect_raw(addr, size, prot)
    }

    fn region(&self, addr: u64) -> Result<Option<Region>, TaskError> {
        self.region_raw(addr)
    }

    /// The guest stops between two slices; the call returns once it has.
    fn suspend_raw(&self) -> Result<(), TaskError> {
        self.suspend_request()
    }

    /// `KERN_FAILURE` when the task is not suspended.
    fn resume_raw(&self) -> Result<(), TaskError> {
        self.resume_request()
    }

    fn threads(&self) -> Result<Vec<ThreadState>, TaskError> {
        self.threads_raw()
    }

    fn flush_icache(&self, addr: u64, len: u64) -> Result<(), TaskError> {
        self.flush_raw(addr, len)
    }
}
