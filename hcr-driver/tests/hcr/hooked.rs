//! A simulated program whose `Task` lets a test step in before every write and after every suspension, for
//! sessions that must see (or provoke) what happens between hcr and the process.

use std::marker::PhantomData;
use std::path::Path;

use darwin_sim::{Process, RunOptions};
use hcr_driver::session::{Launcher, Target};
use mach_task::{Region, Task, TaskError, ThreadState, VmProt};

/// What a test does at the task's primitives; by default, nothing.
pub trait Hooks: Default {
    /// Called before each raw write reaches the process.
    fn before_write(&self, _process: &Process, _addr: u64, _bytes: &[u8]) {}
    /// Called once the process is suspended.
    fn after_suspend(&self, _process: &Process) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A simulated process and the test's hooks.
pub struct Hooked<H> {
    pub process: Process,
    pub hooks: H,
}

impl<H: Hooks> Task for Hooked<H> {
    fn pid(&self) -> u32 {
        self.process.pid()
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), TaskError> {
        self.process.read(addr, buf)
    }
    fn write_raw(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        self.hooks.before_write(&self.process, addr, bytes);
        self.process.write_raw(addr, bytes)
    }
    fn protect(&self, addr: u64, size: u64, prot: VmProt) -> Result<(), TaskError> {
        self.process.protect(addr, size, prot)
    }
    fn region(&self, addr: u64) -> Result<Option<Region>, TaskError> {
        self.process.region(addr)
    }
    fn suspend_raw(&self) -> Result<(), TaskError> {
        self.process.suspend_raw()?;
        self.hooks.after_suspend(&self.process)
    }
    fn resume_raw(&self) -> Result<(), TaskError> {
        self.process.resume_raw()
    }
    fn threads(&self) -> Result<Vec<ThreadState>, TaskError> {
        self.process.threads()
    }
    fn flush_icache(&self, addr: u64, len: u64) -> Result<(), TaskError> {
        self.process.flush_icache(addr, len)
    }
}

impl<H: Hooks> Target for Hooked<H> {
    type Task = Hooked<H>;
    fn task(&self) -> &Hooked<H> {
        self
    }
    fn slide(&self) -> u64 {
        self.process.slide()
    }
    fn exit_status(&mut self) -> Option<String> {
        self.process.status().map(|s| s.to_string())
    }
    fn resolve_import(&self, symbol: &str) -> Option<u64> {
        self.process.libsystem_address(symbol)
    }
    fn kill(&mut self) {
        self.process.kill();
    }
}

/// Launches programs in the simulator with fresh hooks.
pub struct HookedLauncher<H>(PhantomData<H>);

impl<H> Default for HookedLauncher<H> {
    fn default() -> Self {
        HookedLauncher(PhantomData)
    }
}

impl<H: Hooks> Launcher for HookedLauncher<H> {
    type Target = Hooked<H>;
    fn launch(&mut self, exe: &Path, args: &[String], aslr: bool) -> anyhow::Result<Hooked<H>> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::spawn(exe, &args, &RunOptions { aslr, ..RunOptions::default() })?;
        process.start()?;
        Ok(Hooked { process, hooks: H::default() })
    }
}
