//! Resolution and preparation that reuse the previous update's work for objects that did not change.
//!
//! An object's prepared atoms depend on its own bytes and, for every external name it mentions, on that
//! name's resolution and on where the defining object puts it (see [`crate::prepare::prepare_object`]). So
//! when the object list has the same paths in the same order as last time, and every object whose digest
//! changed still has the same interface (its external symbols, by index, with how each is defined), every
//! name resolves as before and the previous [`Globals`] stand. If, moreover, every changed object still puts
//! each name it defines in the same place ([`crate::prepare::export_refs`]), the prepared atoms of every
//! unchanged object stand too, and only the changed objects are prepared again. Anything else — an object
//! added, removed or renamed, a symbol added or made weak, a function that stops being one — resolves and
//! prepares everything, as a first link does.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::input::InputObject;
use crate::prepare::{
    AtomKey, ExportRef, InterfaceDef, PrepareError, Prepared, check_paths, export_refs, interface,
    prepare_object,
};
use crate::resolve::{Globals, ResolveError, resolve};
use crate::tbd::DylibStub;

/// One object as last prepared.
#[derive(Debug)]
struct CachedObject {
    path: PathBuf,
    digest: [u8; 32],
    interface: Vec<(u32, String, InterfaceDef)>,
    exports: Vec<(String, ExportRef)>,
    /// Its atoms, equal literals not yet merged across objects.
    atoms: Vec<Arc<Prepared>>,
}

/// The previous update's resolution and prepared objects, in object order. Empty before the first update
/// and after a restore from saved state (then everything is prepared afresh).
#[derive(Debug, Clone, Default)]
pub(crate) struct PrepareCache {
    pub(crate) globals: Option<Arc<Globals>>,
    objects: Vec<Arc<CachedObject>>,
}

/// Why resolution or preparation failed.
#[derive(Debug)]
pub(crate) enum PrepareFailure {
    Resolve(ResolveError),
    Prepare(PrepareError),
}

/// What [`PrepareCache::prepare`] produced.
pub(crate) struct PreparedProgram {
    pub(crate) globals: Arc<Globals>,
    /// Every atom to link, in object order then atom order, equal literals once.
    pub(crate) desired: Vec<Arc<Prepared>>,
    /// How many objects were prepared again (the rest were reused).
    pub(crate) prepared_objects: usize,
    /// Whether names were resolved again (rather than the previous resolution reused).
    pub(crate) resolved_again: bool,
    /// When the previous update's atoms were reused: the indices in `desired` of the atoms that may differ
    /// from the linked ones (those of objects prepared again, and literals, whose first object may have
    /// changed). `None`: any atom may differ.
    pub(crate) candidates: Option<Vec<usize>>,
    /// When the previous update's atoms were reused: the atoms of the objects prepared again that are not
    /// linked any more. `None`: any linked atom may be gone.
    pub(crate) stale: Option<Vec<AtomKey>>,
    /// The cache for the next update, to keep if this update succeeds.
    pub(crate) cache: PrepareCache,
}

impl PrepareCache {
    /// Resolves and prepares `objects`, reusing what the cache shows to be unchanged. The result is the same
    /// as resolving and preparing everything.
    pub(crate) fn prepare(
        &self,
        objects: &[InputObject],
        dylibs: &[DylibStub],
    ) -> Result<PreparedProgram, PrepareFailure> {
        let same_paths = self.globals.is_some()
            && self.objects.len() == objects.len()
            && self.objects.iter().zip(objects).all(|(c, o)| c.path == o.path);
        let changed: Vec<bool> = objects
            .iter()
            .enumerate()
            .map(|(o, object)| !same_paths || self.objects[o].digest != object.digest)
            .collect();
        let interfaces: Vec<Option<Vec<(u32, String, InterfaceDef)>>> = objects
            .iter()
            .zip(&changed)
            .map(|(object, &changed)| changed.then(|| interface(object)))
            .collect();
        let same_resolution = same_paths
            && interfaces
                .iter()
                .zip(&self.objects)
                .all(|(new, old)| new.as_ref().is_none_or(|new| *new == old.interface));
        let globals = match (&self.globals, same_resolution) {
            (Some(globals), true) => Arc::clone(globals),
            _ => {
                check_paths(objects).map_err(PrepareFailure::Prepare)?;
                Arc::new(resolve(objects, dylibs).map_err(PrepareFailure::Resolve)?)
            }
        };
        let exports: Vec<Option<Vec<(String, ExportRef)>>> = objects
            .iter()
            .zip(&changed)
            .map(|(object, &changed)| changed.then(|| export_refs(object)))
            .collect();
        let reuse = same_resolution
            && exports
                .iter()
                .zip(&self.objects)
                .all(|(new, old)| new.as_ref().is_none_or(|new| *new == old.exports));

        let mut cached = Vec::with_capacity(objects.len());
        let mut prepared_objects = 0;
        for (o, object) in objects.iter().enumerate() {
            if reuse && !changed[o] {
                cached.push(Arc::clone(&self.objects[o]));
                continue;
            }
            let atoms = prepare_object(objects, o, &globals).map_err(PrepareFailure::Prepare)?;
            prepared_objects += 1;
            cached.push(Arc::new(CachedObject {
                path: object.path.clone(),
                digest: object.digest,
                interface: interfaces[o].clone().unwrap_or_else(|| interface(object)),
                exports: exports[o].clone().unwrap_or_else(|| export_refs(object)),
                atoms: atoms.into_iter().map(Arc::new).collect(),
            }));
        }

        let mut desired = Vec::new();
        let mut candidates = Vec::new();
        let mut literals: HashSet<&AtomKey> = HashSet::new();
        for (o, entry) in cached.iter().enumerate() {
            for atom in &entry.atoms {
                let literal = matches!(atom.key, AtomKey::Literal { .. });
                if literal && !literals.insert(&atom.key) {
                    continue;
                }
                if changed[o] || literal {
                    candidates.push(desired.len());
                }
                desired.push(Arc::clone(atom));
            }
        }
        let stale = reuse.then(|| {
            let mut stale = Vec::new();
            for (o, old) in self.objects.iter().enumerate().filter(|&(o, _)| changed[o]) {
                // With the same resolution, a global is still defined by the same object, and a local or
                // anonymous atom's identity names its object: only a literal can now come from elsewhere.
                let kept: HashSet<&AtomKey> = cached[o].atoms.iter().map(|a| &a.key).collect();
                stale.extend(
                    old.atoms
                        .iter()
                        .map(|a| &a.key)
                        .filter(|k| !kept.contains(k) && !literals.contains(k))
                        .cloned(),
                );
            }
            stale
        });
        let candidates = reuse.then_some(candidates);
        let cache = PrepareCache { globals: Some(Arc::clone(&globals)), objects: cached };
        Ok(PreparedProgram {
            globals,
            desired,
            prepared_objects,
            resolved_again: !same_resolution,
            candidates,
            stale,
            cache,
        })
    }
}
