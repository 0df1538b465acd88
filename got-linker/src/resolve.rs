//! Global symbol resolution: which definition every external name refers to.
//!
//! A strong definition beats a weak one; two strong definitions are an error naming both objects; a tentative
//! (common) definition yields to any real one, and of several commons the largest wins, as in every Unix
//! linker. A name nobody defines is looked up in the dylib stubs (imports are bound by ordinal: 1 is the first
//! stub); a name still unknown is an error that lists every atom referring to it. Local symbols never take part:
//! their identity is their object.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::input::{InputObject, RelocTarget, SymbolDef};
use crate::tbd::DylibStub;

/// A global name's id, dense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SymbolId(pub u32);

/// What a global name resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Defined by symbol `symbol` of object `object`.
    Defined { object: u32, symbol: u32, weak: bool },
    /// Only tentative definitions: the linker allocates `size` zero bytes.
    Common { object: u32, size: u64, align: u64 },
    /// Imported from the dylib with this 1-based ordinal.
    Import { dylib_ordinal: u16 },
}

/// Every global name and its resolution.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    names: Vec<String>,
    by_name: HashMap<String, SymbolId>,
    resolutions: Vec<Option<Resolution>>,
}

impl Globals {
    pub fn id(&self, name: &str) -> Option<SymbolId> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, id: SymbolId) -> &str {
        &self.names[id.0 as usize]
    }

    pub fn resolution(&self, id: SymbolId) -> Resolution {
        self.resolutions[id.0 as usize].expect("resolve leaves no name unresolved")
    }

    /// Every name and its resolution, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (SymbolId, &str, Resolution)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (SymbolId(i as u32), n.as_str(), self.resolution(SymbolId(i as u32))))
    }

    fn intern(&mut self, name: &str) -> SymbolId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let id = SymbolId(self.names.len() as u32);
        self.names.push(name.to_string());
        self.by_name.insert(name.to_string(), id);
        self.resolutions.push(None);
        id
    }
}

/// Why resolution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("duplicate symbol {symbol}: defined in {first} and in {second}", first = first.display(), second = second.display())]
    Duplicate { symbol: String, first: PathBuf, second: PathBuf },
    #[error("{}", undefined_message(.0))]
    Undefined(Vec<Undefined>),
}

/// One undefined name and the atoms that refer to it: `(object, atom name)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined {
    pub symbol: String,
    pub referenced_from: Vec<(PathBuf, String)>,
}

fn undefined_message(list: &[Undefined]) -> String {
    let mut out = String::new();
    for (i, u) in list.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "undefined symbol {}", u.symbol);
        for (path, atom) in &u.referenced_from {
            let _ = write!(out, "\n  referenced by {atom} in {}", path.display());
        }
    }
    out
}

/// Resolves every external name of `objects` against each other and then against `dylibs`.
pub fn resolve(objects: &[InputObject], dylibs: &[DylibStub]) -> Result<Globals, ResolveError> {
    let mut globals = Globals::default();
    for (o, object) in objects.iter().enumerate() {
        for (s, symbol) in object.symbols.iter().enumerate() {
            if !symbol.external || symbol.name.is_empty() {
                continue;
            }
            let id = globals.intern(&symbol.name);
            let slot = &mut globals.resolutions[id.0 as usize];
            let new = match symbol.def {
                SymbolDef::Defined { .. } | SymbolDef::Absolute(_) => {
                    Resolution::Defined { object: o as u32, symbol: s as u32, weak: symbol.weak_def }
                }
                SymbolDef::Common { size, align } => Resolution::Common { object: o as u32, size, align },
                SymbolDef::Undefined => continue,
            };
            *slot = Some(match (*slot, new) {
                (None, new) => new,
                (
                    Some(Resolution::Defined { object: first, weak: false, .. }),
                    Resolution::Defined { weak: false, .. },
                ) => {
                    return Err(ResolveError::Duplicate {
                        symbol: symbol.name.clone(),
                        first: objects[first as usize].path.clone(),
                        second: object.path.clone(),
                    });
                }
                // A strong definition beats a weak one and a common; a weak one beats a common.
                (Some(old @ Resolution::Defined { weak: false, .. }), _) => old,
                (
                    Some(Resolution::Defined { weak: true, .. } | Resolution::Common { .. }),
                    new @ Resolution::Defined { weak: false, .. },
                ) => new,
                (Some(old @ Resolution::Defined { weak: true, .. }), _) => old,
                (Some(Resolution::Common { .. }), new @ Resolution::Defined { .. }) => new,
                (
                    Some(old @ Resolution::Common { size: a, .. }),
                    new @ Resolution::Common { size: b, .. },
                ) => {
                    if b > a {
                        new
                    } else {
                        old
                    }
                }
                (Some(old), _) => old,
            });
        }
    }
    // Names still unresolved come from the dylibs, or are undefined.
    let mut undefined: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for i in 0..globals.names.len() {
        if globals.resolutions[i].is_some() {
            continue;
        }
        let name = &globals.names[i];
        match dylibs.iter().position(|d| d.symbols.contains(name)) {
            Some(d) => globals.resolutions[i] = Some(Resolution::Import { dylib_ordinal: d as u16 + 1 }),
            None => {
                undefined.insert(name.clone(), Vec::new());
            }
        }
    }
    if undefined.is_empty() {
        return Ok(globals);
    }
    for object in objects {
        for reloc in &object.relocs {
            let RelocTarget::Symbol(s) = reloc.target else { continue };
            if let Some(refs) = undefined.get_mut(&object.symbols[s as usize].name) {
                let entry = (object.path.clone(), object.atom_name(reloc.atom));
                if !refs.contains(&entry) {
                    refs.push(entry);
                }
            }
        }
    }
    Err(ResolveError::Undefined(
        undefined
            .into_iter()
            .map(|(symbol, referenced_from)| Undefined { symbol, referenced_from })
            .collect(),
    ))
}
