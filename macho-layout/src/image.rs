//! The executable image: fixed segments with large VM reserves, atoms placed in them, and the file rendered
//! from them, incrementally.
//!
//! Layout (one growable section per segment, so that no section ever has to move to let another grow):
//!
//! | segment | section | holds | prot |
//! | --- | --- | --- | --- |
//! | `__PAGEZERO` | | 4 GiB of nothing | `---` |
//! | `__TEXT` | `__text` | the mach header, load commands, then function bodies | `r-x` |
//! | `__STUBS` | `__stubs` | one 12-byte stub per function; never moves | `r-x` |
//! | `__RODATA` | `__const` | string literals and constant data | `r--` |
//! | `__DATA_CONST` | `__got` | target cells and GOT cells; read-only after dyld binds them | `rw-` |
//! | `__DATA` | `__data` | initialised globals | `rw-` |
//! | `__BSS` | `__bss` | zero-initialised globals (no file bytes) | `rw-` |
//! | `__LINKEDIT` | | rebase/bind opcodes, exports, symbols, the code signature | `r--` |
//!
//! Every segment's `vmaddr` and `vmsize` (its reserve) are decided when the image is created and never change,
//! so a running process can always follow an update; only the last, `__LINKEDIT`, which no process reads after
//! launch, changes size. `__TEXT` and `__STUBS` are adjacent and together well under ±128 MiB, so every call
//! (`BL`) reaches every stub. File offsets are allocated apart from VM addresses: a segment whose used bytes
//! outgrow its place in the file is copied to the end of the file while its addresses stay as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;

use object::macho;
use sha2::{Digest, Sha256};

use crate::addr::{FileOffset, PAGE_SIZE, VmAddr, page_align};
use crate::alloc::{AllocError, Grown, Padding, SectionAlloc, Slot};
use crate::codesign::CodeSignature;
use crate::linkedit::{
    BindEntry, ExportEntry, RebaseEntry, SymbolRef, SymtabRanges, encode_bind, encode_export_trie,
    encode_function_starts, encode_rebase, encode_symbols,
};
use crate::load_commands::{self, Blob, Commands, SectionHeader, SegmentHeader};

/// Where every image starts: after the 4 GiB `__PAGEZERO`.
pub const IMAGE_BASE: VmAddr = VmAddr(0x1_0000_0000);
/// The header page: the mach header and load commands live in the first page of `__TEXT`.
const HEADER_SPACE: u64 = PAGE_SIZE;

/// The sections atoms go into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Section {
    Text,
    Stubs,
    Const,
    Cells,
    Data,
    Bss,
}

impl Section {
    pub const ALL: [Section; 6] =
        [Section::Text, Section::Stubs, Section::Const, Section::Cells, Section::Data, Section::Bss];

    /// `(segment, section)` names.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Section::Text => ("__TEXT", "__text"),
            Section::Stubs => ("__STUBS", "__stubs"),
            Section::Const => ("__RODATA", "__const"),
            Section::Cells => ("__DATA_CONST", "__got"),
            Section::Data => ("__DATA", "__data"),
            Section::Bss => ("__BSS", "__bss"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The 1-based section number symbols use (`n_sect`): sections are numbered in load-command order.
    pub fn n_sect(self) -> u8 {
        self.index() as u8 + 1
    }

    /// The index of the section's segment in load-command order (`__PAGEZERO` is 0).
    pub fn segment_index(self) -> u8 {
        self.index() as u8 + 1
    }

    fn prot(self) -> u32 {
        let (r, w, x) = (macho::VM_PROT_READ.0, macho::VM_PROT_WRITE.0, macho::VM_PROT_EXECUTE.0);
        match self {
            Section::Text | Section::Stubs => r | x,
            Section::Const => r,
            Section::Cells | Section::Data | Section::Bss => r | w,
        }
    }

    fn section_flags(self) -> u32 {
        match self {
            Section::Text | Section::Stubs => {
                macho::S_ATTR_PURE_INSTRUCTIONS.0 | macho::S_ATTR_SOME_INSTRUCTIONS.0
            }
            Section::Bss => u32::from(macho::S_ZEROFILL.0),
            Section::Const | Section::Cells | Section::Data => u32::from(macho::S_REGULAR.0),
        }
    }

    fn segment_flags(self) -> u32 {
        if self == Section::Cells { macho::SG_READ_ONLY.0 } else { 0 }
    }
}

/// The size of each section's VM reserve, decided once for the life of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayoutConfig {
    pub text: u64,
    pub stubs: u64,
    pub constants: u64,
    pub cells: u64,
    pub data: u64,
    pub bss: u64,
    /// The smallest slot a function gets, so that small functions can grow a little in place.
    pub min_code_capacity: u64,
}

impl Default for LayoutConfig {
    /// Reserves for programs of up to about 100,000 functions: 64 MiB of text with 8 MiB of stubs right after
    /// it (so every call reaches every stub), 32 MiB of constants, 8 MiB of cells, 64 MiB each of data and bss.
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        LayoutConfig {
            text: 64 * MIB,
            stubs: 8 * MIB,
            constants: 32 * MIB,
            cells: 8 * MIB,
            data: 64 * MIB,
            bss: 64 * MIB,
            min_code_capacity: 64,
        }
    }
}

impl LayoutConfig {
    fn reserve(&self, section: Section) -> u64 {
        page_align(match section {
            Section::Text => self.text,
            Section::Stubs => self.stubs,
            Section::Const => self.constants,
            Section::Cells => self.cells,
            Section::Data => self.data,
            Section::Bss => self.bss,
        })
    }
}

/// An atom's handle. Ids are dense and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AtomId(pub u32);

/// What the image knows of an atom.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Atom {
    pub name: String,
    pub section: Section,
    pub addr: VmAddr,
    pub size: u64,
    pub capacity: u64,
    pub align: u64,
    /// Listed as an external (exported) symbol rather than a local one.
    pub external: bool,
    /// Whether the atom still has its slot (freed atoms keep their id and record).
    pub live: bool,
    /// Kept in memory only because a thread may still run or return into it: the slot stays allocated, but the
    /// atom is no longer listed (symbol table, exports, layout) and is freed once nothing can reach it.
    pub retired: bool,
}

/// The outcome of resizing an atom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The atom kept its address.
    InPlace,
    /// The atom moved; its old slot is free.
    Moved { from: VmAddr, to: VmAddr },
}

/// A pointer cell bound by dyld to an imported symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Import {
    pub cell: VmAddr,
    pub symbol: String,
    /// 1-based `LC_LOAD_DYLIB` ordinal (1 is libSystem).
    pub dylib_ordinal: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Alloc(#[from] AllocError),
    #[error("atom {name}: {len} bytes do not fit its {size}-byte size")]
    TooManyBytes { name: String, len: usize, size: u64 },
    #[error("atom {name} in {section} has no file bytes to write")]
    Zerofill { name: String, section: &'static str },
    #[error("atom {id:?} was freed")]
    Freed { id: AtomId },
    #[error("{addr} is not inside any section")]
    Outside { addr: VmAddr },
    #[error("the load commands need {need} bytes but the header page holds {room}")]
    HeaderFull { need: usize, room: u64 },
    #[error("no entry point was set")]
    NoEntry,
}

/// A segment's place in the file: where its bytes start and how much room they have there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Extent {
    off: FileOffset,
    capacity: u64,
}

/// The result of a render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// File ranges whose bytes changed since the previous render (sorted, merged). The first render reports the
    /// whole file.
    pub dirty: Vec<Range<u64>>,
    /// Code-signature pages hashed by this render.
    pub pages_hashed: usize,
}

/// The executable image.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Image {
    config: LayoutConfig,
    allocs: Vec<SectionAlloc>,
    atoms: Vec<Atom>,
    by_addr: BTreeMap<VmAddr, AtomId>,
    extents: [Option<Extent>; 6],
    /// Not saved with the state: it is the executable file itself (see [`Image::restore_file`]).
    #[cfg_attr(feature = "serde", serde(skip))]
    file: Vec<u8>,
    dirty: Vec<Range<u64>>,
    entry: Option<VmAddr>,
    rebases: BTreeSet<VmAddr>,
    /// By cell: one import a cell. Saved as the list of imports.
    #[cfg_attr(feature = "serde", serde(with = "imports_as_list"))]
    imports: BTreeMap<VmAddr, Import>,
    signature: CodeSignature,
    uuid: Option<[u8; 16]>,
    /// Bytes reserved for LINKEDIT's contents before the signature, so the signature rarely moves.
    linkedit_capacity: u64,
    rendered_once: bool,
    /// The segment headers the last render wrote, which the layout table prints.
    #[cfg_attr(feature = "serde", serde(skip))]
    last_segments: Vec<SegmentHeader>,
    /// LINKEDIT as last encoded, kept while nothing it encodes changes (`None`: encode it again at the next
    /// render). Every method that changes the listing of atoms, the rebases or the imports drops it.
    #[cfg_attr(feature = "serde", serde(skip))]
    linkedit: Option<EncodedLinkedit>,
    /// Where the file holds the encoded LINKEDIT padded to its capacity, `(offset, capacity)`, when the file
    /// has those bytes since the last render; `None` when they must be written again.
    #[cfg_attr(feature = "serde", serde(skip))]
    linkedit_written: Option<(u64, u64)>,
    /// What changed since [`Image::checkpoint`], to put back on [`Image::rollback`].
    #[cfg_attr(feature = "serde", serde(skip))]
    undo: Option<Box<ImageUndo>>,
}

/// The image as it was at a checkpoint: small parts whole, large ones as the first value of each entry or
/// byte range that changed since.
#[derive(Debug, Clone)]
struct ImageUndo {
    atoms_len: usize,
    atoms: BTreeMap<u32, Atom>,
    by_addr: BTreeMap<VmAddr, Option<AtomId>>,
    extents: [Option<Extent>; 6],
    file_len: usize,
    /// `(offset, bytes before they were overwritten)`, oldest first.
    file: Vec<(u64, Vec<u8>)>,
    dirty: Vec<Range<u64>>,
    entry: Option<VmAddr>,
    /// Whole sets replaced by `set_rebases` / `set_imports`; key changes recorded before are applied after.
    rebases_whole: Option<BTreeSet<VmAddr>>,
    rebases: BTreeMap<VmAddr, bool>,
    imports_whole: Option<BTreeMap<VmAddr, Import>>,
    imports: BTreeMap<VmAddr, Option<Import>>,
    signature: CodeSignature,
    uuid: Option<[u8; 16]>,
    linkedit_capacity: u64,
    rendered_once: bool,
    last_segments: Vec<SegmentHeader>,
    /// The encoded LINKEDIT the first time it was dropped since the checkpoint.
    linkedit: Option<Option<EncodedLinkedit>>,
    linkedit_written: Option<(u64, u64)>,
}

/// LINKEDIT's contents, with every piece's place relative to its start, and what the segment headers derive
/// from the same listing of atoms.
#[derive(Debug, Clone)]
struct EncodedLinkedit {
    bytes: Vec<u8>,
    /// `(offset from LINKEDIT's start, size)` of each piece.
    rebase: (u64, u32),
    bind: (u64, u32),
    export: (u64, u32),
    function_starts: (u64, u32),
    symtab: (u64, u32),
    strtab: (u64, u32),
    nsyms: u32,
    dysymtab: SymtabRanges,
    /// The largest alignment of each section's listed atoms (1 for none), which its section header records.
    aligns: [u64; 6],
}

impl EncodedLinkedit {
    /// A piece's place in the file when LINKEDIT starts at `linkedit_off` (an empty piece is at offset 0).
    fn blob(linkedit_off: u64, (off, size): (u64, u32)) -> Blob {
        Blob { off: if size == 0 { 0 } else { (linkedit_off + off) as u32 }, size }
    }
}

impl Image {
    /// An empty image named `ident` (the output file's name, which the code signature records), signed with
    /// the given entitlements.
    pub fn new(ident: &str, entitlements: Option<&str>, config: LayoutConfig) -> Image {
        let mut allocs = Vec::new();
        for section in Section::ALL {
            let (segment_start, _) = segment_range(&config, section);
            let start = if section == Section::Text { segment_start + HEADER_SPACE } else { segment_start };
            let reserve = config.reserve(section) - (start - segment_start);
            let padding = if section == Section::Text {
                Padding::Code { min_capacity: config.min_code_capacity }
            } else {
                Padding::Packed
            };
            allocs.push(SectionAlloc::new(section.names().1, start, reserve, padding));
        }
        Image {
            config,
            allocs,
            atoms: Vec::new(),
            by_addr: BTreeMap::new(),
            extents: [None; 6],
            file: Vec::new(),
            dirty: Vec::new(),
            entry: None,
            rebases: BTreeSet::new(),
            imports: BTreeMap::new(),
            signature: CodeSignature::new(ident, entitlements),
            uuid: None,
            linkedit_capacity: 0,
            rendered_once: false,
            last_segments: Vec::new(),
            linkedit: None,
            linkedit_written: None,
            undo: None,
        }
    }

    /// Starts recording every change, so that [`Image::rollback`] can put the image back as it is now, at a
    /// cost that follows what changed rather than the image's size. A checkpoint taken while one is open
    /// replaces it.
    pub fn checkpoint(&mut self) {
        for alloc in &mut self.allocs {
            alloc.checkpoint();
        }
        self.undo = Some(Box::new(ImageUndo {
            atoms_len: self.atoms.len(),
            atoms: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            extents: self.extents,
            file_len: self.file.len(),
            file: Vec::new(),
            dirty: self.dirty.clone(),
            entry: self.entry,
            rebases_whole: None,
            rebases: BTreeMap::new(),
            imports_whole: None,
            imports: BTreeMap::new(),
            signature: self.signature.clone(),
            uuid: self.uuid,
            linkedit_capacity: self.linkedit_capacity,
            rendered_once: self.rendered_once,
            last_segments: self.last_segments.clone(),
            linkedit: None,
            linkedit_written: self.linkedit_written,
        }));
    }

    /// Keeps every change since the checkpoint and stops recording.
    pub fn commit(&mut self) {
        for alloc in &mut self.allocs {
            alloc.commit();
        }
        self.undo = None;
    }

    /// Puts the image back as it was at the checkpoint: atoms, allocation, file bytes, rebases, imports,
    /// signature. Without a checkpoint nothing happens.
    pub fn rollback(&mut self) {
        let Some(undo) = self.undo.take() else { return };
        for alloc in &mut self.allocs {
            alloc.rollback();
        }
        self.atoms.truncate(undo.atoms_len);
        for (id, atom) in undo.atoms {
            self.atoms[id as usize] = atom;
        }
        for (addr, id) in undo.by_addr {
            match id {
                Some(id) => self.by_addr.insert(addr, id),
                None => self.by_addr.remove(&addr),
            };
        }
        self.extents = undo.extents;
        self.file.truncate(undo.file_len);
        self.file.resize(undo.file_len, 0);
        for (off, bytes) in undo.file.into_iter().rev() {
            let (start, end) = (off as usize, (off as usize + bytes.len()).min(undo.file_len));
            if start < end {
                self.file[start..end].copy_from_slice(&bytes[..end - start]);
            }
        }
        self.dirty = undo.dirty;
        self.entry = undo.entry;
        if let Some(rebases) = undo.rebases_whole {
            self.rebases = rebases;
        }
        for (pointer, present) in undo.rebases {
            if present {
                self.rebases.insert(pointer);
            } else {
                self.rebases.remove(&pointer);
            }
        }
        if let Some(imports) = undo.imports_whole {
            self.imports = imports;
        }
        for (cell, import) in undo.imports {
            match import {
                Some(import) => self.imports.insert(cell, import),
                None => self.imports.remove(&cell),
            };
        }
        self.signature = undo.signature;
        self.uuid = undo.uuid;
        self.linkedit_capacity = undo.linkedit_capacity;
        self.rendered_once = undo.rendered_once;
        self.last_segments = undo.last_segments;
        if let Some(linkedit) = undo.linkedit {
            self.linkedit = linkedit;
        }
        self.linkedit_written = undo.linkedit_written;
    }

    /// Drops the encoded LINKEDIT (something it encodes changed), keeping it for a rollback.
    fn drop_linkedit(&mut self) {
        let old = self.linkedit.take();
        if let Some(undo) = &mut self.undo
            && undo.linkedit.is_none()
        {
            undo.linkedit = Some(old);
        }
    }

    /// Records atom `id` before it changes (atoms added since the checkpoint are simply cut off).
    fn note_atom(&mut self, id: AtomId) {
        if let Some(undo) = &mut self.undo
            && (id.0 as usize) < undo.atoms_len
        {
            undo.atoms.entry(id.0).or_insert_with(|| self.atoms[id.0 as usize].clone());
        }
    }

    fn list(&mut self, addr: VmAddr, id: AtomId) {
        if let Some(undo) = &mut self.undo {
            undo.by_addr.entry(addr).or_insert_with(|| self.by_addr.get(&addr).copied());
        }
        self.by_addr.insert(addr, id);
    }

    fn unlist(&mut self, addr: VmAddr) {
        if let Some(undo) = &mut self.undo {
            undo.by_addr.entry(addr).or_insert_with(|| self.by_addr.get(&addr).copied());
        }
        self.by_addr.remove(&addr);
    }

    /// Records the file bytes at `off..off + len` before they are overwritten or cut.
    fn note_file(&mut self, off: usize, len: usize) {
        if let Some(undo) = &mut self.undo
            && off < undo.file_len
        {
            let end = (off + len).min(undo.file_len).min(self.file.len());
            if off < end {
                undo.file.push((off as u64, self.file[off..end].to_vec()));
            }
        }
    }

    pub fn config(&self) -> &LayoutConfig {
        &self.config
    }

    /// Places a new atom of `size` bytes aligned to `align` in `section`.
    pub fn add_atom(
        &mut self,
        name: &str,
        section: Section,
        size: u64,
        align: u64,
        external: bool,
    ) -> Result<AtomId, LayoutError> {
        let slot = self.allocs[section.index()].alloc(size, align)?;
        let id = AtomId(self.atoms.len() as u32);
        self.atoms.push(Atom {
            name: name.to_string(),
            section,
            addr: slot.addr,
            size,
            capacity: slot.capacity,
            align,
            external,
            live: true,
            retired: false,
        });
        self.list(slot.addr, id);
        self.drop_linkedit();
        Ok(id)
    }

    pub fn atom(&self, id: AtomId) -> &Atom {
        &self.atoms[id.0 as usize]
    }

    /// Every listed atom (one that has a slot and is not retired), in address order.
    pub fn atoms(&self) -> impl Iterator<Item = (AtomId, &Atom)> {
        self.by_addr.values().map(|&id| (id, self.atom(id)))
    }

    fn live_atom(&self, id: AtomId) -> Result<&Atom, LayoutError> {
        let atom = self.atom(id);
        if atom.live { Ok(atom) } else { Err(LayoutError::Freed { id }) }
    }

    /// Gives the atom `size` bytes: in place when its slot (and the free space after it) holds them and
    /// `may_stay` is true, else in a new slot. The caller rewrites the bytes of a moved atom.
    pub fn resize_atom(&mut self, id: AtomId, size: u64, may_stay: bool) -> Result<Placement, LayoutError> {
        let atom = self.live_atom(id)?.clone();
        let alloc = &mut self.allocs[atom.section.index()];
        if may_stay && let Grown::InPlace(slot) = alloc.grow(atom.addr, size)? {
            self.set_slot(id, slot);
            return Ok(Placement::InPlace);
        }
        // Allocate before freeing, so the new slot never overlaps the old bytes: a thread may still be in them.
        let slot = alloc.alloc(size, atom.align)?;
        alloc.free(atom.addr)?;
        self.unlist(atom.addr);
        self.list(slot.addr, id);
        self.set_slot(id, slot);
        self.drop_linkedit();
        Ok(Placement::Moved { from: atom.addr, to: slot.addr })
    }

    /// Moves the atom to a new slot of `size` bytes and keeps the old slot allocated as a new, retired atom
    /// (returned), because a thread may still be running in the old bytes or return into them. The caller
    /// frees the retired atom with [`Image::free_atom`] once no thread can reach it.
    pub fn move_atom_keeping_old(
        &mut self,
        id: AtomId,
        size: u64,
    ) -> Result<(Placement, AtomId), LayoutError> {
        let atom = self.live_atom(id)?.clone();
        let slot = self.allocs[atom.section.index()].alloc(size, atom.align)?;
        let old = AtomId(self.atoms.len() as u32);
        self.atoms.push(Atom { retired: true, ..atom.clone() });
        self.unlist(atom.addr);
        self.list(slot.addr, id);
        self.set_slot(id, slot);
        self.drop_linkedit();
        Ok((Placement::Moved { from: atom.addr, to: slot.addr }, old))
    }

    /// Takes the atom out of the listings (symbol table, exports, layout) but keeps its slot allocated, so that
    /// memory a running thread or a stale pointer may still use is not handed to another atom.
    pub fn retire_atom(&mut self, id: AtomId) -> Result<(), LayoutError> {
        let atom = self.live_atom(id)?.clone();
        if self.by_addr.get(&atom.addr) == Some(&id) {
            self.unlist(atom.addr);
            self.drop_linkedit();
        }
        self.note_atom(id);
        self.atoms[id.0 as usize].retired = true;
        Ok(())
    }

    fn set_slot(&mut self, id: AtomId, slot: Slot) {
        self.note_atom(id);
        let atom = &mut self.atoms[id.0 as usize];
        atom.addr = slot.addr;
        atom.size = slot.size;
        atom.capacity = slot.capacity;
    }

    /// Frees the atom's slot (listed or retired) for reuse. Its bytes stay in the file until something else is
    /// written there.
    pub fn free_atom(&mut self, id: AtomId) -> Result<(), LayoutError> {
        let atom = self.live_atom(id)?.clone();
        self.allocs[atom.section.index()].free(atom.addr)?;
        if self.by_addr.get(&atom.addr) == Some(&id) {
            self.unlist(atom.addr);
            self.drop_linkedit();
        }
        self.note_atom(id);
        self.atoms[id.0 as usize].live = false;
        Ok(())
    }

    /// Writes the atom's bytes (at most its size; the rest of its slot is left as it is).
    pub fn write_atom(&mut self, id: AtomId, bytes: &[u8]) -> Result<(), LayoutError> {
        let atom = self.live_atom(id)?.clone();
        if bytes.len() as u64 > atom.size {
            return Err(LayoutError::TooManyBytes { name: atom.name, len: bytes.len(), size: atom.size });
        }
        if atom.section == Section::Bss {
            return Err(LayoutError::Zerofill { name: atom.name, section: "__bss" });
        }
        let section = atom.section;
        self.ensure_file_room(section, atom.addr + bytes.len() as u64);
        let off = self.file_offset(section, atom.addr);
        self.write_file(off.0, bytes);
        Ok(())
    }

    /// The file offset of `addr` in `section`, as things stand (the segment may move in the file later).
    fn file_offset(&self, section: Section, addr: VmAddr) -> FileOffset {
        let (segment_start, _) = segment_range(&self.config, section);
        let extent = self.extents[section.index()].expect("a segment with bytes has an extent");
        extent.off + (addr - segment_start)
    }

    /// The section holding `addr`.
    pub fn section_of(&self, addr: VmAddr) -> Option<Section> {
        Section::ALL.into_iter().find(|&s| {
            let (start, end) = segment_range(&self.config, s);
            (start..end).contains(&addr)
        })
    }

    /// The start of `section`'s slots (for `__text`, past the header page) and the end of its reserve.
    pub fn section_range(&self, section: Section) -> Range<VmAddr> {
        let alloc = &self.allocs[section.index()];
        alloc.base()..alloc.end()
    }

    pub fn set_entry(&mut self, addr: VmAddr) {
        self.entry = Some(addr);
    }

    /// The absolute pointers in data that dyld must slide (replaces the previous set).
    pub fn set_rebases(&mut self, pointers: Vec<VmAddr>) {
        let pointers: BTreeSet<VmAddr> = pointers.into_iter().collect();
        if self.rebases != pointers {
            let old = std::mem::replace(&mut self.rebases, pointers);
            if let Some(undo) = &mut self.undo
                && undo.rebases_whole.is_none()
            {
                undo.rebases_whole = Some(old);
            }
            self.drop_linkedit();
        }
    }

    /// Changes the set of pointers dyld must slide: takes `removed` out, then puts `added` in (so a pointer in
    /// both stays). Costs what the change holds, not what the set holds.
    pub fn change_rebases(&mut self, removed: &[VmAddr], added: &[VmAddr]) {
        let mut changed = false;
        let kept: BTreeSet<VmAddr> = added.iter().copied().collect();
        let note = |undo: &mut Option<Box<ImageUndo>>, pointer: VmAddr, was: bool| {
            if let Some(undo) = undo
                && undo.rebases_whole.is_none()
            {
                undo.rebases.entry(pointer).or_insert(was);
            }
        };
        for pointer in removed {
            if !kept.contains(pointer) && self.rebases.remove(pointer) {
                note(&mut self.undo, *pointer, true);
                changed = true;
            }
        }
        for &pointer in added {
            if self.rebases.insert(pointer) {
                note(&mut self.undo, pointer, false);
                changed = true;
            }
        }
        if changed {
            self.drop_linkedit();
        }
    }

    /// Every pointer dyld slides, in address order.
    pub fn rebases(&self) -> impl Iterator<Item = VmAddr> + '_ {
        self.rebases.iter().copied()
    }

    /// The cells dyld binds to imports, one import a cell (replaces the previous set; of two imports for one
    /// cell the last counts).
    pub fn set_imports(&mut self, imports: Vec<Import>) {
        let imports: BTreeMap<VmAddr, Import> = imports.into_iter().map(|i| (i.cell, i)).collect();
        if self.imports != imports {
            let old = std::mem::replace(&mut self.imports, imports);
            if let Some(undo) = &mut self.undo
                && undo.imports_whole.is_none()
            {
                undo.imports_whole = Some(old);
            }
            self.drop_linkedit();
        }
    }

    /// Changes the bound cells: the cells in `removed` are no longer bound, then each import in `added` binds
    /// its cell (replacing what the cell was bound to). Costs what the change holds, not what the set holds.
    pub fn change_imports(&mut self, removed: &[VmAddr], added: Vec<Import>) {
        let mut changed = false;
        let bound: BTreeSet<VmAddr> = added.iter().map(|i| i.cell).collect();
        let note = |undo: &mut Option<Box<ImageUndo>>, cell: VmAddr, was: Option<Import>| {
            if let Some(undo) = undo
                && undo.imports_whole.is_none()
            {
                undo.imports.entry(cell).or_insert(was);
            }
        };
        for cell in removed {
            if !bound.contains(cell)
                && let Some(was) = self.imports.remove(cell)
            {
                note(&mut self.undo, *cell, Some(was));
                changed = true;
            }
        }
        for import in added {
            if self.imports.get(&import.cell) != Some(&import) {
                let cell = import.cell;
                let was = self.imports.insert(cell, import);
                note(&mut self.undo, cell, was);
                changed = true;
            }
        }
        if changed {
            self.drop_linkedit();
        }
    }

    /// Every bound cell's import, in cell order.
    pub fn imports(&self) -> impl Iterator<Item = &Import> {
        self.imports.values()
    }

    /// The file as last rendered.
    pub fn file(&self) -> &[u8] {
        &self.file
    }

    /// Gives a restored image (saved state, which leaves the file out) its file back: the bytes of the
    /// executable that its last render produced. The caller checks they are that file (a digest saved with the
    /// state); the layout table shows segments again after the next render.
    pub fn restore_file(&mut self, file: Vec<u8>) {
        self.note_file(0, self.file.len());
        self.file = file;
        self.linkedit_written = None;
    }

    // --- file bookkeeping ---------------------------------------------------------------------------------

    fn write_file(&mut self, off: u64, bytes: &[u8]) {
        let end = off as usize + bytes.len();
        if self.file.len() < end {
            self.file.resize(end, 0);
        }
        // Only the bytes that differ are dirty: they are what the driver writes and the signature re-hashes.
        let old = &self.file[off as usize..end];
        let Some(first) = old.iter().zip(bytes).position(|(a, b)| a != b) else { return };
        let last =
            old.iter().zip(bytes).rposition(|(a, b)| a != b).expect("a first difference implies a last");
        self.note_file(off as usize + first, last + 1 - first);
        let span = off as usize + first..off as usize + last + 1;
        self.file[span].copy_from_slice(&bytes[first..=last]);
        self.dirty.push(off + first as u64..off + last as u64 + 1);
    }

    /// The bytes `section`'s segment must have in the file to cover its used slots (whole pages).
    fn needed_filesize(&self, section: Section) -> u64 {
        if section == Section::Bss {
            return 0;
        }
        let (segment_start, _) = segment_range(&self.config, section);
        let used = self.allocs[section.index()].used_end() - segment_start;
        if section != Section::Text && self.allocs[section.index()].slots().next().is_none() {
            return 0;
        }
        page_align(used)
    }

    /// Makes sure `section`'s segment has file room up to `addr`; moves it to the end of the file when its
    /// extent is too small (its VM addresses stay).
    fn ensure_file_room(&mut self, section: Section, addr: VmAddr) {
        let (segment_start, _) = segment_range(&self.config, section);
        let needed = page_align(addr - segment_start).max(self.needed_filesize(section));
        match self.extents[section.index()] {
            Some(extent) if extent.capacity >= needed => {}
            Some(_) | None if section == Section::Text => {
                // __TEXT must start at offset 0 (it holds the header): move the segments in its way instead, even
                // when other segments were written before it.
                self.extents[0] = Some(Extent { off: FileOffset(0), capacity: room(needed) });
                self.evict_overlapping(0..room(needed));
            }
            old => {
                let capacity = room(needed);
                let off = FileOffset(self.segments_file_end()).align_up(PAGE_SIZE);
                if let Some(old) = old {
                    let bytes = self.extent_bytes(old);
                    self.extents[section.index()] = Some(Extent { off, capacity });
                    self.write_file(off.0, &bytes);
                } else {
                    self.extents[section.index()] = Some(Extent { off, capacity });
                }
            }
        }
    }

    /// Moves every segment other than `__TEXT` whose extent overlaps `range` to the end of the file.
    fn evict_overlapping(&mut self, range: Range<u64>) {
        for section in &Section::ALL[1..] {
            if let Some(extent) = self.extents[section.index()]
                && extent.off.0 < range.end
                && range.start < extent.off.0 + extent.capacity
            {
                let bytes = self.extent_bytes(extent);
                let off = FileOffset(self.segments_file_end().max(range.end)).align_up(PAGE_SIZE);
                self.extents[section.index()] = Some(Extent { off, capacity: extent.capacity });
                self.write_file(off.0, &bytes);
            }
        }
    }

    /// The bytes an extent holds so far (the file may not reach its end yet).
    fn extent_bytes(&self, extent: Extent) -> Vec<u8> {
        let start = (extent.off.0 as usize).min(self.file.len());
        let end = ((extent.off.0 + extent.capacity) as usize).min(self.file.len());
        self.file[start..end].to_vec()
    }

    /// One past the last segment extent in the file: where `__LINKEDIT` may start.
    fn segments_file_end(&self) -> u64 {
        self.extents.iter().flatten().map(|e| e.off.0 + e.capacity).max().unwrap_or(0)
    }

    // --- rendering ----------------------------------------------------------------------------------------

    /// Renders headers, LINKEDIT and the code signature, and returns what changed in the file since the last
    /// render.
    pub fn render(&mut self) -> Result<Rendered, LayoutError> {
        let entry = self.entry.ok_or(LayoutError::NoEntry)?;
        if self.extents[0].is_none() {
            self.extents[0] = Some(Extent { off: FileOffset(0), capacity: room(HEADER_SPACE) });
        }
        for section in Section::ALL {
            let needed = self.needed_filesize(section);
            if needed > 0 {
                let (start, _) = segment_range(&self.config, section);
                self.ensure_file_room(section, start + needed);
            }
        }

        // LINKEDIT contents, encoded again only when something they encode changed.
        let linkedit_off = page_align(self.segments_file_end());
        if self.linkedit.is_none() {
            self.linkedit = Some(self.encode_linkedit()?);
            self.linkedit_written = None;
        }
        let encoded = self.linkedit.as_ref().expect("encoded above");
        let content = encoded.bytes.len() as u64;
        if content > self.linkedit_capacity {
            // Room to grow, so that the signature (and so the code limit) stays put across most updates.
            self.linkedit_capacity = (content + content / 3).next_multiple_of(16).max(1024);
        }
        let signature_off = linkedit_off + self.linkedit_capacity;
        let signature_size = self.signature.size(signature_off);
        let file_len = signature_off + signature_size;
        let linkedit_filesize = file_len - linkedit_off;

        let uuid = *self.uuid.get_or_insert_with(|| initial_uuid(&self.file));
        let encoded = self.linkedit.as_ref().expect("encoded above");
        let commands = Commands {
            segments: self.segment_headers(linkedit_off, linkedit_filesize, &encoded.aligns),
            rebase: EncodedLinkedit::blob(linkedit_off, encoded.rebase),
            bind: EncodedLinkedit::blob(linkedit_off, encoded.bind),
            export: EncodedLinkedit::blob(linkedit_off, encoded.export),
            symtab: EncodedLinkedit::blob(linkedit_off, encoded.symtab),
            nsyms: encoded.nsyms,
            strtab: EncodedLinkedit::blob(linkedit_off, encoded.strtab),
            dysymtab: encoded.dysymtab,
            uuid,
            entryoff: entry - IMAGE_BASE,
            function_starts: EncodedLinkedit::blob(linkedit_off, encoded.function_starts),
            code_signature: Blob { off: signature_off as u32, size: signature_size as u32 },
        };
        let header = load_commands::write(&commands);
        self.last_segments = commands.segments.clone();
        if header.len() as u64 > HEADER_SPACE {
            return Err(LayoutError::HeaderFull { need: header.len(), room: HEADER_SPACE });
        }

        // Cut or extend the file to its new length, then write headers, LINKEDIT and its slack.
        if (self.file.len() as u64) > file_len {
            self.note_file(file_len as usize, self.file.len() - file_len as usize);
            self.file.truncate(file_len as usize);
        }
        self.file.resize(file_len as usize, 0);
        self.write_file(0, &header);
        // LINKEDIT and its slack, unless the file holds them where they go already.
        let placed = (linkedit_off, self.linkedit_capacity);
        if self.linkedit_written != Some(placed) {
            let encoded = self.linkedit.take().expect("encoded above");
            let slack = vec![0; (self.linkedit_capacity - encoded.bytes.len() as u64) as usize];
            self.write_file(linkedit_off, &encoded.bytes);
            self.write_file(linkedit_off + encoded.bytes.len() as u64, &slack);
            self.linkedit = Some(encoded);
            self.linkedit_written = Some(placed);
        }

        let text_filesize =
            self.extents[0].map(|e| e.capacity).unwrap_or(0).min(self.needed_filesize(Section::Text));
        let mut dirty = std::mem::take(&mut self.dirty);
        if !self.rendered_once {
            dirty.clear();
            dirty.push(0..file_len);
        }
        let pages_hashed = self.signature.update(&self.file, signature_off, 0, text_filesize, &dirty);
        let mut sig = vec![0; signature_size as usize];
        self.signature.write(&mut sig);
        let old = &self.file[signature_off as usize..];
        if let Some(first) = old.iter().zip(&sig).position(|(a, b)| a != b) {
            let last = old.iter().zip(&sig).rposition(|(a, b)| a != b).expect("some byte differs");
            dirty.push(signature_off + first as u64..signature_off + last as u64 + 1);
            self.note_file(signature_off as usize + first, last + 1 - first);
        }
        self.file[signature_off as usize..].copy_from_slice(&sig);
        self.rendered_once = true;
        Ok(Rendered { dirty: merge(dirty, file_len), pages_hashed })
    }

    /// Every LINKEDIT piece in ld64's order, and the alignment of each section, from the listed atoms, the
    /// rebases and the imports.
    fn encode_linkedit(&self) -> Result<EncodedLinkedit, LayoutError> {
        let mut bytes = Vec::new();
        let mut piece = |encoded: Vec<u8>| {
            let at = (bytes.len() as u64, encoded.len() as u32);
            bytes.extend_from_slice(&encoded);
            at
        };
        let rebase = piece(encode_rebase(&self.rebase_entries()?));
        let bind = piece(encode_bind(&self.bind_entries()?));
        // One walk over the listed atoms, in address order, gathers everything else.
        let mut locals = Vec::new();
        let mut externals =
            vec![SymbolRef::external("__mh_execute_header", Section::Text.n_sect(), IMAGE_BASE.0)];
        let mut starts = Vec::new();
        let mut aligns = [1u64; 6];
        for (_, atom) in self.atoms() {
            let align = &mut aligns[atom.section.index()];
            *align = (*align).max(atom.align);
            if atom.section == Section::Text {
                starts.push(atom.addr.0);
            }
            if atom.external {
                externals.push(SymbolRef::external(&atom.name, atom.section.n_sect(), atom.addr.0));
            } else {
                locals.push(SymbolRef::local(&atom.name, atom.section.n_sect(), atom.addr.0));
            }
        }
        // Sorted once here; the trie and the symbol table find them sorted.
        externals.sort_by(|a, b| a.name.cmp(b.name));
        let export_entries: Vec<ExportEntry<'_>> = externals
            .iter()
            .map(|e| ExportEntry { name: e.name, address: e.n_value - IMAGE_BASE.0, flags: 0 })
            .collect();
        let export = piece(encode_export_trie(&export_entries));
        let function_starts = piece(encode_function_starts(IMAGE_BASE.0, &starts));
        let mut imported: Vec<(&str, u16)> =
            self.imports.values().map(|i| (i.symbol.as_str(), i.dylib_ordinal)).collect();
        imported.sort_unstable();
        imported.dedup();
        let undefined = imported
            .into_iter()
            .map(|(symbol, ordinal)| SymbolRef::undefined(symbol, ordinal as u8))
            .collect();
        let (nlists, strings, dysymtab) = encode_symbols(&locals, externals, undefined);
        let nsyms = (nlists.len() / 16) as u32;
        let symtab = piece(nlists);
        let strtab = piece(strings);
        Ok(EncodedLinkedit {
            bytes,
            rebase,
            bind,
            export,
            function_starts,
            symtab,
            strtab,
            nsyms,
            dysymtab,
            aligns,
        })
    }

    fn segment_headers(
        &self,
        linkedit_off: u64,
        linkedit_filesize: u64,
        aligns: &[u64; 6],
    ) -> Vec<SegmentHeader> {
        let mut segments = vec![SegmentHeader {
            segname: "__PAGEZERO",
            vmaddr: 0,
            vmsize: IMAGE_BASE.0,
            fileoff: 0,
            filesize: 0,
            maxprot: 0,
            initprot: 0,
            flags: 0,
            sections: vec![],
        }];
        for section in Section::ALL {
            let (segname, sectname) = section.names();
            let (start, end) = segment_range(&self.config, section);
            let alloc = &self.allocs[section.index()];
            let filesize = self.needed_filesize(section);
            let fileoff =
                if filesize == 0 { 0 } else { self.extents[section.index()].map_or(0, |e| e.off.0) };
            let section_size = alloc.used_end() - alloc.base();
            let section_offset = if section == Section::Bss || section_size == 0 {
                0
            } else {
                (fileoff + (alloc.base() - start)) as u32
            };
            let align = aligns[section.index()];
            segments.push(SegmentHeader {
                segname,
                vmaddr: start.0,
                vmsize: end - start,
                fileoff,
                filesize,
                maxprot: section.prot(),
                initprot: section.prot(),
                flags: section.segment_flags(),
                sections: vec![SectionHeader {
                    sectname,
                    segname,
                    addr: alloc.base().0,
                    size: section_size,
                    offset: section_offset,
                    align: align.trailing_zeros(),
                    flags: section.section_flags(),
                }],
            });
        }
        let linkedit_vmaddr = segment_range(&self.config, Section::Bss).1;
        segments.push(SegmentHeader {
            segname: "__LINKEDIT",
            vmaddr: linkedit_vmaddr.0,
            vmsize: page_align(linkedit_filesize),
            fileoff: linkedit_off,
            filesize: linkedit_filesize,
            maxprot: macho::VM_PROT_READ.0,
            initprot: macho::VM_PROT_READ.0,
            flags: 0,
            sections: vec![],
        });
        segments
    }

    fn rebase_entries(&self) -> Result<Vec<RebaseEntry>, LayoutError> {
        self.rebases
            .iter()
            .map(|&addr| {
                let section = self.section_of(addr).ok_or(LayoutError::Outside { addr })?;
                let (start, _) = segment_range(&self.config, section);
                Ok(RebaseEntry { segment_index: section.segment_index(), segment_offset: addr - start })
            })
            .collect()
    }

    fn bind_entries(&self) -> Result<Vec<BindEntry<'_>>, LayoutError> {
        self.imports
            .values()
            .map(|import| {
                let addr = import.cell;
                let section = self.section_of(addr).ok_or(LayoutError::Outside { addr })?;
                let (start, _) = segment_range(&self.config, section);
                Ok(BindEntry {
                    segment_index: section.segment_index(),
                    segment_offset: addr - start,
                    dylib_ordinal: import.dylib_ordinal,
                    symbol: &import.symbol,
                    addend: 0,
                    weak_import: false,
                })
            })
            .collect()
    }

    /// The map of the image as last rendered, one line a segment and a section and an atom, for people to read
    /// (`hcr layout`).
    pub fn layout_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<14} {:<10} {:>12} {:>10} {:>10} {:>10}  prot",
            "segment", "section", "vmaddr", "vmsize", "fileoff", "filesize"
        );
        for segment in &self.last_segments {
            let _ = writeln!(
                out,
                "{:<14} {:<10} {:>#12x} {:>#10x} {:>#10x} {:>#10x}  {}",
                segment.segname,
                "",
                segment.vmaddr,
                segment.vmsize,
                segment.fileoff,
                segment.filesize,
                prot_text(segment.initprot)
            );
            for section in &segment.sections {
                let _ = writeln!(
                    out,
                    "{:<14} {:<10} {:>#12x} {:>#10x} {:>#10x}",
                    "", section.sectname, section.addr, section.size, section.offset
                );
                let which = Section::ALL
                    .into_iter()
                    .find(|s| s.names().1 == section.sectname && s.names().0 == segment.segname);
                for (_, atom) in self.atoms().filter(|(_, a)| Some(a.section) == which) {
                    let _ = writeln!(
                        out,
                        "{:<14} {:<10} {:>#12x} {:>#10x} {:>10}  {}{}",
                        "",
                        "",
                        atom.addr.0,
                        atom.size,
                        format!("cap {:#x}", atom.capacity),
                        atom.name,
                        if atom.external { "" } else { " (local)" }
                    );
                }
            }
        }
        out
    }
}

/// Saves the imports by cell as the list of imports, and reads them back from one.
#[cfg(feature = "serde")]
mod imports_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::Import;
    use crate::addr::VmAddr;

    pub fn serialize<S: Serializer>(imports: &BTreeMap<VmAddr, Import>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(imports.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<VmAddr, Import>, D::Error> {
        let list = Vec::<Import>::deserialize(d)?;
        Ok(list.into_iter().map(|i| (i.cell, i)).collect())
    }
}

/// The VM range `[start, end)` of `section`'s segment. Segments follow each other in `Section::ALL` order from
/// the image base, each as large as its reserve.
fn segment_range(config: &LayoutConfig, section: Section) -> (VmAddr, VmAddr) {
    let mut start = IMAGE_BASE;
    for s in Section::ALL {
        let end = start + config.reserve(s);
        if s == section {
            return (start, end);
        }
        start = end;
    }
    unreachable!("every section is in Section::ALL")
}

/// File room for `needed` bytes with space to grow: a third more, in whole pages.
fn room(needed: u64) -> u64 {
    page_align(needed + needed / 3).max(PAGE_SIZE)
}

/// A UUID derived from the first render's contents (so two different programs differ), with the RFC 4122 bits
/// ld64 sets. It then stays fixed for the life of the image, so debuggers keep matching it.
fn initial_uuid(file: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(file);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x30;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

/// Sorted, merged ranges clipped to the file length.
fn merge(mut ranges: Vec<Range<u64>>, len: u64) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < len && r.start < r.end);
    for r in &mut ranges {
        r.end = r.end.min(len);
    }
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

fn prot_text(prot: u32) -> String {
    let bit = |b: u32, c: char| if prot & b != 0 { c } else { '-' };
    format!(
        "{}{}{}",
        bit(macho::VM_PROT_READ.0, 'r'),
        bit(macho::VM_PROT_WRITE.0, 'w'),
        bit(macho::VM_PROT_EXECUTE.0, 'x')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_each_other_and_stubs_are_in_branch_reach() {
        let config = LayoutConfig::default();
        let mut end = IMAGE_BASE;
        for section in Section::ALL {
            let (start, stop) = segment_range(&config, section);
            assert_eq!(start, end);
            assert_eq!(start.0 % PAGE_SIZE, 0);
            end = stop;
        }
        let (text, _) = segment_range(&config, Section::Text);
        let (_, stubs_end) = segment_range(&config, Section::Stubs);
        assert!(stubs_end - text <= 128 * 1024 * 1024, "BL reaches every stub from every function");
    }

    /// One change to an image, for the property below.
    #[derive(Debug, Clone)]
    enum Change {
        Add { text: bool, size: u64, external: bool },
        Write { which: usize, byte: u8 },
        Resize { which: usize, size: u64, may_stay: bool },
        MoveKeepingOld { which: usize },
        Retire { which: usize },
        Free { which: usize },
        Rebases { every: usize },
        Imports { every: usize },
        EditRebases { remove_every: usize, add_every: usize },
        EditImports { remove_every: usize, add_every: usize, symbol: u8 },
        Entry { which: usize },
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        prop_oneof![
            (any::<bool>(), 1u64..600, any::<bool>()).prop_map(|(text, size, external)| Change::Add {
                text,
                size,
                external
            }),
            (any::<usize>(), any::<u8>()).prop_map(|(which, byte)| Change::Write { which, byte }),
            (any::<usize>(), 1u64..900, any::<bool>()).prop_map(|(which, size, may_stay)| Change::Resize {
                which,
                size,
                may_stay
            }),
            any::<usize>().prop_map(|which| Change::MoveKeepingOld { which }),
            any::<usize>().prop_map(|which| Change::Retire { which }),
            any::<usize>().prop_map(|which| Change::Free { which }),
            (1usize..4).prop_map(|every| Change::Rebases { every }),
            (1usize..4).prop_map(|every| Change::Imports { every }),
            (1usize..4, 1usize..4)
                .prop_map(|(remove_every, add_every)| Change::EditRebases { remove_every, add_every }),
            (1usize..4, 1usize..4, 0u8..3).prop_map(|(remove_every, add_every, symbol)| {
                Change::EditImports { remove_every, add_every, symbol }
            }),
            any::<usize>().prop_map(|which| Change::Entry { which }),
        ]
    }

    /// The symbol table built entry by entry with owned names, as LINKEDIT's encoder once did: the reference
    /// the borrowed, single-walk encoding must match byte for byte.
    fn owned_symbol_table(image: &Image) -> crate::linkedit::SymbolTable {
        let mut table = crate::linkedit::SymbolTable::default();
        table.add_external("__mh_execute_header", Section::Text.n_sect(), IMAGE_BASE.0);
        for (_, atom) in image.atoms() {
            if atom.external {
                table.add_external(&atom.name, atom.section.n_sect(), atom.addr.0);
            } else {
                table.add_local(&atom.name, atom.section.n_sect(), atom.addr.0);
            }
        }
        let mut imported: Vec<(&str, u16)> =
            image.imports().map(|i| (i.symbol.as_str(), i.dylib_ordinal)).collect();
        imported.sort_unstable();
        imported.dedup();
        for (symbol, ordinal) in imported {
            table.add_undefined(symbol, ordinal as u8);
        }
        table
    }

    /// The data atoms (8-byte cells) the rebase and import lists pick from.
    fn cells(image: &Image) -> Vec<VmAddr> {
        image.atoms().filter(|(_, a)| a.section == Section::Data).map(|(_, a)| a.addr).collect()
    }

    /// Applies one change; `n` names new atoms.
    fn apply(
        image: &mut Image,
        listed: &mut Vec<AtomId>,
        n: usize,
        change: Change,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let pick = |which: usize, listed: &[AtomId]| listed[which % listed.len()];
        match change {
            Change::Add { text, size, external } => {
                let (section, size) = if text { (Section::Text, size) } else { (Section::Data, 8) };
                let id = image.add_atom(&format!("_a{n}"), section, size, 8, external).unwrap();
                image.write_atom(id, &vec![n as u8; size as usize]).unwrap();
                listed.push(id);
            }
            Change::Write { which, byte } => {
                let id = pick(which, listed);
                let size = image.atom(id).size as usize;
                image.write_atom(id, &vec![byte; size]).unwrap();
            }
            Change::Resize { which, size, may_stay } => {
                let id = pick(which, listed);
                if image.atom(id).section == Section::Text {
                    image.resize_atom(id, size, may_stay).unwrap();
                }
            }
            Change::MoveKeepingOld { which } => {
                let id = pick(which, listed);
                let size = image.atom(id).size;
                let (_, old) = image.move_atom_keeping_old(id, size).unwrap();
                image.free_atom(old).unwrap();
            }
            Change::Retire { which } | Change::Free { which } if listed.len() > 1 => {
                let id = listed.remove(1 + which % (listed.len() - 1));
                if matches!(change, Change::Retire { .. }) {
                    image.retire_atom(id).unwrap();
                } else {
                    image.free_atom(id).unwrap();
                }
            }
            Change::Retire { .. } | Change::Free { .. } => {}
            Change::Rebases { every } => {
                let rebases = cells(image).into_iter().step_by(every).collect();
                image.set_rebases(rebases);
            }
            Change::Imports { every } => {
                let imports = cells(image)
                    .into_iter()
                    .skip(1)
                    .step_by(every)
                    .map(|cell| Import { cell, symbol: format!("_f{}", cell.0 % 7), dylib_ordinal: 1 })
                    .collect();
                image.set_imports(imports);
            }
            Change::EditRebases { remove_every, add_every } => {
                let removed: Vec<VmAddr> = image.rebases().step_by(remove_every).collect();
                let added: Vec<VmAddr> = cells(image).into_iter().step_by(add_every).collect();
                let mut expected: BTreeSet<VmAddr> = image.rebases().collect();
                for r in &removed {
                    expected.remove(r);
                }
                expected.extend(added.iter().copied());
                image.change_rebases(&removed, &added);
                proptest::prop_assert_eq!(image.rebases().collect::<BTreeSet<_>>(), expected);
            }
            Change::EditImports { remove_every, add_every, symbol } => {
                let removed: Vec<VmAddr> = image.imports().map(|i| i.cell).step_by(remove_every).collect();
                let added: Vec<Import> = cells(image)
                    .into_iter()
                    .step_by(add_every)
                    .map(|cell| Import { cell, symbol: format!("_g{symbol}"), dylib_ordinal: 1 })
                    .collect();
                let mut expected: BTreeMap<VmAddr, Import> =
                    image.imports().map(|i| (i.cell, i.clone())).collect();
                for r in &removed {
                    expected.remove(r);
                }
                expected.extend(added.iter().map(|i| (i.cell, i.clone())));
                image.change_imports(&removed, added);
                let now: BTreeMap<VmAddr, Import> = image.imports().map(|i| (i.cell, i.clone())).collect();
                proptest::prop_assert_eq!(now, expected);
            }
            Change::Entry { which } => {
                let id = pick(which, listed);
                if image.atom(id).section == Section::Text {
                    image.set_entry(image.atom(id).addr);
                }
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever changes between renders, a render that reuses the LINKEDIT it encoded before gives the
        /// same file, byte for byte, as one that encodes everything again: every change that LINKEDIT
        /// depends on drops what was encoded.
        #[test]
        fn a_kept_linkedit_is_what_encoding_again_gives(changes in proptest::collection::vec(change(), 1..40)) {
            let mut image = Image::new("kept", None, LayoutConfig::default());
            let main = image.add_atom("_main", Section::Text, 8, 4, true).unwrap();
            image.write_atom(main, &[0xc0, 0x03, 0x5f, 0xd6, 0xc0, 0x03, 0x5f, 0xd6]).unwrap();
            image.set_entry(image.atom(main).addr);
            let mut listed = vec![main];
            image.render().unwrap();
            for (n, change) in changes.into_iter().enumerate() {
                apply(&mut image, &mut listed, n, change)?;
                let mut fresh = image.clone();
                fresh.linkedit = None;
                fresh.linkedit_written = None;
                let kept = image.render().unwrap();
                let (nlists, strings, ranges) = owned_symbol_table(&image).encode();
                let encoded = image.linkedit.as_ref().unwrap();
                let piece = |(off, size): (u64, u32)| &encoded.bytes[off as usize..off as usize + size as usize];
                proptest::prop_assert!(piece(encoded.symtab) == &nlists[..], "symbols after change {}", n);
                proptest::prop_assert!(piece(encoded.strtab) == &strings[..], "strings after change {}", n);
                proptest::prop_assert_eq!(encoded.dysymtab, ranges);
                let mut exports: Vec<(String, u64, u64)> = image
                    .atoms()
                    .filter(|(_, a)| a.external)
                    .map(|(_, a)| (a.name.clone(), 0, a.addr - IMAGE_BASE))
                    .collect();
                exports.push(("__mh_execute_header".into(), 0, 0));
                exports.sort();
                let trie = crate::linkedit::export_trie_for_tests(piece(encoded.export)).unwrap();
                proptest::prop_assert_eq!(trie, exports);
                let encoded = fresh.render().unwrap();
                proptest::prop_assert!(image.file() == fresh.file(), "after change {}", n);
                proptest::prop_assert_eq!(kept.dirty, encoded.dirty);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever changes and renders follow a checkpoint, a rollback puts back every part of the image as
        /// it was (atoms, allocation, file bytes, rebases, imports, signature, encoded LINKEDIT), and the image
        /// then renders and changes as one that never saw them.
        #[test]
        fn rollback_puts_back_the_image_of_the_checkpoint(
            before in proptest::collection::vec(change(), 0..20),
            after in proptest::collection::vec((change(), proptest::prelude::any::<bool>()), 1..20),
            next in change(),
        ) {
            let mut image = Image::new("undo", Some(crate::codesign::GET_TASK_ALLOW_ENTITLEMENTS), LayoutConfig::default());
            let main = image.add_atom("_main", Section::Text, 8, 4, true).unwrap();
            image.write_atom(main, &[0xc0, 0x03, 0x5f, 0xd6, 0xc0, 0x03, 0x5f, 0xd6]).unwrap();
            image.set_entry(image.atom(main).addr);
            let mut listed = vec![main];
            for (n, change) in before.into_iter().enumerate() {
                apply(&mut image, &mut listed, n, change)?;
            }
            image.render().unwrap();
            let saved = format!("{image:?}");
            let mut untouched = image.clone();
            image.checkpoint();
            let mut scratch = listed.clone();
            for (n, (change, render)) in after.into_iter().enumerate() {
                apply(&mut image, &mut scratch, 100 + n, change)?;
                if render {
                    image.render().unwrap();
                }
            }
            image.rollback();
            proptest::prop_assert_eq!(format!("{image:?}"), saved);
            let mut untouched_listed = listed.clone();
            apply(&mut image, &mut listed, 200, next.clone())?;
            apply(&mut untouched, &mut untouched_listed, 200, next)?;
            let (ours, theirs) = (image.render().unwrap(), untouched.render().unwrap());
            proptest::prop_assert!(image.file() == untouched.file());
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn merge_joins_touching_ranges() {
        assert_eq!(merge(vec![10..20, 0..5, 5..8, 19..30, 40..50], 45), vec![0..8, 10..30, 40..45]);
    }
}
