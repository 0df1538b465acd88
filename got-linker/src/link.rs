//! The incremental link: one code path, `Linker::update`, and a full link is an update from the empty image.
//!
//! An update reads as its passes:
//!
//! 1. **resolve** global names across objects and the dylib stubs;
//! 2. **prepare** atoms with identities and address-free signatures ([`crate::prepare`]). Both reuse the
//!    previous update's work for objects whose digest is unchanged, when nothing they depend on changed
//!    (`reuse.rs`); later passes work on the atoms that are new or differ from the linked ones, and on those
//!    that point at something that moved;
//! 3. **retire** what is gone, and free retired code that no thread can reach any more;
//! 4. **place** new and changed atoms: code grows in place when its slot allows and no thread is in it, else
//!    moves; state (data, bss) keeps its storage unless its size or alignment changed; a changed constant gets
//!    new storage, so code still running the old version reads the old value;
//! 5. **indirect**: a stub and a target cell for every function, a GOT cell for every GOT-loaded symbol;
//! 6. **relocate** every new or changed atom, and every unchanged one that points at something that moved
//!    (a worklist: relinking a live function moves it, which may move more);
//! 7. **publish**: cells get their values; the image records rebases, binds and the entry point and renders;
//!    the writes are gathered in the contract's order.
//!
//! A failed update (undefined symbol, branch out of range, reserve exhausted) leaves the linker, and therefore
//! the file and the process, exactly as they were: the linker journals the previous value of every entry an
//! update changes and puts them back on failure, and keeps a copy of the image (which has no journal of its
//! own) to put back — unless a check before the first change shows that nothing can fail once the image
//! changes: every changed atom stays where it is, needs no new stub or cell, and relocates where it is.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use macho_layout::{AtomId, Image, Import, LayoutConfig, LayoutError, Placement, Section, VmAddr};

use crate::arm64::{EncodeError, encode_adrp, encode_branch26, encode_pageoff12};
use crate::input::InputObject;
use crate::patch::{MoveReason, Moved, NewImport, Patch, Summary, Write, WriteKind};
use crate::prepare::{AtomClass, AtomKey, Fix, Fixup, PrepareError, Prepared, Target};
use crate::resolve::{Globals, Resolution, ResolveError};
use crate::reuse::{PrepareCache, PrepareFailure};
use crate::stub::{STUB_SIZE, stub_code};
use crate::tbd::DylibStub;

/// Which code a suspended process may be executing or returning into, in link-time addresses. The driver
/// answers from a scan of the threads; code in a live range is never overwritten.
pub trait Liveness {
    fn is_live(&self, range: Range<u64>) -> bool;
}

/// No process is running (a build, or a launch still to come).
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingLive;

impl Liveness for NothingLive {
    fn is_live(&self, _: Range<u64>) -> bool {
        false
    }
}

/// Why an update failed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error("{atom} in {object}: {source}", object = object.display())]
    Relocate { atom: String, object: PathBuf, source: EncodeError },
    #[error("{atom} in {object}: {reason}", object = object.display())]
    BadTarget { atom: String, object: PathBuf, reason: String },
    #[error("laying out {what}: {source}")]
    Layout { what: String, source: LayoutError },
    #[error("undefined symbol _main: the program has no entry point")]
    NoMain,
}

fn layout(what: &str) -> impl FnOnce(LayoutError) -> LinkError + '_ {
    move |source| LinkError::Layout { what: what.to_string(), source }
}

/// An atom as it is in the image.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Linked {
    id: AtomId,
    addr: u64,
    prepared: Prepared,
    /// The bytes as last written (relocated); empty for zero-fill.
    bytes: Vec<u8>,
    /// Offsets of absolute pointers (rebased by dyld).
    pointers: Vec<u32>,
    /// Offsets of pointers bound to imports.
    binds: Vec<(u32, String)>,
}

/// A function's or import's indirection: the stub (its canonical address) and the target cell it jumps
/// through. Kept for the life of the image, so a function's address never changes, even across a removal and
/// a re-addition.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Indirect {
    stub: Option<u64>,
    cell: u64,
}

/// What a cell should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
enum CellValue {
    Addr(u64),
    Bind { symbol: String, dylib_ordinal: u16 },
}

/// The incremental linker: the image and everything needed to update it.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Linker {
    image: Image,
    dylibs: Vec<DylibStub>,
    atoms: HashMap<AtomKey, Linked>,
    indirect: HashMap<AtomKey, Indirect>,
    gots: HashMap<AtomKey, u64>,
    cells: HashMap<u64, (String, CellValue)>,
    /// The image atom of every cell, by address.
    cell_ids: HashMap<u64, AtomId>,
    /// Old code kept because a thread may return into it, freed when none can.
    retired_code: Vec<(AtomId, Range<u64>)>,
    updates: u64,
    /// The last update's resolution and prepared objects, reused for objects that did not change. Not saved:
    /// a restored linker prepares everything once.
    #[cfg_attr(feature = "serde", serde(skip))]
    cache: PrepareCache,
    /// What the update under way changed, to undo it if it fails. Empty between updates.
    #[cfg_attr(feature = "serde", serde(skip))]
    journal: Journal,
    /// A successful update not yet committed ([`Linker::update_pending`]): what undoing it restores.
    #[cfg_attr(feature = "serde", serde(skip))]
    pending: Option<Pending>,
    /// The cache the update under way replaced, moved into `pending` when it returns.
    #[cfg_attr(feature = "serde", serde(skip))]
    replaced_cache: Option<PrepareCache>,
}

/// What rolling back a pending update restores besides the journal and the image's checkpoint.
#[derive(Debug, Clone, Default)]
struct Pending {
    retired_code: Vec<(AtomId, Range<u64>)>,
    updates: u64,
    /// The cache the update replaced (`None` if it failed before replacing it).
    cache: Option<PrepareCache>,
}

/// The previous value of every map entry the update under way changed (`None`: there was none).
#[derive(Debug, Clone, Default)]
struct Journal {
    atoms: HashMap<AtomKey, Option<Linked>>,
    indirect: HashMap<AtomKey, Option<Indirect>>,
    gots: HashMap<AtomKey, Option<u64>>,
    cells: HashMap<u64, Option<(String, CellValue)>>,
    cell_ids: HashMap<u64, Option<AtomId>>,
}

/// Records `key`'s value in `map` unless the journal has it already (the first value is the one to restore).
fn remember<K: Hash + Eq + Clone, V: Clone>(
    journal: &mut HashMap<K, Option<V>>,
    map: &HashMap<K, V>,
    key: &K,
) {
    if !journal.contains_key(key) {
        journal.insert(key.clone(), map.get(key).cloned());
    }
}

/// Puts back the values the journal recorded.
fn restore<K: Hash + Eq, V>(map: &mut HashMap<K, V>, journal: HashMap<K, Option<V>>) {
    for (key, value) in journal {
        match value {
            Some(value) => map.insert(key, value),
            None => map.remove(&key),
        };
    }
}

/// The symbol map: where every atom, stub and cell is (for the verifier, the layout view and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolMap {
    /// Atom name → (address, size, class), for listed atoms.
    pub atoms: Vec<MappedAtom>,
    /// Function or import key name → (stub address, cell address).
    pub stubs: Vec<(String, Option<u64>, u64)>,
    /// GOT key name → cell address.
    pub gots: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedAtom {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub class: AtomClass,
}

impl Linker {
    /// An empty linker that will write an image named `ident`, signed with `entitlements`, resolving imports
    /// against `dylibs` (ordinal 1 is the first).
    pub fn new(
        ident: &str,
        entitlements: Option<&str>,
        config: LayoutConfig,
        dylibs: Vec<DylibStub>,
    ) -> Linker {
        Linker {
            image: Image::new(ident, entitlements, config),
            dylibs,
            atoms: HashMap::new(),
            indirect: HashMap::new(),
            gots: HashMap::new(),
            cells: HashMap::new(),
            cell_ids: HashMap::new(),
            retired_code: Vec::new(),
            updates: 0,
            cache: PrepareCache::default(),
            journal: Journal::default(),
            pending: None,
            replaced_cache: None,
        }
    }

    /// The image as last rendered.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The executable file as last rendered.
    pub fn file(&self) -> &[u8] {
        self.image.file()
    }

    /// Gives a linker restored from saved state the executable it last wrote (the state leaves the file out;
    /// see [`Image::restore_file`]).
    pub fn restore_file(&mut self, file: Vec<u8>) {
        self.image.restore_file(file);
    }

    /// How many updates succeeded (the first is the full link).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Links `objects` into the image, changing only what differs from the last update. `live` says which
    /// code a running process may be in. On error nothing changed.
    pub fn update(&mut self, objects: &[InputObject], live: &dyn Liveness) -> Result<Patch, LinkError> {
        let patch = self.update_pending(objects, live)?;
        self.commit_pending();
        Ok(patch)
    }

    /// [`Linker::update`], but the update can still be undone: the caller applies the patch where it must go (the
    /// file, a process) and then calls [`Linker::commit_pending`], or [`Linker::rollback_pending`] to return to
    /// the linker as it was before, if applying failed. A pending update not yet settled is committed first.
    pub fn update_pending(
        &mut self,
        objects: &[InputObject],
        live: &dyn Liveness,
    ) -> Result<Patch, LinkError> {
        self.commit_pending();
        let _span = tracing::info_span!("link.update", objects = objects.len()).entered();
        self.journal = Journal::default();
        // The image records what the update changes in it, and the retired code is a short list.
        self.image.checkpoint();
        let retired_code = self.retired_code.clone();
        let updates = self.updates;
        let result = self.update_in_place(objects, live);
        let pending = Pending { retired_code, updates, cache: self.replaced_cache.take() };
        match result {
            Ok(patch) => {
                self.pending = Some(pending);
                Ok(patch)
            }
            Err(e) => {
                self.undo(pending);
                Err(e)
            }
        }
    }

    /// Makes a pending update final (nothing to do if there is none).
    pub fn commit_pending(&mut self) {
        if self.pending.take().is_some() {
            self.image.commit();
            self.journal = Journal::default();
        }
    }

    /// Undoes a pending update: the linker, its image and its file are as they were before it.
    pub fn rollback_pending(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.undo(pending);
        }
    }

    fn undo(&mut self, pending: Pending) {
        let journal = std::mem::take(&mut self.journal);
        self.image.rollback();
        self.retired_code = pending.retired_code;
        self.updates = pending.updates;
        if let Some(cache) = pending.cache {
            self.cache = cache;
        }
        restore(&mut self.atoms, journal.atoms);
        restore(&mut self.indirect, journal.indirect);
        restore(&mut self.gots, journal.gots);
        restore(&mut self.cells, journal.cells);
        restore(&mut self.cell_ids, journal.cell_ids);
    }

    /// The linked atom with this key, its previous value journaled.
    fn atom_mut(&mut self, key: &AtomKey) -> &mut Linked {
        remember(&mut self.journal.atoms, &self.atoms, key);
        self.atoms.get_mut(key).expect("a linked atom")
    }

    /// Where everything is.
    pub fn symbol_map(&self) -> SymbolMap {
        let mut atoms: Vec<MappedAtom> = self
            .atoms
            .values()
            .map(|l| MappedAtom {
                name: l.prepared.key.display_name(),
                addr: l.addr,
                size: l.prepared.size,
                class: l.prepared.class,
            })
            .collect();
        atoms.sort_by(|a, b| (a.addr, &a.name).cmp(&(b.addr, &b.name)));
        let mut stubs: Vec<_> =
            self.indirect.iter().map(|(k, i)| (k.display_name(), i.stub, i.cell)).collect();
        stubs.sort();
        let mut gots: Vec<_> = self.gots.iter().map(|(k, &c)| (k.display_name(), c)).collect();
        gots.sort();
        SymbolMap { atoms, stubs, gots }
    }

    /// Every listed atom's address-free signature (its bytes and its relocations by target identity), by name:
    /// two images with equal signatures hold the same program, wherever its atoms are.
    pub fn signatures(&self) -> std::collections::BTreeMap<String, u64> {
        self.atoms.values().map(|l| (l.prepared.key.display_name(), l.prepared.sig)).collect()
    }

    /// The current bytes (relocated) and address of the atom with this display name, for tests and the
    /// verifier.
    pub fn atom_by_name(&self, name: &str) -> Option<(u64, &[u8])> {
        self.atoms.values().find(|l| l.prepared.key.display_name() == name).map(|l| (l.addr, &l.bytes[..]))
    }

    fn update_in_place(&mut self, objects: &[InputObject], live: &dyn Liveness) -> Result<Patch, LinkError> {
        let program = {
            let _span = tracing::info_span!("prepare").entered();
            self.cache.prepare(objects, &self.dylibs).map_err(|failure| match failure {
                PrepareFailure::Resolve(e) => LinkError::Resolve(e),
                PrepareFailure::Prepare(e) => LinkError::Prepare(e),
            })?
        };
        tracing::debug!(prepared = program.prepared_objects, "objects prepared again");
        let globals = &*program.globals;
        let desired = &program.desired;
        let main = AtomKey::Global("_main".into());
        if !desired.iter().any(|p| p.key == main && p.class == AtomClass::Code) {
            return Err(LinkError::NoMain);
        }
        let mut removed: Vec<AtomKey> = match &program.stale {
            Some(stale) => stale.iter().filter(|k| self.atoms.contains_key(*k)).cloned().collect(),
            None => {
                let index: HashSet<&AtomKey> = desired.iter().map(|p| &p.key).collect();
                self.atoms.keys().filter(|k| !index.contains(k)).cloned().collect()
            }
        };
        removed.sort();
        let all: Vec<usize> = if program.candidates.is_none() || program.resolved_again {
            (0..desired.len()).collect()
        } else {
            Vec::new()
        };
        let candidates = program.candidates.as_ref().unwrap_or(&all);
        let mut summary = Summary::default();
        let mut plan = Plan::default();

        let _span = tracing::info_span!("plan").entered();
        self.free_unreachable_code(live)?;
        self.retire_removed(removed, &mut summary)?;
        // The atoms that are new or differ from what is linked; the others need no pass but relocation, and
        // only if something they point at moves.
        let mut touched: Vec<usize> = Vec::new();
        for &i in candidates {
            if self.place(&desired[i], live, &mut plan, &mut summary)? {
                touched.push(i);
            }
        }
        drop(_span);
        // A name that resolves differently (say, a function that is now imported) may need a cell even for atoms
        // that did not change.
        let needing_indirections = if program.resolved_again { &all } else { &touched };
        self.make_indirections(desired, needing_indirections, globals, &mut plan)?;

        let _span = tracing::info_span!("relocate").entered();
        self.relocate_all(desired, &touched, live, &mut plan, &mut summary)?;
        drop(_span);

        let _span = tracing::info_span!("publish").entered();
        let mut writes = plan.writes;
        let mut new_imports = Vec::new();
        // A cell's value follows its atom's place and its stub: only those of entries this update changed can
        // differ, unless names resolve differently now.
        let cell_keys: Option<HashSet<AtomKey>> = (!program.resolved_again).then(|| {
            let journal = &self.journal;
            journal.atoms.keys().chain(journal.indirect.keys()).chain(journal.gots.keys()).cloned().collect()
        });
        self.publish_cells(globals, cell_keys.as_ref(), &mut writes, &mut new_imports, &mut summary)?;
        for (addr, symbol) in plan.new_binds {
            new_imports.push(NewImport {
                symbol: symbol.clone(),
                cell: addr,
                dylib: self.dylib_of(globals, &symbol),
            });
        }
        let main_addr = self.atoms[&main].addr;
        self.image.set_entry(VmAddr(main_addr));
        self.publish_fixups(globals, program.resolved_again);
        let rendered = self.image.render().map_err(layout("the file"))?;
        drop(_span);

        // Code and constant data first, then data fixes, then cells: a stable sort keeps each group's order.
        writes.sort_by_key(|w| w.kind);
        self.updates += 1;
        self.replaced_cache = Some(std::mem::replace(&mut self.cache, program.cache));
        Ok(Patch {
            writes,
            new_imports,
            summary,
            file_dirty: rendered.dirty,
            pages_hashed: rendered.pages_hashed,
        })
    }

    fn dylib_of(&self, globals: &Globals, symbol: &str) -> String {
        match globals.id(symbol).map(|id| globals.resolution(id)) {
            Some(Resolution::Import { dylib_ordinal }) => {
                self.dylibs[usize::from(dylib_ordinal) - 1].install_name.clone()
            }
            _ => String::new(),
        }
    }

    /// Frees retired code that no thread can be in any more.
    fn free_unreachable_code(&mut self, live: &dyn Liveness) -> Result<(), LinkError> {
        let mut kept = Vec::new();
        for (id, range) in std::mem::take(&mut self.retired_code) {
            if live.is_live(range.clone()) {
                kept.push((id, range));
            } else {
                self.image.free_atom(id).map_err(layout("retired code"))?;
            }
        }
        self.retired_code = kept;
        Ok(())
    }

    /// Takes atoms that are no longer linked out of the image's listings, keeping their bytes where they are:
    /// they are never freed. A removed function's stub and cell stay too, still leading to its last body, because
    /// the running program may call it after the update: old code still on a stack, or a function pointer kept
    /// in data. Freeing the body would send such a call into whatever reused the space; keeping it runs the old
    /// function, as the old caller expects. Removed data and constants stay for the same reason (a stale pointer
    /// may reach them). The cost is the space of what was removed, which is rarely much.
    fn retire_removed(&mut self, removed: Vec<AtomKey>, summary: &mut Summary) -> Result<(), LinkError> {
        for key in removed {
            remember(&mut self.journal.atoms, &self.atoms, &key);
            let linked = self.atoms.remove(&key).expect("key came from the map");
            summary.removed.push(key.display_name());
            self.image.retire_atom(linked.id).map_err(layout("a removed atom"))?;
        }
        Ok(())
    }

    /// Gives a new or changed atom its place. Returns whether the atom is new or differs from the linked one.
    fn place(
        &mut self,
        p: &Prepared,
        live: &dyn Liveness,
        plan: &mut Plan,
        summary: &mut Summary,
    ) -> Result<bool, LinkError> {
        if let Some(old) = self.atoms.get(&p.key)
            && same_atom(&old.prepared, p)
        {
            // Unchanged: it may still be relinked if something it points at moves.
            return Ok(false);
        }
        let name = p.key.display_name();
        let section = output_section(p);
        let Some(old) = self.atoms.get(&p.key) else {
            let id =
                self.image.add_atom(&name, section, p.size, p.align, p.external).map_err(layout(&name))?;
            let addr = self.image.atom(id).addr.0;
            self.insert(p, id, addr);
            plan.fresh.insert(p.key.clone());
            summary.added.push(name);
            return Ok(true);
        };
        let (id, old_addr, old_size) = (old.id, old.addr, old.prepared.size);
        if output_section(&old.prepared) != section {
            // A change of kind (say, a global that was zero and now has an initializer): new storage, and the old
            // stays where stale pointers may still reach it.
            self.image.retire_atom(id).map_err(layout(&name))?;
            if old.prepared.class == AtomClass::Code {
                self.retired_code.push((id, old_addr..old_addr + old_size));
            }
            let id =
                self.image.add_atom(&name, section, p.size, p.align, p.external).map_err(layout(&name))?;
            let addr = self.image.atom(id).addr.0;
            if p.class.is_state() {
                summary.globals_reset.push(name);
            } else {
                summary.changed_in_place.push(name);
            }
            self.insert(p, id, addr);
            plan.fresh.insert(p.key.clone());
            return Ok(true);
        }
        let same_shape = old.prepared.size == p.size && old.prepared.align == p.align;
        let same = old.prepared.sig == p.sig;
        match p.class {
            AtomClass::Code if !same => {
                let range = old_addr..old_addr + old_size;
                let (placement, reason) = if live.is_live(range.clone()) {
                    let (placement, old_slot) =
                        self.image.move_atom_keeping_old(id, p.size).map_err(layout(&name))?;
                    self.retired_code.push((old_slot, range));
                    (placement, MoveReason::Live)
                } else {
                    (self.image.resize_atom(id, p.size, true).map_err(layout(&name))?, MoveReason::Grew)
                };
                match placement {
                    Placement::InPlace => summary.changed_in_place.push(name),
                    Placement::Moved { from, to } => {
                        summary.moved.push(Moved { name, from: from.0, to: to.0, reason });
                        plan.fresh.insert(p.key.clone());
                    }
                }
                plan.changed.insert(p.key.clone());
            }
            AtomClass::Data | AtomClass::Bss if !same_shape => {
                // Fresh storage with the new size and alignment; the old stays allocated, because a stale pointer
                // in the running program may still reach it.
                self.image.retire_atom(id).map_err(layout(&name))?;
                let id = self
                    .image
                    .add_atom(&name, section, p.size, p.align, p.external)
                    .map_err(layout(&name))?;
                let addr = self.image.atom(id).addr.0;
                self.insert(p, id, addr);
                summary.globals_reset.push(name);
                plan.fresh.insert(p.key.clone());
                return Ok(true);
            }
            AtomClass::Data | AtomClass::Bss if !same => {
                summary.globals_kept.push(name);
                plan.changed.insert(p.key.clone());
            }
            AtomClass::Const { .. } | AtomClass::Literal if !same => {
                let (_, _old_slot) = self.image.move_atom_keeping_old(id, p.size).map_err(layout(&name))?;
                summary.constants_changed.push(name);
                plan.fresh.insert(p.key.clone());
            }
            _ => {
                // Same bytes and relocations, from elsewhere (say, a function that changed objects): nothing
                // to place, but it is relinked like a changed atom so its new object is the one on record.
                self.atom_mut(&p.key).prepared = p.clone();
                return Ok(true);
            }
        }
        let addr = self.image.atom(id).addr.0;
        let linked = self.atom_mut(&p.key);
        linked.addr = addr;
        linked.prepared = p.clone();
        Ok(true)
    }

    fn insert(&mut self, p: &Prepared, id: AtomId, addr: u64) {
        remember(&mut self.journal.atoms, &self.atoms, &p.key);
        self.atoms.insert(
            p.key.clone(),
            Linked {
                id,
                addr,
                prepared: p.clone(),
                bytes: Vec::new(),
                pointers: Vec::new(),
                binds: Vec::new(),
            },
        );
    }

    /// Makes sure every function has a stub and a target cell, every import that is called has a stub, and
    /// every GOT-loaded symbol has a GOT cell. New stubs are written at once (they never change).
    /// Atoms that are not `touched` were linked before, so theirs exist already.
    fn make_indirections(
        &mut self,
        desired: &[Arc<Prepared>],
        touched: &[usize],
        globals: &Globals,
        plan: &mut Plan,
    ) -> Result<(), LinkError> {
        let mut needs_stub: Vec<AtomKey> = Vec::new();
        let mut needs_got: Vec<AtomKey> = Vec::new();
        for p in touched.iter().map(|&i| &desired[i]) {
            if p.function {
                needs_stub.push(p.key.clone());
            }
            for fix in &p.fixes {
                match &fix.target {
                    Target::Stub(k) => needs_stub.push(k.clone()),
                    Target::Got(k) => needs_got.push(k.clone()),
                    _ => {}
                }
            }
        }
        for key in needs_stub {
            if self.indirect.get(&key).is_some_and(|i| i.stub.is_some()) {
                continue;
            }
            let cell = self.cell_for(&key)?;
            let name = format!("{}$stub", key.display_name());
            let id =
                self.image.add_atom(&name, Section::Stubs, STUB_SIZE, 4, false).map_err(layout(&name))?;
            let stub = self.image.atom(id).addr.0;
            let code = stub_code(stub, cell, &key.display_name()).map_err(|source| LinkError::Relocate {
                atom: name.clone(),
                object: PathBuf::new(),
                source,
            })?;
            self.image.write_atom(id, &code).map_err(layout(&name))?;
            plan.writes.push(Write {
                kind: WriteKind::Code,
                addr: stub,
                bytes: code.to_vec(),
                pointers: Vec::new(),
                what: name,
            });
            remember(&mut self.journal.indirect, &self.indirect, &key);
            self.indirect.get_mut(&key).expect("cell_for made it").stub = Some(stub);
        }
        for key in needs_got {
            let import = matches!(
                &key,
                AtomKey::Global(n) if matches!(globals.id(n).map(|id| globals.resolution(id)), Some(Resolution::Import { .. }))
            );
            if import {
                self.cell_for(&key)?;
            } else if !self.gots.contains_key(&key) {
                let name = format!("{}$got", key.display_name());
                let id = self.image.add_atom(&name, Section::Cells, 8, 8, false).map_err(layout(&name))?;
                let cell = self.image.atom(id).addr.0;
                remember(&mut self.journal.cell_ids, &self.cell_ids, &cell);
                remember(&mut self.journal.gots, &self.gots, &key);
                self.cell_ids.insert(cell, id);
                self.gots.insert(key, cell);
            }
        }
        Ok(())
    }

    /// The target cell of a function or import, made if it does not exist yet.
    fn cell_for(&mut self, key: &AtomKey) -> Result<u64, LinkError> {
        if let Some(i) = self.indirect.get(key) {
            return Ok(i.cell);
        }
        let name = format!("{}$cell", key.display_name());
        let id = self.image.add_atom(&name, Section::Cells, 8, 8, false).map_err(layout(&name))?;
        let cell = self.image.atom(id).addr.0;
        remember(&mut self.journal.cell_ids, &self.cell_ids, &cell);
        remember(&mut self.journal.indirect, &self.indirect, key);
        self.cell_ids.insert(cell, id);
        self.indirect.insert(key.clone(), Indirect { stub: None, cell });
        Ok(cell)
    }

    /// Relocates every atom that needs it and records the writes.
    fn relocate_all(
        &mut self,
        desired: &[Arc<Prepared>],
        touched: &[usize],
        live: &dyn Liveness,
        plan: &mut Plan,
        summary: &mut Summary,
    ) -> Result<(), LinkError> {
        // Who points at whom by address (not through a stub or a cell, whose addresses never change), found
        // when something is at a new address for the first time.
        let mut referrers: Option<HashMap<&AtomKey, Vec<usize>>> = None;
        let mut queue: VecDeque<usize> = VecDeque::new();
        let mut queued: HashSet<usize> = HashSet::new();
        for &i in touched {
            queue.push_back(i);
            queued.insert(i);
        }
        for key in plan.fresh.clone() {
            let referrers = referrers.get_or_insert_with(|| referrers_of(desired));
            for &r in referrers.get(&key).map(Vec::as_slice).unwrap_or_default() {
                if queued.insert(r) {
                    queue.push_back(r);
                }
            }
        }
        let mut relinked: BTreeSet<String> = BTreeSet::new();
        while let Some(i) = queue.pop_front() {
            let p = &desired[i];
            let name = p.key.display_name();
            let fresh = plan.fresh.contains(&p.key);
            let changed = plan.changed.contains(&p.key);
            let (mut addr, id) = {
                let l = &self.atoms[&p.key];
                (l.addr, l.id)
            };
            let (mut bytes, mut pointers, mut binds) = self.relocate(p, addr)?;
            if !fresh && !changed && bytes == self.atoms[&p.key].bytes {
                continue;
            }
            if !fresh && !changed {
                relinked.insert(name.clone());
                // An unchanged function whose bytes change because a target moved: never rewrite it under a
                // running thread.
                if p.class == AtomClass::Code && live.is_live(addr..addr + p.size) {
                    let (placement, old_slot) =
                        self.image.move_atom_keeping_old(id, p.size).map_err(layout(&name))?;
                    self.retired_code.push((old_slot, addr..addr + p.size));
                    if let Placement::Moved { from, to } = placement {
                        summary.moved.push(Moved {
                            name: name.clone(),
                            from: from.0,
                            to: to.0,
                            reason: MoveReason::Live,
                        });
                    }
                    addr = self.image.atom(id).addr.0;
                    self.atom_mut(&p.key).addr = addr;
                    plan.fresh.insert(p.key.clone());
                    (bytes, pointers, binds) = self.relocate(p, addr)?;
                    let referrers = referrers.get_or_insert_with(|| referrers_of(desired));
                    for &r in referrers.get(&p.key).map(Vec::as_slice).unwrap_or_default() {
                        if queued.insert(r) {
                            queue.push_back(r);
                        }
                    }
                }
            }
            let fresh = plan.fresh.contains(&p.key);
            match output_section(p) {
                Section::Bss => {}
                // A small zero-initialised global in `__DATA` is zeros in the file.
                _ if p.class == AtomClass::Bss => {
                    self.image.write_atom(id, &vec![0; p.size as usize]).map_err(layout(&name))?;
                }
                _ => self.image.write_atom(id, &bytes).map_err(layout(&name))?,
            }
            match p.class {
                AtomClass::Code => {
                    // The atom still holds the bytes of the previous update (they are replaced below).
                    let range =
                        if fresh { 0..bytes.len() } else { differing(&self.atoms[&p.key].bytes, &bytes) };
                    if !range.is_empty() {
                        plan.writes.push(Write {
                            kind: WriteKind::Code,
                            addr: addr + range.start as u64,
                            bytes: bytes[range].to_vec(),
                            pointers: Vec::new(),
                            what: name.clone(),
                        });
                    }
                }
                AtomClass::Data if !fresh => {
                    // Kept state: only pointers that must follow a target to its new place are rewritten.
                    let old = &self.atoms[&p.key];
                    for &off in &pointers {
                        let o = off as usize;
                        let was_pointer = old.pointers.contains(&off);
                        if was_pointer && old.bytes.get(o..o + 8) != Some(&bytes[o..o + 8]) {
                            plan.writes.push(Write {
                                kind: WriteKind::Data,
                                addr: addr + u64::from(off),
                                bytes: bytes[o..o + 8].to_vec(),
                                pointers: vec![0],
                                what: format!("{name}+{off:#x}"),
                            });
                        }
                    }
                }
                // Constants are written whole whenever they are written; data when it is new storage.
                AtomClass::Const { .. } | AtomClass::Literal | AtomClass::Data => {
                    plan.writes.push(Write {
                        kind: WriteKind::Data,
                        addr,
                        bytes: bytes.clone(),
                        pointers: pointers.clone(),
                        what: name.clone(),
                    });
                    plan.new_binds.extend(binds.iter().map(|(o, s)| (addr + u64::from(*o), s.clone())));
                }
                AtomClass::Bss => {}
            }
            let linked = self.atom_mut(&p.key);
            linked.bytes = bytes;
            linked.pointers = pointers;
            linked.binds = binds;
        }
        summary.relinked = relinked.into_iter().collect();
        Ok(())
    }

    /// The bytes of `p` placed at `addr`, with the offsets of rebased and bound pointers.
    #[expect(clippy::type_complexity, reason = "a private triple used in one place")]
    fn relocate(
        &self,
        p: &Prepared,
        addr: u64,
    ) -> Result<(Vec<u8>, Vec<u32>, Vec<(u32, String)>), LinkError> {
        let mut bytes = p.bytes.clone();
        let mut pointers = Vec::new();
        let mut binds = Vec::new();
        let name = p.key.display_name();
        let bad =
            |reason: String| LinkError::BadTarget { atom: name.clone(), object: p.object.clone(), reason };
        let enc = |source: EncodeError| LinkError::Relocate {
            atom: name.clone(),
            object: p.object.clone(),
            source,
        };
        for fix in &p.fixes {
            let o = fix.offset as usize;
            let place = addr + fix.offset;
            let target_name = target_display(&fix.target);
            let value = match &fix.target {
                Target::Bind(symbol) => {
                    if fix.fixup != Fixup::Abs64 {
                        return Err(bad(format!("{symbol} can only be bound in an 8-byte pointer")));
                    }
                    bytes[o..o + 8].fill(0);
                    binds.push((fix.offset as u32, symbol.clone()));
                    continue;
                }
                t => self.target_addr(t).ok_or_else(|| bad(format!("{target_name} is not linked")))?,
            }
            .wrapping_add(fix.addend as u64);
            let word = |b: &[u8]| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
            match &fix.fixup {
                Fixup::Branch26 => {
                    let insn = encode_branch26(word(&bytes), place, value, &target_name).map_err(enc)?;
                    bytes[o..o + 4].copy_from_slice(&insn.to_le_bytes());
                }
                Fixup::Page21 | Fixup::GotPage21 => {
                    let insn = encode_adrp(word(&bytes), place, value, &target_name).map_err(enc)?;
                    bytes[o..o + 4].copy_from_slice(&insn.to_le_bytes());
                }
                Fixup::PageOff12 | Fixup::GotPageOff12 => {
                    let insn = encode_pageoff12(word(&bytes), value, &target_name).map_err(enc)?;
                    bytes[o..o + 4].copy_from_slice(&insn.to_le_bytes());
                }
                Fixup::PointerToGot => {
                    let delta = value.wrapping_sub(place) as i64;
                    let delta = i32::try_from(delta)
                        .map_err(|_| bad(format!("POINTER_TO_GOT to {target_name} is out of range")))?;
                    bytes[o..o + 4].copy_from_slice(&delta.to_le_bytes());
                }
                Fixup::Abs64 => {
                    bytes[o..o + 8].copy_from_slice(&value.to_le_bytes());
                    pointers.push(fix.offset as u32);
                }
                Fixup::Abs32 => {
                    return Err(bad(format!(
                        "a 32-bit absolute address of {target_name} cannot hold an address above 4 GiB"
                    )));
                }
                Fixup::Delta { minus, width } => {
                    let minus = self
                        .target_addr(minus)
                        .ok_or_else(|| bad("a difference's base is not linked".into()))?;
                    let delta = value.wrapping_sub(minus) as i64;
                    if *width == 8 {
                        bytes[o..o + 8].copy_from_slice(&delta.to_le_bytes());
                    } else {
                        let delta = i32::try_from(delta).map_err(|_| {
                            bad(format!("a 32-bit difference to {target_name} is out of range"))
                        })?;
                        bytes[o..o + 4].copy_from_slice(&delta.to_le_bytes());
                    }
                }
            }
        }
        Ok((bytes, pointers, binds))
    }

    /// The address a target names, as things stand.
    fn target_addr(&self, target: &Target) -> Option<u64> {
        match target {
            Target::Stub(k) => self.indirect.get(k)?.stub,
            Target::Got(k) => self.gots.get(k).copied().or_else(|| Some(self.indirect.get(k)?.cell)),
            Target::Atom(k, off) => Some(self.atoms.get(k)?.addr + off),
            Target::Bind(_) => None,
        }
    }

    /// Gives every cell (or, with `keys`, the cells of those keys) its value and records a store (or a bind)
    /// for each one that changed.
    fn publish_cells(
        &mut self,
        globals: &Globals,
        keys: Option<&HashSet<AtomKey>>,
        writes: &mut Vec<Write>,
        new_imports: &mut Vec<NewImport>,
        summary: &mut Summary,
    ) -> Result<(), LinkError> {
        let indirect: Vec<(&AtomKey, &Indirect)> = match keys {
            Some(keys) => keys.iter().filter_map(|k| self.indirect.get_key_value(k)).collect(),
            None => self.indirect.iter().collect(),
        };
        let gots: Vec<(&AtomKey, &u64)> = match keys {
            Some(keys) => keys.iter().filter_map(|k| self.gots.get_key_value(k)).collect(),
            None => self.gots.iter().collect(),
        };
        let unchanged = |cell: u64, value: &CellValue| self.cells.get(&cell).map(|(_, v)| v) == Some(value);
        let mut values: Vec<(u64, String, CellValue)> = Vec::new();
        for (key, ind) in indirect {
            let value = match (key, self.atoms.get(key)) {
                (_, Some(l)) if l.prepared.class == AtomClass::Code => CellValue::Addr(l.addr),
                (AtomKey::Global(n), _) => match globals.id(n).map(|id| globals.resolution(id)) {
                    Some(Resolution::Import { dylib_ordinal }) => {
                        CellValue::Bind { symbol: n.clone(), dylib_ordinal }
                    }
                    // A function that is gone: the cell keeps pointing at the retired body.
                    _ => continue,
                },
                _ => continue,
            };
            if !unchanged(ind.cell, &value) {
                values.push((ind.cell, format!("{}$cell", key.display_name()), value));
            }
        }
        for (key, &cell) in gots {
            let value = if let Some(ind) = self.indirect.get(key).filter(|i| i.stub.is_some()) {
                CellValue::Addr(ind.stub.expect("filtered"))
            } else if let Some(l) = self.atoms.get(key) {
                if l.prepared.function {
                    let stub = self.indirect.get(key).and_then(|i| i.stub);
                    CellValue::Addr(stub.unwrap_or(l.addr))
                } else {
                    CellValue::Addr(l.addr)
                }
            } else {
                continue;
            };
            if !unchanged(cell, &value) {
                values.push((cell, format!("{}$got", key.display_name()), value));
            }
        }
        values.sort_by_key(|v| v.0);
        for (cell, name, value) in values {
            let id = self.cell_ids[&cell];
            match &value {
                CellValue::Addr(a) => {
                    self.image.write_atom(id, &a.to_le_bytes()).map_err(layout(&name))?;
                    writes.push(Write {
                        kind: WriteKind::Cell,
                        addr: cell,
                        bytes: a.to_le_bytes().to_vec(),
                        pointers: vec![0],
                        what: name.clone(),
                    });
                }
                CellValue::Bind { symbol, dylib_ordinal } => {
                    self.image.write_atom(id, &0u64.to_le_bytes()).map_err(layout(&name))?;
                    let dylib = self.dylibs[usize::from(*dylib_ordinal) - 1].install_name.clone();
                    new_imports.push(NewImport { symbol: symbol.clone(), cell, dylib });
                    summary.new_imports.push(symbol.clone());
                }
            }
            summary.cells.push(name.clone());
            remember(&mut self.journal.cells, &self.cells, &cell);
            self.cells.insert(cell, (name, value));
        }
        Ok(())
    }

    /// Gives the image the pointers dyld slides and the cells it binds. When names resolve as before, only
    /// entries this update changed (the journal has their previous values) can add or drop one, and only
    /// those are passed on; otherwise every atom and cell is listed again, since an import's dylib may differ.
    fn publish_fixups(&mut self, globals: &Globals, resolved_again: bool) {
        if resolved_again {
            self.image.set_rebases(self.rebases());
            self.image.set_imports(self.imports(globals));
            return;
        }
        let (mut old_rebases, mut new_rebases) = (Vec::new(), Vec::new());
        let (mut old_binds, mut new_binds) = (Vec::new(), Vec::new());
        for (key, old) in &self.journal.atoms {
            if let Some(old) = old {
                old_rebases.extend(old.pointers.iter().map(|&o| VmAddr(old.addr + u64::from(o))));
                old_binds.extend(old.binds.iter().map(|(o, _)| VmAddr(old.addr + u64::from(*o))));
            }
            if let Some(new) = self.atoms.get(key) {
                new_rebases.extend(new.pointers.iter().map(|&o| VmAddr(new.addr + u64::from(o))));
                new_binds.extend(new.binds.iter().map(|(o, symbol)| Import {
                    cell: VmAddr(new.addr + u64::from(*o)),
                    symbol: symbol.clone(),
                    dylib_ordinal: import_ordinal(globals, symbol),
                }));
            }
        }
        for (&cell, old) in &self.journal.cells {
            match old {
                Some((_, CellValue::Addr(_))) => old_rebases.push(VmAddr(cell)),
                Some((_, CellValue::Bind { .. })) => old_binds.push(VmAddr(cell)),
                None => {}
            }
            match self.cells.get(&cell) {
                Some((_, CellValue::Addr(_))) => new_rebases.push(VmAddr(cell)),
                Some((_, CellValue::Bind { symbol, dylib_ordinal })) => new_binds.push(Import {
                    cell: VmAddr(cell),
                    symbol: symbol.clone(),
                    dylib_ordinal: *dylib_ordinal,
                }),
                None => {}
            }
        }
        self.image.change_rebases(&old_rebases, &new_rebases);
        self.image.change_imports(&old_binds, new_binds);
        debug_assert_eq!(self.image.rebases().collect::<Vec<_>>(), self.rebases(), "rebases kept in step");
        debug_assert_eq!(
            self.image.imports().cloned().collect::<Vec<_>>(),
            self.imports(globals),
            "imports kept in step"
        );
    }

    /// Every absolute pointer in the file that dyld must slide.
    fn rebases(&self) -> Vec<VmAddr> {
        let mut out: Vec<VmAddr> = self
            .cells
            .iter()
            .filter(|(_, (_, v))| matches!(v, CellValue::Addr(_)))
            .map(|(&c, _)| VmAddr(c))
            .collect();
        for l in self.atoms.values() {
            out.extend(l.pointers.iter().map(|&o| VmAddr(l.addr + u64::from(o))));
        }
        out.sort();
        out
    }

    /// Every place dyld binds to a library symbol.
    fn imports(&self, globals: &Globals) -> Vec<Import> {
        let mut out: Vec<Import> = self
            .cells
            .iter()
            .filter_map(|(&c, (_, v))| match v {
                CellValue::Bind { symbol, dylib_ordinal } => {
                    Some(Import { cell: VmAddr(c), symbol: symbol.clone(), dylib_ordinal: *dylib_ordinal })
                }
                CellValue::Addr(_) => None,
            })
            .collect();
        for l in self.atoms.values() {
            for (o, symbol) in &l.binds {
                out.push(Import {
                    cell: VmAddr(l.addr + u64::from(*o)),
                    symbol: symbol.clone(),
                    dylib_ordinal: import_ordinal(globals, symbol),
                });
            }
        }
        out.sort_by_key(|i| i.cell);
        out
    }
}

/// The dylib a pointer bound to `symbol` names: the one the symbol resolves to, else libSystem (ordinal 1).
fn import_ordinal(globals: &Globals, symbol: &str) -> u16 {
    match globals.id(symbol).map(|id| globals.resolution(id)) {
        Some(Resolution::Import { dylib_ordinal }) => dylib_ordinal,
        _ => 1,
    }
}

/// Views for the verifier, which must not reuse the relocation code.
impl Linker {
    pub(crate) fn atoms_for_verify(&self) -> impl Iterator<Item = (&Prepared, u64)> {
        self.atoms.values().map(|l| (&l.prepared, l.addr))
    }

    pub(crate) fn target_addr_for_verify(&self, target: &Target) -> Option<u64> {
        self.target_addr(target)
    }

    pub(crate) fn indirections_for_verify(&self) -> impl Iterator<Item = (&AtomKey, Option<u64>, u64)> {
        self.indirect.iter().map(|(k, i)| (k, i.stub, i.cell))
    }

    /// Every cell and what it must hold in the file, derived from where the atoms are now (`None`: bound by
    /// dyld, so zero in the file).
    pub(crate) fn cell_values_for_verify(&self) -> Vec<(u64, String, Option<u64>)> {
        let mut out = Vec::new();
        for (key, ind) in &self.indirect {
            let name = format!("{}$cell", key.display_name());
            match self.atoms.get(key) {
                Some(l) if l.prepared.class == AtomClass::Code => out.push((ind.cell, name, Some(l.addr))),
                Some(_) => {}
                None => {
                    if let Some((_, CellValue::Bind { .. })) = self.cells.get(&ind.cell) {
                        out.push((ind.cell, name, None));
                    }
                }
            }
        }
        for (key, &cell) in &self.gots {
            let name = format!("{}$got", key.display_name());
            if let Some(stub) = self.indirect.get(key).and_then(|i| i.stub) {
                out.push((cell, name, Some(stub)));
            } else if let Some(l) = self.atoms.get(key) {
                out.push((cell, name, Some(l.addr)));
            }
        }
        out
    }
}

/// What the planning passes decided, for the relocation and publishing passes.
#[derive(Debug, Default)]
struct Plan {
    /// Atoms at a new address (added, moved, or given fresh storage): written whole, and whoever points at them
    /// is relinked.
    fresh: HashSet<AtomKey>,
    /// Atoms whose content changed where they are.
    changed: HashSet<AtomKey>,
    writes: Vec<Write>,
    /// Pointers in newly written data to bind to imports in the running process.
    new_binds: Vec<(u64, String)>,
}

/// Whether `p` is `old` again: same signature, class, function-ness and object, so nothing about it changes.
fn same_atom(old: &Prepared, p: &Prepared) -> bool {
    old.sig == p.sig && old.class == p.class && old.function == p.function && old.object == p.object
}

/// Which atoms (by index in `desired`) point at each atom by its address.
fn referrers_of(desired: &[Arc<Prepared>]) -> HashMap<&AtomKey, Vec<usize>> {
    let mut referrers: HashMap<&AtomKey, Vec<usize>> = HashMap::new();
    for (i, p) in desired.iter().enumerate() {
        for fix in &p.fixes {
            for t in [Some(&fix.target), fix_minus(fix)].into_iter().flatten() {
                if let Target::Atom(k, _) = t
                    && *k != p.key
                {
                    referrers.entry(k).or_default().push(i);
                }
            }
        }
    }
    referrers
}

fn fix_minus(fix: &Fix) -> Option<&Target> {
    match &fix.fixup {
        Fixup::Delta { minus, .. } => Some(minus),
        _ => None,
    }
}

fn target_display(target: &Target) -> String {
    match target {
        Target::Stub(k) | Target::Got(k) => k.display_name(),
        Target::Atom(k, 0) => k.display_name(),
        Target::Atom(k, off) => format!("{}+{off:#x}", k.display_name()),
        Target::Bind(s) => s.clone(),
    }
}

/// The section each class of atom goes to. Constants that hold absolute addresses go to `__DATA`: dyld must
/// slide them, and it does not write to a plain read-only segment.
///
/// Small zero-initialised globals go to `__DATA` too, as zeros in the file: a global that is `= 0` today and
/// `= 5` tomorrow then keeps its address and its running value (contract item 4) instead of having to move from
/// zero-fill to file-backed storage. Only large ones (arrays past [`SMALL_ZERO_FILL`] bytes) use `__BSS`, where
/// they cost no file space.
fn output_section(p: &Prepared) -> Section {
    match p.class {
        AtomClass::Code => Section::Text,
        AtomClass::Const { pointers: false } | AtomClass::Literal => Section::Const,
        AtomClass::Const { pointers: true } | AtomClass::Data => Section::Data,
        AtomClass::Bss if p.size <= SMALL_ZERO_FILL => Section::Data,
        AtomClass::Bss => Section::Bss,
    }
}

/// The largest zero-initialised global placed in `__DATA` rather than `__BSS`.
const SMALL_ZERO_FILL: u64 = 4096;

/// The smallest range outside which `a` and `b` are equal (empty if they are equal; `b`'s whole length if the
/// lengths differ beyond the common part).
fn differing(a: &[u8], b: &[u8]) -> Range<usize> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if prefix == b.len() && a.len() == b.len() {
        return 0..0;
    }
    let suffix = if a.len() == b.len() {
        a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count()
    } else {
        0
    };
    // Keep writes word-aligned: instructions are 4 bytes.
    let start = prefix / 4 * 4;
    let end = (b.len() - suffix).next_multiple_of(4).min(b.len());
    start..end
}

/// What `reset NAME` needs.
impl Linker {
    /// The write that re-applies a global's initializer in a running process: its current initializer bytes
    /// (zeros for zero-fill) at its address, with its pointers marked for sliding. `None` if `name` is not a
    /// global variable of the program, or if it holds pointers bound to imports (the process's bound values
    /// cannot be recomputed here).
    pub fn initializer(&self, name: &str) -> Option<Write> {
        let linked = self.atoms.get(&AtomKey::Global(name.to_string()))?;
        let bytes = match linked.prepared.class {
            AtomClass::Data => linked.bytes.clone(),
            AtomClass::Bss => vec![0; linked.prepared.size as usize],
            _ => return None,
        };
        if !linked.binds.is_empty() {
            return None;
        }
        Some(Write {
            kind: WriteKind::Data,
            addr: linked.addr,
            bytes,
            pointers: linked.pointers.clone(),
            what: format!("{name} (reset)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use macho_layout::LayoutConfig;

    use super::{Linker, NothingLive, differing};
    use crate::input::{InputObject, parse_object};
    use crate::tbd::parse_tbd;

    fn sdk() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim-sdk")
    }

    /// Compiles each `(name, source)` with clang-19 against the sim SDK and parses the objects.
    fn objects(dir: &Path, units: &[(&str, &str)]) -> Vec<InputObject> {
        units
            .iter()
            .map(|(name, source)| {
                let c = dir.join(format!("{name}.c"));
                let o = dir.join(format!("{name}.o"));
                std::fs::write(&c, source).unwrap();
                let out = Command::new("clang-19")
                    .args(["--target=arm64-apple-macos13", "-isysroot"])
                    .arg(sdk())
                    .args(["-O1", "-fno-asynchronous-unwind-tables", "-c"])
                    .arg(&c)
                    .arg("-o")
                    .arg(&o)
                    .output()
                    .expect("clang-19 must be installed (cargo xtask setup)");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                parse_object(&o, &std::fs::read(&o).unwrap()).unwrap()
            })
            .collect()
    }

    fn linker() -> Linker {
        let tbd = sdk().join("usr/lib/libSystem.tbd");
        let libsystem = parse_tbd(&tbd, &std::fs::read_to_string(&tbd).unwrap()).unwrap();
        // A text reserve larger than a branch reaches: a call from a function to a stub is out of range, and
        // that is found only after the new atoms have been placed.
        let config = LayoutConfig { text: 200 << 20, ..LayoutConfig::default() };
        Linker::new("prog", None, config, vec![libsystem])
    }

    /// A failure after placement and indirection leaves nothing behind: the next update of the failed linker
    /// and of one that never saw the failure produce the same patch, file, symbols and signatures.
    #[test]
    fn a_failed_update_is_undone_entirely() {
        let dir = tempfile::tempdir().unwrap();
        let first = objects(
            dir.path(),
            &[("main", "int g = 3;\nint main(void) { return g; }\n"), ("lib", "int k = 4;\n")],
        );
        let failing = objects(
            dir.path(),
            &[
                ("main", "int f(void);\nint g = 3;\nint main(void) { return g + f(); }\n"),
                ("lib", "int k = 5;\nint f(void) { return k; }\n"),
            ],
        );
        let next = objects(
            dir.path(),
            &[("main", "int g = 3;\nint main(void) { return g + 1; }\n"), ("lib", "int k = 6;\n")],
        );
        let mut failed = linker();
        let mut clean = linker();
        failed.update(&first, &NothingLive).unwrap();
        clean.update(&first, &NothingLive).unwrap();
        let err = failed.update(&failing, &NothingLive).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
        assert_eq!(failed.file(), clean.file());
        assert_eq!(failed.symbol_map(), clean.symbol_map());
        assert!(failed.image().atoms().eq(clean.image().atoms()), "the image's atoms changed");
        assert_eq!(failed.updates(), clean.updates());

        let mut after_failure = failed.update(&next, &NothingLive).unwrap();
        let mut expected = clean.update(&next, &NothingLive).unwrap();
        assert_eq!(after_failure.summary, expected.summary);
        for patch in [&mut after_failure, &mut expected] {
            patch.writes.sort_by_key(|w| (w.kind, w.addr));
        }
        assert_eq!(after_failure.writes, expected.writes);
        assert_eq!(after_failure.file_dirty, expected.file_dirty);
        assert_eq!(failed.file(), clean.file());
        assert_eq!(failed.symbol_map(), clean.symbol_map());
        assert_eq!(failed.signatures(), clean.signatures());
        failed.verify().unwrap();
    }

    /// An edit that would stay in place but cannot be relocated there (a new call to an existing function, out
    /// of a branch's reach) is refused like any other failure, and the next edit links as if it never came.
    #[test]
    fn an_in_place_edit_that_cannot_be_relocated_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lib = ("lib", "int f(void) { return 4; }\n");
        let first = objects(dir.path(), &[("main", "int g = 3;\nint main(void) { return g; }\n"), lib]);
        let failing = objects(
            dir.path(),
            &[("main", "int f(void);\nint g = 3;\nint main(void) { return f(); }\n"), lib],
        );
        let next = objects(dir.path(), &[("main", "int g = 3;\nint main(void) { return g + 1; }\n"), lib]);
        let mut failed = linker();
        let mut clean = linker();
        failed.update(&first, &NothingLive).unwrap();
        clean.update(&first, &NothingLive).unwrap();
        let err = failed.update(&failing, &NothingLive).unwrap_err().to_string();
        assert!(err.contains("BRANCH26 to _f is out of range"), "{err}");
        assert_eq!(failed.file(), clean.file());
        assert_eq!(failed.symbol_map(), clean.symbol_map());
        assert!(failed.image().atoms().eq(clean.image().atoms()), "the image's atoms changed");
        let after_failure = failed.update(&next, &NothingLive).unwrap();
        let expected = clean.update(&next, &NothingLive).unwrap();
        assert_eq!(after_failure.summary, expected.summary);
        assert_eq!(after_failure.writes, expected.writes);
        assert_eq!(failed.file(), clean.file());
        failed.verify().unwrap();
    }

    /// An object that did not change must still be prepared again when what it refers to changed kind in
    /// another object: `main.o` calls `_f` through its stub while `_f` is a function, and branches to its
    /// place once `_f` is data (nonsense at run time, but what a fresh link of these objects gives).
    #[test]
    fn unchanged_objects_follow_a_name_that_changes_kind_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let main = ("main", "int f(void);\nint main(void) { return f(); }\n");
        let edits = [
            objects(dir.path(), &[main, ("lib", "int f(void) { return 1; }\n")]),
            objects(dir.path(), &[main, ("lib", "int f = 3;\n")]),
            objects(dir.path(), &[main, ("lib", "int f(void) { return 2; }\n")]),
        ];
        let mut incremental = Linker::new("prog", None, LayoutConfig::default(), linker().dylibs);
        for objects in &edits {
            incremental.update(objects, &NothingLive).unwrap();
            let mut fresh = Linker::new("prog", None, LayoutConfig::default(), linker().dylibs);
            fresh.update(objects, &NothingLive).unwrap();
            assert_eq!(incremental.signatures(), fresh.signatures());
            incremental.verify().unwrap();
        }
    }

    /// Offsets, inside the atom named `name`, of the pointers the image has dyld slide and of the cells it has
    /// dyld bind (with the symbol).
    fn fixups_in(linker: &Linker, name: &str) -> (Vec<u64>, Vec<(u64, String)>) {
        let (addr, bytes) = linker.atom_by_name(name).unwrap();
        let inside = |a: u64| (addr..addr + bytes.len() as u64).contains(&a);
        let rebases = linker.image().rebases().filter(|a| inside(a.0)).map(|a| a.0 - addr).collect();
        let binds = linker
            .image()
            .imports()
            .filter(|i| inside(i.cell.0))
            .map(|i| (i.cell.0 - addr, i.symbol.clone()))
            .collect();
        (rebases, binds)
    }

    /// Edits that keep every name but change which words of a table are pointers, to functions (slid by dyld)
    /// or to an import (bound by dyld), and then its size (new storage): after each, the image's rebases and
    /// binds are the table's pointers at its current place, and the same as listing every atom and cell again.
    /// (`keep` refers to `printf`, `f` and `g` throughout, so that names resolve as before and only changes are passed on.)
    #[test]
    fn rebases_and_binds_follow_the_pointers_an_update_changes() {
        let dir = tempfile::tempdir().unwrap();
        let lib = ("lib", "int f(void) { return 1; }\nint g(void) { return 2; }\n");
        let main = |table: &str| {
            format!(
                "int printf(const char *, ...);\nint f(void);\nint g(void);\nvoid *keep[3] = {{(void *)printf, f, g}};\n\
                 {table}\nint main(void) {{ printf(\"%p\", table[1]); return 0; }}\n"
            )
        };
        let edits = [
            ("void *table[3] = {f, 0, g};", vec![0, 16], vec![]),
            ("void *table[3] = {0, f, g};", vec![8, 16], vec![]),
            ("void *table[3] = {0, (void *)printf, g};", vec![16], vec![(8, "_printf".to_string())]),
            ("void *table[3] = {f, 0, 0};", vec![0], vec![]),
            (
                "void *table[4] = {f, g, (void *)printf, g};",
                vec![0, 8, 24],
                vec![(16, "_printf".to_string())],
            ),
        ];
        let mut linker = Linker::new("prog", None, LayoutConfig::default(), linker().dylibs);
        for (table, rebases, binds) in edits {
            let source = main(table);
            linker.update(&objects(dir.path(), &[("main", &source), lib]), &NothingLive).unwrap();
            assert_eq!(fixups_in(&linker, "_table"), (rebases, binds), "{table}");
            let globals = linker.cache.globals.clone().unwrap();
            assert_eq!(linker.image().rebases().collect::<Vec<_>>(), linker.rebases(), "{table}");
            assert_eq!(
                linker.image().imports().cloned().collect::<Vec<_>>(),
                linker.imports(&globals),
                "{table}"
            );
            linker.verify().unwrap();
        }
    }

    #[test]
    fn differing_finds_the_changed_words() {
        assert_eq!(differing(&[1, 2, 3, 4, 5, 6, 7, 8], &[1, 2, 3, 4, 5, 6, 7, 8]), 0..0);
        assert_eq!(differing(&[1, 2, 3, 4, 5, 6, 7, 8], &[1, 2, 3, 4, 5, 9, 7, 8]), 4..8);
        assert_eq!(differing(&[1, 2, 3, 4], &[1, 2, 3, 4, 5, 6, 7, 8]), 4..8);
        assert_eq!(differing(&[9, 2, 3, 4, 5, 6, 7, 8], &[1, 2, 3, 4, 5, 6, 7, 8]), 0..4);
    }
}
