//! Hot updates of a multi-threaded program: worker threads spin in, and call, the function being edited. Every
//! update must leave every thread alive and running the new code at its next call, and must never write a byte a
//! thread is executing or will return into. The second rule is checked independently of hcr's own liveness scan:
//! the test's `Task` walks every thread's frame chain when the program is suspended and fails any write that covers
//! a PC, a link register or a saved return address.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use darwin_sim::{ExitStatus, Process, Stream};
use hcr_driver::build::{BuildOptions, Project, Sdk};
use hcr_driver::report::MoveReason;
use hcr_driver::session::{Session, Target};
use mach_task::{Task, TaskError};

use crate::hooked::{HookedLauncher, Hooks};

const WORKERS: usize = 4;

const MAIN: &str = r#"#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#define WORKERS 4

int step(int id, int n);

volatile int quit;
volatile long rounds[WORKERS];
volatile int seen[WORKERS];

static void *worker(void *arg) {
    long id = (long)arg;
    for (int n = 0; !quit; n++) {
        seen[id] = step((int)id, n);
        rounds[id]++;
    }
    return (void *)(id + 100);
}

int main(void) {
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++) pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int t = 1; !quit && t < 1000000; t++) {
        printf("tick %d:", t);
        for (int i = 0; i < WORKERS; i++) printf(" %d", seen[i]);
        printf("\n");
        fflush(stdout);
        usleep(1000);
    }
    int joined = 0;
    for (int i = 0; i < WORKERS; i++) {
        void *value;
        if (pthread_join(threads[i], &value) == 0 && (long)value == i + 100) joined++;
    }
    printf("joined %d\n", joined);
    return 0;
}
"#;

/// The edited unit: `step` spends its time in a loop that calls `leaf`, so at any moment most workers are inside
/// `step` or return into it. `version` is what `step` returns; `extra` adds that many more statements (kept alive
/// by the store to `sink`), to grow it past its padding.
fn work(version: u32, extra: u32) -> String {
    let mut grow = String::new();
    for i in 0..extra {
        grow += &format!("    acc = acc * {} + (n ^ {i});\n", 3 + i % 5);
    }
    format!(
        r#"volatile int sink;

__attribute__((noinline)) int leaf(int x) {{
    int a = x;
    for (int i = 0; i < 40; i++) a = a * 7 + i;
    return a;
}}

int step(int id, int n) {{
    int acc = id;
    for (int i = 0; i < 30; i++) acc += leaf(acc + i);
{grow}    sink = acc;
    return {version};
}}
"#
    )
}

/// Hooks that remember, at every suspension, each thread's PC, LR and saved return addresses (walking the
/// frame-pointer chain), and record every write that covers one of them.
#[derive(Default)]
struct Watched {
    live: Mutex<Vec<u64>>,
    violations: Mutex<Vec<String>>,
    writes: Mutex<usize>,
}

/// The precise set of code addresses the threads of `process` are executing or will return into.
fn frames(process: &Process) -> Result<Vec<u64>, TaskError> {
    let mut live = Vec::new();
    for thread in process.threads()? {
        live.extend([thread.pc, thread.lr]);
        let stack = process.region_containing(thread.sp)?;
        let mut fp = thread.fp;
        for _ in 0..256 {
            if fp < thread.sp || fp + 16 > stack.end() || fp % 8 != 0 {
                break;
            }
            let record = process.read_vec(fp, 16)?;
            let next = u64::from_le_bytes(record[..8].try_into().unwrap());
            live.push(u64::from_le_bytes(record[8..].try_into().unwrap()));
            if next <= fp {
                break;
            }
            fp = next;
        }
    }
    Ok(live)
}

impl Hooks for Watched {
    fn before_write(&self, _process: &Process, addr: u64, bytes: &[u8]) {
        let range = addr..addr + bytes.len() as u64;
        for &live in self.live.lock().unwrap().iter() {
            // An instruction at `live` is 4 bytes: any overlap with them is a write into running code.
            if range.start < live + 4 && live < range.end {
                self.violations.lock().unwrap().push(format!(
                    "a write of {} bytes at {addr:#x} covers {live:#x}, where a thread is or will return",
                    bytes.len()
                ));
            }
        }
        *self.writes.lock().unwrap() += 1;
    }

    fn after_suspend(&self, process: &Process) -> Result<(), TaskError> {
        *self.live.lock().unwrap() = frames(process)?;
        Ok(())
    }
}

type WatchedLauncher = HookedLauncher<Watched>;

/// Waits until a tick line after byte `from` of stdout shows every worker's last `step` result equal to `version`;
/// returns where that line ends.
fn wait_for_version(process: &Process, version: u32, from: usize) -> usize {
    let want = format!(":{}\n", format!(" {version}").repeat(WORKERS));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = String::from_utf8_lossy(&process.output().contents(Stream::Stdout)).into_owned();
        if let Some(at) = out.get(from..).and_then(|rest| rest.find(&want)) {
            return from + at + want.len();
        }
        assert!(
            Instant::now() < deadline,
            "no tick line shows every worker at version {version}; last lines:\n{}",
            out.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn rounds(process: &Process, addr: u64) -> Vec<u64> {
    let bytes = process.read_vec(addr, 8 * WORKERS).unwrap();
    bytes.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn worker_threads_inside_the_edited_function_survive_every_update_and_run_the_new_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), MAIN).unwrap();
    std::fs::write(dir.path().join("work.c"), work(1, 0)).unwrap();
    let options = BuildOptions {
        out: dir.path().join("prog"),
        inputs: vec![dir.path().join("main.c"), dir.path().join("work.c")],
        flags: vec!["-O1".into()],
        sdk: Sdk::locate(None).unwrap(),
        cc: None,
    };
    let mut session =
        Session::new(Project::open(options).unwrap(), WatchedLauncher::default(), Vec::new(), true);
    session.update().unwrap();
    session.run().unwrap();
    let slide = session.target().unwrap().slide();
    let addr = |session: &Session<WatchedLauncher>, name: &str| {
        session.project().linker().atom_by_name(name).unwrap_or_else(|| panic!("no {name}")).0 + slide
    };
    let (rounds_at, quit_at) = (addr(&session, "_rounds"), addr(&session, "_quit"));
    let mut mark = wait_for_version(&session.target().unwrap().process, 1, 0);
    let threads_before: Vec<u64> =
        session.target().unwrap().process.threads().unwrap().iter().map(|t| t.id).collect();
    assert_eq!(threads_before.len(), WORKERS + 1, "main and the workers");

    // Same-size edits (moved only because threads are inside), and edits that outgrow the padding.
    let edits = [(2, 0), (3, 0), (4, 24), (5, 24), (6, 0), (7, 60), (8, 60), (9, 0)];
    let mut live_moves = 0;
    let first_size = session.project().linker().atom_by_name("_step").unwrap().1.len();
    let mut largest = first_size;
    for (version, extra) in edits {
        let before = rounds(&session.target().unwrap().process, rounds_at);
        std::fs::write(dir.path().join("work.c"), work(version, extra)).unwrap();
        let report = session.hot_update().unwrap_or_else(|e| panic!("update to version {version}: {e}"));
        let step = report.moved.iter().find(|m| m.symbol == "_step");
        assert!(
            step.is_some() || report.changed_in_place.iter().any(|s| s == "_step"),
            "version {version}: _step was not updated: {report:?}"
        );
        if step.is_some_and(|m| m.reason == MoveReason::Live) {
            live_moves += 1;
        }
        let size = session.project().linker().atom_by_name("_step").unwrap().1.len();
        largest = largest.max(size);
        let target = session.target().unwrap();
        let violations = target.hooks.violations.lock().unwrap().clone();
        assert!(violations.is_empty(), "version {version}:\n{}", violations.join("\n"));
        mark = wait_for_version(&target.process, version, mark);
        // Every thread is still there, and every worker keeps going.
        let ids: Vec<u64> = target.process.threads().unwrap().iter().map(|t| t.id).collect();
        assert_eq!(ids, threads_before, "version {version}: the threads changed");
        let after = rounds(&target.process, rounds_at);
        assert!(
            after.iter().zip(&before).all(|(a, b)| a > b),
            "version {version}: a worker stopped: {before:?} -> {after:?}"
        );
    }
    // The edits were made while workers ran inside `step`: liveness, not luck, kept their bytes intact.
    // (A function that grows while a thread is inside is reported as a live move.)
    assert!(live_moves >= 1, "no update found a thread inside _step");
    assert!(largest > 4 * first_size, "_step never outgrew its slot: {first_size} -> {largest} bytes");
    assert!(*session.target().unwrap().hooks.writes.lock().unwrap() > 0);

    // Every worker ends when asked, and main joins all of them with their results.
    let target = session.target().unwrap();
    let stopped = target.process.suspend().unwrap();
    stopped.task().write_data(quit_at, &1u32.to_le_bytes()).unwrap();
    stopped.resume().unwrap();
    let status = target.process.wait_timeout(Duration::from_secs(30)).expect("the program ends once asked");
    assert_eq!(status, ExitStatus::Exited(0));
    let out = String::from_utf8_lossy(&target.process.output().contents(Stream::Stdout)).into_owned();
    assert!(out.ends_with(&format!("joined {WORKERS}\n")), "{}", &out[out.len().saturating_sub(200)..]);
}
