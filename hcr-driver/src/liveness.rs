//! Which code a suspended process is running or may return into.
//!
//! Contract item 8: no byte that a thread is executing (its PC) or may return into (a return address on its
//! stack) is overwritten; such an atom is written to new space instead. The scan is conservative, as a garbage
//! collector's stack scan is: every aligned 8-byte word between a thread's SP and the top of its stack region
//! that points into the code range counts as a possible return address, and so do the PC, the LR (a leaf
//! function's caller is known only from LR) and x16 (a thread stopped inside a call stub, after it loaded the
//! cell and before it branched, jumps to the old target in x16). A false positive costs a move instead of an in-place write; a
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
            // A thread inside a call stub, between loading the cell and branching, goes to x16 next.
            push(thread.x16);
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

/// The linker asks the scan: code in a range with a live address is never overwritten.
impl got_linker::Liveness for LiveCode {
    fn is_live(&self, range: Range<u64>) -> bool {
        self.any_in(range)
    }
}

#[cfg(test)]
mod tests {
    use mach_task::{ThreadState, VmProt};

    use super::*;
    use crate::fake_task::FakeTask;

    const SLIDE: u64 = 0x4000;
    const CODE: Range<u64> = 0x1_0000_4000 + SLIDE..0x1_0010_0000 + SLIDE;
    const STACK: u64 = 0x7000_0000;

    /// A task whose stack region holds `words` and whose one thread has the given registers.
    fn task(words: &[u64], pc: u64, lr: u64, sp: u64) -> FakeTask {
        let mut task = FakeTask::default();
        task.map(STACK, words.len() as u64 * 8, VmProt::RW, VmProt::RW);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        task.poke(STACK, &bytes);
        task.threads = vec![ThreadState { id: 0, pc, lr, sp, fp: sp, x16: 0 }];
        task
    }

    #[test]
    fn pc_lr_and_return_addresses_above_sp_are_live_in_link_addresses() {
        let words = [
            0x1_0000_9000 + SLIDE, // below SP: a dead frame, must not count
            0x1_0000_5010 + SLIDE, // a saved return address
            0x42,                  // a non-code value
            0x1_0000_6000 + SLIDE, // another
        ];
        let task = task(&words, 0x1_0000_4100 + SLIDE, 0x1_0000_4200 + SLIDE, STACK + 8);

        let live = LiveCode::scan(&task, CODE, SLIDE).unwrap();

        assert_eq!(live.addrs(), [0x1_0000_4100, 0x1_0000_4200, 0x1_0000_5010, 0x1_0000_6000]);
    }

    #[test]
    fn a_thread_inside_a_call_stub_keeps_the_target_it_loaded_live() {
        // Stopped at the stub's `br x16` (stubs lie outside the text range): the old body in x16 is where it goes.
        let mut task = task(&[0x42], 0x1_0020_0008 + SLIDE, 0, STACK);
        task.threads[0].x16 = 0x1_0000_7000 + SLIDE;
        assert_eq!(LiveCode::scan(&task, CODE, SLIDE).unwrap().addrs(), [0x1_0000_7000]);
    }

    #[test]
    fn values_outside_the_code_range_are_ignored() {
        let task = task(&[0x1_0000_0000, CODE.end, 7], 0x2000, 0, STACK);
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
