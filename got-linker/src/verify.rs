//! The relocation verifier: reads the executable file back, decodes every relocated instruction and pointer,
//! and checks that it reaches the target the symbol map says it should — the stub, the cell, the atom or the
//! literal.
//!
//! It shares no code with relocation: the file is parsed with `object` (segments give the address → offset
//! map), instructions are read with the decoders, and expected addresses come from the linker's map. A wrong
//! encoder, a stale write, a segment placed at the wrong file offset or a cell that was never stored all show
//! up as a mismatch naming the atom, the offset and both addresses.

use object::LittleEndian as LE;
use object::macho;
use object::read::macho::{MachHeader as _, Segment as _};

use crate::arm64::{decode_adrp, decode_branch26, decode_pageoff12};
use crate::link::Linker;
use crate::prepare::{AtomClass, Fixup, Target};
use crate::stub::stub_cell;

/// What the verifier checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verified {
    pub relocations: usize,
    pub stubs: usize,
    pub cells: usize,
}

/// The file's segments: `(vmaddr, vmsize, fileoff, filesize)`.
struct Segments(Vec<(u64, u64, u64, u64)>);

impl Segments {
    fn parse(file: &[u8]) -> Result<Segments, String> {
        let header = macho::MachHeader64::<LE>::parse(file, 0).map_err(|e| format!("the file: {e}"))?;
        let mut commands = header.load_commands(LE, file, 0).map_err(|e| format!("load commands: {e}"))?;
        let mut out = Vec::new();
        while let Some(command) = commands.next().map_err(|e| format!("load commands: {e}"))? {
            if let Some((segment, _)) = command.segment_64().map_err(|e| format!("a segment: {e}"))? {
                out.push((segment.vmaddr(LE), segment.vmsize(LE), segment.fileoff(LE), segment.filesize(LE)));
            }
        }
        Ok(Segments(out))
    }

    /// `len` bytes at `addr`, if the file holds them (zero-fill past a segment's file size reads as zeros).
    fn read(&self, file: &[u8], addr: u64, len: usize) -> Option<Vec<u8>> {
        let &(vmaddr, _, fileoff, filesize) =
            self.0.iter().find(|&&(a, size, _, _)| addr >= a && addr + len as u64 <= a + size)?;
        let rel = addr - vmaddr;
        if rel + len as u64 <= filesize {
            let start = usize::try_from(fileoff + rel).ok()?;
            file.get(start..start + len).map(<[u8]>::to_vec)
        } else if rel >= filesize {
            Some(vec![0; len])
        } else {
            None
        }
    }
}

impl Linker {
    /// Checks every relocated place, stub and cell of the file against the symbol map. Returns every mismatch.
    pub fn verify(&self) -> Result<Verified, Vec<String>> {
        self.verify_file(self.file())
    }

    /// Checks `file` (say, the executable as it is on disk) against this linker's symbol map.
    pub fn verify_file(&self, file: &[u8]) -> Result<Verified, Vec<String>> {
        let segments = Segments::parse(file).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let mut done = Verified::default();
        let read = |addr: u64, len: usize| segments.read(file, addr, len);
        let word = |addr: u64| read(addr, 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
        let quad = |addr: u64| read(addr, 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));

        for linked in self.atoms_for_verify() {
            let (p, addr) = (&linked.0, linked.1);
            let name = p.key.display_name();
            if p.class == AtomClass::Bss {
                continue;
            }
            // Every byte outside the relocated fields is the object's own.
            if let Some(file_bytes) = read(addr, p.bytes.len()) {
                let mut mask = vec![false; p.bytes.len()];
                for fix in &p.fixes {
                    let width = match fix.fixup {
                        Fixup::Abs64 | Fixup::Delta { width: 8, .. } => 8,
                        _ => 4,
                    };
                    let start = fix.offset as usize;
                    let end = (start + width).min(mask.len());
                    mask[start..end].fill(true);
                }
                let stale = (0..p.bytes.len()).find(|&i| {
                    let word_masked = mask[i]
                        // An instruction relocation rewrites some bits of its word: compare whole unmasked words.
                        || mask[i / 4 * 4..(i / 4 * 4 + 4).min(mask.len())].iter().any(|&m| m);
                    !word_masked && file_bytes[i] != p.bytes[i]
                });
                if let Some(i) = stale {
                    errors.push(format!(
                        "{name}+{i:#x} ({:#x}): the file's byte differs from the object's",
                        addr + i as u64
                    ));
                }
            } else {
                errors.push(format!("{name} at {addr:#x}: its bytes are not in the file"));
            }
            for fix in &p.fixes {
                let place = addr + fix.offset;
                let at = format!("{name}+{:#x} ({place:#x})", fix.offset);
                let expected = match &fix.target {
                    Target::Bind(symbol) => {
                        if quad(place) != Some(0) {
                            errors.push(format!("{at}: a pointer bound to {symbol} is not zero in the file"));
                        }
                        done.relocations += 1;
                        continue;
                    }
                    t => match self.target_addr_for_verify(t) {
                        Some(a) => a.wrapping_add(fix.addend as u64),
                        None => {
                            errors.push(format!("{at}: target {t:?} is not in the symbol map"));
                            continue;
                        }
                    },
                };
                let mut check = |what: &str, got: Option<u64>, want: u64| {
                    if got != Some(want) {
                        errors.push(format!("{at}: {what} reaches {got:#x?}, the map says {want:#x}"));
                    }
                };
                match &fix.fixup {
                    Fixup::Branch26 => {
                        check("BL/B", word(place).map(|i| decode_branch26(i, place)), expected)
                    }
                    Fixup::Page21 | Fixup::GotPage21 => {
                        check("ADRP", word(place).map(|i| decode_adrp(i, place)), expected & !0xfff)
                    }
                    Fixup::PageOff12 | Fixup::GotPageOff12 => check(
                        "page offset",
                        word(place).and_then(|i| decode_pageoff12(i).ok()),
                        expected & 0xfff,
                    ),
                    Fixup::PointerToGot => check(
                        "POINTER_TO_GOT",
                        word(place).map(|w| place.wrapping_add(i64::from(w as i32) as u64)),
                        expected,
                    ),
                    Fixup::Abs64 => check("pointer", quad(place), expected),
                    Fixup::Abs32 => check("32-bit pointer", word(place).map(u64::from), expected),
                    Fixup::Delta { minus, width } => {
                        let Some(base) = self.target_addr_for_verify(minus) else {
                            errors.push(format!("{at}: a difference's base is not in the symbol map"));
                            continue;
                        };
                        let got = if *width == 8 {
                            quad(place)
                        } else {
                            word(place).map(|w| i64::from(w as i32) as u64)
                        };
                        check("difference", got.map(|d| d.wrapping_add(base)), expected);
                    }
                }
                done.relocations += 1;
            }
        }
        for (key, stub, cell) in self.indirections_for_verify() {
            let name = key.display_name();
            if let Some(stub) = stub {
                let code = read(stub, 12).unwrap_or_default();
                if stub_cell(stub, &code) != Some(cell) {
                    errors.push(format!("{name}$stub at {stub:#x} does not jump through its cell {cell:#x}"));
                }
                done.stubs += 1;
            }
        }
        for (cell, name, value) in self.cell_values_for_verify() {
            let got = quad(cell);
            let want = value.unwrap_or(0);
            if got != Some(want) {
                errors
                    .push(format!("{name} at {cell:#x} holds {got:#x?} in the file, the map says {want:#x}"));
            }
            done.cells += 1;
        }
        if errors.is_empty() { Ok(done) } else { Err(errors) }
    }
}
