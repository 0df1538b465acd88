//! Reading a rendered image back: its segments and the places of its symbols, for the layout view (`hcr layout`)
//! and its before/after diff. Works on any arm64 executable with a symbol table, whoever linked it.

use object::LittleEndian as LE;
use object::macho;
use object::read::macho::{MachHeader as _, Nlist as _, Section as _, Segment as _};

/// A segment as the load commands describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSegment {
    pub name: String,
    pub vmaddr: u64,
    pub vmsize: u64,
    pub fileoff: u64,
    pub filesize: u64,
    /// `r-x`-style initial protection.
    pub prot: String,
}

/// A symbol, with the extent it covers up to the next symbol of its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSymbol {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    /// `__SEGMENT,__section`.
    pub section: String,
    pub external: bool,
    /// The file offset of its bytes, if it has any in the file (zero-fill has none).
    pub fileoff: Option<u64>,
}

/// An image's map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Map {
    pub segments: Vec<MapSegment>,
    /// Sorted by address, then name.
    pub symbols: Vec<MapSymbol>,
}

impl Map {
    /// The bytes of a symbol in `file` (empty for zero-fill).
    pub fn bytes<'a>(&self, file: &'a [u8], symbol: &MapSymbol) -> &'a [u8] {
        symbol
            .fileoff
            .and_then(|off| file.get(off as usize..(off + symbol.size) as usize))
            .unwrap_or_default()
    }
}

/// Why a file could not be read as an arm64 executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a readable 64-bit Mach-O executable: {0}")]
pub struct ReadError(String);

fn prot_string(prot: u32) -> String {
    let bit = |mask: u32, c: char| if prot & mask != 0 { c } else { '-' };
    [bit(macho::VM_PROT_READ.0, 'r'), bit(macho::VM_PROT_WRITE.0, 'w'), bit(macho::VM_PROT_EXECUTE.0, 'x')]
        .into_iter()
        .collect()
}

fn name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Reads the segments and symbols of `file`.
pub fn read_map(file: &[u8]) -> Result<Map, ReadError> {
    let err = |e: object::Error| ReadError(e.to_string());
    let header = macho::MachHeader64::<LE>::parse(file, 0).map_err(err)?;
    let mut commands = header.load_commands(LE, file, 0).map_err(err)?;
    let mut map = Map::default();
    // (section name, addr, size, fileoff or none for zero-fill), in load-command order: n_sect indexes it.
    let mut sections: Vec<(String, u64, u64, Option<u64>)> = Vec::new();
    let mut nlists = Vec::new();
    while let Some(command) = commands.next().map_err(err)? {
        if let Some((segment, data)) = command.segment_64().map_err(err)? {
            map.segments.push(MapSegment {
                name: name(&segment.segname),
                vmaddr: segment.vmaddr(LE),
                vmsize: segment.vmsize(LE),
                fileoff: segment.fileoff(LE),
                filesize: segment.filesize(LE),
                prot: prot_string(segment.initprot(LE).0),
            });
            for section in segment.sections(LE, data).map_err(err)? {
                let zerofill = section.flags(LE).0 & macho::SECTION_TYPE == u32::from(macho::S_ZEROFILL.0);
                sections.push((
                    format!("{},{}", name(&section.segname), name(&section.sectname)),
                    section.addr(LE),
                    section.size(LE),
                    (!zerofill).then(|| u64::from(section.offset(LE))),
                ));
            }
        } else if let Some(symtab) = command.symtab().map_err(err)? {
            let table = symtab.symbols::<macho::MachHeader64<LE>, _>(LE, file).map_err(err)?;
            for nlist in table.iter() {
                if nlist.is_stab() || nlist.n_sect() == 0 {
                    continue;
                }
                let symbol =
                    String::from_utf8_lossy(nlist.name(LE, table.strings()).map_err(err)?).into_owned();
                nlists.push((
                    symbol,
                    nlist.n_value(LE),
                    nlist.n_sect(),
                    nlist.n_type().0 & macho::N_EXT.0 != 0,
                ));
            }
        }
    }
    nlists.sort_by(|a, b| (a.2, a.1, &a.0).cmp(&(b.2, b.1, &b.0)));
    for (i, (symbol, addr, n_sect, external)) in nlists.iter().enumerate() {
        let Some((section, start, size, fileoff)) = sections.get(usize::from(*n_sect) - 1) else { continue };
        let next =
            nlists[i + 1..].iter().find(|n| n.2 == *n_sect && n.1 > *addr).map_or(start + size, |n| n.1);
        map.symbols.push(MapSymbol {
            name: symbol.clone(),
            addr: *addr,
            size: next.min(start + size).saturating_sub(*addr),
            section: section.clone(),
            external: *external,
            fileoff: fileoff.and_then(|off| Some(off + addr.checked_sub(*start)?)),
        });
    }
    map.symbols.sort_by(|a, b| (a.addr, &a.name).cmp(&(b.addr, &b.name)));
    Ok(map)
}
