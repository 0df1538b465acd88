//! The contract checks run against a tiny in-memory task that keeps the kernel's rules, and against variants
//! that each break one rule: the first must pass every check, each variant must fail the check for its rule.
//! This is what shows that the checks can fail.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Fixture, all};
use crate::{KernError, PAGE_SIZE, Region, Task, TaskError, ThreadState, VmProt};

const TEXT: u64 = 0x1_0000_0000;
const DATA_CONST: u64 = TEXT + PAGE_SIZE;
const DATA: u64 = TEXT + 2 * PAGE_SIZE;
const SCRATCH_CODE: u64 = TEXT + 0x1000;
const COUNTER: u64 = DATA;
const SCRATCH_DATA: u64 = DATA + 0x100;
const CODE: [u8; 16] =
    [0x40, 0x05, 0x80, 0xd2, 0xc0, 0x03, 0x5f, 0xd6, 0x1f, 0x20, 0x03, 0xd5, 0x1f, 0x20, 0x03, 0xd5];

/// The one rule a model variant breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    GrantsWriteExecute,
    WritesIgnoringProtection,
    SuspendDoesNothing,
    ResumeDropsEveryHold,
    ReportsMaxBelowCurrent,
    ThreadPcInData,
    RestoresWithoutExecute,
}

#[derive(Debug)]
struct Page {
    region: Region,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct ModelTask {
    pages: RefCell<Vec<Page>>,
    suspended: Cell<u32>,
    broken: Option<Broken>,
}

impl ModelTask {
    fn new(broken: Option<Broken>) -> ModelTask {
        let page = |start, prot, max_prot| Page {
            region: Region { start, size: PAGE_SIZE, prot, max_prot },
            bytes: vec![0; PAGE_SIZE as usize],
        };
        let mut pages = vec![
            page(TEXT, VmProt::RX, VmProt::RX),
            page(DATA_CONST, VmProt::READ, VmProt::RW),
            page(DATA, VmProt::RW, VmProt::RW),
        ];
        pages[0].bytes[..4].copy_from_slice(&0xfeed_facf_u32.to_le_bytes());
        pages[0].bytes[12..16].copy_from_slice(&2u32.to_le_bytes());
        pages[0].bytes[0x1000..0x1010].copy_from_slice(&CODE);
        pages[1].bytes[8..16].copy_from_slice(&0x1_0000_0123_u64.to_le_bytes());
        ModelTask { pages: RefCell::new(pages), suspended: Cell::new(0), broken }
    }

    fn is(&self, broken: Broken) -> bool {
        self.broken == Some(broken)
    }

    /// Calls `f` with the page holding `addr` and the offset in it.
    fn with_page<R>(
        &self,
        addr: u64,
        op: &'static str,
        f: impl FnOnce(&mut Page, usize) -> Result<R, TaskError>,
    ) -> Result<R, TaskError> {
        let mut pages = self.pages.borrow_mut();
        let page = pages.iter_mut().find(|p| p.region.contains(addr)).ok_or(TaskError::Kern {
            op,
            addr: Some(addr),
            code: KernError::INVALID_ADDRESS,
        })?;
        let offset = (addr - page.region.start) as usize;
        f(page, offset)
    }

    fn tick(&self) {
        if self.suspended.get() == 0 {
            let now = u64::from_le_bytes(self.read_vec(COUNTER, 8).unwrap().try_into().unwrap());
            self.with_page(COUNTER, "tick", |p, o| {
                p.bytes[o..o + 8].copy_from_slice(&(now + 100).to_le_bytes());
                Ok(())
            })
            .unwrap();
        }
    }
}

impl Task for ModelTask {
    fn pid(&self) -> u32 {
        1
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), TaskError> {
        // Reads in the model never cross a page.
        self.with_page(addr, "read", |p, o| {
            if !p.region.prot.contains(VmProt::READ) || o + buf.len() > p.bytes.len() {
                return Err(TaskError::Kern {
                    op: "read",
                    addr: Some(addr),
                    code: KernError::PROTECTION_FAILURE,
                });
            }
            buf.copy_from_slice(&p.bytes[o..o + buf.len()]);
            Ok(())
        })
    }

    fn write_raw(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        let ignore = self.is(Broken::WritesIgnoringProtection);
        self.with_page(addr, "write", |p, o| {
            if !(ignore || p.region.prot.contains(VmProt::WRITE)) || o + bytes.len() > p.bytes.len() {
                return Err(TaskError::Kern {
                    op: "write",
                    addr: Some(addr),
                    code: KernError::PROTECTION_FAILURE,
                });
            }
            p.bytes[o..o + bytes.len()].copy_from_slice(bytes);
            Ok(())
        })
    }

    fn protect(&self, addr: u64, size: u64, prot: VmProt) -> Result<(), TaskError> {
        let refused =
            TaskError::Kern { op: "protect", addr: Some(addr), code: KernError::PROTECTION_FAILURE };
        if prot.is_write_execute() && !self.is(Broken::GrantsWriteExecute) {
            return Err(refused);
        }
        let mut want = prot - VmProt::COPY;
        if self.is(Broken::RestoresWithoutExecute) {
            want -= VmProt::EXECUTE;
        }
        let mut pages = self.pages.borrow_mut();
        for page in pages.iter_mut().filter(|p| p.region.start < addr + size && addr < p.region.end()) {
            if prot.contains(VmProt::COPY) {
                page.region.max_prot |= VmProt::WRITE;
            }
            if !page.region.max_prot.contains(want) {
                return Err(refused);
            }
            page.region.prot = want;
        }
        Ok(())
    }

    fn region(&self, addr: u64) -> Result<Option<Region>, TaskError> {
        let mut region = self.pages.borrow().iter().map(|p| p.region).find(|r| r.end() > addr);
        if let Some(r) = region.as_mut().filter(|_| self.is(Broken::ReportsMaxBelowCurrent)) {
            r.max_prot = VmProt::empty();
        }
        Ok(region)
    }

    fn suspend_raw(&self) -> Result<(), TaskError> {
        if !self.is(Broken::SuspendDoesNothing) {
            self.suspended.set(self.suspended.get() + 1);
        }
        Ok(())
    }

    fn resume_raw(&self) -> Result<(), TaskError> {
        let held = self.suspended.get();
        if held == 0 {
            return Err(TaskError::Kern { op: "resume", addr: None, code: KernError::FAILURE });
        }
        self.suspended.set(if self.is(Broken::ResumeDropsEveryHold) { 0 } else { held - 1 });
        Ok(())
    }

    fn threads(&self) -> Result<Vec<ThreadState>, TaskError> {
        let pc = if self.is(Broken::ThreadPcInData) { DATA + 0x40 } else { TEXT + 0x2000 };
        Ok(vec![ThreadState { id: 7, pc, lr: 0, sp: DATA + 0x3000, fp: 0, x16: 0 }])
    }

    fn flush_icache(&self, _addr: u64, _len: u64) -> Result<(), TaskError> {
        Ok(())
    }
}

#[derive(Debug)]
struct ModelFixture(ModelTask);

impl Fixture for ModelFixture {
    type Task = ModelTask;

    fn task(&self) -> &ModelTask {
        &self.0
    }
    fn scratch_code(&self) -> u64 {
        SCRATCH_CODE
    }
    fn scratch_code_bytes(&self) -> Vec<u8> {
        CODE.to_vec()
    }
    fn scratch_data(&self) -> u64 {
        SCRATCH_DATA
    }
    fn readonly_data(&self) -> u64 {
        DATA_CONST + 8
    }
    fn main_image_base(&self) -> u64 {
        TEXT
    }
    fn counter(&self) -> u64 {
        COUNTER
    }
    fn run_briefly(&self) {
        self.0.tick();
    }
}

#[test]
fn a_model_that_keeps_the_rules_passes_every_check() {
    all(&ModelFixture(ModelTask::new(None)));
}

#[test]
fn every_broken_rule_is_caught_by_its_check() {
    type Check = fn(&ModelFixture);
    let cases: [(Broken, Check); 7] = [
        (Broken::GrantsWriteExecute, super::write_execute_is_refused),
        (Broken::WritesIgnoringProtection, super::code_is_not_writable_directly),
        (Broken::WritesIgnoringProtection, super::write_data_into_read_only_pages),
        (Broken::SuspendDoesNothing, super::suspend_stops_progress),
        (Broken::ResumeDropsEveryHold, super::suspend_stops_progress),
        (Broken::ReportsMaxBelowCurrent, super::regions_are_sorted_and_consistent),
        (Broken::ThreadPcInData, super::threads_report_pcs_in_code),
    ];
    for (broken, check) in cases {
        let fixture = ModelFixture(ModelTask::new(Some(broken)));
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&fixture)));
        assert!(outcome.is_err(), "the check passed against a model that {broken:?}");
    }
    // A restore that loses EXECUTE is caught by the recipe itself, before the contract looks.
    let fixture = ModelFixture(ModelTask::new(Some(Broken::RestoresWithoutExecute)));
    let err = fixture.task().write_code(SCRATCH_CODE, &[0; 4]).unwrap_err();
    assert!(matches!(err, TaskError::RestoreFailed { .. }), "{err}");
    assert!(catch_unwind(AssertUnwindSafe(|| super::write_code_round_trip(&fixture))).is_err());
}
