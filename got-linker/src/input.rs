//! Reading clang's arm64 object files: sections, symbols, atoms and relocations, normalised once.
//!
//! clang always sets `MH_SUBSECTIONS_VIA_SYMBOLS`, so every symbol starts an atom, and an atom runs to the next
//! symbol in its section. Literal sections are split by literal instead (C strings at their NULs,
//! `__literal4/8/16` by size), because their identity is their content. Relocations are turned into one
//! [`Reloc`] type here and nowhere else: the `ADDEND` prefix folded into the relocation it precedes, the
//! implicit addend of `UNSIGNED` read from the data, `SUBTRACTOR` pairs joined, non-extern (section-ordinal)
//! targets resolved to an atom and an offset.
//!
//! Dropped on purpose: `__LD,__compact_unwind`, `__TEXT,__eh_frame` and debug sections. hcr emits no
//! `__unwind_info`, so a C++ exception could not unwind through hcr-linked code, and a debugger or crash
//! reporter unwinds by frame pointers only — which arm64 macOS C code always keeps. The driver compiles with
//! `-fno-asynchronous-unwind-tables` so clang does not spend time making them.

use std::path::{Path, PathBuf};

use object::read::macho::{MachHeader as _, Nlist as _, Section as _, Segment as _};
use object::{LittleEndian as LE, macho};
use sha2::{Digest as _, Sha256};

use crate::error::{InputError, UnsupportedReloc};

/// What a section holds, which decides how it is split and where its atoms go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Code,
    /// NUL-terminated strings, split at each NUL.
    CString,
    /// Fixed-size literals (4, 8 or 16 bytes), split by size.
    Literal(u8),
    /// Read-only data (`__TEXT,__const`, `__DATA,__const`).
    ConstData,
    /// Writable initialised data.
    Data,
    /// Zero-initialised data (`__bss`, `__common`).
    ZeroFill,
    /// Unwind and debug information, which hcr does not link (see the module docs).
    Dropped,
}

/// A section of the object.
#[derive(Debug, Clone)]
pub struct InputSection {
    pub segname: String,
    pub sectname: String,
    /// The section's address in the object's own address space.
    pub addr: u64,
    pub size: u64,
    /// Alignment in bytes.
    pub align: u64,
    pub kind: SectionKind,
    /// The bytes (empty for zero-fill).
    pub data: Vec<u8>,
}

impl InputSection {
    /// `__SEGMENT,__section`, for messages.
    pub fn full_name(&self) -> String {
        format!("{},{}", self.segname, self.sectname)
    }
}

/// Where a symbol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolDef {
    /// Defined at `offset` in section `section` (0-based).
    Defined {
        section: u32,
        offset: u64,
    },
    Undefined,
    /// A tentative definition (`int x;` with `-fcommon`): the linker allocates it.
    Common {
        size: u64,
        align: u64,
    },
    Absolute(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSymbol {
    pub name: String,
    pub def: SymbolDef,
    /// Visible to other objects (`N_EXT`), including private externs.
    pub external: bool,
    /// `__attribute__((weak))` definition: another object's strong definition wins.
    pub weak_def: bool,
}

/// An atom: a piece of a section that moves as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputAtom {
    pub section: u32,
    /// Offset of the atom in its section.
    pub offset: u64,
    pub size: u64,
    /// The alignment the atom needs: the section's, reduced to what its offset in the section guarantees.
    pub align: u64,
    /// The symbols that start the atom, the preferred name first (compiler temporaries like `ltmp0` last).
    pub symbols: Vec<u32>,
}

/// The relocation kinds hcr links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelocKind {
    /// `BL`/`B` to a function (through its stub).
    Branch26,
    /// `ADRP` of the target's page.
    Page21,
    /// The target's low 12 bits in an `ADD` or a scaled load/store.
    PageOff12,
    /// `ADRP` of the page of the target's GOT cell.
    GotLoadPage21,
    /// The low 12 bits of the target's GOT cell in an `LDR`.
    GotLoadPageOff12,
    /// A 32-bit PC-relative offset to the target's GOT cell (C++ exception tables).
    PointerToGot,
    /// An absolute 64-bit address (needs a rebase entry).
    Abs64,
    /// An absolute 32-bit address.
    Abs32,
    /// `target - minus + addend`, 64 or 32 bits (from a `SUBTRACTOR`/`UNSIGNED` pair).
    Delta { minus: RelocTarget, width: u8 },
}

/// What a relocation points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelocTarget {
    /// A symbol of this object (defined here or elsewhere).
    Symbol(u32),
    /// A place inside an atom of this object (from a non-extern relocation).
    Atom { atom: u32, offset: u64 },
}

/// One relocation, normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloc {
    pub atom: u32,
    /// Offset of the patched bytes inside the atom.
    pub offset: u64,
    pub kind: RelocKind,
    pub target: RelocTarget,
    pub addend: i64,
}

/// A parsed object file.
#[derive(Debug, Clone)]
pub struct InputObject {
    pub path: PathBuf,
    pub sections: Vec<InputSection>,
    pub symbols: Vec<InputSymbol>,
    pub atoms: Vec<InputAtom>,
    /// Sorted by atom, then offset.
    pub relocs: Vec<Reloc>,
    /// SHA-256 of the file's bytes: an update skips an object whose digest it has already linked.
    pub digest: [u8; 32],
}

impl InputObject {
    /// The bytes of an atom (empty for zero-fill).
    pub fn atom_bytes(&self, atom: u32) -> &[u8] {
        let a = &self.atoms[atom as usize];
        let section = &self.sections[a.section as usize];
        if section.kind == SectionKind::ZeroFill {
            return &[];
        }
        &section.data[a.offset as usize..(a.offset + a.size) as usize]
    }

    /// The atom's name: its first symbol's, or a description of an anonymous piece.
    pub fn atom_name(&self, atom: u32) -> String {
        let a = &self.atoms[atom as usize];
        match a.symbols.first() {
            Some(&s) => self.symbols[s as usize].name.clone(),
            None => format!("{}+{:#x}", self.sections[a.section as usize].full_name(), a.offset),
        }
    }

    /// The atom and offset where a defined symbol is.
    pub fn symbol_atom(&self, symbol: u32) -> Option<(u32, u64)> {
        let SymbolDef::Defined { section, offset } = self.symbols[symbol as usize].def else { return None };
        self.atom_at(section, offset).map(|atom| (atom, offset - self.atoms[atom as usize].offset))
    }

    /// The relocations of one atom.
    pub fn atom_relocs(&self, atom: u32) -> &[Reloc] {
        let start = self.relocs.partition_point(|r| r.atom < atom);
        let end = self.relocs.partition_point(|r| r.atom <= atom);
        &self.relocs[start..end]
    }

    /// The atom of `section` that holds `offset` (an offset equal to a section's size belongs to its last atom,
    /// as a one-past-the-end pointer would).
    fn atom_at(&self, section: u32, offset: u64) -> Option<u32> {
        let first = self.atoms.partition_point(|a| a.section < section);
        let end = self.atoms.partition_point(|a| a.section <= section);
        let atoms = &self.atoms[first..end];
        let i = atoms.partition_point(|a| a.offset <= offset).checked_sub(1)?;
        let a = &atoms[i];
        (offset <= a.offset + a.size).then_some((first + i) as u32)
    }
}

/// Parses an arm64 `MH_OBJECT`. Never panics on bad input: every problem is an [`InputError`] naming the file.
pub fn parse_object(path: &Path, data: &[u8]) -> Result<InputObject, InputError> {
    let malformed = |reason: String| InputError::Malformed { path: path.to_path_buf(), reason };
    let header = macho::MachHeader64::<LE>::parse(data, 0).map_err(|e| malformed(e.to_string()))?;
    let endian = header.endian().map_err(|e| malformed(e.to_string()))?;
    if header.cputype(endian) != macho::CPU_TYPE_ARM64 {
        let arch = match header.cputype(endian) {
            macho::CPU_TYPE_X86_64 => "x86_64".to_string(),
            other => format!("CPU type {:#x}", other.0),
        };
        return Err(InputError::WrongArch { path: path.to_path_buf(), arch });
    }
    if header.filetype(endian) != macho::MH_OBJECT {
        let kind = format!("filetype {}", header.filetype(endian).0);
        return Err(InputError::NotObject { path: path.to_path_buf(), kind });
    }

    let mut sections = Vec::new();
    let mut raw_sections = Vec::new();
    let mut symbols = Vec::new();
    let mut commands = header.load_commands(endian, data, 0).map_err(|e| malformed(e.to_string()))?;
    while let Some(command) = commands.next().map_err(|e| malformed(e.to_string()))? {
        if let Some((segment, section_data)) = command.segment_64().map_err(|e| malformed(e.to_string()))? {
            for section in segment.sections(endian, section_data).map_err(|e| malformed(e.to_string()))? {
                sections.push(read_section(path, section, data)?);
                raw_sections.push(*section);
            }
        } else if let Some(symtab) = command.symtab().map_err(|e| malformed(e.to_string()))? {
            let table = symtab
                .symbols::<macho::MachHeader64<LE>, _>(endian, data)
                .map_err(|e| malformed(e.to_string()))?;
            for (index, nlist) in table.iter().enumerate() {
                if nlist.is_stab() {
                    // Debug-map entries carry no linking information; keep the index numbering intact.
                    symbols.push(InputSymbol {
                        name: String::new(),
                        def: SymbolDef::Absolute(0),
                        external: false,
                        weak_def: false,
                    });
                    continue;
                }
                symbols.push(read_symbol(path, index, nlist, table.strings(), &sections)?);
            }
        }
    }

    let atoms = split_atoms(&sections, &symbols);
    let digest = Sha256::digest(data).into();
    let mut object =
        InputObject { path: path.to_path_buf(), sections, symbols, atoms, relocs: Vec::new(), digest };
    for (index, raw) in raw_sections.iter().enumerate() {
        if object.sections[index].kind == SectionKind::Dropped {
            continue;
        }
        let relocs = raw
            .relocations(endian, data)
            .map_err(|e| malformed(format!("{}: {e}", object.sections[index].full_name())))?;
        read_relocs(&mut object, index as u32, relocs)?;
    }
    object.relocs.sort_by_key(|r| (r.atom, r.offset));
    Ok(object)
}

fn name16(bytes: &[u8; 16]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(16);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn read_section(
    path: &Path,
    section: &macho::Section64<LE>,
    data: &[u8],
) -> Result<InputSection, InputError> {
    let segname = name16(&section.segname);
    let sectname = name16(&section.sectname);
    let flags = section.flags(LE);
    let typ = flags.typ();
    let full = format!("{segname},{sectname}");
    let unsupported = |reason: &str| InputError::Unsupported {
        path: path.to_path_buf(),
        section: full.clone(),
        reason: reason.to_string(),
    };
    let kind = if flags.0 & macho::S_ATTR_DEBUG.0 != 0
        || (segname == "__LD" && sectname == "__compact_unwind")
        || sectname == "__eh_frame"
    {
        SectionKind::Dropped
    } else if matches!(
        typ,
        macho::S_THREAD_LOCAL_REGULAR
            | macho::S_THREAD_LOCAL_ZEROFILL
            | macho::S_THREAD_LOCAL_VARIABLES
            | macho::S_THREAD_LOCAL_VARIABLE_POINTERS
            | macho::S_THREAD_LOCAL_INIT_FUNCTION_POINTERS
    ) {
        return Err(unsupported("thread-local variables (_Thread_local) are not supported yet"));
    } else if matches!(
        typ,
        macho::S_MOD_INIT_FUNC_POINTERS | macho::S_MOD_TERM_FUNC_POINTERS | macho::S_INIT_FUNC_OFFSETS
    ) {
        return Err(unsupported(
            "constructors and destructors (__attribute__((constructor))) are not supported yet",
        ));
    } else if typ == macho::S_ZEROFILL || typ == macho::S_GB_ZEROFILL {
        SectionKind::ZeroFill
    } else if typ == macho::S_CSTRING_LITERALS {
        SectionKind::CString
    } else if typ == macho::S_4BYTE_LITERALS {
        SectionKind::Literal(4)
    } else if typ == macho::S_8BYTE_LITERALS {
        SectionKind::Literal(8)
    } else if typ == macho::S_16BYTE_LITERALS {
        SectionKind::Literal(16)
    } else if flags.0 & macho::S_ATTR_PURE_INSTRUCTIONS.0 != 0
        || flags.0 & macho::S_ATTR_SOME_INSTRUCTIONS.0 != 0
    {
        SectionKind::Code
    } else if typ == macho::S_REGULAR && (segname == "__TEXT" || sectname == "__const") {
        SectionKind::ConstData
    } else if typ == macho::S_REGULAR {
        SectionKind::Data
    } else {
        return Err(unsupported(&format!("section type {:#x} is not supported", typ.0)));
    };
    let size = section.size(LE);
    let align_log2 = section.align(LE);
    if align_log2 > 15 {
        return Err(unsupported(&format!("alignment 2^{align_log2} is larger than a page")));
    }
    let bytes = if kind == SectionKind::ZeroFill || kind == SectionKind::Dropped {
        Vec::new()
    } else {
        let start = u64::from(section.offset(LE));
        let end = start.checked_add(size).filter(|&e| e <= data.len() as u64).ok_or_else(|| {
            InputError::Malformed {
                path: path.to_path_buf(),
                reason: format!(
                    "section {full} ({size} bytes at {start:#x}) runs past the end of the file ({} bytes)",
                    data.len()
                ),
            }
        })?;
        data[start as usize..end as usize].to_vec()
    };
    Ok(InputSection {
        segname,
        sectname,
        addr: section.addr(LE),
        size,
        align: 1 << align_log2,
        kind,
        data: bytes,
    })
}

fn read_symbol(
    path: &Path,
    index: usize,
    nlist: &macho::Nlist64<LE>,
    strings: object::StringTable<'_>,
    sections: &[InputSection],
) -> Result<InputSymbol, InputError> {
    let bad = |reason: String| InputError::BadSymbol { path: path.to_path_buf(), index, reason };
    let name = nlist
        .name(LE, strings)
        .map_err(|_| bad(format!("its name index {} is outside the string table", nlist.n_strx(LE))))?;
    let name = String::from_utf8_lossy(name).into_owned();
    let flags = nlist.n_type();
    let external = flags.is_ext() || flags.is_pext();
    let weak_def = nlist.n_desc(LE).0 & 0x0080 != 0; // N_WEAK_DEF
    let value = nlist.n_value(LE);
    let def = match flags.typ() {
        macho::N_UNDF if external && value != 0 => {
            // A common symbol: n_value is its size, the alignment is in n_desc's GET_COMM_ALIGN bits.
            let align_log2 = (nlist.n_desc(LE).0 >> 8) & 0x0f;
            SymbolDef::Common { size: value, align: 1 << align_log2 }
        }
        macho::N_UNDF => SymbolDef::Undefined,
        macho::N_ABS => SymbolDef::Absolute(value),
        macho::N_SECT => {
            let n_sect = usize::from(nlist.n_sect());
            let section = n_sect.checked_sub(1).and_then(|i| sections.get(i).map(|s| (i, s)));
            let (i, section) =
                section.ok_or_else(|| bad(format!("{name} is in section {n_sect}, which does not exist")))?;
            let offset = value.checked_sub(section.addr).filter(|&o| o <= section.size);
            let offset = offset.ok_or_else(|| {
                bad(format!("{name} at {value:#x} is outside its section {}", section.full_name()))
            })?;
            SymbolDef::Defined { section: i as u32, offset }
        }
        other => {
            return Err(bad(format!("{name} has unsupported type {:#x} (indirect or prebound)", other.0)));
        }
    };
    Ok(InputSymbol { name, def, external, weak_def })
}

/// Splits every kept section into atoms: literal sections by literal, the rest at each symbol.
fn split_atoms(sections: &[InputSection], symbols: &[InputSymbol]) -> Vec<InputAtom> {
    let mut atoms = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        if section.kind == SectionKind::Dropped {
            continue;
        }
        let index = index as u32;
        // Symbols of this section by offset; compiler temporaries (`ltmpN`, `lCPI…`) sort after real names.
        let mut here: Vec<(u64, bool, u32)> = symbols
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.def {
                SymbolDef::Defined { section, offset } if section == index => {
                    Some((offset, is_temporary(&s.name), i as u32))
                }
                _ => None,
            })
            .collect();
        here.sort();
        let starts: Vec<u64> = match section.kind {
            SectionKind::CString => {
                let mut starts = vec![0];
                for (i, &b) in section.data.iter().enumerate() {
                    if b == 0 && (i as u64 + 1) < section.size {
                        starts.push(i as u64 + 1);
                    }
                }
                starts
            }
            SectionKind::Literal(size) => (0..section.size).step_by(usize::from(size)).collect(),
            _ => {
                let mut starts: Vec<u64> =
                    here.iter().map(|&(o, _, _)| o).filter(|&o| o < section.size).collect();
                if starts.first() != Some(&0) && section.size > 0 {
                    // Bytes before the first symbol form an anonymous atom.
                    starts.insert(0, 0);
                }
                starts.dedup();
                starts
            }
        };
        for (n, &offset) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(section.size);
            let align =
                if offset == 0 { section.align } else { section.align.min(1 << offset.trailing_zeros()) };
            let symbols_here: Vec<u32> =
                here.iter().filter(|&&(o, _, _)| o == offset).map(|&(_, _, s)| s).collect();
            atoms.push(InputAtom {
                section: index,
                offset,
                size: end - offset,
                align,
                symbols: symbols_here,
            });
        }
    }
    atoms
}

/// Assembler and compiler temporaries that name places but not things a user wrote.
fn is_temporary(name: &str) -> bool {
    name.starts_with("ltmp")
        || name.starts_with("lCPI")
        || name.starts_with("lJTI")
        || name.starts_with("LBB")
}

fn read_relocs(
    object: &mut InputObject,
    section: u32,
    relocs: &[macho::Relocation<LE>],
) -> Result<(), InputError> {
    let sect = &object.sections[section as usize];
    let section_name = sect.full_name();
    let path = object.path.clone();
    let mut addend: Option<i64> = None;
    let mut minus: Option<RelocTarget> = None;
    if sect.kind == SectionKind::ZeroFill && !relocs.is_empty() {
        return Err(InputError::BadReloc {
            path,
            section: section_name,
            offset: 0,
            reason: "a zero-fill section has no bytes to relocate".into(),
        });
    }
    for raw in relocs {
        let info = raw.info(LE);
        let offset = u64::from(info.r_address);
        let bad = |reason: String| InputError::BadReloc {
            path: path.clone(),
            section: section_name.clone(),
            offset,
            reason,
        };
        let width: u64 = 1 << info.r_length;
        if info.r_address & 0x8000_0000 != 0 {
            return Err(bad("scattered relocations do not exist on arm64".into()));
        }
        if offset + width > sect.size {
            return Err(bad(format!(
                "it patches {width} bytes past the end of the {}-byte section",
                sect.size
            )));
        }
        let r_type = info.r_type;
        if r_type == macho::ARM64_RELOC_ADDEND {
            // The addend is a signed 24-bit value in r_symbolnum.
            addend = Some(i64::from(((info.r_symbolnum << 8) as i32) >> 8));
            continue;
        }
        let target = if info.r_extern {
            let index = info.r_symbolnum as usize;
            if index >= object.symbols.len() {
                return Err(bad(format!(
                    "symbol index {index} is past the symbol table ({} symbols)",
                    object.symbols.len()
                )));
            }
            RelocTarget::Symbol(index as u32)
        } else {
            // Section ordinal: the target is the address stored in the patched bytes.
            let ordinal = info.r_symbolnum as usize;
            let target_section = ordinal
                .checked_sub(1)
                .filter(|&i| i < object.sections.len())
                .ok_or_else(|| bad(format!("section ordinal {ordinal} does not exist")))?;
            let stored = read_implicit(&sect.data, offset, width);
            let target_sect = &object.sections[target_section];
            let inner =
                (stored as u64).checked_sub(target_sect.addr).filter(|&o| o <= target_sect.size).ok_or_else(
                    || bad(format!("its target {stored:#x} is outside section {}", target_sect.full_name())),
                )?;
            let atom = object
                .atom_at(target_section as u32, inner)
                .ok_or_else(|| bad(format!("no atom holds {}+{inner:#x}", target_sect.full_name())))?;
            RelocTarget::Atom { atom, offset: inner - object.atoms[atom as usize].offset }
        };
        let symbol_name = match target {
            RelocTarget::Symbol(s) => object.symbols[s as usize].name.clone(),
            RelocTarget::Atom { atom, .. } => object.atom_name(atom),
        };
        let unsupported = |why: &str| {
            InputError::UnsupportedReloc(Box::new(UnsupportedReloc {
                path: path.clone(),
                section: section_name.clone(),
                offset,
                kind: format!("{r_type:?}"),
                symbol: symbol_name.clone(),
                why: why.to_string(),
            }))
        };
        let (kind, value) = match r_type {
            macho::ARM64_RELOC_SUBTRACTOR => {
                minus = Some(target);
                continue;
            }
            macho::ARM64_RELOC_UNSIGNED => {
                let implicit = if info.r_extern { read_implicit(&sect.data, offset, width) } else { 0 };
                let kind = match (minus.take(), width) {
                    (Some(m), 8 | 4) => RelocKind::Delta { minus: m, width: width as u8 },
                    (None, 8) => RelocKind::Abs64,
                    (None, 4) => RelocKind::Abs32,
                    _ => return Err(unsupported(&format!(" ({width}-byte pointers)"))),
                };
                (kind, implicit)
            }
            macho::ARM64_RELOC_BRANCH26 => (RelocKind::Branch26, 0),
            macho::ARM64_RELOC_PAGE21 => (RelocKind::Page21, 0),
            macho::ARM64_RELOC_PAGEOFF12 => (RelocKind::PageOff12, 0),
            macho::ARM64_RELOC_GOT_LOAD_PAGE21 => (RelocKind::GotLoadPage21, 0),
            macho::ARM64_RELOC_GOT_LOAD_PAGEOFF12 => (RelocKind::GotLoadPageOff12, 0),
            macho::ARM64_RELOC_POINTER_TO_GOT => (RelocKind::PointerToGot, 0),
            macho::ARM64_RELOC_TLVP_LOAD_PAGE21 | macho::ARM64_RELOC_TLVP_LOAD_PAGEOFF12 => {
                return Err(unsupported(": thread-local variables (_Thread_local) are not supported yet"));
            }
            _ => return Err(unsupported("")),
        };
        if minus.is_some() {
            return Err(bad("a SUBTRACTOR must be followed by an UNSIGNED relocation".into()));
        }
        // Instruction fields and GOT offsets are 4 bytes, whatever r_length claims: the encoders patch words.
        let needs_word = !matches!(kind, RelocKind::Abs64 | RelocKind::Abs32 | RelocKind::Delta { .. });
        if needs_word && width != 4 {
            return Err(bad(format!("a {r_type:?} relocation patches 4 bytes, not {width}")));
        }
        let extra = addend.take().unwrap_or(0);
        let atom =
            object.atom_at(section, offset).ok_or_else(|| bad("no atom holds the patched bytes".into()))?;
        let atom_offset = offset - object.atoms[atom as usize].offset;
        // The patched bytes must lie inside one atom: atoms move independently.
        if atom_offset + width > object.atoms[atom as usize].size {
            return Err(bad(format!(
                "its {width} bytes cross the end of {} (at +{atom_offset:#x} of {} bytes)",
                object.atom_name(atom),
                object.atoms[atom as usize].size
            )));
        }
        object.relocs.push(Reloc { atom, offset: atom_offset, kind, target, addend: value + extra });
    }
    Ok(())
}

/// The little-endian value stored at `offset` (the implicit addend of an `UNSIGNED` relocation).
fn read_implicit(data: &[u8], offset: u64, width: u64) -> i64 {
    let bytes = &data[offset as usize..(offset + width) as usize];
    match width {
        8 => i64::from_le_bytes(bytes.try_into().expect("8 bytes")),
        4 => i64::from(i32::from_le_bytes(bytes.try_into().expect("4 bytes"))),
        _ => 0,
    }
}

/// The object's atoms and their relocations as a table, for people to read (snapshots, `hcr layout`).
pub fn describe(object: &InputObject) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (index, atom) in object.atoms.iter().enumerate() {
        let section = &object.sections[atom.section as usize];
        let names: Vec<&str> =
            atom.symbols.iter().map(|&s| object.symbols[s as usize].name.as_str()).collect();
        let name = if names.is_empty() { object.atom_name(index as u32) } else { names.join(" = ") };
        let _ = writeln!(
            out,
            "{:<18} +{:<#6x} size {:<5} align {:<3} {}",
            section.full_name(),
            atom.offset,
            atom.size,
            atom.align,
            name
        );
        for reloc in object.atom_relocs(index as u32) {
            let target = match reloc.target {
                RelocTarget::Symbol(s) => object.symbols[s as usize].name.clone(),
                RelocTarget::Atom { atom, offset } => format!("{}+{offset:#x}", object.atom_name(atom)),
            };
            let kind = match reloc.kind {
                RelocKind::Delta { minus, width } => {
                    let minus = match minus {
                        RelocTarget::Symbol(s) => object.symbols[s as usize].name.clone(),
                        RelocTarget::Atom { atom, offset } => {
                            format!("{}+{offset:#x}", object.atom_name(atom))
                        }
                    };
                    format!("Delta{} - {minus}", width * 8)
                }
                other => format!("{other:?}"),
            };
            let addend = if reloc.addend == 0 { String::new() } else { format!(" {:+}", reloc.addend) };
            let _ = writeln!(out, "    {:<#6x} {kind:<16} {target}{addend}", reloc.offset);
        }
    }
    out
}
