//! Which translation units must be recompiled.
//!
//! Each translation unit remembers the content hash of every file its last compile read (the source and the
//! headers from its depfile). A unit is stale when its object is missing or any of those files changed. Content
//! hashes rather than modification times: editors touch files without changing them, and a save that restores
//! the old text must not trigger a rebuild — an update that changes nothing should be free.
//!
//! The graph is persisted as JSON beside the executable, so that the next `hcr build` is incremental too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compile::Compiled;

/// The SHA-256 of a file's contents, hex-encoded, or `None` if it cannot be read (deleted, renamed away).
pub fn hash_file(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// What a file's metadata said when it was hashed. While it still says the same, the file is taken as unchanged
/// without reading it, as git's index does: every update checks every input of every unit, and the headers most
/// units share would otherwise be read and hashed once per unit, per update. A file modified within
/// [`RACY_NS`] before it was recorded is always read again, since a second change could share its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    len: u64,
    mtime_ns: u64,
    ino: u64,
    recorded_ns: u64,
}

/// How long after a file's modification its stamp becomes trustworthy (timestamps on some file systems are
/// coarse: HFS+ has whole seconds).
const RACY_NS: u64 = 2_000_000_000;

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Stamp {
    /// The file's stamp now, if it exists.
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: meta.len(),
            mtime_ns: nanos(meta.modified().ok()?),
            ino: meta.ino(),
            recorded_ns: nanos(SystemTime::now()),
        })
    }

    /// Whether `now` shows the same file as this stamp, and this stamp can be trusted for it.
    fn vouches_for(&self, now: &Stamp) -> bool {
        (self.len, self.mtime_ns, self.ino) == (now.len, now.mtime_ns, now.ino)
            && self.recorded_ns.saturating_sub(self.mtime_ns) >= RACY_NS
    }
}

/// What one staleness check learnt about each file, so that a header many units include is looked at once.
#[derive(Default)]
struct Seen {
    stamps: HashMap<PathBuf, Option<Stamp>>,
    hashes: HashMap<PathBuf, Option<String>>,
}

/// What the last successful compile of one translation unit read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub object: PathBuf,
    /// Every file the compile read, with its content hash at that time.
    pub inputs: BTreeMap<PathBuf, String>,
    /// The inputs' stamps, taken just before they were hashed.
    #[serde(default)]
    pub stamps: BTreeMap<PathBuf, Stamp>,
    /// The flags it was compiled with; a change of flags makes it stale.
    pub flags: Vec<String>,
}

/// The translation units of a program and what each one read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildGraph {
    units: BTreeMap<PathBuf, Unit>,
}

impl BuildGraph {
    /// Loads a graph saved by [`BuildGraph::save`]; a missing file is an empty graph (everything is stale), and
    /// so is a file this version cannot read (a stale graph only costs a full rebuild).
    pub fn load(path: &Path) -> BuildGraph {
        std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
    }

    /// Saves the graph through a new file renamed into place, so a crash never leaves half a graph.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        crate::exe_file::write_new_inode(path, &json, 0o644)
    }

    /// The sources (of `sources`) that must be recompiled with `flags`: new ones, ones whose object is gone,
    /// ones compiled with other flags, and ones any of whose inputs changed.
    /// A file is read only when its stamp cannot vouch for it, and then once per call however many units
    /// include it; a file read and found unchanged gets a fresh stamp, which vouches for it once it has settled.
    pub fn stale(&mut self, sources: &[PathBuf], flags: &[String]) -> Vec<PathBuf> {
        let mut seen = Seen::default();
        sources.iter().filter(|source| self.is_stale(source, flags, &mut seen)).cloned().collect()
    }

    fn is_stale(&mut self, source: &Path, flags: &[String], seen: &mut Seen) -> bool {
        let Some(unit) = self.units.get_mut(source) else { return true };
        if unit.flags != flags || !unit.object.exists() {
            return true;
        }
        let hashes = &mut seen.hashes;
        for (path, hash) in &unit.inputs {
            let now = *seen.stamps.entry(path.clone()).or_insert_with(|| Stamp::of(path));
            if unit.stamps.get(path).zip(now.as_ref()).is_some_and(|(then, now)| then.vouches_for(now)) {
                continue;
            }
            if hashes.entry(path.clone()).or_insert_with(|| hash_file(path)).as_deref() != Some(hash.as_str())
            {
                return true;
            }
            // Read and unchanged. (A change between the stamp and the read shows in the next stamp.)
            if let Some(now) = now {
                unit.stamps.insert(path.clone(), now);
            }
        }
        false
    }

    /// Records a successful compile. The inputs are hashed now; a file that changed while clang was reading it
    /// is then seen as changed by the next [`BuildGraph::stale`], which errs on the side of recompiling.
    pub fn record(&mut self, compiled: &Compiled, flags: &[String]) {
        let mut inputs = BTreeMap::new();
        let mut stamps = BTreeMap::new();
        for path in &compiled.deps {
            // Stamp first: a change while the file is read then shows in its stamp.
            let stamp = Stamp::of(path);
            let Some(hash) = hash_file(path) else { continue };
            inputs.insert(path.clone(), hash);
            if let Some(stamp) = stamp {
                stamps.insert(path.clone(), stamp);
            }
        }
        let unit = Unit { object: compiled.object.clone(), inputs, stamps, flags: flags.to_vec() };
        self.units.insert(compiled.source.clone(), unit);
    }

    /// Forgets translation units that are no longer part of the program.
    pub fn retain_sources(&mut self, sources: &[PathBuf]) {
        let keep: BTreeSet<&PathBuf> = sources.iter().collect();
        self.units.retain(|source, _| keep.contains(source));
    }

    /// The object of every known translation unit, in source order.
    pub fn objects(&self) -> impl Iterator<Item = &Path> {
        self.units.values().map(|u| u.object.as_path())
    }

    /// Every file any translation unit read: what `--watch` watches.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let files: BTreeSet<&PathBuf> = self.units.values().flat_map(|u| u.inputs.keys()).collect();
        files.into_iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::compile::{Toolchain, compile};

    /// A program of two translation units sharing one header, compiled once and recorded.
    struct Program {
        dir: tempfile::TempDir,
        main: PathBuf,
        util: PathBuf,
        header: PathBuf,
        graph: BuildGraph,
    }

    const FLAGS: &[&str] = &["-O1"];

    fn flags() -> Vec<String> {
        FLAGS.iter().map(|f| f.to_string()).collect()
    }

    fn build(dir: &Path, graph: &mut BuildGraph, sources: &[PathBuf]) {
        let toolchain = Toolchain::clang19(["-ffreestanding"]);
        let os_flags: Vec<std::ffi::OsString> = FLAGS.iter().map(Into::into).collect();
        for source in graph.stale(sources, &flags()) {
            let compiled = compile(&toolchain, &os_flags, &source, dir).unwrap();
            graph.record(&compiled, &flags());
        }
    }

    fn program() -> Program {
        let dir = tempfile::tempdir().unwrap();
        let header = dir.path().join("shared.h");
        let main = dir.path().join("main.c");
        let util = dir.path().join("util.c");
        fs::write(&header, "#define SCALE 2\nint util(int);\n").unwrap();
        fs::write(&main, "#include \"shared.h\"\nint main(void) { return util(SCALE); }\n").unwrap();
        fs::write(&util, "int util(int x) { return x + 1; }\n").unwrap();
        let mut graph = BuildGraph::default();
        build(dir.path(), &mut graph, &[main.clone(), util.clone()]);
        Program { dir, main, util, header, graph }
    }

    #[test]
    fn nothing_is_stale_after_a_build() {
        let mut p = program();
        assert_eq!(p.graph.stale(&[p.main.clone(), p.util.clone()], &flags()), [] as [PathBuf; 0]);
        assert_eq!(p.graph.objects().count(), 2);
    }

    #[test]
    fn editing_a_header_makes_exactly_its_users_stale() {
        let mut p = program();
        fs::write(&p.header, "#define SCALE 3\nint util(int);\n").unwrap();
        assert_eq!(p.graph.stale(&[p.main.clone(), p.util.clone()], &flags()), std::slice::from_ref(&p.main));
    }

    #[test]
    fn touching_without_changing_or_restoring_the_text_is_not_a_change() {
        let mut p = program();
        let text = fs::read_to_string(&p.util).unwrap();
        fs::write(&p.util, "int util(int x) { return x + 2; }\n").unwrap();
        assert_eq!(p.graph.stale(std::slice::from_ref(&p.util), &flags()), std::slice::from_ref(&p.util));
        fs::write(&p.util, text).unwrap();
        assert!(p.graph.stale(std::slice::from_ref(&p.util), &flags()).is_empty());
    }

    /// Writes `text` into `path` in place (same inode) and gives it the modification time `mtime`.
    fn write_at(path: &Path, text: &str, mtime: SystemTime) {
        let file = fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
        std::io::Write::write_all(&mut &file, text.as_bytes()).unwrap();
        file.set_modified(mtime).unwrap();
    }

    #[test]
    fn a_settled_stamp_vouches_for_a_file_and_a_fresh_one_does_not() {
        let mut p = program();
        let sources = [p.main.clone(), p.util.clone()];
        let text = fs::read_to_string(&p.header).unwrap();
        let edited = text.replace("SCALE 2", "SCALE 3");
        assert_eq!(edited.len(), text.len());

        // Recorded right after its last change, the header's stamp is racy: an edit of the same size that keeps
        // the timestamp is still seen, because the header is read.
        let mtime = fs::metadata(&p.header).unwrap().modified().unwrap();
        write_at(&p.header, &edited, mtime);
        assert_eq!(p.graph.stale(&sources, &flags()), std::slice::from_ref(&p.main));

        // Back as recorded but with an old timestamp: the stamp no longer matches, so the header is read, found
        // unchanged, and stamped afresh; that stamp has settled, so from now on it vouches for the header, which
        // is not read any more. An edit that hides from the metadata then goes unseen (the price of not reading
        // every header at every update, which make and git's index pay too); an ordinary edit is seen.
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        write_at(&p.header, &text, old);
        assert!(p.graph.stale(&sources, &flags()).is_empty());
        write_at(&p.header, &edited, old);
        assert!(p.graph.stale(&sources, &flags()).is_empty());
        fs::write(&p.header, &edited).unwrap();
        assert_eq!(p.graph.stale(&sources, &flags()), std::slice::from_ref(&p.main));
    }

    #[test]
    fn new_sources_other_flags_and_missing_objects_are_stale() {
        let mut p = program();
        let new = p.dir.path().join("new.c");
        assert_eq!(p.graph.stale(std::slice::from_ref(&new), &flags()), [new]);
        assert_eq!(
            p.graph.stale(std::slice::from_ref(&p.util), &["-O2".to_string()]),
            std::slice::from_ref(&p.util)
        );
        let object = p.graph.units[&p.util].object.clone();
        fs::remove_file(object).unwrap();
        assert_eq!(p.graph.stale(std::slice::from_ref(&p.util), &flags()), std::slice::from_ref(&p.util));
    }

    #[test]
    fn survives_a_save_and_load_and_tolerates_garbage() {
        let mut p = program();
        let path = p.dir.path().join("graph.json");
        p.graph.save(&path).unwrap();
        assert_eq!(BuildGraph::load(&path), p.graph);
        assert_eq!(p.graph.watched_files(), {
            let mut files = vec![p.header.clone(), p.main.clone(), p.util.clone()];
            files.sort();
            files
        });

        p.graph.retain_sources(std::slice::from_ref(&p.main));
        assert_eq!(p.graph.objects().count(), 1);

        fs::write(&path, "{ not json").unwrap();
        assert_eq!(BuildGraph::load(&path), BuildGraph::default());
        assert_eq!(BuildGraph::load(&p.dir.path().join("absent.json")), BuildGraph::default());
    }
}
