//! Faults during a hot update: the executable cannot be rewritten (its name taken, the disk full, its folder
//! read-only), the program dies in the middle of the writes. Each is reported, nothing is half-applied, and the
//! session keeps serving.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use darwin_sim::{Process, Stream};
use hcr_driver::build::{BuildOptions, Project, Sdk};
use hcr_driver::protocol::ErrorKind;
use hcr_driver::session::Session;

use crate::hooked::{HookedLauncher, Hooks};

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

/// Hooks that kill the program at its next write when told to, as a program that crashes while hcr is patching
/// it.
#[derive(Default)]
struct Fragile {
    die_at_next_write: AtomicBool,
}

impl Hooks for Fragile {
    fn before_write(&self, process: &Process, _addr: u64, _bytes: &[u8]) {
        if self.die_at_next_write.swap(false, Ordering::SeqCst) {
            process.kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while process.status().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

type FragileLauncher = HookedLauncher<Fragile>;

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
    let mut session =
        Session::new(Project::open(options).unwrap(), FragileLauncher::default(), Vec::new(), true);
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
    assert_eq!(err.kind, ErrorKind::File, "{err}");
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
    session.target().unwrap().hooks.die_at_next_write.store(true, Ordering::SeqCst);
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

/// The output directory fills up or turns read-only while `hcr run` serves. hcr runs as a user runs it, in a
/// mount namespace of its own whose output directory is a small tmpfs; the test reaches that tmpfs from outside
/// (through `/proc/PID/root`, and `nsenter` to remount it) to fill it or make it read-only between two updates.
/// The namespace, and its mounts with it, end with hcr, whatever happens to the test.
#[cfg(target_os = "linux")]
mod full_or_read_only {
    use std::collections::BTreeSet;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use darwin_sim::{Process, RunOptions};
    use sha2::{Digest, Sha256};

    use super::MAIN;

    /// What these tests need from the machine (CI runs them as root).
    const NEEDS: &str = "this test needs root (CAP_SYS_ADMIN) and util-linux's unshare, mount and nsenter, to give \
                         hcr a tmpfs of its own that the test can fill or remount read-only";

    /// Mounts a tmpfs on the output directory `$1` (and, if `$2` is `state`, another on `$1/prog.hcr`, so that
    /// the build state stays writable when the output directory is not), then runs the rest of the arguments.
    const SETUP: &str = r#"set -e
mount -t tmpfs -o size=8m hcr-out "$1"
if [ "$2" = state ]; then mkdir "$1/prog.hcr"; mount -t tmpfs -o size=8m hcr-state "$1/prog.hcr"; fi
shift 2
exec "$@""#;

    /// How long one request or one line of output may take.
    const PATIENCE: Duration = Duration::from_secs(20);

    /// `hcr run --backend sim --listen` in its own mount namespace, with `-o OUT/prog` on a tmpfs.
    struct Confined {
        child: Child,
        /// The folder of the sources and the socket (outside the tmpfs).
        src: PathBuf,
        /// The output directory, as hcr names it (inside the namespace).
        out_dir: PathBuf,
        /// hcr's stdout: what the program printed.
        output: Arc<Mutex<String>>,
        socket: BufReader<UnixStream>,
        next_id: u64,
    }

    /// Appends everything `from` yields to `sink` in the background, and to the test's stderr with `echo`.
    fn collect(
        mut from: impl Read + Send + 'static,
        sink: &Arc<Mutex<String>>,
        echo: bool,
    ) -> JoinHandle<()> {
        let sink = Arc::clone(sink);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                if echo {
                    eprint!("{text}");
                }
                sink.lock().unwrap().push_str(&text);
            }
        })
    }

    impl Confined {
        /// Writes the program's sources into `src` and starts hcr on them, its output directory `src/out` a
        /// tmpfs (and `src/out/prog.hcr` another, with `separate_state`). Returns once the socket answers.
        fn start(src: &Path, separate_state: bool) -> Confined {
            std::fs::write(src.join("main.c"), MAIN).unwrap();
            std::fs::write(src.join("tick.c"), "int tick(int n) { return 1; }\n").unwrap();
            let out_dir = src.join("out");
            std::fs::create_dir(&out_dir).unwrap();
            let socket_path = src.join("hcr.sock");
            let mut child = Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", SETUP, "sh"])
                .arg(&out_dir)
                .arg(if separate_state { "state" } else { "-" })
                .arg(env!("CARGO_BIN_EXE_hcr"))
                .args(["run", "--backend", "sim", "--listen"])
                .arg(format!("unix:{}", socket_path.display()))
                .arg("-o")
                .arg(out_dir.join("prog"))
                .args([src.join("main.c"), src.join("tick.c")])
                .current_dir(src)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("running unshare: {e}; {NEEDS}"));
            let output = Arc::new(Mutex::new(String::new()));
            collect(child.stdout.take().unwrap(), &output, false);
            // hcr's own messages are passed on to the test's stderr, and kept for when hcr cannot start.
            let errors = Arc::new(Mutex::new(String::new()));
            let errors_done = collect(child.stderr.take().unwrap(), &errors, true);
            let deadline = Instant::now() + Duration::from_secs(60);
            let stream = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let _ = errors_done.join();
                    panic!("hcr ended before it listened ({status}); {NEEDS}:\n{}", errors.lock().unwrap());
                }
                if let Ok(stream) = UnixStream::connect(&socket_path) {
                    break stream;
                }
                assert!(Instant::now() < deadline, "hcr never listened on {}", socket_path.display());
                std::thread::sleep(Duration::from_millis(50));
            };
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut socket = BufReader::new(stream);
            let mut greeting = String::new();
            socket.read_line(&mut greeting).unwrap();
            assert!(greeting.contains("\"event\":\"hello\""), "{greeting}");
            let hcr = Confined { child, src: src.to_path_buf(), out_dir, output, socket, next_id: 1 };
            // Nothing below may write to the real disk: the output directory must be hcr's tmpfs.
            let fs = Command::new("stat").args(["-f", "-c", "%T"]).arg(hcr.outside("")).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&fs.stdout).trim(), "tmpfs", "{NEEDS}");
            hcr
        }

        /// `path` inside the output directory, as seen from outside hcr's namespace.
        fn outside(&self, path: &str) -> PathBuf {
            let inside = self.out_dir.strip_prefix("/").expect("an absolute output directory");
            Path::new(&format!("/proc/{}/root", self.child.id())).join(inside).join(path)
        }

        /// Remounts `dir` (a mount point inside the namespace) with `how` (`ro` or `rw`).
        fn remount(&self, dir: &Path, how: &str) {
            let out = Command::new("nsenter")
                .args(["-t", &self.child.id().to_string(), "-m", "mount", "-o", &format!("remount,{how}")])
                .arg(dir)
                .output()
                .unwrap_or_else(|e| panic!("running nsenter: {e}; {NEEDS}"));
            assert!(
                out.status.success(),
                "remounting {} {how}: {}; {NEEDS}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        /// Sends one request and returns its response.
        fn request(&mut self, cmd: &str) -> serde_json::Value {
            let id = self.next_id;
            self.next_id += 1;
            writeln!(self.socket.get_mut(), "{{\"id\":{id},\"cmd\":\"{cmd}\"}}").unwrap();
            let mut response = String::new();
            self.socket
                .read_line(&mut response)
                .unwrap_or_else(|e| panic!("no response to {cmd} within {PATIENCE:?}: {e}"));
            let value: serde_json::Value = serde_json::from_str(&response)
                .unwrap_or_else(|e| panic!("the response to {cmd} is not JSON ({e}): {response:?}"));
            assert_eq!(value["id"], id, "{response}");
            value
        }

        /// Waits until the program printed `line` after the first `from` bytes of its output.
        fn wait_for(&self, line: &str, from: usize) {
            let deadline = Instant::now() + PATIENCE;
            loop {
                {
                    let out = self.output.lock().unwrap();
                    if out.get(from..).is_some_and(|rest| rest.contains(line)) {
                        return;
                    }
                    assert!(Instant::now() < deadline, "never printed {line:?} after byte {from}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        fn output_len(&self) -> usize {
            self.output.lock().unwrap().len()
        }

        /// The number of updates the link state has taken (asking also checks that hcr answers and that the
        /// program runs).
        fn updates(&mut self) -> u64 {
            let status = self.request("status");
            assert_eq!(status["ok"], true, "{status}");
            assert_eq!(status["report"]["process"]["state"], "running", "{status}");
            status["report"]["updates"].as_u64().unwrap_or_else(|| panic!("no update count: {status}"))
        }

        /// What the output directory holds now, and how many updates the link state has taken.
        fn snapshot(&mut self) -> Snapshot {
            Snapshot {
                exe: digest(&self.outside("prog")),
                files: files(&self.outside("")),
                updates: self.updates(),
            }
        }

        /// The checks after an update that failed while rewriting the executable: the response names the
        /// file and the cause; nothing in the output directory changed but the recompiled object (and the
        /// filler the test put there); the program runs its old code; hcr answers and its link state did not
        /// advance.
        fn assert_nothing_applied(&mut self, response: &serde_json::Value, cause: &str, before: &Snapshot) {
            let exe = self.out_dir.join("prog");
            assert_eq!(response["ok"], false, "{response}");
            assert_eq!(response["error"]["kind"], "file", "{response}");
            let message = response["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(&format!("writing {}", exe.display())) && message.contains(cause),
                "the update did not fail writing {}: {response}",
                exe.display()
            );
            let after = self.snapshot();
            assert_eq!(after.exe, before.exe, "{} changed", exe.display());
            let names = |s: &Snapshot| -> BTreeSet<String> {
                s.files.keys().filter(|name| name.as_str() != FILLER).cloned().collect()
            };
            assert_eq!(names(&after), names(before), "files came or went in {}", self.out_dir.display());
            for (name, digest) in &before.files {
                if !name.contains("/objects/tick-") {
                    assert_eq!(after.files.get(name), Some(digest), "{name} changed");
                }
            }
            let mark = self.output_len();
            self.wait_for("tick 1\n", mark);
            assert!(!self.output.lock().unwrap().contains("tick 2"), "the new code ran");
            assert_eq!(after.updates, before.updates, "the link state advanced");
        }

        /// The checks after the same edit applied once the fault is gone: the program runs the new code, the
        /// executable is new, the old one is kept as `prog.hcr/previous`, and the new one, launched afresh,
        /// runs the new code too.
        fn assert_applied(&mut self, response: &serde_json::Value, before: &Snapshot) {
            assert_eq!(response["ok"], true, "{response}");
            assert_eq!(response["report"]["changed_in_place"][0], "_tick", "{response}");
            let mark = self.output_len();
            self.wait_for("tick 2\n", mark);
            assert_ne!(digest(&self.outside("prog")), before.exe, "the executable was not rewritten");
            assert_eq!(digest(&self.outside("prog.hcr/previous")), before.exe);
            assert_eq!(self.updates(), before.updates + 1);
            let fresh = self.src.join("fresh");
            std::fs::copy(self.outside("prog"), &fresh).unwrap();
            let process = Process::spawn(&fresh, &[], &RunOptions::default()).unwrap();
            process.start().unwrap();
            super::wait_for(&process, "tick 2\n", 0);
            process.kill();
        }
    }

    impl Drop for Confined {
        fn drop(&mut self) {
            // hcr is the namespace's only process: its mounts go with it.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The output directory's contents and the link state's update count at one moment.
    struct Snapshot {
        exe: String,
        /// Every file under the output directory, by path relative to it, with its digest.
        files: std::collections::BTreeMap<String, String>,
        updates: u64,
    }

    /// The file the disk-full test fills the tmpfs with.
    const FILLER: &str = "filler";

    fn digest(path: &Path) -> String {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    fn files(dir: &Path) -> std::collections::BTreeMap<String, String> {
        let mut found = std::collections::BTreeMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(at) = pending.pop() {
            for entry in std::fs::read_dir(&at).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.insert(path.strip_prefix(dir).unwrap().display().to_string(), digest(&path));
                }
            }
        }
        found
    }

    /// Fills the filesystem of `path` with a file there, then frees `room` bytes of it (a multiple of the
    /// filesystem's block size).
    fn fill(path: &Path, room: u64) {
        let mut file = std::fs::File::create(path).unwrap();
        let chunk = vec![0xa5u8; 1 << 16];
        let mut written = 0u64;
        let err = loop {
            match file.write(&chunk) {
                Ok(0) => panic!("{} took no more bytes, and no error", path.display()),
                Ok(n) => written += n as u64,
                Err(e) => break e,
            }
            assert!(written < 64 << 20, "{} never filled up; {NEEDS}", path.display());
        };
        assert_eq!(err.raw_os_error(), Some(28), "filling {}: {err}", path.display());
        assert!(written >= room, "only {written} bytes were free, {room} are needed");
        file.set_len(written - room).unwrap();
    }

    /// The space a file takes on its filesystem.
    fn allocated(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).blocks() * 512
    }

    #[test]
    fn a_full_disk_during_the_rewrite_is_reported_and_the_update_applies_once_there_is_room() {
        let src = tempfile::tempdir().unwrap();
        let mut hcr = Confined::start(src.path(), false);
        hcr.wait_for("tick 1\n", 0);
        let before = hcr.snapshot();

        // Leave room for what the next compile writes (the new object, beside the old one until it is renamed
        // over it, and its depfile) but not for the copy of the executable the rewrite makes.
        let objects = hcr.outside("prog.hcr/objects");
        let tick: Vec<PathBuf> = std::fs::read_dir(&objects)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("tick-"))
            .collect();
        assert_eq!(tick.len(), 2, "tick.c's object and depfile in {}", objects.display());
        let block = std::fs::metadata(&objects).unwrap().blksize();
        let room = tick.iter().map(|p| allocated(p)).sum::<u64>() + block;
        let exe_size = allocated(&hcr.outside("prog"));
        assert!(
            room < exe_size,
            "the compile needs {room} bytes, the executable's copy {exe_size}: the copy would fit too"
        );
        fill(&hcr.outside(FILLER), room);

        std::fs::write(src.path().join("tick.c"), "int tick(int n) { return 2; }\n").unwrap();
        let response = hcr.request("hot_update");
        hcr.assert_nothing_applied(&response, "No space left on device", &before);

        std::fs::remove_file(hcr.outside(FILLER)).unwrap();
        let response = hcr.request("hot_update");
        hcr.assert_applied(&response, &before);
    }

    #[test]
    fn a_read_only_output_directory_is_reported_and_the_update_applies_once_it_is_writable_again() {
        let src = tempfile::tempdir().unwrap();
        let mut hcr = Confined::start(src.path(), true);
        hcr.wait_for("tick 1\n", 0);
        let before = hcr.snapshot();

        // The folder of the executable turns read-only; the build state (a mount of its own) stays writable, so
        // the compile succeeds and the rewrite fails.
        let out_dir = hcr.out_dir.clone();
        hcr.remount(&out_dir, "ro");
        let probe = std::fs::write(hcr.outside("probe"), b"");
        assert_eq!(probe.as_ref().map_err(|e| e.raw_os_error()), Err(Some(30)), "{probe:?}");
        std::fs::write(src.path().join("tick.c"), "int tick(int n) { return 2; }\n").unwrap();
        let response = hcr.request("hot_update");
        hcr.assert_nothing_applied(&response, "Read-only file system", &before);

        hcr.remount(&out_dir, "rw");
        let response = hcr.request("hot_update");
        hcr.assert_applied(&response, &before);

        // Now the build state turns read-only too, as a whole read-only volume would: the compile cannot write
        // its object, which is reported as such, and the program and the executable stay as they are.
        let state = out_dir.join("prog.hcr");
        let before = hcr.snapshot();
        hcr.remount(&out_dir, "ro");
        hcr.remount(&state, "ro");
        std::fs::write(src.path().join("tick.c"), "int tick(int n) { return 3; }\n").unwrap();
        let response = hcr.request("hot_update");
        assert_eq!(response["error"]["kind"], "compile", "{response}");
        let message = response["error"]["message"].as_str().unwrap_or_default();
        // clang names the object it could not write (its cause reads "Operation not permitted": it asks
        // access(W_OK) first, which says EROFS, and reports that as a permission error).
        assert!(message.contains("tick.c: compile failed"), "{response}");
        assert!(message.contains(&format!("unable to open output file '{}", state.display())), "{response}");
        let after = hcr.snapshot();
        assert_eq!((after.exe, after.files, after.updates), (before.exe, before.files, before.updates));
        let mark = hcr.output_len();
        hcr.wait_for("tick 2\n", mark);

        hcr.remount(&state, "rw");
        hcr.remount(&out_dir, "rw");
        let response = hcr.request("hot_update");
        assert_eq!(response["ok"], true, "{response}");
        let mark = hcr.output_len();
        hcr.wait_for("tick 3\n", mark);
    }
}
