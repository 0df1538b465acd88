//! The guest's `malloc`: a first-fit allocator over an address range that grows on demand.
//!
//! Only addresses live here; the guest bytes stay in emulator memory. Block sizes are kept on the host side,
//! so a guest that overruns a block cannot corrupt the allocator (a real malloc would be less forgiving, but
//! the simulator is for testing the patcher, not for finding heap bugs).

use std::collections::{BTreeMap, HashMap};

/// Every block is aligned to, and a multiple of, 16 bytes (Darwin's malloc quantum).
pub const QUANTUM: u64 = 16;

/// A growable heap between `base` and `limit`.
#[derive(Debug)]
pub struct Heap {
    base: u64,
    /// One past the highest byte the heap has asked to be mapped.
    top: u64,
    limit: u64,
    /// Free blocks: start → size, never adjacent (freed neighbours merge).
    free: BTreeMap<u64, u64>,
    /// Live blocks: start → size.
    live: HashMap<u64, u64>,
}

/// What went wrong with a heap call; the shims turn these into Darwin's malloc messages and `abort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeapError {
    /// `free` or `realloc` of a pointer that malloc did not return (or already freed).
    NotAllocated(u64),
}

impl Heap {
    /// An empty heap that may grow from `base` up to `limit`.
    pub fn new(base: u64, limit: u64) -> Heap {
        Heap { base, top: base, limit, free: BTreeMap::new(), live: HashMap::new() }
    }

    /// Allocates `size` bytes. Returns the block and, when the heap had to grow, the new range
    /// `[old_top, new_top)` that the caller must map before using the block. `None` when the heap is full.
    pub fn alloc(&mut self, size: u64, grow_step: u64) -> Option<(u64, Option<(u64, u64)>)> {
        let size = size.max(1).checked_next_multiple_of(QUANTUM)?;
        let found = self.free.iter().find(|&(_, &len)| len >= size).map(|(&a, &l)| (a, l));
        let mut grown = None;
        let (addr, len) = match found {
            Some(block) => block,
            None => {
                // Grow: extend the last free block if it touches the top, else start a fresh one there.
                let tail =
                    self.free.last_key_value().filter(|&(&a, &l)| a + l == self.top).map(|(&a, &l)| (a, l));
                let (start, have) = tail.unwrap_or((self.top, 0));
                let need = size - have;
                let new_top = (self.top + need.max(grow_step)).next_multiple_of(grow_step);
                if new_top > self.limit {
                    return None;
                }
                grown = Some((self.top, new_top));
                self.top = new_top;
                (start, new_top - start)
            }
        };
        self.free.remove(&addr);
        if len > size {
            self.free.insert(addr + size, len - size);
        }
        self.live.insert(addr, size);
        Some((addr, grown))
    }

    /// Frees a block, merging it with free neighbours.
    pub fn free(&mut self, addr: u64) -> Result<(), HeapError> {
        let size = self.live.remove(&addr).ok_or(HeapError::NotAllocated(addr))?;
        let (mut start, mut end) = (addr, addr + size);
        if let Some((&a, &l)) = self.free.range(..addr).next_back()
            && a + l == addr
        {
            self.free.remove(&a);
            start = a;
        }
        if let Some(l) = self.free.remove(&end) {
            end += l;
        }
        self.free.insert(start, end - start);
        Ok(())
    }

    /// The usable size of a live block.
    pub fn size_of(&self, addr: u64) -> Option<u64> {
        self.live.get(&addr).copied()
    }

    /// Whether `addr` is inside the heap's range (live or not).
    pub fn contains(&self, addr: u64) -> bool {
        (self.base..self.top).contains(&addr)
    }

    /// Bytes in live blocks.
    pub fn live_bytes(&self) -> u64 {
        self.live.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x2_0000_0000;
    const STEP: u64 = 0x4000;

    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        let mut heap = Heap::new(BASE, BASE + 0x10_0000);
        let (a, grown) = heap.alloc(1, STEP).unwrap();
        assert_eq!((a, grown), (BASE, Some((BASE, BASE + STEP))));
        let (b, grown) = heap.alloc(100, STEP).unwrap();
        assert_eq!((b, grown), (BASE + 16, None));
        let (c, _) = heap.alloc(0, STEP).unwrap();
        assert_eq!(c, BASE + 16 + 112);
        assert_eq!(heap.size_of(b), Some(112));
        heap.free(b).unwrap();
        assert_eq!(heap.free(b), Err(HeapError::NotAllocated(b)));
        let (d, _) = heap.alloc(50, STEP).unwrap();
        assert_eq!(d, b, "first fit reuses the freed block");
        assert_eq!(heap.live_bytes(), 16 + 64 + 16);
    }

    #[test]
    fn freed_neighbours_merge_and_the_heap_grows_past_a_page() {
        let mut heap = Heap::new(BASE, BASE + 0x10_0000);
        let blocks: Vec<u64> = (0..4).map(|_| heap.alloc(32, STEP).unwrap().0).collect();
        heap.free(blocks[1]).unwrap();
        heap.free(blocks[2]).unwrap();
        heap.free(blocks[0]).unwrap();
        let (big, grown) = heap.alloc(96, STEP).unwrap();
        assert_eq!((big, grown), (BASE, None), "three merged 32-byte blocks hold 96 bytes");
        let (huge, grown) = heap.alloc(3 * STEP, STEP).unwrap();
        assert!(heap.contains(huge + 3 * STEP - 1));
        let (from, to) = grown.unwrap();
        assert_eq!(from, BASE + STEP);
        assert!(to >= huge + 3 * STEP);
        assert_eq!(heap.alloc(0x10_0000, STEP), None, "past the limit");
    }
}
