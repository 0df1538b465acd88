//! The symbol table (`nlist_64` entries) and its string table, in the order `LC_DYSYMTAB` needs: local symbols,
//! then defined external symbols sorted by name, then undefined symbols sorted by name.

use object::macho;

// `nlist.h` values; object types them as flag newtypes, the table stores the raw bytes.
const N_SECT: u8 = macho::N_SECT.0;
const N_EXT: u8 = macho::N_EXT.0;
const N_UNDF: u8 = macho::N_UNDF.0;

/// The index ranges `LC_DYSYMTAB` records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SymtabRanges {
    pub ilocalsym: u32,
    pub nlocalsym: u32,
    pub iextdefsym: u32,
    pub nextdefsym: u32,
    pub iundefsym: u32,
    pub nundefsym: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    n_type: u8,
    n_sect: u8,
    n_desc: u16,
    n_value: u64,
}

impl Entry {
    fn as_ref(&self) -> SymbolRef<'_> {
        SymbolRef {
            name: &self.name,
            n_type: self.n_type,
            n_sect: self.n_sect,
            n_desc: self.n_desc,
            n_value: self.n_value,
        }
    }
}

/// One symbol whose name is borrowed, for [`encode_symbols`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolRef<'a> {
    pub name: &'a str,
    pub n_type: u8,
    pub n_sect: u8,
    pub n_desc: u16,
    pub n_value: u64,
}

impl<'a> SymbolRef<'a> {
    /// A symbol defined in section `n_sect`, not exported.
    pub fn local(name: &'a str, n_sect: u8, value: u64) -> SymbolRef<'a> {
        SymbolRef { name, n_type: N_SECT, n_sect, n_desc: 0, n_value: value }
    }

    /// A symbol defined in section `n_sect` and exported.
    pub fn external(name: &'a str, n_sect: u8, value: u64) -> SymbolRef<'a> {
        SymbolRef { name, n_type: N_SECT | N_EXT, n_sect, n_desc: 0, n_value: value }
    }

    /// An imported symbol from the dylib with the given 1-based ordinal.
    pub fn undefined(name: &'a str, dylib_ordinal: u8) -> SymbolRef<'a> {
        SymbolRef {
            name,
            n_type: N_UNDF | N_EXT,
            n_sect: 0,
            n_desc: u16::from(dylib_ordinal) << 8,
            n_value: 0,
        }
    }
}

/// The `nlist_64` entries, the string table and the index ranges of `locals` (in the order given), then
/// `externals` and `undefined`, each sorted by name (stably: equal names keep their order). What
/// [`SymbolTable::encode`] gives, without owning the names.
pub fn encode_symbols(
    locals: &[SymbolRef<'_>],
    mut externals: Vec<SymbolRef<'_>>,
    mut undefined: Vec<SymbolRef<'_>>,
) -> (Vec<u8>, Vec<u8>, SymtabRanges) {
    externals.sort_by(|a, b| a.name.cmp(b.name));
    undefined.sort_by(|a, b| a.name.cmp(b.name));
    let count = locals.len() + externals.len() + undefined.len();
    let names: usize = locals.iter().chain(&externals).chain(&undefined).map(|e| e.name.len() + 1).sum();
    let mut strings = Vec::with_capacity(2 + names + 8);
    strings.extend_from_slice(b" \0");
    let mut nlists = Vec::with_capacity(count * NLIST_SIZE);
    for entry in locals.iter().chain(&externals).chain(&undefined) {
        let strx = strings.len() as u32;
        strings.extend_from_slice(entry.name.as_bytes());
        strings.push(0);
        nlists.extend_from_slice(&strx.to_le_bytes());
        nlists.push(entry.n_type);
        nlists.push(entry.n_sect);
        nlists.extend_from_slice(&entry.n_desc.to_le_bytes());
        nlists.extend_from_slice(&entry.n_value.to_le_bytes());
    }
    while !strings.len().is_multiple_of(8) {
        strings.push(0);
    }
    let (nl, ne, nu) = (locals.len() as u32, externals.len() as u32, undefined.len() as u32);
    let ranges = SymtabRanges {
        ilocalsym: 0,
        nlocalsym: nl,
        iextdefsym: nl,
        nextdefsym: ne,
        iundefsym: nl + ne,
        nundefsym: nu,
    };
    (nlists, strings, ranges)
}

/// A symbol table under construction.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    locals: Vec<Entry>,
    externals: Vec<Entry>,
    undefined: Vec<Entry>,
}

/// The size of one `nlist_64`.
pub const NLIST_SIZE: usize = 16;

impl SymbolTable {
    /// A symbol defined in section `n_sect` (1-based, over all sections in load-command order), not exported.
    pub fn add_local(&mut self, name: &str, n_sect: u8, value: u64) {
        self.locals.push(Entry { name: name.into(), n_type: N_SECT, n_sect, n_desc: 0, n_value: value });
    }

    /// A symbol defined in section `n_sect` and exported.
    pub fn add_external(&mut self, name: &str, n_sect: u8, value: u64) {
        let n_type = N_SECT | N_EXT;
        self.externals.push(Entry { name: name.into(), n_type, n_sect, n_desc: 0, n_value: value });
    }

    /// An imported symbol, from the dylib with the given 1-based ordinal (two-level namespace).
    pub fn add_undefined(&mut self, name: &str, dylib_ordinal: u8) {
        let n_type = N_UNDF | N_EXT;
        let n_desc = u16::from(dylib_ordinal) << 8;
        self.undefined.push(Entry { name: name.into(), n_type, n_sect: 0, n_desc, n_value: 0 });
    }

    /// The `nlist_64` entries and the string table (which starts with `" \0"` as ld64's does, and is padded to
    /// 8 bytes), and the index ranges.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>, SymtabRanges) {
        fn refs(entries: &[Entry]) -> Vec<SymbolRef<'_>> {
            entries.iter().map(Entry::as_ref).collect()
        }
        encode_symbols(&refs(&self.locals), refs(&self.externals), refs(&self.undefined))
    }

    /// The number of symbols.
    pub fn len(&self) -> usize {
        self.locals.len() + self.externals.len() + self.undefined.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_locals_externals_undefined() {
        let mut table = SymbolTable::default();
        table.add_undefined("_printf", 1);
        table.add_external("_main", 1, 0x1_0000_4000);
        table.add_local("_helper", 1, 0x1_0000_4010);
        table.add_external("__mh_execute_header", 1, 0x1_0000_0000);
        let (nlists, strings, ranges) = table.encode();
        assert_eq!(nlists.len(), 4 * NLIST_SIZE);
        assert_eq!(strings.len() % 8, 0);
        assert_eq!(
            ranges,
            SymtabRanges {
                ilocalsym: 0,
                nlocalsym: 1,
                iextdefsym: 1,
                nextdefsym: 2,
                iundefsym: 3,
                nundefsym: 1
            }
        );
        let name = |i: usize| {
            let strx = u32::from_le_bytes(nlists[i * 16..i * 16 + 4].try_into().unwrap()) as usize;
            let end = strings[strx..].iter().position(|&b| b == 0).unwrap();
            std::str::from_utf8(&strings[strx..strx + end]).unwrap().to_string()
        };
        assert_eq!(
            [name(0), name(1), name(2), name(3)],
            ["_helper", "__mh_execute_header", "_main", "_printf"]
        );
        // The import records its dylib ordinal in the high byte of n_desc.
        assert_eq!(&nlists[3 * 16 + 4..3 * 16 + 8], &[N_UNDF | N_EXT, 0, 0, 1]);
    }
}
