//! From parsed objects to the atoms the image should hold: each with a stable identity, an output class, and
//! relocations whose targets are named by identity rather than by object-local index.
//!
//! Identity is what lets an update tell "changed" from "new": a global atom is its symbol's name; a local one
//! is its object and name; a literal is its content (so equal strings in two objects are one atom); an
//! anonymous piece is its object, section and ordinal. An atom's signature hashes everything that decides its
//! linked bytes except addresses — its bytes, size, alignment and every relocation with its target's
//! identity — so "same signature" means "same bytes once relocated at the same place".

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::error::UnsupportedReloc;
use crate::input::{InputObject, RelocKind, RelocTarget, SectionKind, SymbolDef};
use crate::resolve::{Globals, Resolution};

/// An atom's identity across updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AtomKey {
    /// A global (external) symbol: one definition in the whole program, or an import.
    Global(String),
    /// A symbol private to one object (`static` functions and variables, compiler labels).
    Local { object: PathBuf, name: String },
    /// A C string (`class` 0) or a 4/8/16-byte literal, identified by its content.
    Literal { class: u8, bytes: Vec<u8> },
    /// Bytes before a section's first symbol.
    Anon { object: PathBuf, section: String, index: u32 },
}

impl AtomKey {
    /// The name shown in reports and written to the symbol table.
    pub fn display_name(&self) -> String {
        match self {
            AtomKey::Global(name) | AtomKey::Local { name, .. } => name.clone(),
            AtomKey::Literal { class: 0, bytes } => {
                let text = String::from_utf8_lossy(bytes.strip_suffix(&[0]).unwrap_or(bytes));
                let mut shown: String = text.escape_debug().take(32).collect();
                if text.escape_debug().nth(32).is_some() {
                    shown.push('…');
                }
                format!("\"{shown}\"")
            }
            AtomKey::Literal { class, bytes } => {
                let hex: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
                format!("literal{class}:0x{hex}")
            }
            AtomKey::Anon { object, section, index } => {
                format!("{}:{section}#{index}", object.file_name().unwrap_or_default().to_string_lossy())
            }
        }
    }
}

/// Where an atom goes and how an update treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AtomClass {
    /// A function body: padded, may move, reached through its stub and target cell.
    Code,
    /// Read-only data. `pointers` says whether it holds absolute addresses (then it must live in a writable
    /// segment, because dyld slides them at launch).
    Const { pointers: bool },
    /// A C string or fixed-size literal.
    Literal,
    /// Writable initialised data: keeps its storage and running value across updates.
    Data,
    /// Zero-initialised data: likewise.
    Bss,
}

impl AtomClass {
    /// Whether the atom is program state (kept across updates) rather than code or constants.
    pub fn is_state(self) -> bool {
        matches!(self, AtomClass::Data | AtomClass::Bss)
    }
}

/// What a relocation's value is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Target {
    /// The stub of a function (defined or imported): its canonical address.
    Stub(AtomKey),
    /// The GOT cell holding the address of a function (its stub) or of data; for an import, its bound cell.
    Got(AtomKey),
    /// A place inside an atom: its address plus the offset.
    Atom(AtomKey, u64),
    /// An imported symbol's real address, bound by dyld at the patched place (a pointer in data).
    Bind(String),
}

/// How a relocation writes its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Fixup {
    Branch26,
    Page21,
    PageOff12,
    GotPage21,
    GotPageOff12,
    /// 32-bit PC-relative offset to a GOT cell.
    PointerToGot,
    Abs64,
    Abs32,
    /// `target - minus`, 8 or 4 bytes.
    Delta {
        minus: Target,
        width: u8,
    },
}

/// One relocation of a prepared atom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Fix {
    pub offset: u64,
    pub fixup: Fixup,
    pub target: Target,
    pub addend: i64,
}

/// An atom ready to be placed and relocated.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Prepared {
    pub key: AtomKey,
    pub class: AtomClass,
    /// Exported (a global symbol).
    pub external: bool,
    pub size: u64,
    pub align: u64,
    /// Unrelocated bytes (empty for zero-fill).
    pub bytes: Vec<u8>,
    pub fixes: Vec<Fix>,
    /// A function entry (a code atom that starts with a symbol): gets a stub and a target cell.
    pub function: bool,
    /// Hash of everything that decides the linked bytes except addresses.
    pub sig: u64,
    /// The object it came from, for messages.
    pub object: PathBuf,
}

/// Why an object's atoms could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Unsupported(Box<UnsupportedReloc>),
    #[error("{path}: two objects have this path", path = path.display())]
    SamePath { path: PathBuf },
}

/// What a symbol a relocation names turned out to be.
enum SymRef {
    /// A function entry: defined code at the start of its atom, keyed by that atom.
    Func(AtomKey),
    Import(String),
    /// A place inside a non-function atom (or inside a function, past its entry).
    Place(AtomKey, u64),
}

/// Prepares the atoms of every object, in object order then atom order. Atoms that lost symbol resolution
/// (a weak definition overridden elsewhere) are left out, and equal literals appear once.
pub fn prepare(objects: &[InputObject], globals: &Globals) -> Result<Vec<Prepared>, PrepareError> {
    check_paths(objects)?;
    let mut out = Vec::new();
    let mut literals: HashSet<AtomKey> = HashSet::new();
    for o in 0..objects.len() {
        for prepared in prepare_object(objects, o, globals)? {
            if matches!(prepared.key, AtomKey::Literal { .. }) && !literals.insert(prepared.key.clone()) {
                continue;
            }
            out.push(prepared);
        }
    }
    Ok(out)
}

/// Checks that no two objects have the same path, which is part of their atoms' identities.
pub fn check_paths(objects: &[InputObject]) -> Result<(), PrepareError> {
    let mut seen_paths: HashSet<&Path> = HashSet::new();
    for object in objects {
        if !seen_paths.insert(&object.path) {
            return Err(PrepareError::SamePath { path: object.path.clone() });
        }
    }
    Ok(())
}

/// Prepares the atoms of object `o` alone, in atom order. Atoms that lost symbol resolution are left out;
/// equal literals are not merged (the caller keeps the first of each across all objects). The result depends
/// on the object itself and, for every external name the object mentions, on that name's resolution and on
/// where its definer puts it ([`export_refs`]): nothing else.
pub fn prepare_object(
    objects: &[InputObject],
    o: usize,
    globals: &Globals,
) -> Result<Vec<Prepared>, PrepareError> {
    let object = &objects[o];
    let mut out = Vec::new();
    let keys: Vec<AtomKey> = (0..object.atoms.len() as u32).map(|a| atom_key(object, a)).collect();
    for (a, atom) in object.atoms.iter().enumerate() {
        let section = &object.sections[atom.section as usize];
        let key = keys[a].clone();
        if let AtomKey::Global(name) = &key {
            let wins = match globals.id(name).map(|id| globals.resolution(id)) {
                Some(Resolution::Defined { object: winner, .. }) => winner as usize == o,
                _ => true,
            };
            if !wins {
                continue;
            }
        }
        let fixes = object
            .atom_relocs(a as u32)
            .iter()
            .map(|r| fix_for(objects, o, &keys, r.offset, r.kind, r.target, r.addend, globals))
            .collect::<Result<Vec<_>, _>>()?;
        let class = match section.kind {
            SectionKind::Code => AtomClass::Code,
            SectionKind::CString | SectionKind::Literal(_) => AtomClass::Literal,
            SectionKind::ConstData => AtomClass::Const {
                pointers: fixes.iter().any(|f| matches!(f.fixup, Fixup::Abs64 | Fixup::Abs32)),
            },
            SectionKind::Data => AtomClass::Data,
            SectionKind::ZeroFill => AtomClass::Bss,
            SectionKind::Dropped => continue,
        };
        let external = atom.symbols.first().is_some_and(|&s| object.symbols[s as usize].external);
        let function = class == AtomClass::Code && !atom.symbols.is_empty();
        let bytes = object.atom_bytes(a as u32).to_vec();
        let mut prepared = Prepared {
            key,
            class,
            external,
            size: atom.size,
            align: atom.align.max(if class == AtomClass::Code { 4 } else { 1 }),
            bytes,
            fixes,
            function,
            sig: 0,
            object: object.path.clone(),
        };
        prepared.sig = signature(&prepared);
        out.push(prepared);
    }
    // Tentative definitions this object won become zero-fill atoms.
    for symbol in &object.symbols {
        if let SymbolDef::Common { .. } = symbol.def
            && let Some(Resolution::Common { object: winner, size, align }) =
                globals.id(&symbol.name).map(|id| globals.resolution(id))
            && winner as usize == o
        {
            let mut prepared = Prepared {
                key: AtomKey::Global(symbol.name.clone()),
                class: AtomClass::Bss,
                external: true,
                size,
                align: align.max(1),
                bytes: Vec::new(),
                fixes: Vec::new(),
                function: false,
                sig: 0,
                object: object.path.clone(),
            };
            prepared.sig = signature(&prepared);
            out.push(prepared);
        }
    }
    Ok(out)
}

/// What an object's external symbol takes part in resolution as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceDef {
    Defined { weak: bool },
    Common { size: u64, align: u64 },
    Undefined,
}

/// Everything of `object` that global resolution reads: its external symbols, by index, with how each is
/// defined. Two objects with equal interfaces in the same place of the object list resolve every name alike.
pub fn interface(object: &InputObject) -> Vec<(u32, String, InterfaceDef)> {
    object
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, symbol)| symbol.external && !symbol.name.is_empty())
        .map(|(s, symbol)| {
            let def = match symbol.def {
                SymbolDef::Defined { .. } | SymbolDef::Absolute(_) => {
                    InterfaceDef::Defined { weak: symbol.weak_def }
                }
                SymbolDef::Common { size, align } => InterfaceDef::Common { size, align },
                SymbolDef::Undefined => InterfaceDef::Undefined,
            };
            (s as u32, symbol.name.clone(), def)
        })
        .collect()
}

/// Where a defined external symbol of an object is, as another object's relocation to it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportRef {
    /// A function entry, or a place inside an atom: the atom's identity, the offset, and whether it is a
    /// function entry.
    InAtom { key: AtomKey, offset: u64, function: bool },
    /// An absolute symbol.
    Absolute,
}

/// What each defined external symbol of `object` looks like to the objects that refer to it, by name: the
/// part of the object that other objects' prepared atoms depend on.
pub fn export_refs(object: &InputObject) -> Vec<(String, ExportRef)> {
    object
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, symbol)| {
            symbol.external
                && !symbol.name.is_empty()
                && matches!(symbol.def, SymbolDef::Defined { .. } | SymbolDef::Absolute(_))
        })
        .map(|(s, symbol)| {
            let place = match object.symbol_atom(s as u32) {
                Some((atom, offset)) => {
                    let (key, function) = atom_place(object, None, atom, offset);
                    ExportRef::InAtom { key, offset, function }
                }
                None => ExportRef::Absolute,
            };
            (symbol.name.clone(), place)
        })
        .collect()
}

fn signature(p: &Prepared) -> u64 {
    let mut h = DefaultHasher::new();
    p.class.hash(&mut h);
    p.size.hash(&mut h);
    p.align.hash(&mut h);
    p.bytes.hash(&mut h);
    p.fixes.hash(&mut h);
    p.external.hash(&mut h);
    h.finish()
}

/// The identity of atom `a` of `object`.
pub fn atom_key(object: &InputObject, a: u32) -> AtomKey {
    let atom = &object.atoms[a as usize];
    let section = &object.sections[atom.section as usize];
    match section.kind {
        SectionKind::CString => {
            return AtomKey::Literal { class: 0, bytes: object.atom_bytes(a).to_vec() };
        }
        SectionKind::Literal(size) => {
            return AtomKey::Literal { class: size, bytes: object.atom_bytes(a).to_vec() };
        }
        _ => {}
    }
    match atom.symbols.first() {
        Some(&s) => {
            let symbol = &object.symbols[s as usize];
            if symbol.external {
                AtomKey::Global(symbol.name.clone())
            } else {
                AtomKey::Local { object: object.path.clone(), name: symbol.name.clone() }
            }
        }
        None => {
            let index = object.atoms[..a as usize]
                .iter()
                .filter(|x| x.section == atom.section && x.symbols.is_empty())
                .count() as u32;
            AtomKey::Anon { object: object.path.clone(), section: section.full_name(), index }
        }
    }
}

#[expect(clippy::too_many_arguments, reason = "one relocation's fields, passed apart to avoid a temporary")]
fn fix_for(
    objects: &[InputObject],
    o: usize,
    keys: &[AtomKey],
    offset: u64,
    kind: RelocKind,
    target: RelocTarget,
    addend: i64,
    globals: &Globals,
) -> Result<Fix, PrepareError> {
    let object = &objects[o];
    let unsupported = |kind_name: &str, why: &str| {
        PrepareError::Unsupported(Box::new(UnsupportedReloc {
            path: object.path.clone(),
            section: String::new(),
            offset,
            kind: kind_name.to_string(),
            symbol: target_name(object, target),
            why: format!(": {why}"),
        }))
    };
    let place = |t: RelocTarget| -> SymRef { sym_ref(objects, o, keys, t, globals) };
    let (fixup, target) = match kind {
        RelocKind::Branch26 => match place(target) {
            SymRef::Func(k) => (Fixup::Branch26, Target::Stub(k)),
            SymRef::Import(n) => (Fixup::Branch26, Target::Stub(AtomKey::Global(n))),
            SymRef::Place(k, off) => (Fixup::Branch26, Target::Atom(k, off)),
        },
        RelocKind::Page21 | RelocKind::PageOff12 | RelocKind::Abs64 | RelocKind::Abs32 => {
            let fixup = match kind {
                RelocKind::Page21 => Fixup::Page21,
                RelocKind::PageOff12 => Fixup::PageOff12,
                RelocKind::Abs64 => Fixup::Abs64,
                _ => Fixup::Abs32,
            };
            match place(target) {
                SymRef::Func(k) => (fixup, Target::Stub(k)),
                SymRef::Import(n) if fixup == Fixup::Abs64 => (fixup, Target::Bind(n)),
                SymRef::Import(_) => {
                    return Err(unsupported(
                        &format!("{kind:?}"),
                        "an imported symbol is only reachable through a GOT cell or a bound pointer",
                    ));
                }
                SymRef::Place(k, off) => (fixup, Target::Atom(k, off)),
            }
        }
        RelocKind::GotLoadPage21 | RelocKind::GotLoadPageOff12 | RelocKind::PointerToGot => {
            let fixup = match kind {
                RelocKind::GotLoadPage21 => Fixup::GotPage21,
                RelocKind::GotLoadPageOff12 => Fixup::GotPageOff12,
                _ => Fixup::PointerToGot,
            };
            match place(target) {
                SymRef::Func(k) => (fixup, Target::Got(k)),
                SymRef::Import(n) => (fixup, Target::Got(AtomKey::Global(n))),
                SymRef::Place(k, 0) => (fixup, Target::Got(k)),
                SymRef::Place(..) => {
                    return Err(unsupported("GOT_LOAD", "a GOT cell for a place inside an atom"));
                }
            }
        }
        RelocKind::Delta { minus, width } => {
            let real = |r: SymRef| match r {
                SymRef::Func(k) => Ok(Target::Atom(k, 0)),
                SymRef::Place(k, off) => Ok(Target::Atom(k, off)),
                SymRef::Import(_) => {
                    Err(unsupported("SUBTRACTOR", "a difference involving an imported symbol"))
                }
            };
            let minus = real(place(minus))?;
            (Fixup::Delta { minus, width }, real(place(target))?)
        }
    };
    Ok(Fix { offset, fixup, target, addend })
}

fn target_name(object: &InputObject, target: RelocTarget) -> String {
    match target {
        RelocTarget::Symbol(s) => object.symbols[s as usize].name.clone(),
        RelocTarget::Atom { atom, offset } => format!("{}+{offset:#x}", object.atom_name(atom)),
    }
}

fn sym_ref(
    objects: &[InputObject],
    o: usize,
    keys: &[AtomKey],
    target: RelocTarget,
    globals: &Globals,
) -> SymRef {
    let object = &objects[o];
    match target {
        RelocTarget::Atom { atom, offset } => in_atom(object, Some(keys), atom, offset),
        RelocTarget::Symbol(s) => {
            let symbol = &object.symbols[s as usize];
            if !symbol.external
                && let Some((atom, offset)) = object.symbol_atom(s)
            {
                return in_atom(object, Some(keys), atom, offset);
            }
            match globals.id(&symbol.name).map(|id| globals.resolution(id)) {
                Some(Resolution::Defined { object: d, symbol: ds, .. }) => {
                    let definer = &objects[d as usize];
                    match definer.symbol_atom(ds) {
                        Some((atom, offset)) => {
                            let keys = (d as usize == o).then_some(keys);
                            in_atom(definer, keys, atom, offset)
                        }
                        // An absolute symbol: nothing hcr places; treat as a place in a global of that name.
                        None => SymRef::Place(AtomKey::Global(symbol.name.clone()), 0),
                    }
                }
                Some(Resolution::Common { .. }) => SymRef::Place(AtomKey::Global(symbol.name.clone()), 0),
                Some(Resolution::Import { .. }) | None => SymRef::Import(symbol.name.clone()),
            }
        }
    }
}

/// What a place in atom `atom` of `object` is to a relocation: a function entry or a place inside an atom.
/// `keys` are the object's atom identities when the caller has them.
fn in_atom(object: &InputObject, keys: Option<&[AtomKey]>, atom: u32, offset: u64) -> SymRef {
    match atom_place(object, keys, atom, offset) {
        (key, true) => SymRef::Func(key),
        (key, false) => SymRef::Place(key, offset),
    }
}

/// The identity of atom `atom` of `object`, and whether `offset` in it is a function entry (the start of a
/// code atom that has a symbol).
fn atom_place(object: &InputObject, keys: Option<&[AtomKey]>, atom: u32, offset: u64) -> (AtomKey, bool) {
    let key = match keys {
        Some(keys) => keys[atom as usize].clone(),
        None => atom_key(object, atom),
    };
    let a = &object.atoms[atom as usize];
    let code = object.sections[a.section as usize].kind == SectionKind::Code;
    (key, code && offset == 0 && !a.symbols.is_empty())
}
