//! What an update produces: data that says which bytes to write where, in which order, and why.
//!
//! A [`Patch`] never touches a process. Its writes are in link-time addresses; the driver adds the ASLR slide
//! to each address and to each absolute pointer listed in `pointers` (PC-relative code needs nothing). The
//! order is the contract's: code and constant data first, then data fixes, then the cell stores that publish
//! new code. The new file image comes with it, with the ranges that changed since the last update.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;

/// What a write is, which decides how it is written and in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteKind {
    /// Instructions (function bodies, stubs): written with the code recipe (never W+X, flush, verify).
    Code,
    /// Constant data, new data, and pointer fields of kept data that must follow a moved target.
    Data,
    /// One aligned 8-byte store of an address into a target cell or GOT cell: what publishes new code.
    Cell,
}

/// One write into the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub kind: WriteKind,
    /// Link-time address.
    pub addr: u64,
    pub bytes: Vec<u8>,
    /// Offsets in `bytes` of 8-byte absolute link-time addresses, which must be slid before writing.
    pub pointers: Vec<u32>,
    /// The symbol or cell written, for messages.
    pub what: String,
}

/// A cell that must be bound to a library symbol in the running process (dyld binds it in a fresh launch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImport {
    pub symbol: String,
    /// The cell's link-time address.
    pub cell: u64,
    /// The install name of the library that exports it.
    pub dylib: String,
}

/// A code atom that moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub name: String,
    pub from: u64,
    pub to: u64,
    /// Why it moved: it outgrew its slot, or a thread was in it.
    pub reason: MoveReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// The new body does not fit the slot (size plus padding).
    Grew,
    /// A thread is running in the old body or may return into it.
    Live,
}

/// What an update did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Atoms that did not exist before (functions, globals, constants, literals).
    pub added: Vec<String>,
    /// Function bodies rewritten where they were.
    pub changed_in_place: Vec<String>,
    /// Function bodies written to new space.
    pub moved: Vec<Moved>,
    /// Atoms no longer linked.
    pub removed: Vec<String>,
    /// Globals whose initializer changed but whose running value was kept (`reset NAME` re-applies it).
    pub globals_kept: Vec<String>,
    /// Globals whose size or alignment changed: fresh storage, initialised from the new object.
    pub globals_reset: Vec<String>,
    /// Constant data given new contents (in new storage).
    pub constants_changed: Vec<String>,
    /// Target and GOT cells rewritten.
    pub cells: Vec<String>,
    /// Library symbols imported for the first time.
    pub new_imports: Vec<String>,
    /// Unchanged atoms relinked because something they point at moved.
    pub relinked: Vec<String>,
}

impl Summary {
    fn is_empty(&self) -> bool {
        *self == Summary::default()
    }
}

/// The result of an update.
#[derive(Debug, Clone)]
pub struct Patch {
    /// In the order they must be applied.
    pub writes: Vec<Write>,
    /// Cells to bind in the running process before the cell stores are made.
    pub new_imports: Vec<NewImport>,
    pub summary: Summary,
    /// File ranges that changed. The file itself is [`crate::Linker::file`] (not copied here: at 10,000 functions
    /// it is 5 MB, and copying it cost more than the rest of an update).
    pub file_dirty: Vec<Range<u64>>,
    /// Code-signature pages re-hashed.
    pub pages_hashed: usize,
}

impl Patch {
    /// Whether the update changes nothing in the process.
    pub fn is_noop(&self) -> bool {
        self.writes.is_empty() && self.new_imports.is_empty()
    }

    /// Bytes written to the process.
    pub fn bytes_written(&self) -> u64 {
        self.writes.iter().map(|w| w.bytes.len() as u64).sum()
    }

    /// Distinct 16 KiB pages the writes touch.
    pub fn pages_touched(&self) -> usize {
        let mut pages = BTreeSet::new();
        for w in &self.writes {
            let end = w.addr + w.bytes.len().max(1) as u64;
            pages.extend((w.addr / 16384)..end.div_ceil(16384));
        }
        pages.len()
    }

    /// A human-readable account, stable enough to snapshot: what changed, then the writes in order.
    pub fn describe(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let mut list = |label: &str, items: &[String]| {
            if !items.is_empty() {
                let _ = writeln!(out, "{label:<18} {}", items.join(", "));
            }
        };
        list("added", &s.added);
        list("changed in place", &s.changed_in_place);
        let moved: Vec<String> = s
            .moved
            .iter()
            .map(|m| {
                let why = match m.reason {
                    MoveReason::Grew => "grew",
                    MoveReason::Live => "live",
                };
                format!("{} {:#x} -> {:#x} ({why})", m.name, m.from, m.to)
            })
            .collect();
        list("moved", &moved);
        list("removed", &s.removed);
        list("globals kept", &s.globals_kept);
        list("globals reset", &s.globals_reset);
        list("constants changed", &s.constants_changed);
        list("relinked", &s.relinked);
        list("cells", &s.cells);
        list("new imports", &s.new_imports);
        if s.is_empty() {
            out.push_str("no change\n");
        }
        for w in &self.writes {
            let kind = match w.kind {
                WriteKind::Code => "code",
                WriteKind::Data => "data",
                WriteKind::Cell => "cell",
            };
            let _ = writeln!(out, "write {kind:<4} {:#011x} {:>5} bytes  {}", w.addr, w.bytes.len(), w.what);
        }
        for i in &self.new_imports {
            let _ = writeln!(out, "bind  {:#011x} {} from {}", i.cell, i.symbol, i.dylib);
        }
        let _ = writeln!(out, "{} bytes in {} pages", self.bytes_written(), self.pages_touched());
        out
    }
}
