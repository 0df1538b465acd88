//! `hcr run --backend sim --listen`, driven through the control socket only, as an editor would.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `hcr run`, its stdout (the program's output) collected in the background.
struct Hcr {
    child: Child,
    output: Arc<Mutex<String>>,
    socket: BufReader<UnixStream>,
    next_id: u64,
}

impl Hcr {
    fn start(dir: &Path, sources: &[&str], extra: &[&str]) -> Hcr {
        let socket_path = dir.join("hcr.sock");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hcr"))
            .current_dir(dir)
            .args(["run", "--backend", "sim", "--listen"])
            .arg(format!("unix:{}", socket_path.display()))
            .args(extra)
            .args(["-o", "prog"])
            .args(sources)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("hcr starts");
        let output = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            if let Ok(stream) = UnixStream::connect(&socket_path) {
                break stream;
            }
            assert!(Instant::now() < deadline, "hcr never listened on {}", socket_path.display());
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut socket = BufReader::new(stream);
        let mut greeting = String::new();
        socket.read_line(&mut greeting).unwrap();
        assert!(
            greeting.contains("\"event\":\"hello\"") && greeting.contains("\"protocol\":1"),
            "{greeting}"
        );
        Hcr { child, output, socket, next_id: 1 }
    }

    fn request(&mut self, cmd: &str, extra: &str) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let line = format!("{{\"id\":{id},\"cmd\":\"{cmd}\"{extra}}}\n");
        self.socket.get_mut().write_all(line.as_bytes()).unwrap();
        let mut response = String::new();
        self.socket.read_line(&mut response).unwrap();
        let value: serde_json::Value = serde_json::from_str(&response).unwrap();
        assert_eq!(value["id"], id, "{response}");
        value
    }

    /// Waits until the program printed `line` after `from` bytes of output; returns where it ended.
    fn wait_for(&self, line: &str, from: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            {
                let out = self.output.lock().unwrap();
                if let Some(at) = out[from.min(out.len())..].find(line) {
                    return from + at + line.len();
                }
                assert!(
                    Instant::now() < deadline,
                    "never printed {line:?}; output:\n{}",
                    &out[from.min(out.len())..]
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output_len(&self) -> usize {
        self.output.lock().unwrap().len()
    }
}

impl Drop for Hcr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(report: &serde_json::Value, field: &str) -> Vec<String> {
    report[field]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    v.as_str().map_or_else(|| v["symbol"].as_str().unwrap_or("").to_string(), String::from)
                })
                .collect()
        })
        .unwrap_or_default()
}

const TICKER: &str = r#"#include <stdio.h>
#include <unistd.h>

int counter;
int tick(int n);

int main(void) {
    for (int i = 0; i < 100000; i++) {
        counter++;
        printf("tick %d count %d\n", tick(i), counter);
        fflush(stdout);
        usleep(20000);
    }
    return 0;
}
"#;

#[test]
fn an_editor_drives_hot_updates_through_the_socket_and_state_survives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.c"), TICKER).unwrap();
    std::fs::write(dir.path().join("tick.c"), "int tick(int n) { return n * 0 + 1; }\n").unwrap();
    let mut hcr = Hcr::start(dir.path(), &["main.c", "tick.c"], &[]);
    let mut at = hcr.wait_for("tick 1 count 3\n", 0);

    let status = hcr.request("status", "");
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["report"]["process"]["state"], "running", "{status}");

    // The tick function changes; the counter global keeps counting from where it was.
    std::fs::write(dir.path().join("tick.c"), "int tick(int n) { return n * 0 + 2; }\n").unwrap();
    let before = hcr.output_len();
    let response = hcr.request("hot_update", "");
    assert_eq!(response["ok"], true, "{response}");
    let report = &response["report"];
    assert_eq!(names(report, "changed_in_place"), ["_tick"], "{report}");
    assert!(report["process"]["bytes"].as_u64().unwrap() > 0, "{report}");
    at = hcr.wait_for("tick 2 count", before.max(at));
    let out = hcr.output.lock().unwrap().clone();
    let count: u32 = out[at..].split_whitespace().next().unwrap().parse().unwrap();
    assert!(count > 3, "the counter restarted: {}", &out[at - 20..]);

    // A compile error: reported as such, the program keeps running the old code.
    std::fs::write(dir.path().join("tick.c"), "int tick(int n) { return n * ; }\n").unwrap();
    let response = hcr.request("hot_update", "");
    assert_eq!(response["ok"], false, "{response}");
    assert_eq!(response["error"]["kind"], "compile", "{response}");
    let mark = hcr.output_len();
    hcr.wait_for("tick 2 count", mark);

    // An undefined symbol: rejected, nothing changed.
    std::fs::write(dir.path().join("tick.c"), "int missing(int);\nint tick(int n) { return missing(n); }\n")
        .unwrap();
    let response = hcr.request("hot_update", "");
    assert_eq!(response["error"]["kind"], "link", "{response}");
    assert!(
        response["error"]["message"].as_str().unwrap().contains("undefined symbol _missing"),
        "{response}"
    );
    let mark = hcr.output_len();
    hcr.wait_for("tick 2 count", mark);

    // A new libSystem import first used now, and a good edit after the failures applies.
    std::fs::write(
        dir.path().join("tick.c"),
        "#include <stdlib.h>\nint tick(int n) { return abs(n) * 0 + 3 + abs(-n) * 0; }\n",
    )
    .unwrap();
    let response = hcr.request("hot_update", "");
    assert_eq!(response["ok"], true, "{response}");
    let mark = hcr.output_len();
    hcr.wait_for("tick 3 count", mark);

    // A bad request is answered, and the connection stays usable.
    hcr.socket.get_mut().write_all(b"this is not json\n").unwrap();
    let mut line = String::new();
    hcr.socket.read_line(&mut line).unwrap();
    assert!(line.contains("\"kind\":\"bad_request\""), "{line}");
    let response = hcr.request("exit", "");
    assert_eq!(response["ok"], true, "{response}");
    let status = hcr.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // The session saved its link state when it ended: the next build continues from it.
    let build = Command::new(env!("CARGO_BIN_EXE_hcr"))
        .current_dir(dir.path())
        .args(["build", "-o", "prog", "main.c", "tick.c"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&build.stdout);
    assert!(
        said.contains("0 compiled, incremental link"),
        "{said}{}",
        String::from_utf8_lossy(&build.stderr)
    );
}

#[test]
fn a_function_a_thread_is_in_moves_and_the_program_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    // `work` never returns: the thread is always inside it (or in a call it will return into).
    let main = r#"#include <stdio.h>
#include <unistd.h>

int step(int i);

int work(void) {
    int total = 0;
    for (int i = 0; i < 100000; i++) {
        total += step(i);
        printf("work %d total %d\n", i, total);
        fflush(stdout);
        usleep(20000);
    }
    return total;
}

int main(void) { return work() & 1; }
"#;
    std::fs::write(dir.path().join("main.c"), main).unwrap();
    std::fs::write(dir.path().join("step.c"), "int step(int i) { return 1; }\n").unwrap();
    let mut hcr = Hcr::start(dir.path(), &["main.c", "step.c"], &["--no-aslr"]);
    hcr.wait_for("work 2 total 3\n", 0);

    // A one-instruction change to `work` that would fit where it is: it must move, because the thread is in it.
    std::fs::write(
        dir.path().join("main.c"),
        main.replace("total += step(i);", "total += step(i) * 1 + 0;").replace("work %d", "work* %d"),
    )
    .unwrap();
    std::fs::write(dir.path().join("step.c"), "int step(int i) { return 10; }\n").unwrap();
    let response = hcr.request("hot_update", "");
    assert_eq!(response["ok"], true, "{response}");
    let report = &response["report"];
    let moved = report["moved"].as_array().unwrap();
    let work = moved
        .iter()
        .find(|m| m["symbol"] == "_work")
        .unwrap_or_else(|| panic!("work did not move: {report}"));
    assert_eq!(work["reason"], "live", "{report}");
    // The running invocation finishes in the old `work` (its format string), and calls the new `step`.
    let mark = hcr.output_len();
    let mut end = mark;
    for _ in 0..4 {
        end = hcr.wait_for("\nwork ", end);
    }
    let end = hcr.wait_for("\n", end);
    let out = hcr.output.lock().unwrap()[..end].to_string();
    assert!(out[mark..].lines().all(|l| !l.starts_with("work*")), "{}", &out[mark..]);
    // The totals now grow by 10 a step.
    let totals: Vec<i64> = out[mark..]
        .lines()
        .filter_map(|l| {
            l.strip_prefix("work ").and_then(|r| r.split(" total ").nth(1)).and_then(|t| t.parse().ok())
        })
        .collect();
    assert!(totals.windows(2).any(|w| w[1] - w[0] == 10), "{totals:?}");
    let status = hcr.request("status", "");
    assert_eq!(status["report"]["process"]["state"], "running", "{status}");
}

#[test]
fn saving_a_file_under_watch_hot_updates_and_reset_reapplies_an_initializer() {
    let dir = tempfile::tempdir().unwrap();
    let main = r#"#include <stdio.h>
#include <unistd.h>

int tick(int n);
extern int base;

int main(void) {
    for (int i = 0; i < 100000; i++) {
        base++;
        printf("tick %d base %d\n", tick(i), base);
        fflush(stdout);
        usleep(20000);
    }
    return 0;
}
"#;
    std::fs::write(dir.path().join("main.c"), main).unwrap();
    std::fs::write(dir.path().join("tick.c"), "int base = 1000;\nint tick(int n) { return 1; }\n").unwrap();
    let mut hcr = Hcr::start(dir.path(), &["main.c", "tick.c"], &["--watch"]);
    hcr.wait_for("tick 1 base 1003\n", 0);

    // A save is a hot update: the new body runs, and base keeps its running value although its initializer
    // changed.
    let mark = hcr.output_len();
    std::fs::write(dir.path().join("tick.c"), "int base = 5000;\nint tick(int n) { return 2; }\n").unwrap();
    let end = hcr.wait_for("tick 2 base ", mark);
    let out = hcr.output.lock().unwrap().clone();
    let base: u32 = out[end..].split_whitespace().next().unwrap().parse().unwrap();
    assert!((1003..5000).contains(&base), "base lost its state: {base}");

    // reset re-applies the new initializer in the running program.
    let response = hcr.request("reset", ",\"name\":\"base\"");
    assert_eq!(response["ok"], true, "{response}");
    let mark = hcr.output_len();
    hcr.wait_for("tick 2 base 500", mark);
}

#[test]
fn a_killed_or_missing_compiler_and_two_simultaneous_updates_leave_hcr_serving() {
    let dir = tempfile::tempdir().unwrap();
    // The compiler is a script, so that the test can make it die mid-update.
    let cc = dir.path().join("cc.sh");
    std::fs::write(&cc, "#!/bin/sh\nexec clang-19 \"$@\"\n").unwrap();
    std::fs::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("main.c"), TICKER).unwrap();
    std::fs::write(dir.path().join("tick.c"), "int tick(int n) { return n * 0 + 1; }\n").unwrap();
    let mut hcr = Hcr::start(dir.path(), &["main.c", "tick.c"], &["--cc", cc.to_str().unwrap()]);
    hcr.wait_for("tick 1 count", 0);

    std::fs::write(&cc, "#!/bin/sh\nkill -9 $$\n").unwrap();
    std::fs::write(dir.path().join("tick.c"), "int tick(int n) { return n * 0 + 2; }\n").unwrap();
    let response = hcr.request("hot_update", "");
    assert_eq!(response["error"]["kind"], "compile", "{response}");
    let mark = hcr.output_len();
    hcr.wait_for("tick 1 count", mark);

    // The compiler is gone altogether: the update fails naming it, and the program runs on.
    std::fs::remove_file(&cc).unwrap();
    let response = hcr.request("hot_update", "");
    assert_eq!(response["error"]["kind"], "compile", "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(message.contains("cc.sh") && message.contains("tick.c"), "{message}");
    let mark = hcr.output_len();
    hcr.wait_for("tick 1 count", mark);

    // The compiler is back; two clients ask for an update at the same moment: both are answered, one after the
    // other, and the program runs the new code.
    std::fs::write(&cc, "#!/bin/sh\nexec clang-19 \"$@\"\n").unwrap();
    std::fs::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = dir.path().join("hcr.sock");
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut stream = BufReader::new(UnixStream::connect(&socket).unwrap());
                let mut greeting = String::new();
                stream.read_line(&mut greeting).unwrap();
                stream.get_mut().write_all(b"{\"id\":7,\"cmd\":\"hot_update\"}\n").unwrap();
                let mut response = String::new();
                stream.read_line(&mut response).unwrap();
                serde_json::from_str::<serde_json::Value>(&response).unwrap()
            })
        })
        .collect();
    for client in clients {
        let response = client.join().unwrap();
        assert_eq!(response["id"], 7, "{response}");
        assert_eq!(response["ok"], true, "{response}");
    }
    let mark = hcr.output_len();
    hcr.wait_for("tick 2 count", mark);
}
