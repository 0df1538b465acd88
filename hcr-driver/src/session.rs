//! `hcr run`: one program, built, launched and kept up to date while it runs.
//!
//! A hot update is the contract's sequence: compile what changed (the program keeps running meanwhile); suspend
//! it; scan its threads for code they are in or may return into; link with that liveness, so busy functions
//! move instead of being overwritten; resolve new imports in the process; write the new file through a new
//! inode; write code and constant data, then data fixes, then the cells that publish them (`apply.rs` checks the
//! order and that no write touches live code, and flushes and verifies each code chunk); commit; resume. Any
//! failure before the first write to the process leaves the process, the file and the link state as they were;
//! a failure during the writes leaves the process stopped, never half-patched and running.

use std::path::Path;
use std::time::{Duration, Instant};

use got_linker::{Patch, WriteKind};
use mach_task::{Task, TaskError};
use macho_layout::Section;
use serde_json::{Value, json};

use crate::apply::{ApplyError, MemWrite, apply};
use crate::build::{BuildError, Linked, Project};
use crate::liveness::LiveCode;
use crate::protocol::ErrorKind;
use crate::report::{GlobalReset, MoveReason, Moved, Timings, UpdateReport, Writes};

/// A running program hcr can patch.
pub trait Target {
    type Task: Task + ?Sized;
    fn task(&self) -> &Self::Task;
    /// The ASLR slide: runtime address minus link-time address.
    fn slide(&self) -> u64;
    /// `None` while the program runs; how it ended otherwise (reaping it if it just ended).
    fn exit_status(&mut self) -> Option<String>;
    /// The runtime address of a library symbol (C name with its leading underscore), for a new import.
    fn resolve_import(&self, symbol: &str) -> Option<u64>;
    /// Stops the program for good.
    fn kill(&mut self);
}

/// Starts programs.
pub trait Launcher {
    type Target: Target;
    fn launch(&mut self, exe: &Path, args: &[String], aslr: bool) -> anyhow::Result<Self::Target>;
}

/// A failed session command: what kind of failure (for the control protocol) and what to tell the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SessionError {
    pub kind: ErrorKind,
    pub message: String,
}

impl SessionError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> SessionError {
        SessionError { kind, message: message.into() }
    }
}

impl From<BuildError> for SessionError {
    fn from(e: BuildError) -> SessionError {
        let kind = match e {
            BuildError::Compile(_) => ErrorKind::Compile,
            BuildError::Link(_) | BuildError::Input(_) => ErrorKind::Link,
            BuildError::Other(_) => ErrorKind::Internal,
        };
        SessionError::new(kind, e.to_string())
    }
}

fn internal(e: impl std::fmt::Display) -> SessionError {
    SessionError::new(ErrorKind::Internal, format!("{e:#}"))
}

fn task_error(what: &str, e: TaskError) -> SessionError {
    SessionError::new(ErrorKind::Patch, format!("{what}: {e}"))
}

/// One program under hcr.
pub struct Session<L: Launcher> {
    project: Project,
    launcher: L,
    target: Option<L::Target>,
    /// Whether the end of the current program was already announced.
    end_announced: bool,
    args: Vec<String>,
    aslr: bool,
    last_report: Option<UpdateReport>,
}

impl<L: Launcher> std::fmt::Debug for Session<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("out", &self.project.options.out)
            .field("running", &self.target.is_some())
            .field("aslr", &self.aslr)
            .finish()
    }
}

impl<L: Launcher> Session<L> {
    pub fn new(project: Project, launcher: L, args: Vec<String>, aslr: bool) -> Session<L> {
        Session { project, launcher, target: None, end_announced: false, args, aslr, last_report: None }
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The running program, if any.
    pub fn target(&self) -> Option<&L::Target> {
        self.target.as_ref()
    }

    /// Recompiles and relinks the file only (`update`).
    pub fn update(&mut self) -> Result<UpdateReport, SessionError> {
        let started = Instant::now();
        let objects = self.project.compile()?;
        let linked = self.project.link(objects, &got_linker::NothingLive)?;
        let write_started = Instant::now();
        if let Err(e) = self.project.write_file(&linked) {
            self.project.abandon(linked);
            return Err(SessionError::new(ErrorKind::File, format!("{e:#}")));
        }
        let write_file = write_started.elapsed();
        let report = report(&linked, None, write_file, Duration::ZERO);
        self.project.commit(linked).map_err(internal)?;
        tracing::debug!(total = ?started.elapsed(), "update");
        self.last_report = Some(report.clone());
        Ok(report)
    }

    /// Launches the program (again): the one on disk, as it is now.
    pub fn run(&mut self) -> Result<(), SessionError> {
        if let Some(mut old) = self.target.take() {
            old.kill();
        }
        let target =
            self.launcher.launch(&self.project.options.out, &self.args, self.aslr).map_err(internal)?;
        self.target = Some(target);
        self.end_announced = false;
        Ok(())
    }

    /// `update`, then `run`.
    pub fn update_and_run(&mut self) -> Result<UpdateReport, SessionError> {
        let report = self.update()?;
        self.run()?;
        Ok(report)
    }

    /// Recompiles, relinks and patches the running program (`hot-update`).
    pub fn hot_update(&mut self) -> Result<UpdateReport, SessionError> {
        let Some(target) = self.target.as_mut() else {
            return Err(SessionError::new(ErrorKind::NoProcess, "no program is running (use `run`)"));
        };
        if let Some(status) = target.exit_status() {
            return Err(SessionError::new(ErrorKind::NoProcess, format!("the program has ended: {status}")));
        }
        let target = &*target;
        // Compile while the program runs; it is suspended only for the link and the writes.
        let objects = self.project.compile()?;
        let task = target.task();
        let slide = target.slide();
        let suspended_at = Instant::now();
        let suspended = task.suspend().map_err(|e| task_error("suspending the program", e))?;
        let text = self.project.linker().image().section_range(Section::Text);
        let live = LiveCode::scan(task, text.start.0 + slide..text.end.0 + slide, slide)
            .map_err(|e| task_error("reading the program's threads", e))?;
        let mut linked = self.project.link(objects, &live)?;
        // New imports are bound with the other cell stores: after the code and data that may use them (the
        // order `apply` checks), before the cells that publish that code.
        let binds = match import_binds(&linked.patch, target) {
            Ok(binds) => binds,
            Err(e) => {
                self.project.abandon(linked);
                return Err(e);
            }
        };
        // The patch's writes are taken, not copied: the report and the file need only its summary and bytes.
        let mut writes = std::mem::take(&mut linked.patch.writes);
        let first_cell = writes.iter().position(|w| w.kind == WriteKind::Cell).unwrap_or(writes.len());
        writes.splice(first_cell..first_cell, binds);
        let write_started = Instant::now();
        if let Err(e) = self.project.write_file(&linked) {
            self.project.abandon(linked);
            return Err(SessionError::new(ErrorKind::File, format!("{e:#}")));
        }
        let write_file = write_started.elapsed();
        let stats = match apply(suspended, &live, slide, &writes) {
            Ok(stats) => stats,
            Err(e @ ApplyError::Partial { .. }) => {
                // The file and the link state describe the new program; the process is stopped between the two.
                self.project.commit(linked).map_err(internal)?;
                return Err(SessionError::new(
                    ErrorKind::Patch,
                    format!("{e}; the program is left stopped (use `run` to start the new version)"),
                ));
            }
            Err(e) => {
                // Refused before any write: the process is as it was (and resumed). Put the file back too.
                self.project.abandon(linked);
                self.project.restore_file().map_err(internal)?;
                return Err(SessionError::new(ErrorKind::Patch, e.to_string()));
            }
        };
        // The time the program spent stopped, less the link and the file, which do not touch it.
        let patch_process = suspended_at.elapsed().saturating_sub(linked.link_time + write_file);
        let report = report(&linked, Some(stats), write_file, patch_process);
        self.project.commit(linked).map_err(internal)?;
        self.last_report = Some(report.clone());
        Ok(report)
    }

    /// Re-applies a global's initializer in the running program (`reset NAME`).
    pub fn reset(&mut self, name: &str) -> Result<(), SessionError> {
        let symbol = if name.starts_with('_') { name.to_string() } else { format!("_{name}") };
        let Some(target) = self.target.as_ref() else {
            return Err(SessionError::new(ErrorKind::NoProcess, "no program is running"));
        };
        let Some(write) = self.project.linker().initializer(&symbol) else {
            return Err(SessionError::new(
                ErrorKind::BadRequest,
                format!("{symbol} is not a global of the program"),
            ));
        };
        let task = target.task();
        let suspended = task.suspend().map_err(|e| task_error("suspending the program", e))?;
        apply(suspended, &LiveCode::default(), target.slide(), &[write])
            .map_err(|e| SessionError::new(ErrorKind::Patch, e.to_string()))?;
        Ok(())
    }

    /// The process, the link state and the last update, as JSON.
    pub fn status(&mut self) -> Value {
        let process = match &mut self.target {
            None => json!({"state": "not running"}),
            Some(t) => match t.exit_status() {
                None => json!({"state": "running", "slide": t.slide()}),
                Some(status) => json!({"state": "exited", "status": status}),
            },
        };
        json!({
            "process": process,
            "executable": self.project.options.out.display().to_string(),
            "updates": self.project.linker().updates(),
            "last_update": self.last_report,
        })
    }

    /// The image's map (`layout [SYMBOL]`).
    pub fn layout(&self, symbol: Option<&str>) -> String {
        match macho_layout::read::read_map(self.project.linker().file()) {
            Ok(map) => crate::layout_view::text(&map, symbol),
            Err(e) => format!("the image cannot be read back: {e}\n"),
        }
    }

    /// How the program ended, the first time this is asked after it ended.
    pub fn newly_ended(&mut self) -> Option<String> {
        let status = self.target.as_mut()?.exit_status()?;
        if std::mem::replace(&mut self.end_announced, true) { None } else { Some(status) }
    }

    /// Stops the program and saves the link state, so that the next `hcr build` or `hcr run` continues
    /// incrementally.
    pub fn stop(&mut self) {
        if let Some(mut target) = self.target.take() {
            target.kill();
        }
        if let Err(e) = self.project.save_state() {
            eprintln!("hcr: saving the link state: {e:#} (the next build links from scratch)");
        }
    }
}

/// The stores that bind new imports in the running program: the library's address, already a runtime address.
fn import_binds<T: Target>(patch: &Patch, target: &T) -> Result<Vec<MemWrite>, SessionError> {
    patch
        .new_imports
        .iter()
        .map(|i| {
            let addr = target.resolve_import(&i.symbol).ok_or_else(|| {
                SessionError::new(
                    ErrorKind::Link,
                    format!("{} is not exported by {} in the running program", i.symbol, i.dylib),
                )
            })?;
            Ok(MemWrite {
                kind: WriteKind::Cell,
                addr: i.cell,
                bytes: addr.to_le_bytes().to_vec(),
                pointers: Vec::new(),
                what: format!("{} (import)", i.symbol),
            })
        })
        .collect()
}

fn report(
    linked: &Linked,
    process: Option<Writes>,
    write_file: Duration,
    patch_process: Duration,
) -> UpdateReport {
    let s = &linked.patch.summary;
    let file_bytes: u64 = linked.patch.file_dirty.iter().map(|r| r.end - r.start).sum();
    let mut pages = std::collections::BTreeSet::new();
    for r in &linked.patch.file_dirty {
        pages.extend(r.start / 16384..r.end.div_ceil(16384));
    }
    UpdateReport {
        recompiled: linked.compiled.iter().map(|p| display_name(p)).collect(),
        added: s.added.clone(),
        changed_in_place: s.changed_in_place.clone(),
        moved: s
            .moved
            .iter()
            .map(|m| Moved {
                symbol: m.name.clone(),
                from: m.from,
                to: m.to,
                reason: match m.reason {
                    got_linker::patch::MoveReason::Grew => MoveReason::Grew,
                    got_linker::patch::MoveReason::Live => MoveReason::Live,
                },
            })
            .collect(),
        removed: s.removed.clone(),
        globals_kept: s.globals_kept.clone(),
        globals_reset: s
            .globals_reset
            .iter()
            .map(|g| GlobalReset { symbol: g.clone(), reason: "its size or alignment changed".into() })
            .collect(),
        new_imports: s.new_imports.clone(),
        cells_rewritten: s.cells.len() as u32,
        process,
        file: Writes {
            writes: linked.patch.file_dirty.len() as u32,
            bytes: file_bytes,
            pages: pages.len() as u32,
        },
        timings: Timings {
            compile: linked.compile_time,
            parse: linked.parse_time,
            diff: Duration::ZERO,
            relocate: linked.link_time,
            write_file,
            patch_process,
        },
    }
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The running program in darwin-sim.
#[cfg(feature = "sim")]
pub mod sim {
    use super::*;

    /// Launches programs in the simulator, their output passed through to hcr's.
    #[derive(Debug, Default)]
    pub struct SimLauncher;

    /// A program running in the simulator.
    pub struct SimTarget(pub darwin_sim::Process);

    impl std::fmt::Debug for SimTarget {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SimTarget").field("pid", &self.0.pid()).field("slide", &self.0.slide()).finish()
        }
    }

    impl Launcher for SimLauncher {
        type Target = SimTarget;

        fn launch(&mut self, exe: &Path, args: &[String], aslr: bool) -> anyhow::Result<SimTarget> {
            let options = darwin_sim::RunOptions { aslr, echo: true, ..darwin_sim::RunOptions::default() };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let process = darwin_sim::Process::spawn(exe, &args, &options)?;
            process.start()?;
            Ok(SimTarget(process))
        }
    }

    impl Target for SimTarget {
        type Task = darwin_sim::Process;

        fn task(&self) -> &darwin_sim::Process {
            &self.0
        }

        fn slide(&self) -> u64 {
            self.0.slide()
        }

        fn exit_status(&mut self) -> Option<String> {
            self.0.status().map(|s| match s {
                darwin_sim::ExitStatus::Exited(code) => format!("exited with status {code}"),
                darwin_sim::ExitStatus::Signaled { signal, reason } => {
                    format!("killed by signal {signal} (abnormal exit): {reason}")
                }
            })
        }

        fn resolve_import(&self, symbol: &str) -> Option<u64> {
            self.0.libsystem_address(symbol)
        }

        fn kill(&mut self) {
            self.0.kill();
        }
    }

    /// A session whose programs run in the simulator.
    pub type SimSession = Session<SimLauncher>;
}

/// The running program as a real macOS process, patched through its task port.
#[cfg(target_os = "macos")]
pub mod mach {
    use mach_task::{Child, MachTask, Spawn};

    use super::*;

    /// The address hcr links executables at (`__TEXT`), from which the slide is measured.
    const TEXT_VMADDR: u64 = macho_layout::IMAGE_BASE.0;

    /// Spawns programs suspended, finds their slide and task port, and lets them run; their output goes
    /// straight to hcr's.
    #[derive(Debug, Default)]
    pub struct MachLauncher;

    /// A program running as a child of hcr.
    #[derive(Debug)]
    pub struct MachTarget {
        child: Child,
        slide: u64,
    }

    impl Launcher for MachLauncher {
        type Target = MachTarget;

        fn launch(&mut self, exe: &Path, args: &[String], aslr: bool) -> anyhow::Result<MachTarget> {
            let mut spawn = Spawn::new(exe);
            spawn.args(args).disable_aslr(!aslr);
            let mut child = spawn.spawn()?;
            if child.code_signing_flags()?.modified_code_is_fatal() {
                anyhow::bail!(
                    "{} runs with the hardened runtime, which kills a process whose code is modified; \
                     hcr-linked executables are signed ad hoc without it",
                    exe.display()
                );
            }
            let slide = child.slide(TEXT_VMADDR)? as u64;
            child.resume()?;
            Ok(MachTarget { child, slide })
        }
    }

    impl Target for MachTarget {
        type Task = MachTask;

        fn task(&self) -> &MachTask {
            self.child.task()
        }

        fn slide(&self) -> u64 {
            self.slide
        }

        fn exit_status(&mut self) -> Option<String> {
            match self.child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(status.to_string()),
                Err(e) => Some(format!("unknown ({e})")),
            }
        }

        fn resolve_import(&self, symbol: &str) -> Option<u64> {
            mach_task::dylib::shared_cache_symbol(symbol.strip_prefix('_')?)
        }

        fn kill(&mut self) {
            // Already gone is fine: the program is stopped either way.
            let _ = self.child.kill();
        }
    }
}
