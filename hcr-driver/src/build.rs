//! `hcr build`: compile what changed, link incrementally, write the executable through a new inode, and keep the
//! state beside it so the next build is incremental too.
//!
//! The state lives in `OUT.hcr/`: the objects (`objects/`), the build graph (`graph.json`: what each
//! translation unit read), and the linker's state (`link.state`, with the digest of the executable it
//! describes). The linker state is only used when the executable on disk is still the one it describes;
//! otherwise the link starts from the empty image, which is always correct, only slower.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use got_linker::input::{InputObject, parse_object};
use got_linker::tbd::{DylibStub, parse_tbd};
use got_linker::{Linker, NothingLive, Patch};
use macho_layout::LayoutConfig;
use sha2::{Digest as _, Sha256};

use crate::build_graph::BuildGraph;
use crate::compile::{Toolchain, compile};
use crate::exe_file;

/// The SDK a program is compiled and linked against: its headers and its `libSystem.tbd`.
#[derive(Debug, Clone)]
pub struct Sdk {
    pub root: PathBuf,
}

impl Sdk {
    /// `explicit` if given; else `$HCR_SDK`; on macOS the SDK `xcrun --show-sdk-path` names; elsewhere the sim SDK
    /// of this source tree (prototype headers for what `darwin-sim` implements).
    pub fn locate(explicit: Option<&Path>) -> anyhow::Result<Sdk> {
        if let Some(root) = explicit {
            return Ok(Sdk { root: root.to_path_buf() });
        }
        if let Some(root) = std::env::var_os("HCR_SDK") {
            return Ok(Sdk { root: root.into() });
        }
        if cfg!(target_os = "macos") {
            let out = std::process::Command::new("xcrun")
                .arg("--show-sdk-path")
                .output()
                .context("running `xcrun --show-sdk-path` (install the Xcode command line tools)")?;
            if !out.status.success() {
                bail!("`xcrun --show-sdk-path` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            return Ok(Sdk { root: String::from_utf8_lossy(&out.stdout).trim().into() });
        }
        let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim-sdk");
        if sim.join("usr/lib/libSystem.tbd").is_file() {
            return Ok(Sdk { root: sim });
        }
        bail!(
            "no SDK found: pass --sdk DIR (a folder with usr/include and usr/lib/libSystem.tbd) or set HCR_SDK"
        )
    }

    /// The libraries programs link against: libSystem.
    pub fn dylibs(&self) -> anyhow::Result<Vec<DylibStub>> {
        let path = self.root.join("usr/lib/libSystem.tbd");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(vec![parse_tbd(&path, &text)?])
    }

    /// The compiler for this SDK: `cc` if given, else clang-19 on Linux and the system clang on macOS.
    pub fn toolchain(&self, cc: Option<&Path>) -> Toolchain {
        let default = if cfg!(target_os = "macos") { "clang" } else { "clang-19" };
        Toolchain {
            cc: cc.map_or_else(|| PathBuf::from(default), Path::to_path_buf),
            target_args: vec![
                "--target=arm64-apple-macos13".into(),
                "-isysroot".into(),
                self.root.clone().into_os_string(),
            ],
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub out: PathBuf,
    /// C sources (`.c`) and objects (`.o`).
    pub inputs: Vec<PathBuf>,
    /// Flags for the compiler (`-I`, `-D`, `-O`, …).
    pub flags: Vec<OsString>,
    pub sdk: Sdk,
    pub cc: Option<PathBuf>,
}

/// What a build did.
#[derive(Debug)]
pub struct Built {
    /// Translation units compiled (the rest were up to date).
    pub compiled: Vec<PathBuf>,
    /// Whether the link continued from the saved state (else it started from the empty image).
    pub incremental: bool,
    pub patch: Patch,
}

/// The saved linker state and the digest of the executable it describes.
#[derive(serde::Deserialize)]
struct SavedLink {
    exe_digest: [u8; 32],
    linker: Linker,
}

/// The same, for saving without a copy of the linker.
#[derive(serde::Serialize)]
struct SavingLink<'a> {
    exe_digest: [u8; 32],
    linker: &'a Linker,
}

/// The folder beside `out` that holds the build state.
pub fn state_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(OsString::from).unwrap_or_else(|| "a.out".into());
    name.push(".hcr");
    out.with_file_name(name)
}

#[derive(Debug)]
/// A program being built: its options, what each translation unit read, and the linker with the image as it
/// is on disk. `hcr build` uses one for a single build; `hcr run` keeps one for the whole session.
pub struct Project {
    pub options: BuildOptions,
    graph: BuildGraph,
    linker: Linker,
    /// Whether `linker` continued from saved state (else it started from the empty image).
    pub restored: bool,
    state: PathBuf,
    /// The objects as last parsed, in link order, and what each file was then: an object whose file did not
    /// change is not read and parsed again.
    objects: Vec<InputObject>,
    stamps: Vec<(PathBuf, Stamp)>,
}

/// What identifies an object file's contents cheaply: its length and modification time. Objects hcr compiles
/// itself are parsed again whenever they are recompiled, whatever their stamp says.
type Stamp = (u64, Option<std::time::SystemTime>);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

#[derive(Debug)]
/// What compiling and linking produced, before anything is written.
pub struct Linked {
    /// Translation units compiled (the rest were up to date).
    pub compiled: Vec<PathBuf>,
    pub patch: Patch,
    /// Whether the update continued from an earlier one (else it wrote the whole file).
    pub incremental: bool,
    /// Time spent compiling, parsing objects, and linking.
    pub compile_time: std::time::Duration,
    pub parse_time: std::time::Duration,
    pub link_time: std::time::Duration,
}

/// The program's objects, compiled and parsed.
#[derive(Debug)]
pub struct Objects {
    /// Translation units compiled this time.
    pub compiled: Vec<PathBuf>,
    /// Objects read and parsed this time (the others were unchanged).
    pub parsed: usize,
    pub compile_time: std::time::Duration,
    pub parse_time: std::time::Duration,
}

/// Why a build step failed, sorted the way the control protocol reports it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Compile(#[from] crate::compile::CompileError),
    #[error(transparent)]
    Link(#[from] got_linker::LinkError),
    #[error(transparent)]
    Input(#[from] got_linker::InputError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl Project {
    /// Opens the program's state beside `options.out`, or starts afresh.
    pub fn open(options: BuildOptions) -> anyhow::Result<Project> {
        let state = state_dir(&options.out);
        let objects_dir = state.join("objects");
        std::fs::create_dir_all(&objects_dir)
            .with_context(|| format!("creating {}", objects_dir.display()))?;
        let graph = BuildGraph::load(&state.join("graph.json"));
        let (linker, restored) = match load_linker(&state.join("link.state"), &options.out) {
            Some(linker) => (linker, true),
            None => {
                let ident =
                    options.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (
                    Linker::new(&ident, Some(GET_TASK_ALLOW), LayoutConfig::default(), options.sdk.dylibs()?),
                    false,
                )
            }
        };
        Ok(Project { options, graph, linker, restored, state, objects: Vec::new(), stamps: Vec::new() })
    }

    /// The linker as of the last committed update.
    pub fn linker(&self) -> &Linker {
        &self.linker
    }

    fn sources(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let (sources, objects): (Vec<PathBuf>, Vec<PathBuf>) =
            self.options.inputs.iter().cloned().partition(|p| p.extension().is_some_and(|e| e == "c"));
        (sources.iter().map(|s| std::path::absolute(s).unwrap_or(s.clone())).collect(), objects)
    }

    fn flags(&self) -> Vec<String> {
        self.options.flags.iter().map(|f| f.to_string_lossy().into_owned()).collect()
    }

    /// Every file the program's translation units read (what `--watch` watches).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self.graph.watched_files();
        files.extend(self.sources().0);
        files.sort();
        files.dedup();
        files
    }

    /// Compiles what changed and parses every object. The build graph learns what was compiled; nothing else
    /// changes.
    pub fn compile(&mut self) -> Result<Objects, BuildError> {
        let _span = tracing::info_span!("compile").entered();
        let objects_dir = self.state.join("objects");
        let (sources, given_objects) = self.sources();
        let flags = self.flags();
        let toolchain = self.options.sdk.toolchain(self.options.cc.as_deref());
        let started = std::time::Instant::now();
        let mut graph = self.graph.clone();
        graph.retain_sources(&sources);
        let stale = graph.stale(&sources, &flags);
        let mut compile_flags = self.options.flags.clone();
        compile_flags.push("-fno-asynchronous-unwind-tables".into());
        for source in &stale {
            let compiled = compile(&toolchain, &compile_flags, source, &objects_dir)?;
            graph.record(&compiled, &flags);
        }
        let compile_time = started.elapsed();
        let started = std::time::Instant::now();
        let mut object_paths: Vec<PathBuf> =
            sources.iter().map(|s| crate::compile::object_path(&objects_dir, s)).collect();
        object_paths.extend(given_objects);
        let recompiled: Vec<PathBuf> =
            stale.iter().map(|s| crate::compile::object_path(&objects_dir, s)).collect();
        let mut previous: std::collections::HashMap<PathBuf, (Stamp, InputObject)> =
            std::mem::take(&mut self.stamps)
                .into_iter()
                .zip(std::mem::take(&mut self.objects))
                .map(|((path, stamp), object)| (path, (stamp, object)))
                .collect();
        let (mut objects, mut stamps, mut parsed) = (Vec::new(), Vec::new(), 0);
        for path in &object_paths {
            let now =
                stamp(path).ok_or_else(|| anyhow::anyhow!("reading {}: no such file", path.display()))?;
            let object = match previous.remove(path) {
                Some((then, object)) if then == now && !recompiled.contains(path) => object,
                _ => {
                    parsed += 1;
                    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                    parse_object(path, &bytes)?
                }
            };
            objects.push(object);
            stamps.push((path.clone(), now));
        }
        self.objects = objects;
        self.stamps = stamps;
        self.graph = graph;
        Ok(Objects { compiled: stale, parsed, compile_time, parse_time: started.elapsed() })
    }

    /// Links `objects` against the current image. The update stays pending: [`Project::commit`] makes it final
    /// once the caller has applied it where it must go, [`Project::abandon`] undoes it.
    pub fn link(&mut self, objects: Objects, live: &dyn got_linker::Liveness) -> Result<Linked, BuildError> {
        let incremental = self.linker.updates() > 0;
        let started = std::time::Instant::now();
        let patch = self.linker.update_pending(&self.objects, live)?;
        Ok(Linked {
            compiled: objects.compiled,
            patch,
            incremental,
            compile_time: objects.compile_time,
            parse_time: objects.parse_time,
            link_time: started.elapsed(),
        })
    }

    /// Undoes the link whose result could not be applied: the linker, and with it the file's contents, are as
    /// they were before [`Project::link`].
    pub fn abandon(&mut self, linked: Linked) {
        drop(linked);
        self.linker.rollback_pending();
    }

    /// [`Project::compile`], then [`Project::link`].
    pub fn compile_and_link(&mut self, live: &dyn got_linker::Liveness) -> Result<Linked, BuildError> {
        let objects = self.compile()?;
        self.link(objects, live)
    }

    /// Writes the new executable through a new inode (only the changed ranges when the file on disk is the one
    /// the previous update wrote).
    /// The executable as it was is kept as `OUT.hcr/previous`, for `hcr layout OUT --diff OUT.hcr/previous`;
    /// it is put there only once the new file is in place, so a write that fails (a full disk, a read-only
    /// folder) leaves both files as they were, and no temporary file behind.
    pub fn write_file(&self, linked: &Linked) -> anyhow::Result<()> {
        let file = self.linker.file();
        let patch = &linked.patch;
        let out = &self.options.out;
        let previous = self.state.join("previous");
        let kept = if linked.incremental && !patch.file_dirty.is_empty() && out.exists() {
            // The new file is a new inode renamed over `out`, so a hard link keeps the old one without a copy.
            let kept = self.state.join("previous.new");
            let _ = std::fs::remove_file(&kept);
            std::fs::hard_link(out, &kept)
                .or_else(|_| std::fs::copy(out, &kept).map(|_| ()))
                .with_context(|| format!("keeping the previous executable as {}", previous.display()))?;
            Some(kept)
        } else {
            None
        };
        let written = if linked.incremental && out.exists() {
            let writes: Vec<exe_file::FileWrite<'_>> = patch
                .file_dirty
                .iter()
                .map(|r| exe_file::FileWrite {
                    offset: r.start,
                    bytes: &file[r.start as usize..r.end as usize],
                })
                .collect();
            exe_file::patch(out, file.len() as u64, &writes)
        } else {
            exe_file::replace(out, file)
        }
        .with_context(|| format!("writing {}", out.display()));
        if let Some(kept) = kept {
            if written.is_err() {
                let _ = std::fs::remove_file(&kept);
            } else if let Err(e) = std::fs::rename(&kept, &previous) {
                // The new executable is in place: the update stands, only the diff view lacks its "before".
                let _ = std::fs::remove_file(&previous);
                let _ = std::fs::remove_file(&kept);
                eprintln!("hcr: keeping the previous executable as {}: {e}", previous.display());
            }
        }
        written
    }

    /// Puts the executable back as the link state describes it, after [`Project::write_file`] wrote an update that
    /// was then abandoned. The old file kept as `OUT.hcr/previous` is renamed back when it is exactly that (a
    /// rename needs no space, so this works on the full disk that may have caused the trouble); otherwise the
    /// link state's bytes are written again.
    pub fn restore_file(&self) -> anyhow::Result<()> {
        let out = &self.options.out;
        let previous = self.state.join("previous");
        let expected = self.linker.file();
        let kept_is_old = std::fs::read(&previous).is_ok_and(|bytes| bytes == expected);
        if kept_is_old && std::fs::rename(&previous, out).is_ok() {
            return Ok(());
        }
        exe_file::replace(out, expected).with_context(|| format!("putting back {}", out.display()))
    }

    /// Makes the update final and saves the build graph; [`Project::save_state`] saves the linker's state.
    pub fn commit(&mut self, linked: Linked) -> anyhow::Result<()> {
        drop(linked);
        self.linker.commit_pending();
        let graph_path = self.state.join("graph.json");
        self.graph.save(&graph_path).with_context(|| format!("writing {}", graph_path.display()))
    }

    /// Saves the linker's state beside the executable, so that the next hcr continues incrementally. It is
    /// only used while the executable is the one it describes (its digest is saved with it), so a state saved
    /// late, or not at all, costs a full link and never a wrong one. A session saves it when it ends rather
    /// than after every update: it is as large as the program.
    pub fn save_state(&self) -> anyhow::Result<()> {
        save_linker(&self.state.join("link.state"), &self.linker, self.linker.file())
    }
}

/// Builds `options.out` from its inputs, incrementally when the state beside it allows.
pub fn build(options: &BuildOptions) -> anyhow::Result<Built> {
    let mut project = Project::open(options.clone())?;
    let incremental = project.restored;
    let linked = project.compile_and_link(&NothingLive).map_err(anyhow::Error::from)?;
    if let Err(e) = project.write_file(&linked) {
        project.abandon(linked);
        return Err(e);
    }
    let (compiled, patch) = (linked.compiled.clone(), linked.patch.clone());
    project.commit(linked)?;
    project.save_state()?;
    Ok(Built { compiled, incremental, patch })
}

/// The entitlements hcr signs executables with, so that a debugger-entitled `hcr` may take their task port.
pub const GET_TASK_ALLOW: &str = macho_layout::codesign::GET_TASK_ALLOW_ENTITLEMENTS;

fn load_linker(path: &Path, out: &Path) -> Option<Linker> {
    let saved: SavedLink = postcard::from_bytes(&std::fs::read(path).ok()?).ok()?;
    let exe = std::fs::read(out).ok()?;
    if Sha256::digest(&exe).as_slice() != saved.exe_digest {
        return None;
    }
    let mut linker = saved.linker;
    linker.restore_file(exe);
    Some(linker)
}

fn save_linker(path: &Path, linker: &Linker, exe: &[u8]) -> anyhow::Result<()> {
    let saved = SavingLink { exe_digest: Sha256::digest(exe).into(), linker };
    let bytes = postcard::to_allocvec(&saved).context("encoding the linker state")?;
    exe_file::write_new_inode(path, &bytes, 0o644).with_context(|| format!("writing {}", path.display()))
}
