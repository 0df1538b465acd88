//! Faults during a hot update: the executable cannot be rewritten, the program dies in the middle of the writes.
//! Each is reported, nothing is half-applied, and the session keeps serving.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use darwin_sim::{Process, RunOptions, Stream};
use hcr_driver::build::{BuildOptions, Project, Sdk};
use hcr_driver::protocol::ErrorKind;
use hcr_driver::session::{Launcher, Session, Target};
use mach_task::{Region, Task, TaskError, ThreadState, VmProt};

const MAIN: &str = r#"#include <stdio.h>
#include <unistd.h>

int tick(int n);

int main(void) {
    for (int i = 0; i < 1000000; i++) {
        printf("tick %d\n", tick(i));
        fflush(stdout);
        usleep(5000);
    }
    return 0;
}
"#;

/// A simulated program whose task can be told to kill it at its next write, as a program that crashes while
/// hcr is patching it.
struct Fragile {
    process: Process,
    die_at_next_write: AtomicBool,
}

impl Task for Fragile {
    fn pid(&self) -> u32 {
        self.process.pid()
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), TaskError> {
        self.process.read(addr, buf)
    }
    fn write_raw(&self, addr: u64, bytes: &[u8]) -> Result<(), TaskError> {
        if self.die_at_next_write.swap(false, Ordering::SeqCst) {
            self.process.kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.process.status().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.process.write_raw(addr, bytes)
    }
    fn protect(&self, addr: u64, size: u64, prot: VmProt) -> Result<(), TaskError> {
        self.process.protect(addr, size, prot)
    }
    fn region(&self, addr: u64) -> Result<Option<Region>, TaskError> {
        self.process.region(addr)
    }
    fn suspend_raw(&self) -> Result<(), TaskError> {
        self.process.suspend_raw()
    }
    fn resume_raw(&self) -> Result<(), TaskError> {
        self.process.resume_raw()
    }
    fn threads(&self) -> Result<Vec<ThreadState>, TaskError> {
        self.process.threads()
    }
    fn flush_icache(&self, addr: u64, len: u64) -> Result<(), TaskError> {
        self.process.flush_icache(addr, len)
    }
}

impl Target for Fragile {
    type Task = Fragile;
    fn task(&self) -> &Fragile {
        self
    }
    fn slide(&self) -> u64 {
        self.process.slide()
    }
    fn exit_status(&mut self) -> Option<String> {
        self.process.status().map(|s| s.to_string())
    }
    fn resolve_import(&self, symbol: &str) -> Option<u64> {
        self.process.libsystem_address(symbol)
    }
    fn kill(&mut self) {
        self.process.kill();
    }
}

struct FragileLauncher;

impl Launcher for FragileLauncher {
    type Target = Fragile;
    fn launch(&mut self, exe: &Path, args: &[String], aslr: bool) -> anyhow::Result<Fragile> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::spawn(exe, &args, &RunOptions { aslr, ..RunOptions::default() })?;
        process.start()?;
        Ok(Fragile { process, die_at_next_write: AtomicBool::new(false) })
    }
}

fn session(dir: &Path, out: &Path) -> Session<FragileLauncher> {
    std::fs::write(dir.join("main.c"), MAIN).unwrap();
    std::fs::write(dir.join("tick.c"), "int tick(int n) { return 1; }\n").unwrap();
    let options = BuildOptions {
        out: out.to_path_buf(),
        inputs: vec![dir.join("main.c"), dir.join("tick.c")],
        flags: vec!["-O0".into()],
        sdk: Sdk::locate(None).unwrap(),
        cc: None,
    };
    let mut session = Session::new(Project::open(options).unwrap(), FragileLauncher, Vec::new(), true);
    session.update().unwrap();
    session.run().unwrap();
    session
}

/// Waits until the program printed `line` after the first `from` bytes of its stdout.
fn wait_for(process: &Process, line: &str, from: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = String::from_utf8_lossy(&process.output().contents(Stream::Stdout)).into_owned();
        if let Some(at) = out.get(from..).and_then(|rest| rest.find(line)) {
            return from + at + line.len();
        }
        assert!(Instant::now() < deadline, "never printed {line:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stdout_len(process: &Process) -> usize {
    process.output().contents(Stream::Stdout).len()
}

#[test]
fn an_executable_that_cannot_be_rewritten_leaves_the_program_and_the_link_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("prog");
    let mut session = session(dir.path(), &exe);
    let process = &session.target().unwrap().process;
    wait_for(process, "tick 1\n", 0);
    let updates = session.project().linker().updates();

    // Something else took the executable's name (a folder now): rewriting it fails before anything is written
    // to the program.
    std::fs::remove_file(&exe).unwrap();
    std::fs::create_dir(&exe).unwrap();
    std::fs::write(dir.path().join("tick.c"), "int tick(int n) { return 2; }\n").unwrap();
    let err = session.hot_update().expect_err("the file cannot be written");
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert!(err.message.contains("prog"), "{err}");
    assert_eq!(session.project().linker().updates(), updates);
    let process = &session.target().unwrap().process;
    let mark = stdout_len(process);
    wait_for(process, "tick 1\n", mark);

    // The name is free again: the same edit applies, and the executable is written whole.
    std::fs::remove_dir(&exe).unwrap();
    session.hot_update().unwrap();
    let process = &session.target().unwrap().process;
    let mark = stdout_len(process);
    wait_for(process, "tick 2\n", mark);
    assert!(std::fs::metadata(&exe).unwrap().is_file());
}

#[test]
fn a_program_that_dies_during_the_writes_is_reported_and_can_be_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = session(dir.path(), &dir.path().join("prog"));
    wait_for(&session.target().unwrap().process, "tick 1\n", 0);

    std::fs::write(dir.path().join("tick.c"), "int tick(int n) { return 3; }\n").unwrap();
    session.target().unwrap().die_at_next_write.store(true, Ordering::SeqCst);
    let err = session.hot_update().expect_err("the program died under the update");
    assert_eq!(err.kind, ErrorKind::Patch, "{err}");
    assert!(session.newly_ended().is_some());
    // The file holds the new program: launched again, it runs the edit.
    session.run().unwrap();
    wait_for(&session.target().unwrap().process, "tick 3\n", 0);
    // And the session goes on updating it.
    std::fs::write(dir.path().join("tick.c"), "int tick(int n) { return 4; }\n").unwrap();
    session.hot_update().unwrap();
    let process = &session.target().unwrap().process;
    let mark = stdout_len(process);
    wait_for(process, "tick 4\n", mark);
}
