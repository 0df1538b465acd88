//! Which code a suspended process is running or may return into.
//!
//! Contract item 8: no byte that a thread is executing (its PC) or may return into (a return address on its
//! stack) is overwritten; such an atom is written to new space instead. The scan is conservative, as a garbage
//! collector's stack scan is: every aligned 8-byte word between a thread's SP and the top of its stack region
//! that points into the code range counts as a possible return address, and so do the PC and the LR (a leaf
//! function's caller is known only from LR). A false positive costs a move instead of an in-place write; a
//! false negative would corrupt a running thread, so the scan never tries to be clever.

use std::ops::Range;

use mach_task::{Task, TaskError};

/// The code addresses some thread may execute next, in link-time (unslid) addresses, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveCode {
    addrs: Vec<u64>,
}

impl LiveCode {
    /// Scans every thread of a suspended task. `code` is the range of runtime addresses that can hold
    /// patchable code (the text reserve, slid); `slide` converts runtime addresses to link-time ones.
    pub fn scan<T: Task + ?Sized>(task: &T, code: Range<u64>, slide: u64) -> Result<LiveCode, TaskError> {
        let mut addrs = Vec::new();
        let mut push = |addr: u64| {
            if code.contains(&addr) {
                addrs.push(addr - slide);
            }
        };
        for thread in task.threads()? {
            push(thread.pc);
            push(thread.lr);
            let stack = task.region_containing(thread.sp)?;
            let start = thread.sp & !7;
            let bytes = task.read_vec(start, (stack.end() - start) as usize)?;
            for word in bytes.chunks_exact(8) {
                push(u64::from_le_bytes(word.try_into().expect("chunks_exact yields 8 bytes")));
            }
        }
        addrs.sort_unstable();
        addrs.dedup();
        Ok(LiveCode { addrs })
    }

    /// A set of live addresses given directly (link-time addresses).
    pub fn from_addrs(mut addrs: Vec<u64>) -> LiveCode {
        addrs.sort_unstable();
        addrs.dedup();
        LiveCode { addrs }
    }

    /// Whether any live address falls inside `range` (link-time addresses): then the bytes there must not be
    /// overwritten.
    pub fn any_in(&self, range: Range<u64>) -> bool {
        let first = self.addrs.partition_point(|&a| a < range.start);
        self.addrs.get(first).is_some_and(|&a| a < range.end)
    }

    /// The live addresses, sorted.
    pub fn addrs(&self) -> &[u64] {
        &self.addrs
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use mach_task::{KernError, Region, ThreadState, VmProt};

    use super::*;

    /// A task with one stack region and fixed threads; only what the scan uses is implemented.
    struct FakeTask {
        stack: Region,
        memory: RefCell<Vec<u8>>,
        threads: Vec<ThreadState>,
    }

    impl FakeTask {
        fn new(stack_start: u64, words: &[u64], threads: Vec<ThreadState>) -> FakeTask {
            let memory: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let stack = Region {
                start: stack_start,
                size: memory.len() as u64,
                prot: VmProt::RW,
                max_prot: VmProt::RW,
            };
            FakeTask { stack, memory: RefCell::new(memory), threads }
        }
    }

    impl Task for FakeTask {
        fn pid(&self) -> u32 {
            1
        }
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), TaskError> {
            let memory = self.memory.borrow();
            let offset = addr.checked_sub(self.stack.start).map(|o| o as usize);
            match offset.and_then(|o| memory.get(o..o + buf.len())) {
                Some(bytes) => {
                    buf.copy_from_slice(bytes);
                    Ok(())
                }
                None => {
                    Err(TaskError::Kern { op: "read", addr: Some(addr), code: KernError::INVALID_ADDRESS })
                }
            }
        }
        fn write_raw(&self, _: u64, _: &[u8]) -> Result<(), TaskError> {
            unreachable!("the scan never writes")
        }
        fn protect(&self, _: u64, _: u64, _: VmProt) -> Result<(), TaskError> {
            unreachable!("the scan never protects")
        }
        fn region(&self, addr: u64) -> Result<Option<Region>, TaskError> {
            Ok((addr < self.stack.end()).then_some(self.stack))
        }
        fn suspend_raw(&self) -> Result<(), TaskError> {
            Ok(())
        }
        fn resume_raw(&self) -> Result<(), TaskError> {
            Ok(())
        }
        fn threads(&self) -> Result<Vec<ThreadState>, TaskError> {
            Ok(self.threads.clone())
        }
        fn flush_icache(&self, _: u64, _: u64) -> Result<(), TaskError> {
            Ok(())
        }
    }

    const SLIDE: u64 = 0x4000;
    const CODE: Range<u64> = 0x1_0000_4000 + SLIDE..0x1_0010_0000 + SLIDE;

    fn thread(pc: u64, lr: u64, sp: u64) -> ThreadState {
        ThreadState { id: 0, pc, lr, sp, fp: sp }
    }

    #[test]
    fn pc_lr_and_return_addresses_above_sp_are_live_in_link_addresses() {
        let stack = 0x7000_0000;
        let words = [
            0x1_0000_9000 + SLIDE, // below SP: a dead frame, must not count
            0x1_0000_5010 + SLIDE, // a saved return address
            0x42,                  // a non-code value
            0x1_0000_6000 + SLIDE, // another
        ];
        let task = FakeTask::new(
            stack,
            &words,
            vec![thread(0x1_0000_4100 + SLIDE, 0x1_0000_4200 + SLIDE, stack + 8)],
        );

        let live = LiveCode::scan(&task, CODE, SLIDE).unwrap();

        assert_eq!(live.addrs(), [0x1_0000_4100, 0x1_0000_4200, 0x1_0000_5010, 0x1_0000_6000]);
    }

    #[test]
    fn values_outside_the_code_range_are_ignored() {
        let stack = 0x7000_0000;
        let task = FakeTask::new(stack, &[0x1_0000_0000, CODE.end, 7], vec![thread(0x2000, 0, stack)]);
        assert_eq!(LiveCode::scan(&task, CODE, SLIDE).unwrap().addrs(), [] as [u64; 0]);
    }

    #[test]
    fn any_in_is_a_half_open_range_query() {
        let live = LiveCode::from_addrs(vec![0x200, 0x100, 0x100]);
        assert_eq!(live.addrs(), [0x100, 0x200]);
        assert!(live.any_in(0x100..0x101));
        assert!(live.any_in(0x180..0x201));
        assert!(!live.any_in(0x101..0x200));
        assert!(!live.any_in(0x201..0x1000));
        assert!(!LiveCode::default().any_in(0..u64::MAX));
    }
}
