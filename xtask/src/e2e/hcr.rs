//! One `hcr run --listen` process, seen as a test harness (or an editor) sees it: its stdout (the program's
//! output) collected line by line, its stderr kept for failure messages, and its control socket.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::json::{self, Json};

/// How long to wait for hcr's first build and socket, and for one response (compiles can be slow on a busy
/// machine).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines read from one of hcr's output streams by a background thread, in order.
#[derive(Debug, Default)]
pub struct Lines {
    state: Mutex<LinesState>,
    grew: Condvar,
}

/// The prefix lines are echoed with, if they are.
type Echo = Option<&'static str>;

#[derive(Debug, Default)]
struct LinesState {
    lines: Vec<String>,
    closed: bool,
    echo: Echo,
}

impl Lines {
    /// Reads `stream` to its end on a new thread; `echo` prints every line as it arrives, with that prefix.
    fn collect(stream: impl Read + Send + 'static, echo: Echo) -> Arc<Lines> {
        let lines = Arc::new(Lines::default());
        lines.set_echo(echo);
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let mut state = sink.state.lock().expect("no reader panics holding the lock");
                if let Some(prefix) = state.echo {
                    println!("{prefix}{line}");
                }
                state.lines.push(line);
                drop(state);
                sink.grew.notify_all();
            }
            sink.state.lock().expect("no reader panics holding the lock").closed = true;
            sink.grew.notify_all();
        });
        lines
    }

    /// Starts or stops echoing lines as they arrive.
    pub fn set_echo(&self, echo: Echo) {
        self.state.lock().expect("no reader panics holding the lock").echo = echo;
    }

    /// How many lines have arrived so far: a mark to look for later lines from.
    pub fn len(&self) -> usize {
        self.state.lock().expect("no reader panics holding the lock").lines.len()
    }

    /// A copy of lines `from..` (up to what has arrived).
    pub fn since(&self, from: usize) -> Vec<String> {
        let state = self.state.lock().expect("no reader panics holding the lock");
        state.lines.get(from..).map(<[String]>::to_vec).unwrap_or_default()
    }

    /// Waits until `done` holds for the lines `from..`, or the stream closes, or `timeout` passes. Returns the
    /// lines `from..` as they were at that point and whether `done` held.
    pub fn wait(
        &self,
        from: usize,
        timeout: Duration,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> (Vec<String>, bool) {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().expect("no reader panics holding the lock");
        loop {
            let lines = state.lines.get(from..).unwrap_or_default();
            if done(lines) {
                return (lines.to_vec(), true);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return (lines.to_vec(), false);
            }
            state =
                self.grew.wait_timeout(state, deadline - now).expect("no reader panics holding the lock").0;
        }
    }
}

/// What launches hcr.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub hcr: &'a Path,
    /// The backend (`sim` or `mach`).
    pub backend: &'a str,
    /// The folder holding the sources; hcr runs there and they are named relative to it.
    pub src: &'a Path,
    /// Where the executable, its link state and the socket go.
    pub work: &'a Path,
    pub sources: &'a [String],
    pub flags: &'a [String],
    pub args: &'a [String],
    pub aslr: bool,
    /// Print hcr's output as it arrives (stdout as `out |`, stderr as `err |`).
    pub echo: bool,
}

/// The error when hcr closes the socket instead of answering.
const CLOSED: &str = "hcr closed the control socket";

/// A running `hcr run`.
#[derive(Debug)]
pub struct Hcr {
    child: Child,
    socket: BufReader<UnixStream>,
    next_id: u64,
    /// The program's output (hcr's stdout).
    pub out: Arc<Lines>,
    /// hcr's own messages and the program's stderr.
    pub err: Arc<Lines>,
    /// The command line, for failure messages.
    pub command_line: String,
}

impl Hcr {
    /// Starts hcr, waits for its control socket and reads the greeting.
    pub fn launch(launch: &Launch<'_>) -> Result<Hcr, String> {
        let socket_path: PathBuf = launch.work.join("hcr.sock");
        let exe = launch.work.join("prog");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--backend".into(),
            launch.backend.into(),
            "--listen".into(),
            format!("unix:{}", socket_path.display()),
            "-o".into(),
            exe.display().to_string(),
        ];
        if !launch.aslr {
            args.push("--no-aslr".into());
        }
        args.extend(launch.flags.iter().cloned());
        args.extend(launch.sources.iter().cloned());
        if !launch.args.is_empty() {
            args.push("--".into());
            args.extend(launch.args.iter().cloned());
        }
        let command_line =
            format!("(cd {} && {} {})", launch.src.display(), launch.hcr.display(), args.join(" "));
        let mut child = Command::new(launch.hcr)
            .args(&args)
            .current_dir(launch.src)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", launch.hcr.display()))?;
        let (out_echo, err_echo) =
            if launch.echo { (Some("  out | "), Some("  err | ")) } else { (None, None) };
        let out = Lines::collect(child.stdout.take().expect("stdout is piped"), out_echo);
        let err = Lines::collect(child.stderr.take().expect("stderr is piped"), err_echo);

        // hcr builds and launches before it listens; wait for the socket, or for hcr to give up.
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        let stream = loop {
            if let Ok(stream) = UnixStream::connect(&socket_path) {
                break stream;
            }
            let ended = child.try_wait().ok().flatten();
            if ended.is_some() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let why =
                    ended.map_or("did not open its socket in time".to_string(), |s| format!("exited ({s})"));
                let (stderr, _) = err.wait(0, Duration::from_secs(1), |_| false);
                return Err(format!("`{command_line}` {why}; its stderr:\n{}", indent(&stderr)));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT)).map_err(|e| format!("socket: {e}"))?;
        let mut hcr = Hcr { child, socket: BufReader::new(stream), next_id: 1, out, err, command_line };
        let greeting = hcr.read_line()?;
        let hello = json::parse(&greeting).map_err(|e| format!("greeting `{greeting}`: {e}"))?;
        if hello.get("event").and_then(Json::as_str) != Some("hello") {
            return Err(format!("expected the greeting, got `{greeting}`"));
        }
        Ok(hcr)
    }

    fn read_line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.socket.read_line(&mut line) {
            Ok(0) => Err(CLOSED.into()),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) => Err(format!("reading the control socket: {e}")),
        }
    }

    /// Sends one request (built by `body` from the id) and returns the raw response line and its parsed value,
    /// after checking that it answers this request.
    pub fn request(&mut self, body: impl FnOnce(u64) -> String) -> Result<(String, Json), String> {
        let id = self.next_id;
        self.next_id += 1;
        let line = body(id);
        writeln!(self.socket.get_mut(), "{line}").map_err(|e| format!("sending `{line}`: {e}"))?;
        let answer = self.read_line()?;
        let value = json::parse(&answer).map_err(|e| format!("response `{answer}`: {e}"))?;
        if value.get("id") != Some(&Json::Number(id.to_string())) {
            return Err(format!("response to `{line}` has the wrong id: `{answer}`"));
        }
        Ok((answer, value))
    }

    /// hcr's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's `status` report: its state and, once it has ended, how.
    pub fn process_state(&mut self) -> Result<(String, String), String> {
        let (raw, value) = self.request(|id| format!("{{\"id\":{id},\"cmd\":\"status\"}}"))?;
        let process = value.get("report").and_then(|r| r.get("process"));
        let field = |name| process.and_then(|p| p.get(name)).and_then(Json::as_str).map(str::to_string);
        match field("state") {
            Some(state) => Ok((state, field("status").unwrap_or_default())),
            None => Err(format!("`status` has no process state: {raw}")),
        }
    }

    /// Asks hcr to exit and waits for it; kills it if it does not go.
    ///
    /// The protocol promises a response to `exit` too, but hcr may end before its connection thread has
    /// written it; the socket closing and hcr exiting successfully is accepted as the answer.
    pub fn exit(mut self) -> Result<(), String> {
        let asked = match self.request(|id| format!("{{\"id\":{id},\"cmd\":\"exit\"}}")) {
            Err(e) if e == CLOSED => Ok(()),
            other => other.map(drop),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return asked,
                Ok(Some(status)) => return Err(format!("hcr exited with {status} after `exit`")),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    return Err("hcr did not exit within 10 s of `exit`".into());
                }
            }
        }
    }
}

impl Drop for Hcr {
    fn drop(&mut self) {
        // After a failed step hcr may still be serving; never leave it (and its program) behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Lines indented for a failure message.
pub fn indent(lines: &[String]) -> String {
    if lines.is_empty() {
        return "    (nothing)\n".into();
    }
    lines.iter().map(|l| format!("    {l}\n")).collect()
}
