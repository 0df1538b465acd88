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

/// Builds `options.out` from its inputs, incrementally when the state beside it allows.
pub fn build(options: &BuildOptions) -> anyhow::Result<Built> {
    let state = state_dir(&options.out);
    let objects_dir = state.join("objects");
    std::fs::create_dir_all(&objects_dir).with_context(|| format!("creating {}", objects_dir.display()))?;
    let graph_path = state.join("graph.json");
    let link_path = state.join("link.state");

    let (sources, given_objects): (Vec<PathBuf>, Vec<PathBuf>) =
        options.inputs.iter().cloned().partition(|p| p.extension().is_some_and(|e| e == "c"));
    let sources: Vec<PathBuf> = sources.iter().map(|s| std::path::absolute(s).unwrap_or(s.clone())).collect();
    let flags: Vec<String> = options.flags.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    let toolchain = options.sdk.toolchain(options.cc.as_deref());

    let mut graph = BuildGraph::load(&graph_path);
    graph.retain_sources(&sources);
    let stale = graph.stale(&sources, &flags);
    let mut compile_flags = options.flags.clone();
    compile_flags.push("-fno-asynchronous-unwind-tables".into());
    for source in &stale {
        let compiled = compile(&toolchain, &compile_flags, source, &objects_dir)?;
        graph.record(&compiled, &flags);
    }

    let mut object_paths: Vec<PathBuf> =
        sources.iter().map(|s| crate::compile::object_path(&objects_dir, s)).collect();
    object_paths.extend(given_objects);
    let objects = object_paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(parse_object(p, &bytes)?)
        })
        .collect::<anyhow::Result<Vec<InputObject>>>()?;

    let (mut linker, incremental) = match load_linker(&link_path, &options.out) {
        Some(linker) => (linker, true),
        None => {
            let ident = options.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (Linker::new(&ident, Some(GET_TASK_ALLOW), LayoutConfig::default(), options.sdk.dylibs()?), false)
        }
    };
    let patch = linker.update(&objects, &NothingLive)?;

    if incremental {
        let writes: Vec<exe_file::FileWrite<'_>> = patch
            .file_dirty
            .iter()
            .map(|r| exe_file::FileWrite {
                offset: r.start,
                bytes: &patch.file[r.start as usize..r.end as usize],
            })
            .collect();
        exe_file::patch(&options.out, patch.file.len() as u64, &writes)
    } else {
        exe_file::replace(&options.out, &patch.file)
    }
    .with_context(|| format!("writing {}", options.out.display()))?;
    save_linker(&link_path, &linker, &patch.file)?;
    graph.save(&graph_path).with_context(|| format!("writing {}", graph_path.display()))?;
    Ok(Built { compiled: stale, incremental, patch })
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
