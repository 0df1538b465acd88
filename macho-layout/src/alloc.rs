//! The incremental allocator of one section's VM reserve.
//!
//! Atoms get slots: an address and a capacity. Code slots get room to grow (size + size/3, at least a minimum),
//! so that most edits rewrite a function where it stands; data slots are packed. A slot that must grow past its
//! capacity first tries to absorb the free space right after it, then the caller moves the atom. Freed slots go
//! to a free list that coalesces with its neighbours and is indexed by address and by size, so allocation is a
//! best-fit search in `O(log n)` rather than a scan. The reserve never grows: running out is an error that says
//! a restart is required, because a live process cannot follow a section that moves.

use std::collections::{BTreeMap, BTreeSet};

use crate::addr::VmAddr;

/// How a section pads its slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Padding {
    /// Code: capacity = size + size/3, at least `min_capacity`.
    Code { min_capacity: u64 },
    /// Data: capacity = size.
    Packed,
}

impl Padding {
    pub fn capacity_for(self, size: u64) -> u64 {
        match self {
            Padding::Code { min_capacity } => (size + size / 3).max(min_capacity),
            Padding::Packed => size,
        }
    }
}

/// A placed slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Slot {
    pub addr: VmAddr,
    pub size: u64,
    pub capacity: u64,
}

impl Slot {
    /// One past the slot's capacity: where the next slot may start.
    pub fn capacity_end(&self) -> VmAddr {
        self.addr + self.capacity
    }
}

/// The answer to a request to grow a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grown {
    /// The slot holds the new size where it is (perhaps with a larger capacity).
    InPlace(Slot),
    /// The slot cannot hold the new size; the caller must allocate elsewhere and free this one.
    MustMove,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error(
        "the {section} reserve ({reserve} bytes at {base:#x}) cannot hold {size} more bytes aligned to {align}: \
         restart required (a running process cannot follow a section that moves)"
    )]
    ReserveExhausted { section: String, base: u64, reserve: u64, size: u64, align: u64 },
    #[error("alignment {align} is not a power of two between 1 and 16384")]
    BadAlignment { align: u64 },
    #[error("no slot starts at {addr}")]
    NoSlot { addr: VmAddr },
}

/// The allocator of one section.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SectionAlloc {
    name: String,
    base: u64,
    end: u64,
    padding: Padding,
    /// Live slots by address (raw `u64` inside this module, `VmAddr` at its boundary).
    slots: BTreeMap<u64, Slot>,
    /// Free intervals below `top`: start → length. Never adjacent to each other or to `top`.
    free_by_addr: BTreeMap<u64, u64>,
    /// The same intervals as (length, start), for best-fit.
    free_by_size: BTreeSet<(u64, u64)>,
    /// Everything from here to `end` has never been handed out (or was given back at the end).
    top: u64,
    /// What changed since [`SectionAlloc::checkpoint`], to put back on [`SectionAlloc::rollback`].
    #[cfg_attr(feature = "serde", serde(skip))]
    undo: Option<Box<AllocUndo>>,
}

/// The first value, since the checkpoint, of every slot and free interval that changed, and the top.
#[derive(Debug, Clone)]
struct AllocUndo {
    slots: BTreeMap<u64, Option<Slot>>,
    free: BTreeMap<u64, Option<u64>>,
    top: u64,
}

impl SectionAlloc {
    pub fn new(name: &str, base: VmAddr, reserve: u64, padding: Padding) -> SectionAlloc {
        let base = base.0;
        SectionAlloc {
            name: name.to_string(),
            base,
            end: base + reserve,
            padding,
            slots: BTreeMap::new(),
            free_by_addr: BTreeMap::new(),
            free_by_size: BTreeSet::new(),
            top: base,
            undo: None,
        }
    }

    /// Starts recording changes, so that [`SectionAlloc::rollback`] can put everything back as it is now.
    pub fn checkpoint(&mut self) {
        self.undo =
            Some(Box::new(AllocUndo { slots: BTreeMap::new(), free: BTreeMap::new(), top: self.top }));
    }

    /// Keeps every change since the checkpoint and stops recording.
    pub fn commit(&mut self) {
        self.undo = None;
    }

    /// Puts back what the allocator was at the checkpoint (nothing happens without one).
    pub fn rollback(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        for (addr, slot) in undo.slots {
            match slot {
                Some(slot) => self.slots.insert(addr, slot),
                None => self.slots.remove(&addr),
            };
        }
        for (start, len) in undo.free {
            if let Some(now) = self.free_by_addr.remove(&start) {
                self.free_by_size.remove(&(now, start));
            }
            if let Some(len) = len {
                self.free_by_addr.insert(start, len);
                self.free_by_size.insert((len, start));
            }
        }
        self.top = undo.top;
    }

    /// Records the slot at `addr` before it changes.
    fn note_slot(&mut self, addr: u64) {
        if let Some(undo) = &mut self.undo {
            undo.slots.entry(addr).or_insert_with(|| self.slots.get(&addr).copied());
        }
    }

    /// Records the free interval at `start` before it changes.
    fn note_free(&mut self, start: u64) {
        if let Some(undo) = &mut self.undo {
            undo.free.entry(start).or_insert_with(|| self.free_by_addr.get(&start).copied());
        }
    }

    /// Places `size` bytes aligned to `align`.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<Slot, AllocError> {
        if !align.is_power_of_two() || align > 16384 {
            return Err(AllocError::BadAlignment { align });
        }
        let capacity = self.padding.capacity_for(size).max(1);
        let addr = match self.best_fit(capacity, align) {
            Some((start, len)) => {
                self.take_free(start, len);
                let addr = start.next_multiple_of(align);
                self.give_free(start, addr - start);
                self.give_free(addr + capacity, start + len - (addr + capacity));
                addr
            }
            None => {
                let addr = self.top.next_multiple_of(align);
                if addr.checked_add(capacity).is_none_or(|e| e > self.end) {
                    return Err(AllocError::ReserveExhausted {
                        section: self.name.clone(),
                        base: self.base,
                        reserve: self.end - self.base,
                        size,
                        align,
                    });
                }
                let gap = self.top;
                self.top = addr + capacity;
                self.give_free(gap, addr - gap);
                addr
            }
        };
        let slot = Slot { addr: VmAddr(addr), size, capacity };
        self.note_slot(addr);
        self.slots.insert(addr, slot);
        Ok(slot)
    }

    /// Resizes the slot at `addr` to `new_size` if it can stay where it is. Shrinking always stays (the
    /// capacity is kept, so a later regrowth is free).
    pub fn grow(&mut self, addr: VmAddr, new_size: u64) -> Result<Grown, AllocError> {
        let slot = *self.slots.get(&addr.0).ok_or(AllocError::NoSlot { addr })?;
        if new_size <= slot.capacity {
            return Ok(Grown::InPlace(self.set(Slot { size: new_size, ..slot })));
        }
        let wanted = self.padding.capacity_for(new_size);
        let start = slot.addr.0;
        let end = start + slot.capacity;
        if end == self.top {
            if start + wanted <= self.end {
                self.top = start + wanted;
                return Ok(Grown::InPlace(self.set(Slot { size: new_size, capacity: wanted, ..slot })));
            }
            return Ok(Grown::MustMove);
        }
        if let Some(&len) = self.free_by_addr.get(&end) {
            let available = slot.capacity + len;
            if available >= new_size {
                // Take only what the padded size needs; the rest stays free.
                let capacity = wanted.min(available);
                self.take_free(end, len);
                self.give_free(start + capacity, available - capacity);
                return Ok(Grown::InPlace(self.set(Slot { size: new_size, capacity, ..slot })));
            }
        }
        Ok(Grown::MustMove)
    }

    /// Gives the slot at `addr` back.
    pub fn free(&mut self, addr: VmAddr) -> Result<Slot, AllocError> {
        self.note_slot(addr.0);
        let slot = self.slots.remove(&addr.0).ok_or(AllocError::NoSlot { addr })?;
        self.give_free(slot.addr.0, slot.capacity);
        Ok(slot)
    }

    pub fn slot(&self, addr: VmAddr) -> Option<Slot> {
        self.slots.get(&addr.0).copied()
    }

    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.slots.values().copied()
    }

    /// One past the highest byte handed out and still in use: what the file must cover.
    pub fn used_end(&self) -> VmAddr {
        VmAddr(self.top)
    }

    pub fn base(&self) -> VmAddr {
        VmAddr(self.base)
    }

    /// One past the end of the reserve.
    pub fn end(&self) -> VmAddr {
        VmAddr(self.end)
    }

    /// Free bytes below the top.
    pub fn free_bytes(&self) -> u64 {
        self.free_by_addr.values().sum()
    }

    fn set(&mut self, slot: Slot) -> Slot {
        self.note_slot(slot.addr.0);
        self.slots.insert(slot.addr.0, slot);
        slot
    }

    /// The smallest free interval that holds `capacity` bytes at `align`.
    fn best_fit(&self, capacity: u64, align: u64) -> Option<(u64, u64)> {
        // Intervals are visited by increasing length; alignment can make a long-enough one unusable, so keep
        // looking (rare: most alignments are ≤ 16 and most intervals are multiples of it).
        self.free_by_size
            .range((capacity, 0)..)
            .map(|&(len, start)| (start, len))
            .find(|&(start, len)| start.next_multiple_of(align) + capacity <= start + len)
    }

    fn take_free(&mut self, start: u64, len: u64) {
        self.note_free(start);
        self.free_by_addr.remove(&start);
        self.free_by_size.remove(&(len, start));
    }

    /// Returns `[start, start + len)` to the free list, merging it with free neighbours and with the top.
    fn give_free(&mut self, mut start: u64, mut len: u64) {
        if len == 0 {
            return;
        }
        if let Some((&prev, &prev_len)) = self.free_by_addr.range(..start).next_back()
            && prev + prev_len == start
        {
            self.take_free(prev, prev_len);
            start = prev;
            len += prev_len;
        }
        if let Some(&next_len) = self.free_by_addr.get(&(start + len)) {
            self.take_free(start + len, next_len);
            len += next_len;
        }
        if start + len == self.top {
            self.top = start;
            return;
        }
        self.note_free(start);
        self.free_by_addr.insert(start, len);
        self.free_by_size.insert((len, start));
    }

    /// Checks every structural invariant (no overlap, coalesced free list, indexes in step); tests call it after
    /// every operation.
    pub fn check(&self) -> Result<(), String> {
        let mut pieces: Vec<(u64, u64, &str)> =
            self.slots.values().map(|s| (s.addr.0, s.capacity, "slot")).collect();
        pieces.extend(self.free_by_addr.iter().map(|(&a, &l)| (a, l, "free")));
        pieces.sort();
        let mut cursor = self.base;
        for (addr, len, kind) in &pieces {
            if *addr < cursor {
                return Err(format!("{kind} at {addr:#x} overlaps what ends at {cursor:#x}"));
            }
            if *kind == "free" && *len == 0 {
                return Err(format!("empty free interval at {addr:#x}"));
            }
            cursor = addr + len;
        }
        if cursor > self.top || self.top > self.end {
            return Err(format!("pieces end at {cursor:#x}, top {:#x}, end {:#x}", self.top, self.end));
        }
        for (&a, &l) in &self.free_by_addr {
            if self.free_by_addr.contains_key(&(a + l)) || a + l == self.top {
                return Err(format!("free interval at {a:#x} is not coalesced"));
            }
            if !self.free_by_size.contains(&(l, a)) {
                return Err(format!("free interval at {a:#x} missing from the size index"));
            }
        }
        if self.free_by_size.len() != self.free_by_addr.len() {
            return Err("size index out of step".into());
        }
        for s in self.slots.values() {
            if s.size > s.capacity {
                return Err(format!("slot at {} holds {} in {}", s.addr, s.size, s.capacity));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Alloc { size: u64, align_log: u32 },
        Grow { which: usize, size: u64 },
        Free { which: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..600, 0u32..6).prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
            (any::<usize>(), 1u64..900).prop_map(|(which, size)| Op::Grow { which, size }),
            any::<usize>().prop_map(|which| Op::Free { which }),
        ]
    }

    proptest! {
        #[test]
        fn never_overlaps_stays_aligned_and_in_reserve(ops in prop::collection::vec(op(), 1..200), code in any::<bool>()) {
            let padding = if code { Padding::Code { min_capacity: 64 } } else { Padding::Packed };
            let mut a = SectionAlloc::new("__text", VmAddr(0x1_0000_4000), 64 * 1024, padding);
            let mut live: Vec<VmAddr> = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc { size, align_log } => {
                        let align = 1 << align_log;
                        match a.alloc(size, align) {
                            Ok(slot) => {
                                prop_assert_eq!(slot.addr.0 % align, 0);
                                prop_assert!(slot.addr >= a.base() && slot.addr + slot.capacity <= a.end());
                                live.push(slot.addr);
                            }
                            Err(AllocError::ReserveExhausted { .. }) => {}
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                    Op::Grow { which, size } if !live.is_empty() => {
                        let addr = live[which % live.len()];
                        let others: Vec<Slot> = a.slots().filter(|s| s.addr != addr).collect();
                        match a.grow(addr, size).unwrap() {
                            Grown::InPlace(slot) => {
                                prop_assert_eq!(slot.addr, addr);
                                prop_assert!(slot.size == size && slot.capacity >= size);
                                let after: Vec<Slot> = a.slots().filter(|s| s.addr != addr).collect();
                                prop_assert_eq!(others, after, "growing in place moved another slot");
                            }
                            Grown::MustMove => prop_assert!(size > a.slot(addr).unwrap().capacity),
                        }
                    }
                    Op::Free { which } if !live.is_empty() => {
                        let addr = live.swap_remove(which % live.len());
                        a.free(addr).unwrap();
                    }
                    _ => {}
                }
                if let Err(e) = a.check() { prop_assert!(false, "{e}"); }
            }
        }

        /// Any operations after a checkpoint, rolled back, leave the allocator as it was (every slot, free
        /// interval and index), and it then allocates as it would have.
        #[test]
        fn rollback_puts_back_what_was_at_the_checkpoint(
            before in prop::collection::vec(op(), 0..60),
            after in prop::collection::vec(op(), 1..60),
        ) {
            let mut a = SectionAlloc::new("__text", VmAddr(0x1_0000_4000), 64 * 1024, Padding::Code { min_capacity: 64 });
            let mut live: Vec<VmAddr> = Vec::new();
            let apply = |a: &mut SectionAlloc, live: &mut Vec<VmAddr>, op: &Op| match *op {
                Op::Alloc { size, align_log } => {
                    if let Ok(slot) = a.alloc(size, 1 << align_log) {
                        live.push(slot.addr);
                    }
                }
                Op::Grow { which, size } if !live.is_empty() => {
                    a.grow(live[which % live.len()], size).unwrap();
                }
                Op::Free { which } if !live.is_empty() => {
                    let addr = live.swap_remove(which % live.len());
                    a.free(addr).unwrap();
                }
                _ => {}
            };
            for op in &before {
                apply(&mut a, &mut live, op);
            }
            let saved = format!("{a:?}");
            let mut untouched = a.clone();
            a.checkpoint();
            let mut scratch = live.clone();
            for op in &after {
                apply(&mut a, &mut scratch, op);
            }
            a.rollback();
            prop_assert_eq!(format!("{a:?}"), saved);
            if let Err(e) = a.check() { prop_assert!(false, "{e}"); }
            prop_assert_eq!(a.alloc(100, 8).ok(), untouched.alloc(100, 8).ok());
        }

        #[test]
        fn freed_space_is_reused(sizes in prop::collection::vec(1u64..300, 1..50)) {
            let mut a = SectionAlloc::new("__data", VmAddr(0x1_0800_0000), 1 << 20, Padding::Packed);
            let slots: Vec<Slot> = sizes.iter().map(|&s| a.alloc(s, 8).unwrap()).collect();
            let high = a.used_end();
            for s in &slots { a.free(s.addr).unwrap(); }
            prop_assert_eq!(a.used_end(), a.base(), "everything freed gives the whole reserve back");
            for &s in &sizes { a.alloc(s, 8).unwrap(); }
            prop_assert_eq!(a.used_end(), high, "the same allocations fit in the same space again");
        }
    }

    #[test]
    fn exhausting_the_reserve_says_restart_required() {
        let mut a =
            SectionAlloc::new("__text", VmAddr(0x1_0000_4000), 256, Padding::Code { min_capacity: 64 });
        for _ in 0..4 {
            a.alloc(10, 4).unwrap();
        }
        let err = a.alloc(10, 4).unwrap_err();
        assert!(err.to_string().contains("restart required"), "{err}");
        assert!(err.to_string().contains("__text"), "{err}");
    }

    #[test]
    fn code_gets_padding_and_grows_in_place_then_moves() {
        let mut a = SectionAlloc::new("__text", VmAddr(0), 4096, Padding::Code { min_capacity: 64 });
        let first = a.alloc(300, 4).unwrap();
        assert_eq!(first.capacity, 400);
        let second = a.alloc(100, 4).unwrap();
        assert_eq!(second.addr, VmAddr(400));
        assert!(matches!(a.grow(first.addr, 390).unwrap(), Grown::InPlace(s) if s.capacity == 400));
        assert_eq!(a.grow(first.addr, 401).unwrap(), Grown::MustMove);
        // The last slot can grow into the untouched rest of the reserve.
        assert!(matches!(a.grow(second.addr, 1000).unwrap(), Grown::InPlace(s) if s.addr == VmAddr(400)));
        // After freeing its neighbour, the first absorbs the space.
        a.free(second.addr).unwrap();
        assert!(matches!(a.grow(first.addr, 600).unwrap(), Grown::InPlace(s) if s.capacity == 800));
        a.check().unwrap();
    }
}
